"""A tiny raw MQTT client for the edge-case tests: builds packets byte by byte (including
broken ones no real client would send) and reads the broker's answers."""
import socket
import struct
import time


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(b)) + b


def packet(header, body):
    return bytes([header]) + varint(len(body)) + body


def props(raw=b""):
    return varint(len(raw)) + raw


def connect(client_id="raw", version=4, clean=True, keepalive=60, username=None, password=None,
            will=None, connect_props=b""):
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += props()
        payload += s(topic) + s(msg)
    if username is not None:
        flags |= 0x80
        payload += s(username)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    body = s("MQTT") + bytes([version, flags]) + struct.pack(">H", keepalive)
    if version == 5:
        body += props(connect_props)
    return packet(0x10, body + payload)


def publish(topic, payload=b"", qos=0, retain=False, packet_id=1, version=4, pub_props=b"",
            flags=None):
    h = 0x30 | (qos << 1) | (1 if retain else 0)
    if flags is not None:
        h = 0x30 | flags
    body = s(topic)
    if qos:
        body += struct.pack(">H", packet_id)
    if version == 5:
        body += props(pub_props)
    return packet(h, body + payload)


def subscribe(filt, qos=0, packet_id=1, version=4, header=0x82, options=None):
    body = struct.pack(">H", packet_id)
    if version == 5:
        body += props()
    body += s(filt) + bytes([qos if options is None else options])
    return packet(header, body)


class Raw:
    def __init__(self, host, port, timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_packet(self, timeout=5):
        """Returns (type, flags, body) or None when the broker closed the connection."""
        deadline = time.time() + timeout
        while True:
            p = self._parse()
            if p:
                return p
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no packet from the broker within %ss" % timeout)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def _parse(self):
        if len(self.buf) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if len(self.buf) < i + n:
            return None
        h = self.buf[0]
        body = self.buf[i:i + n]
        self.buf = self.buf[i + n:]
        return (h >> 4, h & 0x0F, body)

    def expect_closed(self, timeout=5):
        """Reads until the broker closes; returns the packets seen before."""
        seen = []
        while True:
            p = self.read_packet(timeout)
            if p is None:
                return seen
            seen.append(p)

    def connect(self, **kw):
        self.send(connect(**kw))
        p = self.read_packet()
        assert p and p[0] == 2, "expected CONNACK, got %r" % (p,)
        return p

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def disconnect_reason(packets):
    """The reason code of the DISCONNECT among `packets` (0 if it has none)."""
    for t, _, body in packets:
        if t == 14:
            return body[0] if body else 0
    return None

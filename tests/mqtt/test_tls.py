"""MQTTS: the self-signed certificate generated at start, and mutual TLS with a CA, server
and client certificates made by openssl in the test."""
import os
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mqttutil as mu  # noqa: E402
import pytest  # noqa: E402
from harness import Lake  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=Test CA", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("device-42", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + name, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", *ext, cwd=d)


def test_mqtts_self_signed_out_of_the_box(lake):
    cert = os.path.join(lake.data_dir, "keys", "mqtt-server.crt")
    assert os.path.exists(cert)
    c = mu.make_client(lake, "tls-1", 5)
    c.tls_set(ca_certs=cert)
    mu.start(c, lake, listener="mqtts", version=5)
    mu.subscribe(c, "s/#", 1)
    c.publish("s/1", "secure", qos=1).wait_for_publish(10)
    m = mu.collect(c, 1)
    assert m and m[0].payload == b"secure"
    mu.stop(c)


def test_connect_in_the_same_segment_as_the_handshakes_last_record(lake):
    # A client may send CONNECT right behind its TLS Finished (tarn simulate does): the server
    # reads both at once with read-ahead, and must not then wait for the socket to become
    # readable again for a packet OpenSSL already holds.
    import socket
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import rawmqtt
    host, port = lake.host_port("mqtts")
    ctx = ssl.create_default_context(cafile=os.path.join(lake.data_dir, "keys", "mqtt-server.crt"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    with socket.create_connection((host, port), timeout=10) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection during the handshake"
                incoming.write(chunk)
        tls.write(rawmqtt.connect(client_id="read-ahead", username="root", password=lake.PASSWORD))
        sock.sendall(outgoing.read())  # Finished and CONNECT in one segment
        got = b""
        while len(got) < 4:
            try:
                got += tls.read(4096)
            except ssl.SSLWantReadError:
                chunk = sock.recv(65536)  # the socket timeout fails the test if CONNACK never comes
                assert chunk, "the server closed the connection"
                incoming.write(chunk)
        assert got[:4] == b"\x20\x02\x00\x00"  # CONNACK, accepted


def test_mutual_tls_client_certificate_identity():
    d = tempfile.mkdtemp(prefix="tarn-pki-")
    make_pki(d)
    cfg = os.path.join(d, "tarn.yaml")
    with open(cfg, "w") as f:
        f.write("mqtt_broker:\n  cert_file: %s/server.crt\n  key_file: %s/server.key\n"
                "  client_ca_file: %s/ca.crt\n  require_client_cert: true\n" % (d, d, d))
    lake = Lake(extra_args=["--config", cfg])
    lake.start()
    try:
        # A device with a certificate signed by the CA connects with no password.
        c = mu.make_client(lake, "device-42", 4)
        c.username_pw_set(None)
        c.tls_set(ca_certs=d + "/ca.crt", certfile=d + "/device-42.crt", keyfile=d + "/device-42.key")
        mu.start(c, lake, listener="mqtts")
        assert c.connack[1] == 0
        mu.subscribe(c, "dev/42/#", 1)
        c.publish("dev/42/t", "21.5", qos=1).wait_for_publish(10)
        assert mu.collect(c, 1)[0].payload == b"21.5"
        mu.stop(c)
        # Without a client certificate the handshake is refused.
        host, port = lake.host_port("mqtts")
        ctx = ssl.create_default_context(cafile=d + "/ca.crt")
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            import socket
            with socket.create_connection((host, port), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"\x10\x00")
                    if not t.recv(10):
                        raise ConnectionResetError("closed")
    finally:
        lake.stop()
        lake.cleanup()

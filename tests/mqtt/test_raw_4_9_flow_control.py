"""MQTT 5.0 §4.9 flow control (Receive Maximum) and §3.8.3.1 Retain As Published."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawmqtt import Raw, publish, subscribe  # noqa: E402


def login(lake, cid, connect_props=b""):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id=cid, version=5, username="root", password=lake.PASSWORD,
              connect_props=connect_props)
    return r


def publish_id(body):
    tl = struct.unpack(">H", body[:2])[0]
    return body[2 + tl:4 + tl]


def test_4_9_receive_maximum_limits_unacknowledged_qos1(lake):
    sub = login(lake, "rm-sub", connect_props=b"\x21\x00\x02")  # Receive Maximum 2
    sub.send(subscribe("rm/#", 1, version=5))
    assert sub.read_packet()[0] == 9
    pub = login(lake, "rm-pub")
    for i in range(5):
        pub.send(publish("rm/t", b"m%d" % i, qos=1, packet_id=i + 1, version=5))
        assert pub.read_packet()[0] == 4
    got = [sub.read_packet(), sub.read_packet()]
    assert all(p[0] == 3 for p in got)
    sub.sock.settimeout(0.5)
    try:
        extra = sub.sock.recv(100)
    except socket.timeout:
        extra = b""
    assert extra == b""  # a third PUBLISH would exceed the client's Receive Maximum
    sub.send(b"\x40\x02" + publish_id(got[0][2]))  # PUBACK the first
    t, _, body = sub.read_packet()
    assert t == 3 and body.endswith(b"m2")


def test_3_8_3_1_retain_as_published(lake):
    keep = login(lake, "rap-keep")
    keep.send(subscribe("rap/#", version=5, options=0x08))  # Retain As Published
    assert keep.read_packet()[0] == 9
    clear = login(lake, "rap-clear")
    clear.send(subscribe("rap/#", version=5, options=0x00))
    assert clear.read_packet()[0] == 9
    pub = login(lake, "rap-pub")
    pub.send(publish("rap/x", b"r", retain=True, version=5))
    _, flags_keep, _ = keep.read_packet()
    _, flags_clear, _ = clear.read_packet()
    assert flags_keep & 1 == 1
    assert flags_clear & 1 == 0  # §3.3.1.3: retain flag cleared on normal delivery

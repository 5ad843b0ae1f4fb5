"""MQTT 3.1.1 / 5.0 §3.1 CONNECT: first-packet rules, flags, versions, auth, keep-alive."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawmqtt import Raw, connect, disconnect_reason, packet, props, publish, s  # noqa: E402
import struct  # noqa: E402


def test_3_1_publish_before_connect_closes_without_reply(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.send(publish("a", b"x"))
    assert r.expect_closed() == []


def test_3_1_second_connect_is_protocol_error_v5(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id="twice", version=5, username="root", password=lake.PASSWORD)
    r.send(connect(client_id="twice", version=5, username="root", password=lake.PASSWORD))
    assert disconnect_reason(r.expect_closed()) == 0x82


def test_3_1_second_connect_v311_closes(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id="twice3", version=4, username="root", password=lake.PASSWORD)
    r.send(connect(client_id="twice3", version=4, username="root", password=lake.PASSWORD))
    assert r.expect_closed() == []


def test_3_1_2_3_reserved_connect_flag_v5_gets_connack_0x81(lake):
    pkt = bytearray(connect(client_id="rsv", version=5, username="root", password=lake.PASSWORD))
    pkt[9] |= 0x01  # connect flags byte: fixed header(2) + "MQTT"(6) + level(1)
    r = Raw(*lake.host_port("mqtt"))
    r.send(bytes(pkt))
    seen = r.expect_closed()
    assert seen and seen[0][0] == 2 and seen[0][2][1] == 0x81


def test_3_1_2_2_unsupported_protocol_level(lake):
    body = s("MQTT") + bytes([3, 0x02]) + struct.pack(">H", 60) + s("old")
    r = Raw(*lake.host_port("mqtt"))
    r.send(packet(0x10, body))
    seen = r.expect_closed()
    assert seen and seen[0][0] == 2 and seen[0][2] == b"\x00\x01"


def test_3_1_2_wrong_password_v5_0x86_and_v311_4(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.send(connect(client_id="pw5", version=5, username="root", password="nope"))
    seen = r.expect_closed()
    assert seen[0][0] == 2 and seen[0][2][1] == 0x86
    r = Raw(*lake.host_port("mqtt"))
    r.send(connect(client_id="pw3", version=4, username="root", password="nope"))
    seen = r.expect_closed()
    assert seen[0][2] == b"\x00\x04"


def test_3_1_anonymous_refused_v5_0x87(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.send(connect(client_id="anon", version=5))
    seen = r.expect_closed()
    assert seen[0][0] == 2 and seen[0][2][1] == 0x87


def test_4_12_auth_method_not_supported(lake):
    auth = b"\x15" + s("SCRAM-SHA-1")
    r = Raw(*lake.host_port("mqtt"))
    r.send(connect(client_id="enh", version=5, username="root", password=lake.PASSWORD,
                   connect_props=auth))
    seen = r.expect_closed()
    assert seen[0][0] == 2 and seen[0][2][1] == 0x8C


def test_3_1_3_1_empty_client_id(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.send(connect(client_id="", version=4, clean=False, username="root", password=lake.PASSWORD))
    seen = r.expect_closed()
    assert seen[0][2] == b"\x00\x02"  # identifier rejected
    r = Raw(*lake.host_port("mqtt"))
    t, _, body = r.connect(client_id="", version=5, username="root", password=lake.PASSWORD)
    assert body[1] == 0 and b"\x12" in body  # Assigned Client Identifier property


def test_3_1_2_10_keep_alive_one_and_a_half(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id="ka", version=5, keepalive=1, username="root", password=lake.PASSWORD)
    t0 = time.time()
    seen = r.expect_closed(timeout=10)
    elapsed = time.time() - t0
    assert disconnect_reason(seen) == 0x8D
    assert 1.4 <= elapsed < 3.5


def test_3_1_2_10_pings_keep_the_connection(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id="ka2", version=4, keepalive=1, username="root", password=lake.PASSWORD)
    for _ in range(4):
        time.sleep(0.6)
        r.send(b"\xc0\x00")
        assert r.read_packet()[0] == 13  # PINGRESP

"""MQTT 5.0 §1.5 data representation: Variable Byte Integer and UTF-8 strings."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawmqtt import Raw, connect, disconnect_reason, packet, props, publish, s, subscribe  # noqa: E402


def login(lake, version, cid="raw"):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id=cid, version=version, username="root", password=lake.PASSWORD)
    return r


def test_1_5_5_remaining_length_of_five_bytes_is_malformed(lake):
    r = login(lake, 5)
    r.send(b"\x30\xff\xff\xff\xff\x01")
    assert disconnect_reason(r.expect_closed()) == 0x81


def test_1_5_5_remaining_length_before_connect_closes(lake):
    r = Raw(*lake.host_port("mqtt"))
    r.send(b"\x10\xff\xff\xff\xff\x01")
    assert r.expect_closed() == []


def test_1_5_4_invalid_utf8_topic_v5(lake):
    r = login(lake, 5)
    r.send(publish(b"\xc0\xafbad", b"x", version=5))
    assert disconnect_reason(r.expect_closed()) == 0x81


def test_1_5_4_nul_in_topic_v311_closes(lake):
    r = login(lake, 4)
    r.send(publish(b"a\x00b", b"x"))
    assert r.expect_closed() == []  # 3.1.1 §4.8: close without a reply


def test_1_5_4_surrogate_in_filter_v5(lake):
    r = login(lake, 5)
    r.send(subscribe(b"a/\xed\xa0\x80", 0, version=5))
    assert disconnect_reason(r.expect_closed()) == 0x81


def test_broker_still_serves_after_bad_input(lake):
    for _ in range(3):
        r = Raw(*lake.host_port("mqtt"))
        r.send(b"\x30\xff\xff\xff\xff\x01")
        r.expect_closed()
    good = login(lake, 5, "after")
    good.send(subscribe("ok/#", 0, version=5))
    assert good.read_packet()[0] == 9
    good.send(publish("ok/1", b"fine", version=5))
    t, _, body = good.read_packet()
    assert t == 3 and body.endswith(b"fine")

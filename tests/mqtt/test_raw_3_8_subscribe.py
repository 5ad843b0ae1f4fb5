"""MQTT 5.0 §3.8 SUBSCRIBE: reserved bits, invalid filters, options, shared subscriptions."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawmqtt import Raw, disconnect_reason, publish, subscribe  # noqa: E402


def login(lake, version=5, cid="raw"):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id=cid, version=version, username="root", password=lake.PASSWORD)
    return r


def test_3_8_1_reserved_header_flags(lake):
    r = login(lake)
    r.send(subscribe("a", 0, version=5, header=0x80))
    assert disconnect_reason(r.expect_closed()) == 0x81
    r = login(lake, version=4)
    r.send(subscribe("a", 0, version=4, header=0x80))
    assert r.expect_closed() == []


def test_3_8_3_1_reserved_option_bits(lake):
    r = login(lake)
    r.send(subscribe("a", version=5, options=0xC0))
    assert disconnect_reason(r.expect_closed()) == 0x81
    r = login(lake, version=4)
    r.send(subscribe("a", version=4, options=0x04))  # no-local bit is reserved in 3.1.1
    assert r.expect_closed() == []


def test_3_8_3_qos_3_in_options(lake):
    r = login(lake)
    r.send(subscribe("a", version=5, options=0x03))
    assert disconnect_reason(r.expect_closed()) == 0x81


def test_4_7_invalid_filter_gets_failure_code(lake):
    r = login(lake)
    r.send(subscribe("a/#/b", 1, version=5))
    t, _, body = r.read_packet()
    assert t == 9 and body[-1] == 0x8F
    r3 = login(lake, version=4, cid="v3")
    r3.send(subscribe("a+", 1, version=4))
    t, _, body = r3.read_packet()
    assert t == 9 and body[-1] == 0x80


def test_3_8_3_1_no_local_on_shared_is_protocol_error(lake):
    r = login(lake)
    r.send(subscribe("$share/g/a", version=5, options=0x04))
    assert disconnect_reason(r.expect_closed()) == 0x82


def test_3_3_1_3_retain_handling_2_sends_no_retained(lake):
    p = login(lake, cid="rp")
    p.send(publish("rh/t", b"kept", qos=1, retain=True, version=5))
    assert p.read_packet()[0] == 4
    r = login(lake, cid="rh")
    r.send(subscribe("rh/#", version=5, options=0x21))  # retain handling 2, QoS 1
    assert r.read_packet()[0] == 9
    r.send(subscribe("rh/t", version=5, options=0x01, packet_id=2))  # default: retained sent
    t, _, _ = r.read_packet()
    assert t == 9
    t, flags, body = r.read_packet()
    assert t == 3 and flags & 1 and body.endswith(b"kept")


def test_4_7_2_dollar_topics_not_matched_by_wildcards(lake):
    r = login(lake, cid="dollar")
    r.send(subscribe("#", version=5))
    assert r.read_packet()[0] == 9
    r.send(subscribe("+/x", version=5, packet_id=2))
    assert r.read_packet()[0] == 9
    p = login(lake, cid="dollar-pub")
    p.send(publish("$internal/x", b"hidden", version=5))
    p.send(publish("visible/x", b"shown", version=5))
    t, _, body = r.read_packet()
    assert body.endswith(b"shown")

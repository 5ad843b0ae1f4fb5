"""MQTT 5.0 §3.3 PUBLISH: flags, topic names, topic aliases, maximum packet size."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawmqtt import Raw, disconnect_reason, props, publish, subscribe  # noqa: E402


def login(lake, version=5, cid="raw", connect_props=b""):
    r = Raw(*lake.host_port("mqtt"))
    r.connect(client_id=cid, version=version, username="root", password=lake.PASSWORD,
              connect_props=connect_props)
    return r


def test_3_3_1_2_qos_3_is_malformed(lake):
    r = login(lake)
    r.send(publish("a", b"x", flags=0x06, version=5, qos=0))
    assert disconnect_reason(r.expect_closed()) == 0x81


def test_3_3_1_1_dup_on_qos0_is_malformed(lake):
    r = login(lake)
    r.send(publish("a", b"x", flags=0x08, version=5))
    assert disconnect_reason(r.expect_closed()) == 0x81


def test_3_3_2_1_wildcard_in_topic_name(lake):
    for topic in ("a/+/b", "a/#"):
        r = login(lake)
        r.send(publish(topic, b"x", version=5))
        assert disconnect_reason(r.expect_closed()) == 0x90


def test_3_3_2_3_4_topic_alias_zero(lake):
    r = login(lake)
    r.send(publish("a", b"x", version=5, pub_props=b"\x23\x00\x00"))
    assert disconnect_reason(r.expect_closed()) == 0x94


def test_3_3_2_3_4_topic_alias_above_maximum(lake):
    r = login(lake)
    r.send(publish("a", b"x", version=5, pub_props=b"\x23\xff\xff"))
    assert disconnect_reason(r.expect_closed()) == 0x94


def test_3_3_2_3_4_unknown_alias_without_topic(lake):
    r = login(lake)
    r.send(publish("", b"x", version=5, pub_props=b"\x23\x00\x05"))
    assert disconnect_reason(r.expect_closed()) == 0x82


def test_3_3_2_3_4_topic_alias_both_ways(lake):
    # The subscriber allows 5 aliases: the broker sends the topic once, then only the alias.
    sub = login(lake, cid="alias-sub", connect_props=b"\x22\x00\x05")
    sub.send(subscribe("al/#", 0, version=5))
    assert sub.read_packet()[0] == 9
    pub = login(lake, cid="alias-pub")
    pub.send(publish("al/x", b"1", version=5, pub_props=b"\x23\x00\x01"))
    pub.send(publish("", b"2", version=5, pub_props=b"\x23\x00\x01"))  # alias only
    t1, _, b1 = sub.read_packet()
    t2, _, b2 = sub.read_packet()
    assert t1 == 3 and b1[2:6] == b"al/x" and b1.endswith(b"1")
    assert t2 == 3 and b2[:2] == b"\x00\x00" and b2.endswith(b"2")  # empty topic + alias


def test_3_1_2_11_4_packet_larger_than_maximum(lake):
    r = login(lake)
    # Only the start of the packet: the fixed header already announces more than the maximum
    # packet size, and the broker must answer from that alone. (Sending all 1 MiB races the
    # broker's close and the client's write, which then fails with EPIPE.)
    r.send(publish("big", b"x" * (1 << 20), version=5)[:4096])
    assert disconnect_reason(r.expect_closed()) == 0x95


def test_3_3_4_puback_reason_no_subscribers(lake):
    r = login(lake)
    r.send(publish("nobody/listens", b"x", qos=1, packet_id=3, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and body[:2] == b"\x00\x03" and body[2] == 0x10


def test_3_3_qos2_flow_and_pubrel_unknown_id(lake):
    r = login(lake)
    r.send(publish("q2", b"x", qos=2, packet_id=7, version=5))
    t, _, body = r.read_packet()
    assert t == 5 and body[:2] == b"\x00\x07"
    r.send(b"\x62\x02\x00\x07")  # PUBREL
    t, _, body = r.read_packet()
    assert t == 7 and body[:2] == b"\x00\x07"
    r.send(b"\x62\x02\x00\x08")  # PUBREL for an id never received
    t, _, body = r.read_packet()
    assert t == 7 and body[2] == 0x92
    r.send(b"\x60\x02\x00\x09")  # PUBREL with reserved flags 0 instead of 2
    assert disconnect_reason(r.expect_closed()) == 0x81

"""Issue #7: a reading whose record a rule could not append to its delivery stream is not
acknowledged as taken (docs/iot.md "When a rule cannot take a message").

A stream whose write-ahead log is tiny (tarn.yaml `streams.wal_quota_mb: 1`) and never flushes
(900 s, 128 MB) fills up; then:
  - MQTT 5 (paho): PUBACK reason code 0x97 Quota exceeded;
  - MQTT 3.1.1 (raw packets, and paho): no PUBACK; the acknowledgements before it are sent, then
    the connection is closed, so the client resends after reconnecting;
  - a rule whose error action takes the failure over gives an ordinary PUBACK (AWS's model);
and after kill -9 and a restart, exactly the acknowledged readings land.
"""
import glob
import json
import os
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mqtt"))
import mqttutil as mu  # noqa: E402
import rawmqtt  # noqa: E402
from harness import Lake  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/tarn"
PAD = "x" * 12000


class ReasonClient(mqtt.Client):
    """paho 1.6 does not hand the MQTT 5 PUBACK reason code to on_publish; keep it per mid."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.reasons = {}
        self.acked = threading.Condition()

    def _handle_pubackcomp(self, cmd):
        body = self._in_packet["packet"]
        mid = struct.unpack("!H", body[:2])[0]
        with self.acked:
            self.reasons[mid] = body[2] if len(body) > 2 else 0
            self.acked.notify_all()
        return super()._handle_pubackcomp(cmd)

    def publish_and_wait(self, topic, payload, timeout=10):
        info = self.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.reasons, timeout), "no PUBACK"
            return self.reasons[info.mid]


@pytest.fixture
def full_lake():
    lake = Lake(config="streams:\n  wal_quota_mb: 1\n  wal_segment_mb: 1\n")
    lake.start()
    fh = lake.boto3_client("firehose")
    fh.create_delivery_stream(
        DeliveryStreamName="full", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
            "BufferingHints": {"IntervalInSeconds": 900, "SizeInMBs": 128}})
    iot = lake.boto3_client("iot")
    firehose = {"firehose": {"deliveryStreamName": "full", "roleArn": ROLE, "separator": "\n"}}
    iot.create_topic_rule(ruleName="to_full", topicRulePayload={
        "sql": "SELECT * FROM 'dev/+/data'", "actions": [firehose]})
    iot.create_topic_rule(ruleName="to_full_handled", topicRulePayload={
        "sql": "SELECT * FROM 'handled/+/data'", "actions": [firehose],
        "errorAction": {"republish": {"topic": "errors/handled", "roleArn": ROLE}}})
    yield lake
    lake.stop()
    lake.cleanup()


def landed(lake):
    out = []
    for p in glob.glob(os.path.join(lake.data_dir, "objects", "landing", "iot", "full", "**", "full-*"),
                       recursive=True):
        with open(p) as f:
            out += [json.loads(x)["n"] for x in f.read().splitlines()]
    return sorted(out)


def raw_311(lake, client_id):
    r = rawmqtt.Raw(*lake.host_port("mqtt"))
    r.connect(client_id=client_id, version=4, username="root", password=lake.PASSWORD)
    return r


def test_a_full_stream_refuses_the_puback_and_only_acknowledged_readings_land(full_lake):
    lake = full_lake
    c = ReasonClient(client_id="dev-5", protocol=mqtt.MQTTv5)
    c.username_pw_set("root", lake.PASSWORD)
    host, port = lake.host_port("mqtt")
    c.connect(host, port)
    c.loop_start()
    acked, refused = [], []
    try:
        for n in range(200):  # 200 × 12 KB ≈ 2.4 MB against a 1 MiB log
            reason = c.publish_and_wait("dev/5/data", json.dumps({"n": n, "pad": PAD}))
            (acked if reason < 0x80 else refused).append((n, reason))
            if len(refused) >= 5:
                break
        assert acked, "nothing was taken before the log filled"
        assert refused, "the full log never refused a reading"
        # MQTT 5.0 §3.4.2.1: 0x97 Quota exceeded, and once full it stays full.
        assert {r for _, r in refused} == {0x97}, refused
        assert max(n for n, _ in acked) < min(n for n, _ in refused)

        # An error action that takes the failure over: the message is handled, ordinary PUBACK.
        watcher = mu.make_client(lake, "watcher", 5)
        mu.start(watcher, lake, version=5)
        mu.subscribe(watcher, "errors/#", 1)
        assert c.publish_and_wait("handled/5/data", json.dumps({"n": -1, "pad": PAD})) < 0x80
        doc = json.loads(mu.collect(watcher, 1)[0].payload)
        assert doc["ruleName"] == "to_full_handled"
        assert doc["failures"][0]["failedResource"] == "full"
        assert "full" in doc["failures"][0]["errorMessage"]
        watcher.disconnect()
        watcher.loop_stop()
    finally:
        c.disconnect()
        c.loop_stop()

    # MQTT 3.1.1, raw packets: PUBACK 1 (no rule reads 'plain/…'), PUBLISH 2 is refused — no
    # PUBACK, the connection closes — and PUBACK 3 is not sent either (the client resends).
    r = raw_311(lake, "dev-6")
    r.send(rawmqtt.publish("plain/x", b"{}", qos=1, packet_id=1))
    r.send(rawmqtt.publish("dev/6/data", json.dumps({"n": 1000, "pad": PAD}).encode(), qos=1, packet_id=2))
    r.send(rawmqtt.publish("plain/y", b"{}", qos=1, packet_id=3))
    seen = r.expect_closed(timeout=10)
    assert [(t, struct.unpack("!H", b[:2])[0]) for t, _, b in seen] == [(4, 1)], seen
    r.close()

    # paho 3.1.1 sees its connection closed and resends the reading with DUP after reconnecting:
    # refused again while the log is full (never acknowledged, never lost).
    disconnects = []
    p = mu.make_client(lake, "dev-7", 4)
    p.on_disconnect = lambda *a: disconnects.append(time.time())
    p.reconnect_delay_set(0.1, 0.5)
    mu.start(p, lake)
    info = p.publish("dev/7/data", json.dumps({"n": 2000, "pad": PAD}), qos=1)
    deadline = time.time() + 10
    while len(disconnects) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(disconnects) >= 2, "the resend after reconnecting was not refused too"
    assert not info.is_published()
    p.disconnect()
    p.loop_stop()

    # kill -9 with the log full, restart, stop gracefully (delivers): exactly the readings that
    # were acknowledged land, none that were refused.
    lake.kill()
    lake.start()
    assert lake.stop() == 0
    assert landed(lake) == [n for n, _ in acked]

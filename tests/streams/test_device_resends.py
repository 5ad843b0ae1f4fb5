"""Issue #10: a device's resend of a reading already in the delivery stream lands once
(docs/streams.md "Exactly once from devices") — after a dropped connection, with the original
still in flight or already durable, and after a kill -9; while a new message reusing the packet
id (DUP=0), or a DUP with another payload, is always taken.

Raw MQTT packets, so that the DUP flag, packet ids and the moment the connection drops are
exactly what the test says; the landing zone is read back with boto3."""
import json
import os
import struct
import sys
import time

from botocore.config import Config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mqtt"))
import rawmqtt  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/tarn"


def create_stream_and_rule(lake):
    # IntervalInSeconds 0 (AWS allows it; this botocore's model still says 60 is the minimum).
    fh = lake.boto3_client("firehose", config=Config(retries={"max_attempts": 1},
                                                      parameter_validation=False))
    fh.create_delivery_stream(
        DeliveryStreamName="dd", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
            "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1}})
    # timestamp(): the rule's output differs on a resend; only the device's payload does not.
    lake.boto3_client("iot").create_topic_rule(ruleName="dd", topicRulePayload={
        "sql": "SELECT *, timestamp() AS ts FROM 'dd/+/r'",
        "actions": [{"firehose": {"deliveryStreamName": "dd", "roleArn": ROLE, "separator": "\n"}}]})


def rows(lake):
    s3 = lake.boto3_client("s3")
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="landing", Prefix="iot/dd/"):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket="landing", Key=o["Key"])["Body"].read().decode()
            out += [json.loads(x)["m"] for x in body.splitlines() if x]
    return sorted(out)


def settle(lake, want, timeout=20):
    """Waits for `want` rows, then a little longer: no extra row may follow."""
    deadline = time.time() + timeout
    got = rows(lake)
    while got != want and time.time() < deadline:
        time.sleep(0.2)
        got = rows(lake)
    time.sleep(1.0)
    return rows(lake)


def client(lake, version=4):
    r = rawmqtt.Raw(*lake.host_port("mqtt"))
    r.connect(client_id="dev-1", version=version, username="root", password=lake.PASSWORD)
    return r


def pub(m, packet_id, dup=False, version=4):
    flags = 0x02 | (0x08 if dup else 0)  # QoS 1
    return rawmqtt.publish("dd/dev-1/r", json.dumps({"m": m}).encode(), qos=1, packet_id=packet_id,
                           version=version, flags=flags)


def puback_ids(r, n):
    ids = []
    while len(ids) < n:
        p = r.read_packet(timeout=10)
        assert p is not None, "connection closed after PUBACKs %s" % ids
        if p[0] == 4:
            ids.append(struct.unpack("!H", p[2][:2])[0])
    return ids


def test_resends_after_a_dropped_connection_and_a_kill_land_once(lake):
    create_stream_and_rule(lake)
    # The PUBLISH goes out and the connection drops at once, before the PUBACK could come back
    # (the original may still be in the rules engine or the WAL's group commit).
    r = client(lake)
    r.send(pub("a", 5))
    r.close()
    r = client(lake)
    r.send(pub("a", 5, dup=True))   # the device's resend
    assert puback_ids(r, 1) == [5]
    r.close()
    assert settle(lake, ["a"]) == ["a"]

    # Long after: the record is delivered (IntervalInSeconds 0); a late resend is still known.
    r = client(lake, version=5)
    r.send(pub("a", 5, dup=True, version=5))
    # Not DUP: a new message that reuses id 5 once the first was acknowledged (§2.2.1) —
    # taken, even with the same payload; so is a DUP whose payload is not the original's.
    r.send(pub("a", 5, version=5))
    r.send(pub("b", 5, dup=True, version=5))
    r.send(pub("c", 6, version=5))
    assert puback_ids(r, 4) == [5, 5, 5, 6]
    r.close()
    assert settle(lake, ["a", "a", "b", "c"]) == ["a", "a", "b", "c"]

    # kill -9: the index is rebuilt from the log and the origins snapshot; resends of what is
    # already durable still land once.
    lake.kill()
    lake.start()
    r = client(lake)
    r.send(pub("b", 5, dup=True))
    r.send(pub("c", 6, dup=True))
    r.send(pub("d", 7, dup=True))   # never seen before: a DUP can be a first arrival too
    assert puback_ids(r, 3) == [5, 6, 7]
    r.close()
    assert settle(lake, ["a", "a", "b", "c", "d"]) == ["a", "a", "b", "c", "d"]
    metrics = lake_metrics(lake)
    assert 'tarn_firehose_duplicate_records_total{stream="dd"} 2' in metrics, metrics[-2000:]


def lake_metrics(lake):
    import urllib.request
    with urllib.request.urlopen(lake.url() + "/metrics", timeout=10) as f:
        return f.read().decode()


def test_a_resend_is_recognised_after_its_segment_was_delivered_and_deleted():
    """IntervalInSeconds 0 delivers at once, and with 1 MiB segments the early records' segment
    is deleted long before the device's resend; the origins snapshot still knows them."""
    from harness import Lake
    lake = Lake(config="streams:\n  wal_segment_mb: 1\n")
    lake.start()
    try:
        create_stream_and_rule(lake)
        r = client(lake)
        pad = "x" * 400
        n = 4000  # ~2 MB of records: the first segment fills and is delivered
        for i in range(n):
            r.send(rawmqtt.publish("dd/dev-1/r", json.dumps({"m": "n%d" % i, "pad": pad}).encode(),
                                   qos=1, packet_id=1 + i % 60000, flags=0x02))
        assert len(puback_ids(r, n)) == n
        r.close()
        wal = os.path.join(lake.data_dir, "wal", "dd")
        first_segment = os.path.join(wal, "%020d.wal" % 1)

        def deleted():  # the snapshot is written before the segment goes
            return os.path.exists(os.path.join(wal, "origins")) and not os.path.exists(first_segment)
        deadline = time.time() + 30
        while time.time() < deadline and not deleted():
            time.sleep(0.2)
        assert deleted(), os.listdir(wal)
        lake.kill()
        lake.start()
        # The resend of reading 0 (packet id 1), whose record's segment is gone.
        r = client(lake)
        r.send(rawmqtt.publish("dd/dev-1/r", json.dumps({"m": "n0", "pad": pad}).encode(),
                               qos=1, packet_id=1, flags=0x02 | 0x08))
        assert puback_ids(r, 1) == [1]
        r.close()
        want = sorted("n%d" % i for i in range(n))
        got = settle(lake, want, timeout=60)
        assert len(got) == n and got.count("n0") == 1, (len(got), got.count("n0"))
        assert got == want
        assert 'tarn_firehose_duplicate_records_total{stream="dd"} 1' in lake_metrics(lake)
    finally:
        lake.stop()
        lake.cleanup()

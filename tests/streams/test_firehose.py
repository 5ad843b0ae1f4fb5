"""Delivery streams (Firehose_20150804.* JSON 1.1) driven by the real awscli and boto3: the control
plane, PutRecord/PutRecordBatch limits and per-record failures, JSON → Parquet with a Glue table's
schema read back by DuckDB (`tarn sql-local`) with hive_partitioning, dynamic partitioning by
device, bad records in the error prefix, and a kill -9 crash test: every acknowledged record lands
exactly once."""
import base64
import csv
import glob
import io
import json
import os
import socket
import subprocess
import threading
import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from harness import Lake, tarn_binary

ROLE = "arn:aws:iam::123456789012:role/firehose"


def firehose(lake):
    # Python's botocore (1.29) still has IntervalInSeconds >= 60 in its model; AWS (and Tarn)
    # accept 0 now, so client-side validation is off for the data-plane client.
    cfg = Config(retries={"max_attempts": 1}, parameter_validation=False)
    return lake.boto3_client("firehose", config=cfg)


def aws_json(lake, *args):
    r = lake.aws(*args, "--output", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def sql_local(query):
    r = subprocess.run([tarn_binary(), "sql-local", query], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout)))


def landing(lake):
    return os.path.join(lake.data_dir, "objects", "landing")


def wait_for(pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in %ss" % timeout)


def create_raw_stream(lake, name, extra=None):
    dest = {
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
        "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
        "ProcessingConfiguration": {"Enabled": True,
                                    "Processors": [{"Type": "AppendDelimiterToRecord"}]},
    }
    dest.update(extra or {})
    return aws_json(lake, "firehose", "create-delivery-stream", "--delivery-stream-name", name,
                    "--delivery-stream-type", "DirectPut",
                    "--extended-s3-destination-configuration", json.dumps(dest))


def test_control_plane_with_awscli_and_boto3(lake):
    out = create_raw_stream(lake, "events")
    assert out["DeliveryStreamARN"] == "arn:aws:firehose:us-east-1:123456789012:deliverystream/events"
    fh = firehose(lake)
    d = fh.describe_delivery_stream(DeliveryStreamName="events")["DeliveryStreamDescription"]
    assert d["DeliveryStreamStatus"] == "ACTIVE" and d["VersionId"] == "1"
    ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["BufferingHints"] == {"IntervalInSeconds": 0, "SizeInMBs": 1}
    # Tarn's default prefix is Hive-style (DESIGN.md §3).
    assert ext["Prefix"].startswith("iot/events/year=!{timestamp:yyyy}/month=")
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == ["events"]

    # UpdateDestination: version check, merge, new version.
    with pytest.raises(ClientError) as e:
        fh.update_destination(DeliveryStreamName="events", CurrentDeliveryStreamVersionId="7",
                              DestinationId="destinationId-000000000001",
                              ExtendedS3DestinationUpdate={"CompressionFormat": "GZIP"})
    assert e.value.response["Error"]["Code"] == "ConcurrentModificationException"
    fh.update_destination(DeliveryStreamName="events", CurrentDeliveryStreamVersionId="1",
                          DestinationId=d["Destinations"][0]["DestinationId"],
                          ExtendedS3DestinationUpdate={"CompressionFormat": "GZIP"})
    d = fh.describe_delivery_stream(DeliveryStreamName="events")["DeliveryStreamDescription"]
    assert d["VersionId"] == "2"
    assert d["Destinations"][0]["ExtendedS3DestinationDescription"]["CompressionFormat"] == "GZIP"

    # Tags.
    fh.tag_delivery_stream(DeliveryStreamName="events", Tags=[{"Key": "team", "Value": "iot"},
                                                              {"Key": "env", "Value": "test"}])
    tags = fh.list_tags_for_delivery_stream(DeliveryStreamName="events")["Tags"]
    assert tags == [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "iot"}]
    fh.untag_delivery_stream(DeliveryStreamName="events", TagKeys=["env"])
    assert fh.list_tags_for_delivery_stream(DeliveryStreamName="events")["Tags"] == [
        {"Key": "team", "Value": "iot"}]

    # What Tarn cannot honour is refused, not ignored.
    for bad in ({"CompressionFormat": "Snappy"},
                {"Prefix": "x/!{partitionKeyFromLambda:id}/", "ErrorOutputPrefix": "e/"},
                {"EncryptionConfiguration": {"KMSEncryptionConfig": {"AWSKMSKeyARN": "arn:aws:kms:us-east-1:123456789012:key/x"}}}):
        dest = {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing"}
        dest.update(bad)
        with pytest.raises(ClientError) as e:
            fh.create_delivery_stream(DeliveryStreamName="bad",
                                      ExtendedS3DestinationConfiguration=dest)
        assert e.value.response["Error"]["Code"] == "InvalidArgumentException", bad
    with pytest.raises(ClientError) as e:
        fh.start_delivery_stream_encryption(DeliveryStreamName="events")
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert "not supported" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        create_raw_stream_boto(fh, "events")
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"

    fh.delete_delivery_stream(DeliveryStreamName="events")
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == []
    with pytest.raises(ClientError) as e:
        fh.describe_delivery_stream(DeliveryStreamName="events")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def create_raw_stream_boto(fh, name):
    return fh.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing"})


def test_put_record_batch_limits_and_raw_delivery(lake):
    create_raw_stream(lake, "raw")
    fh = firehose(lake)
    r = fh.put_record(DeliveryStreamName="raw", Record={"Data": b'{"n":0}'})
    assert r["RecordId"] and r["Encrypted"] is False
    recs = [{"Data": json.dumps({"n": i}).encode()} for i in range(1, 500)]
    recs.insert(3, {"Data": b"x" * (1000 * 1024 + 1)})  # over 1000 KiB: fails alone
    r = fh.put_record_batch(DeliveryStreamName="raw", Records=recs)
    assert r["FailedPutCount"] == 1
    assert r["RequestResponses"][3]["ErrorCode"] == "InvalidArgumentException"
    assert all("RecordId" in x for i, x in enumerate(r["RequestResponses"]) if i != 3)
    with pytest.raises(ClientError) as e:
        fh.put_record_batch(DeliveryStreamName="raw",
                            Records=[{"Data": b"a"}] * 501)
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        fh.put_record(DeliveryStreamName="nope", Record={"Data": b"a"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # awscli too (v1 base64-encodes blob members itself).
    r = lake.aws("firehose", "put-record-batch", "--delivery-stream-name", "raw", "--records",
                 json.dumps([{"Data": '{"n":500}'}]), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["FailedPutCount"] == 0

    def landed():
        lines = []
        for f in glob.glob(os.path.join(landing(lake), "iot", "raw", "year=*", "month=*", "day=*",
                                        "hour=*", "raw-*")):
            with open(f) as fp:
                lines += fp.read().splitlines()
        return lines if len(lines) >= 501 else None
    lines = wait_for(landed)
    assert sorted(json.loads(x)["n"] for x in lines) == list(range(501))

    # Stream metrics on /metrics.
    import urllib.request
    metrics = urllib.request.urlopen(lake.url() + "/metrics").read().decode()
    assert 'tarn_firehose_incoming_records_total{stream="raw"} 501' in metrics
    assert 'tarn_firehose_delivered_records_total{stream="raw"} 501' in metrics
    assert 'tarn_firehose_data_freshness_seconds{stream="raw"}' in metrics


def test_parquet_conversion_dynamic_partitioning_and_error_prefix(lake):
    glue = lake.boto3_client("glue")
    glue.create_database(DatabaseInput={"Name": "iot"})
    glue.create_table(DatabaseName="iot", TableInput={
        "Name": "readings",
        "StorageDescriptor": {"Columns": [{"Name": "device", "Type": "string"},
                                          {"Name": "temp", "Type": "double"},
                                          {"Name": "seq", "Type": "bigint"},
                                          {"Name": "ok", "Type": "boolean"}],
                              "Location": "s3://landing/iot/readings/"},
        "PartitionKeys": [{"Name": "device", "Type": "string"}]})
    # A data column also named as a partition would clash in hive_partitioning: keep it apart.
    glue.update_table(DatabaseName="iot", TableInput={
        "Name": "readings",
        "StorageDescriptor": {"Columns": [{"Name": "temp", "Type": "double"},
                                          {"Name": "seq", "Type": "bigint"},
                                          {"Name": "ok", "Type": "boolean"}],
                              "Location": "s3://landing/iot/readings/"},
        "PartitionKeys": [{"Name": "device", "Type": "string"}]})
    dest = {
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
        "Prefix": "iot/readings/device=!{partitionKeyFromQuery:device}/",
        "ErrorOutputPrefix": "errors/readings/!{firehose:error-output-type}/",
        "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 64},
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {"Enabled": True, "Processors": [{
            "Type": "MetadataExtraction",
            "Parameters": [{"ParameterName": "MetadataExtractionQuery",
                            "ParameterValue": "{device: .device}"},
                           {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]},
        "DataFormatConversionConfiguration": {
            "Enabled": True,
            "SchemaConfiguration": {"DatabaseName": "iot", "TableName": "readings",
                                    "RoleARN": ROLE},
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
        },
    }
    fh = firehose(lake)
    fh.create_delivery_stream(DeliveryStreamName="readings", DeliveryStreamType="DirectPut",
                              ExtendedS3DestinationConfiguration=dest)
    sent = []
    for i in range(300):
        rec = {"device": "dev-%d" % (i % 3), "TEMP": 20 + i / 10, "seq": str(i), "ok": i % 2 == 0}
        sent.append(rec)
    batch = [{"Data": json.dumps(r).encode()} for r in sent]
    bad = [{"Data": b'{"device":"dev-0","temp":"hot","seq":1}'},   # not a number
           {"Data": b'{"device":"dev-1","seq":1.5}'}]               # not an integer
    r = fh.put_record_batch(DeliveryStreamName="readings", Records=batch[:150] + bad[:1])
    assert r["FailedPutCount"] == 0
    r = fh.put_record_batch(DeliveryStreamName="readings", Records=batch[150:] + bad[1:])
    assert r["FailedPutCount"] == 0

    base = os.path.join(landing(lake), "iot", "readings")

    def rows():
        files = glob.glob(os.path.join(base, "device=*", "*.parquet"))
        if not files:
            return None
        got = sql_local("SELECT device, temp, seq, ok FROM read_parquet('%s/device=*/*.parquet', "
                        "hive_partitioning=true) ORDER BY seq" % base)
        return got if len(got) >= 300 else None
    got = wait_for(rows)
    assert len(got) == 300
    for rec, row in zip(sent, got):
        assert row["device"] == rec["device"]
        assert float(row["temp"]) == rec["TEMP"]
        assert int(row["seq"]) == int(rec["seq"])
        assert row["ok"] == ("true" if rec["ok"] else "false")
    assert sorted(os.listdir(base)) == ["device=dev-0", "device=dev-1", "device=dev-2"]

    def errors():
        out = []
        for f in glob.glob(os.path.join(landing(lake), "errors", "readings",
                                        "format-conversion-failed", "readings-*")):
            with open(f) as fp:
                out += [json.loads(x) for x in fp.read().splitlines()]
        return out if len(out) >= 2 else None
    errs = wait_for(errors)
    raw = sorted(base64.b64decode(e["rawData"]) for e in errs)
    assert raw == sorted([bad[0]["Data"], bad[1]["Data"]])
    assert all(e["errorCode"].startswith("DataFormatConversion.") and e["errorMessage"] for e in errs)

    # The partitions were registered in the catalog for engines that read it.
    parts = glue.get_partitions(DatabaseName="iot", TableName="readings")["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == ["dev-0", "dev-1", "dev-2"]
    assert {p["StorageDescriptor"]["Location"] for p in parts} == {
        "s3://landing/iot/readings/device=dev-%d/" % i for i in range(3)}


@pytest.mark.parametrize("fmt", ["raw", "parquet", "partitioned"])
def test_kill_9_under_load_loses_and_duplicates_nothing(fmt):
    """boto3 producers under load; the server is killed with SIGKILL several times mid-stream
    (mid-append, mid-Parquet-write, mid-rename: wherever it happens to be) and restarted on the
    same data directory. Every acknowledged record lands exactly once; a record whose call failed
    (the server died under it) lands at most once. "partitioned": dynamic partitioning into four
    partitions whose flushes run in parallel on the flush pool.

    Besides the boto3 producers, MQTT devices publish QoS 1 readings that a rule sends to the same
    stream: a PUBACK is an acknowledgement too (the broker sends it only once the record is in
    the stream's fsynced log), and those readings must land exactly once as well. Nothing is
    retransmitted after a kill, so anything landed twice would be Tarn's duplicate."""
    lake = Lake(env={"TARN_MQTT_ALLOW_ANONYMOUS": "1"})
    lake.start()
    try:
        if fmt == "raw":
            create_raw_stream(lake, "crash")
        elif fmt == "partitioned":
            create_raw_stream(lake, "crash", {
                "Prefix": "iot/crash/p=!{partitionKeyFromQuery:p}/",
                "ErrorOutputPrefix": "errors/crash/",
                "DynamicPartitioningConfiguration": {"Enabled": True},
                "ProcessingConfiguration": {"Enabled": True, "Processors": [
                    {"Type": "AppendDelimiterToRecord"},
                    {"Type": "MetadataExtraction", "Parameters": [
                        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{p: .p}"},
                        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]}})
        else:
            glue = lake.boto3_client("glue")
            glue.create_database(DatabaseInput={"Name": "crash"})
            glue.create_table(DatabaseName="crash", TableInput={
                "Name": "ids", "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "string"}]}})
            create_raw_stream(lake, "crash", {
                "ProcessingConfiguration": {"Enabled": False},
                "DataFormatConversionConfiguration": {
                    "SchemaConfiguration": {"DatabaseName": "crash", "TableName": "ids"},
                    "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                    "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}})
        # The rule adds no separator: the stream's processors decide the record's framing.
        lake.boto3_client("iot").create_topic_rule(ruleName="crash_devices", topicRulePayload={
            "sql": "SELECT * FROM 'crash/#'", "awsIotSqlVersion": "2016-03-23",
            "actions": [{"firehose": {"roleArn": ROLE, "deliveryStreamName": "crash"}}]})
        acked, attempted = set(), set()
        mqtt_acked = set()
        lock = threading.Lock()
        stop = threading.Event()
        endpoint = {"url": lake.url(), "mqtt": lake.host_port("mqtt")}

        def mqtt_device(pid):
            """MQTT 3.1.1 over a plain socket: CONNECT (clean session), then windows of 20 QoS 1
            PUBLISHes; a record counts as acknowledged when its PUBACK arrives."""
            n, k = 0, 0

            def packet(h, body):
                out, ln = bytes([h]), len(body)
                while True:
                    b, ln = ln & 0x7F, ln >> 7
                    out += bytes([b | (0x80 if ln else 0)])
                    if not ln:
                        return out + body

            def read_packet(sock):
                def exact(n):
                    buf = b""
                    while len(buf) < n:
                        chunk = sock.recv(n - len(buf))
                        if not chunk:
                            raise OSError("closed")
                        buf += chunk
                    return buf
                h = exact(1)[0]
                ln, mult = 0, 1
                while True:
                    b = exact(1)[0]
                    ln += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                return h, exact(ln)

            def s16(b):
                return len(b).to_bytes(2, "big") + b

            while not stop.is_set():
                sock = None
                try:
                    sock = socket.create_connection(endpoint["mqtt"], timeout=10)
                    sock.sendall(packet(0x10, s16(b"MQTT") + bytes([4, 0x02, 0, 60]) +
                                        s16(b"crash-device-%d" % pid)))
                    h, body = read_packet(sock)
                    assert h >> 4 == 2 and body[1] == 0, body
                    while not stop.is_set():
                        window = {}
                        for _ in range(20):
                            k = k % 65535 + 1
                            rid = "m%d-%d" % (pid, n)
                            n += 1
                            window[k] = rid
                            with lock:
                                attempted.add(rid)
                            payload = json.dumps({"id": rid, "p": hash(rid) % 4}).encode()
                            sock.sendall(packet(0x32, s16(b"crash/dev%d" % pid) +
                                                k.to_bytes(2, "big") + payload))
                        while window:
                            h, body = read_packet(sock)
                            if h >> 4 == 4:
                                rid = window.pop(int.from_bytes(body[:2], "big"))
                                with lock:
                                    acked.add(rid)
                                    mqtt_acked.add(rid)
                except (OSError, AssertionError):
                    time.sleep(0.05)
                finally:
                    if sock:
                        sock.close()

        def producer(pid):
            import boto3
            session = boto3.session.Session()  # boto3's default session is not thread-safe
            n = 0
            client, url = None, None
            while not stop.is_set():
                if client is None or url != endpoint["url"]:
                    url = endpoint["url"]
                    client = session.client(
                        "firehose", endpoint_url=url, aws_access_key_id=Lake.ACCESS_KEY,
                        aws_secret_access_key=Lake.SECRET_KEY, region_name=Lake.REGION,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2,
                                      read_timeout=10, parameter_validation=False))
                ids = ["p%d-%d" % (pid, n + i) for i in range(20)]
                n += 20
                with lock:
                    attempted.update(ids)
                try:
                    r = client.put_record_batch(
                        DeliveryStreamName="crash",
                        Records=[{"Data": json.dumps({"id": i, "p": hash(i) % 4}).encode()}
                                 for i in ids])
                except Exception:
                    time.sleep(0.05)
                    continue
                with lock:
                    for i, resp in zip(ids, r["RequestResponses"]):
                        if "RecordId" in resp:
                            acked.add(i)

        threads = [threading.Thread(target=producer, args=(p,)) for p in range(4)]
        threads += [threading.Thread(target=mqtt_device, args=(p,)) for p in range(2)]
        for t in threads:
            t.start()
        for _ in range(5):
            before = len(acked)
            wait_for(lambda: len(acked) >= before + 1500, timeout=120)
            lake.kill()
            lake.start()
            endpoint["url"] = lake.url()
            endpoint["mqtt"] = lake.host_port("mqtt")
        wait_for(lambda: len(acked) >= 9000, timeout=120)
        stop.set()
        for t in threads:
            t.join()
        rc = lake.stop()  # graceful: flushes what is buffered
        assert rc == 0, lake.read_log()

        landed = []
        if fmt != "parquet":
            for f in glob.glob(os.path.join(landing(lake), "iot", "crash", "**", "crash-*"),
                               recursive=True):
                with open(f) as fp:
                    landed += [json.loads(x)["id"] for x in fp.read().splitlines()]
        else:
            landed = [r["id"] for r in sql_local(
                "SELECT id FROM read_parquet('%s/iot/crash/**/*.parquet')" % landing(lake))]
        counts = {}
        for i in landed:
            counts[i] = counts.get(i, 0) + 1
        dups = [i for i, c in counts.items() if c > 1]
        lost = acked - set(counts)
        assert not dups, "duplicated: %s" % dups[:10]
        assert not lost, "lost %d acknowledged records, e.g. %s" % (len(lost), sorted(lost)[:10])
        assert set(counts) <= attempted
        assert len(acked) >= 9000
        assert len(mqtt_acked) >= 200, "MQTT devices got only %d PUBACKs" % len(mqtt_acked)
        # Everything delivered: the WAL kept no more than its active segment.
        segs = glob.glob(os.path.join(lake.data_dir, "wal", "crash", "*.wal"))
        assert len(segs) <= 2, segs
    finally:
        lake.cleanup()

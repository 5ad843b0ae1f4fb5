"""Compaction of a delivery stream's small Parquet objects (docs/streams.md "Compaction").

At IntervalInSeconds 0 a partition writes a small object per flush; the stream merges them
(tarn.yaml `streams.compaction_files`), so the number of objects a query opens stays bounded,
and SQL over pgwire sees every acknowledged row exactly once — during the merges, and after a
kill -9 between a merged object's PUT and the deletion of its inputs (test hook
TARN_TEST_COMPACTION_KILL=after-put), whose leftovers the restart deletes."""
import json
import os
import re
import time
import urllib.request

import psycopg
from botocore.config import Config

from harness import Lake

ROLE = "arn:aws:iam::123456789012:role/firehose"
NAME = re.compile(r"^(.+)-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-(\d{20})-(\d{20})(\.[^-]*)$")


def dsn(lake):
    host, port = lake.host_port("sql")
    return "host=%s port=%d user=root password=%s dbname=tarn sslmode=disable connect_timeout=10" % (
        host, port, Lake.PASSWORD)


def firehose(lake):
    # IntervalInSeconds 0 is valid in Firehose since 2023; older botocore models say 60.
    return lake.boto3_client("firehose", config=Config(retries={"max_attempts": 1},
                                                       parameter_validation=False))


def create_stream(lake, name="small"):
    glue = lake.boto3_client("glue")
    glue.create_database(DatabaseInput={"Name": "iot"})
    glue.create_table(DatabaseName="iot", TableInput={
        "Name": name, "Parameters": {"classification": "parquet"},
        "StorageDescriptor": {"Columns": [{"Name": "n", "Type": "bigint"},
                                          {"Name": "pad", "Type": "string"}],
                              "Location": "s3://landing/iot/%s/" % name}})
    fh = firehose(lake)
    fh.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
            "Prefix": "iot/%s/" % name, "ErrorOutputPrefix": "errors/%s/" % name,
            "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 64},
            "DataFormatConversionConfiguration": {
                "Enabled": True,
                "SchemaConfiguration": {"DatabaseName": "iot", "TableName": name, "RoleARN": ROLE},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}})
    return fh


def objects(lake, name="small"):
    """(all Parquet keys of the stream's folder, the ones no other key's range covers)"""
    s3 = lake.boto3_client("s3")
    keys, token = [], None
    while True:
        kw = {"Bucket": "landing", "Prefix": "iot/%s/" % name}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(**kw)
        keys += [o["Key"] for o in r.get("Contents", []) if o["Key"].endswith(".parquet")]
        if not r.get("IsTruncated"):
            break
        token = r["NextContinuationToken"]
    ranges = {}
    for k in keys:
        m = NAME.match(k.rsplit("/", 1)[1])
        assert m, k
        ranges[k] = (int(m.group(2)), int(m.group(3)))
    live = [k for k in keys
            if not any(o != k and ranges[o][0] <= ranges[k][0] and ranges[k][1] <= ranges[o][1]
                       for o in keys)]
    return keys, live


def put_batch(fh, name, first, count):
    recs = [{"Data": json.dumps({"n": n, "pad": "x" * 40}).encode()} for n in range(first, first + count)]
    r = fh.put_record_batch(DeliveryStreamName=name, Records=recs)
    assert r["FailedPutCount"] == 0, r
    return list(range(first, first + count))


def query(conn, name="small"):
    row = conn.execute("SELECT count(*), count(DISTINCT n), coalesce(sum(n), 0) FROM iot.%s" % name).fetchone()
    return tuple(int(x) for x in row)


def test_small_objects_merge_and_sql_sees_each_row_once():
    lake = Lake(config="streams:\n  compaction_files: 4\n  compaction_grace_seconds: 1\n"
                       "  zero_interval_gap_ms: 0\n")
    lake.start()
    try:
        fh = create_stream(lake)
        acked = []
        most_live = 0
        with psycopg.connect(dsn(lake), autocommit=True) as conn:
            for b in range(150):
                acked += put_batch(fh, "small", len(acked), 20)
                time.sleep(0.02)  # let each batch become a flush (a small object) of its own
                if b % 10 == 9:
                    _, live = objects(lake)
                    most_live = max(most_live, len(live))
                    # Mid-load: nothing twice, nothing that was not acknowledged.
                    count, distinct, _ = query(conn)
                    assert count == distinct <= len(acked)
            # Everything acknowledged becomes visible, exactly once.
            want = (len(acked), len(acked), sum(acked))
            deadline = time.time() + 30
            while query(conn) != want and time.time() < deadline:
                time.sleep(0.1)
            assert query(conn) == want
        # Settled: the merged inputs are gone, a handful of objects hold every row.
        deadline = time.time() + 30
        while time.time() < deadline:
            keys, live = objects(lake)
            if keys == live and len(live) < 4 * 3:
                break
            time.sleep(0.2)
        keys, live = objects(lake)
        assert keys == live, "covered inputs left behind: %s" % sorted(set(keys) - set(live))
        assert len(live) < 12, len(live)
        assert most_live <= 24, most_live  # 150 flushes never piled up
        text = urllib.request.urlopen(lake.url() + "/metrics").read().decode()
        merges = re.search(r'tarn_firehose_compactions_total\{stream="small"\} (\d+)', text)
        merged = re.search(r'tarn_firehose_compacted_objects_total\{stream="small"\} (\d+)', text)
        assert merges and int(merges.group(1)) > 0, text
        assert merged and int(merged.group(1)) >= 2 * int(merges.group(1))  # 2+ inputs per merge
        assert re.search(r'tarn_firehose_compaction_bytes_total\{stream="small"\} [1-9]', text)
    finally:
        lake.cleanup()


def test_kill_9_between_merged_put_and_deletes_loses_and_duplicates_nothing():
    lake = Lake(config="streams:\n  compaction_files: 4\n  compaction_grace_seconds: 30\n"
                       "  zero_interval_gap_ms: 0\n",
                env={"TARN_TEST_COMPACTION_KILL": "after-put"})
    lake.start()
    try:
        fh = create_stream(lake)
        acked, sent = [], 0
        deadline = time.time() + 60
        while lake.proc.poll() is None and time.time() < deadline:
            try:
                acked += put_batch(fh, "small", sent, 20)
            except Exception:  # the server died under this call: not acknowledged
                pass
            sent += 20
            time.sleep(0.02)
        assert lake.proc.poll() is not None, "no compaction ran"
        lake.stop()
        # The merged object and (some of) its inputs are both there: the state of the crash.
        keys, live = objects_on_disk(lake)
        leftovers = set(keys) - set(live)
        assert leftovers, keys

        del lake.env["TARN_TEST_COMPACTION_KILL"]
        lake.start()
        # Deleted at start (a merge after the restart may cover other objects meanwhile).
        keys, _ = objects(lake)
        survived = leftovers & {k.rsplit("/", 1)[1] for k in keys}
        assert not survived, "covered leftovers survived the restart: %s" % sorted(survived)
        with psycopg.connect(dsn(lake), autocommit=True) as conn:
            deadline = time.time() + 30
            while query(conn)[0] < len(acked) and time.time() < deadline:
                time.sleep(0.1)
            count, distinct, _ = query(conn)
            assert count == distinct, "a row is seen twice"
            rows = {r[0] for r in conn.execute("SELECT n FROM iot.small").fetchall()}
        assert set(acked) <= rows, "acknowledged rows lost: %s" % sorted(set(acked) - rows)[:10]
        assert rows <= set(range(sent))
    finally:
        lake.cleanup()


def test_zero_interval_flushes_are_paced_by_the_gap():
    """IntervalInSeconds 0 with streams.zero_interval_gap_ms 300: a partition that receives a
    batch every 20 ms is flushed about every 300 ms (not once per batch, not once at the end),
    and the last batch is still visible within a second of its acknowledgement."""
    lake = Lake(config="streams:\n  compaction_files: 0\n  zero_interval_gap_ms: 300\n")
    lake.start()
    try:
        fh = create_stream(lake)
        acked = []
        start = time.time()
        while time.time() - start < 3:
            acked += put_batch(fh, "small", len(acked), 20)
            time.sleep(0.02)
        last_ack = time.time()
        with psycopg.connect(dsn(lake), autocommit=True) as conn:
            want = (len(acked), len(acked), sum(acked))
            while query(conn) != want and time.time() - last_ack < 10:
                time.sleep(0.02)
            visible_after = time.time() - last_ack
            assert query(conn) == want
        keys, _ = objects(lake)
        batches = len(acked) // 20
        assert batches >= 40, batches  # the loop really sent a batch every few tens of ms
        # ~3 s / 0.3 s flushes (+ the first at once and the tail); one per batch without the gap.
        assert 4 <= len(keys) <= 14, (len(keys), batches)
        assert visible_after < 1.5, visible_after
    finally:
        lake.cleanup()


def objects_on_disk(lake, name="small"):
    """Like objects(), from the local store's files while the server is down."""
    root = os.path.join(lake.data_dir, "objects", "landing", "iot", name)
    keys = sorted(f for f in os.listdir(root) if f.endswith(".parquet")) if os.path.isdir(root) else []
    ranges = {}
    for k in keys:
        m = NAME.match(k)
        assert m, k
        ranges[k] = (int(m.group(2)), int(m.group(3)))
    live = [k for k in keys
            if not any(o != k and ranges[o][0] <= ranges[k][0] and ranges[k][1] <= ranges[o][1]
                       for o in keys)]
    return keys, live

"""Glue crawlers driven by awscli and boto3 over objects put through Tarn's S3 API: Hive-style
partitioned Parquet (one table, four partition keys, incremental re-crawl, schema change with
the old version kept), newline-delimited JSON and gzip CSV with inferred types, unreadable
files skipped, and Glue's crawler errors."""
import json
import os
import struct
import subprocess
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from harness import tarn_binary


def parquet_bytes(select):
    """Parquet bytes written by the tarn binary's own embedded DuckDB."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.parquet")
        sql = "COPY (%s) TO '%s' (FORMAT parquet)" % (select, path)
        subprocess.run([tarn_binary(), "sql-local", sql], check=True, capture_output=True)
        with open(path, "rb") as f:
            return f.read()


def gzip_csv_bytes(select):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.csv.gz")
        sql = "COPY (%s) TO '%s' (FORMAT csv, HEADER, COMPRESSION gzip)" % (select, path)
        subprocess.run([tarn_binary(), "sql-local", sql], check=True, capture_output=True)
        with open(path, "rb") as f:
            return f.read()


def snappy_block(data):
    """A raw snappy block (literals only: valid snappy, as any decoder reads it)."""
    out, v = bytearray(), len(data)
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        out += bytes([n << 2]) if n < 60 else bytes([60 << 2, n]) if n < 256 else \
            bytes([61 << 2, n & 0xff, n >> 8])
        out += chunk
    return bytes(out)


def hadoop_snappy(data, block=4096):
    """Hadoop SnappyCodec framing (Hive/Spark `.snappy` text output)."""
    out = b""
    for i in range(0, len(data), block):
        part = data[i:i + block]
        c = snappy_block(part)
        out += struct.pack(">II", len(part), len(c)) + c
    return out


SENSOR = ("SELECT 'dev-' || i AS device, (20.0 + i)::DOUBLE AS temp, i::BIGINT AS seq, "
          "{'raw': i, 'unit': 'C'} AS reading FROM range(3) t(i)")


def wait_ready(glue, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        c = glue.get_crawler(Name=name)["Crawler"]
        if c["State"] == "READY" and "LastCrawl" in c:
            return c
        time.sleep(0.1)
    raise AssertionError("crawler %s did not finish" % name)


def crawl(glue, name):
    before = glue.get_crawler(Name=name)["Crawler"].get("LastCrawl", {}).get("MessagePrefix")
    glue.start_crawler(Name=name)
    deadline = time.time() + 60
    while time.time() < deadline:
        c = glue.get_crawler(Name=name)["Crawler"]
        if c["State"] == "READY" and c.get("LastCrawl", {}).get("MessagePrefix") != before:
            assert c["LastCrawl"]["Status"] == "SUCCEEDED", c["LastCrawl"]
            return c
        time.sleep(0.1)
    raise AssertionError("crawler %s did not finish" % name)


@pytest.fixture
def clients(lake):
    return lake.boto3_client("s3"), lake.boto3_client("glue")


def test_parquet_hive_partitions_incremental_and_schema_change(lake, clients):
    s3, glue = clients
    body = parquet_bytes(SENSOR)
    for hour in ("00", "01", "02"):
        s3.put_object(Bucket="landing", Key="iot/sensors/year=2026/month=11/day=25/hour=%s/part-0.parquet" % hour,
                      Body=body)
    r = lake.aws("glue", "create-database", "--database-input", '{"Name": "raw"}')
    assert r.returncode == 0, r.stderr
    r = lake.aws("glue", "create-crawler", "--name", "iot", "--role",
                 "arn:aws:iam::123456789012:role/crawler", "--database-name", "raw",
                 "--targets", json.dumps({"S3Targets": [{"Path": "s3://landing/iot/sensors/"}]}),
                 "--schedule", "cron(0 12 1 1 ? 2100)")  # never fires during the test
    assert r.returncode == 0, r.stderr
    r = lake.aws("glue", "start-crawler", "--name", "iot")
    assert r.returncode == 0, r.stderr
    c = wait_ready(glue, "iot")
    assert c["LastCrawl"]["Status"] == "SUCCEEDED"
    assert c["Schedule"] == {"ScheduleExpression": "cron(0 12 1 1 ? 2100)", "State": "SCHEDULED"}

    t = glue.get_table(DatabaseName="raw", Name="sensors")["Table"]
    assert [k["Name"] for k in t["PartitionKeys"]] == ["year", "month", "day", "hour"]
    cols = [(c["Name"], c["Type"]) for c in t["StorageDescriptor"]["Columns"]]
    assert cols == [("device", "string"), ("temp", "double"), ("seq", "bigint"),
                    ("reading", "struct<raw:bigint,unit:string>")]
    assert t["StorageDescriptor"]["Location"] == "s3://landing/iot/sensors/"
    assert t["StorageDescriptor"]["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert t["Parameters"]["classification"] == "parquet"
    parts = glue.get_partitions(DatabaseName="raw", TableName="sensors")["Partitions"]
    assert sorted(p["Values"] for p in parts) == [["2026", "11", "25", h] for h in ("00", "01", "02")]
    p = glue.get_partition(DatabaseName="raw", TableName="sensors", PartitionValues=["2026", "11", "25", "01"])
    assert p["Partition"]["StorageDescriptor"]["Location"] == \
        "s3://landing/iot/sensors/year=2026/month=11/day=25/hour=01/"
    m = glue.get_crawler_metrics(CrawlerNameList=["iot"])["CrawlerMetricsList"][0]
    assert m["TablesCreated"] == 1 and m["TablesUpdated"] == 0

    # New hours arrive, one with a new column: only the new partitions are added, the table
    # gains the column and keeps its previous version.
    s3.put_object(Bucket="landing", Key="iot/sensors/year=2026/month=11/day=25/hour=03/part-0.parquet", Body=body)
    s3.put_object(Bucket="landing", Key="iot/sensors/year=2026/month=11/day=25/hour=04/part-0.parquet",
                  Body=parquet_bytes(SENSOR.replace(" FROM", ", 0.5::DOUBLE AS humidity FROM")))
    created = {tuple(p["Values"]): p["CreationTime"] for p in parts}
    crawl(glue, "iot")
    parts = glue.get_partitions(DatabaseName="raw", TableName="sensors")["Partitions"]
    assert sorted(p["Values"][3] for p in parts) == ["00", "01", "02", "03", "04"]
    for p in parts:  # the old partitions were left alone
        if tuple(p["Values"]) in created:
            assert p["CreationTime"] == created[tuple(p["Values"])]
    t = glue.get_table(DatabaseName="raw", Name="sensors")["Table"]
    assert [c["Name"] for c in t["StorageDescriptor"]["Columns"]][-1] == "humidity"
    versions = glue.get_table_versions(DatabaseName="raw", TableName="sensors")["TableVersions"]
    assert [v["VersionId"] for v in versions] == ["1", "0"]
    assert len(versions[1]["Table"]["StorageDescriptor"]["Columns"]) == 4
    m = glue.get_crawler_metrics(CrawlerNameList=["iot"])["CrawlerMetricsList"][0]
    assert m["TablesCreated"] == 0 and m["TablesUpdated"] == 1
    hours = glue.get_partitions(DatabaseName="raw", TableName="sensors", Expression="hour > '02'")
    assert sorted(p["Values"][3] for p in hours["Partitions"]) == ["03", "04"]


def test_json_and_gzip_csv_folders_and_bad_files(lake, clients):
    s3, glue = clients
    glue.create_database(DatabaseInput={"Name": "thirdparty"})
    events = "\n".join(json.dumps({"id": i, "kind": "click", "user": {"name": "u%d" % i, "age": 20 + i},
                                   "tags": ["a", "b"]}) for i in range(5)) + "\n"
    s3.put_object(Bucket="landing", Key="thirdparty/events/ingest_date=2026-11-24/events.json", Body=events)
    s3.put_object(Bucket="landing", Key="thirdparty/events/ingest_date=2026-11-25/events.json", Body=events)
    s3.put_object(Bucket="landing", Key="db/orders/ingest_date=2026-11-25/part-0.csv.gz",
                  Body=gzip_csv_bytes("SELECT i AS order_id, 'cust-' || i AS customer, i * 1.5 AS amount, "
                                      "DATE '2026-11-25' AS ordered FROM range(10) t(i)"))
    # Unreadable: a corrupt gzip and broken JSON, each in a folder of its own.
    s3.put_object(Bucket="landing", Key="db/orders/ingest_date=2026-11-26/part-0.csv.gz", Body=b"\x1f\x8bnot gzip")
    s3.put_object(Bucket="landing", Key="thirdparty/events/ingest_date=2026-11-26/bad.json", Body=b"{not json")
    glue.create_crawler(Name="mixed", Role="crawler", DatabaseName="thirdparty", TablePrefix="tp_",
                        Targets={"S3Targets": [{"Path": "s3://landing/thirdparty/events/"},
                                               {"Path": "s3://landing/db/orders/"}]})
    crawl(glue, "mixed")
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="thirdparty")["TableList"]}
    assert sorted(tables) == ["tp_events", "tp_orders"]
    ev = tables["tp_events"]
    assert ev["Parameters"]["classification"] == "json"
    assert ev["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert {c["Name"]: c["Type"] for c in ev["StorageDescriptor"]["Columns"]} == {
        "id": "bigint", "kind": "string", "user": "struct<name:string,age:bigint>", "tags": "array<string>"}
    assert [k["Name"] for k in ev["PartitionKeys"]] == ["ingest_date"]
    orders = tables["tp_orders"]
    assert orders["Parameters"]["classification"] == "csv"
    assert orders["Parameters"]["compressionType"] == "gzip"
    assert orders["StorageDescriptor"]["SerdeInfo"]["Parameters"]["field.delim"] == ","
    assert {c["Name"]: c["Type"] for c in orders["StorageDescriptor"]["Columns"]} == {
        "order_id": "bigint", "customer": "string", "amount": "double", "ordered": "date"}
    # The unreadable files' folders did not become partitions.
    for name, good in (("tp_events", 2), ("tp_orders", 1)):
        assert len(glue.get_partitions(DatabaseName="thirdparty", TableName=name)["Partitions"]) == good
    log = lake.read_log()
    assert "Skipped unreadable file s3://landing/db/orders/ingest_date=2026-11-26/part-0.csv.gz" in log
    assert "Skipped unreadable file s3://landing/thirdparty/events/ingest_date=2026-11-26/bad.json" in log


def test_snappy_csv_folder(lake, clients):
    s3, glue = clients
    glue.create_database(DatabaseInput={"Name": "db"})
    rows = "customer_id,name,joined,balance\n" + "".join(
        "%d,cust-%d,2026-11-%02d,%d.25\n" % (i, i, 1 + i % 28, i * 10) for i in range(2000))
    for day in ("2026-11-24", "2026-11-25"):
        s3.put_object(Bucket="landing", Key="db/customers/ingest_date=%s/part-00000.csv.snappy" % day,
                      Body=hadoop_snappy(rows.encode()))
    glue.create_crawler(Name="snap", Role="r", DatabaseName="db",
                        Targets={"S3Targets": [{"Path": "s3://landing/db/customers/"}]})
    crawl(glue, "snap")
    t = glue.get_table(DatabaseName="db", Name="customers")["Table"]
    assert t["Parameters"]["classification"] == "csv"
    assert t["Parameters"]["compressionType"] == "snappy"
    assert t["StorageDescriptor"]["Compressed"] is True
    assert {c["Name"]: c["Type"] for c in t["StorageDescriptor"]["Columns"]} == {
        "customer_id": "bigint", "name": "string", "joined": "date", "balance": "double"}
    assert len(glue.get_partitions(DatabaseName="db", TableName="customers")["Partitions"]) == 2


def test_crawler_api_errors(lake, clients):
    s3, glue = clients
    glue.create_database(DatabaseInput={"Name": "raw"})
    targets = {"S3Targets": [{"Path": "s3://landing/nothing/"}]}
    with pytest.raises(ClientError) as e:
        glue.create_crawler(Name="c", Role="r", DatabaseName="raw", Targets=targets, Schedule="cron(0 0 * * *)")
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    with pytest.raises(ClientError) as e:
        glue.create_crawler(Name="c", Role="r", DatabaseName="raw", Targets=targets,
                            RecrawlPolicy={"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"})
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    glue.create_crawler(Name="c", Role="r", DatabaseName="raw", Targets=targets,
                        Configuration=json.dumps({"Version": 1.0, "Grouping": {
                            "TableGroupingPolicy": "CombineCompatibleSchemas"}}))
    with pytest.raises(ClientError) as e:
        glue.create_crawler(Name="c", Role="r", DatabaseName="raw", Targets=targets)
    assert e.value.response["Error"]["Code"] == "AlreadyExistsException"
    with pytest.raises(ClientError) as e:
        glue.stop_crawler(Name="c")
    assert e.value.response["Error"]["Code"] == "CrawlerNotRunningException"
    with pytest.raises(ClientError) as e:
        glue.get_crawler(Name="ghost")
    assert e.value.response["Error"]["Code"] == "EntityNotFoundException"
    with pytest.raises(ClientError) as e:
        glue.start_crawler_schedule(CrawlerName="c")
    assert e.value.response["Error"]["Code"] == "NoScheduleException"
    glue.update_crawler(Name="c", TablePrefix="x_", Schedule="cron(15 12 * * ? 2100)")
    c = glue.get_crawler(Name="c")["Crawler"]
    assert c["TablePrefix"] == "x_" and c["Version"] == 2
    assert c["Schedule"]["ScheduleExpression"] == "cron(15 12 * * ? 2100)"
    assert c["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE",
                                       "DeleteBehavior": "DEPRECATE_IN_DATABASE"}
    assert [x["Name"] for x in glue.get_crawlers()["Crawlers"]] == ["c"]
    assert glue.list_crawlers()["CrawlerNames"] == ["c"]
    glue.delete_crawler(Name="c")
    assert glue.get_crawlers()["Crawlers"] == []


def test_vanished_partitions_follow_delete_behavior(lake, clients):
    """Hours deleted from S3: DEPRECATE_IN_DATABASE (the default) marks the partition with
    DEPRECATED_BY_CRAWLER = <epoch ms> as Glue does, LOG keeps it untouched, DELETE_FROM_DATABASE
    removes it; the crawl's log says which."""
    s3, glue = clients
    body = parquet_bytes(SENSOR)
    key = "iot/vanish/year=2026/month=11/day=25/hour=%s/part-0.parquet"
    for hour in ("00", "01", "02", "03"):
        s3.put_object(Bucket="landing", Key=key % hour, Body=body)
    glue.create_database(DatabaseInput={"Name": "raw"})
    glue.create_crawler(Name="v", Role="r", DatabaseName="raw",
                        Targets={"S3Targets": [{"Path": "s3://landing/iot/vanish/"}]})
    crawl(glue, "v")

    def partition(hour):
        return glue.get_partition(DatabaseName="raw", TableName="vanish",
                                  PartitionValues=["2026", "11", "25", hour])["Partition"]

    def hours():
        return sorted(p["Values"][3] for p in glue.get_partitions(
            DatabaseName="raw", TableName="vanish")["Partitions"])

    before = int(time.time() * 1000)
    s3.delete_object(Bucket="landing", Key=key % "01")
    crawl(glue, "v")
    assert hours() == ["00", "01", "02", "03"]
    stamp = partition("01")["Parameters"]["DEPRECATED_BY_CRAWLER"]
    assert before - 5000 <= int(stamp) <= int(time.time() * 1000) + 5000
    assert partition("01")["StorageDescriptor"]["Parameters"]["DEPRECATED_BY_CRAWLER"] == stamp
    assert "DEPRECATED_BY_CRAWLER" not in partition("00")["Parameters"]
    assert "Deprecated partition [2026, 11, 25, 01] of raw.vanish" in lake.read_log()

    glue.update_crawler(Name="v", SchemaChangePolicy={"UpdateBehavior": "UPDATE_IN_DATABASE",
                                                      "DeleteBehavior": "LOG"})
    s3.delete_object(Bucket="landing", Key=key % "02")
    crawl(glue, "v")
    assert hours() == ["00", "01", "02", "03"]
    assert "DEPRECATED_BY_CRAWLER" not in partition("02")["Parameters"]
    assert "Kept partition [2026, 11, 25, 02] of raw.vanish" in lake.read_log()

    glue.update_crawler(Name="v", SchemaChangePolicy={"UpdateBehavior": "UPDATE_IN_DATABASE",
                                                      "DeleteBehavior": "DELETE_FROM_DATABASE"})
    crawl(glue, "v")
    assert hours() == ["00", "03"]
    # The table itself is still there and not deprecated: it has data.
    t = glue.get_table(DatabaseName="raw", Name="vanish")["Table"]
    assert "DEPRECATED_BY_CRAWLER" not in t["Parameters"]

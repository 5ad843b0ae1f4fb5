"""Glue Data Catalog API (AWSGlue.* JSON 1.1) driven by the real awscli and boto3: databases,
tables with Hive types and Glue's Parquet/JSON/CSV storage descriptors, table versions,
partitions with the Expression filter language, and Glue's error shapes."""
import json

import pytest
from botocore.exceptions import ClientError

PARQUET_SD = {
    "Columns": [
        {"Name": "device", "Type": "string"},
        {"Name": "temp", "Type": "double"},
        {"Name": "reading", "Type": "struct<raw:int,unit:string>"},
        {"Name": "tags", "Type": "array<string>"},
        {"Name": "attrs", "Type": "map<string,bigint>"},
        {"Name": "price", "Type": "decimal(10,2)"},
    ],
    "Location": "s3://landing/iot/sensors/",
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                  "Parameters": {"serialization.format": "1"}},
}

KEYS = [{"Name": "year", "Type": "string"}, {"Name": "month", "Type": "int"},
        {"Name": "day", "Type": "string"}]


def aws_json(lake, *args):
    r = lake.aws("glue", *args, "--output", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def aws_error(lake, *args):
    r = lake.aws("glue", *args)
    assert r.returncode != 0
    return r.stderr


def test_awscli_database_table_partitions(lake):
    aws_json(lake, "create-database", "--database-input", json.dumps({"Name": "IoT", "Description": "raw"}))
    db = aws_json(lake, "get-database", "--name", "iot")["Database"]
    assert db["Name"] == "iot" and db["Description"] == "raw" and db["CatalogId"] == "123456789012"
    assert isinstance(db["CreateTime"], (int, float))
    assert "AlreadyExistsException" in aws_error(
        lake, "create-database", "--database-input", json.dumps({"Name": "iot"}))

    table_input = {"Name": "sensors", "StorageDescriptor": PARQUET_SD, "PartitionKeys": KEYS,
                   "TableType": "EXTERNAL_TABLE", "Parameters": {"classification": "parquet"}}
    aws_json(lake, "create-table", "--database-name", "iot", "--table-input", json.dumps(table_input))
    tables = aws_json(lake, "get-tables", "--database-name", "iot")["TableList"]
    assert [t["Name"] for t in tables] == ["sensors"]
    t = tables[0]
    assert t["StorageDescriptor"]["Columns"][2]["Type"] == "struct<raw:int,unit:string>"
    assert t["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert [k["Name"] for k in t["PartitionKeys"]] == ["year", "month", "day"]
    assert t["Parameters"]["classification"] == "parquet" and t["DatabaseName"] == "iot"

    parts = []
    for m in range(1, 13):
        for d in ("01", "15"):
            parts.append({"Values": ["2026", str(m), d], "StorageDescriptor": dict(
                PARQUET_SD, Location="s3://landing/iot/sensors/year=2026/month=%d/day=%s/" % (m, d))})
    for i in range(0, len(parts), 10):
        out = aws_json(lake, "batch-create-partition", "--database-name", "iot", "--table-name",
                       "sensors", "--partition-input-list", json.dumps(parts[i:i + 10]))
        assert out.get("Errors", []) == []

    def values(expr):
        out = aws_json(lake, "get-partitions", "--database-name", "iot", "--table-name", "sensors",
                       "--expression", expr)
        return sorted((p["Values"][1], p["Values"][2]) for p in out["Partitions"])

    # month is an int key: 9 < 10 < 11 numerically.
    assert values("year = '2026' AND month > 10") == [("11", "01"), ("11", "15"), ("12", "01"), ("12", "15")]
    assert values("month IN (1, 2) AND day <> '15'") == [("1", "01"), ("2", "01")]
    assert values("month BETWEEN 9 AND 10 AND NOT day = '01'") == [("10", "15"), ("9", "15")]
    assert values("(month = 3 OR month = 4) AND day LIKE '1%'") == [("3", "15"), ("4", "15")]
    assert len(values("year >= '2026'")) == 24
    # Pages of an expression the store answers from its index (a leading-key prefix and the
    # value index) cover every match once, in order.
    glue = lake.boto3_client("glue")
    for expr, want in (("year = '2026' AND day = '15'", 12), ("day = '01' AND month <= 6", 6),
                       ("year LIKE '20%' AND NOT month = 1", 22)):
        pages = list(glue.get_paginator("get_partitions").paginate(
            DatabaseName="iot", TableName="sensors", Expression=expr, PaginationConfig={"PageSize": 5}))
        got = [tuple(p["Values"]) for page in pages for p in page["Partitions"]]
        assert len(got) == want and len(set(got)) == want, (expr, got)
        assert len(pages) == (want + 4) // 5

    err = aws_error(lake, "get-partitions", "--database-name", "iot", "--table-name", "sensors",
                    "--expression", "month >>> 3")
    assert "InvalidInputException" in err
    err = aws_error(lake, "get-partitions", "--database-name", "iot", "--table-name", "sensors",
                    "--expression", "colour = 'red'")
    assert "InvalidInputException" in err
    assert "EntityNotFoundException" in aws_error(lake, "get-table", "--database-name", "iot", "--name", "nope")


@pytest.fixture
def glue(lake):
    g = lake.boto3_client("glue")
    g.create_database(DatabaseInput={"Name": "curated", "LocationUri": "s3://curated/"})
    return g


def test_boto3_tables_versions_and_errors(glue):
    ti = {"Name": "orders", "StorageDescriptor": {
        "Columns": [{"Name": "id", "Type": "bigint"}],
        "Location": "s3://curated/orders/",
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                      "Parameters": {"field.delim": ","}}},
        "PartitionKeys": [{"Name": "dt", "Type": "date"}], "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "csv"}}
    glue.create_table(DatabaseName="curated", TableInput=ti)
    t = glue.get_table(DatabaseName="curated", Name="orders")["Table"]
    # boto3 parses Glue timestamps (epoch seconds) into datetimes.
    assert t["CreateTime"].year >= 2024 and t["VersionId"] == "0"

    ti["StorageDescriptor"]["Columns"].append({"Name": "amount", "Type": "decimal(12,2)"})
    glue.update_table(DatabaseName="curated", TableInput=ti)
    t = glue.get_table(DatabaseName="curated", Name="orders")["Table"]
    assert t["VersionId"] == "1" and len(t["StorageDescriptor"]["Columns"]) == 2
    versions = glue.get_table_versions(DatabaseName="curated", TableName="orders")["TableVersions"]
    assert [v["VersionId"] for v in versions] == ["1", "0"]
    assert len(versions[1]["Table"]["StorageDescriptor"]["Columns"]) == 1
    old = glue.get_table_version(DatabaseName="curated", TableName="orders", VersionId="0")
    assert old["TableVersion"]["Table"]["StorageDescriptor"]["Columns"] == [{"Name": "id", "Type": "bigint"}]
    with pytest.raises(ClientError) as e:
        glue.update_table(DatabaseName="curated", TableInput=ti, VersionId="0")
    assert e.value.response["Error"]["Code"] == "ConcurrentModificationException"
    glue.delete_table_version(DatabaseName="curated", TableName="orders", VersionId="0")
    with pytest.raises(ClientError) as e:
        glue.get_table_version(DatabaseName="curated", TableName="orders", VersionId="0")
    assert e.value.response["Error"]["Code"] == "EntityNotFoundException"

    # Partitions: create, get, batch-get, update, delete, batch-delete.
    for d in ("2026-11-01", "2026-11-02", "2026-11-03"):
        glue.create_partition(DatabaseName="curated", TableName="orders", PartitionInput={
            "Values": [d], "StorageDescriptor": {"Location": "s3://curated/orders/dt=%s/" % d}})
    with pytest.raises(ClientError) as e:
        glue.create_partition(DatabaseName="curated", TableName="orders",
                              PartitionInput={"Values": ["2026-11-01"]})
    assert e.value.response["Error"]["Code"] == "AlreadyExistsException"
    p = glue.get_partition(DatabaseName="curated", TableName="orders", PartitionValues=["2026-11-02"])
    assert p["Partition"]["StorageDescriptor"]["Location"] == "s3://curated/orders/dt=2026-11-02/"
    assert p["Partition"]["CreationTime"].year >= 2024
    got = glue.batch_get_partition(DatabaseName="curated", TableName="orders", PartitionsToGet=[
        {"Values": ["2026-11-01"]}, {"Values": ["1999-01-01"]}])
    assert [x["Values"] for x in got["Partitions"]] == [["2026-11-01"]]
    glue.update_partition(DatabaseName="curated", TableName="orders", PartitionValueList=["2026-11-03"],
                          PartitionInput={"Values": ["2026-11-03"], "Parameters": {"note": "fixed"}})
    p = glue.get_partition(DatabaseName="curated", TableName="orders", PartitionValues=["2026-11-03"])
    assert p["Partition"]["Parameters"] == {"note": "fixed"}
    r = glue.get_partitions(DatabaseName="curated", TableName="orders",
                            Expression="dt BETWEEN '2026-11-02' AND '2026-11-03'")
    assert sorted(x["Values"][0] for x in r["Partitions"]) == ["2026-11-02", "2026-11-03"]
    glue.delete_partition(DatabaseName="curated", TableName="orders", PartitionValues=["2026-11-01"])
    out = glue.batch_delete_partition(DatabaseName="curated", TableName="orders", PartitionsToDelete=[
        {"Values": ["2026-11-02"]}, {"Values": ["2026-11-09"]}])
    assert [e["PartitionValues"] for e in out["Errors"]] == [["2026-11-09"]]
    assert out["Errors"][0]["ErrorDetail"]["ErrorCode"] == "EntityNotFoundException"
    r = glue.get_partitions(DatabaseName="curated", TableName="orders")
    assert [x["Values"] for x in r["Partitions"]] == [["2026-11-03"]]

    with pytest.raises(ClientError) as e:
        glue.create_table(DatabaseName="missing", TableInput={"Name": "x"})
    assert e.value.response["Error"]["Code"] == "EntityNotFoundException"
    with pytest.raises(ClientError) as e:
        glue.get_partitions(DatabaseName="curated", TableName="orders", Expression="dt = ")
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_boto3_paginators_and_batch_delete(glue):
    for i in range(7):
        glue.create_table(DatabaseName="curated", TableInput={"Name": "t%02d" % i})
    pages = list(glue.get_paginator("get_tables").paginate(
        DatabaseName="curated", PaginationConfig={"PageSize": 3}))
    assert [len(p["TableList"]) for p in pages] == [3, 3, 1]
    assert [t["Name"] for t in glue.get_tables(DatabaseName="curated", Expression="t0[1-3]")["TableList"]] \
        == ["t01", "t02", "t03"]
    glue.create_table(DatabaseName="curated", TableInput={
        "Name": "hourly", "PartitionKeys": [{"Name": "hour", "Type": "int"}]})
    glue.batch_create_partition(DatabaseName="curated", TableName="hourly", PartitionInputList=[
        {"Values": [str(h)]} for h in range(24)])
    pages = list(glue.get_paginator("get_partitions").paginate(
        DatabaseName="curated", TableName="hourly", Expression="hour >= 4",
        PaginationConfig={"PageSize": 7}))
    hours = sorted(int(p["Values"][0]) for page in pages for p in page["Partitions"])
    assert hours == list(range(4, 24)) and len(pages) == 3
    seg = [glue.get_partitions(DatabaseName="curated", TableName="hourly",
                               Segment={"SegmentNumber": i, "TotalSegments": 4})["Partitions"]
           for i in range(4)]
    assert sorted(int(p["Values"][0]) for s in seg for p in s) == list(range(24))
    out = glue.batch_delete_table(DatabaseName="curated", TablesToDelete=["t00", "t01", "ghost"])
    assert [e["TableName"] for e in out["Errors"]] == ["ghost"]
    dbs = glue.get_databases()["DatabaseList"]
    assert [d["Name"] for d in dbs] == ["curated"]
    glue.delete_database(Name="curated")
    with pytest.raises(ClientError) as e:
        glue.get_tables(DatabaseName="curated")
    assert e.value.response["Error"]["Code"] == "EntityNotFoundException"

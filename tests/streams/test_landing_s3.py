"""What a delivery stream lands is visible through the S3 API with the real awscli: records sent
with `aws firehose put-record-batch` (JSON → Parquet with a Glue table's schema, partitioned by
device) are listed by `aws s3 ls --recursive`, copied back with `aws s3 cp`, are valid Parquet
files (magic bytes, footer length, schema and rows read by DuckDB through `tarn sql-local`), and
read with hive_partitioning they match the input exactly."""
import csv
import io
import json
import os
import struct
import subprocess
import tempfile
import time

from harness import tarn_binary

ROLE = "arn:aws:iam::123456789012:role/firehose"


def aws_ok(lake, *args):
    r = lake.aws(*args)
    assert r.returncode == 0, "aws %s: %s" % (" ".join(args), r.stderr)
    return r.stdout


def sql_local(query):
    r = subprocess.run([tarn_binary(), "sql-local", query], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout)))


def check_parquet_file(path):
    """The Parquet layout: 'PAR1', pages, footer (Thrift FileMetaData), u32 footer length,
    'PAR1'. The footer must fit inside the file after the leading magic."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > 12, path
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1", path
    (footer_len,) = struct.unpack("<I", data[-8:-4])
    assert 0 < footer_len <= len(data) - 12, (path, footer_len, len(data))


def test_landed_parquet_listed_and_copied_back_with_aws_s3(lake):
    aws_ok(lake, "glue", "create-database", "--database-input", json.dumps({"Name": "s3ls"}))
    aws_ok(lake, "glue", "create-table", "--database-name", "s3ls", "--table-input", json.dumps({
        "Name": "readings",
        "StorageDescriptor": {"Columns": [{"Name": "seq", "Type": "bigint"},
                                          {"Name": "temp", "Type": "double"},
                                          {"Name": "status", "Type": "string"}],
                              "Location": "s3://landing/iot/s3ls/"},
        "PartitionKeys": [{"Name": "device", "Type": "string"}]}))
    dest = {
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
        "Prefix": "iot/s3ls/device=!{partitionKeyFromQuery:device}/",
        "ErrorOutputPrefix": "errors/s3ls/!{firehose:error-output-type}/",
        "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 64},
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {"Enabled": True, "Processors": [{
            "Type": "MetadataExtraction",
            "Parameters": [{"ParameterName": "MetadataExtractionQuery",
                            "ParameterValue": "{device: .device}"},
                           {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]},
        "DataFormatConversionConfiguration": {
            "Enabled": True,
            "SchemaConfiguration": {"DatabaseName": "s3ls", "TableName": "readings",
                                    "RoleARN": ROLE},
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "ZSTD"}}},
        },
    }
    aws_ok(lake, "firehose", "create-delivery-stream", "--delivery-stream-name", "s3ls",
           "--extended-s3-destination-configuration", json.dumps(dest))

    sent = [{"device": "dev-%d" % (i % 3), "seq": i, "temp": round(15 + i * 0.25, 2),
             "status": ["ok", "warn"][i % 2]} for i in range(120)]
    for start in range(0, len(sent), 40):
        # awscli v1 base64-encodes blob members itself: Data is the record as text.
        recs = [{"Data": json.dumps(r)} for r in sent[start:start + 40]]
        out = json.loads(aws_ok(lake, "firehose", "put-record-batch", "--delivery-stream-name",
                                "s3ls", "--records", json.dumps(recs), "--output", "json"))
        assert out["FailedPutCount"] == 0

    # `aws s3 ls --recursive` lists the Parquet objects once they are delivered.
    deadline = time.time() + 30
    while True:
        listing = aws_ok(lake, "s3", "ls", "--recursive", "s3://landing/iot/s3ls/")
        keys = [line.split(None, 3)[3] for line in listing.splitlines() if line.strip()]
        devices = {k.split("/")[2] for k in keys}
        if devices == {"device=dev-0", "device=dev-1", "device=dev-2"}:
            break
        assert time.time() < deadline, "not landed: %s" % listing
        time.sleep(0.1)
    for line in listing.splitlines():
        date, clock, size, key = line.split(None, 3)
        assert key.startswith("iot/s3ls/device=dev-") and key.endswith(".parquet"), key
        assert key.split("/")[-1].startswith("s3ls-"), key
        assert int(size) > 0

    with tempfile.TemporaryDirectory() as tmp:
        # One file with `aws s3 cp`, checked byte by byte against the Parquet layout.
        one = os.path.join(tmp, "one.parquet")
        aws_ok(lake, "s3", "cp", "s3://landing/" + keys[0], one)
        check_parquet_file(one)
        schema = sql_local("SELECT name, type FROM parquet_schema('%s') WHERE name <> 'duckdb_schema'"
                           % one)
        assert [(c["name"], c["type"]) for c in schema] == [
            ("seq", "INT64"), ("temp", "DOUBLE"), ("status", "BYTE_ARRAY")]
        codecs = sql_local("SELECT DISTINCT compression FROM parquet_metadata('%s')" % one)
        assert [c["compression"] for c in codecs] == ["ZSTD"]
        # Everything with `aws s3 cp --recursive` (the Hive directories come along), read back
        # by DuckDB with hive_partitioning: exactly the input, nothing more.
        local = os.path.join(tmp, "s3ls")
        aws_ok(lake, "s3", "cp", "--recursive", "s3://landing/iot/s3ls/", local)
        files = []
        for root, _, names in os.walk(local):
            files += [os.path.join(root, n) for n in names]
        assert len(files) == len(keys)
        for f in files:
            check_parquet_file(f)
        rows = sql_local("SELECT device, seq, temp, status FROM read_parquet('%s/*/*.parquet', "
                         "hive_partitioning=true) ORDER BY seq" % local)
    assert [{"device": r["device"], "seq": int(r["seq"]), "temp": float(r["temp"]),
             "status": r["status"]} for r in rows] == sent

"""The lake in the warehouse (docs/sql.md, "Lake tables"), with real clients: catalog tables as
<database>.<table> with partition pruning, new partitions visible at once, external schemas,
COPY/UNLOAD through the object store, per-statement IAM authorisation (42501) and the audit
trail. Parquet test files are written by the lake's own DuckDB (root may write files) and
uploaded with boto3, so every object goes through the S3 API."""
import gzip
import json
import os
import subprocess
import tempfile
import time

import psycopg
import pytest

from harness import Lake

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def dsn(lake, user="root", password=Lake.PASSWORD):
    host, port = lake.host_port("sql")
    return "host=%s port=%d user=%s password=%s dbname=tarn sslmode=disable connect_timeout=10" % (
        host, port, user, password)


def connect(lake, **kw):
    return psycopg.connect(dsn(lake, **kw), autocommit=True)


def psql(lake, sql, user="root", password=Lake.PASSWORD):
    host, port = lake.host_port("sql")
    env = dict(os.environ, PGPASSWORD=password)
    return subprocess.run(["psql", "-X", "-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(port),
                           "-U", user, "-d", "tarn", "-c", sql], capture_output=True, text=True, env=env, timeout=60)


def parquet_bytes(conn, select):
    """Parquet bytes of `select`, written by the lake's DuckDB (root only) into a temp file."""
    fd, path = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        conn.execute("COPY (%s) TO '%s' (FORMAT parquet)" % (select, path))
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


def readings(day, devices=("d1", "d2"), n=10, base=20.0):
    """SELECT of n readings per device for `day` (temperature = base + i)."""
    return ("SELECT 'd' || (i %% %d + 1) AS device, i::BIGINT AS seq, %f + (i // %d)::DOUBLE AS temperature, "
            "TIMESTAMP '%s 12:00:00' AS ts FROM range(%d) t(i)" % (len(devices), base, len(devices), day,
                                                                     n * len(devices)))


def make_table(lake, db="iot", table="telemetry", location=None):
    glue = lake.boto3_client("glue")
    try:
        glue.create_database(DatabaseInput={"Name": db})
    except glue.exceptions.AlreadyExistsException:
        pass
    glue.create_table(DatabaseName=db, TableInput={
        "Name": table, "TableType": "EXTERNAL_TABLE", "Parameters": {"classification": "parquet"},
        "StorageDescriptor": {
            "Location": location or "s3://landing/%s/%s/" % (db, table),
            "Columns": [{"Name": "device", "Type": "string"}, {"Name": "seq", "Type": "bigint"},
                        {"Name": "temperature", "Type": "double"}, {"Name": "ts", "Type": "timestamp"}],
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "SerdeInfo": {"SerializationLibrary":
                          "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}},
        "PartitionKeys": [{"Name": "day", "Type": "string"}]})
    return glue


def add_partition(lake, conn, day, key_prefix=None, db="iot", table="telemetry", body=None, name="part-0.parquet",
                  register=True, **kw):
    s3 = lake.boto3_client("s3")
    prefix = key_prefix or "%s/%s/day=%s/" % (db, table, day)
    s3.put_object(Bucket="landing", Key=prefix + name, Body=body if body is not None else parquet_bytes(conn, readings(day, **kw)))
    if register:
        glue = lake.boto3_client("glue")
        try:
            glue.create_partition(DatabaseName=db, TableName=table, PartitionInput={
                "Values": [day], "StorageDescriptor": {"Location": "s3://landing/" + prefix}})
        except glue.exceptions.AlreadyExistsException:
            pass


def sql_events(lake, user=None):
    """ExecuteStatement records from CloudTrail LookupEvents (newest first)."""
    args = ["cloudtrail", "lookup-events", "--max-results", "50", "--lookup-attributes",
            "AttributeKey=EventName,AttributeValue=ExecuteStatement"]
    r = lake.aws(*args)
    assert r.returncode == 0, r.stderr
    events = [json.loads(e["CloudTrailEvent"]) for e in json.loads(r.stdout)["Events"]]
    if user:
        events = [e for e in events if e["userIdentity"].get("userName") == user]
    return events


@pytest.fixture(scope="module")
def lake():
    lk = Lake()
    lk.start()
    with connect(lk) as conn:
        make_table(lk)
        for day in DAYS:
            add_partition(lk, conn, day)
        # A partition outside the table's Hive layout whose only file is not Parquet at all:
        # a query reading it fails, so queries that succeed prove it was pruned.
        add_partition(lk, conn, "2025-12-31", key_prefix="iot/elsewhere/p-dec31/", body=b"not parquet",
                      name="broken.parquet")
    yield lk
    lk.stop()
    lk.cleanup()


def test_catalog_table_is_queryable_with_partition_pruning(lake):
    with connect(lake) as conn:
        rows = conn.execute("SELECT device, avg(temperature), count(*) FROM iot.telemetry "
                            "WHERE day = '2026-01-02' GROUP BY 1 ORDER BY 1").fetchall()
        assert rows == [("d1", 24.5, 10), ("d2", 24.5, 10)]
        assert conn.execute("SELECT count(*), min(day), max(day) FROM iot.telemetry "
                            "WHERE day >= '2026-01-01'").fetchone() == (60, "2026-01-01", "2026-01-03")
        # Aliases, qualified columns, the 3-part name, joins with warehouse tables.
        conn.execute("CREATE TABLE devices(id VARCHAR, site VARCHAR)")
        conn.execute("INSERT INTO devices VALUES ('d1', 'north'), ('d2', 'south')")
        rows = conn.execute("SELECT d.site, count(*) FROM tarn.iot.telemetry t JOIN devices d ON d.id = t.device "
                            "WHERE t.day IN ('2026-01-01', '2026-01-03') AND t.seq < 4 GROUP BY 1 ORDER BY 1").fetchall()
        assert rows == [("north", 4), ("south", 4)]
        assert conn.execute("SELECT telemetry.day FROM iot.telemetry WHERE telemetry.day = '2026-01-03' "
                            "LIMIT 1").fetchone() == ("2026-01-03",)
        # The catalog's schema, partition key last.
        cols = [r[:2] for r in conn.execute("DESCRIBE iot.telemetry").fetchall()]
        assert cols == [("device", "VARCHAR"), ("seq", "BIGINT"), ("temperature", "DOUBLE"),
                        ("ts", "TIMESTAMP"), ("day", "VARCHAR")]
        # Without a usable predicate every partition is read, the broken one too.
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT count(*) FROM iot.telemetry").fetchone()
        assert "broken.parquet" in str(e.value)
        # A parameter cannot prune in the catalog (the plan is made before it is bound)...
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT count(*) FROM iot.telemetry WHERE day = %s", ("2026-01-01",)).fetchone()
    # ... and psql sees the same table.
    r = psql(lake, "SELECT count(*) FROM iot.telemetry WHERE day BETWEEN '2026-01-02' AND '2026-01-03'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "40"
    # The audit record says what was read: one partition of the table.
    ev = [e for e in sql_events(lake, user=None)
          if "WHERE day = '2026-01-02'" in e["requestParameters"]["sql"]]
    assert ev, "no audit record of the pruned query"
    assert "iot.telemetry (1 partitions, 1 objects" in ev[0]["requestParameters"]["lakeTables"]


def test_new_partitions_and_files_are_visible_to_open_sessions(lake):
    with connect(lake) as conn:
        q = "SELECT count(*) FROM iot.telemetry WHERE day >= '2026-01-04'"
        assert conn.execute(q).fetchone() == (0,)
        cur = conn.cursor()
        prepared = "SELECT count(*) FROM iot.telemetry WHERE day >= '2026-01-04' AND seq >= %s"
        assert cur.execute(prepared, (0,), prepare=True).fetchone() == (0,)
        add_partition(lake, conn, "2026-01-04")
        assert conn.execute(q).fetchone() == (20,)
        assert cur.execute(prepared, (0,), prepare=True).fetchone() == (20,)
        # A new file in an existing partition, as a delivery stream adds them.
        add_partition(lake, conn, "2026-01-04", name="part-1.parquet", register=False)
        assert conn.execute(q).fetchone() == (40,)
        assert cur.execute(prepared, (10,), prepare=True).fetchone() == (20,)


def test_unknown_lake_table_is_42P01_and_warehouse_keeps_working(lake):
    with connect(lake) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable) as e:
            conn.execute("SELECT * FROM iot.nope")
        assert 'relation "iot.nope" does not exist' in str(e.value)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM nodb.nope")
        conn.execute("CREATE SCHEMA wh")
        conn.execute("CREATE TABLE wh.t AS SELECT 42 AS x")
        assert conn.execute("SELECT x FROM wh.t").fetchone() == (42,)


def test_csv_and_json_tables_by_classification(lake):
    s3 = lake.boto3_client("s3")
    glue = lake.boto3_client("glue")
    glue.create_database(DatabaseInput={"Name": "raw"})
    s3.put_object(Bucket="landing", Key="thirdparty/prices/ingest_date=2026-01-01/p.csv",
                  Body=b"sku,price\na,1.5\nb,2.5\n")
    s3.put_object(Bucket="landing", Key="thirdparty/prices/ingest_date=2026-01-01/_SUCCESS", Body=b"")
    glue.create_table(DatabaseName="raw", TableInput={
        "Name": "prices", "Parameters": {"classification": "csv", "skip.header.line.count": "1"},
        "StorageDescriptor": {"Location": "s3://landing/thirdparty/prices/",
                              "Columns": [{"Name": "sku", "Type": "string"}, {"Name": "price", "Type": "double"}],
                              "SerdeInfo": {"SerializationLibrary":
                                            "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                                            "Parameters": {"field.delim": ","}}},
        "PartitionKeys": [{"Name": "ingest_date", "Type": "string"}]})
    glue.create_partition(DatabaseName="raw", TableName="prices", PartitionInput={
        "Values": ["2026-01-01"],
        "StorageDescriptor": {"Location": "s3://landing/thirdparty/prices/ingest_date=2026-01-01/"}})
    s3.put_object(Bucket="landing", Key="thirdparty/events/e.json",
                  Body=b'{"id": 1, "kind": "a", "extra": 7}\n{"id": 2, "kind": "b"}\n')
    glue.create_table(DatabaseName="raw", TableInput={
        "Name": "events", "Parameters": {"classification": "json"},
        "StorageDescriptor": {"Location": "s3://landing/thirdparty/events/",
                              "Columns": [{"Name": "id", "Type": "int"}, {"Name": "kind", "Type": "string"}]}})
    with connect(lake) as conn:
        assert conn.execute("SELECT sku, price, ingest_date FROM raw.prices ORDER BY 1").fetchall() == [
            ("a", 1.5, "2026-01-01"), ("b", 2.5, "2026-01-01")]
        assert conn.execute("SELECT id, kind FROM raw.events ORDER BY 1").fetchall() == [(1, "a"), (2, "b")]


def snappy_framed(text):
    """`text` in the snappy framing format, as one uncompressed chunk (type 0x01; the CRC is not
    checked by readers that sample, and DuckDB would not get that far anyway)."""
    body = b"\0\0\0\0" + text
    return b"\xff\x06\x00\x00sNaPpY" + b"\x01" + len(body).to_bytes(3, "little") + body


def test_snappy_text_tables_give_a_clear_error(lake):
    """DuckDB reads gzip and zstd text but not snappy: a snappy CSV/JSON table is 0A000 naming the
    table and why, whether the table says so (compressionType), the file name does (.snappy), or
    only the bytes do (framing format) — never garbage rows or a crash."""
    s3 = lake.boto3_client("s3")
    glue = lake.boto3_client("glue")
    try:
        glue.create_database(DatabaseInput={"Name": "snap"})
    except glue.exceptions.AlreadyExistsException:
        pass
    cases = {
        "by_param": ("csv", "p.csv", {"compressionType": "snappy"}, snappy_framed(b"a,1\n")),
        "by_name": ("json", "p.json.snappy", {}, b"\x00\x00\x00\x0b\x00\x00\x00\x0d" + b"x" * 13),
        "by_bytes": ("csv", "p.csv", {}, snappy_framed(b"a,1\nb,2\n")),
    }
    for name, (cls, key, params, body) in cases.items():
        s3.put_object(Bucket="landing", Key="snap/%s/%s" % (name, key), Body=body)
        glue.create_table(DatabaseName="snap", TableInput={
            "Name": name, "Parameters": dict(params, classification=cls),
            "StorageDescriptor": {"Location": "s3://landing/snap/%s/" % name,
                                  "Columns": [{"Name": "k", "Type": "string"}, {"Name": "v", "Type": "int"}]}})
    with connect(lake) as conn:
        for name, (cls, _, _, _) in cases.items():
            with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
                conn.execute("SELECT * FROM snap.%s" % name).fetchall()
            assert "table snap.%s holds snappy-compressed %s files" % (name, cls) in str(e.value)
        # The same data gzip-compressed is read.
        s3.put_object(Bucket="landing", Key="snap/gz/p.csv.gz", Body=gzip.compress(b"a,1\nb,2\n"))
        glue.create_table(DatabaseName="snap", TableInput={
            "Name": "gz", "Parameters": {"classification": "csv", "compressionType": "gzip"},
            "StorageDescriptor": {"Location": "s3://landing/snap/gz/",
                                  "Columns": [{"Name": "k", "Type": "string"}, {"Name": "v", "Type": "int"}]}})
        assert conn.execute("SELECT k, v FROM snap.gz ORDER BY 1").fetchall() == [("a", 1), ("b", 2)]


def test_external_schema_maps_a_catalog_database_and_persists(lake):
    with connect(lake) as conn:
        conn.execute("CREATE EXTERNAL SCHEMA spectrum FROM DATA CATALOG DATABASE 'iot' "
                     "IAM_ROLE 'arn:aws:iam::123456789012:role/spectrum' REGION 'us-east-1'")
        assert conn.execute("SELECT count(*) FROM spectrum.telemetry WHERE day = '2026-01-01'").fetchone() == (20,)
        with pytest.raises(psycopg.errors.DuplicateSchema):
            conn.execute("CREATE EXTERNAL SCHEMA spectrum FROM DATA CATALOG DATABASE 'iot'")
        conn.execute("CREATE EXTERNAL SCHEMA IF NOT EXISTS spectrum FROM DATA CATALOG DATABASE 'iot'")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM spectrum.nope")
        with pytest.raises(psycopg.Error) as e:
            conn.execute("CREATE EXTERNAL SCHEMA s2 FROM DATA CATALOG DATABASE 'no_such_db'")
        assert "does not exist" in str(e.value)
    # The mapping survives a restart.
    lake.stop()
    lake.start()
    with connect(lake) as conn:
        assert conn.execute("SELECT count(*) FROM spectrum.telemetry WHERE day = '2026-01-03'").fetchone() == (20,)
        conn.execute("DROP SCHEMA spectrum")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT count(*) FROM spectrum.telemetry WHERE day = '2026-01-03'")


def test_copy_from_s3_parquet_csv_json(lake):
    s3 = lake.boto3_client("s3")
    with connect(lake) as conn:
        s3.put_object(Bucket="curated", Key="loads/sales/a.parquet",
                      Body=parquet_bytes(conn, "SELECT i AS id, i * 1.5 AS amount FROM range(5) t(i)"))
        s3.put_object(Bucket="curated", Key="loads/sales/b.parquet",
                      Body=parquet_bytes(conn, "SELECT i AS id, i * 1.5 AS amount FROM range(5, 8) t(i)"))
        s3.put_object(Bucket="curated", Key="loads/csv/x.csv", Body=b"id;amount\n1;2.5\n2;\n")
        s3.put_object(Bucket="curated", Key="loads/json/x.json",
                      Body=b'{"amount": 9.5, "id": 30, "ignored": true}\n{"id": 40}\n')
        conn.execute("CREATE TABLE sales(id BIGINT, amount DOUBLE)")
        cur = conn.execute("COPY sales FROM 's3://curated/loads/sales/' IAM_ROLE default FORMAT AS PARQUET")
        assert cur.rowcount == 8
        conn.execute("COPY sales FROM 's3://curated/loads/csv/' IAM_ROLE default CSV DELIMITER ';' IGNOREHEADER 1")
        conn.execute("COPY sales FROM 's3://curated/loads/json/' IAM_ROLE default FORMAT AS JSON 'auto'")
        assert conn.execute("SELECT count(*), sum(amount) FROM sales").fetchone() == (12, 42.0 + 2.5 + 9.5)
        assert conn.execute("SELECT amount FROM sales WHERE id = 40").fetchone() == (None,)
        with pytest.raises(psycopg.Error) as e:
            conn.execute("COPY sales FROM 's3://curated/loads/none/' FORMAT AS PARQUET")
        assert "holds no objects" in str(e.value)


def test_unload_to_s3_partitioned_parquet_then_copy_back(lake):
    s3 = lake.boto3_client("s3")
    with connect(lake) as conn:
        cur = conn.execute("UNLOAD ('SELECT device, seq, temperature, day FROM iot.telemetry "
                           "WHERE day IN (''2026-01-01'', ''2026-01-02'')') TO 's3://curated/unload/telemetry/' "
                           "IAM_ROLE default FORMAT AS PARQUET PARTITION BY (day)")
        assert cur.statusmessage == "UNLOAD 40"
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="curated", Prefix="unload/")["Contents"])
        assert keys == ["unload/telemetry/day=2026-01-01/0000_part_00.parquet",
                        "unload/telemetry/day=2026-01-02/0000_part_00.parquet"]
        # The objects are real S3 objects: aws s3 ls lists them.
        r = lake.aws("s3", "ls", "--recursive", "s3://curated/unload/")
        assert r.returncode == 0 and "day=2026-01-02/0000_part_00.parquet" in r.stdout, r.stdout + r.stderr
        # Not again without ALLOWOVERWRITE.
        with pytest.raises(psycopg.Error) as e:
            conn.execute("UNLOAD ('SELECT 1 AS x') TO 's3://curated/unload/telemetry/' FORMAT PARQUET")
        assert "ALLOWOVERWRITE" in str(e.value)
        # Read back: PARTITION BY leaves the partition column out of the files (Redshift).
        conn.execute("CREATE TABLE back(device VARCHAR, seq BIGINT, temperature DOUBLE)")
        conn.execute("COPY back FROM 's3://curated/unload/telemetry/day=2026-01-02/' FORMAT AS PARQUET")
        assert conn.execute("SELECT count(*), avg(temperature) FROM back").fetchone() == (20, 24.5)
        # CSV with a header, one file.
        conn.execute("UNLOAD ('SELECT 1 AS a, ''x'' AS b') TO 's3://curated/unload/csv/one_' CSV HEADER")
        body = s3.get_object(Bucket="curated", Key="unload/csv/one_0000_part_00")["Body"].read()
        assert body == b"a,b\n1,x\n"


def test_non_root_user_denied_then_allowed_and_audited(lake):
    iam = lake.boto3_client("iam")
    iam.create_user(UserName="analyst")
    iam.create_login_profile(UserName="analyst", Password="Analyst-Pw-2026")
    kw = dict(user="analyst", password="Analyst-Pw-2026")
    with connect(lake, **kw) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute("SELECT count(*) FROM iot.telemetry WHERE day = '2026-01-01'")
        assert "permission denied for table iot.telemetry" in str(e.value)
        assert "glue:GetTable" in str(e.value)
        # Reading the files directly would bypass that: root only.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read_parquet('/etc/passwd')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM '/etc/passwd'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO '/tmp/x.csv'")
        # Warehouse tables stay usable.
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["glue:GetTable", "glue:GetPartitions"],
         "Resource": "arn:aws:glue:us-east-1:123456789012:table/iot/telemetry"}]}
    iam.put_user_policy(UserName="analyst", PolicyName="catalog", PolicyDocument=json.dumps(policy))
    with connect(lake, **kw) as conn:
        # The catalog alone is not enough: the objects need s3:GetObject.
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute("SELECT count(*) FROM iot.telemetry WHERE day = '2026-01-01'")
        assert "s3:GetObject" in str(e.value)
        policy["Statement"].append({"Effect": "Allow", "Action": "s3:GetObject",
                                    "Resource": "arn:aws:s3:::landing/iot/telemetry/*"})
        iam.put_user_policy(UserName="analyst", PolicyName="catalog", PolicyDocument=json.dumps(policy))
        # The same open session sees the new permission at once.
        assert conn.execute("SELECT count(*) FROM iot.telemetry WHERE day = '2026-01-01'").fetchone() == (20,)
        # Pruning decides what must be allowed: the partition outside the table prefix is not.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM iot.telemetry WHERE day = '2025-12-31'")
        # COPY and UNLOAD need S3 permissions on their locations.
        conn.execute("CREATE TABLE mine(device VARCHAR, seq BIGINT, temperature DOUBLE)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY mine FROM 's3://curated/unload/telemetry/day=2026-01-01/' FORMAT AS PARQUET")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UNLOAD ('SELECT * FROM mine') TO 's3://curated/analyst/' FORMAT AS PARQUET")
    r = psql(lake, "SELECT count(*) FROM iot.telemetry WHERE day = '2026-01-02'", **kw)
    assert r.returncode == 0 and r.stdout.strip() == "20", r.stderr
    # The audit trail has the analyst's statements: denied and allowed, with rows and timing.
    events = []
    deadline = time.time() + 20
    while time.time() < deadline:
        events = sql_events(lake, user="analyst")
        if any(e.get("errorCode") == "AccessDenied" for e in events) and any(
                e["requestParameters"]["rows"] == "1" and "2026-01-02" in e["requestParameters"]["sql"]
                for e in events):
            break
        time.sleep(0.5)
    denied = [e for e in events if e.get("errorCode") == "AccessDenied"]
    assert denied and denied[-1]["requestParameters"]["sqlState"] == "42501"
    ok = [e for e in events if "2026-01-02" in e["requestParameters"]["sql"] and "errorCode" not in e]
    assert ok, events
    rec = ok[0]
    assert rec["eventSource"] == "redshift-data.amazonaws.com"
    assert rec["userIdentity"]["type"] == "IAMUser"
    assert rec["requestParameters"]["database"] == "tarn"
    assert int(rec["requestParameters"]["durationMs"]) >= 0
    assert rec["resources"][0]["ARN"] == "arn:aws:glue:us-east-1:123456789012:table/iot/telemetry"


def test_long_statements_are_truncated_in_the_audit(lake):
    with connect(lake) as conn:
        conn.execute("SELECT 1 AS " + "x" * 10000)
    deadline = time.time() + 20
    while time.time() < deadline:
        ev = [e for e in sql_events(lake, user=None) if e["requestParameters"]["sql"].startswith("SELECT 1 AS xxx")]
        if ev:
            break
        time.sleep(0.5)
    assert ev
    assert len(ev[0]["requestParameters"]["sql"]) < 4200
    assert ev[0]["requestParameters"]["sql"].endswith("…")


def test_policy_revoked_mid_session_applies_to_the_next_execution(lake):
    """IAM is checked at every execution, not only at Prepare: a server-side prepared statement
    (psycopg prepare=True: Parse once, then Bind/Execute) and a repeated simple query both fail
    with 42501 once the user's policy is deleted, and every execution is audited."""
    iam = lake.boto3_client("iam")
    iam.create_user(UserName="revokee")
    iam.create_login_profile(UserName="revokee", Password="Revokee-Pw-2026")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["glue:GetTable", "glue:GetPartitions"],
         "Resource": "arn:aws:glue:us-east-1:123456789012:table/iot/telemetry"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::landing/iot/telemetry/*"}]}
    iam.put_user_policy(UserName="revokee", PolicyName="read", PolicyDocument=json.dumps(policy))
    prepared = "SELECT count(*) FROM iot.telemetry WHERE day = '2026-01-01' AND seq >= %s /* revokee */"
    simple = "SELECT count(*) FROM iot.telemetry WHERE day = '2026-01-02' /* revokee */"
    constant = "SELECT 7 /* revokee */"
    warehouse = "SELECT range FROM range(4) WHERE range > %s /* revokee */"
    with connect(lake, user="revokee", password="Revokee-Pw-2026") as conn:
        cur = conn.cursor()
        assert cur.execute(prepared, (0,), prepare=True).fetchone() == (20,)
        assert cur.execute(prepared, (10,), prepare=True).fetchone() == (10,)
        assert conn.execute(simple).fetchone() == (20,)
        assert conn.execute(simple).fetchone() == (20,)
        iam.delete_user_policy(UserName="revokee", PolicyName="read")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            cur.execute(prepared, (0,), prepare=True).fetchone()
        assert "glue:GetTable" in str(e.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(simple).fetchone()
        # Allowed again: the same prepared statement works at its next execution.
        iam.put_user_policy(UserName="revokee", PolicyName="read", PolicyDocument=json.dumps(policy))
        assert cur.execute(prepared, (15,), prepare=True).fetchone() == (5,)
        # Statements answered from the session's cache (a literal SELECT's rows, a prepared
        # warehouse query) are audited at every execution too.
        for _ in range(3):
            assert conn.execute(constant).fetchone() == (7,)
            assert cur.execute(warehouse, (1,), prepare=True).fetchall() == [(2,), (3,)]
    # One audit record per execution (the prepared statement's Bind/Execute as well): user,
    # statement, rows sent (one count each), duration; the denied ones with 42501.
    want = {prepared.replace("%s", "$1"): ["1", "1", None, "1"], simple: ["1", "1", None],
            constant: ["1"] * 3, warehouse.replace("%s", "$1"): ["2"] * 3}
    deadline = time.time() + 20
    while True:
        events = sql_events(lake, user="revokee")
        got = {}
        for e in reversed(events):  # oldest first
            p = e["requestParameters"]
            if p["sql"] in want:
                got.setdefault(p["sql"], []).append(None if e.get("errorCode") else p["rows"])
        if got == want or time.time() > deadline:
            break
        time.sleep(0.5)
    assert got == want
    for e in events:
        p = e["requestParameters"]
        if p["sql"] in want:
            assert e["userIdentity"]["userName"] == "revokee"
            assert int(p["durationMs"]) >= 0
            if e.get("errorCode"):
                assert p["sqlState"] == "42501"

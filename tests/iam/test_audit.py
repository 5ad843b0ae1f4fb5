"""The audit trail: CloudTrail records for allowed, denied and failed calls, LookupEvents with
the stock awscli/boto3, gzip log files and signed digests in the `audit` bucket, and
`tarn audit verify` catching modified, deleted and inserted log files."""
import glob
import gzip
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Lake, tarn_binary  # noqa: E402
from test_sigv4 import aws_with  # noqa: E402


def ok(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def verify(data_dir):
    return subprocess.run([tarn_binary(), "audit", "verify", "--data-dir", data_dir],
                          capture_output=True, text=True, timeout=120)


def test_audit_records_lookup_and_verify():
    lake = Lake(env={"TARN_AUDIT_FLUSH_SECONDS": "1"})
    lake.start()
    try:
        ok(lake.aws("iam", "create-user", "--user-name", "alice", "--output", "json"))
        key = ok(lake.aws("iam", "create-access-key", "--user-name", "alice", "--output", "json"))["AccessKey"]
        ok(lake.aws("iam", "create-login-profile", "--user-name", "alice", "--password", "Sup3r-Secret-Pw"))
        r = aws_with(lake, key["AccessKeyId"], key["SecretAccessKey"], "iam", "create-user", "--user-name", "eve")
        assert r.returncode != 0 and "AccessDenied" in r.stderr
        r = lake.aws("iam", "get-user", "--user-name", "nobody")
        assert r.returncode != 0 and "NoSuchEntity" in r.stderr

        # LookupEvents by event name: the denial is there, with who and why.
        out = ok(lake.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                          "AttributeKey=EventName,AttributeValue=CreateUser", "--output", "json"))
        events = out["Events"]
        assert [e["Username"] for e in events] == ["alice", "root"]  # newest first
        denied = json.loads(events[0]["CloudTrailEvent"])
        assert denied["errorCode"] == "AccessDenied"
        assert "not authorized to perform: iam:CreateUser" in denied["errorMessage"]
        assert denied["eventSource"] == "iam.amazonaws.com"
        assert denied["userIdentity"]["type"] == "IAMUser"
        assert denied["userIdentity"]["arn"] == "arn:aws:iam::123456789012:user/alice"
        assert denied["userIdentity"]["accessKeyId"] == key["AccessKeyId"]
        assert denied["requestParameters"] == {"userName": "eve"}
        assert denied["sourceIPAddress"] == "127.0.0.1"
        assert "aws-cli" in denied["userAgent"]
        for f in ("eventVersion", "eventTime", "awsRegion", "requestID", "eventID"):
            assert denied[f], f
        allowed = json.loads(events[1]["CloudTrailEvent"])
        assert "errorCode" not in allowed and allowed["userIdentity"]["type"] == "Root"

        # By user, and failed calls are recorded too.
        ct = lake.boto3_client("cloudtrail")
        by_root = ct.lookup_events(LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "root"}])
        names = [e["EventName"] for e in by_root["Events"]]
        assert "GetUser" in names and "CreateAccessKey" in names
        failed = [json.loads(e["CloudTrailEvent"]) for e in by_root["Events"] if e["EventName"] == "GetUser"][0]
        assert failed["errorCode"] == "NoSuchEntity"
        # Pagination with MaxResults/NextToken through the stock paginator.
        pages = list(ct.get_paginator("lookup_events").paginate(PaginationConfig={"PageSize": 2}))
        assert len(pages) >= 3, pages
        total = sum(len(p["Events"]) for p in pages)
        assert total >= 6
        # Time range: nothing from the future.
        future = ct.lookup_events(StartTime=time.time() + 3600, EndTime=time.time() + 7200)
        assert future["Events"] == []
        # A user without cloudtrail permissions cannot read the trail.
        r = aws_with(lake, key["AccessKeyId"], key["SecretAccessKey"], "cloudtrail", "lookup-events")
        assert r.returncode != 0 and "AccessDenied" in r.stderr

        # Keep calling until the 1-second flush has written at least two log files.
        pattern = os.path.join(lake.data_dir, "objects", "audit", "AWSLogs", "123456789012", "CloudTrail",
                               "us-east-1", "*", "*", "*", "*.json.gz")
        deadline = time.time() + 60
        while len(glob.glob(pattern)) < 2 and time.time() < deadline:
            ok(lake.aws("sts", "get-caller-identity"))
            time.sleep(1)
        ok(lake.aws("sts", "get-caller-identity"))
    finally:
        assert lake.stop() == 0, lake.read_log()

    try:
        base = os.path.join(lake.data_dir, "objects", "audit", "AWSLogs", "123456789012")
        logs = sorted(glob.glob(os.path.join(base, "CloudTrail", "us-east-1", "*", "*", "*", "*.json.gz")))
        digests = glob.glob(os.path.join(base, "CloudTrail-Digest", "us-east-1", "*", "*", "*", "*.json.gz"))
        assert len(logs) >= 2 and len(digests) >= 1, (logs, digests)
        assert os.path.basename(logs[0]).startswith("123456789012_CloudTrail_us-east-1_")
        records = []
        for path in logs:
            with gzip.open(path, "rt") as f:
                records += json.load(f)["Records"]
            with open(path, "rb") as f:
                assert b"Sup3r-Secret-Pw" not in gzip.decompress(f.read())
        assert any(r["eventName"] == "CreateLoginProfile" for r in records)
        assert any(r.get("errorCode") == "AccessDenied" for r in records)
        with gzip.open(digests[0], "rt") as f:
            digest = json.load(f)
        assert digest["digestSignatureAlgorithm"] == "HMAC-SHA256"
        assert {f["s3Object"] for f in digest["logFiles"]} <= {
            os.path.relpath(p, os.path.join(lake.data_dir, "objects", "audit")) for p in logs}

        r = verify(lake.data_dir)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("OK")

        # Modify one log file (a valid gzip with one record removed).
        with gzip.open(logs[0], "rt") as f:
            doc = json.load(f)
        doc["Records"] = [x for x in doc["Records"] if x.get("errorCode") != "AccessDenied"] or doc["Records"][1:]
        with open(logs[0], "wb") as f:
            f.write(gzip.compress(json.dumps(doc).encode()))
        r = verify(lake.data_dir)
        assert r.returncode == 1
        assert "MODIFIED AWSLogs/123456789012/CloudTrail/" in r.stdout, r.stdout

        # Delete another and insert a forged one.
        os.remove(logs[1])
        forged = os.path.join(os.path.dirname(logs[1]), "123456789012_CloudTrail_us-east-1_20261125T0000Z_FAKE.json.gz")
        with open(forged, "wb") as f:
            f.write(gzip.compress(b'{"Records":[]}'))
        r = verify(lake.data_dir)
        assert r.returncode == 1
        assert "DELETED AWSLogs/123456789012/CloudTrail/" in r.stdout, r.stdout
        assert "INSERTED AWSLogs/123456789012/CloudTrail/" in r.stdout and "FAKE" in r.stdout, r.stdout
    finally:
        lake.cleanup()


def test_events_indexed_before_a_crash_reach_a_log_file_after_restart():
    # A long flush interval: the events are only in the index when the server is killed.
    lake = Lake(env={"TARN_AUDIT_FLUSH_SECONDS": "3600"})
    lake.start()
    try:
        ok(lake.aws("iam", "create-user", "--user-name", "crash-witness"))
        deadline = time.time() + 30
        while time.time() < deadline:  # LookupEvents answers from the index
            out = ok(lake.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                              "AttributeKey=EventName,AttributeValue=CreateUser", "--output", "json"))
            if out["Events"]:
                break
            time.sleep(0.5)
        assert out["Events"], "CreateUser never reached the audit index"
        written = glob.glob(os.path.join(lake.data_dir, "objects", "audit", "AWSLogs", "**", "*.json.gz"),
                            recursive=True)
        assert not written, "a log file was written before the flush interval: the test proves nothing"
        lake.kill()
        lake.env["TARN_AUDIT_FLUSH_SECONDS"] = "1"
        lake.start()
        def create_user_records():
            recs = []
            for f in glob.glob(os.path.join(lake.data_dir, "objects", "audit", "AWSLogs", "**", "*.json.gz"),
                               recursive=True):
                recs += json.loads(gzip.decompress(open(f, "rb").read()))["Records"]
            return [r for r in recs if r.get("eventName") == "CreateUser"]
        deadline = time.time() + 30
        records = create_user_records()
        while time.time() < deadline and not records:
            time.sleep(0.5)
            records = create_user_records()
        assert [r["requestParameters"]["userName"] for r in records] == ["crash-witness"], records
        assert lake.stop() == 0, lake.read_log()
        r = verify(lake.data_dir)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        lake.stop()
        lake.cleanup()


def _log_records(lake):
    recs = []
    for f in glob.glob(os.path.join(lake.data_dir, "objects", "audit", "AWSLogs", "*", "CloudTrail", "**",
                                    "*.json.gz"), recursive=True):
        recs += json.loads(gzip.decompress(open(f, "rb").read()))["Records"]
    return recs


def test_finished_calls_survive_kill_9_after_the_index_interval_and_shutdown_writes_all():
    """docs/security.md "What a reader sees, and when": a finished call is in the crash-safe index
    at most TARN_AUDIT_INDEX_MS (100 ms) later, without anyone asking for it; SIGTERM writes every
    queued event to a log file."""
    import psycopg
    lake = Lake(env={"TARN_AUDIT_FLUSH_SECONDS": "3600"})
    lake.start()
    try:
        iam = lake.boto3_client("iam")
        users = ["kill9-%d" % i for i in range(10)]
        for u in users:
            iam.create_user(UserName=u)
        host, port = lake.host_port("sql")
        dsn = "host=%s port=%d user=root password=%s dbname=tarn sslmode=disable" % (host, port, Lake.PASSWORD)
        with psycopg.connect(dsn, autocommit=True) as c:
            for i in range(120):
                c.execute("select %d as kill9" % i)
        # No LookupEvents before the kill: it would index the queue itself and prove nothing.
        time.sleep(1.5)  # 15 index intervals
        lake.kill()
        lake.start()
        assert sorted(e["requestParameters"]["userName"] for e in lake.audit_events("CreateUser")) == sorted(users)
        ct = lake.boto3_client("cloudtrail")
        statements = set()
        for page in ct.get_paginator("lookup_events").paginate(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "ExecuteStatement"}]):
            for e in page["Events"]:
                sql = json.loads(e["CloudTrailEvent"])["requestParameters"]["sql"]
                if "kill9" in sql:
                    statements.add(sql)
        assert statements == {"select %d as kill9" % i for i in range(120)}

        # A clean stop right after the calls: everything queued reaches a log file.
        iam = lake.boto3_client("iam")  # the restarted lake listens on new ports
        for u in ["term-%d" % i for i in range(5)]:
            iam.create_user(UserName=u)
        assert lake.stop() == 0, lake.read_log()
        written = [r["requestParameters"]["userName"] for r in _log_records(lake) if r["eventName"] == "CreateUser"]
        assert sorted(written) == sorted(users + ["term-%d" % i for i in range(5)])
        r = verify(lake.data_dir)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        lake.stop()
        lake.cleanup()

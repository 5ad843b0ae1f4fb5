"""Glue calls go through IAM like every other API: a non-root user without glue:* permissions
gets AccessDeniedException from the stock awscli and boto3 (GetTable, CreateTable,
StartCrawler, GetPartitions), is allowed once a policy grants the actions on the catalog's
resource ARNs, stays denied outside them and on an explicit Deny, and every denial is in the
audit trail (CloudTrail LookupEvents) with who, what and why."""
import json
import subprocess
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"


def ok(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def aws_as(lake, key, *args):
    env = lake.aws_env()
    env["AWS_ACCESS_KEY_ID"] = key["AccessKeyId"]
    env["AWS_SECRET_ACCESS_KEY"] = key["SecretAccessKey"]
    return subprocess.run(["aws", "--endpoint-url", lake.url()] + list(args), env=env,
                          capture_output=True, text=True, timeout=120)


def glue_as(lake, key):
    return boto3.client("glue", endpoint_url=lake.url(), aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"], region_name=lake.REGION,
                        config=Config(retries={"max_attempts": 1}))


def denied(call):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDeniedException", err
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err["Message"]


TABLE = {"Name": "readings", "PartitionKeys": [{"Name": "day", "Type": "string"}],
         "StorageDescriptor": {"Location": "s3://landing/iot/readings/",
                               "Columns": [{"Name": "temp", "Type": "double"}]}}


def test_glue_denied_without_policy_allowed_with_one_and_audited(lake):
    root = lake.boto3_client("glue")
    root.create_database(DatabaseInput={"Name": "raw"})
    root.create_table(DatabaseName="raw", TableInput=TABLE)
    root.create_partition(DatabaseName="raw", TableName="readings",
                          PartitionInput={"Values": ["2026-11-25"]})
    root.create_database(DatabaseInput={"Name": "secret"})
    root.create_crawler(Name="iot", Role="r", DatabaseName="raw",
                        Targets={"S3Targets": [{"Path": "s3://landing/iot/"}]})

    ok(lake.aws("iam", "create-user", "--user-name", "analyst"))
    key = ok(lake.aws("iam", "create-access-key", "--user-name", "analyst", "--output",
                      "json"))["AccessKey"]
    glue = glue_as(lake, key)

    # No policy: every Glue call is denied, with Glue's error shape, and nothing changes.
    msg = denied(lambda: glue.get_table(DatabaseName="raw", Name="readings"))
    assert msg == ("User: arn:aws:iam::%s:user/analyst is not authorized to perform: "
                   "glue:GetTable on resource: arn:aws:glue:us-east-1:%s:table/raw/readings"
                   % (ACCOUNT, ACCOUNT))
    denied(lambda: glue.create_table(DatabaseName="raw", TableInput=dict(TABLE, Name="evil")))
    denied(lambda: glue.start_crawler(Name="iot"))
    denied(lambda: glue.get_partitions(DatabaseName="raw", TableName="readings"))
    denied(lambda: glue.get_databases())
    r = aws_as(lake, key, "glue", "get-table", "--database-name", "raw", "--name", "readings")
    assert r.returncode != 0 and "AccessDeniedException" in r.stderr, r.stderr
    assert [t["Name"] for t in root.get_tables(DatabaseName="raw")["TableList"]] == ["readings"]
    assert root.get_crawler(Name="iot")["Crawler"]["State"] == "READY"

    # A policy on the raw database's tables and the iot crawler.
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Action": ["glue:GetTable", "glue:GetTables", "glue:CreateTable", "glue:GetPartitions",
                    "glue:GetDatabase"],
         "Resource": ["arn:aws:glue:us-east-1:%s:catalog" % ACCOUNT,
                      "arn:aws:glue:us-east-1:%s:database/raw" % ACCOUNT,
                      "arn:aws:glue:us-east-1:%s:table/raw/*" % ACCOUNT]},
        {"Effect": "Allow", "Action": "glue:StartCrawler",
         "Resource": "arn:aws:glue:us-east-1:%s:crawler/iot" % ACCOUNT},
        {"Effect": "Deny", "Action": "glue:CreateTable",
         "Resource": "arn:aws:glue:us-east-1:%s:table/raw/forbidden*" % ACCOUNT}]}
    ok(lake.aws("iam", "put-user-policy", "--user-name", "analyst", "--policy-name", "GlueRaw",
                "--policy-document", json.dumps(policy)))
    assert glue.get_table(DatabaseName="raw", Name="readings")["Table"]["Name"] == "readings"
    glue.create_table(DatabaseName="raw", TableInput=dict(TABLE, Name="mine"))
    parts = glue.get_partitions(DatabaseName="raw", TableName="readings",
                                Expression="day = '2026-11-25'")["Partitions"]
    assert [p["Values"] for p in parts] == [["2026-11-25"]]
    glue.start_crawler(Name="iot")
    out = ok(aws_as(lake, key, "glue", "get-table", "--database-name", "raw", "--name", "mine",
                    "--output", "json"))
    assert out["Table"]["Name"] == "mine"
    # Outside the granted resources, and under the explicit Deny: still denied.
    denied(lambda: glue.get_table(DatabaseName="secret", Name="x"))
    denied(lambda: glue.create_table(DatabaseName="raw", TableInput=dict(TABLE, Name="forbidden_1")))
    denied(lambda: glue.delete_table(DatabaseName="raw", Name="readings"))
    assert root.get_table(DatabaseName="raw", Name="readings")["Table"]["Name"] == "readings"
    with pytest.raises(ClientError) as e:
        root.get_table(DatabaseName="raw", Name="forbidden_1")
    assert e.value.response["Error"]["Code"] == "EntityNotFoundException"

    # The audit trail has the denials, who made them and why; and the allowed calls.
    ct = lake.boto3_client("cloudtrail")
    deadline = time.time() + 30
    while True:
        events = []
        for page in ct.get_paginator("lookup_events").paginate(LookupAttributes=[
                {"AttributeKey": "Username", "AttributeValue": "analyst"}]):
            events += [json.loads(e["CloudTrailEvent"]) for e in page["Events"]]
        by_name = {}
        for ev in events:
            by_name.setdefault(ev["eventName"], []).append(ev)
        if all(n in by_name for n in ("GetTable", "CreateTable", "StartCrawler", "DeleteTable")) \
                or time.time() > deadline:
            break
        time.sleep(0.5)
    for name in ("GetTable", "CreateTable", "StartCrawler", "GetPartitions", "DeleteTable"):
        evs = by_name.get(name, [])
        assert any(ev.get("errorCode") for ev in evs), (name, evs)
        ev = [e for e in evs if e.get("errorCode")][-1]  # newest first: the oldest denial
        assert ev["eventSource"] == "glue.amazonaws.com", ev
        assert ev["errorCode"] == "AccessDeniedException", ev
        assert "not authorized to perform: glue:%s" % name in ev["errorMessage"], ev
        assert ev["userIdentity"]["type"] == "IAMUser"
        assert ev["userIdentity"]["arn"] == "arn:aws:iam::%s:user/analyst" % ACCOUNT
        assert ev["userIdentity"]["accessKeyId"] == key["AccessKeyId"]
    assert [e["requestParameters"] for e in by_name["GetTable"] if e.get("errorCode")][-1] == \
        {"databaseName": "raw", "name": "readings"}
    assert [e["requestParameters"] for e in by_name["CreateTable"] if e.get("errorCode")][-1] == \
        {"databaseName": "raw", "tableInput.name": "evil"}
    assert any("errorCode" not in ev for ev in by_name["GetTable"])
    assert any("errorCode" not in ev for ev in by_name["StartCrawler"])

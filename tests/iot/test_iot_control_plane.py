"""AWS IoT control plane driven by the real awscli and boto3 (REST-JSON, dispatched by the SigV4
credential scope's service name "iot"): topic rules with SQL errors reported by position,
things / types / groups, certificates issued by the lake's CA, policies and versions,
DescribeEndpoint; and the rules engine end to end through `aws iot-data publish` (HTTPS publish
and Basic Ingest) with s3 and firehose actions and the error action's failure document."""
import glob
import json
import os
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from harness import tarn_binary

ACCOUNT = "123456789012"


def aws_json(lake, *args):
    r = lake.aws(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def rule_payload(sql, actions, **kw):
    p = {"sql": sql, "actions": actions, "ruleDisabled": False, "awsIotSqlVersion": "2016-03-23"}
    p.update(kw)
    return json.dumps(p)


def test_topic_rules_with_awscli(lake):
    # A statement that does not parse: InvalidRequestException naming line and column.
    bad = lake.aws("iot", "create-topic-rule", "--rule-name", "bad",
                   "--topic-rule-payload", rule_payload("SELECT temperature FROM WHERE x", []))
    assert bad.returncode != 0
    assert "InvalidRequestException" in bad.stderr
    assert "line 1, column 25" in bad.stderr, bad.stderr

    sql = "SELECT temperature, topic(2) AS device FROM 'sensors/+/telemetry' WHERE temperature > 50"
    actions = [{"republish": {"topic": "alerts/${topic(2)}", "qos": 1,
                              "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}}]
    aws_json(lake, "iot", "create-topic-rule", "--rule-name", "hot",
             "--topic-rule-payload", rule_payload(sql, actions, description="hot readings"))
    dup = lake.aws("iot", "create-topic-rule", "--rule-name", "hot",
                   "--topic-rule-payload", rule_payload(sql, actions))
    assert "ResourceAlreadyExistsException" in dup.stderr

    got = aws_json(lake, "iot", "get-topic-rule", "--rule-name", "hot")
    assert got["ruleArn"] == "arn:aws:iot:us-east-1:%s:rule/hot" % ACCOUNT
    assert got["rule"]["sql"] == sql
    assert got["rule"]["description"] == "hot readings"
    assert got["rule"]["actions"][0]["republish"]["topic"] == "alerts/${topic(2)}"
    assert got["rule"]["ruleDisabled"] is False

    aws_json(lake, "iot", "disable-topic-rule", "--rule-name", "hot")
    assert aws_json(lake, "iot", "get-topic-rule", "--rule-name", "hot")["rule"]["ruleDisabled"] is True
    aws_json(lake, "iot", "enable-topic-rule", "--rule-name", "hot")

    aws_json(lake, "iot", "replace-topic-rule", "--rule-name", "hot", "--topic-rule-payload",
             rule_payload("SELECT * FROM 'sensors/#'", actions))
    listed = aws_json(lake, "iot", "list-topic-rules")["rules"]
    assert [(r["ruleName"], r["topicPattern"], r["ruleDisabled"]) for r in listed] == [
        ("hot", "sensors/#", False)]

    iot = lake.boto3_client("iot")
    with pytest.raises(ClientError) as e:
        iot.get_topic_rule(ruleName="nope")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        iot.create_topic_rule(ruleName="unsupported", topicRulePayload={
            "sql": "SELECT * FROM 'a'", "actions": [{"lambda": {"functionArn": "arn:x"}}]})
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "not implemented" in e.value.response["Error"]["Message"]

    aws_json(lake, "iot", "delete-topic-rule", "--rule-name", "hot")
    assert aws_json(lake, "iot", "list-topic-rules")["rules"] == []


def test_things_types_groups(lake):
    iot = lake.boto3_client("iot")
    iot.create_thing_type(thingTypeName="sensor", thingTypeProperties={"thingTypeDescription": "temp"})
    made = iot.create_thing(thingName="A", thingTypeName="sensor",
                            attributePayload={"attributes": {"site": "north", "floor": "2"}})
    assert made["thingArn"] == "arn:aws:iot:us-east-1:%s:thing/A" % ACCOUNT
    iot.create_thing(thingName="B")
    d = iot.describe_thing(thingName="A")
    assert d["thingTypeName"] == "sensor" and d["attributes"] == {"site": "north", "floor": "2"}
    assert d["version"] == 1 and d["thingId"] == made["thingId"]

    iot.update_thing(thingName="A", attributePayload={"attributes": {"floor": "", "room": "7"}, "merge": True})
    d = iot.describe_thing(thingName="A")
    assert d["attributes"] == {"site": "north", "room": "7"} and d["version"] == 2
    with pytest.raises(ClientError) as e:
        iot.update_thing(thingName="A", expectedVersion=1, attributePayload={"attributes": {}})
    assert e.value.response["Error"]["Code"] == "VersionConflictException"

    names = [t["thingName"] for t in iot.list_things()["things"]]
    assert names == ["A", "B"]
    assert [t["thingName"] for t in iot.list_things(thingTypeName="sensor")["things"]] == ["A"]
    assert [t["thingName"] for t in iot.list_things(attributeName="site", attributeValue="north")["things"]] == ["A"]
    page = iot.list_things(maxResults=1)
    assert [t["thingName"] for t in page["things"]] == ["A"] and page["nextToken"]
    assert [t["thingName"] for t in iot.list_things(nextToken=page["nextToken"])["things"]] == ["B"]

    iot.create_thing_group(thingGroupName="floor2")
    iot.add_thing_to_thing_group(thingGroupName="floor2", thingName="A")
    assert iot.list_things_in_thing_group(thingGroupName="floor2")["things"] == ["A"]
    iot.remove_thing_from_thing_group(thingGroupName="floor2", thingName="A")
    assert iot.list_things_in_thing_group(thingGroupName="floor2")["things"] == []
    assert iot.describe_thing_type(thingTypeName="sensor")["thingTypeProperties"]["thingTypeDescription"] == "temp"

    iot.delete_thing(thingName="B")
    with pytest.raises(ClientError) as e:
        iot.describe_thing(thingName="B")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    out = aws_json(lake, "iot", "list-things")
    assert [t["thingName"] for t in out["things"]] == ["A"]


def test_certificates_policies_and_endpoint(lake, tmp_path):
    iot = lake.boto3_client("iot")
    c = aws_json(lake, "iot", "create-keys-and-certificate", "--set-as-active")
    cert_id = c["certificateId"]
    assert c["certificateArn"] == "arn:aws:iot:us-east-1:%s:cert/%s" % (ACCOUNT, cert_id)
    assert "BEGIN CERTIFICATE" in c["certificatePem"] and "PRIVATE KEY" in c["keyPair"]["PrivateKey"]
    # The certificate verifies against the lake's CA under <data>/keys/.
    cert = tmp_path / "dev.pem"
    cert.write_text(c["certificatePem"])
    ca = os.path.join(lake.data_dir, "keys", "iot-ca.pem")
    v = subprocess.run(["openssl", "verify", "-CAfile", ca, str(cert)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    fp = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                        capture_output=True, text=True, check=True).stdout
    assert fp.split("=", 1)[1].strip().replace(":", "").lower() == cert_id

    desc = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["certificatePem"] == c["certificatePem"]

    doc = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect",
         "Resource": "arn:aws:iot:us-east-1:%s:client/${iot:Connection.Thing.ThingName}" % ACCOUNT},
        {"Effect": "Allow", "Action": "iot:Publish",
         "Resource": "arn:aws:iot:us-east-1:%s:topic/sensors/${iot:Connection.Thing.ThingName}/*" % ACCOUNT}]})
    p = aws_json(lake, "iot", "create-policy", "--policy-name", "device", "--policy-document", doc)
    assert p["policyVersionId"] == "1"
    bad = lake.aws("iot", "create-policy", "--policy-name", "bad", "--policy-document", "{nope")
    assert bad.returncode != 0 and "MalformedPolicy" in bad.stderr
    v2 = iot.create_policy_version(policyName="device", policyDocument=doc, setAsDefault=True)
    assert v2["policyVersionId"] == "2" and v2["isDefaultVersion"]
    assert iot.get_policy(policyName="device")["defaultVersionId"] == "2"
    versions = sorted((v["versionId"], v["isDefaultVersion"]) for v in
                      iot.list_policy_versions(policyName="device")["policyVersions"])
    assert versions == [("1", False), ("2", True)]
    iot.delete_policy_version(policyName="device", policyVersionId="1")

    iot.create_thing(thingName="A")
    aws_json(lake, "iot", "attach-policy", "--policy-name", "device", "--target", c["certificateArn"])
    aws_json(lake, "iot", "attach-thing-principal", "--thing-name", "A", "--principal", c["certificateArn"])
    attached = aws_json(lake, "iot", "list-attached-policies", "--target", c["certificateArn"])
    assert [x["policyName"] for x in attached["policies"]] == ["device"]
    assert iot.list_thing_principals(thingName="A")["principals"] == [c["certificateArn"]]

    with pytest.raises(ClientError) as e:
        iot.delete_certificate(certificateId=cert_id)
    assert e.value.response["Error"]["Code"] == "CertificateStateException"
    iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    assert iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "REVOKED"
    with pytest.raises(ClientError) as e:
        iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    assert e.value.response["Error"]["Code"] == "CertificateStateException"

    # RegisterCertificate of a device's own certificate, checked against its CA.
    key, own = tmp_path / "own.key", tmp_path / "own.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(own), "-subj", "/CN=own-device", "-days", "2"],
                   check=True, capture_output=True)
    reg = iot.register_certificate(certificatePem=own.read_text(), caCertificatePem=own.read_text(),
                                   status="ACTIVE")
    assert iot.describe_certificate(certificateId=reg["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
    with pytest.raises(ClientError) as e:
        iot.register_certificate(certificatePem=own.read_text(), caCertificatePem=c["certificatePem"])
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"

    ep = aws_json(lake, "iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS")
    assert ep["endpointAddress"]


def test_rules_engine_over_https_publish(lake):
    """iot-data Publish → rule → s3 object and firehose record; failures → error action."""
    fh = lake.boto3_client("firehose")
    fh.create_delivery_stream(
        DeliveryStreamName="telemetry",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::%s:role/firehose" % ACCOUNT, "BucketARN": "arn:aws:s3:::landing",
            "Prefix": "iot/fh/", "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 1}})
    actions = [{"s3": {"bucketName": "landing", "key": "iot/raw/${topic(2)}/${newuuid()}.json",
                       "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}},
               {"firehose": {"deliveryStreamName": "telemetry", "separator": "\n",
                             "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}}]
    sql = "SELECT temperature, topic(2) AS device FROM 'sensors/+/telemetry' WHERE temperature > 50"
    aws_json(lake, "iot", "create-topic-rule", "--rule-name", "hot", "--topic-rule-payload",
             rule_payload(sql, actions))
    err_actions = [{"firehose": {"deliveryStreamName": "missing-stream",
                                 "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}}]
    aws_json(lake, "iot", "create-topic-rule", "--rule-name", "broken", "--topic-rule-payload",
             rule_payload("SELECT * FROM 'broken/#'", err_actions, errorAction={
                 "s3": {"bucketName": "landing", "key": "iot/errors/${topic(2)}.json",
                        "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}}))

    for dev, temp in (("A", 72), ("B", 20), ("C", 99)):
        r = lake.aws("iot-data", "publish", "--topic", "sensors/%s/telemetry" % dev,
                     "--payload", json.dumps({"temperature": temp, "humidity": 40}))
        assert r.returncode == 0, r.stderr
    # Basic Ingest: straight to the rule, its FROM not consulted, topic() without the prefix.
    lake.boto3_client("iot-data").publish(topic="$aws/rules/hot/sensors/D/telemetry",
                                          payload=json.dumps({"temperature": 51}).encode())
    lake.boto3_client("iot-data").publish(topic="broken/x", payload=b"{\"v\": 1}")

    raw = os.path.join(lake.data_dir, "objects", "landing", "iot", "raw")
    deadline = time.time() + 10
    while time.time() < deadline:
        files = glob.glob(os.path.join(raw, "*", "*.json"))
        errs = glob.glob(os.path.join(lake.data_dir, "objects", "landing", "iot", "errors", "*.json"))
        if len(files) >= 3 and errs:
            break
        time.sleep(0.1)
    docs = [json.load(open(f)) for f in files]
    docs = sorted(docs, key=lambda d: d["device"])
    assert docs == [{"temperature": 72, "device": "A"}, {"temperature": 99, "device": "C"},
                    {"temperature": 51, "device": "D"}]
    failure = json.load(open(errs[0]))
    assert failure["ruleName"] == "broken" and failure["topic"] == "broken/x"
    assert failure["failures"][0]["failedAction"] == "FirehoseAction"
    assert failure["failures"][0]["failedResource"] == "missing-stream"

    # A message counts as delivered once all of its rule's actions finished: the firehose action
    # finishes after the S3 objects above are already visible (it waits for the WAL's fsync).
    want = ['tarn_iot_rule_messages_matched_total{rule="hot"} 4',
            'tarn_iot_rule_messages_filtered_total{rule="hot"} 1',
            'tarn_iot_rule_messages_delivered_total{rule="hot"} 3',
            'tarn_iot_rule_messages_failed_total{rule="broken"} 1']
    deadline = time.time() + 10
    while True:
        metrics = urllib.request.urlopen(lake.url() + "/metrics").read().decode()
        missing = [w for w in want if w not in metrics]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.1)
    assert not missing, [l for l in metrics.splitlines() if "tarn_iot_rule_messages" in l]


def test_rule_dry_run_cli_and_api(lake):
    sql = "SELECT temperature * 2 AS t2, topic(2) AS device FROM 'sensors/+/telemetry' WHERE temperature > 50"
    r = subprocess.run([tarn_binary(), "rules", "test", "--sql", sql, "--topic", "sensors/A/telemetry",
                        "--payload", '{"temperature": 60}'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"t2": 120, "device": "A"}
    r = subprocess.run([tarn_binary(), "rules", "test", "--sql", sql, "--topic", "sensors/A/telemetry",
                        "--payload", '{"temperature": 6}'], capture_output=True, text=True)
    assert r.returncode == 0 and "filtered" in r.stdout
    r = subprocess.run([tarn_binary(), "rules", "test", "--sql", "SELECT a FROM", "--topic", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "column 14" in r.stderr, r.stderr


def test_create_certificate_from_csr_keeps_the_key_on_the_device(lake, tmp_path):
    iot = lake.boto3_client("iot")
    key, csr = str(tmp_path / "dev.key"), str(tmp_path / "dev.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=csr-device"], check=True, capture_output=True)
    out = iot.create_certificate_from_csr(certificateSigningRequest=open(csr).read(), setAsActive=True)
    assert "keyPair" not in out
    crt = str(tmp_path / "dev.crt")
    with open(crt, "w") as f:
        f.write(out["certificatePem"])
    ca = os.path.join(lake.data_dir, "keys", "iot-ca.pem")
    v = subprocess.run(["openssl", "verify", "-CAfile", ca, crt], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", crt], capture_output=True, text=True)
    assert "CN = csr-device" in subject.stdout
    # The certificate is for the request's key.
    pub_cert = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", crt], capture_output=True, text=True)
    pub_key = subprocess.run(["openssl", "pkey", "-pubout", "-in", key], capture_output=True, text=True)
    assert pub_cert.stdout == pub_key.stdout
    desc = iot.describe_certificate(certificateId=out["certificateId"])["certificateDescription"]
    assert desc["status"] == "ACTIVE"

    with pytest.raises(ClientError) as e:
        iot.create_certificate_from_csr(certificateSigningRequest="not a csr")
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    # A request whose signature does not match its key proves nothing: refused.
    pem = open(csr).read()
    lines = pem.strip().splitlines()
    body = "".join(lines[1:-1])
    import base64
    der = bytearray(base64.b64decode(body))
    der[-5] ^= 0x55  # inside the signature
    forged = lines[0] + "\n" + base64.encodebytes(bytes(der)).decode() + lines[-1] + "\n"
    with pytest.raises(ClientError) as e:
        iot.create_certificate_from_csr(certificateSigningRequest=forged)
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"

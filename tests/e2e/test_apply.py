"""`tarn apply` against a running lake through its APIs (docs/cli.md, "tarn apply"):
create, idempotent re-apply, update, dry-run, validation errors with file:line:field,
removed entries reported and deleted only with --prune, the state of the example file."""
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import REPO, Lake, tarn_binary

CATALOG_AND_STREAM = """
catalog:
  databases:
    - name: plant
      Description: one
  tables:
    - database: plant
      name: readings
      StorageDescriptor:
        Location: s3://landing/iot/readings/
        Columns:
          - {Name: device, Type: string}
          - {Name: value, Type: double}
      PartitionKeys: [{Name: day, Type: string}]
streams:
  - name: readings
    ExtendedS3DestinationConfiguration:
      RoleARN: arn:aws:iam::123456789012:role/firehose
      BucketARN: arn:aws:s3:::landing
      BufferingHints: {IntervalInSeconds: %(interval)d, SizeInMBs: 1}
%(extra)s
"""

EXTRA_STREAM = """  - name: spare
    ExtendedS3DestinationConfiguration:
      BucketARN: arn:aws:s3:::landing
"""


def apply(lake, path, *args, env_extra=None):
    env = lake.aws_env()
    env.update(env_extra or {})
    # TARN_CLI_BIN: run this CLI against a lake built elsewhere (cross-checking branches).
    cli = os.environ.get("TARN_CLI_BIN") or tarn_binary()
    return subprocess.run([cli, "apply", "-f", path, "--endpoint", lake.url()] + list(args),
                          env=env, capture_output=True, text=True, timeout=300)


def write(tmp_path, interval=60, extra=EXTRA_STREAM):
    p = tmp_path / "lake.yaml"
    p.write_text(CATALOG_AND_STREAM % {"interval": interval, "extra": extra})
    return str(p)


def test_apply_creates_then_is_idempotent_updates_and_prunes(lake, tmp_path):
    f = write(tmp_path)
    r = apply(lake, f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"created\s+database plant", r.stdout)
    assert re.search(r"created\s+table plant.readings", r.stdout)
    assert re.search(r"created\s+stream readings", r.stdout)
    assert "3 created" not in r.stdout and "4 created" in r.stdout, r.stdout

    # The resources are really there, as the AWS clients see them.
    glue = lake.boto3_client("glue")
    t = glue.get_table(DatabaseName="plant", Name="readings")["Table"]
    assert [c["Name"] for c in t["StorageDescriptor"]["Columns"]] == ["device", "value"]
    fh = lake.boto3_client("firehose")
    d = fh.describe_delivery_stream(DeliveryStreamName="readings")["DeliveryStreamDescription"]
    ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["BufferingHints"]["IntervalInSeconds"] == 60

    # Second apply: nothing changes, and it says so.
    r = apply(lake, f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "apply: no changes, 4 unchanged", r.stdout

    # A changed field is updated with the service's update call.
    f = write(tmp_path, interval=0)
    r = apply(lake, f, "--dry-run")
    assert r.returncode == 0 and re.search(r"would change\s+stream readings", r.stdout), r.stdout
    d = fh.describe_delivery_stream(DeliveryStreamName="readings")["DeliveryStreamDescription"]
    assert d["Destinations"][0]["ExtendedS3DestinationDescription"]["BufferingHints"]["IntervalInSeconds"] == 60
    r = apply(lake, f)
    assert re.search(r"changed\s+stream readings \(.*IntervalInSeconds\)", r.stdout), r.stdout
    d = fh.describe_delivery_stream(DeliveryStreamName="readings")["DeliveryStreamDescription"]
    assert d["Destinations"][0]["ExtendedS3DestinationDescription"]["BufferingHints"]["IntervalInSeconds"] == 0

    # An entry removed from the file is reported and kept ...
    f = write(tmp_path, interval=0, extra="")
    r = apply(lake, f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"removed\s+stream spare: no longer in .*--prune deletes it", r.stdout), r.stdout
    names = fh.list_delivery_streams()["DeliveryStreamNames"]
    assert "spare" in names
    # ... and deleted only with --prune.
    r = apply(lake, f, "--prune")
    assert re.search(r"deleted\s+stream spare", r.stdout), r.stdout
    assert "spare" not in fh.list_delivery_streams()["DeliveryStreamNames"]
    assert "readings" in fh.list_delivery_streams()["DeliveryStreamNames"]
    r = apply(lake, f, "--prune")
    assert r.stdout.strip().splitlines()[-1] == "apply: no changes, 3 unchanged", r.stdout


def test_validation_errors_name_file_line_and_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("streams:\n  - name: s\n    ExtendedS3DestinationConfiguration: {}\n"
                 "iot:\n  things:\n    - name: sensor-1\n      polcy: x\n")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    r = subprocess.run([tarn_binary(), "apply", "-f", str(p), "--endpoint", "http://127.0.0.1:9"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "%s:7:7: iot.things[0].polcy: unknown field" % p in r.stderr, r.stderr


def test_missing_credentials_and_unreachable_lake(tmp_path):
    f = write(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    r = subprocess.run([tarn_binary(), "apply", "-f", f], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "AWS_ACCESS_KEY_ID" in r.stderr
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    r = subprocess.run([tarn_binary(), "apply", "-f", f, "--endpoint", "http://127.0.0.1:9"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "cannot reach http://127.0.0.1:9" in r.stdout, r.stdout


def test_wrong_secret_is_refused_once_sigv4_is_enforced(lake, tmp_path):
    f = write(tmp_path)
    r = apply(lake, f, env_extra={"AWS_SECRET_ACCESS_KEY": "wrong" * 8})
    # Only meaningful once the lake verifies signatures (IAM module); until then it is accepted.
    if "SignatureDoesNotMatch" not in r.stdout and r.returncode == 0:
        pytest.skip("the lake does not verify SigV4 yet (IAM not on main)")
    assert r.returncode == 1
    assert "SignatureDoesNotMatch" in r.stdout, r.stdout


def test_example_file_applies_what_the_lake_offers(lake, tmp_path):
    """examples/iot/tarn.yaml: the catalog and stream parts apply now and idempotently; the IoT
    and S3 parts either apply or fail with the server's clear not-implemented error."""
    shutil.copy(os.path.join(REPO, "examples", "iot", "tarn.yaml"), tmp_path / "tarn.yaml")
    f = str(tmp_path / "tarn.yaml")
    r = apply(lake, f)
    out = r.stdout
    assert re.search(r"(created|unchanged)\s+table iot.telemetry", out), out
    assert re.search(r"created\s+stream telemetry", out), out
    for line in out.splitlines():
        if "FAILED" in line:
            # Without the IoT module the router hands iot-signed calls to S3, which asks for
            # its payload-hash header: the lake's way of saying "no such API" today.
            assert ("NotImplemented" in line or "not available on this lake" in line
                    or "x-amz-content-sha256" in line), line
    iot_works = re.search(r"created\s+thing sensor-001", out) is not None
    if iot_works:
        cert = tmp_path / "certs" / "sensor-001"
        assert (cert / "certificate.pem.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert oct(os.stat(cert / "private.pem.key").st_mode & 0o777) == "0o600"
        assert len(os.listdir(tmp_path / "certs")) == 50
    r2 = apply(lake, f)
    assert re.search(r"unchanged\s+stream telemetry", r2.stdout), r2.stdout
    assert not re.search(r"^\s+(created|changed)", r2.stdout, re.M), r2.stdout
    if iot_works and "FAILED" not in r2.stdout:
        assert r2.stdout.strip().splitlines()[-1].startswith("apply: no changes")


THINGS = """
iot:
  certificates_dir: devices
  policies:
    - name: dev
      document:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: "iot:Connect", Resource: "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}
  things:
    - name: "%s"
      policy: dev
      attributes: {site: "%s"}
"""


def test_things_certificates_attributes_and_prune(lake, tmp_path):
    from botocore.exceptions import ClientError
    iot = lake.boto3_client("iot")
    try:
        iot.list_things()
    except ClientError as e:
        if (e.response["ResponseMetadata"]["HTTPStatusCode"] in (404, 501)       # S3 or nobody answers
                or "x-amz-content-sha256" in str(e)):                          # S3 behind SigV4
            pytest.skip("the IoT registry API is not on main yet")
        raise
    p = tmp_path / "things.yaml"
    p.write_text(THINGS % ("dev-{1..3}", "a"))
    r = apply(lake, str(p))
    assert r.returncode == 0, r.stdout + r.stderr
    for n in ("dev-1", "dev-2", "dev-3"):
        d = tmp_path / "devices" / n
        arn = (d / "certificate.arn").read_text().strip()
        assert iot.describe_thing(thingName=n)["attributes"] == {"site": "a"}
        assert iot.list_thing_principals(thingName=n)["principals"] == [arn]
        pols = iot.list_attached_policies(target=arn)["policies"]
        assert [x["policyName"] for x in pols] == ["dev"]
        cert_id = (d / "certificate.id").read_text().strip()
        desc = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
        assert desc["status"] == "ACTIVE"
        assert desc["certificatePem"].strip() == (d / "certificate.pem.crt").read_text().strip()
    # An attribute change is an UpdateThing; the certificates are kept.
    before = (tmp_path / "devices" / "dev-1" / "certificate.arn").read_text()
    p.write_text(THINGS % ("dev-{1..2}", "b"))
    r = apply(lake, str(p))
    assert re.search(r"changed\s+thing dev-1 \(attributes.site\)", r.stdout), r.stdout
    assert (tmp_path / "devices" / "dev-1" / "certificate.arn").read_text() == before
    assert iot.describe_thing(thingName="dev-1")["attributes"] == {"site": "b"}
    assert re.search(r"removed\s+thing dev-3", r.stdout), r.stdout
    # --prune detaches and deletes dev-3's certificate, then the thing and its files.
    arn3 = (tmp_path / "devices" / "dev-3" / "certificate.arn").read_text().strip()
    r = apply(lake, str(p), "--prune")
    assert re.search(r"deleted\s+thing dev-3", r.stdout), r.stdout
    with pytest.raises(ClientError):
        iot.describe_thing(thingName="dev-3")
    assert not (tmp_path / "devices" / "dev-3").exists()
    assert arn3 not in [c["certificateArn"] for c in iot.list_certificates()["certificates"]]
    r = apply(lake, str(p))
    assert r.stdout.strip().splitlines()[-1] == "apply: no changes, 3 unchanged", r.stdout


CRAWLER = """
catalog:
  databases:
    - name: raw
  crawlers:
%s
"""
ONE_CRAWLER = """    - name: uploads
      Role: arn:aws:iam::123456789012:role/crawler
      DatabaseName: raw
      Targets: {S3Targets: [{Path: "s3://landing/%s/"}]}
"""


def test_crawlers_create_update_prune(lake, tmp_path):
    glue = lake.boto3_client("glue")
    p = tmp_path / "crawl.yaml"
    p.write_text(CRAWLER % (ONE_CRAWLER % "thirdparty"))
    r = apply(lake, str(p))
    if "crawler uploads" in r.stdout and ("NotImplemented" in r.stdout or "UnknownOperation" in r.stdout):
        pytest.skip("Glue crawlers are not on main yet")
    assert re.search(r"created\s+crawler uploads", r.stdout), r.stdout
    assert glue.get_crawler(Name="uploads")["Crawler"]["Targets"]["S3Targets"][0]["Path"] == "s3://landing/thirdparty/"
    r = apply(lake, str(p))
    assert r.stdout.strip().splitlines()[-1] == "apply: no changes, 2 unchanged", r.stdout
    p.write_text(CRAWLER % (ONE_CRAWLER % "thirdparty/vendor"))
    r = apply(lake, str(p))
    assert re.search(r"changed\s+crawler uploads \(Targets.S3Targets\[0\].Path\)", r.stdout), r.stdout
    assert glue.get_crawler(Name="uploads")["Crawler"]["Targets"]["S3Targets"][0]["Path"] == \
        "s3://landing/thirdparty/vendor/"
    p.write_text(CRAWLER % "      []")
    r = apply(lake, str(p), "--prune")
    assert re.search(r"deleted\s+crawler uploads", r.stdout), r.stdout
    assert "uploads" not in glue.list_crawlers()["CrawlerNames"]

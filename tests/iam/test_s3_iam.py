"""IAM and SigV4 on the S3 API with real clients: a read-only user on curated/*, presigned
URLs (covered for STS in test_sigv4.py), and a hand-built aws-chunked upload with a corrupted chunk
signature that must store nothing."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4_client  # noqa: E402
from test_sigv4 import aws_with  # noqa: E402


def ok(r):
    assert r.returncode == 0, r.stderr
    try:
        return json.loads(r.stdout) if r.stdout.strip() else {}
    except ValueError:
        return r.stdout


def test_read_only_user_on_curated(lake, tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    ok(lake.aws("s3", "cp", str(src), "s3://curated/sales/x.csv"))
    ok(lake.aws("iam", "create-user", "--user-name", "analyst"))
    key = ok(lake.aws("iam", "create-access-key", "--user-name", "analyst", "--output", "json"))["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::curated/*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::curated"}]}
    ok(lake.aws("iam", "put-user-policy", "--user-name", "analyst", "--policy-name", "ReadCurated",
                "--policy-document", json.dumps(policy)))
    akid, secret = key["AccessKeyId"], key["SecretAccessKey"]
    out = tmp_path / "out.csv"
    ok(aws_with(lake, akid, secret, "s3", "cp", "s3://curated/sales/x.csv", str(out)))
    assert out.read_text() == "a,b\n1,2\n"
    r = aws_with(lake, akid, secret, "s3", "ls", "s3://curated/sales/")
    assert r.returncode == 0 and "x.csv" in r.stdout
    r = aws_with(lake, akid, secret, "s3", "cp", str(src), "s3://curated/sales/y.csv")
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    r = aws_with(lake, akid, secret, "s3", "cp", "s3://landing/nothing", str(out))
    assert r.returncode != 0
    r = lake.aws("s3api", "head-object", "--bucket", "curated", "--key", "sales/y.csv")
    assert r.returncode != 0  # nothing stored
    # The denial is in the audit trail.
    ev = ok(lake.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                     "AttributeKey=Username,AttributeValue=analyst", "--output", "json"))["Events"]
    puts = [json.loads(e["CloudTrailEvent"]) for e in ev if e["EventName"] == "PutObject"]
    assert puts and puts[0]["errorCode"] == "AccessDenied"
    assert puts[0]["eventSource"] == "s3.amazonaws.com"
    assert puts[0]["userIdentity"]["userName"] == "analyst"


def test_presigned_url_with_curl_then_expiry(lake, tmp_path):
    import subprocess
    import time
    src = tmp_path / "p.txt"
    src.write_text("presigned body")
    ok(lake.aws("s3", "cp", str(src), "s3://landing/p.txt"))
    from botocore.config import Config
    s3 = lake.boto3_client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "landing", "Key": "p.txt"}, ExpiresIn=2)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True, text=True)
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "200" and body == "presigned body", r.stdout
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url.replace("p.txt", "q.txt")],
                       capture_output=True, text=True)
    assert r.stdout.endswith("403") and "SignatureDoesNotMatch" in r.stdout
    time.sleep(3.5)
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True, text=True)
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "403" and "AccessDenied" in body and "Request has expired" in body, r.stdout


def _chunked_put(lake, key, chunks, tamper_index=None):
    host = lake.endpoints["api"]
    path = "/landing/" + key
    decoded = sum(len(c) for c in chunks)
    encoded_len = 0
    for c in chunks + [b""]:
        encoded_len += len("%x;chunk-signature=" % len(c)) + 64 + 2 + len(c) + 2
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded),
               "content-length": str(encoded_len)}
    h, seed, skey, amz_date, scope = sigv4_client.sign(
        "PUT", host, path, "", headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        lake.ACCESS_KEY, lake.SECRET_KEY, "us-east-1", "s3")
    body = b""
    prev = seed
    for i, c in enumerate(chunks + [b""]):
        sig = sigv4_client.chunk_signature(skey, amz_date, scope, prev, c)
        prev = sig
        sent = c
        if tamper_index == i:
            sent = c[:-1] + bytes([c[-1] ^ 1])
        body += b"%x;chunk-signature=%s\r\n" % (len(c), sig.encode()) + sent + b"\r\n"
    assert len(body) == encoded_len
    return sigv4_client.request(host, "PUT", path, "", h, body)


def test_aws_chunked_upload_and_tampered_chunk(lake):
    chunks = [b"a" * 65536, b"b" * 1000]
    status, text = _chunked_put(lake, "chunked-ok", chunks)
    assert status == 200, text
    r = ok(lake.aws("s3api", "head-object", "--bucket", "landing", "--key", "chunked-ok", "--output", "json"))
    assert r["ContentLength"] == 66536
    status, text = _chunked_put(lake, "chunked-bad", chunks, tamper_index=1)
    assert status == 403 and "SignatureDoesNotMatch" in text, text
    r = lake.aws("s3api", "head-object", "--bucket", "landing", "--key", "chunked-bad")
    assert r.returncode != 0 and ("404" in r.stderr or "Not Found" in r.stderr), r.stderr


def test_aws_username_only_for_iam_users(lake, tmp_path):
    """aws:username exists for IAM users only: for the root user and for role sessions it is
    absent, so a condition on it does not match and ${aws:username} resolves to nothing."""
    src = tmp_path / "f.txt"
    src.write_text("x")
    ok(lake.aws("s3api", "create-bucket", "--bucket", "uname"))
    deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::uname/*",
         "Condition": {"StringLike": {"aws:username": "*"}}}]}
    ok(lake.aws("s3api", "put-bucket-policy", "--bucket", "uname", "--policy", json.dumps(deny)))
    # Root: no aws:username, the Deny does not apply.
    ok(lake.aws("s3", "cp", str(src), "s3://uname/root.txt"))
    # An IAM user with every S3 action allowed: the Deny applies.
    ok(lake.aws("iam", "create-user", "--user-name", "uvar"))
    key = ok(lake.aws("iam", "create-access-key", "--user-name", "uvar", "--output", "json"))["AccessKey"]
    akid, secret = key["AccessKeyId"], key["SecretAccessKey"]
    ok(lake.aws("iam", "put-user-policy", "--user-name", "uvar", "--policy-name", "all", "--policy-document",
                json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}]})))
    r = aws_with(lake, akid, secret, "s3", "cp", str(src), "s3://uname/uvar.txt")
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    # The user's own home prefix through ${aws:username} works.
    ok(lake.aws("iam", "put-user-policy", "--user-name", "uvar", "--policy-name", "home", "--policy-document",
                json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Deny", "Action": "s3:GetObject", "NotResource": [
                        "arn:aws:s3:::curated/home/${aws:username}/*", "arn:aws:s3:::curated/shared/*"]}]})))
    for k in ("home/uvar/a.txt", "home/other/a.txt", "shared/a.txt"):
        ok(lake.aws("s3", "cp", str(src), "s3://curated/" + k))
    out = tmp_path / "out.txt"
    ok(aws_with(lake, akid, secret, "s3", "cp", "s3://curated/home/uvar/a.txt", str(out)))
    r = aws_with(lake, akid, secret, "s3", "cp", "s3://curated/home/other/a.txt", str(out))
    assert r.returncode != 0 and "403" in r.stderr, r.stderr
    # A role session named like the user: ${aws:username} does not resolve, so only the fixed
    # prefix of the role's policy allows anything.
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/uvar"}, "Action": "sts:AssumeRole"}]}
    ok(lake.aws("iam", "create-role", "--role-name", "homes", "--assume-role-policy-document", json.dumps(trust)))
    ok(lake.aws("iam", "put-role-policy", "--role-name", "homes", "--policy-name", "p", "--policy-document",
                json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [
                        "arn:aws:s3:::curated/home/${aws:username}/*", "arn:aws:s3:::curated/shared/*"]}]})))
    c = ok(aws_with(lake, akid, secret, "sts", "assume-role", "--role-arn", "arn:aws:iam::123456789012:role/homes",
                    "--role-session-name", "uvar", "--output", "json"))["Credentials"]
    session = (c["AccessKeyId"], c["SecretAccessKey"])
    ok(aws_with(lake, *session, "s3", "cp", "s3://curated/shared/a.txt", str(out), token=c["SessionToken"]))
    r = aws_with(lake, *session, "s3", "cp", "s3://curated/home/uvar/a.txt", str(out), token=c["SessionToken"])
    assert r.returncode != 0 and "403" in r.stderr, r.stderr

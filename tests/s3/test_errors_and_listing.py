"""The S3 error codes and listing paths the other files do not reach, through boto3 (Debian
1.26), curl and raw HTTP for what clients refuse to send: ListObjects v1 and v2 paging with
markers and continuation tokens, EntityTooLarge, EntityTooSmall, KeyTooLongError, NoSuchVersion,
InvalidDigest, MalformedXML, anonymous requests only where a bucket policy allows them."""
import json
import os
import socket
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "iam"))
import sigv4_client  # noqa: E402


def error_of(excinfo):
    r = excinfo.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def test_list_objects_v1_and_v2_paging(lake):
    s3 = lake.boto3_client("s3")
    keys = ["a/1", "a/2", "b/x/1", "b/y", "c", "d e+f%"]
    for k in keys:
        s3.put_object(Bucket="landing", Key="pg/" + k, Body=k.encode())
    # v1: Marker / NextMarker pages of one key, no delimiter: every key once, in order.
    seen = []
    for page in s3.get_paginator("list_objects").paginate(Bucket="landing", Prefix="pg/",
                                                           PaginationConfig={"PageSize": 1}):
        assert len(page.get("Contents", [])) <= 1
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == ["pg/" + k for k in keys]
    # v1 with a delimiter: folders as CommonPrefixes, Marker skips what came before.
    r = s3.list_objects(Bucket="landing", Prefix="pg/", Delimiter="/", Marker="pg/a/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["pg/b/"]
    assert [o["Key"] for o in r["Contents"]] == ["pg/c", "pg/d e+f%"]
    # v2: continuation tokens, two keys a page, with a delimiter; the token is opaque.
    seen, prefixes, tokens = [], [], []
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="landing", Prefix="pg/", Delimiter="/", PaginationConfig={"PageSize": 2}):
        seen += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if page.get("NextContinuationToken"):
            tokens.append(page["NextContinuationToken"])
    assert seen == ["pg/c", "pg/d e+f%"] and prefixes == ["pg/a/", "pg/b/"]
    assert tokens and all("pg/" not in t for t in tokens)
    # StartAfter and MaxKeys=0.
    r = s3.list_objects_v2(Bucket="landing", Prefix="pg/", StartAfter="pg/b/y")
    assert [o["Key"] for o in r["Contents"]] == ["pg/c", "pg/d e+f%"]
    r = s3.list_objects_v2(Bucket="landing", Prefix="pg/", MaxKeys=0)
    assert r["KeyCount"] == 0 and r["IsTruncated"] in (True, False)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert error_of(e) == (404, "NoSuchBucket")


def test_size_key_and_request_errors(lake):
    s3 = lake.boto3_client("s3")
    # KeyTooLongError: 1025 bytes; 1024 is fine.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="landing", Key="k" * 1025, Body=b"x")
    assert error_of(e) == (400, "KeyTooLongError")
    s3.put_object(Bucket="landing", Key="k" * 1024, Body=b"x")
    # EntityTooSmall: a part other than the last under 5 MiB.
    up = s3.create_multipart_upload(Bucket="landing", Key="small/mp")["UploadId"]
    parts = []
    for n in (1, 2):
        r = s3.upload_part(Bucket="landing", Key="small/mp", UploadId=up, PartNumber=n, Body=b"tiny")
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="landing", Key="small/mp", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    assert error_of(e) == (400, "EntityTooSmall")
    # The upload is still there, nothing was stored.
    assert len(s3.list_parts(Bucket="landing", Key="small/mp", UploadId=up)["Parts"]) == 2
    with pytest.raises(ClientError):
        s3.head_object(Bucket="landing", Key="small/mp")
    # NoSuchVersion.
    s3.put_object(Bucket="landing", Key="v/obj", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="v/obj", VersionId="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
    assert error_of(e) == (404, "NoSuchVersion")
    # InvalidDigest: a Content-MD5 that is not 16 bytes of base64.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="landing", Key="v/md5", Body=b"x", ContentMD5="not-a-digest")
    assert error_of(e) == (400, "InvalidDigest")
    # MalformedXML: a CompleteMultipartUpload body that is not the document.
    host = lake.endpoints["api"]
    path, query = "/landing/small/mp", "uploadId=" + up
    body = b"<NotTheDocument/>"
    h, *_ = sigv4_client.sign("POST", host, path, query, {}, sigv4_client.hashlib.sha256(body).hexdigest(),
                              lake.ACCESS_KEY, lake.SECRET_KEY, "us-east-1", "s3")
    status, text = sigv4_client.request(host, "POST", path, query, h, body)
    assert status == 400 and "MalformedXML" in text, text


def test_entity_too_large_before_reading_the_body(lake):
    """A PUT announcing more than 5 GiB is refused from its Content-Length alone (S3's
    EntityTooLarge), without the server waiting for the body."""
    host = lake.endpoints["api"]
    size = (5 << 30) + 1
    h, *_ = sigv4_client.sign("PUT", host, "/landing/too/big", "", {"content-length": str(size)},
                              "UNSIGNED-PAYLOAD", lake.ACCESS_KEY, lake.SECRET_KEY, "us-east-1", "s3")
    head = "PUT /landing/too/big HTTP/1.1\r\n" + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    hostname, port = host.rsplit(":", 1)
    with socket.create_connection((hostname, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"only a little of it")
        reply = b""
        while b"</Error>" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and b"<Code>EntityTooLarge</Code>" in reply, reply[:400]
    s3 = lake.boto3_client("s3")
    with pytest.raises(ClientError):
        s3.head_object(Bucket="landing", Key="too/big")


def test_anonymous_only_where_a_bucket_policy_allows(lake):
    s3 = lake.boto3_client("s3")
    s3.create_bucket(Bucket="pub")
    s3.put_object(Bucket="pub", Key="public/a.txt", Body=b"for everyone")
    s3.put_object(Bucket="pub", Key="private/b.txt", Body=b"not for you")
    base = lake.url() + "/pub/"

    def curl(method, key, data=None):
        cmd = ["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", "-X", method, base + key]
        if data is not None:
            cmd += ["--data-binary", data]
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        return int(r.stdout), r.stderr
    # No policy: anonymous is denied everywhere.
    status, body = curl("GET", "public/a.txt")
    assert status == 403 and b"AccessDenied" in body
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
              "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pub/public/*"}]}
    s3.put_bucket_policy(Bucket="pub", Policy=json.dumps(policy))
    status, body = curl("GET", "public/a.txt")
    assert status == 200 and body == b"for everyone"
    status, body = curl("GET", "private/b.txt")
    assert status == 403 and b"AccessDenied" in body
    status, body = curl("PUT", "public/new.txt", data="anonymous write")
    assert status == 403 and b"AccessDenied" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket="pub", Key="public/new.txt")


def test_content_encoding_and_language_round_trip(lake):
    s3 = lake.boto3_client("s3")
    s3.put_object(Bucket="landing", Key="enc/obj.json.gz", Body=b"\x1f\x8b not really",
                  ContentType="application/json", ContentEncoding="gzip", ContentLanguage="de",
                  Expires="Wed, 21 Oct 2037 07:28:00 GMT")
    h = s3.head_object(Bucket="landing", Key="enc/obj.json.gz")
    assert h["ContentEncoding"] == "gzip" and h["ContentLanguage"] == "de"
    assert h["ContentType"] == "application/json"
    assert h["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Wed, 21 Oct 2037 07:28:00 GMT"
    # response-content-encoding overrides it on one GET only.
    g = s3.get_object(Bucket="landing", Key="enc/obj.json.gz", ResponseContentEncoding="identity")
    assert g["ContentEncoding"] == "identity"
    assert s3.head_object(Bucket="landing", Key="enc/obj.json.gz")["ContentEncoding"] == "gzip"

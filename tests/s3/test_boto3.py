"""S3 API through boto3 (Debian 1.26): checksums, listings, virtual-host addressing, errors."""
import base64
import hashlib
import socket
import zlib

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def b64(raw):
    return base64.b64encode(raw).decode()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def expected_checksum(alg, data):
    if alg == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if alg == "CRC32C":
        return b64(crc32c(data).to_bytes(4, "big"))
    if alg == "SHA1":
        return b64(hashlib.sha1(data).digest())
    return b64(hashlib.sha256(data).digest())


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_additional_checksums(lake, alg):
    s3 = lake.boto3_client("s3")
    data = b"checksum me " * 1000
    r = s3.put_object(Bucket="landing", Key="sum/" + alg, Body=data, ChecksumAlgorithm=alg)
    assert r["Checksum" + alg] == expected_checksum(alg, data)
    g = s3.get_object(Bucket="landing", Key="sum/" + alg, ChecksumMode="ENABLED")
    assert g["Body"].read() == data
    assert g["Checksum" + alg] == expected_checksum(alg, data)
    # A wrong checksum is refused and nothing is stored.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="landing", Key="sum/bad-" + alg, Body=data,
                      **{"Checksum" + alg: expected_checksum(alg, b"other")})
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="landing", Key="sum/bad-" + alg)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_content_md5_and_etag(lake):
    s3 = lake.boto3_client("s3")
    data = b"hello md5"
    r = s3.put_object(Bucket="landing", Key="md5/ok", Body=data, ContentMD5=b64(hashlib.md5(data).digest()))
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="landing", Key="md5/bad", Body=data,
                      ContentMD5=b64(hashlib.md5(b"x").digest()))
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="md5/bad")
    assert error_code(e) == "NoSuchKey"


ODD_KEYS = ["a", "a/b", "a/b/c", "with space", "plus+sign", "per%cent", "double//slash",
            "/leading", "trailing/", "../escape", "x/./y", "ünï/日本", "k" * 1024, "q?x=1&y#z",
            "tab\tkey", "amp&lt;", "<xml>"]


def test_odd_keys_round_trip_and_list(lake):
    s3 = lake.boto3_client("s3")
    for i, k in enumerate(ODD_KEYS):
        s3.put_object(Bucket="curated", Key=k, Body=("v%d" % i).encode())
    for i, k in enumerate(ODD_KEYS):
        assert s3.get_object(Bucket="curated", Key=k)["Body"].read() == ("v%d" % i).encode(), k
    # botocore asks for encoding-type=url on listings and decodes the keys.
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="curated", PaginationConfig={"PageSize": 3}):
        keys += [c["Key"] for c in page.get("Contents", [])]
    assert keys == sorted(ODD_KEYS, key=lambda k: k.encode())
    keys_v1 = []
    for page in s3.get_paginator("list_objects").paginate(Bucket="curated", PaginationConfig={"PageSize": 4}):
        keys_v1 += [c["Key"] for c in page.get("Contents", [])]
    assert keys_v1 == keys
    r = s3.list_objects_v2(Bucket="curated", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["../", "/", "a/", "double/", "trailing/", "x/", "ünï/"]
    r = s3.list_objects_v2(Bucket="curated", Prefix="a/", Delimiter="/", StartAfter="a/a")
    assert [c["Key"] for c in r["Contents"]] == ["a/b"] and r["CommonPrefixes"] == [{"Prefix": "a/b/"}]
    r = s3.list_objects_v2(Bucket="curated", MaxKeys=0)
    assert r["KeyCount"] == 0
    # Nothing escaped the data directory.
    import os
    assert not os.path.exists(os.path.join(lake.data_dir, "escape"))
    resp = s3.delete_objects(Bucket="curated", Delete={"Objects": [{"Key": k} for k in ODD_KEYS]})
    assert len(resp["Deleted"]) == len(ODD_KEYS)
    assert s3.list_objects_v2(Bucket="curated")["KeyCount"] == 0


def test_virtual_host_addressing(lake, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *a, **kw):  # <bucket>.localhost → loopback, as a wildcard DNS entry would
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = lake.endpoints["api"].rsplit(":", 1)[1]
    s3 = boto3.client("s3", endpoint_url="http://localhost:%s" % port,
                      aws_access_key_id=lake.ACCESS_KEY, aws_secret_access_key=lake.SECRET_KEY,
                      region_name=lake.REGION,
                      config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}))
    seen = []
    s3.meta.events.register("before-send.s3.*", lambda request, **kw: seen.append(request.url))
    s3.put_object(Bucket="landing", Key="vhost/key.txt", Body=b"virtual")
    assert s3.get_object(Bucket="landing", Key="vhost/key.txt")["Body"].read() == b"virtual"
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket="landing", Prefix="vhost/")["Contents"]]
    assert keys == ["vhost/key.txt"]
    assert all(u.startswith("http://landing.localhost:") for u in seen), seen
    path = lake.boto3_client("s3")
    assert path.get_object(Bucket="landing", Key="vhost/key.txt")["Body"].read() == b"virtual"


def test_conditional_and_ranges(lake):
    s3 = lake.boto3_client("s3")
    s3.put_object(Bucket="landing", Key="c/obj", Body=b"abcdefghij")
    head = s3.head_object(Bucket="landing", Key="c/obj")
    etag, lm = head["ETag"], head["LastModified"]
    assert s3.get_object(Bucket="landing", Key="c/obj", Range="bytes=-3")["Body"].read() == b"hij"
    assert s3.get_object(Bucket="landing", Key="c/obj", Range="bytes=7-")["Body"].read() == b"hij"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="c/obj", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="c/obj", IfModifiedSince=lm)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="landing", Key="c/obj", IfMatch='"nope"')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    import datetime
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="c/obj",
                      IfUnmodifiedSince=lm - datetime.timedelta(days=1))
    assert error_code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket="landing", Key="c/obj", IfMatch=etag)["Body"].read() == b"abcdefghij"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="c/obj", Range="bytes=10-20")
    assert error_code(e) == "InvalidRange"


def test_multipart_with_checksum_and_list_versions_paging(lake):
    s3 = lake.boto3_client("s3")
    up = s3.create_multipart_upload(Bucket="landing", Key="mpc/obj", ChecksumAlgorithm="SHA256")
    parts = []
    chunks = [b"a" * (5 << 20), b"tail"]
    for i, chunk in enumerate(chunks, 1):
        r = s3.upload_part(Bucket="landing", Key="mpc/obj", UploadId=up["UploadId"], PartNumber=i,
                           Body=chunk, ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == b64(hashlib.sha256(chunk).digest())
        parts.append({"PartNumber": i, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(Bucket="landing", Key="mpc/obj", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
    composite = hashlib.sha256(b"".join(base64.b64decode(p["ChecksumSHA256"]) for p in parts)).digest()
    assert done["ChecksumSHA256"] == b64(composite) + "-2"
    assert s3.get_object(Bucket="landing", Key="mpc/obj")["Body"].read() == b"".join(chunks)
    s3.create_bucket(Bucket="vers")
    s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket="vers", Key=k, Body=b"x")["VersionId"] for k in ("k1", "k1", "k2")]
    seen = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket="vers", PaginationConfig={"PageSize": 1}):
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert seen == [("k1", ids[1]), ("k1", ids[0]), ("k2", ids[2])]


def test_list_multipart_uploads_paging(lake):
    s3 = lake.boto3_client("s3")
    ids = [(k, s3.create_multipart_upload(Bucket="landing", Key=k)["UploadId"])
           for k in ("u/a", "u/b", "u/b", "v/c")]
    seen = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(
            Bucket="landing", PaginationConfig={"PageSize": 1}):
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
    assert sorted(seen) == sorted(ids) and len(seen) == 4
    r = s3.list_multipart_uploads(Bucket="landing", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["u/", "v/"]
    r = s3.list_multipart_uploads(Bucket="landing", Prefix="u/")
    assert sorted(u["Key"] for u in r["Uploads"]) == ["u/a", "u/b", "u/b"]
    for k, uid in ids:
        s3.abort_multipart_upload(Bucket="landing", Key=k, UploadId=uid)
    assert s3.list_multipart_uploads(Bucket="landing").get("Uploads", []) == []

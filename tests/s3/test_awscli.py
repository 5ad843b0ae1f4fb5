"""S3 API through the real awscli builds (aws-cli 1.45 on PATH, Debian's 2.9 at /usr/bin/aws)."""
import json
import os
import subprocess
import urllib.request

import pytest

from s3util import AWS_V1, AWS_V2, aws, md5_file, random_file


def test_buckets(lake):
    out = json.loads(aws(lake, "s3api", "list-buckets").stdout)
    names = [b["Name"] for b in out["Buckets"]]
    assert {"landing", "curated", "audit"} <= set(names)
    aws(lake, "s3api", "create-bucket", "--bucket", "reports")
    aws(lake, "s3api", "head-bucket", "--bucket", "reports")
    p = aws(lake, "s3api", "create-bucket", "--bucket", "reports", check=False)
    assert "BucketAlreadyOwnedByYou" in p.stderr
    p = aws(lake, "s3api", "create-bucket", "--bucket", "Bad_Name", check=False)
    assert p.returncode != 0 and "InvalidBucketName" in p.stderr
    loc = json.loads(aws(lake, "s3api", "get-bucket-location", "--bucket", "reports").stdout)
    assert loc.get("LocationConstraint") in (None, "")
    aws(lake, "s3api", "put-object", "--bucket", "reports", "--key", "x", "--body", __file__)
    p = aws(lake, "s3api", "delete-bucket", "--bucket", "reports", check=False)
    assert "BucketNotEmpty" in p.stderr
    aws(lake, "s3", "rm", "s3://reports/x")
    aws(lake, "s3api", "delete-bucket", "--bucket", "reports")
    p = aws(lake, "s3api", "head-bucket", "--bucket", "reports", check=False)
    assert p.returncode != 0 and "404" in p.stderr
    p = aws(lake, "s3", "ls", "s3://no-such-bucket-here", check=False)
    assert "NoSuchBucket" in p.stderr


@pytest.mark.parametrize("cli", [AWS_V1, AWS_V2])
def test_cp_small_and_200mib_multipart_byte_exact(lake, tmp_path, cli):
    small = random_file(tmp_path / "small.bin", 1234)
    big = random_file(tmp_path / "big.bin", 200 << 20)
    aws(lake, "s3", "cp", str(small), "s3://landing/cp/small.bin", cli=cli)
    aws(lake, "s3", "cp", str(big), "s3://landing/cp/big.bin", "--only-show-errors", cli=cli)
    head = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "cp/big.bin",
                          cli=cli).stdout)
    assert head["ContentLength"] == 200 << 20
    assert head["ETag"].strip('"').endswith("-%d" % head.get("PartsCount", 0))  # multipart ETag
    assert "-" in head["ETag"]
    for name, src in (("small.bin", small), ("big.bin", big)):
        dst = tmp_path / ("down-" + name)
        aws(lake, "s3", "cp", "s3://landing/cp/" + name, str(dst), "--only-show-errors", cli=cli)
        assert md5_file(dst) == md5_file(src)
        # Ordinary keys live at their natural path, readable by DuckDB/Spark as files.
        assert md5_file(os.path.join(lake.data_dir, "objects", "landing", "cp", name)) == md5_file(src)
    small_head = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key",
                                "cp/small.bin", cli=cli).stdout)
    assert small_head["ETag"] == '"%s"' % md5_file(small)
    if cli == AWS_V1:
        # botocore 1.43 streamed the body aws-chunked with an x-amz-checksum-crc32 trailer: the
        # server computed, checked and kept it.
        import base64
        import zlib
        h = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key",
                           "cp/small.bin", "--checksum-mode", "ENABLED", cli=cli).stdout)
        crc = zlib.crc32(open(small, "rb").read()).to_bytes(4, "big")
        assert h["ChecksumCRC32"] == base64.b64encode(crc).decode()


def test_sync_ls_rm_odd_names(lake, tmp_path):
    src = tmp_path / "src"
    names = ["plain.txt", "with space.txt", "plus+sign.txt", "per%cent.txt", "ünï/日本.txt",
             "year=2026/month=11/part-0.parquet"]
    for n in names:
        p = src / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(("content of " + n).encode())
    aws(lake, "s3", "sync", str(src), "s3://curated/sync/")
    listing = aws(lake, "s3", "ls", "--recursive", "s3://curated/sync/").stdout
    for n in names:
        assert "sync/" + n in listing, listing
    dst = tmp_path / "dst"
    aws(lake, "s3", "sync", "s3://curated/sync/", str(dst))
    for n in names:
        assert (dst / n).read_bytes() == ("content of " + n).encode()
    top = aws(lake, "s3", "ls", "s3://curated/sync/").stdout
    assert "PRE year=2026/" in top and "PRE ünï/" in top
    # A second sync uploads nothing (sizes and times match).
    again = aws(lake, "s3", "sync", str(src), "s3://curated/sync/").stdout
    assert "upload:" not in again
    aws(lake, "s3", "rm", "--recursive", "s3://curated/sync/")
    assert aws(lake, "s3", "ls", "--recursive", "s3://curated/sync/", check=False).stdout.strip() == ""


def test_presign_get(lake, tmp_path):
    body = b"presigned content\n"
    (tmp_path / "p.txt").write_bytes(body)
    aws(lake, "s3", "cp", str(tmp_path / "p.txt"), "s3://landing/p.txt")
    # aws-cli 2 presigns with SigV4 (aws-cli 1 defaults to SigV2 query auth for s3 presign).
    url = aws(lake, "s3", "presign", "s3://landing/p.txt", "--expires-in", "300",
              cli=AWS_V2).stdout.strip()
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url) as r:
        assert r.read() == body
    got = subprocess.run(["curl", "-sf", url], capture_output=True, timeout=60)
    assert got.returncode == 0 and got.stdout == body


@pytest.mark.parametrize("cli", [AWS_V1, AWS_V2])
def test_s3api_objects(lake, tmp_path, cli):
    f = tmp_path / "o.txt"
    f.write_bytes(b"0123456789")
    aws(lake, "s3api", "put-object", "--bucket", "landing", "--key", "o/one.txt", "--body", str(f),
        "--content-type", "text/plain", "--metadata", "color=blue,Size=L", "--cache-control",
        "max-age=60", "--tagging", "team=data&env=test", cli=cli)
    head = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "o/one.txt",
                          cli=cli).stdout)
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"color": "blue", "size": "L"}
    assert head["CacheControl"] == "max-age=60"
    etag = head["ETag"]
    # Range.
    out = tmp_path / "range.out"
    r = json.loads(aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "o/one.txt",
                       "--range", "bytes=2-5", str(out), cli=cli).stdout)
    assert out.read_bytes() == b"2345" and r["ContentRange"] == "bytes 2-5/10"
    p = aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "o/one.txt", "--range",
            "bytes=100-200", str(out), cli=cli, check=False)
    assert "InvalidRange" in p.stderr
    # Conditional GET.
    p = aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "o/one.txt",
            "--if-none-match", etag, str(out), cli=cli, check=False)
    assert p.returncode != 0 and "304" in p.stderr
    p = aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "o/one.txt",
            "--if-match", '"00000000000000000000000000000000"', str(out), cli=cli, check=False)
    assert "PreconditionFailed" in p.stderr or "412" in p.stderr
    aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "o/one.txt", "--if-match",
        etag, str(out), cli=cli)
    # response-* overrides.
    r = json.loads(aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "o/one.txt",
                       "--response-content-type", "application/x-test",
                       "--response-content-disposition", "attachment; filename=x.txt", str(out),
                       cli=cli).stdout)
    assert r["ContentType"] == "application/x-test"
    assert r["ContentDisposition"] == "attachment; filename=x.txt"
    # Tagging.
    tags = json.loads(aws(lake, "s3api", "get-object-tagging", "--bucket", "landing", "--key",
                          "o/one.txt", cli=cli).stdout)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "data", "env": "test"}
    aws(lake, "s3api", "put-object-tagging", "--bucket", "landing", "--key", "o/one.txt",
        "--tagging", "TagSet=[{Key=k1,Value=v1}]", cli=cli)
    tags = json.loads(aws(lake, "s3api", "get-object-tagging", "--bucket", "landing", "--key",
                          "o/one.txt", cli=cli).stdout)["TagSet"]
    assert tags == [{"Key": "k1", "Value": "v1"}]
    aws(lake, "s3api", "delete-object-tagging", "--bucket", "landing", "--key", "o/one.txt", cli=cli)
    assert json.loads(aws(lake, "s3api", "get-object-tagging", "--bucket", "landing", "--key",
                          "o/one.txt", cli=cli).stdout)["TagSet"] == []
    # CopyObject, metadata directive COPY and REPLACE.
    aws(lake, "s3api", "copy-object", "--bucket", "curated", "--key", "o/copy.txt", "--copy-source",
        "landing/o/one.txt", cli=cli)
    h2 = json.loads(aws(lake, "s3api", "head-object", "--bucket", "curated", "--key", "o/copy.txt",
                        cli=cli).stdout)
    assert h2["Metadata"] == {"color": "blue", "size": "L"} and h2["ETag"] == etag
    aws(lake, "s3api", "copy-object", "--bucket", "curated", "--key", "o/copy.txt", "--copy-source",
        "curated/o/copy.txt", "--metadata-directive", "REPLACE", "--metadata", "fresh=yes",
        "--content-type", "application/json", cli=cli)
    h3 = json.loads(aws(lake, "s3api", "head-object", "--bucket", "curated", "--key", "o/copy.txt",
                        cli=cli).stdout)
    assert h3["Metadata"] == {"fresh": "yes"} and h3["ContentType"] == "application/json"
    p = aws(lake, "s3api", "copy-object", "--bucket", "curated", "--key", "o/copy.txt",
            "--copy-source", "curated/o/copy.txt", cli=cli, check=False)
    assert "InvalidRequest" in p.stderr
    # DeleteObjects.
    for k in ("d/1", "d/2", "d/3"):
        aws(lake, "s3api", "put-object", "--bucket", "landing", "--key", k, "--body", str(f), cli=cli)
    res = json.loads(aws(lake, "s3api", "delete-objects", "--bucket", "landing", "--delete",
                         "Objects=[{Key=d/1},{Key=d/2},{Key=d/missing}]", cli=cli).stdout)
    assert sorted(d["Key"] for d in res["Deleted"]) == ["d/1", "d/2", "d/missing"]
    keys = json.loads(aws(lake, "s3api", "list-objects-v2", "--bucket", "landing", "--prefix", "d/",
                          cli=cli).stdout)
    assert [c["Key"] for c in keys["Contents"]] == ["d/3"]
    # Errors.
    p = aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "nope", str(out), cli=cli,
            check=False)
    assert "NoSuchKey" in p.stderr
    p = aws(lake, "s3api", "put-object", "--bucket", "no-such-bucket", "--key", "k", "--body",
            str(f), cli=cli, check=False)
    assert "NoSuchBucket" in p.stderr


def test_multipart_api(lake, tmp_path):
    part1 = random_file(tmp_path / "p1", 5 << 20)
    part2 = random_file(tmp_path / "p2", 1000)
    up = json.loads(aws(lake, "s3api", "create-multipart-upload", "--bucket", "landing", "--key",
                        "mp/obj", "--content-type", "application/x-mp").stdout)
    uid = up["UploadId"]
    ups = json.loads(aws(lake, "s3api", "list-multipart-uploads", "--bucket", "landing").stdout)
    assert [u["UploadId"] for u in ups["Uploads"]] == [uid]
    e1 = json.loads(aws(lake, "s3api", "upload-part", "--bucket", "landing", "--key", "mp/obj",
                        "--upload-id", uid, "--part-number", "1", "--body", str(part1)).stdout)["ETag"]
    e2 = json.loads(aws(lake, "s3api", "upload-part", "--bucket", "landing", "--key", "mp/obj",
                        "--upload-id", uid, "--part-number", "2", "--body", str(part2)).stdout)["ETag"]
    parts = json.loads(aws(lake, "s3api", "list-parts", "--bucket", "landing", "--key", "mp/obj",
                           "--upload-id", uid).stdout)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 << 20), (2, 1000)]
    bad = json.dumps({"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    p = aws(lake, "s3api", "complete-multipart-upload", "--bucket", "landing", "--key", "mp/obj",
            "--upload-id", uid, "--multipart-upload", bad, check=False)
    assert "InvalidPartOrder" in p.stderr
    bad = json.dumps({"Parts": [{"PartNumber": 1, "ETag": e2}]})
    p = aws(lake, "s3api", "complete-multipart-upload", "--bucket", "landing", "--key", "mp/obj",
            "--upload-id", uid, "--multipart-upload", bad, check=False)
    assert "InvalidPart" in p.stderr
    good = json.dumps({"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    done = json.loads(aws(lake, "s3api", "complete-multipart-upload", "--bucket", "landing", "--key",
                          "mp/obj", "--upload-id", uid, "--multipart-upload", good).stdout)
    import hashlib
    md5s = b"".join(bytes.fromhex(e.strip('"')) for e in (e1, e2))
    assert done["ETag"] == '"%s-2"' % hashlib.md5(md5s).hexdigest()
    out = tmp_path / "out"
    aws(lake, "s3", "cp", "s3://landing/mp/obj", str(out))
    assert out.read_bytes() == part1.read_bytes() + part2.read_bytes()
    head = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "mp/obj").stdout)
    assert head["ContentType"] == "application/x-mp"
    p = aws(lake, "s3api", "list-parts", "--bucket", "landing", "--key", "mp/obj", "--upload-id", uid,
            check=False)
    assert "NoSuchUpload" in p.stderr
    # UploadPartCopy and Abort.
    up2 = json.loads(aws(lake, "s3api", "create-multipart-upload", "--bucket", "landing", "--key",
                         "mp/copy").stdout)["UploadId"]
    cp = json.loads(aws(lake, "s3api", "upload-part-copy", "--bucket", "landing", "--key", "mp/copy",
                        "--upload-id", up2, "--part-number", "1", "--copy-source", "landing/mp/obj",
                        "--copy-source-range", "bytes=0-99").stdout)
    assert cp["CopyPartResult"]["ETag"] == '"%s"' % hashlib.md5(part1.read_bytes()[:100]).hexdigest()
    aws(lake, "s3api", "abort-multipart-upload", "--bucket", "landing", "--key", "mp/copy",
        "--upload-id", up2)
    p = aws(lake, "s3api", "abort-multipart-upload", "--bucket", "landing", "--key", "mp/copy",
            "--upload-id", up2, check=False)
    assert "NoSuchUpload" in p.stderr


def test_versioning_and_policy(lake, tmp_path):
    aws(lake, "s3api", "create-bucket", "--bucket", "versioned")
    v = json.loads(aws(lake, "s3api", "get-bucket-versioning", "--bucket", "versioned").stdout or "{}")
    assert "Status" not in v
    aws(lake, "s3api", "put-bucket-versioning", "--bucket", "versioned", "--versioning-configuration",
        "Status=Enabled")
    v = json.loads(aws(lake, "s3api", "get-bucket-versioning", "--bucket", "versioned").stdout)
    assert v["Status"] == "Enabled"
    f = tmp_path / "f"
    ids = []
    for content in (b"one", b"two"):
        f.write_bytes(content)
        ids.append(json.loads(aws(lake, "s3api", "put-object", "--bucket", "versioned", "--key", "doc",
                                  "--body", str(f)).stdout)["VersionId"])
    assert ids[0] != ids[1]
    out = tmp_path / "out"
    aws(lake, "s3api", "get-object", "--bucket", "versioned", "--key", "doc", "--version-id", ids[0], str(out))
    assert out.read_bytes() == b"one"
    d = json.loads(aws(lake, "s3api", "delete-object", "--bucket", "versioned", "--key", "doc").stdout)
    assert d["DeleteMarker"] is True
    vers = json.loads(aws(lake, "s3api", "list-object-versions", "--bucket", "versioned").stdout)
    assert [x["VersionId"] for x in vers["Versions"]] == [ids[1], ids[0]]
    assert vers["DeleteMarkers"][0]["IsLatest"] is True
    p = aws(lake, "s3api", "get-object", "--bucket", "versioned", "--key", "doc", str(out), check=False)
    assert "NoSuchKey" in p.stderr
    # Bucket tagging and policy documents.
    aws(lake, "s3api", "put-bucket-tagging", "--bucket", "versioned", "--tagging",
        "TagSet=[{Key=owner,Value=data-team}]")
    t = json.loads(aws(lake, "s3api", "get-bucket-tagging", "--bucket", "versioned").stdout)
    assert t["TagSet"] == [{"Key": "owner", "Value": "data-team"}]
    aws(lake, "s3api", "delete-bucket-tagging", "--bucket", "versioned")
    p = aws(lake, "s3api", "get-bucket-tagging", "--bucket", "versioned", check=False)
    assert "NoSuchTagSet" in p.stderr
    p = aws(lake, "s3api", "get-bucket-policy", "--bucket", "versioned", check=False)
    assert "NoSuchBucketPolicy" in p.stderr
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
              "Action": "s3:GetObject", "Resource": "arn:aws:s3:::versioned/public/*"}]}
    aws(lake, "s3api", "put-bucket-policy", "--bucket", "versioned", "--policy", json.dumps(policy))
    got = json.loads(json.loads(aws(lake, "s3api", "get-bucket-policy", "--bucket", "versioned").stdout)["Policy"])
    assert got == policy
    p = aws(lake, "s3api", "put-bucket-policy", "--bucket", "versioned", "--policy", "not json", check=False)
    assert "MalformedPolicy" in p.stderr
    aws(lake, "s3api", "delete-bucket-policy", "--bucket", "versioned")
    p = aws(lake, "s3api", "get-bucket-policy", "--bucket", "versioned", check=False)
    assert "NoSuchBucketPolicy" in p.stderr


def test_part_number_and_full_object_checksum(lake, tmp_path):
    """GET/HEAD ?partNumber=N of a multipart object, and a FULL_OBJECT CRC32 multipart upload
    (x-amz-checksum-type, as newer SDKs send): the object's CRC32 is that of all its bytes."""
    import base64
    import zlib
    part1 = random_file(tmp_path / "p1", 5 << 20)
    part2 = random_file(tmp_path / "p2", 3000)
    data = part1.read_bytes() + part2.read_bytes()
    crc = lambda b: base64.b64encode((zlib.crc32(b) & 0xffffffff).to_bytes(4, "big")).decode()
    up = json.loads(aws(lake, "s3api", "create-multipart-upload", "--bucket", "landing", "--key", "fo/obj",
                        "--checksum-algorithm", "CRC32", "--checksum-type", "FULL_OBJECT").stdout)
    uid = up["UploadId"]
    parts = []
    for n, f in ((1, part1), (2, part2)):
        out = json.loads(aws(lake, "s3api", "upload-part", "--bucket", "landing", "--key", "fo/obj", "--upload-id",
                             uid, "--part-number", str(n), "--body", str(f), "--checksum-algorithm", "CRC32").stdout)
        parts.append({"PartNumber": n, "ETag": out["ETag"], "ChecksumCRC32": out["ChecksumCRC32"]})
    body = json.dumps({"Parts": parts})
    # A wrong full-object checksum: BadDigest, nothing stored, the upload stays.
    p = aws(lake, "s3api", "complete-multipart-upload", "--bucket", "landing", "--key", "fo/obj", "--upload-id", uid,
            "--multipart-upload", body, "--checksum-crc32", crc(b"not the data"), "--checksum-type", "FULL_OBJECT",
            check=False)
    assert p.returncode != 0 and "BadDigest" in p.stderr, p.stderr
    assert aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "fo/obj", check=False).returncode != 0
    done = json.loads(aws(lake, "s3api", "complete-multipart-upload", "--bucket", "landing", "--key", "fo/obj",
                          "--upload-id", uid, "--multipart-upload", body, "--checksum-crc32", crc(data),
                          "--checksum-type", "FULL_OBJECT").stdout)
    assert done["ChecksumCRC32"] == crc(data) and done.get("ChecksumType") == "FULL_OBJECT", done
    head = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "fo/obj",
                          "--checksum-mode", "ENABLED").stdout)
    assert head["ChecksumCRC32"] == crc(data) and head.get("ChecksumType") == "FULL_OBJECT", head
    # partNumber: each part's bytes, 206, with the part count.
    h2 = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "fo/obj",
                        "--part-number", "2").stdout)
    assert h2["ContentLength"] == 3000 and h2["PartsCount"] == 2, h2
    for n, f in ((1, part1), (2, part2)):
        out = tmp_path / ("got%d" % n)
        meta = json.loads(aws(lake, "s3api", "get-object", "--bucket", "landing", "--key", "fo/obj",
                              "--part-number", str(n), str(out)).stdout)
        assert out.read_bytes() == f.read_bytes() and meta["PartsCount"] == 2, meta
        assert meta["ContentRange"].startswith("bytes %d-" % (0 if n == 1 else 5 << 20)), meta
    p = aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "fo/obj", "--part-number", "3",
            check=False)
    assert p.returncode != 0 and "416" in p.stderr, p.stderr

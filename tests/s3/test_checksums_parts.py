"""Per-part reads and CRC64NVME.

- GET/HEAD ?partNumber=N beyond the last part: 416 InvalidPartNumber (boto3).
- A part read with x-amz-checksum-mode ENABLED carries that part's checksum (boto3 validates
  the body it receives against it).
- CRC64NVME as a header, as an aws-chunked trailer, and from aws-cli 1.45 / botocore 1.43 itself
  (which needs awscrt for CRC64NVME; Debian has none, so the test hands botocore a pure-Python
  CRC64NVME through a sitecustomize module and lets the CLI's own trailer code do the rest), and
  a FULL_OBJECT multipart upload with CRC64NVME.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "iam"))
import sigv4_client  # noqa: E402
from s3util import aws  # noqa: E402

CRC64NVME_SOURCE = '''
def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x9A6C9329AC4BC9B5 if c & 1 else c >> 1
        t.append(c)
    return t

_T = _table()


def crc64nvme(data, crc=0):
    c = crc ^ 0xFFFFFFFFFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF
'''
exec(CRC64NVME_SOURCE)  # defines crc64nvme() here too


def b64(raw):
    return base64.b64encode(raw).decode()


def crc64_b64(data):
    return b64(crc64nvme(data).to_bytes(8, "big"))  # noqa: F821 (defined by exec)


def test_crc64nvme_reference_value():
    # CRC-64/NVME check value of the CRC catalogue: the test's own reference is right.
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888  # noqa: F821


def error_of(excinfo):
    r = excinfo.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def test_part_number_out_of_range_and_part_checksums(lake):
    s3 = lake.boto3_client("s3")
    chunks = [os.urandom(5 << 20), os.urandom(4321)]
    up = s3.create_multipart_upload(Bucket="landing", Key="pc/obj", ChecksumAlgorithm="SHA256")
    parts = []
    for i, chunk in enumerate(chunks, 1):
        r = s3.upload_part(Bucket="landing", Key="pc/obj", UploadId=up["UploadId"], PartNumber=i,
                           Body=chunk, ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": i, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket="landing", Key="pc/obj", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    # Each part comes with its own SHA-256 (boto3 checks the body against it as it reads).
    for n, chunk in enumerate(chunks, 1):
        g = s3.get_object(Bucket="landing", Key="pc/obj", PartNumber=n, ChecksumMode="ENABLED")
        assert g["Body"].read() == chunk
        assert g["ChecksumSHA256"] == b64(hashlib.sha256(chunk).digest()), g
        assert g["PartsCount"] == 2
        h = s3.head_object(Bucket="landing", Key="pc/obj", PartNumber=n, ChecksumMode="ENABLED")
        assert h["ChecksumSHA256"] == b64(hashlib.sha256(chunk).digest())
        assert h["ContentLength"] == len(chunk)
    # The whole object keeps its COMPOSITE checksum.
    whole = s3.head_object(Bucket="landing", Key="pc/obj", ChecksumMode="ENABLED")
    assert whole["ChecksumSHA256"].endswith("-2")
    # Beyond the last part: 416 InvalidPartNumber (GET has the code in its body; HEAD has none).
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="pc/obj", PartNumber=3)
    assert error_of(e) == (416, "InvalidPartNumber")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="landing", Key="pc/obj", PartNumber=3)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    # A simple object has one part: 1 is the whole object, 2 is out of range.
    s3.put_object(Bucket="landing", Key="pc/simple", Body=b"simple", ChecksumAlgorithm="CRC32")
    g = s3.get_object(Bucket="landing", Key="pc/simple", PartNumber=1, ChecksumMode="ENABLED")
    assert g["Body"].read() == b"simple" and "ChecksumCRC32" in g
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="pc/simple", PartNumber=2)
    assert error_of(e) == (416, "InvalidPartNumber")
    # Out of 1..10000 altogether is a bad argument, as in S3.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="landing", Key="pc/simple", PartNumber=10001)
    assert error_of(e) == (400, "InvalidArgument")


def signed_put(lake, path, body, headers, payload_hash=None):
    host = lake.endpoints["api"]
    payload_hash = payload_hash or hashlib.sha256(body).hexdigest()
    h, *_ = sigv4_client.sign("PUT", host, path, "", headers, payload_hash, lake.ACCESS_KEY,
                              lake.SECRET_KEY, "us-east-1", "s3")
    return sigv4_client.request(host, "PUT", path, "", h, body)


def test_crc64nvme_header_and_trailer(lake):
    s3 = lake.boto3_client("s3")
    data = os.urandom(300_000)  # over the server's in-memory body limit: streamed
    status, text = signed_put(lake, "/landing/c64/hdr", data, {"x-amz-checksum-crc64nvme": crc64_b64(data)})
    assert status == 200, text
    h = s3.head_object(Bucket="landing", Key="c64/hdr", ChecksumMode="ENABLED")
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-crc64nvme"] == crc64_b64(data)
    # A wrong value: BadDigest and nothing stored.
    status, text = signed_put(lake, "/landing/c64/bad", data, {"x-amz-checksum-crc64nvme": crc64_b64(b"x")})
    assert status == 400 and "BadDigest" in text, text
    with pytest.raises(ClientError):
        s3.head_object(Bucket="landing", Key="c64/bad")
    # As a trailer of an aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER, as the SDKs send).
    def chunked(payload, trailer_value):
        out = b""
        for i in range(0, len(payload), 65536):
            piece = payload[i:i + 65536]
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        return out + b"0\r\nx-amz-checksum-crc64nvme:" + trailer_value.encode() + b"\r\n\r\n"
    headers = {"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc64nvme",
               "x-amz-decoded-content-length": str(len(data))}
    status, text = signed_put(lake, "/landing/c64/trl", chunked(data, crc64_b64(data)), headers,
                              "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert status == 200, text
    assert s3.get_object(Bucket="landing", Key="c64/trl")["Body"].read() == data
    status, text = signed_put(lake, "/landing/c64/trl-bad", chunked(data, crc64_b64(b"y")), headers,
                              "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert status == 400 and "BadDigest" in text, text
    with pytest.raises(ClientError):
        s3.head_object(Bucket="landing", Key="c64/trl-bad")


def cli_with_crc64nvme(tmp_path):
    """Environment for aws-cli 1.45 with a pure-Python CRC64NVME registered in botocore."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(CRC64NVME_SOURCE + '''
from botocore import httpchecksum


class Crc64NvmeChecksum(httpchecksum.BaseChecksum):
    def __init__(self):
        self._crc = 0

    def update(self, chunk):
        self._crc = crc64nvme(chunk, self._crc)

    def digest(self):
        return self._crc.to_bytes(8, byteorder="big")


httpchecksum._CHECKSUM_CLS["crc64nvme"] = Crc64NvmeChecksum
httpchecksum._SUPPORTED_CHECKSUM_ALGORITHMS.append("crc64nvme")
httpchecksum.HAS_CRT = True  # only the "needs awscrt" check reads it after import
''')
    return str(site)


def test_crc64nvme_from_awscli_and_full_object_multipart(lake, tmp_path):
    site = cli_with_crc64nvme(tmp_path)
    os.environ["PYTHONPATH"] = site
    try:
        data = os.urandom(200_000)
        src = tmp_path / "obj"
        src.write_bytes(data)
        out = json.loads(aws(lake, "s3api", "put-object", "--bucket", "landing", "--key", "c64/cli",
                             "--body", str(src), "--checksum-algorithm", "CRC64NVME").stdout)
        assert out["ChecksumCRC64NVME"] == crc64_b64(data), out
        head = json.loads(aws(lake, "s3api", "head-object", "--bucket", "landing", "--key", "c64/cli",
                              "--checksum-mode", "ENABLED").stdout)
        assert head["ChecksumCRC64NVME"] == crc64_b64(data), head
        # Multipart: CRC64NVME uploads are FULL_OBJECT; the object's CRC64NVME is that of all
        # its bytes, combined from the parts' without reading them again.
        p1, p2 = os.urandom(5 << 20), os.urandom(777)
        (tmp_path / "p1").write_bytes(p1)
        (tmp_path / "p2").write_bytes(p2)
        up = json.loads(aws(lake, "s3api", "create-multipart-upload", "--bucket", "landing", "--key",
                            "c64/mp", "--checksum-algorithm", "CRC64NVME").stdout)
        parts = []
        for n in (1, 2):
            r = json.loads(aws(lake, "s3api", "upload-part", "--bucket", "landing", "--key", "c64/mp",
                               "--upload-id", up["UploadId"], "--part-number", str(n), "--body",
                               str(tmp_path / ("p%d" % n)), "--checksum-algorithm", "CRC64NVME").stdout)
            parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC64NVME": r["ChecksumCRC64NVME"]})
        assert parts[1]["ChecksumCRC64NVME"] == crc64_b64(p2)
        done = json.loads(aws(lake, "s3api", "complete-multipart-upload", "--bucket", "landing", "--key",
                              "c64/mp", "--upload-id", up["UploadId"], "--multipart-upload",
                              json.dumps({"Parts": parts})).stdout)
        assert done["ChecksumCRC64NVME"] == crc64_b64(p1 + p2), done
        assert done.get("ChecksumType") == "FULL_OBJECT", done
        # COMPOSITE is not allowed with CRC64NVME (as in S3).
        p = aws(lake, "s3api", "create-multipart-upload", "--bucket", "landing", "--key", "c64/bad",
                "--checksum-algorithm", "CRC64NVME", "--checksum-type", "COMPOSITE", check=False)
        assert p.returncode != 0 and "InvalidRequest" in p.stderr, p.stderr
    finally:
        del os.environ["PYTHONPATH"]

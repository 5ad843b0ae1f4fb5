"""Crash and concurrency behaviour of PUT through the S3 API."""
import hashlib
import http.client
import os
import socket
import threading
import time

from botocore.exceptions import ClientError


class ZeroBody:
    """A seekable body of zero bytes (for botocore to hash while signing)."""

    def __init__(self, size):
        self.size, self.pos = size, 0

    def read(self, n=-1):
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        self.pos += n
        return b"\0" * n

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.size + pos)
        return self.pos

    def tell(self):
        return self.pos


def signed_put_headers(lake, path, size):
    """SigV4 headers (signed by botocore) for PUT <path> with a body of `size` zero bytes."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="PUT", url=lake.url() + path, data=ZeroBody(size),
                     headers={"Content-Length": str(size)})
    S3SigV4Auth(Credentials(lake.ACCESS_KEY, lake.SECRET_KEY), "s3", lake.REGION).add_auth(req)
    headers = dict(req.headers.items())
    headers["Host"] = lake.endpoints["api"]
    return headers


def temp_files(tmp_dir):
    """Temp files of PUTs in progress (spread over the shard folders of .tarn/tmp)."""
    return [os.path.join(d, f) for d, _, files in os.walk(tmp_dir) for f in files]


def test_kill_9_mid_put_leaves_old_object(lake):
    s3 = lake.boto3_client("s3")
    s3.put_object(Bucket="landing", Key="crash/obj", Body=b"old version")
    size = 64 << 20
    headers = signed_put_headers(lake, "/landing/crash/obj", size)
    host, port = lake.host_port("api")
    sock = socket.create_connection((host, port))
    head = "PUT /landing/crash/obj HTTP/1.1\r\n" + "".join(
        "%s: %s\r\n" % (k, v) for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    tmp_dir = os.path.join(lake.data_dir, "objects", ".tarn", "tmp")
    sent = 0
    chunk = b"\0" * (256 << 10)
    deadline = time.time() + 60
    # Send part of the body, until the server is visibly streaming it into a temp file.
    while time.time() < deadline and sent < size // 2:
        sock.sendall(chunk)
        sent += len(chunk)
        if sent >= (4 << 20) and any(os.path.getsize(f) >= (1 << 20) for f in temp_files(tmp_dir)):
            break
    assert temp_files(tmp_dir), "the PUT never reached the object store"
    lake.kill()  # SIGKILL with the PUT half-way
    sock.close()
    lake.start()
    s3 = lake.boto3_client("s3")
    assert s3.get_object(Bucket="landing", Key="crash/obj")["Body"].read() == b"old version"
    assert temp_files(tmp_dir) == []  # the torn temp file was cleaned up at start-up
    with open(os.path.join(lake.data_dir, "objects", "landing", "crash", "obj"), "rb") as f:
        assert f.read() == b"old version"
    # The same raw request, completed, is accepted (the signing above is a valid PUT).
    headers = signed_put_headers(lake, "/landing/crash/obj", 1 << 20)
    host, port = lake.host_port("api")
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("PUT", "/landing/crash/obj", body=b"\0" * (1 << 20), headers=headers)
    assert conn.getresponse().status == 200
    assert s3.head_object(Bucket="landing", Key="crash/obj")["ContentLength"] == 1 << 20


def test_concurrent_puts_same_key_last_writer_wins_whole(lake):
    s3 = lake.boto3_client("s3")
    bodies = [bytes([65 + i]) * (3 << 20) for i in range(6)]
    failures = []

    def put(body):
        try:
            lake.boto3_client("s3").put_object(Bucket="landing", Key="race/obj", Body=body)
        except ClientError as e:
            failures.append(e)

    threads = [threading.Thread(target=put, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    got = s3.get_object(Bucket="landing", Key="race/obj")
    data = got["Body"].read()
    assert data in bodies  # one writer's body, whole
    assert got["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()

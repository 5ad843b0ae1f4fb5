"""The API port's HTTP server under concurrency (src/net/README.md): GET /health and /metrics are
answered on the event loops while streaming uploads, blocking S3 requests and many keep-alive
clients are served by worker threads; pipelined requests keep their order; TLS works on both
paths. Driven by raw sockets, http.client and boto3 against the real binary."""
import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "iam"))
from sigv4_client import sign  # noqa: E402

from harness import Lake  # noqa: E402


def signed_headers(lake, method, path, query="", headers=None, payload_hash="UNSIGNED-PAYLOAD"):
    host, port = lake.host_port("api")
    h, *_ = sign(method, "%s:%d" % (host, port), path, query, headers or {}, payload_hash,
                 Lake.ACCESS_KEY, Lake.SECRET_KEY, Lake.REGION, "s3")
    return h


def raw_request(method, path, headers, body=b""):
    lines = ["%s %s HTTP/1.1" % (method, path)] + ["%s: %s" % kv for kv in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(f):
    """Reads one HTTP/1.1 response with a Content-Length body from a socket file."""
    status = f.readline()
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return int(status.split()[1]), headers, body


def metric(lake, prefix):
    conn = http.client.HTTPConnection(*lake.host_port("api"), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))


def test_many_concurrent_keep_alive_clients(lake):
    s3 = lake.boto3_client("s3")
    s3.create_bucket(Bucket="conc")
    host, port = lake.host_port("api")
    failures = []

    def client(i):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            for j in range(20):
                if j % 5 == 4:  # a signed S3 call: authentication and storage, on a worker
                    conn.request("GET", "/conc", headers=signed_headers(lake, "GET", "/conc"))
                else:
                    conn.request("GET", "/health")
                r = conn.getresponse()
                r.read()
                if r.status != 200 or r.getheader("Connection") == "close":
                    failures.append((i, j, r.status))
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append((i, repr(e)))
        finally:
            conn.close()

    loop_before = metric(lake, 'tarn_http_requests_total{listener="api",path="event_loop"}')
    threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    assert metric(lake, 'tarn_http_requests_total{listener="api",path="event_loop"}') - loop_before >= 1600
    assert metric(lake, 'tarn_http_requests_total{listener="api",path="worker"}') >= 400
    assert metric(lake, 'tarn_api_requests_total{service="tarn",action="Health"') >= 1600


def test_stalled_upload_does_not_block_health_or_other_requests(lake):
    s3 = lake.boto3_client("s3")
    s3.create_bucket(Bucket="slow")
    host, port = lake.host_port("api")
    body = os.urandom(1 << 20)  # larger than what the loop buffers: streams through a worker
    up = socket.create_connection((host, port))
    h = signed_headers(lake, "PUT", "/slow/big", headers={"content-length": str(len(body))})
    up.sendall(raw_request("PUT", "/slow/big", h) + body[:100000])
    # A small upload that stalls mid-body too (this one the loop buffers).
    small = socket.create_connection((host, port))
    hs = signed_headers(lake, "PUT", "/slow/small", headers={"content-length": "1000"})
    small.sendall(raw_request("PUT", "/slow/small", hs) + b"s" * 400)
    time.sleep(0.2)

    conn = http.client.HTTPConnection(host, port, timeout=10)
    start = time.time()
    for _ in range(50):
        conn.request("GET", "/health")
        r = conn.getresponse()
        assert r.status == 200 and b'"ok"' in r.read()
    s3.head_bucket(Bucket="slow")
    assert s3.list_objects_v2(Bucket="slow").get("KeyCount") == 0  # nothing half-written shows
    assert time.time() - start < 5

    up.sendall(body[100000:])
    small.sendall(b"s" * 600)
    uf, sf = up.makefile("rb"), small.makefile("rb")
    assert read_response(uf)[0] == 200
    assert read_response(sf)[0] == 200
    got = s3.get_object(Bucket="slow", Key="big")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    assert s3.get_object(Bucket="slow", Key="small")["Body"].read() == b"s" * 1000
    up.close()
    small.close()


def test_pipelined_loop_and_worker_requests_keep_their_order(lake):
    s3 = lake.boto3_client("s3")
    s3.create_bucket(Bucket="pipe")
    s3.put_object(Bucket="pipe", Key="k", Body=b"pipelined object")
    host, port = lake.host_port("api")
    sock = socket.create_connection((host, port))
    reqs = b""
    for _ in range(5):
        reqs += raw_request("GET", "/health", {"Host": "x"})
        reqs += raw_request("GET", "/pipe/k", signed_headers(lake, "GET", "/pipe/k"))
        reqs += raw_request("GET", "/nosuchbucket/k", signed_headers(lake, "GET", "/nosuchbucket/k"))
    sock.sendall(reqs)
    f = sock.makefile("rb")
    for _ in range(5):
        status, headers, body = read_response(f)
        assert status == 200 and b'"status":"ok"' in body
        status, headers, body = read_response(f)
        assert status == 200 and body == b"pipelined object"
        status, headers, body = read_response(f)
        assert status == 404 and b"NoSuchBucket" in body
    sock.close()


def test_tls_api_serves_loop_and_worker_paths():
    lk = Lake(listeners={"api": "127.0.0.1:0", "sql": "off", "mqtt": "off", "mqtts": "off",
                         "mqtt-ws": "off", "console": "off"})
    cert, key = os.path.join(lk.data_dir, "api.crt"), os.path.join(lk.data_dir, "api.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    cfg = os.path.join(lk.data_dir, "tarn.yaml")
    with open(cfg, "w") as f:
        f.write("tls:\n  cert_file: %s\n  key_file: %s\n" % (cert, key))
    lk.extra_args = ["--config", cfg]
    lk.start()
    try:
        host, port = lk.host_port("api")
        ctx = ssl.create_default_context(cafile=cert)
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
        for _ in range(3):  # one kept-alive TLS connection
            conn.request("GET", "/health")
            r = conn.getresponse()
            assert r.status == 200 and b'"ok"' in r.read()
        conn.close()
        import boto3
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url="https://%s:%d" % (host, port), verify=cert,
                          aws_access_key_id=Lake.ACCESS_KEY, aws_secret_access_key=Lake.SECRET_KEY,
                          region_name=Lake.REGION,
                          config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="tls")
        data = os.urandom(3 << 20)
        s3.put_object(Bucket="tls", Key="blob", Body=data)
        assert s3.get_object(Bucket="tls", Key="blob")["Body"].read() == data
    finally:
        assert lk.stop() == 0
        lk.cleanup()

"""Load generator for bench/streams: N processes send pre-signed PutRecordBatch requests (500
records of ~200-byte JSON sensor readings each) over keep-alive HTTP and report records/s and
per-call latency percentiles. Signing happens once per distinct batch (SigV4 signatures stay
valid for minutes), so the client costs little CPU next to the server.

    load.py ENDPOINT STREAM TOTAL_RECORDS PROCESSES [RATE_PER_PROCESS_CALLS_PER_S]
Prints one JSON line: {"records": …, "seconds": …, "p50_ms": …, "p99_ms": …, "start": …}.
"""
import http.client
import json
import multiprocessing as mp
import random
import sys
import time

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS, SECRET = "AKIATESTROOT00000001", "testsecretkey/0000000000000000000000000+"


def record(i, rnd):
    r = {"device": "sensor-%04d" % (i % 1000), "ts": 1764072000000 + i, "seq": i,
         "temperature": round(rnd.uniform(-20, 45), 3), "humidity": round(rnd.uniform(0, 100), 2),
         "pressure": round(rnd.uniform(950, 1050), 2), "battery": round(rnd.uniform(3, 4.2), 3),
         "status": rnd.choice(["ok", "warn", "degraded"]), "site": "site-%02d" % (i % 17)}
    s = json.dumps(r, separators=(",", ":"))
    return s + " " * max(0, 199 - len(s)) + "\n"


def signed_batches(endpoint, stream, start, n_batches, rnd):
    import base64
    out = []
    creds = Credentials(ACCESS, SECRET)
    for b in range(n_batches):
        recs = [{"Data": base64.b64encode(record(start + b * 500 + i, rnd).encode()).decode()}
                for i in range(500)]
        body = json.dumps({"DeliveryStreamName": stream, "Records": recs})
        req = AWSRequest(method="POST", url="http://%s/" % endpoint, data=body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Firehose_20150804.PutRecordBatch"})
        SigV4Auth(creds, "firehose", "us-east-1").add_auth(req)
        out.append((body.encode(), dict(req.headers)))
    return out


def worker(args):
    endpoint, stream, calls, pid, rate = args
    rnd = random.Random(pid)
    batches = signed_batches(endpoint, stream, pid * 10_000_000, min(calls, 20), rnd)
    host, port = endpoint.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    lat = []
    t0 = time.time()
    start = t0
    for c in range(calls):
        if rate:
            due = t0 + c / rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
        body, headers = batches[c % len(batches)]
        s = time.perf_counter()
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        lat.append(time.perf_counter() - s)
        if resp.status != 200 or json.loads(data)["FailedPutCount"]:
            raise SystemExit("PutRecordBatch failed: %s %s" % (resp.status, data[:300]))
    return lat, start, time.time()


def main():
    endpoint, stream, total, procs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0
    calls = max(1, total // 500 // procs)
    with mp.Pool(procs) as pool:
        res = pool.map(worker, [(endpoint, stream, calls, p, rate) for p in range(procs)])
    secs = max(r[2] for r in res) - min(r[1] for r in res)
    all_l = sorted(x for r in res for x in r[0])
    print(json.dumps({"records": calls * procs * 500, "seconds": round(secs, 3),
                      "p50_ms": round(all_l[len(all_l) // 2] * 1000, 2),
                      "p99_ms": round(all_l[int(len(all_l) * 0.99)] * 1000, 2),
                      "start": min(r[1] for r in res)}))


if __name__ == "__main__":
    main()

"""Writes pre-signed Firehose requests for put_load: N distinct PutRecord calls (BATCH=1) or
PutRecordBatch calls of BATCH records, each a ~200-byte JSON sensor reading (load.record), as
raw HTTP/1.1 requests (u64 little-endian length + bytes). SigV4 signatures stay valid for
minutes, so the load generator replays them without signing anything.
    signed_requests.py ENDPOINT STREAM N BATCH OUT
"""
import base64
import json
import random
import struct
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, __import__("os").path.dirname(__file__))
from load import ACCESS, SECRET, record  # noqa: E402


def main():
    endpoint, stream, n, batch, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    creds = Credentials(ACCESS, SECRET)
    rnd = random.Random(11)
    seq = 0
    with open(out, "wb") as f:
        for _ in range(n):
            recs = []
            for _ in range(batch):
                recs.append({"Data": base64.b64encode(record(seq, rnd).encode()).decode()})
                seq += 1
            if batch == 1:
                target, body = "PutRecord", {"DeliveryStreamName": stream, "Record": recs[0]}
            else:
                target, body = "PutRecordBatch", {"DeliveryStreamName": stream, "Records": recs}
            data = json.dumps(body, separators=(",", ":"))
            req = AWSRequest(method="POST", url="http://%s/" % endpoint, data=data, headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "Firehose_20150804." + target})
            SigV4Auth(creds, "firehose", "us-east-1").add_auth(req)
            head = "POST / HTTP/1.1\r\nHost: %s\r\n" % endpoint
            for k, v in req.headers.items():
                if k.lower() not in ("host", "content-length"):
                    head += "%s: %s\r\n" % (k, v)
            raw = (head + "Content-Length: %d\r\n\r\n" % len(data)).encode() + data.encode()
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)


if __name__ == "__main__":
    main()

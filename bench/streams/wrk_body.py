"""Writes a wrk Lua script that POSTs one pre-signed PutRecordBatch (500 records of ~200-byte
JSON) again and again: wrk then drives the API with far less client CPU than Python.
    wrk_body.py ENDPOINT STREAM OUT.lua
"""
import json
import random
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from load import signed_batches  # noqa: E402

endpoint, stream, out = sys.argv[1], sys.argv[2], sys.argv[3]
body, headers = signed_batches(endpoint, stream, 0, 1, random.Random(7))[0]
with open(out, "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write("wrk.body = %s\n" % json.dumps(body.decode()))
    for k, v in headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        f.write("wrk.headers[%s] = %s\n" % (json.dumps(k), json.dumps(v)))

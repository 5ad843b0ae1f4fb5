"""Prints the write-ahead log's latency histograms (tarn_firehose_wal_commit_seconds: append to
acknowledgement; tarn_firehose_wal_sync_seconds: one fdatasync) for stream STREAM as the share
of observations at or under each bound, since the snapshot in STATE (then updates STATE):
how much of a producer's latency the WAL accounts for, next to what the client measured.
    wal_histogram.py ENDPOINT STREAM STATE
"""
import json
import os
import re
import sys
import urllib.request

api, stream, state = sys.argv[1], sys.argv[2], sys.argv[3]
text = urllib.request.urlopen("http://%s/metrics" % api).read().decode()
cur = {}
pat = re.compile(r'(tarn_firehose_wal_(?:sync|commit)_seconds)_bucket\{(.*)\} (\d+)$')
for line in text.splitlines():
    m = pat.match(line)
    if not m or 'stream="%s"' % stream not in m.group(2):
        continue
    le = re.search(r'le="([^"]+)"', m.group(2)).group(1)
    cur.setdefault(m.group(1), {})[le] = int(m.group(3))
prev = json.load(open(state)) if os.path.exists(state) else {}
with open(state, "w") as f:
    json.dump(cur, f)
for name in sorted(cur):
    d = {k: v - prev.get(name, {}).get(k, 0) for k, v in cur[name].items()}
    total = d.get("+Inf", 0)
    if not total:
        continue
    shares = ", ".join("<=%gms %.1f%%" % (float(k) * 1000, 100.0 * d.get(k, 0) / total)
                       for k in ("0.001", "0.0025", "0.005", "0.01", "0.025"))
    print("     WAL %-6s (%d): %s" % (name.split("_")[3], total, shares))

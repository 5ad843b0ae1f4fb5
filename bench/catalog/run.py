"""bench/catalog: Glue catalog and crawler numbers against their peers, in one run.

    TARN_BIN=build/bin/tarn /usr/bin/python3 bench/catalog/run.py [--partitions N] [--files N] [--folders N]

1. GetPartitions with an Expression over N partitions (default 100 000): client-side p50/p99
   of boto3 calls, after BatchCreatePartition of all of them (its rate is reported too).
2. A crawl of --files small Parquet files (default 20 000) in --folders Hive partitions (default
   400), put through the S3 API: objects/s listed and classified (reading each footer), against
   `find` + DuckDB parquet_schema() over the same files in the same run; then a re-crawl with
   nothing new.
Prints one JSON object.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from harness import Lake, tarn_binary  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def bench_partitions(lake, n):
    glue = lake.boto3_client("glue")
    glue.create_database(DatabaseInput={"Name": "bench"})
    keys = [{"Name": k, "Type": "string"} for k in ("site", "month", "day", "hour")]
    glue.create_table(DatabaseName="bench", TableInput={
        "Name": "readings", "PartitionKeys": keys,
        "StorageDescriptor": {"Location": "s3://landing/bench/readings/", "Columns": [{"Name": "v", "Type": "double"}]}})
    values = []
    site = 0
    while len(values) < n:
        for m in range(1, 13):
            for d in range(1, 29):
                for h in range(24):
                    if len(values) < n:
                        values.append(["s%03d" % site, "%02d" % m, "%02d" % d, "%02d" % h])
        site += 1
    t0 = time.time()

    def create(chunk):
        c = lake.boto3_client("glue")
        out = c.batch_create_partition(DatabaseName="bench", TableName="readings", PartitionInputList=[
            {"Values": v, "StorageDescriptor": {"Location": "s3://landing/bench/readings/site=%s/month=%s/day=%s/hour=%s/" % tuple(v)}}
            for v in chunk])
        assert not out.get("Errors"), out["Errors"][:1]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(create, [values[i:i + 100] for i in range(0, len(values), 100)]))
    create_s = time.time() - t0
    def measure(expr, calls):
        lat = []
        found = 0
        for _ in range(calls):
            t = time.perf_counter()
            r = glue.get_partitions(DatabaseName="bench", TableName="readings", Expression=expr)
            lat.append((time.perf_counter() - t) * 1000)
            found = len(r["Partitions"])
        return found, lat

    # The figure: equality/range terms on the partition keys, leading keys included.
    expr = "month = '11' AND day = '25' AND hour BETWEEN '08' AND '11' AND site IN ('s000', 's001', 's002')"
    found, lat = measure(expr, 200)
    out = {"partitions": n, "batch_create_per_s": round(n / create_s), "expression": expr,
           "matches": found, "get_partitions_p50_ms": round(pct(lat, 0.5), 2),
           "get_partitions_p99_ms": round(pct(lat, 0.99), 2), "other_expressions": []}
    # Context: no leading key (the per-key value index), and no indexable term at all.
    for other in ("hour = '05' AND day IN ('07', '08') AND month > '10'",
                  "NOT site = 's000' AND hour <> '00' AND day = '01' OR month = '13'"):
        found, lat = measure(other, 50)
        out["other_expressions"].append({"expression": other, "matches": found,
                                         "p50_ms": round(pct(lat, 0.5), 2),
                                         "p99_ms": round(pct(lat, 0.99), 2)})
    return out


def bench_crawl(lake, files, folders):
    s3 = lake.boto3_client("s3")
    glue = lake.boto3_client("glue")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.parquet")
        subprocess.run([tarn_binary(), "sql-local",
                        "COPY (SELECT i AS seq, 'dev-' || i AS device, random() AS temp FROM range(20) t(i)) "
                        "TO '%s' (FORMAT parquet)" % p], check=True, capture_output=True)
        body = open(p, "rb").read()
    keys = ["crawl/readings/day=%04d/part-%05d.parquet" % (i % folders, i) for i in range(files)]

    def put(chunk):
        c = lake.boto3_client("s3")
        for k in chunk:
            c.put_object(Bucket="landing", Key=k, Body=body)
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(put, [keys[i:i + 200] for i in range(0, len(keys), 200)]))
    glue.create_database(DatabaseInput={"Name": "crawlbench"})
    glue.create_crawler(Name="bench", Role="r", DatabaseName="crawlbench",
                        Targets={"S3Targets": [{"Path": "s3://landing/crawl/readings/"}]})

    def run():
        before = glue.get_crawler(Name="bench")["Crawler"].get("LastCrawl", {}).get("MessagePrefix")
        t = time.time()
        glue.start_crawler(Name="bench")
        while True:
            c = glue.get_crawler(Name="bench")["Crawler"]
            if c["State"] == "READY" and c.get("LastCrawl", {}).get("MessagePrefix") != before:
                assert c["LastCrawl"]["Status"] == "SUCCEEDED", c["LastCrawl"]
                return time.time() - t
            time.sleep(0.05)
    first = run()
    again = run()
    parts = sum(len(pg["Partitions"]) for pg in glue.get_paginator("get_partitions").paginate(
        DatabaseName="crawlbench", TableName="readings"))
    # Peer: find + DuckDB parquet_schema() over the same files.
    root = os.path.join(lake.data_dir, "objects", "landing", "crawl", "readings")
    t = time.time()
    listed = subprocess.run(["find", root, "-name", "*.parquet"], check=True, capture_output=True,
                            text=True).stdout.split()
    # The file list is too long for one command line: DuckDB globs the same files itself.
    subprocess.run([tarn_binary(), "sql-local",
                    "SELECT count(*) FROM parquet_schema('%s/*/*.parquet')" % root],
                   check=True, capture_output=True)
    peer = time.time() - t
    return {"files": files, "folders": folders, "partitions_catalogued": parts,
            "crawl_s": round(first, 2), "crawl_objects_per_s": round(files / first),
            "peer_find_parquet_schema_s": round(peer, 2), "peer_objects_per_s": round(len(listed) / peer),
            "ratio_vs_peer": round((files / first) / (len(listed) / peer), 2),
            "recrawl_nothing_new_s": round(again, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=100000)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--folders", type=int, default=400)
    a = ap.parse_args()
    lake = Lake()
    lake.start()
    try:
        out = {"get_partitions": bench_partitions(lake, a.partitions),
               "crawl": bench_crawl(lake, a.files, a.folders)}
    finally:
        lake.stop()
        lake.cleanup()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

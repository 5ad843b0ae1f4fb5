"""MQTT QoS 1 → rule → durable delivery stream, against mosquitto QoS 1 in the same run.

Tarn: devices publish QoS 1 JSON readings (~200 bytes) on bench/<n>; the rule
`SELECT * FROM 'bench/#'` sends each to delivery stream `bench` (JSON → Parquet with a Glue
table's schema); the PUBACK leaves only once the record is in the stream's fsynced write-ahead
log. Peer: Debian's mosquitto 2.0 (persistence off, so nothing is fsynced) acknowledging on
receipt and forwarding to one QoS 1 subscriber on bench/# — the stand-in for the consumer.
Throughput: messages acknowledged per second by Tarn (each one durable) against messages per
second mosquitto delivered to its subscriber, and against mosquitto's PUBACK rate with no
subscriber at all (ingest only, the strictest peer); then PUBACK latency p50/p99 with each broker
at half of its own peak rate.

    mqtt_run.py [--seconds S] [--pubs N] [--window W] [--interval SECONDS]
Prints a table and one JSON line (for run.sh).
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import Lake  # noqa: E402

BENCH = os.path.join(ROOT, "build", "bin", "mqtt_bench")
COLUMNS = [{"Name": n, "Type": t} for n, t in (
    ("device", "string"), ("ts", "bigint"), ("seq", "bigint"), ("temperature", "double"),
    ("humidity", "double"), ("pressure", "double"), ("battery", "double"), ("status", "string"),
    ("site", "string"))]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Mosquitto:
    name = "mosquitto"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-mosq-")
        self.port = free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"
                    "max_queued_messages 1000\nset_tcp_nodelay true\n" % self.port)
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Tarn:
    name = "tarn"

    def __init__(self, interval):
        self.lake = Lake(env={"TARN_MQTT_ALLOW_ANONYMOUS": "1"},
                         listeners={"api": "127.0.0.1:0", "sql": "off", "mqtt": "127.0.0.1:0",
                                    "mqtts": "off", "mqtt-ws": "off", "console": "off"})
        self.lake.start()
        self.port = self.lake.host_port("mqtt")[1]
        glue = self.lake.boto3_client("glue")
        glue.create_database(DatabaseInput={"Name": "bench"})
        glue.create_table(DatabaseName="bench", TableInput={
            "Name": "readings", "StorageDescriptor": {"Columns": COLUMNS,
                                                      "Location": "s3://landing/iot/bench/"}})
        from botocore.config import Config
        fh = self.lake.boto3_client("firehose", config=Config(parameter_validation=False))
        fh.create_delivery_stream(
            DeliveryStreamName="bench", DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/x", "BucketARN": "arn:aws:s3:::landing",
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": interval},
                "DataFormatConversionConfiguration": {
                    "SchemaConfiguration": {"DatabaseName": "bench", "TableName": "readings"},
                    "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                    "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}}}})
        iot = self.lake.boto3_client("iot")
        iot.create_topic_rule(ruleName="bench_to_stream", topicRulePayload={
            "sql": "SELECT * FROM 'bench/#'", "awsIotSqlVersion": "2016-03-23",
            "actions": [{"firehose": {"roleArn": "arn:aws:iam::123456789012:role/x",
                                      "deliveryStreamName": "bench", "separator": "\n"}}]})

    def metric(self, name):
        text = urllib.request.urlopen(self.lake.url() + "/metrics").read().decode()
        m = re.search(r'^%s\{stream="bench"\} (\S+)$' % name, text, re.M)
        return float(m.group(1)) if m else 0.0

    def stop(self):
        self.lake.stop()
        self.lake.cleanup()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_cpu(broker, pid, *args):
    """run() plus the broker's CPU time per acknowledged message, in µs (load-independent-ish:
    on a shared machine throughput moves with the neighbours, CPU per message much less)."""
    c0 = cpu_seconds(pid)
    r = run(broker, *args)
    c1 = cpu_seconds(pid)
    total = r["acked_per_s"] * float(args[args.index("--seconds") + 1]) if "--seconds" in args else 0
    # The run also has a warm-up and a drain: count everything acknowledged over the whole call
    # as an upper bound of the window's share (the figure is a lower bound of efficiency).
    r["cpu_s"] = c1 - c0
    r["cpu_us_per_msg"] = (c1 - c0) * 1e6 / total if total else 0
    return r


def run(broker, *args):
    out = subprocess.run([BENCH, "publish", "--port", str(broker.port)] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("%s: mqtt_bench publish %s failed: %s" % (broker.name, args, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--pubs", type=int, default=4)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--interval", type=int, default=60,
                    help="the stream's BufferingHints.IntervalInSeconds")
    args = ap.parse_args()
    if not os.path.exists(BENCH):
        raise SystemExit("needs build/bin/mqtt_bench (./tarn.sh build)")
    mosq, tarn = Mosquitto(), Tarn(args.interval)
    res = {}
    try:
        common = ["--pubs", args.pubs, "--window", args.window, "--seconds", args.seconds]
        res["mosquitto_peak"] = run(mosq, *common, "--subs", 1)
        res["mosquitto_ingest"] = run_cpu(mosq, mosq.proc.pid, *common, "--subs", 0)
        before = tarn.metric("tarn_firehose_incoming_records_total")
        res["tarn_peak"] = run_cpu(tarn, tarn.lake.proc.pid, *common, "--subs", 0)
        after = tarn.metric("tarn_firehose_incoming_records_total")
        res["tarn_durable_records"] = after - before
        mosq_rate = res["mosquitto_peak"]["received_per_s"]
        tarn_rate = res["tarn_peak"]["acked_per_s"]
        res["mosquitto_half"] = run(mosq, *common, "--subs", 1, "--rate", int(mosq_rate / 2))
        res["tarn_half"] = run(tarn, *common, "--subs", 0, "--rate", int(tarn_rate / 2))
        res["wal_sync"] = tarn.metric("tarn_firehose_wal_sync_seconds_count")
    finally:
        mosq.stop()
        tarn.stop()
    ratio = tarn_rate / mosq_rate if mosq_rate else float("inf")
    ingest_rate = res["mosquitto_ingest"]["acked_per_s"]
    ratio_ingest = tarn_rate / ingest_rate if ingest_rate else float("inf")
    print("MQTT QoS 1, %d publishers x %d in flight, ~200-byte JSON readings, %gs"
          % (args.pubs, args.window, args.seconds))
    print("  mosquitto (no fsync), delivered to its subscriber: %8.0f msg/s  (PUBACKed %.0f/s)"
          % (mosq_rate, res["mosquitto_peak"]["acked_per_s"]))
    print("  tarn, rule -> stream, PUBACK after WAL fsync:      %8.0f msg/s  (%d records durable, "
          "%d fsyncs in the whole run)" % (tarn_rate, res["tarn_durable_records"], res["wal_sync"]))
    print("  mosquitto (no fsync), PUBACKs with no subscriber:  %8.0f msg/s  (ingest only)"
          % ingest_rate)
    print("  ratio tarn/mosquitto: %.2f against delivered, %.2f against ingest only (goal >= 1)"
          % (ratio, ratio_ingest))
    print("  broker CPU per acknowledged message (whole run incl. warm-up / whole window): "
          "mosquitto %.1f us, tarn %.1f us (broker + rule + WAL)"
          % (res["mosquitto_ingest"]["cpu_us_per_msg"], res["tarn_peak"]["cpu_us_per_msg"]))
    for name in ("mosquitto", "tarn"):
        h = res[name + "_half"]
        print("  %-9s PUBACK latency at %.0f msg/s (50%% of its peak): p50 %.2f ms, p99 %.2f ms"
              % (name, h["rate"], h["p50_us"] / 1000, h["p99_us"] / 1000))
    res["ratio"] = ratio
    res["ratio_ingest"] = ratio_ingest
    print(json.dumps(res))


if __name__ == "__main__":
    main()

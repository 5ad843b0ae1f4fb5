#!/usr/bin/python3
"""bench/e2e: the whole IoT path under load, and how fresh the data is.

  bench/e2e/run.py [--devices N] [--rate MSGS_PER_S] [--seconds S] [--samples N] [--warmup S]
                   [--fresh-load MSGS_PER_S] [--intervals 0,60] [--skip-throughput] [--no-compaction]
                   [--gap-ms MS]

1. Throughput: `tarn simulate` drives N devices (each its own thing and certificate, mutual TLS,
   QoS 1, ~200-byte JSON) through broker → rule → delivery stream → Parquet → catalog. Reports
   the PUBACKed messages/s, the rows the SQL endpoint then counts (nothing may be lost), and the
   CPU seconds the server and the simulator used (both share the machine's cores).
2. Freshness: at a steady background load (--fresh-load, default half the measured rate), a
   witness device publishes marked readings with QoS 1 (after --warmup seconds, at most one a
   second); for each, the time from its PUBACK until `SELECT … WHERE seq = marker`, polled over
   one open pgwire connection (psycopg), sees the row. p50/p99 for the stream's
   IntervalInSeconds 0 and 60 (the latter: what a Firehose user waits by default-ish).

Goal (issue #10): ≥ 50 000 msg/s sustained; freshness p99 ≤ 2 s with IntervalInSeconds 0.
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from harness import Lake, tarn_binary, thread_cpu  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_seconds(pid):
    """(on-CPU, waiting-for-a-CPU) seconds summed over the process's threads, from
    /proc/<pid>/task/*/schedstat. The second is time the process was runnable but the machine's
    cores were busy with something else: with it next to CPU time the run says whether it was
    bound by its own work, by waiting (latency), or by the neighbours' load."""
    run = wait = 0
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0.0, 0.0
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                r, w, _ = f.read().split()
            run += int(r)
            wait += int(w)
        except (OSError, ValueError):
            pass
    return run / 1e9, wait / 1e9




def psql(lake, sql):
    host, port = lake.host_port("sql")
    env = dict(os.environ, PGPASSWORD=lake.PASSWORD)
    return subprocess.run(["psql", "-X", "-A", "-t", "-h", host, "-p", str(port), "-U", "root", "-d", "tarn",
                           "-c", sql], env=env, capture_output=True, text=True, timeout=300)


def spec_for(work, devices, interval):
    text = open(os.path.join(REPO, "examples", "iot", "tarn.yaml")).read()
    width = max(3, len(str(devices)))
    text = text.replace('"sensor-{001..050}"', '"sensor-{%s..%s}"' % ("1".zfill(width), str(devices).zfill(width)))
    text = re.sub(r"IntervalInSeconds: \d+", "IntervalInSeconds: %d" % interval, text)
    path = os.path.join(work, "tarn.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, width


# tarn.yaml for the server under test; --no-compaction switches the stream's compaction off and
# --gap-ms sets the zero-interval flush gap, to compare with the same binary (docs/streams.md
# "Compaction", "Buffering").
LAKE_CONFIG = None


def start_lake(work, devices, interval):
    lake = Lake(config=LAKE_CONFIG)
    lake.start()
    spec, width = spec_for(work, devices, interval)
    t = time.time()
    ap = subprocess.run([tarn_binary(), "apply", "-f", spec, "--endpoint", lake.url()],
                        env=lake.aws_env(), capture_output=True, text=True, timeout=1800)
    if ap.returncode != 0:
        sys.exit("apply failed:\n" + ap.stdout + ap.stderr)
    print("  apply: %d things with certificates in %.1f s" % (devices, time.time() - t), flush=True)
    return lake, width


SIM_THREADS = 0  # --sim-threads: 0 lets `tarn simulate` pick (one per core)


def live_files(paths):
    """The files a query reads: those whose sequence range no other file of the folder covers
    (docs/streams.md "Compaction")."""
    name = re.compile(r"^(.+)-\d{4}(?:-\d\d){5}-(\d{20})-(\d{20})(\.[^-]*)$")
    by_folder = {}
    for p in paths:
        m = name.match(os.path.basename(p))
        if m:
            by_folder.setdefault(os.path.dirname(p), []).append((int(m.group(2)), int(m.group(3)), p))
    live = [p for p in paths if not name.match(os.path.basename(p))]
    for files in by_folder.values():
        for f, l, p in files:
            if not any((f2, l2) != (f, l) and f2 <= f and l <= l2 for f2, l2, _ in files):
                live.append(p)
    return live


def simulate(lake, work, devices, rate, seconds, qos=1, drain=30):
    cmd = [tarn_binary(), "simulate", "--endpoint-file", lake.endpoints_file, "--certs",
           os.path.join(work, "certs"), "--devices", str(devices), "--rate", str(rate), "--duration",
           str(seconds), "--qos", str(qos), "--seed", "7", "--json", "--drain", str(drain),
           "--threads", str(SIM_THREADS)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(work, "simulate.log"), "w"), text=True)


def throughput(args):
    work = tempfile.mkdtemp(prefix="tarn-bench-e2e-")
    lake, _ = start_lake(work, args.devices, 0)
    try:
        server_cpu0 = cpu_seconds(lake.proc.pid)
        server_sched0 = sched_seconds(lake.proc.pid)
        t0 = time.time()
        sim = simulate(lake, work, args.devices, args.rate, args.seconds)
        sim_cpu, sim_sched = 0.0, (0.0, 0.0)
        # The steady window: from the first progress line with every device connected (the
        # 1 000 mutual-TLS handshakes before it cost the server seconds of CPU) to the last one
        # before the publishing window ends, timed by the simulator's own progress lines.
        log_path = os.path.join(work, "simulate.log")
        steady = None  # (server cpu, simulator cpu, acked) at its start
        steady_end = None
        while sim.poll() is None:
            try:
                sim_cpu = cpu_seconds(sim.pid)
                sim_sched = sched_seconds(sim.pid)
            except OSError:
                pass
            try:
                lines = re.findall(r"simulate\s+([\d.]+)s\s+devices (\d+)/(\d+)\s+sent \d+\s+acked (\d+)",
                                   open(log_path).read())
            except OSError:
                lines = []
            if lines and float(lines[-1][0]) < args.seconds:
                up, total, acked_now = (int(x) for x in lines[-1][1:])
                point = (cpu_seconds(lake.proc.pid), sim_cpu, acked_now, float(lines[-1][0]),
                         thread_cpu(lake.proc.pid))
                if steady is None and up == total:
                    steady = point
                elif steady is not None:
                    steady_end = point
            time.sleep(0.2)
        server_sched = [b - a for a, b in zip(server_sched0, sched_seconds(lake.proc.pid))]
        wall = time.time() - t0
        result = json.loads(sim.stdout.read().strip().splitlines()[-1])
        if os.environ.get("BENCH_VERBOSE"):
            print(open(os.path.join(work, "simulate.log")).read().replace("\r", "\n")[-3000:])
        server_cpu = cpu_seconds(lake.proc.pid) - server_cpu0
        acked = result["acked"]
        # Everything acknowledged must reach the table.
        rows, t1 = None, time.time()
        while time.time() - t1 < 120:
            r = psql(lake, "SELECT count(*) FROM iot.telemetry")
            if r.returncode == 0 and int(r.stdout.strip() or 0) >= acked:
                rows = int(r.stdout.strip())
                break
            time.sleep(1)
        rate = acked / args.seconds
        print("throughput: %d devices, QoS 1, target %d msg/s for %d s" % (args.devices, args.rate, args.seconds))
        print("  acked %d (failed %d) = %.0f msg/s over the publishing window; wall %.1f s incl. drain"
              % (acked, result["failed"], rate, wall))
        print("  rows visible over pgwire: %s (acked %d)%s" % (rows, acked, "" if rows == acked else "  <-- MISMATCH"))
        print("  CPU: server %.1f s (%.0f%% of one core), simulator %.1f s; cores %d"
              % (server_cpu, 100 * server_cpu / wall, sim_cpu, os.cpu_count()))
        print("  CPU per acknowledged message: server %.1f us, simulator %.1f us (whole run, with the "
              "connections' TLS handshakes)" % (server_cpu * 1e6 / max(acked, 1), sim_cpu * 1e6 / max(acked, 1)))
        if steady and steady_end and steady_end[2] > steady[2]:
            n = steady_end[2] - steady[2]
            span = max(steady_end[3] - steady[3], 1e-3)
            print("  … with every device connected: %d acked in %.1f s = %.0f msg/s sustained; "
                  "server %.1f us, simulator %.1f us per message"
                  % (n, span, n / span, (steady_end[0] - steady[0]) * 1e6 / n,
                     (steady_end[1] - steady[1]) * 1e6 / n))
            groups = sorted(((steady_end[4].get(g, 0.0) - steady[4].get(g, 0.0)) * 1e6 / n, g)
                            for g in steady_end[4])
            print("  server threads, us per message in that window: " +
                  ", ".join("%s %.1f" % (g, us) for us, g in reversed(groups) if us >= 0.05))
        print("  runnable but waiting for a core (run queue): server %.1f s, simulator %.1f s "
              "(against %.1f s / %.1f s on a core); load average %s"
              % (server_sched[1], sim_sched[1], server_sched[0], sim_sched[0],
                 " ".join(open("/proc/loadavg").read().split()[:3])))
        print("  ratio to goal (50 000 msg/s): %.2f" % (rate / 50000))
        return rate
    finally:
        lake.stop()
        lake.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def freshness(args, interval, load):
    import paho.mqtt.client as mqtt
    work = tempfile.mkdtemp(prefix="tarn-bench-e2e-")
    lake, width = start_lake(work, args.devices, interval)
    sim = None
    try:
        # Sampling starts after a warm-up (every device connected, the table holding a steady
        # stream of files) and takes one sample per second at most, so the figure is not that
        # of the first seconds' small table.
        sim = simulate(lake, work, args.devices - 1, load,
                       args.warmup + args.samples * (2 + interval) + 30, drain=5)
        time.sleep(args.warmup)
        witness = "sensor-" + str(args.devices).zfill(width)
        certs = os.path.join(work, "certs", witness)
        c = mqtt.Client(client_id=witness, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=os.path.join(lake.data_dir, "keys", "mqtt-server.crt"),
                  certfile=os.path.join(certs, "certificate.pem.crt"), keyfile=os.path.join(certs, "private.pem.key"))
        host, port = lake.host_port("mqtts")
        c.connect(host, port)
        c.loop_start()
        # The probe polls over one pgwire connection kept open (as a dashboard does), so the
        # figure is the data's delay plus one query, not psql's start-up and login.
        import psycopg
        host_sql, port_sql = lake.host_port("sql")
        db = psycopg.connect(host=host_sql, port=port_sql, user="root", password=lake.PASSWORD,
                             dbname="tarn", autocommit=True)
        lat, query = [], []
        timeout = interval + 30
        for i in range(args.samples):
            marker = 10_000_000 + i
            payload = json.dumps({"device": witness, "seq": marker, "temperature": 20.0, "humidity": 50.0,
                                  "pressure": 1000.0, "battery": 3.9})
            info = c.publish("sensors/%s/telemetry" % witness, payload, qos=1)
            info.wait_for_publish(10)
            acked = time.time()
            while time.time() - acked < timeout:
                q0 = time.time()
                n = db.execute("SELECT count(*) FROM iot.telemetry WHERE seq = %d" % marker).fetchone()[0]
                query.append(time.time() - q0)
                if n == 1:
                    break
                time.sleep(0.05)
            else:
                print("  sample %d never became visible within %d s" % (i, timeout))
                continue
            lat.append(time.time() - acked)
            time.sleep(max(0.0, 1.0 - (time.time() - acked)))
        c.disconnect()
        c.loop_stop()
        db.close()
        lat.sort()
        if not lat:
            print("freshness (IntervalInSeconds %d): no sample became visible" % interval)
            return
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print("freshness (IntervalInSeconds %d, background %d msg/s): n=%d p50 %.2f s p99 %.2f s max %.2f s"
              % (interval, load, len(lat), statistics.median(lat), p99, lat[-1]))
        # Part of each figure is the probe's own query, which reads every file of the table
        # (at IntervalInSeconds 0 the stream writes a small file per flush).
        paths = glob.glob(os.path.join(lake.data_dir, "objects", "landing", "iot", "telemetry",
                                       "**", "*.parquet"), recursive=True)
        print("  the probe's query: p50 %.2f s, max %.2f s (polls %d); the table holds %d Parquet files,"
              " %d of them read (the others merged by compaction, deleted after its grace period)"
              % (statistics.median(query), max(query), len(query), len(paths), len(live_files(paths))))
    finally:
        if sim and sim.poll() is None:
            sim.terminate()
            sim.wait()
        lake.stop()
        lake.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=60000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--samples", type=int, default=40, help="freshness samples per interval")
    ap.add_argument("--fresh-load", type=int, default=0, help="background msg/s (default: half the measured)")
    ap.add_argument("--warmup", type=int, default=30, help="seconds of background load before sampling")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--sim-threads", type=int, default=0, help="tarn simulate --threads (0: its default)")
    ap.add_argument("--intervals", default="0,60")
    ap.add_argument("--no-compaction", action="store_true",
                    help="streams.compaction_files: 0 (every small Parquet file stays)")
    ap.add_argument("--gap-ms", type=int, default=None,
                    help="streams.zero_interval_gap_ms (default: the server's)")
    args = ap.parse_args()
    global LAKE_CONFIG
    streams = ([] if not args.no_compaction else ["  compaction_files: 0\n"]) + \
        ([] if args.gap_ms is None else ["  zero_interval_gap_ms: %d\n" % args.gap_ms])
    if streams:
        LAKE_CONFIG = "streams:\n" + "".join(streams)
    global SIM_THREADS
    SIM_THREADS = args.sim_threads
    rate = 0 if args.skip_throughput else throughput(args)
    load = args.fresh_load or max(100, int(rate / 2)) if rate else (args.fresh_load or 5000)
    for interval in [int(x) for x in args.intervals.split(",") if x]:
        if interval > 0:
            args.samples = min(args.samples, 6)  # each sample may wait a whole interval
        freshness(args, interval, load)


if __name__ == "__main__":
    main()

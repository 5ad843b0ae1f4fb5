"""Runs bench/mqtt's scenarios against mosquitto and Tarn in the same run and prints a table
with the ratio (Tarn / mosquitto). Both brokers run on loopback with anonymous clients, no
TLS; mosquitto is Debian's, started here with a temporary config on a free port, with
set_tcp_nodelay on (Tarn always sets TCP_NODELAY; mosquitto's default would add Nagle
delays and flatter the ratio)."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import Lake  # noqa: E402

BENCH = os.path.join(ROOT, "build", "bin", "mqtt_bench")
QUICK = "--quick" in sys.argv
SECONDS = "1.5" if QUICK else "3"
IDLE_CLIENTS = 2000 if QUICK else 10000


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
        self.pid = self.proc.pid

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Tarn:
    name = "tarn"

    def __init__(self):
        self.lake = Lake(env={"TARN_MQTT_ALLOW_ANONYMOUS": "1"},
                         listeners={"api": "127.0.0.1:0", "sql": "off", "mqtt": "127.0.0.1:0",
                                    "mqtts": "off", "mqtt-ws": "off", "console": "off"})
        self.lake.start()
        self.port = self.lake.host_port("mqtt")[1]
        self.pid = self.lake.proc.pid

    def stop(self):
        self.lake.stop()
        self.lake.cleanup()


def run(broker, *args):
    out = subprocess.run([BENCH, args[0], "--port", str(broker.port)] + list(args[1:]),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("%s: mqtt_bench %s failed: %s" % (broker.name, args, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


def idle(broker):
    before = rss_kib(broker.pid)
    p = subprocess.Popen([BENCH, "idle", "--port", str(broker.port), "--clients", str(IDLE_CLIENTS),
                          "--hold", "8"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert json.loads(line)["connected"] == IDLE_CLIENTS
    time.sleep(1)
    after = rss_kib(broker.pid)
    t0, c0 = time.time(), cpu_ticks(broker.pid)
    time.sleep(5)
    cpu = (cpu_ticks(broker.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0) * 100
    p.wait(60)
    return {"rss_per_conn_bytes": (after - before) * 1024 / IDLE_CLIENTS, "idle_cpu_percent": cpu}


def main():
    brokers = [Mosquitto(), Tarn()]
    results = {b.name: {} for b in brokers}
    try:
        for qos in (0, 1):
            for pubs, subs in ((1, 1), (4, 1), (1, 4)):
                key = "QoS %d, %d -> %d, msg/s delivered" % (qos, pubs, subs)
                for b in brokers:
                    r = run(b, "throughput", "--qos", str(qos), "--pubs", str(pubs), "--subs", str(subs),
                            "--seconds", SECONDS, "--payload", "64")
                    results[b.name][key] = r["delivered_per_s"]
        for qos in (0, 1):
            for b in brokers:
                peak = results[b.name]["QoS %d, 1 -> 1, msg/s delivered" % qos]
                rate = max(100, int(peak * 0.5))
                r = run(b, "latency", "--qos", str(qos), "--rate", str(rate), "--seconds", SECONDS)
                results[b.name]["QoS %d latency p50 at 50%% of peak (us)" % qos] = r["p50_us"]
                results[b.name]["QoS %d latency p99 at 50%% of peak (us)" % qos] = r["p99_us"]
    finally:
        for b in brokers:
            b.stop()
    # Idle connections on freshly started brokers, so memory freed by the load phases does
    # not hide what the connections cost.
    for cls in (Mosquitto, Tarn):
        b = cls()
        try:
            r = idle(b)
        finally:
            b.stop()
        results[b.name]["%d idle clients: RSS per connection (bytes)" % IDLE_CLIENTS] = r["rss_per_conn_bytes"]
        results[b.name]["%d idle clients: broker CPU (%%)" % IDLE_CLIENTS] = r["idle_cpu_percent"]
    keys = list(results["tarn"].keys())
    width = max(len(k) for k in keys)
    print("| %-*s | %12s | %12s | %7s |" % (width, "scenario (64-byte payload)", "mosquitto", "tarn", "ratio"))
    print("|%s|%s|%s|%s|" % ("-" * (width + 2), "-" * 14, "-" * 14, "-" * 9))
    for k in keys:
        m, t = results["mosquitto"][k], results["tarn"][k]
        ratio = (t / m) if m else float("nan")
        print("| %-*s | %12.1f | %12.1f | %6.2fx |" % (width, k, m, t, ratio))
    print("\nratio = tarn / mosquitto (higher is better for msg/s, lower for latency, RSS, CPU)")
    with open(os.path.join(tempfile.gettempdir(), "tarn-bench-mqtt.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

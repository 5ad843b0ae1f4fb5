"""bench/rules: broker throughput with 10 topic rules (one matching, with a WHERE and 5 projected
fields, republish action) against the same broker with no rules, same run, same load.

The load is bench/mqtt's generator (build/bin/mqtt_bench throughput --json 1): publishers send
JSON sensor readings to bench/<n>, half of them hot (temperature > 50); subscribers on bench/#
count what they receive. QoS 0 publishers are paced by what the subscribers received, QoS 1
publishers keep 256 PUBACKs outstanding (see bench/mqtt/README.md). The rule republishes the
hot readings to alerts/<n> (nobody subscribes there, so the subscribers' count is the same
traffic in both cases).

The rules engine runs on its own threads, so the broker's rate alone could hide an engine that
falls behind: after each run with rules we also wait until the engine has evaluated every
matched message and report the rule rate (messages evaluated per second from the start of the
run until the engine is idle) and how long the drain took.

Rounds alternate no-rules / rules (default 3 rounds) so drift on a shared machine hits both.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import Lake, thread_cpu  # noqa: E402

BENCH = os.path.join(ROOT, "build", "bin", "mqtt_bench")
if set(sys.argv[1:]) - {"--quick"}:
    sys.exit("usage: bench/rules/run.py [--quick]   (ROUNDS=N in the environment: rounds, default 3)\n\n"
             + __doc__)
QUICK = "--quick" in sys.argv
ROUNDS = 1 if QUICK else int(os.environ.get("ROUNDS", "3"))
SECONDS = "1.5" if QUICK else "3"
SCENARIOS = [(0, 1, 1), (1, 1, 1), (0, 4, 1)]  # (qos, publishers, subscribers)

HOT = {"sql": "SELECT temperature, humidity, pressure, battery, topic(2) AS device FROM 'bench/+' "
              "WHERE temperature > 50",
       "actions": [{"republish": {"topic": "alerts/${topic(2)}", "qos": 0,
                                  "roleArn": "arn:aws:iam::123456789012:role/iot"}}]}


def other_rule(i):
    # Nine rules that never match the load (different topics), as a deployment would have.
    return {"sql": "SELECT * FROM 'site%d/+/telemetry' WHERE temperature > %d" % (i, 40 + i),
            "actions": [{"republish": {"topic": "alerts/site%d" % i,
                                       "roleArn": "arn:aws:iam::123456789012:role/iot"}}]}


def metric(lake, name, rule=None):
    text = urllib.request.urlopen(lake.url() + "/metrics").read().decode()
    labels = r'\{rule="%s"\}' % rule if rule else ""
    m = re.search(r'^%s%s (\S+)$' % (re.escape(name), labels), text, re.M)
    return float(m.group(1)) if m else 0.0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def engine_cpu_seconds(pid):
    """CPU of the rules engine's own threads (named rules-N)."""
    return thread_cpu(pid).get("rules", 0.0)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def throughput(lake, qos, pubs, subs):
    port = lake.host_port("mqtt")[1]
    out = subprocess.run([BENCH, "throughput", "--port", str(port), "--qos", str(qos), "--pubs", str(pubs),
                          "--subs", str(subs), "--seconds", SECONDS, "--json", "1"],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("mqtt_bench failed: %s\nprotocol errors: %s\n%s" % (
            out.stderr, metric(lake, "tarn_mqtt_protocol_errors_total"), lake.read_log()[-3000:]))
    return json.loads(out.stdout.strip().splitlines()[-1])["delivered_per_s"]


def set_rules(iot, on):
    names = ["hot"] + ["other%d" % i for i in range(9)]
    for n in names:
        try:
            iot.delete_topic_rule(ruleName=n)
        except iot.exceptions.ResourceNotFoundException:
            pass
        except Exception:  # noqa: BLE001 — not there
            pass
    if on:
        iot.create_topic_rule(ruleName="hot", topicRulePayload=HOT)
        for i in range(9):
            iot.create_topic_rule(ruleName="other%d" % i, topicRulePayload=other_rule(i))


def wait_engine_idle(lake, timeout=120):
    """Waits until the hot rule's matched count stops moving; returns (count, when)."""
    last, since = metric(lake, "tarn_iot_rule_messages_matched_total", "hot"), time.time()
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        now = metric(lake, "tarn_iot_rule_messages_matched_total", "hot")
        if now == last and time.time() - since >= 0.6:
            return now, since
        if now != last:
            last, since = now, time.time()
    return last, since


def main():
    lake = Lake(env={"TARN_MQTT_ALLOW_ANONYMOUS": "1"},
                listeners={"api": "127.0.0.1:0", "sql": "off", "mqtt": "127.0.0.1:0",
                           "mqtts": "off", "mqtt-ws": "off", "console": "off"})
    lake.start()
    iot = lake.boto3_client("iot")
    results = {}  # scenario -> {"none": [...], "rules": [...], "rule_rate": [...], "drain": [...]}
    try:
        for rnd in range(ROUNDS):
            for qos, pubs, subs in SCENARIOS:
                key = "QoS %d, %d -> %d" % (qos, pubs, subs)
                r = results.setdefault(key, {"none": [], "rules": [], "rule_rate": [], "drain": [], "rss": [],
                                             "cpu_none": [], "cpu_rules": [], "cpu_engine": []})
                pid = lake.proc.pid
                set_rules(iot, False)
                m0, c0 = metric(lake, "tarn_mqtt_messages_received_total"), cpu_seconds(pid)
                r["none"].append(throughput(lake, qos, pubs, subs))
                m1, c1 = metric(lake, "tarn_mqtt_messages_received_total"), cpu_seconds(pid)
                r["cpu_none"].append((c1 - c0) / max(1, m1 - m0) * 1e6)
                set_rules(iot, True)
                before = metric(lake, "tarn_iot_rule_messages_matched_total", "hot")
                m0, c0 = metric(lake, "tarn_mqtt_messages_received_total"), cpu_seconds(pid)
                e0 = engine_cpu_seconds(pid)
                t0 = time.time()
                r["rules"].append(throughput(lake, qos, pubs, subs))
                t_end = time.time()
                r["rss"].append(rss_mib(pid))
                count, idle_at = wait_engine_idle(lake)
                m1, c1 = metric(lake, "tarn_mqtt_messages_received_total"), cpu_seconds(pid)
                r["cpu_rules"].append((c1 - c0) / max(1, m1 - m0) * 1e6)
                r["cpu_engine"].append((engine_cpu_seconds(pid) - e0) / max(1, m1 - m0) * 1e6)
                r["rule_rate"].append((count - before) / (idle_at - t0))
                r["drain"].append(max(0.0, idle_at - t_end))
                print("round %d %s: no rules %.0f, 10 rules %.0f msg/s (%.2fx); tarn CPU per message "
                      "%.2f vs %.2f us (engine threads %.2f); rule evaluated %.0f msg/s, drained %.1f s after "
                      "the load, RSS %.0f MiB" %
                      (rnd + 1, key, r["none"][-1], r["rules"][-1], r["rules"][-1] / r["none"][-1],
                       r["cpu_none"][-1], r["cpu_rules"][-1], r["cpu_engine"][-1], r["rule_rate"][-1],
                       r["drain"][-1], r["rss"][-1]), flush=True)
        delivered = metric(lake, "tarn_iot_rule_messages_delivered_total", "hot")
        failed = metric(lake, "tarn_iot_rule_messages_failed_total", "hot")
        filtered = metric(lake, "tarn_iot_rule_messages_filtered_total", "hot")
        matched = metric(lake, "tarn_iot_rule_messages_matched_total", "hot")
    finally:
        lake.stop()
        lake.cleanup()

    print()
    # Best of the rounds for each side (the usual way to report on a shared machine), the ratio
    # of the bests, and the spread of the per-round ratios.
    print("| scenario (JSON readings, 50 % hot) | no rules, best msg/s | 10 rules, best msg/s | ratio of bests | "
          "per-round ratios (median, range) | tarn CPU µs/msg no rules → 10 rules (engine threads), lowest | "
          "rule evaluated, best msg/s | engine drain after load, max |")
    print("|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        ratios = sorted(w / n for w, n in zip(r["rules"], r["none"]))
        median = ratios[len(ratios) // 2]
        print("| %s | %.0f | %.0f | %.2fx | %.2fx (%.2f–%.2f) | %.2f → %.2f (%.2f) | %.0f | %.1f s |" % (
            key, max(r["none"]), max(r["rules"]), max(r["rules"]) / max(r["none"]), median, ratios[0],
            ratios[-1], min(r["cpu_none"]), min(r["cpu_rules"]), min(r["cpu_engine"]), max(r["rule_rate"]),
            max(r["drain"])))
    with open(os.path.join(tempfile.gettempdir(), "tarn-bench-rules.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\nhot rule over the whole run: matched %d = filtered %d + delivered %d + failed %d" %
          (matched, filtered, delivered, failed))


if __name__ == "__main__":
    main()

"""`tarn simulate` against the lake's MQTT broker, checked by a real subscriber (mosquitto_sub,
paho): the --json summary, readings with device and a gap-free per-device seq, determinism with
--seed, malformed readings, QoS 0, the resend of unacknowledged messages after a broker restart,
and its refusals (docs/cli.md, "tarn simulate")."""
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Lake, restartable_ports, tarn_binary  # noqa: E402


def need_mqtt(lake):
    if "mqtt" not in lake.endpoints:
        pytest.skip("the MQTT broker is not on main yet")


def run_sim(lake, seed, *extra, devices=4, rate=80, duration=2, qos=1):
    host, port = lake.host_port("mqtt")
    sub = subprocess.Popen(["mosquitto_sub", "-h", host, "-p", str(port), "-u", "root", "-P", lake.PASSWORD,
                            "-t", "sensors/+/telemetry", "-q", "1", "-v"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    try:
        r = subprocess.run([tarn_binary(), "simulate", "--endpoint-file", lake.endpoints_file,
                            "--things", "sensor-{001..%03d}" % devices, "--username", "root",
                            "--password", lake.PASSWORD, "--transport", "mqtt", "--devices", str(devices),
                            "--rate", str(rate), "--duration", str(duration), "--qos", str(qos),
                            "--seed", str(seed), "--json"] + list(extra),
                           capture_output=True, text=True, timeout=120)
        time.sleep(0.5)
    finally:
        sub.terminate()
    out, _ = sub.communicate(timeout=10)
    readings = []
    for line in out.splitlines():
        topic, payload = line.split(" ", 1)
        readings.append((topic, json.loads(payload)))
    return r, readings


def test_summary_readings_and_seq(lake):
    need_mqtt(lake)
    r, readings = run_sim(lake, 7, "--malformed-ratio", "0.1")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(s) >= {"sent", "acked", "sent_malformed", "acked_malformed", "failed"}
    assert s["failed"] == 0 and s["acked"] == s["sent"] > 100
    assert s["acked_malformed"] == s["sent_malformed"] > 0
    assert "devices 4/4" in r.stderr          # the live progress line
    assert len(readings) == s["sent"]
    per = {}
    for topic, p in readings:
        assert topic == "sensors/%s/telemetry" % p["device"]
        per.setdefault(p["device"], []).append(p["seq"])
        if p["temperature"] == "ERR_SENSOR":
            continue
        assert -40 < p["temperature"] < 120 and 0 <= p["battery"] <= 100
        assert 900 < p["pressure"] < 1100 and 0 < p["humidity"] < 100
    assert sorted(per) == ["sensor-001", "sensor-002", "sensor-003", "sensor-004"]
    for seqs in per.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert sum(1 for _, p in readings if p["temperature"] == "ERR_SENSOR") == s["sent_malformed"]


def test_same_seed_same_readings(lake):
    need_mqtt(lake)
    _, a = run_sim(lake, 11)
    _, b = run_sim(lake, 11)
    _, c = run_sim(lake, 12)
    key = lambda rs: {(p["device"], p["seq"]): p for _, p in rs}  # noqa: E731
    ka, kb, kc = key(a), key(b), key(c)
    common = set(ka) & set(kb)
    assert len(common) > 100
    assert all(ka[k] == kb[k] for k in common)
    assert any(ka[k] != kc.get(k) for k in set(ka) & set(kc))


def test_refusals(lake, tmp_path):
    need_mqtt(lake)
    r = subprocess.run([tarn_binary(), "simulate", "--endpoint-file", lake.endpoints_file, "--certs",
                        str(tmp_path), "--devices", "3", "--rate", "10", "--duration", "1", "--qos", "1",
                        "--seed", "1"], capture_output=True, text=True)
    assert r.returncode == 1 and "holds certificates for 0 things (tarn apply writes them)" in r.stderr
    r = subprocess.run([tarn_binary(), "simulate", "--devices", "3", "--rate", "10", "--duration", "1",
                        "--qos", "2", "--seed", "1"], capture_output=True, text=True)
    assert r.returncode == 2


def test_threads_do_not_change_the_readings(lake):
    # docs/cli.md: readings, and which ones are malformed, depend only on --seed — not on how
    # many threads drive the devices (each thread owns a slice of the fleet).
    need_mqtt(lake)
    r1, one = run_sim(lake, 5, "--threads", "1", "--malformed-ratio", "0.2")
    r3, three = run_sim(lake, 5, "--threads", "3", "--malformed-ratio", "0.2")
    assert r1.returncode == 0 and r3.returncode == 0, r1.stderr + r3.stderr
    s3 = json.loads(r3.stdout.strip().splitlines()[-1])
    assert s3["failed"] == 0 and s3["acked"] == s3["sent"] == len(three)
    assert "devices 4/4" in r3.stderr
    per = {}
    for _, p in three:
        per.setdefault(p["device"], []).append(p["seq"])
    assert sorted(per) == ["sensor-001", "sensor-002", "sensor-003", "sensor-004"]  # every slice ran
    for seqs in per.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    key = lambda rs: {(p["device"], p["seq"]): p for _, p in rs}  # noqa: E731
    k1, k3 = key(one), key(three)
    common = set(k1) & set(k3)
    assert len(common) > 100
    assert all(k1[k] == k3[k] for k in common)
    assert any(k1[k]["temperature"] == "ERR_SENSOR" for k in common)


def test_qos0_and_the_malformed_share(lake):
    need_mqtt(lake)
    r, readings = run_sim(lake, 3, "--malformed-ratio", "0.25", qos=0, rate=200)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["failed"] == 0 and s["acked"] == s["sent"] > 200       # QoS 0: acked once written
    assert len(readings) == s["sent"]                                 # loopback, low rate: all arrive
    bad = sum(1 for _, p in readings if p["temperature"] == "ERR_SENSOR")
    assert bad == s["sent_malformed"] == s["acked_malformed"]
    assert 0.15 < bad / s["sent"] < 0.35, (bad, s["sent"])            # --malformed-ratio 0.25



def test_broker_restart_resends_the_unacknowledged_with_dup():
    """Freeze the lake (SIGSTOP) so that every device fills its window of 100 unacknowledged
    QoS 1 messages, kill -9 it, restart it on the same ports: the simulator reconnects and
    resends the window (DUP, same packet ids). A persistent paho subscriber sees every reading
    of every device (seq 1…N, no gap) and acked == sent. Readings may arrive twice only around
    the crash: the simulator's resent window, and the witness's own QoS 1 deliveries that the
    killed broker had not yet recorded as acknowledged (at-least-once towards a subscriber).
    Nothing published after the reconnection arrives twice."""
    import paho.mqtt.client as mqtt
    ports = restartable_ports()
    # The witness is offline for a moment after the restart: its queue must hold the resent
    # windows and what follows them (the default 1 000 per session would drop the excess).
    lake = Lake(listeners=ports, config="mqtt_broker:\n  max_queued_messages: 100000\n")
    lake.start()
    got = collections.Counter()
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_connect(c, u, flags, rc):
        if rc == 0:
            c.subscribe("sensors/+/telemetry", 1)
            subscribed.set()

    def on_message(c, u, msg):
        p = json.loads(msg.payload)
        with lock:
            got[(p["device"], p["seq"])] += 1

    w = mqtt.Client(client_id="restart-witness", clean_session=False, protocol=mqtt.MQTTv311)
    w.username_pw_set("root", lake.PASSWORD)
    w.reconnect_delay_set(0.2, 1)
    w.on_connect, w.on_message = on_connect, on_message
    try:
        host, port = lake.host_port("mqtt")
        w.connect(host, port, keepalive=10)
        w.loop_start()
        assert subscribed.wait(10)
        devices = 6
        sim = subprocess.Popen([tarn_binary(), "simulate", "--endpoint-file", lake.endpoints_file,
                                "--things", "sensor-{001..%03d}" % devices, "--username", "root",
                                "--password", lake.PASSWORD, "--transport", "mqtt", "--devices", str(devices),
                                "--rate", "900", "--duration", "10", "--qos", "1", "--seed", "9",
                                "--malformed-ratio", "0.05", "--drain", "40", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        os.kill(lake.proc.pid, signal.SIGSTOP)   # PUBACKs stop; every window fills
        time.sleep(0.2)
        with lock:
            before = collections.Counter()
            for dev, seq in got:
                before[dev] = max(before[dev], seq)
        time.sleep(1.5)
        lake.kill()                               # what was in flight dies with it
        time.sleep(0.5)
        lake.start()
        out, err = sim.communicate(timeout=120)
        assert sim.returncode == 0, err[-2000:]
        s = json.loads(out.strip().splitlines()[-1])
        assert s["failed"] == 0 and s["acked"] == s["sent"] > 2000, s
        assert s["acked_malformed"] == s["sent_malformed"] > 0, s
        assert s["reconnects"] >= devices, s
        assert s["resent"] >= devices * 50, s     # the frozen windows went out again
        deadline = time.time() + 30
        while time.time() < deadline and len(got) < s["sent"]:
            time.sleep(0.2)
        with lock:
            seen = dict(got)
        per = collections.defaultdict(set)
        for dev, seq in seen:
            per[dev].add(seq)
        assert len(per) == devices
        for dev, seqs in per.items():
            assert seqs == set(range(1, max(seqs) + 1)), dev   # nothing lost
        assert len(seen) == s["sent"]
        twice = sorted(k for k, n in seen.items() if n > 1)
        # The last reading the witness had per device, plus the window in flight (at most 100
        # unacknowledged per device) and some slack for the witness lagging behind the broker.
        late = [(dev, seq) for dev, seq in twice if seq > before[dev] + 200]
        assert not late, (late[:10], dict(before))
        assert sum(seen[k] - 1 for k in twice) <= s["resent"] + sum(before.values()), (len(twice), s)
    finally:
        w.disconnect()
        w.loop_stop()
        lake.stop()
        lake.cleanup()

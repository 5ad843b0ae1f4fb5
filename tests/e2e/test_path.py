"""The first ingestion path end to end, with the real clients (issue 10):

  tarn apply -f examples/iot/tarn.yaml → tarn simulate (20 devices, QoS 1, 30 s, seeded,
  1 % malformed) → kill -9 of the lake in the middle → restart on the same ports → the
  simulator reconnects and resends what was not acknowledged → then:

  - the broker delivered every acknowledged reading (a persistent paho subscriber as witness);
  - psql: per device the rows of iot.telemetry equal the acknowledged well-formed readings,
    each once (resends after the kill are recognised, docs/streams.md);
  - the stream's error prefix holds exactly the malformed ones, and the rule's error action
    republishes a failure document with the reason for exactly those;
  - the catalog lists the day/hour partitions the stream registered;
  - the audit log shows the set-up's API calls;
  - a device publishing on another device's topic is refused and nothing of it lands.

One scenario runs once per module (fixture `run`); each check is its own test. A check whose
module has not landed on main is skipped with the reason, decided at run time from what the
running lake offers (endpoints.json, the API's answers) — never skipped when the module is there.
"""
import base64
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import REPO, Lake, restartable_ports, tarn_binary  # noqa: E402

DEVICES = 20
RATE = 400            # messages per second, all devices together
DURATION = 30
KILL_AT = 12          # seconds into the run
SEED = 42
MALFORMED = 0.01



def wait_for(fn, timeout=60, interval=0.2):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)


def reading_key(payload):
    """(device, seq, malformed) of a simulated reading."""
    j = json.loads(payload)
    return (j["device"], int(j["seq"]), j.get("temperature") == "ERR_SENSOR")


def error_report_key(payload):
    """(device, seq, rule, reason) of an error action's failure document about a reading."""
    doc = json.loads(payload)
    reading = json.loads(base64.b64decode(doc["base64OriginalPayload"]))
    return (reading["device"], int(reading["seq"]), doc["ruleName"],
            " | ".join(f["failedAction"] + " " + f["failedResource"] + ": " + f["errorMessage"]
                       for f in doc["failures"]))


class Witness:
    """A persistent-session paho subscriber (QoS 1): what the broker delivered on `topic`,
    counted by key_fn(payload) — ("?", -1, True) for a payload key_fn cannot read."""

    def __init__(self, lake, client_id="e2e-witness", topic="sensors/+/telemetry", key_fn=reading_key):
        import paho.mqtt.client as mqtt
        self.lake = lake
        self.topic = topic
        self.key_fn = key_fn
        self.got = collections.Counter()
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311)
        self.c.username_pw_set("root", lake.PASSWORD)
        self.c.reconnect_delay_set(0.2, 1)
        self.connected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message

    def _on_connect(self, c, u, flags, rc):
        if rc == 0:
            c.subscribe(self.topic, 1)
            self.connected.set()

    def _on_message(self, c, u, msg):
        try:
            key = self.key_fn(msg.payload)
        except Exception:
            key = ("?", -1, True)
        with self.lock:
            self.got[key] += 1

    def start(self):
        host, port = self.lake.host_port("mqtt")
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(10), "witness could not connect"

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def psql(lake, sql):
    host, port = lake.host_port("sql")
    env = dict(os.environ, PGPASSWORD=lake.PASSWORD, PGCONNECT_TIMEOUT="10")
    return subprocess.run(["psql", "-X", "-A", "-t", "-F", ",", "-h", host, "-p", str(port), "-U", "root",
                           "-d", "tarn", "-c", sql], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run():
    ports = restartable_ports()
    lake = Lake(listeners=ports, env={"TARN_AUDIT_FLUSH_SECONDS": "5"})
    lake.start()
    work = tempfile.mkdtemp(prefix="tarn-e2e-")
    state = {"lake": lake, "work": work, "missing": {}}
    try:
        # -- set-up through the APIs --
        spec = os.path.join(work, "tarn.yaml")
        shutil.copy(os.path.join(REPO, "examples", "iot", "tarn.yaml"), spec)
        ap = subprocess.run([tarn_binary(), "apply", "-f", spec, "--endpoint", lake.url()],
                            env=lake.aws_env(), capture_output=True, text=True, timeout=300)
        state["apply"] = ap
        out = ap.stdout
        assert re.search(r"created\s+stream telemetry", out), out + ap.stderr
        assert re.search(r"created\s+table iot.telemetry", out), out + ap.stderr
        state["iot"] = bool(re.search(r"created\s+thing sensor-001 \(certificate in", out))
        state["rules"] = bool(re.search(r"created\s+rule telemetry_to_lake", out))
        if "mqtt" not in lake.endpoints:
            state["missing"]["mqtt"] = "the MQTT broker is not on main yet"
            yield state
            return

        witness = Witness(lake)
        witness.start()
        state["witness"] = witness
        # The rule's error action (examples/iot/tarn.yaml) republishes its failure documents here.
        reports = Witness(lake, "e2e-error-reports", "errors/rules/telemetry_to_lake", error_report_key)
        reports.start()
        state["reports"] = reports

        sim = [tarn_binary(), "simulate", "--endpoint-file", lake.endpoints_file,
               "--devices", str(DEVICES), "--rate", str(RATE), "--duration", str(DURATION),
               "--qos", "1", "--seed", str(SEED), "--malformed-ratio", str(MALFORMED), "--json",
               "--drain", "40"]
        if state["iot"]:
            sim += ["--certs", os.path.join(work, "certs")]   # mutual TLS, one cert per thing
        else:
            # IoT registry not on main: same devices over MQTTS, authenticated by password.
            sim += ["--things", "sensor-{001..%03d}" % DEVICES, "--username", "root",
                    "--password", lake.PASSWORD]
        proc = subprocess.Popen(sim, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(KILL_AT)
        with witness.lock:               # the newest reading per device the witness had
            before = collections.Counter()
            for dev, seq, _ in witness.got:
                before[dev] = max(before[dev], seq)
        state["before_kill"] = before
        lake.kill()                      # kill -9 mid-run
        time.sleep(1)
        lake.start()                     # same data dir, same ports
        out, err = proc.communicate(timeout=DURATION + 120)
        state["sim_rc"] = proc.returncode
        state["sim_err"] = err
        state["sim"] = json.loads(out.strip().splitlines()[-1])
        # Let the witness drain its persistent session.
        sent = state["sim"]["sent"]
        wait_for(lambda: sum(1 for k in witness.got if k[1] > 0) >= sent, timeout=30)
        witness.stop()
        malformed = state["sim"]["sent_malformed"]
        wait_for(lambda: len({k[:2] for k in reports.got if k[1] > 0}) >= malformed, timeout=30)
        reports.stop()
        yield state
    finally:
        for w in ("witness", "reports"):
            if state.get(w):
                try:
                    state[w].stop()
                except Exception:
                    pass
        lake.stop()
        lake.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def need(state, *what):
    for w in what:
        if w in state["missing"]:
            pytest.skip(state["missing"][w])
        if w == "iot" and not state.get("iot"):
            pytest.skip("the IoT registry API (things, certificates) is not on main yet")
        if w == "rules" and not state.get("rules"):
            pytest.skip("the IoT rules engine is not on main yet")
        if w == "sql" and "sql" not in state["lake"].endpoints:
            pytest.skip("the SQL endpoint (pgwire) is not on main yet")


def expected(state):
    """(device, seq, malformed) the broker delivered, i.e. everything acknowledged."""
    return {k for k in state["witness"].got if k[1] > 0}


def test_simulator_survives_kill9_and_nothing_acknowledged_is_lost(run):
    need(run, "mqtt")
    s = run["sim"]
    assert run["sim_rc"] == 0, run["sim_err"][-2000:]
    assert s["failed"] == 0, s
    assert s["acked"] == s["sent"] > DURATION * RATE * 0.5, s
    assert s["acked_malformed"] == s["sent_malformed"] > 0, s
    assert s["reconnects"] >= DEVICES, s          # every device came back after the restart
    got = expected(run)
    # Per device the broker delivered seq 1..N with no gap: each acknowledged reading arrived.
    per = collections.defaultdict(set)
    for dev, seq, _ in got:
        per[dev].add(seq)
    assert len(per) == DEVICES
    assert sum(len(v) for v in per.values()) == s["sent"]
    for dev, seqs in per.items():
        assert seqs == set(range(1, max(seqs) + 1)), dev
    # Readings arrive twice only around the crash (QoS 1 is at-least-once on the wire): the
    # devices' resent windows, and the witness's own deliveries that the killed broker had not
    # yet recorded as acknowledged. Nothing published well after the restart arrives twice.
    before = run["before_kill"]
    twice = sorted((dev, seq) for (dev, seq, _), n in run["witness"].got.items() if n > 1)
    late = [(dev, seq) for dev, seq in twice if seq > before[dev] + 100]   # 5 s of one device
    assert not late, (late[:10], dict(before), s)
    assert ("?", -1, True) not in run["witness"].got


def landed_counts(state):
    r = psql(state["lake"], "SELECT device, count(*), count(DISTINCT seq) FROM iot.telemetry GROUP BY 1 ORDER BY 1")
    assert r.returncode == 0, r.stderr
    return {d: (int(n), int(dn)) for d, n, dn in (line.split(",") for line in r.stdout.split())}


def test_sql_counts_per_device_equal_acknowledged_publishes(run):
    need(run, "mqtt", "rules", "sql")
    probe = psql(run["lake"], "SELECT count(*) FROM iot.telemetry")
    if probe.returncode != 0 and re.search(r"does not exist|Catalog Error", probe.stderr):
        pytest.skip("catalog tables are not queryable over SQL yet (no catalog → warehouse "
                    "binding on main): " + probe.stderr.strip()[:200])
    want = collections.Counter(dev for dev, seq, bad in expected(run) if not bad)
    got = wait_for(lambda: (lambda c: c if {d: dn for d, (_, dn) in c.items()} == dict(want) else None)(
        landed_counts(run)), timeout=90)
    got = got or landed_counts(run)
    assert {d: dn for d, (_, dn) in got.items()} == dict(want)      # 0 lost
    # 0 duplicated: a reading in the stream's WAL whose PUBACK died with the killed server is
    # resent by its device (DUP) and recognised by its origin (docs/streams.md "Exactly once
    # from devices"), so it lands once.
    dups = {d: n - dn for d, (n, dn) in got.items() if n != dn}
    assert not dups, (dups, run["sim"])  # run["sim"]["resent"]: how many were resent
    # The analyst's query from the issue, for today's partition.
    day = time.strftime("%Y-%m-%d", time.gmtime())
    r = psql(run["lake"], "SELECT device, avg(temperature) FROM iot.telemetry WHERE day = '%s' GROUP BY 1" % day)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) >= 1


def test_error_prefix_holds_exactly_the_malformed_readings(run):
    need(run, "mqtt", "rules")
    s3 = run["lake"].boto3_client("s3")
    want = {(dev, seq) for dev, seq, bad in expected(run) if bad}

    def errors():
        found = set()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="landing", Prefix="errors/telemetry/")
        for page in pages:
            for o in page.get("Contents", []):
                body = s3.get_object(Bucket="landing", Key=o["Key"])["Body"].read().decode()
                for line in body.splitlines():
                    e = json.loads(line)
                    assert e["errorCode"].startswith("DataFormatConversion."), e
                    rec = json.loads(base64.b64decode(e["rawData"]))
                    found.add((rec["device"], int(rec["seq"])))
        return found
    got = wait_for(lambda: (lambda f: f if f == want else None)(errors()), timeout=60) or errors()
    assert got == want, "missing %s, unexpected %s" % (sorted(want - got)[:20], sorted(got - want)[:20])


def test_the_rules_error_action_reports_exactly_the_malformed_readings_with_the_reason(run):
    """Malformed readings are valid JSON with a value the catalog's schema cannot take: the rule's
    firehose action takes them (they land under the error prefix) and its error action
    republishes AWS's failure document, with the conversion's reason, to
    errors/rules/telemetry_to_lake — for exactly those readings, none of the good ones."""
    need(run, "mqtt", "rules")
    want = {(dev, seq) for dev, seq, bad in expected(run) if bad}
    assert want
    reports = run["reports"].got
    assert ("?", -1, True) not in reports, "an error report that is not AWS's failure document"
    got = {(dev, seq) for dev, seq, _, _ in reports}
    assert got == want, "missing %s, unexpected %s" % (sorted(want - got)[:20], sorted(got - want)[:20])
    for dev, seq, rule, reason in reports:
        assert rule == "telemetry_to_lake"
        assert reason.startswith("FirehoseAction telemetry: "), reason
        assert "DataFormatConversion.InvalidValue: column 'temperature' (DOUBLE)" in reason, reason
        assert "error output prefix" in reason, reason


def test_catalog_lists_the_partitions_the_stream_wrote(run):
    need(run, "mqtt", "rules")
    glue = run["lake"].boto3_client("glue")
    parts = wait_for(lambda: glue.get_partitions(DatabaseName="iot", TableName="telemetry")["Partitions"],
                     timeout=60)
    assert parts, "no partitions registered"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    values = {tuple(p["Values"]) for p in parts}
    assert any(v[0] == day for v in values), values
    for p in parts:
        assert p["StorageDescriptor"]["Location"] == "s3://landing/iot/telemetry/day=%s/hour=%s/" % tuple(p["Values"])


def test_audit_log_shows_the_setup_calls(run):
    lake = run["lake"]
    s3 = lake.boto3_client("s3")
    try:
        objs = s3.list_objects_v2(Bucket="audit").get("Contents", [])
    except Exception as e:  # noqa: BLE001
        pytest.skip("the audit bucket is not readable through S3 yet: %s" % e)
    import gzip

    def read_all():
        text = ""
        for o in s3.list_objects_v2(Bucket="audit").get("Contents", []):
            body = s3.get_object(Bucket="audit", Key=o["Key"])["Body"].read()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            text += body.decode("utf-8", "replace")
        return text if "CreateDeliveryStream" in text else None
    text = wait_for(read_all, timeout=60, interval=1)
    if not objs and not text:
        pytest.skip("the audit log (security/audit) wrote no file into the audit bucket within 60 s")
    assert text, "the audit bucket holds no record of the set-up calls"
    for action in ("CreateDatabase", "CreateTable", "CreateDeliveryStream"):
        assert action in text, action
    if run.get("iot"):
        for action in ("CreateThing", "CreateCertificateFromCsr", "AttachPolicy", "CreateTopicRule"):
            assert action in text, action


def test_a_device_cannot_publish_on_another_devices_topic(run):
    need(run, "mqtt", "iot")
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes  # noqa: F401
    lake = run["lake"]
    certs = os.path.join(run["work"], "certs", "sensor-001")
    c = mqtt.Client(client_id="sensor-001", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=os.path.join(lake.data_dir, "keys", "mqtt-server.crt"),
              certfile=os.path.join(certs, "certificate.pem.crt"), keyfile=os.path.join(certs, "private.pem.key"))
    acks = {}
    done = threading.Event()

    def on_publish(client, userdata, mid, *rest):
        acks[mid] = rest
        done.set()
    c.on_publish = on_publish
    host, port = lake.host_port("mqtts")
    c.connect(host, port)
    c.loop_start()
    try:
        marker = 987654321
        payload = json.dumps({"device": "sensor-002", "seq": marker, "temperature": 99.0,
                              "humidity": 1, "pressure": 1, "battery": 1})
        info = c.publish("sensors/sensor-002/telemetry", payload, qos=1)
        info.wait_for_publish(10)
        # MQTT 5: the PUBACK carries 0x87 Not authorized (paho exposes it only in logs for
        # 1.6); the decisive check is that nothing of it lands anywhere.
        time.sleep(3)
        if "sql" in lake.endpoints and psql(lake, "SELECT 1 FROM iot.telemetry LIMIT 1").returncode == 0:
            r = psql(lake, "SELECT count(*) FROM iot.telemetry WHERE seq = %d" % marker)
            assert r.returncode == 0 and r.stdout.strip() == "0", r.stdout + r.stderr
        s3 = lake.boto3_client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="landing", Prefix="errors/telemetry/"):
            for o in page.get("Contents", []):
                assert str(marker) not in s3.get_object(Bucket="landing", Key=o["Key"])["Body"].read().decode()
        # Its own topic still works (the refusal is about the topic, not the device).
        ok = c.publish("sensors/sensor-001/telemetry", json.dumps({"device": "sensor-001", "seq": marker}), qos=1)
        ok.wait_for_publish(10)
        assert ok.is_published()
    finally:
        c.disconnect()
        c.loop_stop()

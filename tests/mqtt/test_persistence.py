"""Persistent sessions and retained messages across broker restarts, including kill -9:
what the broker acknowledged must survive; a damaged log tail must not stop it starting."""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mqttutil as mu  # noqa: E402
from harness import Lake  # noqa: E402


def restart(lake, kill):
    if kill:
        lake.kill()
    else:
        assert lake.stop() == 0
    lake.start()


def _session_survives(kill, version):
    lake = Lake()
    lake.start()
    try:
        cid = "survivor-%d-%s" % (version, kill)
        c = mu.start(mu.make_client(lake, cid, version, clean=False), lake, version=version,
                     clean=False, session_expiry=3600 if version == 5 else None)
        mu.subscribe(c, "plant/+/temp", 1)
        mu.stop(c)
        pub = mu.start(mu.make_client(lake, "pub"), lake)
        infos = [pub.publish("plant/%d/temp" % i, "t%d" % i, qos=1) for i in range(50)]
        pub.publish("plant/cfg", "retained-cfg", qos=1, retain=True).wait_for_publish(10)
        for i in infos:
            i.wait_for_publish(10)  # PUBACK received = acknowledged
        pub.loop_stop()
        restart(lake, kill)
        c2 = mu.make_client(lake, cid, version, clean=False)
        mu.start(c2, lake, version=version, clean=False, session_expiry=3600 if version == 5 else None)
        assert c2.connack[0]["session present"] == 1
        got = mu.collect(c2, 50, timeout=15)
        assert sorted(m.payload for m in got) == sorted(("t%d" % i).encode() for i in range(50))
        late = mu.start(mu.make_client(lake, "late"), lake)
        mu.subscribe(late, "plant/cfg", 1)
        m = mu.collect(late, 1)
        assert m and m[0].payload == b"retained-cfg"
        mu.stop(c2, late)
    finally:
        lake.stop()
        lake.cleanup()


def test_persistent_session_across_graceful_restart_v311():
    _session_survives(kill=False, version=4)


def test_persistent_session_across_kill9_v311():
    _session_survives(kill=True, version=4)


def test_persistent_session_across_kill9_v5():
    _session_survives(kill=True, version=5)


def test_corrupt_log_tail_is_set_aside():
    lake = Lake()
    lake.start()
    try:
        c = mu.start(mu.make_client(lake, "dmg", 4, clean=False), lake)
        mu.subscribe(c, "d/#", 1)
        mu.stop(c)
        lake.stop()
        logs = glob.glob(os.path.join(lake.data_dir, "mqtt", "sessions-*.log"))
        assert len(logs) == 1
        with open(logs[0], "ab") as f:
            f.write(b"\x00\x00\x01\x00garbage-torn-write")
        lake.start()  # must start despite the damage
        assert "set aside" in lake.read_log()
        assert glob.glob(os.path.join(lake.data_dir, "mqtt", "*.corrupt-*"))
        c2 = mu.start(mu.make_client(lake, "dmg", 4, clean=False), lake)
        assert c2.connack[0]["session present"] == 1  # the good prefix was kept
        mu.stop(c2)
    finally:
        lake.stop()
        lake.cleanup()


def test_kill9_under_load_loses_nothing_acknowledged():
    """QoS 1 publishing into a persistent session while the broker is killed: every message
    whose PUBACK the publisher saw is delivered after the restart."""
    import tempfile
    import threading
    import time
    # The offline queue holds every message this test can publish (1 501): what is measured is
    # durability, not the queue-full policy (which drops, counts and still acknowledges).
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write("mqtt_broker:\n  max_queued_messages: 5000\n")
    cfg.close()
    lake = Lake(extra_args=["--config", cfg.name])
    lake.start()
    try:
        c = mu.start(mu.make_client(lake, "load-sub", 4, clean=False), lake)
        mu.subscribe(c, "load/#", 1)
        mu.stop(c)
        acked = set()
        lock = threading.Lock()
        pub = mu.make_client(lake, "load-pub")
        pub.max_inflight_messages_set(200)
        pub.max_queued_messages_set(0)
        mids = {}

        def on_publish(client, userdata, mid):
            with lock:
                if mid in mids:
                    acked.add(mids[mid])

        pub.on_publish = on_publish
        mu.start(pub, lake)
        for i in range(3000):
            info = pub.publish("load/t", "m%d" % i, qos=1)
            with lock:
                mids[info.mid] = "m%d" % i
            if i == 500:
                deadline = time.time() + 10
                while time.time() < deadline:
                    with lock:
                        if len(acked) >= 300:
                            break
                    time.sleep(0.01)
            if i == 1500:
                lake.kill()  # mid-stream: about 1000 PUBLISHes are in flight or queued
                break
        time.sleep(0.5)
        pub.loop_stop()
        with lock:
            acknowledged = set(acked)
        assert len(acknowledged) > 100, "the load did not get going before the kill"
        lake.start()
        c2 = mu.start(mu.make_client(lake, "load-sub", 4, clean=False), lake)
        got = set()
        while True:
            batch = mu.collect(c2, 1, timeout=3)
            if not batch:
                break
            got.add(batch[0].payload.decode())
        print("acknowledged %d, delivered after restart %d" % (len(acknowledged), len(got)))
        missing = acknowledged - got
        assert not missing, "%d acknowledged messages lost, e.g. %s" % (len(missing), sorted(missing)[:5])
        mu.stop(c2)
    finally:
        lake.stop()
        lake.cleanup()


def test_qos2_exactly_once_across_kill9():
    """An incoming QoS 2 PUBLISH that was PUBREC'd before a crash and is retransmitted (DUP)
    after the restart is acknowledged again but not delivered a second time (§4.3.3)."""
    import socket
    from rawmqtt import Raw, publish, subscribe
    lake = Lake()
    lake.start()
    try:
        def login(cid):
            r = Raw(*lake.host_port("mqtt"))
            t, _, body = r.connect(client_id=cid, version=4, clean=False, username="root",
                                   password=lake.PASSWORD)
            return r, body
        sub, _ = login("once-sub")
        sub.send(subscribe("once/#", 1))
        assert sub.read_packet()[0] == 9
        sub.close()
        pub, _ = login("once-pub")
        pub.send(publish("once/t", b"exactly-once", qos=2, packet_id=5))
        t, _, body = pub.read_packet()
        assert t == 5 and body == b"\x00\x05"  # PUBREC: the broker owns the message now
        lake.kill()
        lake.start()
        pub, body = login("once-pub")
        assert body[0] == 1  # session present
        pub.send(publish("once/t", b"exactly-once", qos=2, packet_id=5, flags=0x0C))  # DUP
        t, _, body = pub.read_packet()
        assert t == 5 and body == b"\x00\x05"
        pub.send(b"\x62\x02\x00\x05")
        assert pub.read_packet()[0] == 7
        sub, body = login("once-sub")
        assert body[0] == 1
        deliveries = []
        sub.sock.settimeout(1.5)
        try:
            while True:
                p = sub.read_packet(timeout=1.5)
                if p is None:
                    break
                if p[0] == 3:
                    deliveries.append(p)
                    sub.send(b"\x40\x02" + p[2][2 + 6:2 + 6 + 2])  # PUBACK (topic "once/t")
        except (AssertionError, socket.timeout):
            pass
        assert len(deliveries) == 1 and deliveries[0][2].endswith(b"exactly-once")
    finally:
        lake.stop()
        lake.cleanup()

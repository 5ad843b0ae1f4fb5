"""The MQTT broker with real clients: mosquitto_pub/mosquitto_sub (3.1.1 and 5.0) and
paho-mqtt (Debian's python3-paho-mqtt 1.6) over TCP and WebSocket."""
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqttutil as mu  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402


def mosq(lake, tool, *args, version=None):
    host, port = lake.host_port("mqtt")
    cmd = [tool, "-h", host, "-p", str(port), "-u", "root", "-P", lake.PASSWORD]
    if version:
        cmd += ["-V", version]
    return cmd + list(args)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_clients_qos_0_1_2(lake, version):
    sub = subprocess.Popen(mosq(lake, "mosquitto_sub", "-t", "sensors/#", "-q", "2", "-C", "3", "-v",
                                "-W", "20", "-i", "sub-" + version, version=version),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait for the subscription to exist: retained probe is simplest — poll until a QoS 1
    # publish reports delivery by being received.
    time.sleep(0.5)
    for qos in (0, 1, 2):
        r = subprocess.run(mosq(lake, "mosquitto_pub", "-t", "sensors/%d/t" % qos, "-m", "v%d" % qos,
                                "-q", str(qos), version=version), capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    lines = sorted(out.strip().splitlines())
    assert lines == ["sensors/0/t v0", "sensors/1/t v1", "sensors/2/t v2"]


def test_mosquitto_retained_replace_and_delete(lake):
    pub = lambda *a: subprocess.run(mosq(lake, "mosquitto_pub", *a), check=True, timeout=20)  # noqa: E731
    pub("-t", "cfg/led", "-m", "on", "-r", "-q", "1")
    pub("-t", "cfg/led", "-m", "off", "-r", "-q", "1")
    r = subprocess.run(mosq(lake, "mosquitto_sub", "-t", "cfg/#", "-C", "1", "-v", "-W", "5"),
                       capture_output=True, text=True, timeout=20)
    assert r.stdout.strip() == "cfg/led off"
    pub("-t", "cfg/led", "-n", "-r")  # empty retained payload deletes it
    r = subprocess.run(mosq(lake, "mosquitto_sub", "-t", "cfg/#", "-C", "1", "-W", "1"),
                       capture_output=True, text=True, timeout=20)
    assert r.stdout.strip() == ""


def test_wrong_password_and_anonymous_refused(lake):
    host, port = lake.host_port("mqtt")
    r = subprocess.run(["mosquitto_pub", "-h", host, "-p", str(port), "-u", "root", "-P", "nope",
                        "-t", "a", "-m", "x"], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "bad user name or password" in (r.stderr + r.stdout).lower()
    r = subprocess.run(["mosquitto_pub", "-h", host, "-p", str(port), "-t", "a", "-m", "x", "-V", "mqttv5"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "not authori" in (r.stderr + r.stdout).lower()


@pytest.mark.parametrize("version", [4, 5])
def test_paho_qos_levels(lake, version):
    sub = mu.start(mu.make_client(lake, "paho-sub-%d" % version, version), lake, version=version)
    pub = mu.start(mu.make_client(lake, "paho-pub-%d" % version, version), lake, version=version)
    assert mu.subscribe(sub, "t/#", 2)
    infos = [pub.publish("t/%d" % q, "m%d" % q, qos=q) for q in (0, 1, 2)]
    for i in infos:
        i.wait_for_publish(10)
        assert i.is_published()
    got = mu.collect(sub, 3)
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [
        ("t/0", b"m0", 0), ("t/1", b"m1", 1), ("t/2", b"m2", 2)]
    assert mu.nothing_more(sub) is None  # exactly once for QoS 2
    mu.stop(sub, pub)


def test_paho_v5_properties_pass_through(lake):
    sub = mu.start(mu.make_client(lake, "p5-sub", 5), lake, version=5)
    pub = mu.start(mu.make_client(lake, "p5-pub", 5), lake, version=5)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 77
    sub.subscribe("req/#", 1, properties=sp)
    sub.subacks.get(timeout=10)
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("site", "north"), ("unit", "C")]
    p.ContentType = "application/json"
    p.ResponseTopic = "resp/1"
    p.CorrelationData = b"\x01\x02"
    p.PayloadFormatIndicator = 1
    p.MessageExpiryInterval = 60
    pub.publish("req/x", '{"t": 21}', qos=1, properties=p).wait_for_publish(10)
    m = mu.collect(sub, 1)[0]
    mp = m.properties
    assert mp.UserProperty == [("site", "north"), ("unit", "C")]
    assert mp.ContentType == "application/json"
    assert mp.ResponseTopic == "resp/1"
    assert mp.CorrelationData == b"\x01\x02"
    assert mp.PayloadFormatIndicator == 1
    assert 0 < mp.MessageExpiryInterval <= 60
    assert mp.SubscriptionIdentifier == [77]
    mu.stop(sub, pub)


def test_paho_will_on_abrupt_disconnect(lake):
    watcher = mu.start(mu.make_client(lake, "watcher"), lake)
    mu.subscribe(watcher, "dev/+/status", 1)
    dev = mu.make_client(lake, "dev-7")
    dev.will_set("dev/7/status", "offline", qos=1, retain=True)
    mu.start(dev, lake)
    dev.loop_stop()
    dev.socket().close()  # no DISCONNECT: the will must be published
    m = mu.collect(watcher, 1)
    assert m and m[0].payload == b"offline"
    # Retained will: a late subscriber sees it.
    late = mu.start(mu.make_client(lake, "late"), lake)
    mu.subscribe(late, "dev/7/status", 1)
    m = mu.collect(late, 1)
    assert m and m[0].payload == b"offline" and m[0].retain
    mu.stop(watcher, late)


def test_paho_clean_disconnect_sends_no_will(lake):
    watcher = mu.start(mu.make_client(lake, "watcher2"), lake)
    mu.subscribe(watcher, "w/#", 1)
    dev = mu.make_client(lake, "dev-8")
    dev.will_set("w/8", "offline", qos=1)
    mu.start(dev, lake)
    mu.stop(dev)
    assert mu.nothing_more(watcher, 1.0) is None
    mu.stop(watcher)


def test_paho_v5_will_delay(lake):
    watcher = mu.start(mu.make_client(lake, "watcher5", 5), lake, version=5)
    mu.subscribe(watcher, "wd/#", 1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 1
    dev = mu.make_client(lake, "dev-wd", 5)
    dev.will_set("wd/1", "late-offline", qos=1, properties=wp)
    mu.start(dev, lake, version=5, session_expiry=60)
    t0 = time.time()
    dev.loop_stop()
    dev.socket().close()
    m = mu.collect(watcher, 1, timeout=10)
    assert m and m[0].payload == b"late-offline"
    assert time.time() - t0 >= 0.9  # held for the will delay
    mu.stop(watcher)


def test_paho_shared_subscription(lake):
    a = mu.start(mu.make_client(lake, "share-a", 5), lake, version=5)
    b = mu.start(mu.make_client(lake, "share-b", 5), lake, version=5)
    mu.subscribe(a, "$share/workers/jobs/#", 1)
    mu.subscribe(b, "$share/workers/jobs/#", 1)
    pub = mu.start(mu.make_client(lake, "share-pub", 5), lake, version=5)
    for i in range(20):
        pub.publish("jobs/%d" % i, str(i), qos=1).wait_for_publish(10)
    time.sleep(0.5)
    ga, gb = [], []
    while not a.messages.empty():
        ga.append(a.messages.get())
    while not b.messages.empty():
        gb.append(b.messages.get())
    assert len(ga) + len(gb) == 20  # each message to exactly one member
    assert ga and gb                 # spread over the group
    mu.stop(a, b, pub)


def test_paho_websocket_transport(lake):
    sub = mu.make_client(lake, "ws-sub", 4, transport="websockets")
    sub.ws_set_options(path="/mqtt")
    mu.start(sub, lake, listener="mqtt_ws")
    mu.subscribe(sub, "ws/#", 1)
    pub = mu.make_client(lake, "ws-pub", 5, transport="websockets")
    pub.ws_set_options(path="/mqtt")
    mu.start(pub, lake, listener="mqtt_ws", version=5)
    pub.publish("ws/a", b"\x00\x01binary", qos=1).wait_for_publish(10)
    m = mu.collect(sub, 1)
    assert m and m[0].payload == b"\x00\x01binary"
    mu.stop(sub, pub)


def test_paho_persistent_session_survives_reconnect(lake):
    c = mu.start(mu.make_client(lake, "keeper", 4, clean=False), lake)
    mu.subscribe(c, "keep/#", 1)
    mu.stop(c)
    pub = mu.start(mu.make_client(lake, "keeper-pub"), lake)
    for i in range(5):
        pub.publish("keep/x", str(i), qos=1).wait_for_publish(10)
    mu.stop(pub)
    c2 = mu.make_client(lake, "keeper", 4, clean=False)
    mu.start(c2, lake)
    assert c2.connack[0]["session present"] == 1
    got = mu.collect(c2, 5)
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3", b"4"]
    mu.stop(c2)


def test_session_expiry_v5(lake):
    c = mu.start(mu.make_client(lake, "expiring", 5), lake, version=5, clean=True, session_expiry=1)
    mu.subscribe(c, "exp/#", 1)
    mu.stop(c)
    time.sleep(1.6)
    c2 = mu.start(mu.make_client(lake, "expiring", 5), lake, version=5, clean=False, session_expiry=1)
    assert c2.connack[0]["session present"] == 0  # the session expired
    mu.stop(c2)

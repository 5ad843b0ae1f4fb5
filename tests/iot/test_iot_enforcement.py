"""Device policies enforced on live connections, with real clients over mutual TLS:

- UpdateCertificate to INACTIVE / REVOKED closes the certificate's open MQTT connections (paho
  3.1.1 and 5.0; MQTT 5 gets DISCONNECT 0x98 Administrative action) and reconnecting is refused;
- a publish the policy denies: MQTT 3.1.1 clients are disconnected, MQTT 5 gets PUBACK 0x87;
- retained publishes need iot:RetainPublish;
- denials are in the audit trail (LookupEvents), throttled per device;
- a rule's s3 action writes objects that `aws s3 cp` reads back.
"""
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "mqtt"))
sys.path.insert(0, os.path.dirname(HERE))
import mqttutil as mu  # noqa: E402
import rawmqtt  # noqa: E402
from harness import Lake  # noqa: E402

ACCOUNT = "123456789012"
ARN = "arn:aws:iot:us-east-1:%s:" % ACCOUNT

# Any client id may connect; devices publish and subscribe under dev/<client id>/; only
# dev/<client id>/config may be retained.
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": ARN + "client/*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": ARN + "topic/dev/${iot:ClientId}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ARN + "topicfilter/dev/${iot:ClientId}/*"},
    {"Effect": "Allow", "Action": "iot:RetainPublish", "Resource": ARN + "topic/dev/${iot:ClientId}/config"}]}


def server_ca(lake):
    return os.path.join(lake.data_dir, "keys", "mqtt-server.crt")


def new_device(iot, tmp_path, name="dev", policy=True):
    c = iot.create_keys_and_certificate(setAsActive=True)
    if policy:
        iot.attach_policy(policyName="device", target=c["certificateArn"])
    cert, key = tmp_path / (name + ".crt"), tmp_path / (name + ".key")
    cert.write_text(c["certificatePem"])
    key.write_text(c["keyPair"]["PrivateKey"])
    return c, str(cert), str(key)


class Device:
    """A paho client over mutual TLS that records every CONNACK and disconnection (paho's loop
    reconnects on its own, so a refused reconnect shows up as a failed CONNACK)."""

    def __init__(self, lake, client_id, cert, key, version):
        self.version = version
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=client_id, protocol=proto)
        self.c.tls_set(ca_certs=server_ca(lake), certfile=cert, keyfile=key)
        self.c.reconnect_delay_set(min_delay=1, max_delay=1)
        self.lock = threading.Lock()
        self.connacks = []
        self.disconnects = 0
        self.changed = threading.Condition(self.lock)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        host, port = lake.host_port("mqtts")
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.changed:
            self.connacks.append(int(rc.value) if hasattr(rc, "value") else int(rc))
            self.changed.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.changed:
            self.disconnects += 1
            self.changed.notify_all()

    def wait(self, pred, timeout=10):
        with self.changed:
            return self.changed.wait_for(lambda: pred(self), timeout)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


class TlsRaw(rawmqtt.Raw):
    """rawmqtt's byte-level client over mutual TLS (to read the exact reason codes)."""

    def __init__(self, lake, cert, key, timeout=5):
        ctx = ssl.create_default_context(cafile=server_ca(lake))
        ctx.load_cert_chain(cert, key)
        host, port = lake.host_port("mqtts")
        self.sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=timeout),
                                    server_hostname=host)
        self.buf = b""

    def read_packet(self, timeout=5):
        try:
            return super().read_packet(timeout)
        except (ssl.SSLError, OSError) as e:
            if isinstance(e, socket.timeout):
                raise
            return None


def v5_reason(body):
    """Reason code of a PUBACK / PUBREC body (MQTT 5: success may omit it)."""
    return body[2] if len(body) > 2 else 0


def test_deactivated_certificate_connections_are_closed(lake, tmp_path):
    iot = lake.boto3_client("iot")
    iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
    c, cert, key = new_device(iot, tmp_path)
    other, ocert, okey = new_device(iot, tmp_path, "other")

    v5 = Device(lake, "d5", cert, key, 5)
    v3 = Device(lake, "d3", cert, key, 4)
    bystander = Device(lake, "o1", ocert, okey, 5)
    for d in (v5, v3, bystander):
        assert d.wait(lambda d: d.connacks == [0]), d.connacks
    raw = TlsRaw(lake, cert, key)
    assert raw.connect(client_id="draw", version=5)[2][1] == 0

    iot.update_certificate(certificateId=c["certificateId"], newStatus="INACTIVE")
    # Closed at once, not at the next packet: MQTT 5 is told why (0x98 Administrative action).
    packets = raw.expect_closed(timeout=5)
    assert rawmqtt.disconnect_reason(packets) == 0x98, packets
    for d in (v5, v3):
        assert d.wait(lambda d: d.disconnects >= 1, timeout=5), "not disconnected"
        # paho reconnects by itself; the broker refuses it (5.0: 0x87, 3.1.1: 5 Not authorized).
        assert d.wait(lambda d: len(d.connacks) >= 2, timeout=10), d.connacks
        assert d.connacks[1] == (0x87 if d.version == 5 else 5), d.connacks
    assert bystander.disconnects == 0  # another certificate's connection is untouched
    refused = TlsRaw(lake, cert, key)
    refused.send(rawmqtt.connect(client_id="again", version=5))
    connack = refused.read_packet()
    assert connack[0] == 2 and connack[2][1] == 0x87

    # Active again: paho's own reconnect gets in.
    iot.update_certificate(certificateId=c["certificateId"], newStatus="ACTIVE")
    assert v5.wait(lambda d: 0 in d.connacks[1:], timeout=15), v5.connacks
    # REVOKED closes it again, for good.
    before = v5.disconnects
    iot.update_certificate(certificateId=c["certificateId"], newStatus="REVOKED")
    assert v5.wait(lambda d: d.disconnects > before, timeout=5)
    try:
        iot.update_certificate(certificateId=c["certificateId"], newStatus="ACTIVE")
        raise AssertionError("a revoked certificate was re-activated")
    except iot.exceptions.CertificateStateException:
        pass
    for d in (v5, v3, bystander):
        d.stop()
    raw.close()
    refused.close()


def test_denied_publish_disconnects_311_and_is_not_authorized_in_5(lake, tmp_path):
    iot = lake.boto3_client("iot")
    iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
    _, cert, key = new_device(iot, tmp_path)
    witness = mu.make_client(lake, "witness", 5)
    mu.start(witness, lake, version=5)
    mu.subscribe(witness, "dev/#", 1)

    # MQTT 5: PUBACK 0x87 for QoS 1, PUBREC 0x87 for QoS 2; the connection stays.
    r5 = TlsRaw(lake, cert, key)
    r5.connect(client_id="A", version=5)
    r5.send(rawmqtt.publish("dev/B/telemetry", b"{}", qos=1, packet_id=1, version=5))
    t, _, body = r5.read_packet()
    assert t == 4 and v5_reason(body) == 0x87
    r5.send(rawmqtt.publish("dev/B/telemetry", b"{}", qos=2, packet_id=2, version=5))
    t, _, body = r5.read_packet()
    assert t == 5 and v5_reason(body) == 0x87
    r5.send(rawmqtt.publish("dev/A/telemetry", b"{\"ok\": 1}", qos=1, packet_id=3, version=5))
    t, _, body = r5.read_packet()
    assert t == 4 and v5_reason(body) < 0x80
    got = mu.collect(witness, 1)
    assert [m.topic for m in got] == ["dev/A/telemetry"]

    # MQTT 3.1.1 (paho): a denied publish closes the connection; nothing is delivered.
    d3 = Device(lake, "A", cert, key, 4)
    assert d3.wait(lambda d: d.connacks == [0])
    d3.c.publish("dev/B/telemetry", "{}", qos=1)
    assert d3.wait(lambda d: d.disconnects >= 1, timeout=5), "3.1.1 client not disconnected"
    d3.stop()
    # The same with QoS 0 (mosquitto_pub): connection closed as well.
    r3 = TlsRaw(lake, cert, key)
    r3.connect(client_id="A3", version=4)
    r3.send(rawmqtt.publish("dev/B/telemetry", b"{}", qos=0))
    assert r3.expect_closed(timeout=5) == []
    assert mu.nothing_more(witness, 1.0) is None
    mu.stop(witness)
    r5.close()


def test_retained_publish_needs_retain_publish(lake, tmp_path):
    iot = lake.boto3_client("iot")
    iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
    _, cert, key = new_device(iot, tmp_path)
    r = TlsRaw(lake, cert, key)
    r.connect(client_id="A", version=5)
    r.send(rawmqtt.publish("dev/A/state", b"on", qos=1, retain=True, packet_id=1, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and v5_reason(body) == 0x87  # iot:Publish alone does not allow retaining
    r.send(rawmqtt.publish("dev/A/config", b"v2", qos=1, retain=True, packet_id=2, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and v5_reason(body) < 0x80
    r.send(rawmqtt.publish("dev/A/state", b"not retained", qos=1, packet_id=3, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and v5_reason(body) < 0x80
    r.close()
    # A late subscriber sees only the retained message the policy allowed.
    late = mu.make_client(lake, "late", 5)
    mu.start(late, lake, version=5)
    mu.subscribe(late, "dev/A/#", 1)
    got = mu.collect(late, 1)
    assert [(m.topic, m.payload, m.retain) for m in got] == [("dev/A/config", b"v2", True)]
    assert mu.nothing_more(late, 1.0) is None
    mu.stop(late)


def lookup(lake, name):
    return lake.audit_events(name, "iot.amazonaws.com")


def test_denials_are_audited_and_throttled(tmp_path):
    lake = Lake(env={"TARN_AUDIT_DEVICE_WINDOW_SECONDS": "5"})
    lake.start()
    try:
        iot = lake.boto3_client("iot")
        iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
        iot.create_thing(thingName="A")
        c, cert, key = new_device(iot, tmp_path)
        iot.attach_thing_principal(thingName="A", principal=c["certificateArn"])
        r = TlsRaw(lake, cert, key)
        r.connect(client_id="A", version=5)
        start = time.time()
        for i in range(200):  # a misbehaving device: 200 denied publishes in a burst
            r.send(rawmqtt.publish("dev/B/x%d" % (i % 3), b"{}", qos=1, packet_id=i + 1, version=5))
            t, _, body = r.read_packet()
            assert t == 4 and v5_reason(body) == 0x87
        r.send(rawmqtt.subscribe("dev/B/#", qos=1, packet_id=900, version=5))
        t, _, body = r.read_packet()
        assert t == 9 and body[-1] == 0x87  # SUBACK: not authorized
        assert time.time() - start < 5, "burst too slow for the 5 s window on this machine"

        metrics = urllib.request.urlopen(lake.url() + "/metrics").read().decode()
        assert 'tarn_iot_policy_denials_total{action="iot:Publish"} 200' in metrics  # every one counted
        events = lookup(lake, "Publish")
        assert len(events) == 1, events  # the burst: one full record so far
        e = events[0]
        assert e["errorCode"] == "AccessDenied"
        assert e["userIdentity"] == {"type": "IoTCertificate", "principalId": c["certificateId"],
                                     "arn": c["certificateArn"], "accountId": ACCOUNT}
        assert e["requestParameters"] == {"clientId": "A", "topicName": "dev/B/x0"}
        assert e["resources"] == [{"type": "AWS::IoT::Topic", "ARN": ARN + "topic/dev/B/x0"}]
        assert "implicit deny" in e["errorMessage"]
        assert e["additionalEventData"]["policyVariables"] == {
            "iot:ClientId": "A", "iot:Connection.Thing.ThingName": "A",
            "iot:Certificate.Subject.CommonName": "AWS IoT Certificate"}
        assert e["userAgent"] == "MQTT 5.0 (mqtts)" and e["sourceIPAddress"] == "127.0.0.1"
        sub = lookup(lake, "Subscribe")
        assert len(sub) == 1 and sub[0]["requestParameters"]["topicFilter"] == "dev/B/#"

        # When the window closes, one summary stands for the other 199.
        deadline = time.time() + 15
        while time.time() < deadline:
            events = lookup(lake, "Publish")
            if len(events) >= 2:
                break
            time.sleep(0.25)
        assert len(events) == 2, events
        summary = events[0]["additionalEventData"]  # newest first
        assert summary["aggregated"] is True and summary["deniedCount"] == 199
        assert sorted(summary["resources"]) == [ARN + "topic/dev/B/x%d" % i for i in range(3)]

        # An explicit deny names the deciding statement; a revoked certificate's connect too.
        deny = {"Version": "2012-10-17", "Statement": [
            {"Sid": "NoAdmin", "Effect": "Deny", "Action": "iot:Publish", "Resource": ARN + "topic/dev/A/admin"}]}
        iot.create_policy(policyName="no-admin", policyDocument=json.dumps(deny))
        iot.attach_policy(policyName="no-admin", target=c["certificateArn"])
        r.send(rawmqtt.publish("dev/A/admin", b"{}", qos=1, packet_id=1000, version=5))
        t, _, body = r.read_packet()
        assert t == 4 and v5_reason(body) == 0x87
        events = lookup(lake, "Publish")
        assert "explicit deny by policy no-admin statement NoAdmin" in events[0]["errorMessage"], events[0]
        iot.update_certificate(certificateId=c["certificateId"], newStatus="INACTIVE")
        r.expect_closed()
        again = TlsRaw(lake, cert, key)
        again.send(rawmqtt.connect(client_id="A", version=5))
        assert again.read_packet()[2][1] == 0x87
        conn = lookup(lake, "Connect")
        assert conn and "INACTIVE" in conn[0]["errorMessage"]
        assert conn[0]["resources"][0]["ARN"] == ARN + "client/A"
        again.close()
    finally:
        lake.stop()
        lake.cleanup()


def test_s3_action_objects_read_back_with_aws_s3_cp(lake, tmp_path):
    """A device publishes over mutual TLS; the rule's s3 action writes the document under the
    key template; `aws s3 ls` / `aws s3 cp` read it back through the S3 API."""
    iot = lake.boto3_client("iot")
    iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
    _, cert, key = new_device(iot, tmp_path)
    iot.create_topic_rule(ruleName="raw", topicRulePayload={
        "sql": "SELECT temperature, topic(2) AS device, clientid() AS client FROM 'dev/+/telemetry'",
        "actions": [{"s3": {"bucketName": "landing", "key": "iot/raw/${topic(2)}/${timestamp()}.json",
                            "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}}]})
    r = TlsRaw(lake, cert, key)
    r.connect(client_id="A", version=5)
    r.send(rawmqtt.publish("dev/A/telemetry", json.dumps({"temperature": 21.5}).encode(), qos=1,
                           packet_id=1, version=5))
    assert r.read_packet()[0] == 4
    r.close()
    deadline = time.time() + 15
    keys = []
    while time.time() < deadline and not keys:
        ls = lake.aws("s3", "ls", "s3://landing/iot/raw/A/")
        keys = [line.split()[-1] for line in ls.stdout.splitlines() if line.strip().endswith(".json")]
        if not keys:
            time.sleep(0.2)
    assert len(keys) == 1, ls.stdout + ls.stderr
    assert keys[0][:-len(".json")].isdigit()  # ${timestamp()}: milliseconds
    cp = lake.aws("s3", "cp", "s3://landing/iot/raw/A/" + keys[0], "-")
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == {"temperature": 21.5, "device": "A", "client": "A"}


def test_thing_group_policy_applies_to_its_things(lake, tmp_path):
    """A policy attached to a thing group (or its parent) governs a device that connects as a
    thing in the group; removing the thing from the group takes the rights away at once."""
    iot = lake.boto3_client("iot")
    group_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": ARN + "client/${iot:Connection.Thing.ThingName}",
         "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
        {"Effect": "Allow", "Action": "iot:Publish",
         "Resource": ARN + "topic/site/${iot:Connection.Thing.Attributes[site]}/*"}]}
    iot.create_policy(policyName="fleet", policyDocument=json.dumps(group_policy))
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="north", parentGroupName="fleet")
    iot.attach_policy(policyName="fleet", target=iot.describe_thing_group(thingGroupName="fleet")["thingGroupArn"])
    iot.create_thing(thingName="T1", attributePayload={"attributes": {"site": "north"}})
    c, cert, key = new_device(iot, tmp_path, "t1", policy=False)  # no policy on the certificate
    iot.attach_thing_principal(thingName="T1", principal=c["certificateArn"])

    r = TlsRaw(lake, cert, key)
    r.send(rawmqtt.connect(client_id="T1", version=5))
    assert r.read_packet()[2][1] == 0x87  # not in a group yet: nothing allows it
    r.close()
    iot.add_thing_to_thing_group(thingGroupName="north", thingName="T1")  # via the parent group
    r = TlsRaw(lake, cert, key)
    assert r.connect(client_id="T1", version=5)[2][1] == 0
    r.send(rawmqtt.publish("site/north/t", b"{}", qos=1, packet_id=1, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and v5_reason(body) < 0x80
    r.send(rawmqtt.publish("site/south/t", b"{}", qos=1, packet_id=2, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and v5_reason(body) == 0x87  # the attribute scopes the site
    iot.remove_thing_from_thing_group(thingGroupName="north", thingName="T1")
    r.send(rawmqtt.publish("site/north/t", b"{}", qos=1, packet_id=3, version=5))
    t, _, body = r.read_packet()
    assert t == 4 and v5_reason(body) == 0x87
    r.close()
    # A client id that is not the attached thing gets no group policies (and no connect).
    r = TlsRaw(lake, cert, key)
    r.send(rawmqtt.connect(client_id="other", version=5))
    assert r.read_packet()[2][1] == 0x87
    r.close()

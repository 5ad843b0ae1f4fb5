"""Devices over MQTT with certificates from CreateKeysAndCertificate (mutual TLS against the
lake's device CA): mosquitto_pub and paho connect; the ${iot:Connection.Thing.ThingName}
policy lets device A publish to sensors/A/… and not sensors/B/…; a certificate with no policy can
do nothing; an INACTIVE certificate cannot connect; and the issue's rule republishes only the
hot readings."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mqtt"))
import mqttutil as mu  # noqa: E402

ACCOUNT = "123456789012"
ARN = "arn:aws:iot:us-east-1:%s:" % ACCOUNT

POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": ARN + "client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": ARN + "topic/sensors/${iot:Connection.Thing.ThingName}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ARN + "topicfilter/alerts/*"},
    {"Effect": "Allow", "Action": "iot:Receive", "Resource": ARN + "topic/alerts/*"}]}


def device(lake, iot, name, tmp_path, policy=True):
    iot.create_thing(thingName=name)
    c = iot.create_keys_and_certificate(setAsActive=True)
    if policy:
        iot.attach_policy(policyName="device", target=c["certificateArn"])
    iot.attach_thing_principal(thingName=name, principal=c["certificateArn"])
    cert, key = tmp_path / (name + ".crt"), tmp_path / (name + ".key")
    cert.write_text(c["certificatePem"])
    key.write_text(c["keyPair"]["PrivateKey"])
    return c, str(cert), str(key)


def server_ca(lake):
    return os.path.join(lake.data_dir, "keys", "mqtt-server.crt")


def cert_client(lake, client_id, cert, key, version=5):
    c = mu.make_client(lake, client_id, version)
    c.username_pw_set(None)
    c.tls_set(ca_certs=server_ca(lake), certfile=cert, keyfile=key)
    return c


def mosquitto_pub(lake, client_id, cert, key, topic, message, qos=1):
    host, port = lake.host_port("mqtts")
    return subprocess.run(["mosquitto_pub", "-h", host, "-p", str(port), "-V", "mqttv5", "-i", client_id,
                           "--cafile", server_ca(lake), "--cert", cert, "--key", key,
                           "-t", topic, "-m", message, "-q", str(qos)],
                          capture_output=True, text=True, timeout=30)


def test_thing_policy_and_rule_over_mutual_tls(lake, tmp_path):
    iot = lake.boto3_client("iot")
    iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
    _, cert_a, key_a = device(lake, iot, "A", tmp_path)
    iot.create_topic_rule(ruleName="hot", topicRulePayload={
        "sql": "SELECT temperature, topic(2) AS device FROM 'sensors/+/telemetry' WHERE temperature > 50",
        "actions": [{"republish": {"topic": "alerts/${topic(2)}", "qos": 1,
                                   "roleArn": "arn:aws:iam::%s:role/iot" % ACCOUNT}}]})

    witness = mu.make_client(lake, "witness", 5)
    mu.start(witness, lake, version=5)
    mu.subscribe(witness, "sensors/#", 1)
    mu.subscribe(witness, "alerts/#", 1)

    # mosquitto_pub with the device's certificate over mutual TLS.
    r = mosquitto_pub(lake, "A", cert_a, key_a, "sensors/A/telemetry", json.dumps({"temperature": 72}))
    assert r.returncode == 0, r.stderr
    got = mu.collect(witness, 2)
    topics = sorted(m.topic for m in got)
    assert topics == ["alerts/A", "sensors/A/telemetry"], topics
    alert = [m for m in got if m.topic == "alerts/A"][0]
    assert json.loads(alert.payload) == {"temperature": 72, "device": "A"}

    # paho as device A: its own topic is allowed, B's is refused with 0x87 (MQTT 5 PUBACK).
    a = cert_client(lake, "A", cert_a, key_a)
    mu.start(a, lake, listener="mqtts", version=5)
    assert a.connack[1] == 0
    a.publish("sensors/A/telemetry", json.dumps({"temperature": 20}), qos=1).wait_for_publish(10)
    a.publish("sensors/B/telemetry", json.dumps({"temperature": 99}), qos=1).wait_for_publish(10)
    a.publish("sensors/A/telemetry", json.dumps({"temperature": 90}), qos=1).wait_for_publish(10)
    got = mu.collect(witness, 3, timeout=5)
    seen = sorted((m.topic, json.loads(m.payload)["temperature"]) for m in got)
    assert seen == [("alerts/A", 90), ("sensors/A/telemetry", 20), ("sensors/A/telemetry", 90)], seen
    assert mu.nothing_more(witness, 1.0) is None  # nothing from sensors/B, no alert for 20
    mu.stop(a)

    # Connecting as another client id than the thing is refused (iot:Connect on client/A only).
    other = mosquitto_pub(lake, "not-A", cert_a, key_a, "sensors/A/telemetry", "{}")
    assert other.returncode != 0

    # A certificate with no policy can do nothing.
    _, cert_n, key_n = device(lake, iot, "N", tmp_path, policy=False)
    r = mosquitto_pub(lake, "N", cert_n, key_n, "sensors/N/telemetry", "{}")
    assert r.returncode != 0
    mu.stop(witness)


def test_inactive_certificate_cannot_connect(lake, tmp_path):
    iot = lake.boto3_client("iot")
    iot.create_policy(policyName="device", policyDocument=json.dumps(POLICY))
    c, cert, key = device(lake, iot, "A", tmp_path)
    assert mosquitto_pub(lake, "A", cert, key, "sensors/A/x", "{}").returncode == 0
    iot.update_certificate(certificateId=c["certificateId"], newStatus="INACTIVE")
    deadline = time.time() + 1.0
    r = mosquitto_pub(lake, "A", cert, key, "sensors/A/x", "{}")
    assert r.returncode != 0 and time.time() < deadline + 30
    iot.update_certificate(certificateId=c["certificateId"], newStatus="ACTIVE")
    assert mosquitto_pub(lake, "A", cert, key, "sensors/A/x", "{}").returncode == 0
    # Detaching the policy takes effect for the next connection.
    iot.detach_policy(policyName="device", target=c["certificateArn"])
    assert mosquitto_pub(lake, "A", cert, key, "sensors/A/x", "{}").returncode != 0

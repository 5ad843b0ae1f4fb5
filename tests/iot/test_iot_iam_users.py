"""MQTT clients that log in with an IAM user name and password are authorised by that user's IAM
policies, on the same actions and ARNs as devices (iot:Connect on client/<id>, iot:Publish and
iot:Receive on topic/<name>, iot:Subscribe on topicfilter/<filter>); a policy change takes effect
on the next packet; denials and failed logins are in the audit trail (DESIGN.md §5)."""
import json
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "mqtt"))
import mqttutil as mu  # noqa: E402
import rawmqtt  # noqa: E402

ARN = "arn:aws:iot:*:*:"
PASSWORD = "Sensor-App-Pw1"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": ARN + "client/app-*"},
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": ARN + "topic/apps/${aws:username}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ARN + "topicfilter/apps/*"},
    {"Effect": "Allow", "Action": "iot:Receive", "Resource": ARN + "topic/apps/${aws:username}/*"}]}


def raw_connect(lake, client_id, password=PASSWORD, user="sensor-app"):
    host, port = lake.host_port("mqtt")
    r = rawmqtt.Raw(host, port)
    r.send(rawmqtt.connect(client_id=client_id, version=5, username=user, password=password))
    p = r.read_packet()
    assert p and p[0] == 2, p
    return r, p[2][1]  # CONNACK reason code


def puback_reason(r, topic, packet_id):
    r.send(rawmqtt.publish(topic, b'{"v":1}', qos=1, packet_id=packet_id, version=5))
    t, _, body = r.read_packet()
    assert t == 4, (t, body)
    assert struct.unpack(">H", body[:2])[0] == packet_id
    return body[2] if len(body) > 2 else 0


def cloudtrail(lake, name):
    return lake.audit_events(name, "iot.amazonaws.com")


def test_iam_user_mqtt_is_authorised_by_its_policies(lake):
    iam = lake.boto3_client("iam")
    iam.create_user(UserName="sensor-app")
    iam.create_login_profile(UserName="sensor-app", Password=PASSWORD)

    # No iot:Connect yet: refused with 0x87 Not authorized.
    r, rc = raw_connect(lake, "app-1")
    assert rc == 0x87, hex(rc)
    r.close()

    iam.put_user_policy(UserName="sensor-app", PolicyName="mqtt", PolicyDocument=json.dumps(POLICY))
    # Only client ids the policy names.
    r, rc = raw_connect(lake, "other-1")
    assert rc == 0x87, hex(rc)
    r.close()

    watcher = mu.make_client(lake, "watcher", 5)  # root sees everything that was routed
    mu.start(watcher, lake, version=5)
    mu.subscribe(watcher, "apps/#", 1)

    r, rc = raw_connect(lake, "app-1")
    assert rc == 0, hex(rc)
    assert puback_reason(r, "apps/sensor-app/t", 1) in (0x00, 0x10)
    assert puback_reason(r, "apps/someone-else/t", 2) == 0x87
    got = mu.collect(watcher, 1)
    assert [m.topic for m in got] == ["apps/sensor-app/t"]
    assert mu.nothing_more(watcher, 0.5) is None

    # Subscribing to apps/# is allowed, but only topics it may receive are delivered.
    r.send(rawmqtt.subscribe("apps/#", qos=0, packet_id=3, version=5))
    t, _, body = r.read_packet()
    assert t == 9 and body[-1] == 0x00, (t, body)
    root = mu.make_client(lake, "root-pub", 5)
    mu.start(root, lake, version=5)
    root.publish("apps/someone-else/x", b"secret", qos=1).wait_for_publish(5)
    root.publish("apps/sensor-app/y", b"mine", qos=1).wait_for_publish(5)
    t, _, body = r.read_packet()
    assert t == 3, (t, body)
    assert b"apps/sensor-app/y" in body and b"mine" in body and b"secret" not in body

    # A policy change takes effect on the next packet of the open connection.
    iam.delete_user_policy(UserName="sensor-app", PolicyName="mqtt")
    assert puback_reason(r, "apps/sensor-app/t", 4) == 0x87
    r.close()
    mu.stop(watcher, root)

    # The denials name the IAM user (throttled per client and action, so at least one each).
    deadline = time.time() + 15
    while True:
        pubs = [e for e in cloudtrail(lake, "Publish") if e["userIdentity"].get("type") == "IAMUser"]
        conns = [e for e in cloudtrail(lake, "Connect") if e["userIdentity"].get("type") == "IAMUser"]
        if (pubs and conns) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert pubs and conns, (pubs, conns)
    assert all(e["userIdentity"]["arn"].endswith(":user/sensor-app") for e in pubs + conns)
    assert any(e["resources"][0]["ARN"].endswith("topic/apps/someone-else/t") for e in pubs
               if e.get("resources")), pubs
    assert any(e["requestParameters"]["clientId"] == "other-1" for e in conns), conns


def test_failed_mqtt_login_is_audited_without_the_password(lake):
    iam = lake.boto3_client("iam")
    iam.create_user(UserName="guesser")
    iam.create_login_profile(UserName="guesser", Password=PASSWORD)
    r, rc = raw_connect(lake, "brute-1", password="wrong-guess-123", user="guesser")
    assert rc == 0x86, hex(rc)  # Bad user name or password
    r.close()
    deadline = time.time() + 15
    while True:
        ev = [e for e in cloudtrail(lake, "Connect") if e["requestParameters"].get("clientId") == "brute-1"]
        if ev or time.time() > deadline:
            break
        time.sleep(0.5)
    assert ev, "the failed login is not in the audit trail"
    assert ev[0]["userIdentity"]["type"] == "IAMUser"
    assert ev[0]["userIdentity"]["userName"] == "guesser"
    assert "authentication failed" in ev[0]["errorMessage"]
    assert "wrong-guess-123" not in json.dumps(ev)

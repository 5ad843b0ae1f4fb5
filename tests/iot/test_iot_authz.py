"""The IoT control plane and iot-data go through the lake's IAM policies like every API."""
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def client_for(lake, service, akid, secret):
    return boto3.client(service, endpoint_url=lake.url(), aws_access_key_id=akid,
                        aws_secret_access_key=secret, region_name=lake.REGION,
                        config=Config(retries={"max_attempts": 1}))


def test_user_without_iot_permissions_is_refused_then_allowed(lake):
    iam = lake.boto3_client("iam")
    iam.create_user(UserName="dev")
    key = iam.create_access_key(UserName="dev")["AccessKey"]
    iot = client_for(lake, "iot", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="nope")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403), e.value.response
    assert lake.boto3_client("iot").list_things()["things"] == []  # nothing was created
    iam.put_user_policy(UserName="dev", PolicyName="things", PolicyDocument=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*Thing*","Resource":"*"}]}'))
    iot.create_thing(thingName="yes")
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["yes"]


def test_https_publish_retained_needs_retain_publish(lake):
    """iot-data Publish with --retain: iot:Publish and iot:RetainPublish on the topic, as over MQTT;
    the retained message reaches a later MQTT subscriber."""
    import json
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mqtt"))
    import mqttutil as mu

    iam = lake.boto3_client("iam")
    iam.create_user(UserName="pub")
    key = iam.create_access_key(UserName="pub")["AccessKey"]
    iam.put_user_policy(UserName="pub", PolicyName="publish", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/cfg/*"},
            {"Effect": "Allow", "Action": "iot:RetainPublish", "Resource": "arn:aws:iot:*:*:topic/cfg/retained"}]}))
    data = client_for(lake, "iot-data", key["AccessKeyId"], key["SecretAccessKey"])
    data.publish(topic="cfg/plain", payload=b"1", qos=1)
    with pytest.raises(ClientError) as e:
        data.publish(topic="cfg/plain", payload=b"2", qos=1, retain=True)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403)
    assert "iot:RetainPublish" in str(e.value)
    data.publish(topic="cfg/retained", payload=b"v3", qos=1, retain=True)
    # The awscli flag works the same way.
    r = lake.aws("iot-data", "publish", "--topic", "cfg/cli", "--retain", "--payload", "x")
    assert r.returncode == 0, r.stderr
    late = mu.make_client(lake, "late", 5)
    mu.start(late, lake, version=5)
    mu.subscribe(late, "cfg/#", 1)
    got = sorted((m.topic, m.payload, m.retain) for m in mu.collect(late, 2))
    assert got == [("cfg/cli", b"x", True), ("cfg/retained", b"v3", True)], got
    assert mu.nothing_more(late, 0.5) is None
    mu.stop(late)

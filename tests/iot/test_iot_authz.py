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

"""IAM and STS query APIs with the stock awscli and boto3: users, keys, inline and managed
policies, groups, roles and AssumeRole, each change taking effect on the next request."""
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sigv4 import aws_with  # noqa: E402


def ok(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def root(lake, *args):
    return ok(lake.aws(*args, "--output", "json"))


def new_user_with_key(lake, name):
    root(lake, "iam", "create-user", "--user-name", name)
    key = root(lake, "iam", "create-access-key", "--user-name", name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_users_keys_and_inline_policies(lake):
    user = root(lake, "iam", "create-user", "--user-name", "alice")["User"]
    assert user["Arn"] == "arn:aws:iam::123456789012:user/alice"
    assert user["UserId"].startswith("AIDA")
    r = lake.aws("iam", "create-user", "--user-name", "alice")
    assert r.returncode != 0 and "EntityAlreadyExists" in r.stderr
    key = root(lake, "iam", "create-access-key", "--user-name", "alice")["AccessKey"]
    akid, secret = key["AccessKeyId"], key["SecretAccessKey"]
    assert akid.startswith("AKIA") and len(secret) == 40
    keys = root(lake, "iam", "list-access-keys", "--user-name", "alice")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [akid]

    ident = ok(aws_with(lake, akid, secret, "sts", "get-caller-identity", "--output", "json"))
    assert ident["Arn"] == user["Arn"] and ident["UserId"] == user["UserId"]

    # No policy yet: implicit deny.
    r = aws_with(lake, akid, secret, "iam", "list-users")
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    assert "is not authorized to perform: iam:ListUsers" in r.stderr

    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:List*", "iam:GetUser"], "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:GetUser", "Resource": "arn:aws:iam::*:user/root*"}]}
    root(lake, "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "ReadIam",
         "--policy-document", json.dumps(doc))
    got = root(lake, "iam", "get-user-policy", "--user-name", "alice", "--policy-name", "ReadIam")
    assert got["PolicyDocument"] == doc
    assert root(lake, "iam", "list-user-policies", "--user-name", "alice")["PolicyNames"] == ["ReadIam"]
    users = ok(aws_with(lake, akid, secret, "iam", "list-users", "--output", "json"))["Users"]
    assert [u["UserName"] for u in users] == ["alice"]
    r = aws_with(lake, akid, secret, "iam", "create-user", "--user-name", "mallory")
    assert r.returncode != 0 and "AccessDenied" in r.stderr

    # Malformed documents are refused.
    r = lake.aws("iam", "put-user-policy", "--user-name", "alice", "--policy-name", "Bad",
                 "--policy-document", '{"Statement": [{"Effect": "Perhaps"}]}')
    assert r.returncode != 0 and "MalformedPolicyDocument" in r.stderr

    # Inactive key → the key no longer authenticates.
    root(lake, "iam", "update-access-key", "--user-name", "alice", "--access-key-id", akid, "--status", "Inactive")
    r = aws_with(lake, akid, secret, "sts", "get-caller-identity")
    assert r.returncode != 0 and "InvalidClientTokenId" in r.stderr
    # Active again, then deleted: each change holds from the next request (the server remembers
    # credentials it looked up until an IAM write).
    root(lake, "iam", "update-access-key", "--user-name", "alice", "--access-key-id", akid, "--status", "Active")
    ok(aws_with(lake, akid, secret, "sts", "get-caller-identity", "--output", "json"))
    root(lake, "iam", "delete-access-key", "--user-name", "alice", "--access-key-id", akid)
    r = aws_with(lake, akid, secret, "sts", "get-caller-identity")
    assert r.returncode != 0 and "InvalidClientTokenId" in r.stderr
    r = lake.aws("iam", "delete-user", "--user-name", "alice")
    assert r.returncode != 0 and "DeleteConflict" in r.stderr
    root(lake, "iam", "delete-user-policy", "--user-name", "alice", "--policy-name", "ReadIam")
    root(lake, "iam", "delete-user", "--user-name", "alice")
    r = lake.aws("iam", "get-user", "--user-name", "alice")
    assert r.returncode != 0 and "NoSuchEntity" in r.stderr


def test_groups_and_managed_policies(lake):
    akid, secret = new_user_with_key(lake, "bob")
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]}
    pol = root(lake, "iam", "create-policy", "--policy-name", "RoleReader",
               "--policy-document", json.dumps(doc))["Policy"]
    arn = pol["Arn"]
    assert arn == "arn:aws:iam::123456789012:policy/RoleReader" and pol["DefaultVersionId"] == "v1"
    root(lake, "iam", "create-group", "--group-name", "readers")
    root(lake, "iam", "add-user-to-group", "--group-name", "readers", "--user-name", "bob")
    root(lake, "iam", "attach-group-policy", "--group-name", "readers", "--policy-arn", arn)
    groups = root(lake, "iam", "list-groups-for-user", "--user-name", "bob")["Groups"]
    assert [g["GroupName"] for g in groups] == ["readers"]
    g = root(lake, "iam", "get-group", "--group-name", "readers")
    assert [u["UserName"] for u in g["Users"]] == ["bob"]
    att = root(lake, "iam", "list-attached-group-policies", "--group-name", "readers")["AttachedPolicies"]
    assert att == [{"PolicyName": "RoleReader", "PolicyArn": arn}]

    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}
    role = root(lake, "iam", "create-role", "--role-name", "analyst",
                "--assume-role-policy-document", json.dumps(trust))["Role"]
    assert role["AssumeRolePolicyDocument"] == trust
    got = ok(aws_with(lake, akid, secret, "iam", "get-role", "--role-name", "analyst", "--output", "json"))
    assert got["Role"]["Arn"] == "arn:aws:iam::123456789012:role/analyst"

    # A new default version that no longer allows GetRole takes effect at once.
    doc2 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}
    v = root(lake, "iam", "create-policy-version", "--policy-arn", arn, "--policy-document", json.dumps(doc2),
             "--set-as-default")["PolicyVersion"]
    assert v["VersionId"] == "v2" and v["IsDefaultVersion"]
    assert root(lake, "iam", "get-policy-version", "--policy-arn", arn, "--version-id", "v2")[
        "PolicyVersion"]["Document"] == doc2
    r = aws_with(lake, akid, secret, "iam", "get-role", "--role-name", "analyst")
    assert r.returncode != 0 and "AccessDenied" in r.stderr

    r = lake.aws("iam", "delete-policy", "--policy-arn", arn)
    assert r.returncode != 0 and "DeleteConflict" in r.stderr
    root(lake, "iam", "detach-group-policy", "--group-name", "readers", "--policy-arn", arn)
    root(lake, "iam", "remove-user-from-group", "--group-name", "readers", "--user-name", "bob")
    assert "RoleReader" in [p["PolicyName"] for p in root(lake, "iam", "list-policies", "--scope", "Local")["Policies"]]
    root(lake, "iam", "delete-policy", "--policy-arn", arn)
    root(lake, "iam", "delete-group", "--group-name", "readers")


def test_assume_role_and_session_tokens(lake):
    akid, secret = new_user_with_key(lake, "carol")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/carol"}, "Action": "sts:AssumeRole"}]}
    root(lake, "iam", "create-role", "--role-name", "auditor", "--assume-role-policy-document", json.dumps(trust))
    root(lake, "iam", "put-role-policy", "--role-name", "auditor", "--policy-name", "p", "--policy-document",
         json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}))
    # root is not named by the trust policy: refused.
    r = lake.aws("sts", "assume-role", "--role-arn", "arn:aws:iam::123456789012:role/auditor",
                 "--role-session-name", "s1")
    assert r.returncode != 0 and "AccessDenied" in r.stderr

    import boto3
    sts = boto3.client("sts", endpoint_url=lake.url(), aws_access_key_id=akid, aws_secret_access_key=secret,
                       region_name="us-east-1")
    out = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/auditor", RoleSessionName="nightly",
                          DurationSeconds=900)
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/auditor/nightly"
    ident = ok(aws_with(lake, c["AccessKeyId"], c["SecretAccessKey"], "sts", "get-caller-identity",
                        "--output", "json", token=c["SessionToken"]))
    assert ident["Arn"] == "arn:aws:sts::123456789012:assumed-role/auditor/nightly"
    assert ident["UserId"].startswith("AROA") and ident["UserId"].endswith(":nightly")
    roles = ok(aws_with(lake, c["AccessKeyId"], c["SecretAccessKey"], "iam", "list-roles", "--output", "json",
                        token=c["SessionToken"]))["Roles"]
    assert [x["RoleName"] for x in roles] == ["auditor"]
    r = aws_with(lake, c["AccessKeyId"], c["SecretAccessKey"], "iam", "list-users", token=c["SessionToken"])
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    # Without (or with a wrong) session token the temporary key is refused.
    r = aws_with(lake, c["AccessKeyId"], c["SecretAccessKey"], "sts", "get-caller-identity")
    assert r.returncode != 0 and "InvalidClientTokenId" in r.stderr
    r = aws_with(lake, c["AccessKeyId"], c["SecretAccessKey"], "sts", "get-caller-identity", token="bogus")
    assert r.returncode != 0 and "InvalidClientTokenId" in r.stderr

    # GetSessionToken for the user.
    st = sts.get_session_token(DurationSeconds=900)["Credentials"]
    ident = ok(aws_with(lake, st["AccessKeyId"], st["SecretAccessKey"], "sts", "get-caller-identity",
                        "--output", "json", token=st["SessionToken"]))
    assert ident["Arn"] == "arn:aws:iam::123456789012:user/carol"


def test_expired_session_token(lake):
    """Expiry is enforced: a session created with a lake clock far in the past is expired."""
    akid, secret = new_user_with_key(lake, "dave")
    import boto3
    sts = boto3.client("sts", endpoint_url=lake.url(), aws_access_key_id=akid, aws_secret_access_key=secret,
                       region_name="us-east-1")
    c = sts.get_session_token(DurationSeconds=900)["Credentials"]
    # Age the session in the metadata store (the lake holds no in-memory copy).
    import sqlite3
    db = sqlite3.connect(os.path.join(lake.data_dir, "meta", "tarn.db"), timeout=10)
    db.execute("UPDATE sts_sessions SET expires = ? WHERE access_key_id = ?", (int(time.time()) - 1, c["AccessKeyId"]))
    db.commit()
    db.close()
    r = aws_with(lake, c["AccessKeyId"], c["SecretAccessKey"], "sts", "get-caller-identity", token=c["SessionToken"])
    assert r.returncode != 0 and "ExpiredToken" in r.stderr, r.stderr


def test_login_profile_sets_scram_password(lake):
    root(lake, "iam", "create-user", "--user-name", "erin")
    root(lake, "iam", "create-login-profile", "--user-name", "erin", "--password", "S3cret-pass!")
    import sqlite3
    db = sqlite3.connect(os.path.join(lake.data_dir, "meta", "tarn.db"), timeout=10)
    (verifier,) = db.execute("SELECT password_verifier FROM iam_users WHERE name = 'erin'").fetchone()
    db.close()
    assert verifier.startswith("SCRAM-SHA-256$4096:") and "S3cret" not in verifier
    assert "S3cret-pass!" not in lake.read_log()

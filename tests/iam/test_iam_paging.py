"""IAM list calls page with MaxItems / Marker / IsTruncated, as boto3's paginators and the
awscli's --page-size expect."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sigv4 import aws_with  # noqa: E402


def ok(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


def iam(lake):
    return lake.boto3_client("iam")


def collect(client, op, key, page_size, **kw):
    pages = list(client.get_paginator(op).paginate(PaginationConfig={"PageSize": page_size}, **kw))
    return pages, [item for p in pages for item in p[key]]


def test_paging_of_every_list_call(lake):
    c = iam(lake)
    names = ["pager%02d" % i for i in range(7)]
    for n in names:
        c.create_user(UserName=n)
        c.create_group(GroupName="g" + n)
        c.create_role(RoleName="r" + n, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}]}))
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
    arns = [c.create_policy(PolicyName="p" + n, PolicyDocument=doc)["Policy"]["Arn"] for n in names[:5]]
    for a in arns:
        c.attach_user_policy(UserName="pager00", PolicyArn=a)
    for i in range(4):
        c.put_user_policy(UserName="pager00", PolicyName="inline%d" % i, PolicyDocument=doc)
    for n in names[:3]:
        c.add_user_to_group(GroupName="gpager00", UserName=n)
        c.add_user_to_group(GroupName="g" + n, UserName="pager01")
    c.create_access_key(UserName="pager00")
    c.create_access_key(UserName="pager00")

    # One page by hand: IsTruncated and a Marker, then the rest from the Marker.
    first = c.list_users(MaxItems=3)
    assert first["IsTruncated"] is True and first["Marker"]
    assert [u["UserName"] for u in first["Users"]] == names[:3]
    rest = c.list_users(Marker=first["Marker"], MaxItems=100)
    assert rest["IsTruncated"] is False and "Marker" not in rest
    assert [u["UserName"] for u in rest["Users"]] == names[3:]

    cases = [
        ("list_users", "Users", {}, [u for u in names]),
        ("list_groups", "Groups", {}, ["g" + n for n in names]),
        ("list_roles", "Roles", {}, ["r" + n for n in names]),
        ("list_policies", "Policies", {"Scope": "Local"}, ["p" + n for n in names[:5]]),
        ("list_attached_user_policies", "AttachedPolicies", {"UserName": "pager00"}, sorted(arns)),
        ("list_user_policies", "PolicyNames", {"UserName": "pager00"}, ["inline%d" % i for i in range(4)]),
        ("list_groups_for_user", "Groups", {"UserName": "pager01"}, ["g" + n for n in names[:3]]),
        ("get_group", "Users", {"GroupName": "gpager00"}, names[:3]),
        ("list_access_keys", "AccessKeyMetadata", {"UserName": "pager00"}, None),
    ]
    field = {"Users": "UserName", "Groups": "GroupName", "Roles": "RoleName", "Policies": "PolicyName",
             "AttachedPolicies": "PolicyArn", "AccessKeyMetadata": "AccessKeyId"}
    for op, key, kw, want in cases:
        pages, items = collect(c, op, key, 2, **kw)
        got = [i if isinstance(i, str) else i[field[key]] for i in items]
        if want is None:
            assert len(got) == 2 and len(set(got)) == 2 and len(pages) == 1, (op, got)
            pages, items = collect(c, op, key, 1, **kw)
            assert len(pages) == 2 and len({i["AccessKeyId"] for i in items}) == 2, op
            continue
        assert got == want, (op, got)
        assert len(pages) == (len(want) + 1) // 2, (op, len(pages))
        assert all(p["IsTruncated"] for p in pages[:-1]) and not pages[-1]["IsTruncated"], op

    # awscli pages with --page-size (MaxItems on each call) and returns everything.
    out = ok(lake.aws("iam", "list-roles", "--page-size", "3", "--output", "json"))
    assert [r["RoleName"] for r in out["Roles"]] == ["r" + n for n in names]
    out = ok(lake.aws("iam", "list-users", "--max-items", "2", "--output", "json"))
    assert len(out["Users"]) == 2 and out.get("NextToken")

    # Bad MaxItems / Marker values are validation errors.
    r = lake.aws("iam", "list-users", "--page-size", "0")
    assert r.returncode != 0 and ("ValidationError" in r.stderr or "valid min value" in r.stderr), r.stderr
    import botocore
    try:
        c.list_users(Marker="@@not-base64@@")
        raise AssertionError("bad marker accepted")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ValidationError"

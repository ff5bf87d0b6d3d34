#!/usr/bin/env python3
"""Creates, in the local stack's moto, the role a tenant makes so the worker can write the
tenant's own bucket (README, "Recordings in your own bucket"), for the end-to-end tests.

  tenant_role.py NAME BUCKET EXTERNAL_ID    prints the role's ARN

Runs with the stack's environment: the operator's credentials create the role; the worker's
and the other functions' (ROOMREC_ROLES_FILE) say whom its trust policy names. The trust
policy names the worker's role as a tenant would, the preflight function's (it checks the role
before any recording), and the roles that presign download URLs of the tenant's files (the job
functions', Jocloud's and the callback deliverer's), each also by its session
(arn:aws:sts::…:assumed-role/ROLE/SESSION, a valid AWS principal too), because moto compares
the caller's session ARN with the principal as a string.
moto checks the principal and a StringEquals on sts:ExternalId (a wrong ExternalId is refused;
a missing one, unlike on AWS, is not). The role's own policy allows the bucket only.
"""

from __future__ import annotations

import json
import os
import sys

import boto3


# The deployment's roles a tenant's trust policy names (README, "Recordings in your own
# bucket"): the worker writes, the others presign download URLs.
TRUSTED = ["worker", "preflight-api", "individual-jobs-api", "mix-jobs-api", "jocloud-api", "callback-delivery"]


def client(service: str, credentials: dict[str, str] | None = None):
    keys = {}
    if credentials:
        keys = {"aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
                "aws_session_token": credentials["AWS_SESSION_TOKEN"]}
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"), **keys)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, bucket, external_id = argv
    with open(os.environ["ROOMREC_ROLES_FILE"]) as f:
        roles = json.load(f)
    principals = []
    for trusted in TRUSTED:
        session = client("sts", roles[trusted]).get_caller_identity()["Arn"]
        # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION -> arn:aws:iam::ACCOUNT:role/ROLE
        account, role = session.split(":")[4], session.split("/")[1]
        principals += [f"arn:aws:iam::{account}:role/{role}", session]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
    }]}
    writes = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
    ]}
    iam = client("iam")
    created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="recordings", PolicyDocument=json.dumps(writes))
    print(created["Role"]["Arn"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

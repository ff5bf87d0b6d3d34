#!/usr/bin/env python3
"""moto server that checks DynamoDB requests against the tables they name, as AWS does.

moto's IAM enforcement (switched on by stack.py once the stack is set up) checks every request's
action against the caller's policies, and the resource too for SQS queues and S3 objects. For
DynamoDB it checks the resource "*", which no policy naming a table matches, so every call of a
least-privilege role would be refused. Here a DynamoDB request is checked once per table (or
index) it reads or writes, by that table's ARN: `TableName` (with `IndexName`), the tables of
`RequestItems` (BatchGetItem, BatchWriteItem) and of `TransactItems`. SQS's batch calls need
the permission of their single call on AWS (there is no `sqs:DeleteMessageBatch` permission);
moto asks for the batch call's own name, so they are checked as AWS does. Every refusal of a
deployment role (named `roomrec-…`) is logged (`denied: <caller> <action> on <resource>`), so
moto.log says which permission a role lacks. A refusal that is a tenant's to decide — a tenant
role's trust policy refusing the worker, or a tenant role's own policy refusing a write — is
logged as `tenant refused: …` instead: the tests provoke those on purpose.

  moto_iam.py -H 127.0.0.1 -p PORT     the arguments of moto_server
"""

from __future__ import annotations

import re
import sys

from moto.dynamodb.responses import DynamoHandler
from moto.iam.access_control import IAMRequestBase
from moto.server import main

_authorize = DynamoHandler._authenticate_and_authorize_normal_action
_check = IAMRequestBase.check_action_permitted
_trust = IAMRequestBase._check_role_trust_relationship


def table_arns(handler: DynamoHandler) -> list[str]:
    """The ARNs a DynamoDB request touches; its parameters are parsed into `handler.body`."""
    body = handler.body if isinstance(handler.body, dict) else {}
    names: list[tuple[str, str | None]] = []
    if body.get("TableName"):
        names.append((body["TableName"], body.get("IndexName")))
    names += [(name, None) for name in body.get("RequestItems") or {}]
    for item in body.get("TransactItems") or []:
        names += [(op["TableName"], None) for op in item.values() if "TableName" in op]
    base = f"arn:aws:dynamodb:{handler.region}:{handler.current_account}:table/"
    return [base + table + (f"/index/{index}" if index else "") for table, index in names] or ["*"]


def authorize_each_table(self: DynamoHandler, resource: str = "*") -> None:
    for arn in table_arns(self):
        _authorize(self, arn)


# The permission each SQS batch call needs on AWS.
SQS_BATCH_PERMISSIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


# Roles of the deployment (template.yaml's, the operator's): infra/local/cfn.py's NAME_PREFIX.
DEPLOYMENT_ROLE = re.compile(r":assumed-role/roomrec-")


def check_and_log(self: IAMRequestBase, resource: str) -> None:
    self._action = SQS_BATCH_PERMISSIONS.get(self._action, self._action)
    self.refused_by_trust = False
    try:
        _check(self, resource)
    except Exception:
        caller = self._access_key.arn
        tenants = self.refused_by_trust or not DEPLOYMENT_ROLE.search(caller)
        verdict = "tenant refused" if tenants else "denied"
        print(f"{verdict}: {caller} {self._action} on {resource}", file=sys.stderr, flush=True)
        raise


def trust_and_log(self: IAMRequestBase, role_arn: str) -> bool:
    """moto's trust check of an AssumeRole (principal and StringEquals conditions such as
    sts:ExternalId), remembered so a refusal is the role's, not the caller's policy's."""
    trusted = _trust(self, role_arn)
    self.refused_by_trust = not trusted
    return trusted


DynamoHandler._authenticate_and_authorize_normal_action = authorize_each_table
IAMRequestBase.check_action_permitted = check_and_log
IAMRequestBase._check_role_trust_relationship = trust_and_log

if __name__ == "__main__":
    sys.exit(main())

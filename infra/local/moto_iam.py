#!/usr/bin/env python3
"""moto server that checks DynamoDB requests against the tables they name, as AWS does.

moto's IAM enforcement (switched on by stack.py once the stack is set up) checks every request's
action against the caller's policies, and the resource too for SQS queues and S3 objects. For
DynamoDB it checks the resource "*", which no policy naming a table matches, so every call of a
least-privilege role would be refused. Here a DynamoDB request is checked once per table (or
index) it reads or writes, by that table's ARN: `TableName` (with `IndexName`), the tables of
`RequestItems` (BatchGetItem, BatchWriteItem) and of `TransactItems`.

  moto_iam.py -H 127.0.0.1 -p PORT     the arguments of moto_server
"""

from __future__ import annotations

import sys

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_authorize = DynamoHandler._authenticate_and_authorize_normal_action


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


DynamoHandler._authenticate_and_authorize_normal_action = authorize_each_table

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""moto server that checks DynamoDB requests against the tables they name, as AWS does.

moto's IAM enforcement (switched on by stack.py once the stack is set up) checks every request's
action against the caller's policies, and the resource too for SQS queues and S3 objects. For
DynamoDB it checks the resource "*", which no policy naming a table matches, so every call of a
least-privilege role would be refused. Here a DynamoDB request is checked once per table (or
index) it reads or writes, by that table's ARN: `TableName` (with `IndexName`), the tables of
`RequestItems` (BatchGetItem, BatchWriteItem) and of `TransactItems`. S3's DeleteObjects is
checked as `s3:DeleteObject` on each object it names, as AWS does. SQS's batch calls need
the permission of their single call on AWS (there is no `sqs:DeleteMessageBatch` permission);
moto asks for the batch call's own name, so they are checked as AWS does. Every refusal of a
deployment role (named `roomrec-…`) is logged (`denied: <caller> <action> on <resource>`), so
moto.log says which permission a role lacks. A refusal that is a tenant's to decide — a tenant
role's trust policy refusing the worker, or a tenant role's own policy refusing a write — is
logged as `tenant refused: …` instead: the tests provoke those on purpose.

moto checks an S3 request's signature only from its `Authorization` header, so with IAM
enforced a presigned URL (SigV4 in the query string) would fail. Here one is checked as S3
does: refused once `X-Amz-Date` + `X-Amz-Expires` has passed, refused unless its signature is
the one the signer's secret gives for this very request (a changed key, query or expiry
breaks it), then allowed only if the signer may do the action (`s3:GetObject`) itself.

moto's own server (werkzeug's) closes the connection after every answer, so every AWS call
would open a new TCP connection, which AWS does not make clients do. moto's application is
served here by waitress instead, which keeps connections open as AWS's endpoints do: the
worker's per-request cost measured by `make bench-worker` is then its own, not moto's.
For every request moto also looks its service up by the host name, listing its own package
directory each time (15 % of moto's CPU in a `py-spy` profile at N = 200); the answer for a
host name never changes, so it is kept.

  moto_iam.py -H 127.0.0.1 -p PORT     the arguments of moto_server
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlparse

import xmltodict

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.dynamodb.responses import DynamoHandler
from moto.iam.access_control import IAMRequestBase, S3IAMRequest, create_access_key
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.exceptions import S3AccessDeniedError
from waitress import serve

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


def deleted_objects(self: IAMRequestBase, resource: str) -> list[str]:
    """The ARNs of the objects an S3 DeleteObjects call (POST /bucket?delete) names: AWS checks
    `s3:DeleteObject` on each, moto on the bucket, which no policy naming objects matches."""
    query = parse_qs(urlparse(self._path).query, keep_blank_values=True)
    if self._action != "s3:DeleteObject" or self._method != "POST" or "delete" not in query:
        return []
    objects = xmltodict.parse(self._body, force_list=("Object",))["Delete"].get("Object") or []
    return [f"{resource}/{obj['Key']}" for obj in objects]


def check_and_log(self: IAMRequestBase, resource: str) -> None:
    self._action = SQS_BATCH_PERMISSIONS.get(self._action, self._action)
    self.refused_by_trust = False
    arn = resource
    try:
        for arn in deleted_objects(self, resource) or [resource]:
            _check(self, arn)
    except Exception:
        caller = self._access_key.arn
        tenants = self.refused_by_trust or not DEPLOYMENT_ROLE.search(caller)
        verdict = "tenant refused" if tenants else "denied"
        print(f"{verdict}: {caller} {self._action} on {arn}", file=sys.stderr, flush=True)
        raise


def trust_and_log(self: IAMRequestBase, role_arn: str) -> bool:
    """moto's trust check of an AssumeRole (principal and StringEquals conditions such as
    sts:ExternalId), remembered so a refusal is the role's, not the caller's policy's."""
    trusted = _trust(self, role_arn)
    self.refused_by_trust = not trusted
    return trusted


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri_encode(text: str, safe: str = "") -> str:
    return quote(text, safe="-_.~" + safe)


class PresignedS3Request(S3IAMRequest):
    """An S3 request authenticated by SigV4 query parameters (a presigned URL)."""

    def __init__(self, account_id, method, path, data, body, headers, action):  # noqa: PLR0913
        self._query = dict(parse_qsl(urlparse(path).query, keep_blank_values=True))
        credential = self._query.get("X-Amz-Credential", "")
        token = self._query.get("X-Amz-Security-Token")
        # moto reads the credential scope from an Authorization header; give it the query's.
        with_auth = dict(headers)
        with_auth["Authorization"] = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host"
        if token is not None:
            with_auth["X-Amz-Security-Token"] = token
        super().__init__(account_id, method, path, data, body, with_auth, action)

    def check_signature(self) -> None:
        signed_at = datetime.strptime(self._query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        lifetime = timedelta(seconds=int(self._query.get("X-Amz-Expires", "0")))
        if datetime.now(timezone.utc) > signed_at + lifetime:
            print(f"presigned URL expired: {self._path.partition('?')[0]}", file=sys.stderr, flush=True)
            raise S3AccessDeniedError()
        if not hmac.compare_digest(self._query.get("X-Amz-Signature", ""), self._calculate_signature()):
            self._raise_signature_does_not_match()

    def _calculate_signature(self) -> str:
        path, _, query = self._path.partition("?")
        params = sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "X-Amz-Signature")
        canonical_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in params)
        signed = self._query.get("X-Amz-SignedHeaders", "host").split(";")
        headers = {k.lower(): v for k, v in self._headers.items()}
        canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
        canonical = "\n".join([self._method, _uri_encode(unquote(path), "/"), canonical_query, canonical_headers,
                               ";".join(signed), "UNSIGNED-PAYLOAD"])
        _, date, region, service, terminal = self._query["X-Amz-Credential"].split("/")
        scope = "/".join([date, region, service, terminal])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self._query["X-Amz-Date"], scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self._access_key.create_credentials().secret_key).encode()
        for part in (date, region, service, terminal):
            key = _hmac(key, part)
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


_s3_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action


def authorize_s3(self, bucket_name: str | None = None, key_name: str | None = None) -> None:
    """moto's S3 check, with a presigned URL's query authentication checked as S3 does."""
    if "Authorization" in self.headers:
        return _s3_authorize(self, bucket_name, key_name)
    if "X-Amz-Signature" not in urlparse(self.uri).query:
        # Anonymous: the deployment's buckets block public access, as S3 refuses it there.
        if ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT:
            raise S3AccessDeniedError()
        return _s3_authorize(self, bucket_name, key_name)
    arn = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
    self._authenticate_and_authorize_action(PresignedS3Request, f"arn:aws:s3:::{arn}")


ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = authorize_s3
DynamoHandler._authenticate_and_authorize_normal_action = authorize_each_table
IAMRequestBase.check_action_permitted = check_and_log
IAMRequestBase._check_role_trust_relationship = trust_and_log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto's server sets it; moto uses it for the URLs it hands out (SQS queue URLs).
    os.environ.setdefault("MOTO_PORT", str(args.port))
    DomainDispatcherApplication.get_backend_for_host = functools.cache(DomainDispatcherApplication.get_backend_for_host)
    app = DomainDispatcherApplication(create_backend_app)
    # Threads answer requests, not connections: enough for every long poll of the stack's
    # workers and deliverers at once. poll() rather than select(): N = 200 jobs pass 1024 fds.
    serve(app, host=args.host, port=args.port, threads=64, asyncore_use_poll=True, ident=None,
          connection_limit=4096, channel_timeout=120)


if __name__ == "__main__":
    main()

"""Schemathesis hooks for infra/local/api-fuzz.sh: real resources to aim generated requests at.

Generated ids almost never name anything, so every request would end in a 404 before the
handler reads its body. At import this module creates, through the API, an app with a record
rule, a callback, a participant stream, an individual and a mix job, and a Jocloud recording;
the hooks then put those ids into most generated requests (the rest keep their generated
values, so unknown ids are still tried). Nothing here relaxes a check.
"""

import base64
import itertools
import json
import os
import urllib.error
import urllib.request

import schemathesis

BASE = os.environ["ROOMREC_HTTP_URL"].rstrip("/")
AUTH = "Basic " + base64.b64encode(
    f"{os.environ['ROOMREC_DEV_KEY_ID']}:{os.environ['ROOMREC_DEV_SECRET']}".encode()).decode()
# Of every ten generated values, how many are replaced by a real id.
REAL_ID_TENTHS = 8


def call(method: str, path: str, body: dict | None = None) -> dict:
    """Calls the API as the dev credential; the JSON answer, or RuntimeError on a non-2xx or
    a network failure."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method,
                                     headers={"authorization": AUTH, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{method} {path}: {err.code} {err.read()[:300]!r}") from None
    except OSError as err:  # refused, reset, timed out
        raise RuntimeError(f"{method} {path}: {err}") from None
    return json.loads(text) if text else {}


def create_fixtures() -> dict:
    app = call("POST", "/v2/apps", {"app_name": "schemathesis",
                                   "stream_url_template": "rtmp://media.example.com/live/{room_id}_{user_id}"})
    app_path = f"/v2/apps/{app['app_id']}"
    rule = call("POST", f"{app_path}/record-rules", {
        "obs_addr": {"bucket": os.environ.get("ROOMREC_RECORDINGS_BUCKET", "roomrec-recordings"),
                     "location": os.environ.get("AWS_REGION", "us-east-1"), "object": "fuzz/"},
        "record_formats": ["HLS", "MP4"],
    })
    call("PUT", f"{app_path}/record-callback",
         {"url": "https://example.com/roomrec-callback", "auth_key": "k" * 32})
    call("PUT", f"{app_path}/rooms/room1/streams/user1", {"url": "rtmp://media.example.com/live/room1_user1"})
    record_param = {"record_rule_id": rule["rule_id"]}
    individual = call("POST", f"{app_path}/individual-stream-jobs",
                      {"room_id": "room1", "user_id": "user1", "record_param": record_param})
    mix = call("POST", f"{app_path}/mix-stream-jobs", {
        "mix_param": {"room_id": "room1", "encode_template": "640x360_15_500"}, "record_param": record_param})
    reservation = call("POST", f"{app_path}/jocloud/applyrecord", {"roomid": "room1"})
    recording = call("POST", f"{app_path}/jocloud/startrecord", {
        "resid": reservation["resid"], "roomid": "room1", "record_rule_id": rule["rule_id"]})
    return {
        "app_id": app["app_id"],
        "rule_id": rule["rule_id"],
        "room_id": "room1",
        "user_id": "user1",
        "job_id": {"individual-stream-jobs": individual["job_id"], "mix-stream-jobs": mix["job_id"]},
        "recordid": recording["recordid"],
        "token": os.environ.get("ROOMREC_HOOK_TOKEN", ""),
    }


FIXTURES = create_fixtures()


CALLS = itertools.count()


def often() -> bool:
    """Whether to replace the value at hand: eight calls in ten. A count, not `random`, which
    Hypothesis forbids in a strategy: with one worker a seed replays the same run."""
    return next(CALLS) % 10 < REAL_ID_TENTHS


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if not path_parameters:
        return path_parameters
    operation = context.operation
    # Deleting the shared app or rule would turn every later request into a 404.
    keep = {("DELETE", "/v2/apps/{app_id}"): "app_id",
            ("DELETE", "/v2/apps/{app_id}/record-rules/{rule_id}"): "rule_id"}
    protected = keep.get((operation.method.upper(), operation.path))
    for name in list(path_parameters):
        if name == protected or not often():
            continue
        if name == "job_id":
            collection = operation.path.split("/")[4]
            path_parameters[name] = FIXTURES["job_id"][collection]
        elif name in FIXTURES and FIXTURES[name]:
            path_parameters[name] = FIXTURES[name]
    return path_parameters


@schemathesis.hook
def map_body(context, body):
    if not isinstance(body, dict) or not often():
        return body
    path = context.operation.path
    if isinstance(body.get("record_param"), dict):
        body["record_param"]["record_rule_id"] = FIXTURES["rule_id"]
    if path.endswith("/jocloud/startrecord"):
        body["record_rule_id"] = FIXTURES["rule_id"]
        try:
            body["resid"] = call("POST", f"/v2/apps/{FIXTURES['app_id']}/jocloud/applyrecord")["resid"]
        except RuntimeError:
            pass  # the case then runs with its generated resid
    elif "recordid" in body:
        body["recordid"] = FIXTURES["recordid"]
    elif path.startswith("/v2/hooks/") and isinstance(body.get("name"), str):
        # A stream key of the real app, so a join or a leave actually happens.
        body["name"] = f"{FIXTURES['app_id']}.room1.{('user1', 'user2', 'hooked')[next(CALLS) % 3]}"
    elif path == "/v3/auth/tokens":
        # The dev credential as IAM's user name and password, so a token is actually issued.
        user = body
        for key in ("auth", "identity", "password", "user"):
            user = user.get(key) if isinstance(user, dict) else None
        if isinstance(user, dict):
            user["name"] = os.environ["ROOMREC_DEV_KEY_ID"]
            user["password"] = os.environ["ROOMREC_DEV_SECRET"]
    return body

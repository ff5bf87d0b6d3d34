"""A seeded mutator of the seed bodies over every writable route of the running stack.

The request bodies of events/ (the seeds' own bodies among them) and the examples of the
OpenAPI document are the corpus. Each request takes one of a route's bodies, with real ids of
an app made here, and mutates it: a field dropped, set to another type, to a value one past
its bound, to a huge or control-character string, an unknown field, a nested bomb, bytes of
the JSON cut or flipped, a body past 128 KiB, another content type. Every answer must be below
500 and carry no internal text: no AWS or SDK error, no Rust error or panic, no stack trace
(MARKERS). Run by infra/local/e2e.sh api; MUTATE_SEED (default fixed, printed) picks the run,
MUTATE_REQUESTS (default 1200) its length. Exits 1 on any finding, listing each with a curl
command that repeats it.
"""

import base64
import copy
import glob
import http.client
import json
import os
import random
import sys
import time
import urllib.parse

BASE = urllib.parse.urlsplit(os.environ["ROOMREC_HTTP_URL"])
AUTH = "Basic " + base64.b64encode(
    f"{os.environ['ROOMREC_DEV_KEY_ID']}:{os.environ['ROOMREC_DEV_SECRET']}".encode()).decode()
SEED = int(os.environ.get("MUTATE_SEED", "20261129"))
REQUESTS = int(os.environ.get("MUTATE_REQUESTS", "1200"))
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# Text that must never reach a tenant: AWS and SDK errors, Rust errors and panics, traces.
# The mutations never inject any of these, so an echo of the request cannot trip them.
MARKERS = [
    "dispatch failure", "DispatchFailure", "service error", "ServiceError", "SdkError",
    "ResourceNotFoundException", "ValidationException", "ConditionalCheckFailed",
    "ProvisionedThroughputExceeded", "AccessDenied", "NoSuchBucket", "arn:aws:",
    "panicked", "stack backtrace", "Error {", "Some(", "os error", "src/", ".rs:",
    "aws_sdk", "aws-sdk", "hyper::", "reqwest::", "tokio::", "serde_json::",
]

# The writable routes (method, path template); the media server's hook, a form of its own
# protocol, is not among them.
ROUTES = [
    ("POST", "/v2/apps"),
    ("PUT", "/v2/apps/{app_id}"),
    ("POST", "/v2/apps/{app_id}/record-rules"),
    ("PUT", "/v2/apps/{app_id}/record-rules/{rule_id}"),
    ("PUT", "/v2/apps/{app_id}/record-callback"),
    ("PUT", "/v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}"),
    ("POST", "/v2/apps/{app_id}/individual-stream-jobs"),
    ("POST", "/v2/apps/{app_id}/individual-stream-jobs/{job_id}/stop"),
    ("POST", "/v2/apps/{app_id}/mix-stream-jobs"),
    ("PUT", "/v2/apps/{app_id}/mix-stream-jobs/{job_id}"),
    ("POST", "/v2/apps/{app_id}/mix-stream-jobs/{job_id}/stop"),
    ("POST", "/v2/apps/{app_id}/jocloud/applyrecord"),
    ("POST", "/v2/apps/{app_id}/jocloud/startrecord"),
    ("POST", "/v2/apps/{app_id}/jocloud/updatemixrecord"),
    ("POST", "/v2/apps/{app_id}/jocloud/stoprecord"),
    ("POST", "/v2/apps/{app_id}/jocloud/queryrecord"),
    ("POST", "/v3/auth/tokens"),
]

# Strings a mutation puts in a field: bounds, separators, templates, other schemes, unicode.
STRINGS = [
    "", " ", "a" * 65, "a" * 129, "a" * 257, "a" * 513, "a" * 1025, "a" * 2049, "x" * 70000,
    "../../etc/passwd", "/abs", "{job_id}", "{stream}", "{nope}", "{", "}", "{{job_id}}",
    "s3://b12/" + "k" * 1100, "s3://", "http://169.254.169.254/latest", "file:///etc/passwd",
    "rtmp://h/" + "a" * 2100, "ftp://a.example.com/cb", "\u0000", "a\u0007b", "\u001b[2J",
    "line\nbreak", "\u0085", "\u202e", "\ud7ff", "💥" * 300, "ÿ" * 600, "1280*720", "0x0",
    "99999x99999_99_99999", "audio_only", "nine_grids_view", "CAMERASTREAM", "#GGGGGG", "null",
    "true", "-1", "1e309", "NaN",
]
# Longest body sent: past the gateway's 6 MB limit (answered 413 after draining), short of
# the 24 MiB where it stops reading.
MAX_BODY_BYTES = 7 * 1024 * 1024
NUMBERS = [0, -1, 1, 59, 61, 43201, 2 ** 31, 2 ** 63, -(2 ** 63), 2 ** 64, 1.5, 1e308, -0.0]


def load_corpus() -> dict:
    """Request bodies by route key: events/ first, then the OpenAPI document's examples."""
    corpus = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "events", "*", "*.json"))):
        with open(path) as f:
            event = json.load(f)
        route, body = event.get("routeKey"), event.get("body")
        if not route or not body:
            continue
        try:
            corpus.setdefault(route, []).append(json.loads(body))
        except json.JSONDecodeError:
            continue  # a malformed body of its own; the byte mutations cover those
    with open(os.path.join(ROOT, "api", "openapi.json")) as f:
        document = json.load(f)
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if not isinstance(operation, dict) or not content:
                continue
            schema = content.get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            for example in schema.get("examples", []) + list(content.get("examples", {}).values()):
                value = example.get("value", example) if isinstance(example, dict) and "value" in example else example
                corpus.setdefault(f"{method.upper()} {path}", []).append(value)
    return corpus


class Client:
    """One kept-alive connection to the gateway, opened again when the server closes it."""

    def __init__(self):
        self.connection = None

    def request(self, method, path, body: bytes | None, content_type="application/json"):
        headers = {"authorization": AUTH}
        if body is not None and content_type:
            headers["content-type"] = content_type
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(BASE.hostname, BASE.port, timeout=30)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if (response.getheader("connection") or "").lower() == "close":
                    self.connection.close()
                    self.connection = None
                return response.status, data
            except (ConnectionError, http.client.HTTPException, OSError):
                # A connection the server closed between requests: once more on a new one.
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def call(self, method, path, body=None) -> dict:
        status, data = self.request(method, path, None if body is None else json.dumps(body).encode())
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data) if data else {}


def fixtures(client: Client) -> dict:
    """An app of the dev account with a rule, a callback, a stream, one job of each kind and a
    Jocloud recording, for the ids in paths and bodies."""
    app = client.call("POST", "/v2/apps", {"app_name": "mutator"})["app_id"]
    rule = client.call("POST", f"/v2/apps/{app}/record-rules", {
        "obs_addr": {"bucket": os.environ.get("ROOMREC_RECORDINGS_BUCKET", "roomrec-recordings"),
                     "location": os.environ.get("AWS_REGION", "us-east-1"), "object": "mutate/"},
        "record_formats": ["HLS", "MP4"]})["rule_id"]
    client.call("PUT", f"/v2/apps/{app}/record-callback",
                {"url": "https://example.com/roomrec-callback", "auth_key": "k" * 32})
    client.call("PUT", f"/v2/apps/{app}/rooms/room1/streams/user1", {"url": "rtmp://media.example.com/live/room1_user1"})
    param = {"record_rule_id": rule}
    individual = client.call("POST", f"/v2/apps/{app}/individual-stream-jobs",
                             {"room_id": "room1", "user_id": "user1", "record_param": param})["job_id"]
    mix = client.call("POST", f"/v2/apps/{app}/mix-stream-jobs", {
        "mix_param": {"room_id": "room1", "encode_template": "640x360_15_500"}, "record_param": param})["job_id"]
    resid = client.call("POST", f"/v2/apps/{app}/jocloud/applyrecord", {"roomid": "room1"})["resid"]
    recordid = client.call("POST", f"/v2/apps/{app}/jocloud/startrecord", {
        "resid": resid, "roomid": "room1", "record_rule_id": rule, "recordtype": 0, "streamtype": 1})["recordid"]
    return {"app_id": app, "rule_id": rule, "room_id": "room1", "user_id": "user1",
            "individual": individual, "mix": mix, "recordid": recordid}


def with_ids(body, ids: dict):
    """`body` with the fixture's ids where a corpus body names the replay fixtures' ones."""
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            if key in ("record_rule_id",) and isinstance(value, str):
                out[key] = ids["rule_id"]
            elif key == "recordid" and isinstance(value, str):
                out[key] = ids["recordid"]
            else:
                out[key] = with_ids(value, ids)
        return out
    if isinstance(body, list):
        return [with_ids(v, ids) for v in body]
    return body


def base_bodies(corpus: dict, ids: dict) -> dict:
    """The unmutated bodies of each route."""
    rule = {"record_rule_id": ids["rule_id"]}
    defaults = {
        "POST /v2/apps/{app_id}/jocloud/updatemixrecord": [{"recordid": ids["recordid"], "layout_template": "nine_grids_view"}],
        "POST /v2/apps/{app_id}/jocloud/stoprecord": [{"recordid": ids["recordid"]}],
        "POST /v2/apps/{app_id}/jocloud/queryrecord": [{"recordid": ids["recordid"], "roomid": "room1"}],
        "POST /v2/apps/{app_id}/jocloud/startrecord": [{"resid": "0" * 32, "roomid": "room1", "record_rule_id": ids["rule_id"]}],
        "POST /v2/apps/{app_id}/individual-stream-jobs/{job_id}/stop": [None],
        "POST /v2/apps/{app_id}/mix-stream-jobs/{job_id}/stop": [None],
        "POST /v2/apps/{app_id}/individual-stream-jobs": [{"room_id": "room2", "user_id": "u2", "record_param": rule}],
        "POST /v2/apps/{app_id}/mix-stream-jobs": [{"mix_param": {"room_id": "room2", "encode_template": "audio_only"}, "record_param": rule}],
    }
    bodies = {}
    for method, path in ROUTES:
        key = f"{method} {path}"
        bodies[key] = [with_ids(b, ids) for b in corpus.get(key, [])] + defaults.get(key, [])
        if not bodies[key]:
            bodies[key] = [{}]
    return bodies


def paths_in(value, prefix=()):
    """Every path to a value inside `value` (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths_in(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:5]):
            yield from paths_in(inner, prefix + (index,))


def replace_at(value, path, new):
    if not path:
        return new
    copied = copy.copy(value)
    copied[path[0]] = replace_at(value[path[0]], path[1:], new)
    return copied


def random_value(rng: random.Random, depth=0):
    kind = rng.randrange(8 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return "".join(chr(rng.randrange(0, 0x2FF)) for _ in range(rng.randrange(1, 40)))
    if kind == 4:
        return [random_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 26, 65, 300]))]
    if kind == 5:
        return {rng.choice(["id", "user_id", "image", "x", "video_type"]): random_value(rng, depth + 1)}
    if kind == 6:
        nested = 0
        for _ in range(rng.choice([10, 100, 200])):
            nested = [nested]
        return nested
    return rng.choice(STRINGS) * rng.choice([1, 2, 40])


def mutate(rng: random.Random, body, ids: dict):
    """One mutation of `body`: the JSON bytes and the content type to send them with."""
    content_type = "application/json"
    choice = rng.random()
    if body is None:
        body = {}
    if choice < 0.55 and isinstance(body, (dict, list)):
        for _ in range(rng.choice([1, 1, 2, 3])):
            targets = list(paths_in(body))[1:] or [()]
            target = rng.choice(targets)
            if rng.random() < 0.2 and target:
                parent = body
                for step in target[:-1]:
                    parent = parent[step]
                if isinstance(parent, dict):
                    body = replace_at(body, target[:-1], {k: v for k, v in parent.items() if k != target[-1]})
                    continue
            body = replace_at(body, target, random_value(rng))
    elif choice < 0.65 and isinstance(body, dict):
        body = dict(body, **{rng.choice(["colour", "extra", "__proto__", "obs_addr", "mix_param"]): random_value(rng)})
    elif choice < 0.7:
        body = random_value(rng)
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode()
    # Past the gateway's 6 MB a body is drained up to 24 MiB and cut off beyond: keep to the
    # part where an answer is due.
    text = text[:MAX_BODY_BYTES]
    roll = rng.random()
    if roll < 0.08 and text:
        cut = rng.randrange(len(text))
        text = text[:cut]
    elif roll < 0.14 and text:
        data = bytearray(text)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        text = bytes(data)
    elif roll < 0.17:
        text = text + b" " * (131072 - len(text) + rng.choice([-1, 1, 5000]))
    elif roll < 0.2:
        content_type = rng.choice(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None,
                                   "application/json; charset=utf-8", "APPLICATION/JSON"])
    return text, content_type


def url_for(rng: random.Random, path: str, ids: dict) -> str:
    job = ids["mix"] if "/mix-stream-jobs/" in path else ids["individual"]
    values = {"app_id": ids["app_id"], "rule_id": ids["rule_id"], "room_id": ids["room_id"],
              "user_id": ids["user_id"], "job_id": job}
    if rng.random() < 0.1:
        name = rng.choice(list(values))
        values[name] = urllib.parse.quote(rng.choice(["0" * 24, "0" * 32, "a" * 65, "..", "r.1", "%00", "x" * 300]), safe="")
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def leaks(data: bytes) -> list:
    text = data.decode("utf-8", "replace")
    return [marker for marker in MARKERS if marker in text]


def main() -> int:
    rng = random.Random(SEED)
    print(f"api-mutate: seed {SEED}, {REQUESTS} requests (MUTATE_SEED and MUTATE_REQUESTS to change)")
    client = Client()
    ids = fixtures(client)
    bodies = base_bodies(load_corpus(), ids)
    findings, statuses, started = [], {}, time.monotonic()
    for number in range(REQUESTS):
        method, template = rng.choice(ROUTES)
        key = f"{method} {template}"
        path = url_for(rng, template, ids)
        body = copy.deepcopy(rng.choice(bodies[key]))
        if key.endswith("/jocloud/startrecord") and isinstance(body, dict) and rng.random() < 0.5:
            try:
                body["resid"] = client.call("POST", f"/v2/apps/{ids['app_id']}/jocloud/applyrecord")["resid"]
            except RuntimeError:
                pass
        data, content_type = mutate(rng, body, ids)
        try:
            status, answer = client.request(method, path, data, content_type)
        except OSError as err:
            # No answer at all: as bad as a 5xx.
            status, answer = 0, f"no answer: {err}".encode()
        statuses[status] = statuses.get(status, 0) + 1
        found = leaks(answer)
        if status >= 500 or status == 0 or found:
            curl_type = f" -H 'content-type: {content_type}'" if content_type else ""
            findings.append(
                f"#{number} {method} {template} ({len(data)} bytes): {status} {answer[:400]!r}" + (f" (internal text: {found})" if found else "")
                + f"\n    repeat: curl -u \"$KEY:$SECRET\" -X {method}{curl_type} '{BASE.geturl()}{path}' --data-binary "
                + repr(data[:2000].decode("utf-8", "replace"))[:600])
    seconds = time.monotonic() - started
    summary = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    print(f"api-mutate: {REQUESTS} requests in {seconds:.0f} s: {summary}")
    if findings:
        print(f"api-mutate: {len(findings)} findings (5xx or internal text), seed {SEED}:")
        print("\n".join(findings[:50]))
        return 1
    print(f"api-mutate: clean: no 5xx, no internal text (seed {SEED})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

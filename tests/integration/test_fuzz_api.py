"""Generated bad input for every operation of every API the server serves, over real HTTP.

For each operation in botocore's service models of `lambda`, `logs` and `scheduler` — served or
not — inputs are generated from the operation's input shape: valid-looking ones, then wrong types
for each member, strings past their length, breaking their pattern or outside their enum, numbers
out of range, required members missing, empty and huge lists and maps, unicode oddities; path
parameters (FunctionName, LayerName, Name, ...) URL-encoded oddly, `..`, very long. botocore
itself serialises them (a client with parameter validation off, so invalid values reach the wire);
raw HTTP sends what botocore cannot: bodies that are not JSON, nested 100,000 deep, random bytes,
the wrong Content-Type, paths botocore would encode.

The property: no answer is a 5xx, every 4xx is in the API's own error shape (Lambda and Scheduler:
`x-amzn-ErrorType` and a JSON body with a message; Logs: JSON `__type`), and the server's log has
no ERROR and no traceback afterwards. Not even Invoke may answer 502/504: Lambda does so only when
the function itself fails (a broken runtime, its ENI, its KMS key), and the function fuzzed here
echoes its event. A 400 from aiohttp's HTTP parser (a request line or header past 8,190 bytes, a
control character in a header) is counted apart: no API saw the request to answer in its shape.
Seeded per operation, so a run is the same every time (FUZZ_SEED and FUZZ_BUDGET explore further);
every failure is reported at once.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import os
import random
import re
import time
import urllib.parse
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.model import OperationModel, Shape

from conftest import ROLE, Server, free_port, make_zip

from .helpers import ACCOUNT, REGION

#: FUZZ_SEED and FUZZ_BUDGET explore further by hand; the suite runs the defaults.
SEED = int(os.environ.get("FUZZ_SEED", "16"))
#: Bad inputs per operation through botocore (besides the valid-looking ones and the raw requests).
BUDGET = int(os.environ.get("FUZZ_BUDGET", "24"))
SERVICES = ("lambda", "logs", "scheduler")
FUNCTION, LAYER, ALIAS, GROUP, SCHEDULE = "fuzz-fn", "fuzz-layer", "fuzz-alias", "fuzz-group", "fuzz-schedule"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
LAYER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{LAYER}"
LOG_GROUP = f"/aws/lambda/{FUNCTION}"
ECHO = make_zip({"app.py": "def handler(event, context):\n    return event\n"})

#: Valid-looking values by member name (else one made from the shape): the resources made first,
#: so that operations on existing resources get past their 404s.
KNOWN: dict[str, Any] = {
    "FunctionName": FUNCTION, "LayerName": LAYER, "VersionNumber": 1, "Role": ROLE, "RoleArn": ROLE,
    "Runtime": "python3.11", "Handler": "app.handler", "ZipFile": ECHO, "Content": {"ZipFile": ECHO},
    "Code": {"ZipFile": ECHO}, "Payload": b'{"fuzz": 1}', "Qualifier": "$LATEST", "FunctionVersion": "$LATEST",
    "Resource": FUNCTION_ARN, "ResourceArn": FUNCTION_ARN, "Arn": FUNCTION_ARN, "StatementId": "fuzz-sid",
    "Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com", "logGroupName": LOG_GROUP,
    "logGroupIdentifier": LOG_GROUP, "logGroupNamePrefix": "/aws/lambda/", "logStreamName": "fuzz-stream",
    "ScheduleExpression": "rate(1 hour)", "GroupName": GROUP, "ImageUri": "127.0.0.1:1/fuzz:latest",
    "EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:fuzz-queue", "S3Bucket": "fuzz-bucket", "S3Key": "fuzz.zip",
    "MemorySize": 128, "Timeout": 3, "ClientContext": base64.b64encode(b'{"custom": {}}').decode(),
}
#: ... and by (service, member) where one name means different things.
KNOWN_IN = {("lambda", "Name"): ALIAS, ("scheduler", "Name"): SCHEDULE}

#: Operations that make a resource: a name not taken yet, so that valid-looking input succeeds.
FRESH: dict[str, dict[str, Any]] = {
    "CreateFunction": {"FunctionName": "fuzz-created", "PackageType": "Zip", "Runtime": "python3.11",
                       "Handler": "app.handler"}, "CreateAlias": {"Name": "fuzz-alias-2"},
    "AddPermission": {"StatementId": "fuzz-sid-2"}, "AddLayerVersionPermission": {"Action": "lambda:GetLayerVersion"},
    "CreateScheduleGroup": {"Name": "fuzz-group-2"}, "CreateSchedule": {"Name": "fuzz-schedule-2"},
    "CreateLogGroup": {"logGroupName": "/fuzz/created"}, "CreateFunctionUrlConfig": {"FunctionName": "fuzz-created"},
    "PutProvisionedConcurrencyConfig": {"Qualifier": "1"}, "GetLayerVersionByArn": {"Arn": LAYER_ARN + ":1"},
    "DeleteFunction": {"Qualifier": "1"},
}

#: Strings that break patterns, encodings and parsers.
ODD_STRINGS = [
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff\ud800", "\u202eevil", "e\u0301\u0301\u0301", "\ufeffbom", "🦆" * 40,
    "../../etc/passwd", "..", "%2e%2e%2f", "a/b", "\\", "${jndi:x}", "'; DROP TABLE functions; --", "\r\nX-Injected: 1",
    "arn:aws:lambda:us-east-1:000000000000:function:a:b:c:d", "arn:::::", "*", "$LATEST", "$latest", "-1",
    "\u0085\u2028\u2029", "null", "9" * 400,
]
ODD_NUMBERS = [-1, 0, -(2 ** 31) - 1, 2 ** 31, 2 ** 63, -(2 ** 63) - 1, 10 ** 40, 1.5, float("nan"), float("inf")]
#: Path segments as they go on the wire (already percent-encoded, or deliberately not).
ODD_SEGMENTS = [
    "..", ".", "%2e%2e", "%2E%2E%2F%2E%2E", "a%2Fb", "%00", "%ff%fe", "%", "%zz", "%25", "a%20b", "%F0%9F%A6%86",
    "%ED%A0%80", "x" * 7000, "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3A" + FUNCTION + "%3Aa%3Ab",
    "arn:aws:lambda:eu-west-1:111111111111:function:" + FUNCTION, FUNCTION + ":", ":" + FUNCTION, "%3A%3A%3A",
    FUNCTION + "%3A%24LATEST", "$LATEST", "-", "~",
]
DEEP = b"[" * 100_000 + b"]" * 100_000
RAW_BODIES: list[tuple[str, bytes, dict[str, str]]] = [
    ("random bytes", b"", {}),  # filled per operation from its seeded generator
    ("not json", b"{this is not json", {}),
    ("nested 100000 deep", DEEP, {}),
    ("nested object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {}),
    ("json array", b"[1, 2, 3]", {}),
    ("json string", b'"FunctionName"', {}),
    ("json null", b"null", {}),
    ("huge number", b'{"a": 1e999999, "b": -1e999999, "c": 123456789012345678901234567890}', {}),
    ("invalid utf-8", b'{"FunctionName": "\xff\xfe\xc3"}', {}),
    ("lone surrogate escape", b'{"FunctionName": "\\ud800", "logGroupName": "\\udfff", "Name": "\\ud800"}', {}),
    ("wrong content-type", b'{"FunctionName": "x"}', {"Content-Type": "text/plain; charset=utf-16"}),
    ("form content-type", b"FunctionName=x&Runtime=y", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("broken gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03broken", {"Content-Encoding": "gzip"}),
]

#: The API's own error shape, by service: (where the type is, the message member(s)).
Failure = tuple[str, str, str, str, int, str]


def timestamp_now() -> datetime.datetime:
    return datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


class Generator:
    """Values for shapes, valid-looking and bad, from one seeded generator per operation."""

    def __init__(self, service: str, rng: random.Random) -> None:
        self.service, self.rng = service, rng
        self.base: dict = {}
        self.rich: dict = {}

    # -- valid-looking ----------------------------------------------------------------------------
    def valid(self, shape: Shape, name: str = "", depth: int = 0, optional: float = 0.3) -> Any:
        known = KNOWN_IN.get((self.service, name), KNOWN.get(name))
        if known is not None and _fits(shape, known):
            return known
        kind, meta = shape.type_name, shape.metadata
        if kind == "structure":
            members = shape.members  # type: ignore[attr-defined]
            if meta.get("union"):
                first = sorted(members)[0]
                return {first: self.valid(members[first], first, depth + 1)}
            required = set(meta.get("required", ()))
            result = {}
            for member_name, member in members.items():
                if member.serialization.get("location") in ("header", "headers") and member_name not in required:
                    continue
                if member_name in required or (depth < 3 and self.rng.random() < optional):
                    result[member_name] = self.valid(member, member_name, depth + 1, optional)
            return result
        if kind == "list":
            return [] if depth > 4 else [self.valid(shape.member, name, depth + 1)]  # type: ignore[attr-defined]
        if kind == "map":
            return {"fuzz": self.valid(shape.value, "", depth + 1)}  # type: ignore[attr-defined]
        if kind == "string":
            enum = getattr(shape, "enum", None)
            if enum:
                return self.rng.choice(enum)
            low, high = meta.get("min", 1), meta.get("max", 64)
            for candidate in PATTERN_CANDIDATES:  # one that fits the pattern, if one does
                if low <= len(candidate) <= high and _matches(meta.get("pattern"), candidate):
                    return candidate
            return ("fuzz" * 8)[:max(min(high, 8), low)].ljust(low, "z")
        if kind in ("integer", "long"):
            return max(meta.get("min", 1), 1) if meta.get("max", 1) >= 1 else meta.get("min", 0)
        if kind in ("float", "double"):
            return 1.0
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "timestamp":
            return timestamp_now()
        if kind == "blob":
            return b'{"fuzz": 1}'
        return None

    # -- bad ----------------------------------------------------------------------------------------
    def wrong_type(self, shape: Shape) -> Any:
        kind = shape.type_name
        choices: list[Any] = {
            "structure": ["a string", [1, 2], 7, True],
            "list": ["a string", {"a": 1}, 7, [[[[]]]]],
            "map": [["a", "b"], "a string", 7, {"k": {"deep": [1]}}],
            "string": [12345, True, [], {"a": "b"}, 1.5],
            "integer": ["abc", "12", True, 1.5, [], {}], "long": ["abc", True, 2.5, [1]],
            "float": ["abc", [], True], "double": ["abc", {}, True],
            "boolean": ["yes", 1, "true", [], None],
            "timestamp": ["not a time", {}, [1], True, "2030-13-45T99:99:99Z"],
            "blob": [12345, ["x"], {"a": 1}],
        }.get(kind, [None])
        return self.rng.choice(choices)

    def broken(self, shape: Shape) -> Iterator[tuple[str, Any]]:
        """Values that break the shape's constraints (and odd ones that might not)."""
        kind, meta = shape.type_name, shape.metadata
        if kind == "string":
            high = meta.get("max")
            yield "too long", "x" * ((high + 1) if high else 70_000)
            if high:  # valid, and as long as it may be (a file name, a database column, a header)
                longest = next((c * high for c in "a/1" if _matches(meta.get("pattern"), c * high)), None)
                if longest:
                    yield "longest", longest
            yield "lone surrogate", self.rng.choice(["\ud800", "x\udfffx", "\udbff\udbff"])
            if meta.get("min", 0) > 1:
                yield "too short", "x" * (meta["min"] - 1)
            if getattr(shape, "enum", None):
                yield "outside the enum", self.rng.choice(["NOT_AN_ENUM", "", "python3.1\u0301", "PYTHON3.11"])
            yield "odd string", self.rng.choice(ODD_STRINGS)
        elif kind in ("integer", "long"):
            if "min" in meta:
                yield "below min", meta["min"] - 1
            if "max" in meta:
                yield "above max", meta["max"] + 1
            for odd in self.rng.sample(ODD_NUMBERS, 4):
                yield "odd number", odd
        elif kind in ("float", "double"):
            yield "odd number", self.rng.choice([float("nan"), float("inf"), -1e308, 10 ** 400])
        elif kind == "list":
            yield "empty list", []
            size = min((meta.get("max") or 999) + 1, 1000)
            yield "huge list", [self.valid(shape.member, "", 5)] * size  # type: ignore[attr-defined]
        elif kind == "map":
            yield "empty map", {}
            size = min((meta.get("max") or 999) + 1, 1000)
            yield "huge map", {f"k{i}\u00e9": "v" * 300 for i in range(size)}
            yield "odd keys", {"": "x", "\x00": "y", "a" * 5000: "z", "\ud800": None}
        elif kind == "structure":
            yield "empty structure", {}
            yield "unknown members", {"NoSuchMember": 1, "__proto__": {}, "": [None]}
        elif kind == "timestamp":
            for odd in (-1, 0, 10 ** 15, 253402300800, 2 ** 63, float("inf")):
                yield "odd timestamp", odd
        elif kind == "blob":
            yield "random blob", self.rng.randbytes(self.rng.choice([0, 1, 300, 70_000]))


#: Strings tried against a member's pattern for a valid-looking value.
PATTERN_CANDIDATES = [
    "fuzzfuzz", FUNCTION_ARN, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b2a8c4e-1f3d-4a5b-9c6d-7e8f9a0b1c2d",
    f"arn:aws:sqs:{REGION}:{ACCOUNT}:fuzz-queue", ROLE, "0b2a8c4e-1f3d-4a5b-9c6d-7e8f9a0b1c2d", "1", "a", "$LATEST",
    "fuzz-1", "000000000000", "s3.amazonaws.com", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}",
]


def _matches(pattern: str | None, value: str) -> bool:
    if pattern is None:
        return True
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False


def _fits(shape: Shape, value: Any) -> bool:
    kind = shape.type_name
    if kind == "string":
        return isinstance(value, str)
    if kind in ("integer", "long"):
        return isinstance(value, int)
    if kind == "blob":
        return isinstance(value, bytes)
    if kind == "structure":
        return isinstance(value, dict)
    return False


def _nodes(shape: Shape, value: Any, path: tuple) -> Iterator[tuple[tuple, Shape]]:
    """Every (path, shape) of a generated value, the value itself first."""
    yield path, shape
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, child in value.items():
            yield from _nodes(shape.members[name], child, path + (name,))  # type: ignore[attr-defined]
    elif shape.type_name == "list" and isinstance(value, list) and value:
        yield from _nodes(shape.member, value[0], path + (0,))  # type: ignore[attr-defined]


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)  # type: ignore[index]
    return copy


def _without(value: dict, path: tuple) -> dict:
    if len(path) == 1:
        return {k: v for k, v in value.items() if k != path[0]}
    copy = dict(value)
    copy[path[0]] = _without(copy[path[0]], path[1:]) if isinstance(copy[path[0]], dict) else copy[path[0]]
    return copy


def inputs(service: str, operation: OperationModel) -> Iterator[tuple[str, Any]]:
    """(label, parameters) for one operation: valid-looking first, then the bad ones."""
    rng = random.Random(f"{SEED}:{service}:{operation.name}")
    gen = Generator(service, rng)
    shape = operation.input_shape
    if shape is None:
        yield "no input", {}
        return
    yield from _valid_and_missing(gen, operation.name, shape)
    base, rich = gen.base, gen.rich
    bad = list(_bad(gen, shape, base, rich))
    yield from rng.sample(bad, min(len(bad), BUDGET))


def _valid_and_missing(gen: Generator, operation: str, shape: Shape) -> Iterator[tuple[str, Any]]:
    base = gen.valid(shape, optional=0)  # the required members only: what bad members are set in
    rich = gen.valid(shape, optional=0.5)
    yield "valid-looking", base
    yield "nothing", {}
    yield "valid-looking, with optional members", rich
    gen.base, gen.rich = base, rich
    fresh = FRESH.get(operation)
    if fresh:
        yield "valid-looking, a new resource", {**base, **fresh}
        yield "valid-looking, a new resource, with optional members", {**rich, **fresh}
    for name in shape.metadata.get("required", ()):
        yield f"missing required {name}", _without(base, (name,))


def _bad(gen: Generator, shape: Shape, base: dict, rich: dict) -> Iterator[tuple[str, Any]]:
    for name, member in shape.members.items():  # type: ignore[attr-defined]
        yield f"{name}: wrong type", {**base, name: gen.wrong_type(member)}
        yield f"{name}: null", {**base, name: None}
        for label, bad in gen.broken(member):
            yield f"{name}: {label}", {**base, name: bad}
    nested = [(path, node) for path, node in _nodes(shape, rich, ()) if len(path) > 1]
    for path, node in gen.rng.sample(nested, min(len(nested), 8)):
        where = ".".join(map(str, path))
        yield f"{where}: wrong type", _replace(rich, path, gen.wrong_type(node))
        for label, bad in list(gen.broken(node))[:2]:
            yield f"{where}: {label}", _replace(rich, path, bad)


# -- sending ----------------------------------------------------------------------------------------

class Fuzzer:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.failures: list[Failure] = []
        self.sent: dict[str, int] = {service: 0 for service in SERVICES}
        self.unsendable: dict[str, int] = {service: 0 for service in SERVICES}
        self.answered: dict[tuple[str, str], int] = {}
        self.parser_refusals = 0
        self.clients = {}
        for service in SERVICES:
            client = boto3.client(
                service, endpoint_url=server.url, region_name=REGION, aws_access_key_id="test",
                aws_secret_access_key="test",
                config=Config(parameter_validation=False, retries={"max_attempts": 0}, inject_host_prefix=False,
                              read_timeout=60, connect_timeout=10))
            client.meta.events.register("before-parse", self._capture)
            self.clients[service] = client
        self._last: dict | None = None

    def _capture(self, response_dict: dict, **_kwargs: Any) -> None:
        self._last = response_dict

    def check(self, service: str, operation: str, label: str, shown: str, status: int, headers: dict[str, str],
              body: bytes) -> None:
        self.sent[service] += 1
        self.answered[(service, operation)] = self.answered.get((service, operation), 0) + 1
        headers = {k.lower(): v for k, v in headers.items()}
        if status == 400 and "x-amzn-requestid" not in headers and headers.get("content-type", "").startswith(
                "text/plain"):
            # aiohttp's HTTP parser refused the request before any API saw it (a request line or
            # header past 8190 bytes, a control character in a header): one INFO line in the log
            # (test_hostile_requests.py), and no API to answer in the shape of.
            self.parser_refusals += 1
            return
        problem = _problem(service, status, headers, body)
        if problem:
            self.failures.append((service, operation, label, shown[:300], status, f"{problem}: {body[:300]!r}"))

    def call(self, service: str, operation: str, label: str, params: Any) -> tuple[int, dict, bytes] | None:
        """One request through botocore; None when botocore cannot serialise it."""
        self._last = None
        try:
            self.clients[service]._make_api_call(operation, params)
        except Exception:  # noqa: BLE001 - a 4xx raises ClientError; an unserialisable input never left
            pass
        if self._last is None:
            self.unsendable[service] += 1
            return None
        status, headers, body = self._last["status_code"], dict(self._last["headers"]), self._last["body"]
        if not isinstance(body, bytes):
            body = b""  # a streamed success (Invoke's payload): its status is what is checked
        self.check(service, operation, label, _shown(params), status, headers, body)
        return status, headers, body

    def raw(self, service: str, operation: str, label: str, method: str, path: str, headers: dict[str, str],
            body: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            status, answer_headers, answer = response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()
        self.check(service, operation, label, f"{method} {path[:200]} {headers} {body[:100]!r}", status,
                   answer_headers, answer)


def _shown(params: Any) -> str:
    def short(value: Any) -> Any:
        if isinstance(value, (str, bytes)) and len(value) > 60:
            return f"{value[:40]!r}...({len(value)})"
        if isinstance(value, list) and len(value) > 5:
            return [short(v) for v in value[:3]] + [f"...({len(value)} items)"]
        if isinstance(value, dict):
            items = list(value.items())
            shown = {str(k)[:60]: short(v) for k, v in items[:8]}
            if len(items) > 8:
                shown["..."] = f"{len(items)} entries"
            return shown
        return value
    return repr(short(params))


def _problem(service: str, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """What is wrong with one answer, or None."""
    if status >= 500:
        return f"{status}"
    if status < 400:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return "a 4xx whose body is not JSON"
    if not isinstance(data, dict):
        return "a 4xx whose body is not a JSON object"
    message = data.get("message", data.get("Message"))
    if not isinstance(message, str):
        return "a 4xx without a message"
    if service == "logs" and not isinstance(data.get("__type"), str):
        return "a Logs 4xx without __type"
    if service != "logs" and not headers.get("x-amzn-errortype"):
        return "a 4xx without x-amzn-ErrorType"
    return None


def _request_line(client: Any, operation: OperationModel, params: Any) -> tuple[str, str, dict[str, str]] | None:
    """Method, path and headers of `params` serialised by botocore (to reuse with other bodies)."""
    try:
        request = client._serializer.serialize_to_request(params, operation)
    except Exception:  # noqa: BLE001
        return None
    query = urllib.parse.urlencode(request.get("query_string") or {}, doseq=True)
    path = request["url_path"] + (("&" if "?" in request["url_path"] else "?") + query if query else "")
    headers = {k: v for k, v in request["headers"].items() if isinstance(v, str)}
    headers.setdefault("Content-Type", "application/json" if operation.service_model.protocol == "rest-json"
                       else "application/x-amz-json-1.1")
    return request["method"], path, headers


def fuzz_operation(fuzzer: Fuzzer, service: str, operation: OperationModel) -> None:
    client = fuzzer.clients[service]
    served = True
    valid: Any = {}
    for index, (label, params) in enumerate(inputs(service, operation)):
        if index == 0:
            valid = params
        answer = fuzzer.call(service, operation.name, label, params)
        if index == 0 and answer is not None and b"UnknownOperationException" in (
                answer[2] + answer[1].get("x-amzn-ErrorType", "").encode()):
            served = False  # a few bad inputs still; the rest would only repeat the 4xx
        if not served and index >= 3:
            break
    line = _request_line(client, operation, valid)
    if line is None:
        return
    method, path, headers = line
    rng = random.Random(f"{SEED}:{service}:{operation.name}:raw")
    bodies = RAW_BODIES if served else RAW_BODIES[1:2]
    for label, body, extra in bodies:
        if label == "random bytes":
            body = rng.randbytes(rng.choice([1, 64, 4096]))
        fuzzer.raw(service, operation.name, f"raw: {label}", method, path, {**headers, **extra}, body)
    if not served:
        return
    # Path parameters as botocore would never send them.
    labels = [name for name, member in operation.input_shape.members.items()  # type: ignore[union-attr]
              if member.serialization.get("location") == "uri"] if operation.input_shape else []
    template = operation.http.get("requestUri", "/").split("?")[0]
    for name in labels:
        for segment in rng.sample(ODD_SEGMENTS, 6):
            odd_path = _fill(template, valid, name, segment)
            fuzzer.raw(service, operation.name, f"path {name}={segment[:40]}", method, odd_path, headers, b"")
        odd = {**valid, name: rng.choice(ODD_STRINGS[1:]) + rng.choice(["", "/..", ":$LATEST", "x" * 3000])}
        fuzzer.call(service, operation.name, f"{name}: odd, botocore-encoded", odd)


def _fill(template: str, valid: dict, odd_name: str, odd_segment: str) -> str:
    def value(name: str) -> str:
        bare = name.rstrip("+")
        if bare == odd_name:
            return odd_segment
        return urllib.parse.quote(str(valid.get(bare, "x")), safe="")
    return re.sub(r"{([^}]+)}", lambda m: value(m.group(1)), template)


# -- the test ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    # Anything the server would ask of AWS (S3 code, queues, destinations) is refused at once.
    closed = f"http://127.0.0.1:{free_port()}"
    server = Server(tmp_path_factory.mktemp("fuzz") / "data",
                    extra_env={"AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"})
    server.start()
    yield server
    server.stop()


def make_resources(server: Server) -> None:
    lam, scheduler = server.client("lambda"), server.client("scheduler")
    lam.create_function(FunctionName=FUNCTION, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": ECHO})
    lam.invoke(FunctionName=FUNCTION, Payload=b"{}")  # a log group and a stream for the Logs operations
    version = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(FunctionName=FUNCTION, Name=ALIAS, FunctionVersion=version)
    lam.add_permission(FunctionName=FUNCTION, StatementId="fuzz-sid", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com")
    lam.create_function_url_config(FunctionName=FUNCTION, AuthType="NONE")
    lam.publish_layer_version(LayerName=LAYER, Content={"ZipFile": make_zip({"python/fuzz.py": "X = 1\n"})})
    scheduler.create_schedule_group(Name=GROUP)
    scheduler.create_schedule(Name=SCHEDULE, ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
                              Target={"Arn": FUNCTION_ARN, "RoleArn": ROLE})


DESTRUCTIVE = ("Delete", "Remove", "Untag", "Disassociate")
#: Deleting these takes the rest with them: they go last of all.
ROOTS = ("DeleteFunction", "DeleteLayerVersion", "DeleteScheduleGroup", "DeleteLogGroup")


def operations(service: str) -> list[OperationModel]:
    """Every operation of the model; the ones that delete last, so the rest find the resources."""
    model = boto3.session.Session().client(service, region_name=REGION).meta.service_model
    names = sorted(model.operation_names, key=lambda name: (name.startswith(DESTRUCTIVE), name in ROOTS, name))
    return [model.operation_model(name) for name in names]


def test_every_operation_with_generated_bad_input(fuzz_server):
    make_resources(fuzz_server)
    fuzzer = Fuzzer(fuzz_server)
    started = time.monotonic()
    for service in SERVICES:
        for operation in operations(service):
            fuzz_operation(fuzzer, service, operation)
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # the log handler writes as it goes; give the last lines a moment
    log = fuzz_server.log_text()
    bad_lines = [line for line in log.splitlines() if " ERROR " in line or line.startswith("Traceback")]
    silent = [f"{service}.{op.name}" for service in SERVICES for op in operations(service)
              if not fuzzer.answered.get((service, op.name))]
    summary = (f"{sum(fuzzer.sent.values())} requests in {elapsed:.1f} s: "
               + ", ".join(f"{s} {fuzzer.sent[s]} (+{fuzzer.unsendable[s]} botocore could not serialise)"
                           for s in SERVICES) + f"; {fuzzer.parser_refusals} refused by the HTTP parser")
    print(summary)
    report = [f"{service}.{op} [{label}] {shown}\n    -> {status} {body}"
              for service, op, label, shown, status, body in fuzzer.failures]
    assert not report and not bad_lines and not silent, "\n".join(
        [summary, f"{len(report)} bad answers:", *report[:300],
         f"operations never answered: {silent}", f"{len(bad_lines)} ERROR/traceback lines in the server log:",
         *bad_lines[:50]])

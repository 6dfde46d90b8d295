"""Requests no client library would send, answered as client mistakes (4xx in the API's own error
shape), never a 500, and never a traceback in the server's log: bodies nested deeper than a JSON
parser goes, broken compressed bodies, oversized bodies, request lines that never end."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time

import pytest

from conftest import Server, make_zip

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
LOGS = {"X-Amz-Target": "Logs_20140328.DescribeLogGroups", "Content-Type": "application/x-amz-json-1.1"}


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("hostile") / "data")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("path, headers, error_type", [
    ("/2015-03-31/functions", {"Content-Type": "application/json"}, "InvalidRequestContentException"),
    ("/2015-03-31/functions/any/invocations", {}, None),  # 404 or 400: never a 500
    ("/2015-03-31/event-source-mappings", {"Content-Type": "application/json"}, "InvalidRequestContentException"),
    ("/", LOGS, "SerializationException"),
])
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_beyond_the_parser(hostile_server, path, headers, error_type, body):
    status, response_headers, answer = post(hostile_server.port, path, body, headers)
    assert 400 <= status < 500, (status, answer[:300])
    if error_type is not None:
        assert error_type in (response_headers.get("x-amzn-errortype", "") + answer.decode()), answer[:300]


def test_an_invoke_payload_nested_beyond_the_parser(hostile_server):
    lam = hostile_server.client()
    lam.create_function(FunctionName="deep", Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/r",
                        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return 1\n"})})
    status, headers, answer = post(hostile_server.port, "/2015-03-31/functions/deep/invocations", DEEP_ARRAY, {})
    assert status == 400 and headers["x-amzn-errortype"] == "InvalidRequestContentException", answer[:300]


@pytest.mark.parametrize("path, headers, error_type", [
    ("/2015-03-31/functions", {}, "InvalidRequestContentException"),
    ("/", LOGS, "SerializationException"),
])
def test_a_broken_gzip_body(hostile_server, path, headers, error_type):
    whole = gzip.compress(json.dumps({"FunctionName": "x" * 1000}).encode())
    for broken in (whole[:-4] + b"xxxx", whole[: len(whole) // 2] + b"\x00" * 64, b"\x1f\x8b\x08\x00not gzip at all"):
        status, response_headers, answer = post(hostile_server.port, path, broken, {**headers, "Content-Encoding": "gzip"})
        assert status == 400, (status, answer[:300])
        assert error_type in (response_headers.get("x-amzn-errortype", "") + answer.decode()), answer[:300]


def test_an_oversized_logs_body_is_413(hostile_server):
    status, _headers, answer = post(hostile_server.port, "/", b"x" * (80 * 1024 * 1024), LOGS)
    assert status == 413, answer[:300]
    assert json.loads(answer)["__type"] == "SerializationException"


def test_client_errors_aiohttp_answers_itself_are_one_log_line(hostile_server):
    with socket.create_connection(("127.0.0.1", hostile_server.port), timeout=30) as sock:
        sock.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.")  # 400 Bad Request, from aiohttp's parser
    status, _headers, _answer = post(hostile_server.port, "/2015-03-31/functions", b"x", {"Content-Encoding": "br"})
    assert status == 400
    # wait for the lines to reach the log file, not for a fixed time
    deadline = time.monotonic() + 30
    while "Can not decode content-encoding: br" not in hostile_server.log_path.read_text():
        assert time.monotonic() < deadline, "the server never logged the bad requests"
        time.sleep(0.05)
    log = hostile_server.log_path.read_text()
    assert "bad request from a client: 400" in log
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]

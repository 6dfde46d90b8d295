"""Response streaming: InvokeWithResponseStream through boto3 (botocore checks every frame's CRCs),
a custom runtime streaming a chunked /response with error trailers, function URLs in
RESPONSE_STREAM mode read as they arrive, AWS's limits, and a slow client's back-pressure."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.eventstream import EventStreamBuffer

from conftest import Server

DATA = Path(__file__).parent / "data"
STREAMING_BOOTSTRAP = (DATA / "stream_bootstrap.py").read_text()


def system_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate):
            return os.path.realpath(candidate)
    raise AssertionError("these tests need a system python3 under /usr (Debian's python3 package)")


def streaming_function(create_function, **kwargs) -> str:
    files = {"bootstrap": f'#!/bin/sh\nexec {system_python()} "$LAMBDA_TASK_ROOT/stream_bootstrap.py"\n',
             "stream_bootstrap.py": STREAMING_BOOTSTRAP}
    params = dict(Runtime="provided.al2023", Handler="stream", Timeout=30)
    params.update(kwargs)
    return create_function(files=files, modes={"bootstrap": 0o755}, **params)["FunctionName"]


def events(resp) -> list[dict]:
    return list(resp["EventStream"])


def payload_of(evs: list[dict]) -> bytes:
    return b"".join(e["PayloadChunk"]["Payload"] for e in evs if "PayloadChunk" in e)


class Signal:
    """A listener the function connects to: it waits on it for the test's go-ahead, or reports progress."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 30) -> socket.socket:
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def test_a_buffered_function_answers_one_payload_chunk(lambda_client, create_function):
    name = create_function("def handler(event, context):\n    print('hi there')\n    return {'got': event}\n")[
        "FunctionName"]
    resp = lambda_client.invoke_with_response_stream(FunctionName=name, Payload=b'{"a": 1}', LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    evs = events(resp)
    assert [list(e) for e in evs] == [["PayloadChunk"], ["InvokeComplete"]]
    assert json.loads(evs[0]["PayloadChunk"]["Payload"]) == {"got": {"a": 1}}
    complete = evs[1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    assert "hi there" in base64.b64decode(complete["LogResult"]).decode()


def test_a_buffered_function_error_is_in_invoke_complete(lambda_client, create_function):
    name = create_function("def handler(event, context):\n    raise ValueError('nope')\n")["FunctionName"]
    evs = events(lambda_client.invoke_with_response_stream(FunctionName=name))
    assert [list(e) for e in evs] == [["InvokeComplete"]]
    assert evs[0]["InvokeComplete"]["ErrorCode"] == "ValueError"
    assert evs[0]["InvokeComplete"]["ErrorDetails"] == "nope"


def test_dry_run_and_invocation_types(lambda_client, create_function):
    name = create_function()["FunctionName"]
    resp = lambda_client.invoke_with_response_stream(FunctionName=name, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke_with_response_stream(FunctionName=name + "-missing")


def test_a_custom_runtime_streams_chunks(lambda_client, create_function):
    name = streaming_function(create_function)
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": ["one ", "two ", "three"]}))
    evs = events(resp)
    assert payload_of(evs) == b"one two three"
    assert list(evs[-1]) == ["InvokeComplete"] and "ErrorCode" not in evs[-1]["InvokeComplete"]
    # the same function through the buffered Invoke: the stream, whole
    whole = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"chunks": ["a", "b", "c"]}))
    assert whole["Payload"].read() == b"abc" and "FunctionError" not in whole


def test_error_trailers_end_the_stream_with_an_error(lambda_client, create_function):
    name = streaming_function(create_function)
    error = {"type": "Oops", "body": {"errorType": "Oops", "errorMessage": "went wrong mid-stream"}}
    evs = events(lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": ["partial"], "error": error})))
    assert payload_of(evs) == b"partial"
    assert evs[-1]["InvokeComplete"]["ErrorCode"] == "Oops"
    assert evs[-1]["InvokeComplete"]["ErrorDetails"] == "went wrong mid-stream"
    whole = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"chunks": ["p"], "error": error}))
    assert whole["FunctionError"] == "Unhandled"
    assert json.loads(whole["Payload"].read())["errorMessage"] == "went wrong mid-stream"


def test_the_first_chunk_arrives_before_the_function_finishes(lambda_client, create_function):
    name = streaming_function(create_function)
    signal = Signal()
    try:
        resp = lambda_client.invoke_with_response_stream(
            FunctionName=name, Payload=json.dumps({"chunks": ["first", "second"], "signal_port": signal.port}))
        stream = iter(resp["EventStream"])
        first = next(stream)  # the function is waiting for the signal: only the stream can have sent this
        assert first == {"PayloadChunk": {"Payload": b"first"}}
        signal.accept().sendall(b"go")
        rest = list(stream)
        assert payload_of(rest) == b"second"
    finally:
        signal.close()


def test_a_timeout_mid_stream(lambda_client, create_function):
    name = streaming_function(create_function, Timeout=2)
    evs = events(lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": ["before"], "hang": True})))
    assert payload_of(evs) == b"before"
    assert evs[-1]["InvokeComplete"]["ErrorCode"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in evs[-1]["InvokeComplete"]["ErrorDetails"]
    # the environment was reset: the next invoke streams again
    assert payload_of(events(lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": ["again"]})))) == b"again"


def test_an_unknown_response_mode_is_refused_to_the_runtime(lambda_client, create_function):
    name = streaming_function(create_function)
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"chunks": ["x"], "mode": "buffered"}))
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read()) == {"errorMessage": "Invalid function response mode: buffered",
                                                  "errorType": "InvalidFunctionResponseMode"}


def test_a_crash_mid_stream(lambda_client, create_function):
    name = streaming_function(create_function)
    evs = events(lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": ["partial"], "crash": True})))
    assert payload_of(evs) == b"partial"
    assert evs[-1]["InvokeComplete"]["ErrorCode"] == "Runtime.ExitError"
    assert "exit status 3" in evs[-1]["InvokeComplete"]["ErrorDetails"]


# -- Node.js: awslambda.streamifyResponse and HttpResponseStream.from -----------------------------

NODE_STREAMING = """\
const net = require('net');
exports.handler = awslambda.streamifyResponse(async (input, responseStream, context) => {
  const event = input.body ? JSON.parse(input.body) : input;  // a URL's event carries it as its body
  if (event.url) {
    responseStream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201, headers: {'Content-Type': 'text/plain', 'X-Custom': 'yes'}, cookies: ['a=1', 'b=2']});
  }
  responseStream.write('Hello,');
  if (event.signal_port) {  // wait for the test's go-ahead: it has the first bytes by then
    await new Promise((resolve) => {
      const s = net.connect(event.signal_port, '127.0.0.1');
      s.once('data', () => { s.destroy(); resolve(); });
    });
  }
  if (event.fail) throw new TypeError('broke mid-stream');
  responseStream.write(' world!');
  responseStream.end();
});
"""


def node_streaming_function(create_function) -> str:
    from .helpers import host_node
    _node, runtime = host_node()
    return create_function(files={"index.js": NODE_STREAMING}, Runtime=runtime, Handler="index.handler",
                           Timeout=30)["FunctionName"]


def test_node_streamify_response(lambda_client, create_function):
    name = node_streaming_function(create_function)
    evs = events(lambda_client.invoke_with_response_stream(FunctionName=name, Payload=b"{}"))
    assert payload_of(evs) == b"Hello, world!"
    assert "ErrorCode" not in evs[-1]["InvokeComplete"]
    evs = events(lambda_client.invoke_with_response_stream(FunctionName=name, Payload=b'{"fail": true}'))
    assert payload_of(evs) == b"Hello,"
    assert evs[-1]["InvokeComplete"]["ErrorCode"] == "TypeError"
    assert evs[-1]["InvokeComplete"]["ErrorDetails"] == "broke mid-stream"
    # buffered Invoke of a streaming handler: the whole stream
    assert lambda_client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read() == b"Hello, world!"


# -- function URLs in RESPONSE_STREAM mode ----------------------------------------------------------

def _url(lambda_client, name: str) -> str:
    return lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE",
                                                    InvokeMode="RESPONSE_STREAM")["FunctionUrl"]


def test_streaming_url_sends_the_prelude_and_the_first_bytes_before_the_end(lambda_client, create_function):
    import http.client
    from urllib.parse import urlsplit
    name = node_streaming_function(create_function)
    url = _url(lambda_client, name)
    assert lambda_client.get_function_url_config(FunctionName=name)["InvokeMode"] == "RESPONSE_STREAM"
    signal = Signal()
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(url).port, timeout=60)
    try:
        conn.request("POST", "/", body=json.dumps({"url": True, "signal_port": signal.port}),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 201
        assert reply.getheader("Content-Type") == "text/plain" and reply.getheader("X-Custom") == "yes"
        assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert reply.getheader("Transfer-Encoding") == "chunked"
        assert reply.read1(65536) == b"Hello,"  # the function waits for the signal: the stream sent this
        signal.accept().sendall(b"go")
        assert reply.read() == b" world!"
    finally:
        conn.close()
        signal.close()


def test_streaming_url_of_a_buffered_function_and_of_plain_bytes(lambda_client, create_function):
    buffered = create_function("def handler(event, context):\n"
                               "    return {'statusCode': 202, 'body': 'buffered', 'headers': {'X-A': 'b'}}\n")
    reply = urllib.request.urlopen(_url(lambda_client, buffered["FunctionName"]), timeout=60)
    assert reply.status == 202 and reply.read() == b"buffered" and reply.headers["X-A"] == "b"
    name = streaming_function(create_function)
    url = _url(lambda_client, name)
    req = urllib.request.Request(url, data=json.dumps({"chunks": ["plain ", "bytes"],
                                                       "content_type": "text/csv"}).encode())
    reply = urllib.request.urlopen(req, timeout=60)
    assert reply.status == 200 and reply.headers["Content-Type"] == "text/csv" and reply.read() == b"plain bytes"
    req = urllib.request.Request(url, data=json.dumps({"prelude": {"statusCode": 404, "headers": {"X-B": "c"}},
                                                       "chunks": ["not here"]}).encode())
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(req, timeout=60)
    assert error.value.code == 404 and error.value.read() == b"not here" and error.value.headers["X-B"] == "c"


# -- AWS's limits and back-pressure, on servers of their own settings -------------------------------

@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("stream-limit") / "data", args=["--stream-response-limit-mb", "1"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def large_limit_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("stream-large") / "data",
                    args=["--stream-response-limit-mb", "200", "--stream-bandwidth-mib-per-s", "0"])
    server.start()
    yield server
    server.stop()


def _create_on(server: Server, name: str, timeout: int = 60) -> None:
    from conftest import ROLE, make_zip
    files = {"bootstrap": f'#!/bin/sh\nexec {system_python()} "$LAMBDA_TASK_ROOT/stream_bootstrap.py"\n',
             "stream_bootstrap.py": STREAMING_BOOTSTRAP}
    server.client().create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="stream",
                                    Timeout=timeout, Code={"ZipFile": make_zip(files, {"bootstrap": 0o755})})


def test_past_the_size_limit_the_stream_ends_with_an_error(small_limit_server):
    _create_on(small_limit_server, "too-big")
    client = small_limit_server.client()
    evs = events(client.invoke_with_response_stream(
        FunctionName="too-big", Payload=json.dumps({"repeat": {"size": 65536, "count": 32}})))
    assert len(payload_of(evs)) <= 1024 * 1024
    assert evs[-1]["InvokeComplete"]["ErrorCode"] == "Function.ResponseSizeTooLarge"
    # the runtime was answered and goes on: the next stream is whole
    assert payload_of(events(client.invoke_with_response_stream(
        FunctionName="too-big", Payload=json.dumps({"chunks": ["fits"]})))) == b"fits"


def _read_chunked_body(sock: socket.socket) -> bytes:
    """The de-chunked body of the one HTTP response on `sock` (its head included in what is read)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), head
    body = bytearray()
    buf = rest
    while True:
        while b"\r\n" not in buf:
            buf += sock.recv(1 << 20)
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(body)
        while len(buf) < size + 2:
            buf += sock.recv(1 << 20)
        body += buf[:size]
        buf = buf[size + 2:]


def test_a_slow_client_makes_the_function_wait(large_limit_server):
    """The client reads nothing for a while: the function's writes stop well short of the whole
    (the server buffers a bounded amount), then everything arrives once the client reads."""
    import select
    _create_on(large_limit_server, "slow-reader")
    total = 40 * 1024 * 1024
    signal = Signal()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no autotuning: the kernel holds little
    client.connect(("127.0.0.1", large_limit_server.port))
    try:
        payload = json.dumps({"repeat": {"size": 65536, "count": total // 65536}, "signal_port": signal.port}).encode()
        client.sendall(b"POST /2021-11-15/functions/slow-reader/response-streaming-invocations HTTP/1.1\r\n"
                       b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        progress = signal.accept()
        reported, pending = 0, b""
        while True:  # until the function's progress stops: it is blocked in a write
            readable, _, _ = select.select([progress], [], [], 2.0)
            if not readable:
                break
            pending += progress.recv(65536)
            *lines, pending = pending.split(b"\n")
            for line in lines:
                assert line != b"done", "the function finished while the client read nothing"
                reported = int(line)
        assert 0 < reported < total // 2, reported
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # now read it all, quickly
        messages = EventStreamBuffer()
        messages.add_data(_read_chunked_body(client))
        decoded = list(messages)
        streamed = sum(len(m.payload) for m in decoded if m.headers[":event-type"] == "PayloadChunk")
        assert streamed == total
        assert json.loads(decoded[-1].payload) == {}
    finally:
        client.close()
        signal.close()


# -- the JS SDK's streaming client ------------------------------------------------------------------

JS_CLIENT = """\
const { LambdaClient, InvokeWithResponseStreamCommand } = require('@aws-sdk/client-lambda');
(async () => {
  const client = new LambdaClient({ endpoint: process.argv[2], region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const resp = await client.send(new InvokeWithResponseStreamCommand({
    FunctionName: process.argv[3], Payload: Buffer.from(process.argv[4]), LogType: 'Tail' }));
  const out = { status: resp.StatusCode, version: resp.ExecutedVersion, chunks: [], complete: null };
  for await (const event of resp.EventStream) {
    if (event.PayloadChunk) out.chunks.push(Buffer.from(event.PayloadChunk.Payload).toString());
    if (event.InvokeComplete) out.complete = event.InvokeComplete;
  }
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
"""


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    """@aws-sdk/client-lambda from npm, installed once into .cache/."""
    import shutil
    from conftest import REPO_ROOT
    cache = REPO_ROOT / ".cache" / "aws-sdk-client-lambda"
    if not (cache / "node_modules" / "@aws-sdk" / "client-lambda" / "package.json").is_file():
        assert shutil.which("npm"), "the JS SDK test needs npm: apt-get install npm"
        staging = cache.with_name(cache.name + ".build")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_text('{"private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "@aws-sdk/client-lambda"], cwd=staging,
                       check=True, timeout=900, capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
    (cache / "stream_client.js").write_text(JS_CLIENT)
    return cache


@pytest.mark.timeout(900)
def test_the_js_sdk_reads_the_stream(server, create_function, js_sdk):
    from .helpers import host_node
    node, _runtime = host_node()
    name = streaming_function(create_function)
    error = {"type": "Oops", "body": {"errorType": "Oops", "errorMessage": "late failure"}}
    for event, chunks, code in ((({"chunks": ["a", "bc", "def"]}), ["a", "bc", "def"], None),
                                ({"chunks": ["x"], "error": error}, ["x"], "Oops")):
        run = subprocess.run([node, str(js_sdk / "stream_client.js"), server.url, name, json.dumps(event)],
                             capture_output=True, text=True, timeout=120, cwd=js_sdk)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["status"] == 200 and out["version"] == "$LATEST"
        assert "".join(out["chunks"]) == "".join(chunks)  # the SDK verified each frame's CRCs
        assert out["complete"].get("ErrorCode") == code
        assert out["complete"]["LogResult"]


def test_a_client_that_leaves_mid_stream(lambda_client, create_function, server):
    """The function runs on to its end (its bytes dropped), the environment serves the next
    invoke, and the server logs no error for the write that found the client gone."""
    from urllib.parse import urlsplit
    name = streaming_function(create_function)
    port = urlsplit(_url(lambda_client, name)).port
    signal = Signal()
    client = socket.create_connection(("127.0.0.1", port))
    try:
        body = json.dumps({"chunks": ["first", "second", "third"], "signal_port": signal.port}).encode()
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body) + body)
        received = b""
        while b"first" not in received:
            received += client.recv(65536)
        client.close()
        signal.accept().sendall(b"go")
    finally:
        signal.close()
    assert payload_of(events(lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": ["next"]})))) == b"next"
    assert "unexpected error" not in server.log_text()

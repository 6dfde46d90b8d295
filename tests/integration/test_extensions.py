"""Extensions API and Telemetry API: external extensions from a layer's /opt/extensions (a shell
script and a Python program, as AWS's samples write them), internal ones registered by the runtime
process, and the lifecycle AWS documents (init waits for them, INVOKE per invocation, SHUTDOWN
when the environment is retired).
"""

from __future__ import annotations

import json

import pytest

from conftest import make_zip

from .helpers import environment_counts, host_node, wait_for_function_log, wait_until

#: AWS's sample extension, in shell: registers (after a pause init must wait for), writes a
#: file the handler reads, counts INVOKE events and says what SHUTDOWN brought.
SHELL_EXTENSION = r"""#!/bin/sh
set -eu
NAME=$(basename "$0")
BASE="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
HEADERS="${TMPDIR:-/tmp}/$NAME.headers"
sleep 0.3
curl -sS -D "$HEADERS" -o /dev/null -XPOST "$BASE/register" -H "Lambda-Extension-Name: $NAME" \
     -d '{"events": ["INVOKE", "SHUTDOWN"]}'
ID=$(grep -i '^Lambda-Extension-Identifier:' "$HEADERS" | cut -d: -f2 | tr -d '[:space:]')
echo ready > "${TMPDIR:-/tmp}/$NAME.state"
COUNT=0
while true; do
    EVENT=$(curl -sS "$BASE/event/next" -H "Lambda-Extension-Identifier: $ID")
    case "$EVENT" in
        *'"SHUTDOWN"'*) echo "[$NAME] SHUTDOWN after $COUNT invokes: $EVENT"; exit 0 ;;
        *'"INVOKE"'*) COUNT=$((COUNT + 1)); echo "[$NAME] INVOKE $COUNT: $EVENT" ;;
    esac
done
"""


def shell_extension(name: str, events: str, then: str) -> str:
    """A shell extension as AWS's samples write one: it registers as `name` for `events` (a JSON
    list), keeps its identifier in $ID and the API's base URL in $BASE, then runs `then`."""
    return (
        "#!/bin/sh\n"
        'BASE="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"\n'
        f'HEADERS="${{TMPDIR:-/tmp}}/{name}.headers"\n'
        f'curl -sS -D "$HEADERS" -o /dev/null -XPOST "$BASE/register" -H "Lambda-Extension-Name: {name}" '
        f"-d '{{\"events\": {events}}}'\n"
        "ID=$(grep -i '^Lambda-Extension-Identifier:' \"$HEADERS\" | cut -d: -f2 | tr -d '[:space:]')\n"
        + then)


STATE_HANDLER = """
import os

def handler(event, context):
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "counter.state")
    with open(path) as f:
        return {"extension": f.read().strip()}
"""


def _extension_layer(publish, files: dict[str, str], name: str) -> str:
    modes = {path: 0o755 for path in files}
    return publish(files, name=name, modes=modes)["LayerVersionArn"]


@pytest.fixture
def publish_layer(lambda_client, unique_name):
    published: list[tuple[str, int]] = []

    def _publish(files: dict[str, str], *, name: str, modes: dict[str, int]) -> dict:
        resp = lambda_client.publish_layer_version(LayerName=f"{unique_name}-{name}",
                                                   Content={"ZipFile": make_zip(files, modes)})
        published.append((f"{unique_name}-{name}", resp["Version"]))
        return resp

    yield _publish
    for layer_name, version in published:
        lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=version)


def test_a_shell_extension_is_waited_for_gets_every_invoke_and_shutdown_when_retired(
        server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/counter": SHELL_EXTENSION}, "counter")
    name = create_function(STATE_HANDLER, Layers=[layer])["FunctionName"]
    for _ in range(2):
        resp = lambda_client.invoke(FunctionName=name)
        assert "FunctionError" not in resp
        assert json.loads(resp["Payload"].read()) == {"extension": "ready"}  # init waited for its registration
        # The caller has its answer at once; the environment is free again once the extension
        # asked for its next event (until then, an invoke would start another environment).
        wait_until(lambda: environment_counts(server, name) == {"idle": 1, "busy": 0, "starting": 0},
                   what="the environment to be idle again")

    logs = wait_for_function_log(server, name, "[counter] INVOKE 2")
    assert "EXTENSION\tName: counter\tState: Ready\tEvents: [INVOKE, SHUTDOWN]" in logs
    assert logs.index("EXTENSION\tName: counter") < logs.index("START RequestId")
    first_invoke = json.loads(logs.split("[counter] INVOKE 1: ", 1)[1].split("\n", 1)[0])
    assert first_invoke["eventType"] == "INVOKE"
    assert first_invoke["invokedFunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert first_invoke["tracing"]["type"] == "X-Amzn-Trace-Id" and first_invoke["tracing"]["value"].startswith("Root=")
    assert set(first_invoke) == {"eventType", "deadlineMs", "requestId", "invokedFunctionArn", "tracing"}

    lambda_client.update_function_configuration(FunctionName=name, Description="retires the environment")
    logs = wait_for_function_log(server, name, "[counter] SHUTDOWN after 2 invokes")
    shutdown = json.loads(logs.split("[counter] SHUTDOWN after 2 invokes: ", 1)[1].split("\n", 1)[0])
    assert shutdown["eventType"] == "SHUTDOWN" and shutdown["shutdownReason"] == "spindown"
    assert isinstance(shutdown["deadlineMs"], int)


def test_a_timed_out_environment_tells_its_extensions_why(server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/counter": SHELL_EXTENSION}, "counter-timeout")
    name = create_function("import time\n\ndef handler(event, context):\n    time.sleep(30)\n",
                           Layers=[layer], Timeout=1)["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name)
    assert json.loads(resp["Payload"].read())["errorType"] == "Sandbox.Timedout"
    logs = wait_for_function_log(server, name, "[counter] SHUTDOWN after 1 invokes")
    shutdown = json.loads(logs.split("[counter] SHUTDOWN after 1 invokes: ", 1)[1].split("\n", 1)[0])
    assert shutdown["shutdownReason"] == "timeout"


#: What the Python extensions below share: their name, the Runtime API, the file they keep what
#: they received in, and a call to the API.
EXTENSION_PROLOGUE = r"""
NAME = os.path.basename(__file__)
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
RECEIVED = os.path.join(os.environ.get("TMPDIR", "/tmp"), "telemetry.jsonl")


def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(API + path, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request) as answer:
        return answer.headers, answer.read()
"""


#: Where Lambda delivers telemetry or logs to an HTTP extension below: appended to RECEIVED.
HTTP_LISTENER = r"""
class Listener(BaseHTTPRequestHandler):
    def do_POST(self):
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(RECEIVED, "a") as f:
            for event in batch:
                f.write(json.dumps(event) + "\n")
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST  # the Logs API may be asked to PUT

    def log_message(self, *args):
        pass


listener = HTTPServer(("127.0.0.1", 0), Listener)
threading.Thread(target=listener.serve_forever, daemon=True).start()
"""


#: A Python extension that subscribes to the Telemetry API and serves what it received, on a port
#: given by its layer's config file, to the test (through the handler: the function returns it).
PYTHON_EXTENSION = r"""#!/usr/bin/env python3
import json, os, sys, threading, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
""" + EXTENSION_PROLOGUE + r"""

""" + HTTP_LISTENER + r"""headers, body = call("POST", "/2020-01-01/extension/register", {"events": ["INVOKE"]},
                     {"Lambda-Extension-Name": NAME, "Lambda-Extension-Accept-Feature": "accountId"})
ext_id = headers["Lambda-Extension-Identifier"]
print(f"[{NAME}] registered: {body.decode()}", flush=True)
call("PUT", "/2022-07-01/telemetry", {
    "schemaVersion": "2022-12-13", "types": ["platform", "function"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
    "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{listener.server_port}"},
}, {"Lambda-Extension-Identifier": ext_id})
while True:
    call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
"""

TELEMETRY_HANDLER = """
import json, os

def handler(event, context):
    print("hello from the handler")
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "telemetry.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]
"""


def test_a_python_extension_subscribes_to_telemetry_and_gets_platform_and_function_events(
        server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/telemetry-probe": PYTHON_EXTENSION}, "probe")
    name = create_function(TELEMETRY_HANDLER, Layers=[layer])["FunctionName"]
    first = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())

    def received_first_invoke() -> list[dict] | None:
        events = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
        kinds = [event["type"] for event in events]
        return events if "platform.report" in kinds and "function" in kinds else None

    events = wait_until(received_first_invoke, what="the first invoke's telemetry at the extension")
    kinds = [event["type"] for event in events]
    # init's events were kept for the subscription made during init
    for kind in ("platform.initStart", "platform.telemetrySubscription", "platform.extension",
                 "platform.initRuntimeDone", "platform.initReport", "platform.start", "platform.runtimeDone",
                 "platform.report", "function"):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("platform.initStart") < kinds.index("platform.start")
    subscription = next(event for event in events if event["type"] == "platform.telemetrySubscription")
    assert subscription["record"] == {"name": "telemetry-probe", "state": "Subscribed", "types": ["function", "platform"]}
    extension = next(event for event in events if event["type"] == "platform.extension")
    assert extension["record"] == {"name": "telemetry-probe", "state": "Ready", "events": ["INVOKE"]}
    report = next(event for event in events if event["type"] == "platform.report")
    assert report["record"]["status"] == "success"
    assert {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"} <= set(report["record"]["metrics"])
    assert report["time"].endswith("Z")
    lines = [event["record"] for event in events if event["type"] == "function"]
    assert "hello from the handler" in lines
    assert isinstance(first, list)

    logs = wait_for_function_log(server, name, "[telemetry-probe] registered")
    registered = json.loads(logs.split("[telemetry-probe] registered: ", 1)[1].split("\n", 1)[0])
    assert registered == {"functionName": name, "functionVersion": "$LATEST", "handler": "app.handler",
                          "accountId": "000000000000"}


#: An internal extension: a thread of the runtime process, registered while the handler's module
#: loads (before the runtime's first /next), for INVOKE only (SHUTDOWN is for external ones).
INTERNAL_HANDLER = """
import json, os, threading, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension"
SEEN = []


def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(API + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


status, headers, _ = call("POST", "/register", {"events": ["INVOKE"]}, {"Lambda-Extension-Name": "inside"})
EXT_ID = headers["Lambda-Extension-Identifier"]
REFUSALS = {
    "shutdown": call("POST", "/register", {"events": ["SHUTDOWN"]}, {"Lambda-Extension-Name": "other"})[2],
    "again": call("POST", "/register", {"events": []}, {"Lambda-Extension-Name": "inside"})[2],
    "bad-event": call("POST", "/register", {"events": ["LATER"]}, {"Lambda-Extension-Name": "other"})[2],
    "no-name": call("POST", "/register", {"events": []})[2],
    "no-id": call("GET", "/event/next")[2],
    "unknown-id": call("GET", "/event/next", headers={"Lambda-Extension-Identifier": "3d1e8f7c-0000-4000-8000-000000000000"})[2],
}


def loop():
    while True:
        SEEN.append(call("GET", "/event/next", headers={"Lambda-Extension-Identifier": EXT_ID})[2]["requestId"])


threading.Thread(target=loop, daemon=True).start()


def handler(event, context):
    late = call("POST", "/register", {"events": []}, {"Lambda-Extension-Name": "late"})[2]
    return {"request": context.aws_request_id, "seen": list(SEEN), "refusals": REFUSALS, "late": late}
"""


def test_an_internal_extension_registers_during_init_and_gets_invoke_events(server, lambda_client, create_function):
    name = create_function(INTERNAL_HANDLER)["FunctionName"]
    first = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
    refusals = {key: value["errorType"] for key, value in first["refusals"].items()}
    assert refusals == {"shutdown": "Extension.InvalidEventType", "again": "Extension.InvalidExtensionState",
                        "bad-event": "Extension.InvalidEventType", "no-name": "Extension.InvalidExtensionName",
                        "no-id": "Extension.MissingExtensionIdentifier",
                        "unknown-id": "Extension.UnknownExtensionIdentifier"}
    assert first["late"]["errorType"] == "Extension.RegistrationClosed"  # init is over
    wait_until(lambda: environment_counts(server, name) == {"idle": 1, "busy": 0, "starting": 0},
               what="the environment to be free once the extension took the INVOKE")

    second = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
    assert first["request"] in second["seen"]  # the INVOKE of the first reached the thread
    logs = wait_for_function_log(server, name, "EXTENSION\tName: inside")
    assert "EXTENSION\tName: inside\tState: Ready\tEvents: [INVOKE]" in logs


#: An extension that fails its init: the invocation fails as Lambda reports an extension's init error.
FAILING_EXTENSION = shell_extension("failing", "[]", (
    'curl -sS -XPOST "$BASE/init/error" -H "Lambda-Extension-Identifier: $ID" '
    "-H 'Lambda-Extension-Function-Error-Type: Extension.ConfigInvalid' -d '{\"errorMessage\": \"no config\"}'\n"))


def test_an_extension_init_error_fails_the_init(server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/failing": FAILING_EXTENSION}, "failing")
    name = create_function(Layers=[layer])["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name)
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == "Extension.InitError"
    assert error["errorMessage"].endswith("Error: Extension failing failed its init: Extension.ConfigInvalid")
    logs = wait_for_function_log(server, name, "INIT_REPORT")
    assert "Error Type: Extension.InitError" in logs  # the platform's type, as the emulator reports it
    assert "EXTENSION\tName: failing\tState: InitError\tEvents: []\tError Type: Extension.ConfigInvalid" in logs


#: AWS_LAMBDA_EXEC_WRAPPER starting an internal extension (the OpenTelemetry layer's pattern: a
#: wrapper in a layer that sets things up, then execs the runtime): a process of its own that
#: registers under a name that is no executable in /opt/extensions.
WRAPPER = r"""#!/bin/sh
BASE="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
HEADERS="${TMPDIR:-/tmp}/wrapped.headers"
# registered before the runtime starts (so before its first /next), as a wrapper's setup does
curl -sS -D "$HEADERS" -o /dev/null -XPOST "$BASE/register" -H "Lambda-Extension-Name: wrapped" \
     -d '{"events": ["INVOKE"]}'
ID=$(grep -i '^Lambda-Extension-Identifier:' "$HEADERS" | cut -d: -f2 | tr -d '[:space:]')
(
    while true; do
        EVENT=$(curl -sS "$BASE/event/next" -H "Lambda-Extension-Identifier: $ID") || exit 0
        echo "[wrapped] $EVENT"
    done
) &
exec "$@"
"""


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_an_exec_wrapper_starts_an_internal_extension(server, lambda_client, create_function, publish_layer, runtime):
    layer = _extension_layer(publish_layer, {"wrapper.sh": WRAPPER}, f"wrapper-{runtime}")
    if runtime == "python":
        function = create_function(Layers=[layer], Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper.sh"}})
    else:
        _, node_runtime = host_node()
        function = create_function(files={"index.js": "exports.handler = async (event) => event;\n"},
                                   Runtime=node_runtime, Handler="index.handler", Layers=[layer],
                                   Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper.sh"}})
    name = function["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name, Payload=b'{"n": 1}')
    assert json.loads(resp["Payload"].read()) == {"n": 1}
    logs = wait_for_function_log(server, name, '[wrapped] {"eventType": "INVOKE"')
    assert "EXTENSION\tName: wrapped\tState: Ready\tEvents: [INVOKE]" in logs


#: An extension that gives up during an invocation: the invocation fails with Extension.ExitError.
EXITING_EXTENSION = shell_extension("exiting", '["INVOKE"]', (
    'curl -sS -o /dev/null "$BASE/event/next" -H "Lambda-Extension-Identifier: $ID"\n'
    'curl -sS -XPOST "$BASE/exit/error" -H "Lambda-Extension-Identifier: $ID" '
    "-H 'Lambda-Extension-Function-Error-Type: Extension.LostItsBackend' -d '{}'\n"))


def test_an_extension_exit_error_fails_the_invocation_in_progress(lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/exiting": EXITING_EXTENSION}, "exiting")
    name = create_function("import time\n\ndef handler(event, context):\n    time.sleep(20)\n",
                           Layers=[layer], Timeout=30)["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name)
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == "Extension.ExitError"
    assert error["errorMessage"].endswith("Error: Extension exiting exited with error: Extension.LostItsBackend")


def test_json_logs_carry_platform_extension_and_at_debug_platform_runtime_done(
        server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/counter": SHELL_EXTENSION}, "counter-json")
    name = create_function(STATE_HANDLER, Layers=[layer],
                           LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "DEBUG"})["FunctionName"]
    assert json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read()) == {"extension": "ready"}
    logs = wait_for_function_log(server, name, '"type":"platform.report"')
    records = [json.loads(line.split(" ", 1)[1]) for line in logs.splitlines() if '"type":"platform.' in line]
    kinds = [record["type"] for record in records]
    assert {"type": "platform.extension", "record": {"name": "counter", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]}} \
        in [{k: r[k] for k in ("type", "record")} for r in records]
    assert kinds.index("platform.runtimeDone") < kinds.index("platform.report")
    done = records[kinds.index("platform.runtimeDone")]["record"]
    assert done["status"] == "success" and set(done["metrics"]) == {"durationMs", "producedBytes"}


#: An extension that dies during an invocation without saying why: Lambda's Extension.Crash.
CRASHING_EXTENSION = shell_extension("crashing", '["INVOKE"]', (
    'curl -sS -o /dev/null "$BASE/event/next" -H "Lambda-Extension-Identifier: $ID"\n'
    "exit 3\n"))

#: A file in /opt/extensions that is no extension at all: it never registers, and init must not
#: wait for it until the timeout.
NOT_AN_EXTENSION = "#!/bin/sh\necho 'not an extension'\nexit 1\n"


def test_an_extension_that_dies_is_an_extension_crash(lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/crashing": CRASHING_EXTENSION}, "crashing")
    name = create_function("import time\n\ndef handler(event, context):\n    time.sleep(20)\n",
                           Layers=[layer], Timeout=30)["FunctionName"]
    error = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
    assert error["errorType"] == "Extension.Crash"
    assert error["errorMessage"].endswith("Error: Extension crashing exited with status 3")

    layer = _extension_layer(publish_layer, {"extensions/helper": NOT_AN_EXTENSION}, "not-an-extension")
    name = create_function(Layers=[layer], Timeout=30)["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name)
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "Extension.Crash"


#: A Python extension that subscribes to the Telemetry API over TCP, as AWS documents it: Lambda
#: connects to the port and writes one JSON event a line. It closes the connection after each
#: platform.report, so the platform has to connect again for the next invocation's events.
TCP_EXTENSION = r"""#!/usr/bin/env python3
import json, os, socket, threading, urllib.request
""" + EXTENSION_PROLOGUE + r"""

def serve(listener):
    connection = 0
    while True:
        sock, _ = listener.accept()
        connection += 1
        with sock, sock.makefile("rb") as lines:
            for line in lines:
                event = json.loads(line)
                with open(RECEIVED, "a") as f:
                    f.write(json.dumps({"connection": connection, "newline": line.endswith(b"\n"), "event": event}) + "\n")
                if event["type"] == "platform.report":
                    break


listener = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=serve, args=(listener,), daemon=True).start()
headers, _ = call("POST", "/2020-01-01/extension/register", {"events": ["INVOKE"]}, {"Lambda-Extension-Name": NAME})
ext_id = headers["Lambda-Extension-Identifier"]
_, answer = call("PUT", "/2022-07-01/telemetry", {
    "schemaVersion": "2022-12-13", "types": ["platform", "function"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
    "destination": {"protocol": "TCP", "port": listener.getsockname()[1]},
}, {"Lambda-Extension-Identifier": ext_id})
print(f"[{NAME}] subscribed: {answer.decode()}", flush=True)
while True:
    call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
"""


def test_a_python_extension_gets_telemetry_over_tcp_as_ndjson_and_is_reconnected(
        server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/tcp-probe": TCP_EXTENSION}, "tcp-probe")
    name = create_function(TELEMETRY_HANDLER, Layers=[layer])["FunctionName"]

    def reports_on_two_connections() -> list[dict] | None:
        lines = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
        connections = {line["connection"] for line in lines if line["event"]["type"] == "platform.report"}
        return lines if len(connections) >= 2 else None

    lines = wait_until(reports_on_two_connections, what="platform.report over two TCP connections")
    assert all(line["newline"] for line in lines)  # every event is a line of its own
    events = [line["event"] for line in lines]
    kinds = [event["type"] for event in events]
    for kind in ("platform.initStart", "platform.telemetrySubscription", "platform.start", "platform.report",
                 "function"):
        assert kind in kinds, (kind, kinds)
    assert kinds.count("platform.telemetrySubscription") == 1
    assert "hello from the handler" in [event["record"] for event in events if event["type"] == "function"]
    report = next(event for event in events if event["type"] == "platform.report")
    assert report["record"]["status"] == "success" and "durationMs" in report["record"]["metrics"]
    logs = wait_for_function_log(server, name, "[tcp-probe] subscribed")
    assert '[tcp-probe] subscribed: "OK"' in logs


#: An extension that uses the older Logs API (HTTP, by PUT, schema 2021-03-18) and tries what
#: Lambda refuses; it keeps its identifier where the handler finds it (to subscribe after init).
LOGS_EXTENSION = r"""#!/usr/bin/env python3
import json, os, threading, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

NAME = os.path.basename(__file__)
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
TMP = os.environ.get("TMPDIR", "/tmp")


def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(API + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


RECEIVED = os.path.join(TMP, "telemetry.jsonl")
""" + HTTP_LISTENER + r"""_, headers, _ = call("POST", "/2020-01-01/extension/register", {"events": ["INVOKE"]}, {"Lambda-Extension-Name": NAME})
ext_id = headers["Lambda-Extension-Identifier"]
with open(os.path.join(TMP, "extension.id"), "w") as f:
    f.write(ext_id)
me = {"Lambda-Extension-Identifier": ext_id}
good = {"schemaVersion": "2021-03-18", "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{listener.server_port}/logs",
                        "method": "PUT", "encoding": "JSON"}}
answers = {
    "no-types": call("PUT", "/2020-08-15/logs", {**good, "types": []}, me),
    "tcp-no-port": call("PUT", "/2020-08-15/logs", {**good, "destination": {"protocol": "TCP"}}, me),
    "schema": call("PUT", "/2020-08-15/logs", {**good, "schemaVersion": "2022-07-01"}, me),
    "no-id": call("PUT", "/2020-08-15/logs", good),
    "unknown-id": call("PUT", "/2020-08-15/logs", good, {"Lambda-Extension-Identifier": "3d1e8f7c-0000-4000-8000-000000000000"}),
    "subscribed": call("PUT", "/2020-08-15/logs", good, me),
    "again": call("PUT", "/2020-08-15/logs", good, me),
    "telemetry-too": call("PUT", "/2022-07-01/telemetry", {**good, "schemaVersion": "2022-12-13"}, me),
}
print(f"[{NAME}] answers: " + json.dumps({key: [status, body] for key, (status, _, body) in answers.items()}), flush=True)
while True:
    call("GET", "/2020-01-01/extension/event/next", headers=me)
"""

LOGS_HANDLER = """
import json, os, urllib.error, urllib.request

TMP = os.environ.get("TMPDIR", "/tmp")


def handler(event, context):
    print("hello from the handler")
    with open(os.path.join(TMP, "extension.id")) as f:
        ext_id = f.read()
    request = urllib.request.Request("http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-08-15/logs",
                                     data=json.dumps({"types": ["platform"], "destination": {"protocol": "TCP", "port": 9}}).encode(),
                                     method="PUT", headers={"Lambda-Extension-Identifier": ext_id})
    try:
        urllib.request.urlopen(request)
        late = None
    except urllib.error.HTTPError as error:
        late = [error.code, json.loads(error.read())]
    path = os.path.join(TMP, "telemetry.jsonl")
    events = []
    if os.path.exists(path):
        with open(path) as f:
            events = [json.loads(line) for line in f]
    return {"request": context.aws_request_id, "late": late, "events": events}
"""


def test_an_extension_using_the_logs_api_gets_its_schema_and_its_refusals(
        server, lambda_client, create_function, publish_layer):
    layer = _extension_layer(publish_layer, {"extensions/logs-probe": LOGS_EXTENSION}, "logs-probe")
    name = create_function(LOGS_HANDLER, Layers=[layer])["FunctionName"]
    first = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
    assert first["late"] == [403, {"errorMessage": "Logs API subscription is closed already",
                                   "errorType": "Logs.SubscriptionClosed"}]

    def first_invoke_delivered() -> list[dict] | None:
        events = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())["events"]
        done = [event for event in events if event["type"] == "platform.report"
                and event["record"]["requestId"] == first["request"]]
        return events if done else None

    events = wait_until(first_invoke_delivered, what="the first invoke's logs at the extension")
    mine = [event for event in events if isinstance(event["record"], dict)
            and event["record"].get("requestId") == first["request"]]
    assert [event["type"] for event in mine] == ["platform.start", "platform.runtimeDone", "platform.end",
                                                  "platform.report"]
    start, done, end, report = (event["record"] for event in mine)
    assert start == {"requestId": first["request"], "version": "$LATEST"}
    assert done == {"requestId": first["request"], "status": "success"}
    assert end == {"requestId": first["request"]}
    assert set(report) == {"requestId", "metrics"}
    assert {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"} == set(report["metrics"])
    kinds = [event["type"] for event in events]
    assert kinds.count("platform.logsSubscription") == 1  # subscribing again did not subscribe twice
    subscription = next(event for event in events if event["type"] == "platform.logsSubscription")
    assert subscription["record"] == {"name": "logs-probe", "state": "Subscribed", "types": ["function", "platform"]}
    assert {"type": "platform.extension", "record": {"name": "logs-probe", "state": "Ready", "events": ["INVOKE"]}} \
        in [{key: event[key] for key in ("type", "record")} for event in events]
    assert "hello from the handler" in [event["record"] for event in events if event["type"] == "function"]
    assert not {"platform.initStart", "platform.initReport", "platform.telemetrySubscription"} & set(kinds)

    logs = wait_for_function_log(server, name, "[logs-probe] answers: ")
    answers = json.loads(logs.split("[logs-probe] answers: ", 1)[1].split("\n", 1)[0])
    assert answers["subscribed"] == [200, '"OK"'] and answers["again"] == [200, '"OK"']
    error_types = {key: (status, json.loads(body)["errorType"]) for key, (status, body) in answers.items()
                   if status != 200}
    assert error_types == {"no-types": (400, "Logs.ValidationError"), "tcp-no-port": (400, "Logs.ValidationError"),
                           "schema": (400, "Logs.ValidationError"),
                           "no-id": (403, "Extension.MissingExtensionIdentifier"),
                           "unknown-id": (403, "Extension.UnknownExtensionIdentifier"),
                           "telemetry-too": (400, "ValidationError")}

"""Invoke and runtime edge cases, as AWS answers them (issue 15, item 5).

What AWS answers is taken from responses recorded against it (LocalStack's
`tests/aws/services/lambda_/*.snapshot.json`): the oversized-response error, the environment a
python3.12 / nodejs / provided.al2023 function sees, how CloudWatch stores printed lines.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import invoke_json, make_zip

from .helpers import decoded_log, function_logs, host_node, wait_for_function_log, wait_until


SEVEN_MB = 7 * 1024 * 1024
TOO_LARGE = {"errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
             "errorType": "Function.ResponseSizeTooLarge"}

PYTHON_SIZED = """\
import os

def handler(event, context):
    print("generating bytes")
    if event.get("bytes"):
        return "a" * event["bytes"]
    return {"pid": os.getpid()}
"""

NODE_SIZED = """\
exports.handler = async (event) => {
  console.log('generating bytes');
  if (event.bytes) return 'a'.repeat(event.bytes);
  return { pid: process.pid };
};
"""

#: A custom runtime in Python (the system interpreter): the Runtime API over urllib.
PROVIDED_SIZED = """\
#!/usr/bin/python3
import json, os, urllib.error, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
while True:
    with urllib.request.urlopen(API + "/invocation/next") as resp:
        request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(resp.read())
    print("generating bytes", flush=True)
    body = json.dumps("a" * event["bytes"] if event.get("bytes") else {"pid": os.getpid()}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request(API + "/invocation/" + request_id + "/response", data=body))
    except urllib.error.HTTPError as exc:  # 413 for an oversized answer; the runtime goes on
        print("response refused:", exc.code, flush=True)
"""


def sized_function(create_function, runtime: str) -> str:
    if runtime == "python":
        return create_function(PYTHON_SIZED, Runtime="python3.12", MemorySize=512, Timeout=30)["FunctionName"]
    if runtime == "node":
        return create_function(files={"index.js": NODE_SIZED}, Runtime=host_node()[1], Handler="index.handler",
                               MemorySize=512, Timeout=30)["FunctionName"]
    return create_function(files={"bootstrap": PROVIDED_SIZED}, modes={"bootstrap": 0o755}, Runtime="provided.al2023",
                           Handler="unused", MemorySize=512, Timeout=30)["FunctionName"]


@pytest.mark.parametrize("runtime", ["python", "node", "provided"])
def test_a_response_over_6_mb_is_response_size_too_large_and_the_environment_survives(
        lambda_client, create_function, server, runtime):
    name = sized_function(create_function, runtime)
    _, first = invoke_json(lambda_client, name)

    for _ in range(2):  # twice: the environment is still there to fail the same way
        resp, result = invoke_json(lambda_client, name, {"bytes": SEVEN_MB})
        assert resp["FunctionError"] == "Unhandled"
        assert result == TOO_LARGE

    resp, after = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, after
    assert after["pid"] == first["pid"]  # the same environment, never restarted
    wait_for_function_log(server, name, "generating bytes")


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_an_error_over_6_mb_is_response_size_too_large_too(lambda_client, create_function, runtime):
    """The runtime's /error answer is held to the same limit as its response, whichever way the
    runtime talks to the Runtime API (Python: frames, Node.js: HTTP). Logging the 7 MB error takes a
    while (output is read at 8 MB/s): a timeout of 30 s."""
    if runtime == "python":
        name = create_function("import os\n\ndef handler(event, context):\n"
                               "    if event.get('bytes'):\n        raise ValueError('a' * event['bytes'])\n"
                               "    return {'pid': os.getpid()}\n",
                               Runtime="python3.12", MemorySize=512, Timeout=30)["FunctionName"]
    else:
        name = create_function(files={"index.js": "exports.handler = async (event) => {\n"
                                                  "  if (event.bytes) throw new Error('a'.repeat(event.bytes));\n"
                                                  "  return { pid: process.pid };\n};\n"},
                               Runtime=host_node()[1], Handler="index.handler", MemorySize=512,
                               Timeout=30)["FunctionName"]
    _, first = invoke_json(lambda_client, name)

    resp, result = invoke_json(lambda_client, name, {"bytes": SEVEN_MB})
    assert resp["FunctionError"] == "Unhandled"
    assert result == TOO_LARGE

    _, after = invoke_json(lambda_client, name)
    assert after["pid"] == first["pid"]


def add_header(client, name: str, value: str) -> None:
    def inject(request, **_kwargs):
        request.headers[name] = value
    client.meta.events.register("before-sign.lambda.Invoke", inject)


TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_an_incoming_trace_header_reaches_the_function(server, create_function, runtime):
    if runtime == "python":
        name = create_function("import os\n\ndef handler(event, context):\n"
                               "    return os.environ.get('_X_AMZN_TRACE_ID')\n")["FunctionName"]
    else:
        name = create_function(files={"index.js": "exports.handler = async () => process.env._X_AMZN_TRACE_ID;\n"},
                               Runtime=host_node()[1], Handler="index.handler")["FunctionName"]
    client = server.client()
    add_header(client, "X-Amzn-Trace-Id", TRACE)

    _, seen = invoke_json(client, name)
    assert re.fullmatch(re.escape(TRACE) + r";Lineage=[0-9a-f]{8}:0", seen), seen  # with its Lineage, as on AWS

    _, fresh = invoke_json(server.client(), name)  # without one, a trace id of Lambda's own
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0;Lineage=[0-9a-f]{8}:0",
                        fresh), fresh


WRAPPER = '#!/bin/sh\nexport WRAPPER_VAR=wrapped\nexec "$@"\n'


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_an_exec_wrapper_wraps_every_managed_runtime(lambda_client, create_function, runtime):
    """AWS_LAMBDA_EXEC_WRAPPER, as LocalStack's recorded test_runtime_wrapper_invoke sets it."""
    env = {"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrapper"}}
    if runtime == "python":
        files = {"app.py": "import os\n\ndef handler(event, context):\n    return os.environ.get('WRAPPER_VAR')\n",
                 "wrapper": WRAPPER}
        name = create_function(files=files, modes={"wrapper": 0o755}, Environment=env)["FunctionName"]
    else:
        files = {"index.js": "exports.handler = async () => process.env.WRAPPER_VAR;\n", "wrapper": WRAPPER}
        name = create_function(files=files, modes={"wrapper": 0o755}, Runtime=host_node()[1], Handler="index.handler",
                               Environment=env)["FunctionName"]

    resp, result = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, result
    assert result == "wrapped"


#: AWS's documented wrapper (runtimes-modify, "Create and use a wrapper script as a layer"): the
#: interpreter's own flags go in before the last argument, the runtime's entry script.
FLAGS_WRAPPER = """\
#!/bin/bash
args=("$@")
extra=({flags})
exec "${{args[@]:0:$#-1}}" "${{extra[@]}}" "${{args[@]: -1}}"
"""


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_an_exec_wrapper_from_a_layer_adds_interpreter_flags(lambda_client, create_function, unique_name, runtime):
    if runtime == "python":
        wrapper = FLAGS_WRAPPER.format(flags='"-X" "importtime"')
        files = {"app.py": "import sys\nimport boto3\n\ndef handler(event, context):\n"
                           "    return {'importtime': sys._xoptions.get('importtime'), 'sdk': boto3.__name__}\n"}
        expected = {"importtime": True, "sdk": "boto3"}  # the flag, and the runtime's SDK still found
        kwargs = {"Runtime": "python3.12"}
    else:
        wrapper = FLAGS_WRAPPER.format(flags='"--no-deprecation"')
        files = {"index.js": "exports.handler = async () => ({noDeprecation: process.noDeprecation === true});\n"}
        expected = {"noDeprecation": True}
        kwargs = {"Runtime": host_node()[1], "Handler": "index.handler"}
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name, Content={"ZipFile": make_zip({"bin/flags_wrapper": wrapper}, {"bin/flags_wrapper": 0o755})})
    name = create_function(files=files, Layers=[layer["LayerVersionArn"]],
                           Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/bin/flags_wrapper"}},
                           **kwargs)["FunctionName"]

    resp, result = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, result
    assert result == expected


def test_printed_lines_keep_their_carriage_returns_and_empty_lines_are_no_events(
        lambda_client, create_function, server):
    """LocalStack's recorded TestCloudwatchLogs.test_multi_line_prints: what AWS stores."""
    name = create_function("def handler(event, context):\n    print(event['body'])\n    raise ValueError('two\\nlines')\n")[
        "FunctionName"]
    invoke_json(lambda_client, name, {"body": "\nmulti\nline\nstring\nanother\rline\n"})
    logs = server.client("logs")

    def events():
        found = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        return found if any(e["message"].startswith("REPORT") for e in found) else None

    messages = [e["message"] for e in wait_until(events, what="the REPORT line")]
    start = next(i for i, m in enumerate(messages) if m.startswith("START"))
    printed = messages[start + 1:start + 5]
    assert printed == ["multi\n", "line\n", "string\n", "another\rline\n"], messages
    assert "\n" not in messages
    error = messages[start + 5]  # the runtime's own multi-line record is one event, its lines lines
    assert error.startswith("[ERROR] ValueError: two\nlines\nTraceback (most recent call last):\n"), messages


def log_messages(server, name: str) -> list[str]:
    """The function's log events, once its REPORT line is there, from its START line on."""
    logs = server.client("logs")

    def events():
        found = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        return found if any(e["message"].startswith("REPORT") for e in found) else None

    messages = [e["message"] for e in wait_until(events, what="the REPORT line")]
    return messages[next(i for i, m in enumerate(messages) if m.startswith("START")):]


def test_a_runtimes_records_keep_their_carriage_returns(lambda_client, create_function, server):
    """A record of the runtime's own (a logging record, an error) with newlines is one event with
    its newlines; a carriage return in it is a carriage return still, as AWS stores it."""
    name = create_function("import logging\n\ndef handler(event, context):\n"
                           "    logging.getLogger().warning('warned\\non two\\rlines')\n"
                           "    raise ValueError('one\\rline')\n")["FunctionName"]
    invoke_json(lambda_client, name)
    messages = log_messages(server, name)
    warning = next(m for m in messages if m.startswith("[WARNING]"))
    assert warning.endswith("\twarned\non two\rlines\n"), messages
    error = next(m for m in messages if m.startswith("[ERROR]"))
    assert error.startswith("[ERROR] ValueError: one\rline\nTraceback (most recent call last):\n"), messages


def test_a_node_console_record_keeps_its_carriage_returns(lambda_client, create_function, server):
    name = create_function(files={"index.js": "exports.handler = async (event) => { console.log(event.body); };\n"},
                           Runtime=host_node()[1], Handler="index.handler")["FunctionName"]
    invoke_json(lambda_client, name, {"body": "\nmulti\nline\nstring\nanother\rline\n"})
    record = log_messages(server, name)[1]
    assert record.endswith("\tINFO\t\nmulti\nline\nstring\nanother\rline\n\n"), record


#: What a python3.12 function sees on AWS (LocalStack's recorded test_introspection_invoke[python3.12]),
#: less the session token the test server does not have and LC_CTYPE (Python's own locale
#: coercion sets it, where the locale is missing).
AWS_PYTHON_ENV = {
    "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "AWS_REGION",
    "AWS_SECRET_ACCESS_KEY", "AWS_XRAY_CONTEXT_MISSING", "AWS_XRAY_DAEMON_ADDRESS", "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT", "LANG", "LD_LIBRARY_PATH", "PATH", "PWD", "PYTHONPATH", "SHLVL", "TEST_KEY", "TZ",
    "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT", "_HANDLER", "_X_AMZN_TRACE_ID",
}
AWS_NODE_ENV = AWS_PYTHON_ENV - {"PYTHONPATH"} | {"NODE_PATH"}
AWS_PROVIDED_ENV = AWS_PYTHON_ENV - {"PYTHONPATH", "PWD", "SHLVL", "AWS_EXECUTION_ENV"}
#: Only where the server's environment has them (passed through), or the process backend's TMPDIR.
MAYBE = re.compile(r"^(LC_CTYPE|AWS_SESSION_TOKEN|AWS_ENDPOINT_URL.*|TMPDIR)$")

PROVIDED_ENV = """\
#!/usr/bin/python3
import json, os, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
while True:
    with urllib.request.urlopen(API + "/invocation/next") as resp:
        request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        os.environ["_X_AMZN_TRACE_ID"] = resp.headers["Lambda-Runtime-Trace-Id"]
    body = json.dumps(dict(os.environ)).encode()
    urllib.request.urlopen(urllib.request.Request(API + "/invocation/" + request_id + "/response", data=body))
"""


@pytest.mark.parametrize("runtime", ["python3.12", "node", "provided.al2023"])
def test_the_environment_variables_are_awss(lambda_client, create_function, runtime):
    env = {"Variables": {"TEST_KEY": "TEST_VAL"}}
    if runtime == "python3.12":
        name = create_function("import os\n\ndef handler(event, context):\n    return dict(os.environ)\n",
                               Runtime=runtime, Environment=env)["FunctionName"]
        expected = AWS_PYTHON_ENV
    elif runtime == "node":
        name = create_function(files={"index.js": "exports.handler = async () => process.env;\n"},
                               Runtime=host_node()[1], Handler="index.handler", Environment=env)["FunctionName"]
        expected = AWS_NODE_ENV
    else:
        name = create_function(files={"bootstrap": PROVIDED_ENV}, modes={"bootstrap": 0o755}, Runtime=runtime,
                               Handler="function.handler", Environment=env)["FunctionName"]
        expected = AWS_PROVIDED_ENV

    resp, seen = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, seen
    extra = {key for key in set(seen) - expected if not MAYBE.match(key)}
    assert not extra, f"not in AWS's environment: {sorted(extra)}"
    assert not expected - set(seen), f"missing: {sorted(expected - set(seen))}"
    assert seen["AWS_ACCESS_KEY_ID"] == "test" and seen["AWS_SECRET_ACCESS_KEY"] == "test"  # the server's, passed on
    assert seen["TEST_KEY"] == "TEST_VAL"
    assert seen["AWS_XRAY_CONTEXT_MISSING"] == "LOG_ERROR"
    if runtime != "provided.al2023":
        assert seen["SHLVL"] == "0"
        assert seen["PWD"] == seen["LAMBDA_TASK_ROOT"]
    if runtime == "python3.12":
        assert seen["PYTHONPATH"] == seen["LAMBDA_RUNTIME_DIR"]


MEMORY_HANDLER = """\
def handler(event, context):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
"""


def test_max_memory_used_counts_the_runtimes_resident_memory(lambda_client, create_function):
    """AWS reports ~30-40 MB for a Python hello: the environment's whole memory, the runtime's own
    pages included, not only the pages an environment forked from a zygote has copied."""
    name = create_function(MEMORY_HANDLER)["FunctionName"]
    for _ in range(2):
        resp = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        resident_mb = json.load(resp["Payload"])
        used = int(re.search(r"Max Memory Used: (\d+) MB", decoded_log(resp))[1])
        assert used >= resident_mb >= 5, (used, resident_mb)


def test_a_throttled_async_backlog_drains_as_fast_as_the_function_allows(lambda_client, create_function, server):
    """Reserved concurrency 1 and 15 events: each throttled event runs when the slot frees, not
    after a backoff that has grown to tens of seconds (which took 100 s to drain)."""
    name = create_function("import time\n\ndef handler(event, context):\n    time.sleep(0.05)\n"
                           "    print('ran', event['n'])\n")["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    for n in range(15):
        assert lambda_client.invoke(FunctionName=name, InvocationType="Event",
                                    Payload=json.dumps({"n": n}))["StatusCode"] == 202

    def all_ran():
        text = function_logs(server, name)
        return text if all(f"ran {n}\n" in text for n in range(15)) else None

    # Generous: the backlog needs ~1 s; before, its backoffs added up to ~100 s.
    wait_until(all_ran, timeout=45, interval=0.2, what="all 15 events to run")

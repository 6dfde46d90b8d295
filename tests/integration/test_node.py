"""Node.js runtimes: Lambdalet's own bootstrap on the host's node (CONTRACT.md §3.3, §4, §12.2).

The runtime under test is `nodejs<major>.x` for whichever node the host has on PATH, so the suite
runs unchanged on hosts with Node 18, 20 or 22; other versions are reached with --node-binary.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT, ROLE, Server, invoke_json, make_zip

from .helpers import host_node


NODE, RUNTIME = host_node()


@pytest.fixture
def node_function(create_function):
    def _create(files: dict[str, str], handler: str = "index.handler", **kwargs) -> str:
        return create_function(files=files, Runtime=RUNTIME, Handler=handler, **kwargs)["FunctionName"]

    return _create


def tail(resp: dict) -> str:
    return base64.b64decode(resp["LogResult"]).decode()


def test_commonjs_handler(lambda_client, node_function):
    name = node_function({"index.js": (
        "let count = 0;\n"
        "exports.handler = async (event) => ({event, count: ++count, version: process.version,\n"
        "  execEnv: process.env.AWS_EXECUTION_ENV, nodePath: process.env.NODE_PATH,\n"
        "  handler: process.env._HANDLER});\n"
    )})

    for n in (1, 2):
        resp, result = invoke_json(lambda_client, name, {"n": n})
        assert "FunctionError" not in resp, result
        assert result["event"] == {"n": n}
        assert result["count"] == n  # the same warm environment: module state survives
    major = RUNTIME.removeprefix("nodejs").removesuffix(".x")
    assert result["version"].startswith(f"v{major}.")
    assert result["execEnv"] == f"AWS_Lambda_{RUNTIME}"
    assert result["handler"] == "index.handler"
    task_root = result["nodePath"].rsplit(":", 1)[1]
    runtime_dir = result["nodePath"].split(":")[3]
    assert result["nodePath"] == (f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:"
                                  f"{runtime_dir}/node_modules:{runtime_dir}:{task_root}")


def test_es_module_handler(lambda_client, node_function):
    name = node_function({
        "index.mjs": "import { tag } from './lib.mjs';\n"
                     "export const handler = async (event) => ({ tag, isModule: typeof require === 'undefined' });\n",
        "lib.mjs": "export const tag = 'esm';\n",
    })

    resp, result = invoke_json(lambda_client, name)

    assert "FunctionError" not in resp, result
    assert result == {"tag": "esm", "isModule": True}


def test_nested_es_module_js_under_type_module(lambda_client, node_function):
    name = node_function({
        "src/package.json": json.dumps({"type": "module"}),
        "src/app.js": "export const handlers = { main: async (event) => ({ nested: event.x * 2, "
                      "isModule: typeof require === 'undefined' }) };\n",
    }, handler="src/app.handlers.main")

    resp, result = invoke_json(lambda_client, name, {"x": 21})

    assert "FunctionError" not in resp, result
    assert result == {"nested": 42, "isModule": True}


def test_callback_handler_waits_for_the_empty_event_loop(lambda_client, node_function):
    name = node_function({"index.cjs": (
        "exports.handler = (event, context, callback) => {\n"
        "  const result = { waited: false, waits: context.callbackWaitsForEmptyEventLoop };\n"
        "  if (event.dontWait) context.callbackWaitsForEmptyEventLoop = false;\n"
        "  setTimeout(() => { result.waited = true; }, 20);\n"
        "  callback(null, result);\n"
        "};\n"
    )})

    # By default the result is sent once the event loop is empty: after the timer changed it.
    resp, result = invoke_json(lambda_client, name, {})
    assert "FunctionError" not in resp, result
    assert result == {"waited": True, "waits": True}

    # callbackWaitsForEmptyEventLoop = false: sent at once, before the timer fires.
    resp, result = invoke_json(lambda_client, name, {"dontWait": True})
    assert "FunctionError" not in resp, result
    assert result == {"waited": False, "waits": True}


def test_callback_handler_error_and_sync_handler_without_callback(lambda_client, node_function):
    name = node_function({"index.js": (
        "exports.handler = (event, context, callback) => {\n"
        "  if (event.fail) return callback(new TypeError('bad input'));\n"
        "  if (event.string) return callback('just a string');\n"
        "};\n"
    )})

    resp, error = invoke_json(lambda_client, name, {"fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert error["errorType"] == "TypeError" and error["errorMessage"] == "bad input"
    assert error["trace"][0] == "TypeError: bad input"

    resp, error = invoke_json(lambda_client, name, {"string": True})
    assert resp["FunctionError"] == "Unhandled"
    assert error == {"errorType": "string", "errorMessage": "just a string", "trace": []}

    # Never calling back: Lambda answers null once the event loop is empty.
    resp, result = invoke_json(lambda_client, name, {})
    assert "FunctionError" not in resp
    assert result is None


def test_async_handler_that_throws(lambda_client, node_function):
    name = node_function({"index.js": (
        "class CustomError extends Error {\n"
        "  constructor(message) { super(message); this.name = 'CustomError'; }\n"
        "}\n"
        "exports.handler = async (event) => {\n"
        "  if (event.fail) throw new CustomError('failed on purpose');\n"
        "  return 'fine';\n"
        "};\n"
    )})

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"fail": True}), LogType="Tail")

    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert set(error) == {"errorType", "errorMessage", "trace"}
    assert error["errorType"] == "CustomError"
    assert error["errorMessage"] == "failed on purpose"
    assert error["trace"][0] == "CustomError: failed on purpose"
    assert any("/index.js:" in frame for frame in error["trace"][1:])
    logged = tail(resp)
    line = next(line for line in logged.splitlines() if "\tERROR\tInvoke Error " in line)
    assert json.loads(line.split("Invoke Error \t", 1)[1])["errorType"] == "CustomError"

    # The error did not cost the environment: the next invoke is warm and fine.
    resp, result = invoke_json(lambda_client, name, {})
    assert "FunctionError" not in resp and result == "fine"


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), [
    ({"index.js": "exports.other = async () => 1;\n"}, "index.handler", "Runtime.HandlerNotFound",
     "index.handler is undefined or not exported"),
    ({"index.js": "exports.handler = async () => 1;\n"}, "missing.handler", "Runtime.ImportModuleError",
     "Error: Cannot find module 'missing'"),
    ({"index.mjs": "import x from 'no-such-package';\nexport const handler = async () => x;\n"}, "index.handler",
     "Runtime.ImportModuleError", "Cannot find package 'no-such-package'"),
    ({"index.js": "exports.handler = async () => {\n"}, "index.handler", "Runtime.UserCodeSyntaxError",
     "SyntaxError: Unexpected end of input"),
    ({"index.js": "exports.handler = async () => 1;\n"}, "index", "Runtime.MalformedHandlerName", "Bad handler"),
    ({"index.js": "throw new RangeError('init went wrong');\n"}, "index.handler", "RangeError", "init went wrong"),
])
def test_init_errors(lambda_client, node_function, files, handler, error_type, message):
    name = node_function(files, handler=handler)

    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")

    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == error_type
    assert error["errorMessage"].startswith(message) or message in error["errorMessage"], error
    assert isinstance(error["trace"], list) and error["trace"][0].startswith(error_type)
    logged = tail(resp)
    assert "\tundefined\tERROR\tUncaught Exception \t" in logged  # init: no request id yet, as on Lambda
    assert f"Status: error\tError Type: {error_type}" in logged


def test_context_object(lambda_client, node_function):
    name = node_function({"index.js": (
        "exports.handler = async (event, context) => {\n"
        "  const { getRemainingTimeInMillis, ...fields } = context;\n"
        "  return { ...fields, remaining: getRemainingTimeInMillis(),\n"
        "           waits: context.callbackWaitsForEmptyEventLoop, functions: typeof context.succeed };\n"
        "};\n"
    )}, MemorySize=256, Timeout=7)
    client_context = {"custom": {"k": "v"}, "env": {"platform": "test"}, "client": {"app_title": "t"}}

    resp, ctx = invoke_json(lambda_client, name, {},
                            ClientContext=base64.b64encode(json.dumps(client_context).encode()).decode())

    assert "FunctionError" not in resp, ctx
    assert ctx["functionName"] == name
    assert ctx["functionVersion"] == "$LATEST"
    assert ctx["invokedFunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert ctx["memoryLimitInMB"] == "256"  # a string, as on Lambda
    assert ctx["awsRequestId"] == resp["ResponseMetadata"]["RequestId"]
    assert ctx["logGroupName"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["logStreamName"])
    assert 0 < ctx["remaining"] <= 7000
    assert ctx["clientContext"] == client_context
    assert "identity" not in ctx  # undefined without a Cognito identity
    assert ctx["waits"] is True and ctx["functions"] == "function"


def test_console_lines_in_the_log_tail(lambda_client, node_function):
    name = node_function({"index.js": (
        "console.log('during init');\n"
        "exports.handler = async (event) => {\n"
        "  console.log('hello %s', 'world', { n: 1 });\n"
        "  console.warn('careful');\n"
        "  console.error('two\\nlines');\n"
        "  process.stdout.write('raw line\\n');\n"
        "  return 1;\n"
        "};\n"
    )})

    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")

    request_id = resp["ResponseMetadata"]["RequestId"]
    lines = tail(resp).split("\n")  # not splitlines(): a record keeps its \r
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert any(re.fullmatch(rf"{stamp}\tundefined\tINFO\tduring init", line) for line in lines), lines
    assert any(re.fullmatch(rf"{stamp}\t{request_id}\tINFO\thello world {{ n: 1 }}", line) for line in lines), lines
    assert any(re.fullmatch(rf"{stamp}\t{request_id}\tWARN\tcareful", line) for line in lines), lines
    assert any(re.fullmatch(rf"{stamp}\t{request_id}\tERROR\ttwo\rlines", line) for line in lines), lines
    assert "raw line" in lines
    assert lines.index("raw line") < next(i for i, line in enumerate(lines) if line.startswith("END RequestId"))


def test_node_binaries_are_configurable_and_a_missing_one_is_a_clear_error(tmp_path):
    """--node-binary points a runtime at a binary; one that is not there is refused by name."""
    other = next(r for r in ("nodejs22.x", "nodejs20.x") if r != RUNTIME)
    server = Server(tmp_path / "data", args=["--node-binary", f"nodejs18.x={tmp_path}/no/such/node",
                                             "--node-binary", f"{other}={NODE}"])
    server.start()
    try:
        client = server.client()
        code = {"ZipFile": make_zip({"index.js": "exports.handler = async () => process.env.AWS_EXECUTION_ENV;\n"})}
        with pytest.raises(client.exceptions.InvalidParameterValueException) as raised:
            client.create_function(FunctionName="old-node", Runtime="nodejs18.x", Role=ROLE, Handler="index.handler",
                                   Code=code)
        message = raised.value.response["Error"]["Message"]
        assert "nodejs18.x" in message and f"{tmp_path}/no/such/node" in message
        assert "--node-binary nodejs18.x=/path/to/node" in message

        client.create_function(FunctionName="other-node", Runtime=other, Role=ROLE, Handler="index.handler", Code=code)
        resp, result = invoke_json(client, "other-node")
        assert "FunctionError" not in resp, result
        assert result == f"AWS_Lambda_{other}"
    finally:
        server.stop()


RIC_APP = """\
class CustomError extends Error {
  constructor(message) { super(message); this.name = 'CustomError'; }
}
exports.handler = async (event, context) => {
  if (event.fail) throw new CustomError('failed on purpose');
  console.log('from the ric');
  return { event, requestId: context.awsRequestId, functionName: context.functionName };
};
"""
RIC_FILES = ("package.json", "bin", "dist")  # what aws-lambda-ric needs at run time (dist holds the addon)


@pytest.fixture(scope="module")
def aws_lambda_ric_zip() -> bytes:
    """AWS's Node.js runtime interface client from npm, built once into .cache/, plus an app and a
    `bootstrap` that starts it on the host's node: a custom runtime, as AWS documents it."""
    cache = REPO_ROOT / ".cache" / f"aws-lambda-ric-{RUNTIME}"
    if not (cache / "dist" / "rapid-client.node").is_file():
        missing = [tool for tool in ("npm", "cmake", "make", "g++", "autoreconf", "libtoolize") if not shutil.which(tool)]
        assert not missing, (f"building aws-lambda-ric (a native addon) needs {', '.join(missing)}: "
                             "apt-get install npm cmake make g++ autoconf automake libtool")
        staging = cache.with_name(cache.name + ".build")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_text('{"private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "aws-lambda-ric"], cwd=staging, check=True,
                       timeout=900, capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        for name in RIC_FILES:
            source = staging / "node_modules" / "aws-lambda-ric" / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, cache / name)
        shutil.rmtree(staging, ignore_errors=True)
    files: dict[str, str | bytes] = {"app.js": RIC_APP}
    modes: dict[str, int] = {}
    for path in sorted(cache.rglob("*")):
        if path.is_file():
            rel = "node_modules/aws-lambda-ric/" + path.relative_to(cache).as_posix()
            files[rel] = path.read_bytes()
            modes[rel] = path.stat().st_mode & 0o777
    files["bootstrap"] = (f'#!/bin/sh\nexec {os.path.realpath(NODE)} '
                          f'"$LAMBDA_TASK_ROOT/node_modules/aws-lambda-ric/bin/index.mjs" "$_HANDLER"\n')
    modes["bootstrap"] = 0o755
    return make_zip(files, modes)


@pytest.mark.ric
@pytest.mark.timeout(900)  # the first run builds the addon (about 4 minutes on 2 cores)
def test_aws_lambda_ric_as_a_custom_runtime(lambda_client, create_function, aws_lambda_ric_zip):
    name = create_function(Code={"ZipFile": aws_lambda_ric_zip}, Runtime="provided.al2023",
                           Handler="app.handler", Timeout=30)["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"x": 1}), LogType="Tail")
    result = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, result
    assert result == {"event": {"x": 1}, "requestId": resp["ResponseMetadata"]["RequestId"], "functionName": name}
    assert re.search(rf"\t{resp['ResponseMetadata']['RequestId']}\tINFO\tfrom the ric", tail(resp))

    resp, error = invoke_json(lambda_client, name, {"fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert error["errorType"] == "CustomError" and error["errorMessage"] == "failed on purpose"
    assert error["trace"][0] == "CustomError: failed on purpose"

    resp, result = invoke_json(lambda_client, name, {"x": 2})
    assert "FunctionError" not in resp, result
    assert result["event"] == {"x": 2}

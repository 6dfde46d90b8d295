"""Function URLs: the config API with boto3 and the AWS CLI, and requests from a real HTTP client.

`FunctionUrl` is the URL's own port (`http://127.0.0.1:<port>/`), which any client reaches. The
same URL answers on the API port by host name (`<url-id>.lambda-url.<region>.localhost`, which a
browser resolves to the loopback address by itself; this machine's resolver does not, so the client
here connects to 127.0.0.1 and sends that host in `Host`, exactly what a browser puts on the wire)
and by path (`/lambda-url/<url-id>/...`).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import subprocess
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ROLE, Server, aws_cli, make_zip, running

from .helpers import ACCOUNT, aws_error, function_arn, host_node, wait_updated

URL = re.compile(r"^http://127\.0\.0\.1:(\d+)/$")

# Answers with the event it got, unless the event's query string asks for something else.
HANDLER = """
import base64, json

def handler(event, context):
    query = event.get("queryStringParameters") or {}
    mode = query.get("mode")
    if event["requestContext"]["http"]["method"] == "OPTIONS":
        raise RuntimeError("preflights are answered by the URL, never by the function")
    if mode == "bare":
        return "Hello, world!"
    if mode == "object":
        return {"message": "no statusCode"}
    if mode == "fail":
        raise ValueError("boom")
    if mode == "bad":
        return {"statusCode": "two hundred"}
    if mode == "number":
        return 42
    if mode == "string-status":
        return {"statusCode": "202", "body": {"nested": [1, None]}}
    if mode == "png":
        return {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "isBase64Encoded": True,
                "body": event["body"]}
    return {"statusCode": 201, "headers": {"X-Custom": "yes", "Access-Control-Allow-Origin": "https://evil.example"},
            "cookies": ["a=1; Path=/", "b=2"], "body": json.dumps(event)}
"""


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self):
        return json.loads(self.body)


def call(function_url: str, path: str = "/", method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    """One request to a function URL in any of its forms (`host_form`, `path_form`), sending the
    URL's host in `Host` as a browser would."""
    parts = urlsplit(function_url)
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=60)
    try:
        conn.request(method, parts.path.rstrip("/") + path, body=body, headers={"Host": parts.netloc, **(headers or {})})
        return Reply(conn.getresponse())
    finally:
        conn.close()


def host_form(server, url_id: str) -> str:
    return f"http://{url_id}.lambda-url.us-east-1.localhost:{server.port}/"


def path_form(server, url_id: str) -> str:
    return f"{server.url}/lambda-url/{url_id}/"


def url_id_of(function_url: str) -> str:
    """The URL's id, as the function sees it (HANDLER's default answer echoes the event)."""
    return call(function_url).json()["requestContext"]["apiId"]


@pytest.fixture
def url_function(lambda_client, create_function):
    name = create_function(HANDLER)["FunctionName"]
    config = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    return name, config["FunctionUrl"]


def test_url_config_lifecycle(lambda_client, create_function, server):
    name = create_function(HANDLER, Publish=True)["FunctionName"]
    created = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE",
                                                       Cors={"AllowOrigins": ["https://app.example"], "MaxAge": 60})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    match = URL.match(created["FunctionUrl"])
    assert match and int(match.group(1)) != server.port  # a listener of its own
    url_id = url_id_of(created["FunctionUrl"])
    assert re.fullmatch(r"[a-z0-9]{32}", url_id)
    assert created["FunctionArn"] == function_arn(name)
    assert created["AuthType"] == "NONE" and "InvokeMode" not in created  # echoed only when given, as AWS
    assert created["Cors"] == {"AllowOrigins": ["https://app.example"], "MaxAge": 60}
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")

    got = lambda_client.get_function_url_config(FunctionName=name)
    assert got["FunctionUrl"] == created["FunctionUrl"] and "LastModifiedTime" in got
    updated = lambda_client.update_function_url_config(FunctionName=name, Cors={"AllowOrigins": ["*"]})
    assert updated["FunctionUrl"] == created["FunctionUrl"]  # the URL never changes
    assert updated["Cors"] == {"AllowOrigins": ["*"]} and updated["AuthType"] == "NONE"

    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    on_alias = lambda_client.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert on_alias["FunctionArn"] == function_arn(name) + ":live"
    assert on_alias["FunctionUrl"] != created["FunctionUrl"]
    listed = lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert sorted(c["FunctionUrl"] for c in listed) == sorted([created["FunctionUrl"], on_alias["FunctionUrl"]])

    lambda_client.delete_function_url_config(FunctionName=name)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_url_config(FunctionName=name)
    reply = call(host_form(server, url_id))
    assert reply.status == 403 and reply.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    with pytest.raises(ConnectionRefusedError):  # its listener is closed
        call(created["FunctionUrl"])
    alias_url_id = url_id_of(on_alias["FunctionUrl"])
    lambda_client.delete_alias(FunctionName=name, Name="live")  # the alias's URL goes with it
    assert call(path_form(server, alias_url_id)).status == 403
    with pytest.raises(ConnectionRefusedError):
        call(on_alias["FunctionUrl"])


def test_url_config_validation(lambda_client, create_function):
    name = create_function(Publish=True)["FunctionName"]
    # the model's enum and ranges are Coral's ValidationException (as recorded for invokeMode 'UNKNOWN':
    # test_lambda_url_invalid_invoke_mode); what this server cannot do is Lambda's InvalidParameterValue
    invalid = [
        (dict(AuthType="SOMETIMES"), "ValidationException"),
        (dict(AuthType="NONE", Cors={"AllowMethods": ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"]}),
         "ValidationException"),
        (dict(AuthType="NONE", Cors={"MaxAge": 86401}), "ValidationException"),
    ]
    for params, code in invalid:
        with pytest.raises(ClientError) as excinfo:
            lambda_client.create_function_url_config(FunctionName=name, **params)
        assert excinfo.value.response["Error"]["Code"] == code, params
    # a version number: only aliases get URLs; the model's pattern says so, before any lookup (as AWS)
    with pytest.raises(ClientError) as refused:
        lambda_client.create_function_url_config(FunctionName=name, Qualifier="1", AuthType="NONE")
    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value '1' at 'qualifier' failed to satisfy constraint: Member must "
                   "satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"}
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.create_function_url_config(FunctionName=name, Qualifier="no-such-alias", AuthType="NONE")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_url_config(FunctionName=name)


def test_url_config_refusals_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_url_config_exceptions, recorded against AWS): Create and
    Update say 'Function does not exist', Get and Delete 'The resource you requested does not exist.'"""
    name = create_function(Publish=True)["FunctionName"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    no_function = ("ResourceNotFoundException", 404, "Function does not exist")
    no_resource = ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    for call, answer in ((lambda_client.create_function_url_config, no_function),
                         (lambda_client.update_function_url_config, no_function),
                         (lambda_client.get_function_url_config, no_resource),
                         (lambda_client.delete_function_url_config, no_resource)):
        params = {"AuthType": "NONE"} if answer is no_function else {}
        assert aws_error(call, FunctionName=name + "-nope", **params) == answer
        assert aws_error(call, FunctionName=function_arn(name + "-nope"), **params) == answer
        assert aws_error(call, FunctionName=name, Qualifier="no-such-alias", **params) == answer
    for call in (lambda_client.update_function_url_config, lambda_client.get_function_url_config,
                 lambda_client.delete_function_url_config):
        params = {"AuthType": "NONE"} if call is lambda_client.update_function_url_config else {}
        assert aws_error(call, FunctionName=name, Qualifier="live", **params) == no_resource


def test_a_request_becomes_a_payload_2_0_event(url_function, server):
    name, url = url_function
    url_id = url_id_of(url)
    reply = call(url, "/orders/42?tag=a&tag=b&empty=&q=x%20y", "POST", body=b'{"n": 1}',
                 headers={"Content-Type": "application/json", "Cookie": "s=1; theme=dark", "X-Multi": "v1",
                          "User-Agent": "browser/1.0"})
    assert reply.status == 201, reply.body
    event = reply.json()
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/orders/42"
    assert event["rawQueryString"] == "tag=a&tag=b&empty=&q=x%20y"
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": "", "q": "x y"}
    assert event["cookies"] == ["s=1", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "v1" and event["headers"]["content-type"] == "application/json"
    assert event["body"] == '{"n": 1}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["apiId"] == context["domainPrefix"] == url_id
    assert context["domainName"] == "127.0.0.1"  # the host the client reached, as on AWS
    assert context["accountId"] == "anonymous"
    assert context["http"] == {"method": "POST", "path": "/orders/42", "protocol": "HTTP/1.1",
                               "sourceIp": "127.0.0.1", "userAgent": "browser/1.0"}
    assert context["requestId"] == reply.headers["x-amzn-RequestId"]
    assert re.match(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$", context["time"])
    assert isinstance(context["timeEpoch"], int)
    # Lambda's response mapping: status, headers, one Set-Cookie per cookie.
    assert reply.headers["X-Custom"] == "yes"
    assert reply.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2"]

    by_host = call(host_form(server, url_id), "/orders/42?tag=a", "GET").json()
    assert by_host["rawPath"] == "/orders/42" and by_host["queryStringParameters"] == {"tag": "a"}
    assert by_host["requestContext"]["domainName"] == f"{url_id}.lambda-url.us-east-1.localhost"
    by_path = call(path_form(server, url_id), "/orders/42?tag=a", "GET").json()
    assert by_path["rawPath"] == "/orders/42" and by_path["queryStringParameters"] == {"tag": "a"}
    assert "body" not in by_path


def test_binary_bodies_round_trip_base64_encoded(url_function):
    _name, url = url_function
    png = bytes(range(256)) * 4
    reply = call(url, "/?mode=png", "PUT", body=png, headers={"Content-Type": "image/png"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.body == png
    echoed = call(url, "/", "POST", body=png, headers={"Content-Type": "application/octet-stream"}).json()
    assert echoed["isBase64Encoded"] is True and base64.b64decode(echoed["body"]) == png


@pytest.mark.parametrize("mode, status, body", [
    ("bare", 200, b"Hello, world!"),  # a bare string is the body of a 200, as it is
    ("object", 200, b'{"message":"no statusCode"}'),  # other bare values: compact JSON
    ("number", 200, b"42"),
    ("string-status", 202, b'{"nested":[1,null]}'),  # a numeric string statusCode; an object body serialised
    ("fail", 502, b"Internal Server Error"),
    ("bad", 502, b"Internal Server Error"),
])
def test_response_mapping(url_function, mode, status, body):
    _name, url = url_function
    reply = call(url, f"/?mode={mode}")
    assert (reply.status, reply.body) == (status, body)
    if status == 200:
        assert reply.headers["Content-Type"].startswith("application/json")


def test_cors_preflight_is_answered_by_the_url_and_headers_override_the_function(lambda_client, create_function):
    name = create_function(HANDLER)["FunctionName"]
    url = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["x-token"],
              "ExposeHeaders": ["x-custom"], "MaxAge": 300, "AllowCredentials": True})["FunctionUrl"]
    preflight = call(url, "/anything", "OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-token"})
    assert preflight.status == 200  # the handler raises on OPTIONS: it was not invoked
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "x-token"
    assert preflight.headers["Access-Control-Max-Age"] == "300"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"

    actual = call(url, "/", "GET", headers={"Origin": "https://app.example"})
    assert actual.status == 201
    assert actual.headers.get_all("Access-Control-Allow-Origin") == ["https://app.example"]
    assert actual.headers["Access-Control-Expose-Headers"] == "x-custom"
    other = call(url, "/", "OPTIONS", headers={"Origin": "https://elsewhere.example",
                                               "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_throttled_url_request_gets_429(lambda_client, url_function):
    name, url = url_function
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    reply = call(url)
    assert reply.status == 429
    assert reply.headers["x-amzn-ErrorType"] == "TooManyRequestsException"


def test_an_alias_url_runs_the_aliased_version(lambda_client, create_function):
    name = create_function("def handler(event, context):\n    return context.function_version\n",
                           Publish=True)["FunctionName"]
    lambda_client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    url = lambda_client.create_function_url_config(FunctionName=name, Qualifier="prod", AuthType="NONE")["FunctionUrl"]
    assert call(url).body == b"1"  # the version's bare string answer, as it is


def test_aws_iam_urls_need_a_signed_request(lambda_client, create_function):
    name = create_function(HANDLER)["FunctionName"]
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    assert call(url).status == 403
    request = AWSRequest(method="GET", url=url.rstrip("/") + "/signed", headers={})
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "lambda", "us-east-1").add_auth(request)
    reply = call(url, "/signed", headers=dict(request.headers.items()))
    assert reply.status == 201
    context = reply.json()["requestContext"]
    assert context["accountId"] == ACCOUNT
    assert context["authorizer"]["iam"]["accessKey"] == "AKIDEXAMPLE"


def test_the_url_survives_a_restart_and_the_aws_cli_manages_it(fresh_server):
    fresh_server.start()
    client = fresh_server.client()
    client.create_function(FunctionName="web", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": HANDLER})})
    created = json.loads(aws_cli(fresh_server, "lambda", "create-function-url-config", "--function-name", "web",
                                 "--auth-type", "NONE").stdout)
    fresh_server.restart()
    got = json.loads(aws_cli(fresh_server, "lambda", "get-function-url-config", "--function-name", "web").stdout)
    assert got["FunctionUrl"] == created["FunctionUrl"]
    assert call(created["FunctionUrl"], "/?mode=bare").body == b"Hello, world!"


def test_every_http_client_reaches_function_url(url_function):
    """Python's requests and Node's fetch ask the system resolver, which knows no `*.localhost`
    names here: the URL's own port is what they reach."""
    import requests

    _name, url = url_function
    reply = requests.get(url + "echo?mode=bare", timeout=60)
    assert reply.status_code == 200 and reply.text == "Hello, world!"
    node, _runtime = host_node()
    script = ("fetch(process.argv[1]).then(async r => console.log(r.status, await r.text()))"
              ".catch(e => { console.error(e); process.exit(1); })")
    fetched = subprocess.run([node, "-e", script, url + "echo?mode=bare"], capture_output=True, text=True,
                             timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip() == "200 Hello, world!"


def test_a_port_in_use_is_skipped_and_none_turns_listeners_off(tmp_path):
    # Another program holds the range's first port: the URL gets the next one.
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        first = squatter.getsockname()[1]
        srv = Server(tmp_path / "ranged", args=["--function-url-ports", f"{first}-{first + 20}"])
        with running(srv):
            client = srv.client()
            client.create_function(FunctionName="web", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                   Code={"ZipFile": make_zip({"app.py": HANDLER})})
            url = client.create_function_url_config(FunctionName="web", AuthType="NONE")["FunctionUrl"]
            port = int(URL.match(url).group(1))
            assert first < port <= first + 20
            assert call(url, "/?mode=bare").body == b"Hello, world!"
    srv = Server(tmp_path / "off", args=["--function-url-ports", "none"])
    with running(srv):
        client = srv.client()
        client.create_function(FunctionName="web", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": HANDLER})})
        url = client.create_function_url_config(FunctionName="web", AuthType="NONE")["FunctionUrl"]
        assert re.fullmatch(rf"http://[a-z0-9]{{32}}\.lambda-url\.us-east-1\.localhost:{srv.port}/", url)
        assert call(url, "/?mode=bare").body == b"Hello, world!"


def test_a_url_request_to_a_version_being_created_is_refused_as_invoke_is(lambda_client, create_function):
    """A version published with an update is Pending until the update is done; Invoke then answers
    AWS's ResourceConflictException, and so must the URL of an alias pointing at it."""
    name = create_function("def handler(event, context):\n    return context.function_version\n",
                           Publish=True)["FunctionName"]
    lambda_client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    url = lambda_client.create_function_url_config(FunctionName=name, Qualifier="prod", AuthType="NONE")["FunctionUrl"]

    def state(version: str) -> str:
        return lambda_client.get_function_configuration(FunctionName=name, Qualifier=version)["State"]

    for attempt in range(10):  # the version is Pending for half a second: catch a request inside it
        wait_updated(lambda_client, name)
        code = make_zip({"app.py": f"def handler(event, context):\n    return {attempt}\n"})
        version = lambda_client.update_function_code(FunctionName=name, ZipFile=code, Publish=True)["Version"]
        lambda_client.update_alias(FunctionName=name, Name="prod", FunctionVersion=version)
        if state(version) != "Pending":
            continue
        reply = call(url)
        if state(version) == "Pending":  # Pending before and after: so it was during the request
            assert reply.status == 409 and reply.headers["x-amzn-ErrorType"] == "ResourceConflictException"
            assert reply.json() == {"Message": "The operation cannot be performed at this time. The function is "
                                               "currently in the following state: Pending"}
            break
    else:
        raise AssertionError("no request reached the URL while the version was Pending")
    wait_updated(lambda_client, name)
    assert call(url).status == 200


def test_a_url_request_s_trace_header_reaches_the_function(lambda_client, create_function):
    """As for Invoke, the request's X-Amzn-Trace-Id is the invocation's `_X_AMZN_TRACE_ID`; without
    one the invocation starts a trace of its own."""
    name = create_function("import os\n\ndef handler(event, context):\n    return os.environ['_X_AMZN_TRACE_ID']\n"
                           )["FunctionName"]
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    # the function sees it as it was sent (with main's recursion detection, plus Lambda's Lineage entry)
    assert call(url, headers={"X-Amzn-Trace-Id": trace}).body.decode().split(";Lineage=")[0] == trace
    fresh = call(url).body.decode()
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0(;Lineage=.*)?", fresh), fresh

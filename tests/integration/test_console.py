"""The web console in a real browser: headless Chromium (Debian's package) driven by Playwright,
against a real server, using only what a user sees (labels, buttons, text)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from playwright.sync_api import expect, sync_playwright

from conftest import ROLE, Server, make_zip, running

from .helpers import http_request, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As the machine's notes say: without the background-networking flags Chromium keeps trying to
#: reach Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

HOSTILE = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'


@pytest.fixture(scope="module")
def browser():
    assert shutil.which(CHROMIUM), ("the console tests need Chromium: apt-get install chromium "
                                    "(scripts/ensure-test-packages installs it when run as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)  # a loaded machine's cold start; every wait ends on what the page shows
    yield page
    context.close()


def test_the_root_sends_a_browser_to_the_console_and_the_api_keeps_its_answers(server):
    status, headers, _ = http_request(server.url + "/console/")
    assert status == 200 and "script-src 'self'" in headers.get("Content-Security-Policy", "")
    status, _, body = http_request(server.url + "/console/../../etc/passwd")
    assert status == 404
    assert http_request(server.url + "/console/index.html")[0] == 404  # the page is /console/, told the region


def _save_and_run_test_event(page, name: str, event: dict) -> object:
    """On a function's page: save `event` as a test event called `name`, run it, return the result."""
    page.get_by_role("link", name="Test").click()
    page.get_by_label("Event JSON").fill(json.dumps(event))
    page.get_by_label("Event name").fill(name)
    page.get_by_role("button", name="Save event").click()
    page.get_by_text(f"Saved {name}.").wait_for()
    page.get_by_role("button", name="Test", exact=True).click()
    page.get_by_role("heading", name="Execution result: succeeded").wait_for()
    return json.loads(page.locator("#test-response").inner_text())


def _call(server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, method=method, data=body)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        return error.code, {"type": error.headers.get("x-amzn-ErrorType", ""), **json.loads(error.read() or b"{}")}


def test_saved_test_events_are_kept_per_function_with_the_consoles_rules(server, create_function):
    name = create_function()["FunctionName"]
    events = f"/_lambdalet/console/functions/{name}/test-events"
    assert _call(server, "GET", events) == (200, {"TestEvents": []})
    assert _call(server, "PUT", f"{events}/first", b'{"n": 1}') == (200, {"Name": "first", "Event": '{"n": 1}'})
    assert _call(server, "PUT", f"{events}/first", b'{"n": 2}')[0] == 200  # replaced
    for n in range(2, 11):
        assert _call(server, "PUT", f"{events}/event-{n}", b"{}")[0] == 200
    listed = _call(server, "GET", events)[1]["TestEvents"]
    assert len(listed) == 10 and {"Name": "first", "Event": '{"n": 2}'} in listed
    for path, body, code in ((f"{events}/eleventh", b"{}", "InvalidParameterValueException"),
                             (f"{events}/{'x' * 26}", b"{}", "InvalidParameterValueException"),
                             (f"{events}/bad%20name", b"{}", "InvalidParameterValueException"),
                             (f"{events}/first", b"not json", "InvalidParameterValueException"),
                             (f"/_lambdalet/console/functions/{name}-missing/test-events/x", b"{}",
                              "ResourceNotFoundException")):
        status, error = _call(server, "PUT", path, body)
        assert (status, error["type"]) == ((404 if "Resource" in code else 400), code), path
    assert _call(server, "DELETE", f"{events}/first")[0] == 204
    assert _call(server, "DELETE", f"{events}/first")[0] == 404
    assert len(_call(server, "GET", events)[1]["TestEvents"]) == 9


def test_a_page_of_another_origin_cannot_drive_the_api(server):
    """Cross-site request forgery: any site a user visits could otherwise POST to their loopback server."""
    request = urllib.request.Request(server.url + "/2015-03-31/functions", method="POST", data=b'{"FunctionName": "x"}',
                                     headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert refused.value.headers["x-amzn-ErrorType"].startswith("AccessDeniedException")
    same_origin = urllib.request.Request(server.url + "/2015-03-31/functions/", headers={"Origin": server.url})
    with urllib.request.urlopen(same_origin, timeout=30) as answer:
        assert answer.status == 200


def test_create_test_configure_edit_and_delete_a_function_in_the_browser(server, lambda_client, page):
    name = f"console-{uuid.uuid4().hex[:8]}"
    page.goto(server.url + "/")
    assert page.url.endswith("/console/")
    page.get_by_role("heading", name="Functions").wait_for()

    # create from the inline editor, with a handler that prints something hostile
    page.get_by_role("button", name="Create function").click()
    page.get_by_label("Function name").fill(name)
    page.get_by_label("Runtime").select_option("python3.12")
    page.get_by_label("Code", exact=True).fill(
        "def lambda_handler(event, context):\n"
        f"    print({HOSTILE!r})\n"
        "    return {'got': event}\n")
    page.get_by_role("button", name="Create function").click()
    page.get_by_role("heading", name=name).wait_for()
    assert lambda_client.get_function_configuration(FunctionName=name)["State"] == "Active"

    # a test event: the result, REPORT's numbers and the log tail, the hostile line as text
    assert _save_and_run_test_event(page, "hello-event", {"hello": "console"}) == {"got": {"hello": "console"}}
    log = page.locator("#test-log").inner_text()
    assert HOSTILE in log and "REPORT RequestId:" in log
    assert re.search(r"Duration\s*[\d.]+ ms", page.locator(".metrics").inner_text())
    assert "Init Duration" in page.locator(".metrics").inner_text()  # the first invoke was a cold start
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main script").count() == 0

    # the saved event is in the database: a new page finds it
    page.reload()
    page.get_by_label("Saved events").select_option("hello-event")
    assert json.loads(page.get_by_label("Event JSON").input_value()) == {"hello": "console"}
    page.get_by_label("Event name").fill("bad name!")
    page.get_by_role("button", name="Save event").click()
    page.get_by_text("InvalidParameterValueException").wait_for()

    # monitoring: the charts count the test invoke, and follow new ones
    page.get_by_role("link", name="Monitor").click()
    page.locator("#charts figure").filter(has_text="Invocations: 1").wait_for()
    page.locator("#charts figure").filter(has_text="Cold starts: 1").wait_for()
    for _ in range(2):
        lambda_client.invoke(FunctionName=name)
    page.locator("#charts figure").filter(has_text="Invocations: 3").wait_for()  # redrawn every 5 s

    # configuration: the API's validation message beside the field, then a change that lands
    page.get_by_role("link", name="Configuration").click()
    page.get_by_label("Memory (MB)").fill("10241")
    page.get_by_role("button", name="Save", exact=True).click()
    refusal = page.locator("#memory-error")
    refusal.filter(has_text="MemorySize").wait_for()
    page.get_by_label("Memory (MB)").fill("256")
    page.get_by_label("Ephemeral storage (MB)").fill("100")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator("#ephemeral-error").filter(has_text="ephemeralStorage").wait_for()
    page.get_by_label("Ephemeral storage (MB)").fill("1024")
    page.get_by_label("Description").fill(HOSTILE)
    page.get_by_label("Log format").select_option("JSON")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved.").wait_for()
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert (config["MemorySize"], config["Description"], config["EphemeralStorage"]) == (256, HOSTILE, {"Size": 1024})
    assert config["LoggingConfig"]["LogFormat"] == "JSON"
    page.get_by_label("Log format").select_option("Text")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved.").wait_for()
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["LoggingConfig"]["LogFormat"] == "Text"
    assert after["RevisionId"] in page.locator("main dl").last.inner_text()  # the details, redrawn, as text
    page.get_by_label("Tags (key=value, one per line)").fill(f"team={HOSTILE}")
    page.get_by_role("button", name="Save tags").click()
    page.get_by_text("ValidationException").wait_for()  # tag values are AWS's characters only
    page.get_by_label("Tags (key=value, one per line)").fill("team=data/platform@example\nstage=test")
    page.get_by_role("button", name="Save tags").click()
    page.get_by_text("Tags saved.").wait_for()
    assert lambda_client.list_tags(Resource=config["FunctionArn"])["Tags"] == {"team": "data/platform@example",
                                                                               "stage": "test"}
    page.get_by_label("Tags (key=value, one per line)").fill("stage=prod")
    page.get_by_role("button", name="Save tags").click()
    page.get_by_text("Tags saved.").wait_for()
    assert lambda_client.list_tags(Resource=config["FunctionArn"])["Tags"] == {"stage": "prod"}

    # the list shows it, filtered by name, the description as text
    page.get_by_role("link", name="Functions").first.click()
    page.get_by_label("Filter functions by name").fill(name)
    row = page.get_by_role("row").filter(has_text=name)
    row.wait_for()
    assert HOSTILE in row.inner_text() and page.evaluate("window.__pwned") is None

    # the code editor opens the package, and a deploy changes what runs
    row.get_by_role("link", name=name).click()
    source = page.get_by_label("Source")
    source.wait_for()
    assert "def lambda_handler" in source.input_value()
    source.fill("def lambda_handler(event, context):\n    return 'edited in the console'\n")
    page.get_by_role("button", name="Deploy").click()
    page.get_by_text("Deployed:").wait_for()
    assert json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read()) == "edited in the console"

    # a version published with its description, an alias on it
    page.get_by_role("link", name="Versions").click()
    page.get_by_label("Description of the new version").fill("from the console")
    page.get_by_role("button", name="Publish new version").click()
    page.get_by_text("Published version 1.").wait_for()
    page.get_by_label("Alias name").fill("live")
    page.get_by_label("Version", exact=True).select_option("1")
    page.get_by_role("button", name="Create or update alias").click()
    page.get_by_role("row").filter(has_text="live").wait_for()
    assert lambda_client.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    assert lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")["Description"] == "from the console"

    # the live log follows the function's log group
    page.get_by_role("link", name="Logs").click()
    page.locator("#live-log").filter(has_text="REPORT RequestId").wait_for()
    page.get_by_role("row").filter(has_text="[$LATEST]").first.wait_for()  # the log streams, newest first
    before = page.locator("#live-log .log-line").count()
    lambda_client.invoke(FunctionName=name)  # new lines appear as they are written
    page.locator("#live-log .log-line").nth(before).wait_for()

    # delete, confirmed in the dialog
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="Functions").wait_for()
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=name)


def test_a_function_from_an_uploaded_zip_and_the_apis_refusal_for_a_bad_name(server, lambda_client, page, tmp_path):
    package = tmp_path / "package.zip"
    package.write_bytes(make_zip({"main.py": "def run(event, context):\n    return 'uploaded'\n"}))
    name = f"console-zip-{uuid.uuid4().hex[:8]}"
    page.goto(f"{server.url}/console/#/create")
    page.get_by_label("Function name").fill("not a valid name!")
    page.get_by_role("button", name="Create function").click()
    page.get_by_text("ValidationException").wait_for()  # botocore's model constraint, in AWS's words
    page.get_by_label("Function name").fill(name)
    page.get_by_label("Code source").select_option("zip")
    page.get_by_label("Runtime").select_option("python3.12")
    page.get_by_label("Handler").fill("main.run")
    page.get_by_label("Deployment package (.zip)").set_input_files(str(package))
    page.get_by_role("button", name="Create function").click()
    page.get_by_role("heading", name=name).wait_for()
    try:
        assert json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read()) == "uploaded"
    finally:
        lambda_client.delete_function(FunctionName=name)


def test_url_concurrency_asynchronous_settings_triggers_layers_and_account_pages(server, lambda_client, create_function, page):
    name = create_function("def handler(event, context):\n    return {'statusCode': 200, 'body': 'from the url'}\n")["FunctionName"]
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
    page.goto(f"{server.url}/console/#/functions/{name}/url")
    page.get_by_text("This function has no URL.").wait_for()
    page.get_by_role("button", name="Create function URL").click()
    link = page.locator("#function-url")
    link.wait_for()
    url = link.inner_text()
    assert url == lambda_client.get_function_url_config(FunctionName=name)["FunctionUrl"]
    status, _, body = http_request(url)
    assert (status, body) == (200, b"from the url")

    page.get_by_role("link", name="Concurrency").click()
    unreserved = lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    page.get_by_label("Reserved concurrent executions").fill("5")
    page.get_by_role("button", name="Save reserved concurrency").click()
    expect(page.locator("main dl")).to_contain_text(f"Unreserved{unreserved - 5}")  # the page redrawn from the API
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    page.get_by_label("Reserved concurrent executions").fill("")
    page.get_by_role("button", name="Save reserved concurrency").click()
    expect(page.locator("main dl")).to_contain_text(f"Unreserved{unreserved}")
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=name)

    page.get_by_role("link", name="Asynchronous invocation").click()
    page.get_by_label("Retry attempts").select_option("0")
    page.get_by_label("On-failure destination ARN").fill("not-an-arn")
    page.get_by_role("button", name="Save asynchronous configuration").click()
    page.get_by_text("ValidationException").wait_for()  # the API's own refusal
    page.get_by_label("On-failure destination ARN").fill("")
    page.get_by_role("button", name="Save asynchronous configuration").click()
    page.get_by_text("Saved.").wait_for()
    assert lambda_client.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0

    scheduler = server.client("scheduler")
    arn = lambda_client.get_function_configuration(FunctionName=name)["FunctionArn"]
    scheduler.create_schedule(Name=f"{name}-nightly", ScheduleExpression="rate(1 day)", FlexibleTimeWindow={"Mode": "OFF"},
                              Target={"Arn": arn, "RoleArn": ROLE})
    layer = lambda_client.publish_layer_version(LayerName=f"{name}-layer", Description="console layer",
                                                Content={"ZipFile": make_zip({"python/lib.py": "X = 1\n"})})
    try:
        page.get_by_role("link", name="Triggers").click()
        page.get_by_text("No event source mapping").wait_for()
        page.get_by_role("row").filter(has_text=f"{name}-nightly").wait_for()  # the schedule that targets it
        page.get_by_label("Event source ARN").fill("arn:aws:sqs:us-east-1:000000000000:no-such-queue")
        page.get_by_role("button", name="Add event source mapping").click()
        page.locator("main .error").filter(has_text="Exception").wait_for()  # the API's refusal, shown

        page.get_by_role("link", name="Layers").click()
        page.get_by_role("heading", name="Layers").wait_for()
        page.get_by_role("link", name=f"{name}-layer").click()
        page.get_by_role("row").filter(has_text="console layer").filter(has_text=layer["LayerVersionArn"]).wait_for()
    finally:
        scheduler.delete_schedule(Name=f"{name}-nightly")
        lambda_client.delete_layer_version(LayerName=f"{name}-layer", VersionNumber=layer["Version"])
    page.get_by_role("link", name="Account settings").click()
    page.get_by_text("Concurrent executions (limit)").wait_for()
    assert str(lambda_client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]) in page.locator("main").inner_text()


ROOT_KEY, ROOT_SECRET = "LKIACONSOLEROOTKEY01", "console-root-secret-0123456789"


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory):
    root = {"LAMBDALET_ROOT_ACCESS_KEY_ID": ROOT_KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET}
    with running(Server(tmp_path_factory.mktemp("console-iam"), extra_env=root, args=["--auth", "iam"])) as srv:
        iam = boto3.client("iam", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=ROOT_KEY,
                           aws_secret_access_key=ROOT_SECRET)
        iam.create_role(RoleName=ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
        yield srv


def test_under_auth_iam_the_console_signs_in_and_signs_every_call(iam_server, page):
    lam = boto3.client("lambda", endpoint_url=iam_server.url, region_name="us-east-1", aws_access_key_id=ROOT_KEY,
                       aws_secret_access_key=ROOT_SECRET, config=Config(retries={"max_attempts": 1}))
    name = f"signed-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    print('signed call')\n"
                                                             "    return event\n"})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    # the console's own data is authenticated too, not only the Lambda API
    assert _call(iam_server, "GET", f"/_lambdalet/console/functions/{name}/test-events")[0] == 403

    page.goto(iam_server.url + "/")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("Access key ID").fill(ROOT_KEY)
    page.get_by_label("Secret access key").fill("not-the-secret")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("InvalidSignatureException").wait_for()  # the server's refusal, shown on the sign-in page
    page.get_by_label("Access key ID").fill(ROOT_KEY)
    page.get_by_label("Secret access key").fill(ROOT_SECRET)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("row").filter(has_text=name).get_by_role("link", name=name).click()

    assert _save_and_run_test_event(page, "signed-event", {"signed": True}) == {"signed": True}

    page.get_by_role("link", name="Monitor").click()  # a signed GET with a query string
    page.locator("#charts figure").filter(has_text="Invocations: 1").wait_for()
    page.get_by_role("link", name="Logs").click()  # CloudWatch Logs, signed for "logs"
    page.locator("#live-log").filter(has_text="signed call").wait_for()
    page.get_by_role("link", name="Triggers").click()  # EventBridge Scheduler, signed for "scheduler"
    page.get_by_text("No schedule targets this function").wait_for()

    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()


def test_a_user_without_permission_sees_access_denied_as_the_aws_console_shows_it(iam_server, page):
    """A user who may list functions but not read one: the list shows, the function's page says why not."""
    root = {"endpoint_url": iam_server.url, "region_name": "us-east-1", "aws_access_key_id": ROOT_KEY,
            "aws_secret_access_key": ROOT_SECRET}
    lam, iam = boto3.client("lambda", **root), boto3.client("iam", **root)
    name = f"private-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return event\n"})})
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="list", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:ListFunctions", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]

    page.goto(iam_server.url + "/")
    page.get_by_label("Access key ID").fill(key["AccessKeyId"])
    page.get_by_label("Secret access key").fill(key["SecretAccessKey"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("row").filter(has_text=name).get_by_role("link", name=name).click()
    page.get_by_role("heading", name="Access denied").wait_for()
    denied = page.locator("pre.denied").inner_text()
    assert denied == (f"User: arn:aws:iam::000000000000:user/{user} is not authorized to perform: lambda:GetFunction "
                      f"on resource: arn:aws:lambda:us-east-1:000000000000:function:{name} because no identity-based "
                      "policy allows the lambda:GetFunction action")
    assert page.get_by_role("link", name="Sign in as someone else").is_visible()


def test_a_urls_auth_type_invoke_mode_and_whole_cors_configuration_are_edited(server, lambda_client, create_function,
                                                                              page):
    name = create_function("def handler(event, context):\n    return {'statusCode': 200, 'body': 'cors'}\n")["FunctionName"]
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
    page.goto(f"{server.url}/console/#/functions/{name}/url")
    page.get_by_label("CORS allowed origins (comma-separated)").fill("https://app.example")
    page.get_by_role("button", name="Create function URL").click()
    page.locator("#function-url").wait_for()
    assert lambda_client.get_function_url_config(FunctionName=name)["Cors"] == {"AllowOrigins": ["https://app.example"]}

    page.get_by_label("CORS allowed methods").fill("GET, POST")
    page.get_by_label("CORS allowed headers").fill("content-type, x-custom")
    page.get_by_label("CORS exposed headers").fill("x-request-id")
    page.get_by_label("CORS max age (seconds)").fill("300")
    page.get_by_label("CORS allow credentials").check()
    page.get_by_label("Auth type").select_option("AWS_IAM")
    page.get_by_role("button", name="Save URL settings").click()
    expect(page.locator("main dl")).to_contain_text("Auth typeAWS_IAM")  # redrawn from the API
    config = lambda_client.get_function_url_config(FunctionName=name)
    assert config["AuthType"] == "AWS_IAM" and config["InvokeMode"] == "BUFFERED"
    assert config["Cors"] == {"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
                              "AllowHeaders": ["content-type", "x-custom"], "ExposeHeaders": ["x-request-id"],
                              "MaxAge": 300, "AllowCredentials": True}
    # cleared fields are cleared: an update replaces Cors as a whole, as on AWS
    page.get_by_label("CORS allowed methods").fill("")
    page.get_by_label("CORS allow credentials").uncheck()
    page.get_by_role("button", name="Save URL settings").click()
    page.wait_for_function("() => !document.querySelector('#url-credentials')?.checked")
    wait_until(lambda: "AllowMethods" not in lambda_client.get_function_url_config(FunctionName=name)["Cors"],
               what="the methods to be cleared")
    assert lambda_client.get_function_url_config(FunctionName=name)["Cors"].get("AllowCredentials") in (None, False)


def test_a_mapping_is_added_with_its_filters_batching_window_and_item_failures(tmp_path, moto, page):
    """An SQS mapping made in the console carries what the form says, and its filter applies."""
    sqs = moto.client("sqs")
    queue = f"console-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    with running(Server(tmp_path / "data", extra_env={"AWS_ENDPOINT_URL": moto.url})) as srv:
        lam = srv.client()
        name = "mapped"
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler", Code={
            "ZipFile": make_zip({"app.py": "def handler(event, context):\n"
                                           "    print('got', [r['body'] for r in event['Records']])\n"
                                           "    return {'batchItemFailures': []}\n"})})
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        page.goto(f"{srv.url}/console/#/functions/{name}/triggers")
        page.get_by_label("Event source ARN").fill(f"arn:aws:sqs:us-east-1:123456789012:{queue}")
        page.get_by_label("Batch size").fill("5")
        page.get_by_label("Batching window (seconds)").fill("1")
        page.get_by_label("Filter patterns (one JSON pattern per line)").fill('{"body": {"kind": ["order"]}}')
        page.get_by_label("Report batch item failures").check()
        page.get_by_role("button", name="Add event source mapping").click()
        page.get_by_role("row").filter(has_text=queue).filter(has_text='{"body": {"kind": ["order"]}}').wait_for()
        mapping = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"][0]
        assert mapping["BatchSize"] == 5 and mapping["MaximumBatchingWindowInSeconds"] == 1
        assert mapping["FilterCriteria"] == {"Filters": [{"Pattern": '{"body": {"kind": ["order"]}}'}]}
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "refund"}))  # filtered out
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "order"}))
        logs = srv.client("logs")
        wait_until(lambda: any('"kind": "order"' in e["message"] for e in logs.filter_log_events(
            logGroupName=f"/aws/lambda/{name}").get("events", [])) if _has_group(logs, name) else False,
            timeout=60, interval=0.5, what="the matching message to reach the function")
        def drained() -> bool:  # both taken off the queue: the refund dropped by the filter, as Lambda drops it
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            return attributes["ApproximateNumberOfMessages"] == "0" == attributes["ApproximateNumberOfMessagesNotVisible"]

        wait_until(drained, timeout=60, interval=0.5, what="the queue to be drained")
        messages = [e["message"] for e in logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]]
        assert not any("refund" in m for m in messages)


def test_a_stream_mappings_retries_bisect_destination_and_parallelization_are_changed(tmp_path, moto, page):
    """A Kinesis mapping's form has the stream settings too, each filled with the mapping's value."""
    stream = f"console-edit-{uuid.uuid4().hex[:8]}"
    moto.client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    stream_arn = wait_until(lambda: (d := moto.client("kinesis").describe_stream(StreamName=stream)["StreamDescription"])
                            ["StreamStatus"] == "ACTIVE" and d["StreamARN"], what="the stream to be active")
    failures = moto.client("sqs").create_queue(QueueName=f"{stream}-failed")["QueueUrl"]
    failures_arn = moto.client("sqs").get_queue_attributes(QueueUrl=failures, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    with running(Server(tmp_path / "data", extra_env={"AWS_ENDPOINT_URL": moto.url})) as srv:
        lam = srv.client()
        name = "streamed"
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler", Code={
            "ZipFile": make_zip({"app.py": "def handler(event, context):\n    return None\n"})})
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        page.goto(f"{srv.url}/console/#/functions/{name}/triggers")
        page.get_by_label("Event source ARN").fill(stream_arn)
        page.get_by_label("Starting position (streams)").select_option("TRIM_HORIZON")
        page.get_by_label("Maximum retry attempts (streams)").fill("5")
        page.get_by_role("button", name="Add event source mapping").click()
        mapping_row = page.get_by_role("row").filter(has_text=stream_arn).filter(
            has=page.get_by_role("button", name="Edit", exact=True))
        mapping_row.get_by_role("button", name="Edit", exact=True).click()
        form = page.get_by_role("form", name=f"Settings of the mapping from {stream_arn}")
        expect(form.get_by_label("Batch size")).to_have_value("100")
        expect(form.get_by_label("Maximum retry attempts")).to_have_value("5")
        expect(form.get_by_label("Split the batch on a function error")).not_to_be_checked()
        expect(form.get_by_label("On-failure destination ARN")).to_have_value("")
        expect(form.get_by_label("Concurrent batches per shard (parallelization factor)")).to_have_value("1")
        mapping_id = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"][0]["UUID"]

        form.get_by_label("Concurrent batches per shard (parallelization factor)").fill("11")
        form.get_by_role("button", name="Save mapping settings").click()
        expect(page.locator(f"#mapping-{mapping_id}-parallelization-error")).to_contain_text("parallelizationFactor")
        assert lam.get_event_source_mapping(UUID=mapping_id)["ParallelizationFactor"] == 1

        form.get_by_label("Concurrent batches per shard (parallelization factor)").fill("2")
        form.get_by_label("Maximum retry attempts").fill("2")
        form.get_by_label("Split the batch on a function error").check()
        form.get_by_label("On-failure destination ARN").fill(failures_arn)
        form.get_by_role("button", name="Save mapping settings").click()
        page.get_by_role("status").filter(has_text=f"Saved the settings of the mapping from {stream_arn}").wait_for()
        got = lam.get_event_source_mapping(UUID=mapping_id)
        assert (got["ParallelizationFactor"], got["MaximumRetryAttempts"],
                got["BisectBatchOnFunctionError"]) == (2, 2, True)
        assert got["DestinationConfig"] == {"OnFailure": {"Destination": failures_arn}}
        assert got["BatchSize"] == 100

        mapping_row.get_by_role("button", name="Edit", exact=True).click()
        expect(form.get_by_label("On-failure destination ARN")).to_have_value(failures_arn)
        form.get_by_label("On-failure destination ARN").fill("")
        form.get_by_role("button", name="Save mapping settings").click()
        wait_until(lambda: lam.get_event_source_mapping(UUID=mapping_id)["DestinationConfig"] == {"OnFailure": {}},
                   what="the destination to be removed")


def _has_group(logs, name: str) -> bool:
    return bool(logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"])


def test_a_mappings_batch_size_and_filter_are_changed_in_its_edit_form(tmp_path, moto, page):
    """The edit form starts from the mapping's settings, shows Lambda's refusal beside the field (and
    changes nothing then), and what it saves is what the poller applies."""
    sqs = moto.client("sqs")
    queue = f"console-edit-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
    old_filter, new_filter = '{"body": {"kind": ["order"]}}', '{"body": {"kind": ["refund"]}}'
    with running(Server(tmp_path / "data", extra_env={"AWS_ENDPOINT_URL": moto.url})) as srv:
        lam, logs = srv.client(), srv.client("logs")
        name = "edited"
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler", Code={
            "ZipFile": make_zip({"app.py": "def handler(event, context):\n"
                                           "    print('got', [r['body'] for r in event['Records']])\n"})})
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        page.goto(f"{srv.url}/console/#/functions/{name}/triggers")
        page.get_by_label("Event source ARN").fill(arn)
        page.get_by_label("Batch size").fill("5")
        page.get_by_label("Batching window (seconds)").fill("1")
        page.get_by_label("Filter patterns (one JSON pattern per line)").fill(old_filter)
        page.get_by_label("Report batch item failures").check()
        page.get_by_role("button", name="Add event source mapping").click()
        mapping_row = page.get_by_role("row").filter(has_text=queue).filter(
            has=page.get_by_role("button", name="Edit", exact=True))
        mapping_row.filter(has_text=old_filter).wait_for()
        created = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"][0]
        mapping_id = created["UUID"]
        sent: list[dict] = []  # the UpdateEventSourceMapping bodies: only what changed
        page.on("request", lambda r: sent.append(json.loads(r.post_data or "{}"))
                if r.method == "PUT" and "/event-source-mappings/" in r.url else None)

        # the form opens on the mapping's own values; SQS has no stream settings to offer
        mapping_row.get_by_role("button", name="Edit", exact=True).click()
        form = page.get_by_role("form", name=f"Settings of the mapping from {arn}")
        expect(form.get_by_label("Batch size")).to_have_value("5")
        expect(form.get_by_label("Batching window (seconds)")).to_have_value("1")
        expect(form.get_by_label("Filter patterns (one JSON pattern per line)")).to_have_value(old_filter)
        expect(form.get_by_label("Report batch item failures")).to_be_checked()
        assert form.get_by_label("Maximum retry attempts").count() == 0

        # out of range: Lambda's own message beside the field, and the mapping as it was
        for refused, words in (("20000", "less than or equal to 10000"), ("0", "greater than or equal to 1")):
            form.get_by_label("Batch size").fill(refused)
            if refused == "0":
                form.get_by_label("Batch size").press("Enter")  # the keyboard submits the form
            else:
                form.get_by_role("button", name="Save mapping settings").click()
            beside = page.locator(f"#mapping-{mapping_id}-batch-error")
            expect(beside).to_contain_text("ValidationException")
            expect(beside).to_contain_text(f"Value '{refused}' at 'batchSize'")
            expect(beside).to_contain_text(words)
        form.get_by_label("Batch size").fill("5")  # as it was: not sent
        form.get_by_label("Filter patterns (one JSON pattern per line)").fill('{"body": not json')
        form.get_by_role("button", name="Save mapping settings").click()
        expect(page.locator(f"#mapping-{mapping_id}-filters-error")).to_have_text(
            "InvalidParameterValueException: Invalid filter pattern definition.")
        expect(page.locator(f"#mapping-{mapping_id}-batch-error")).to_have_text("")
        assert sent[-1] == {"FilterCriteria": {"Filters": [{"Pattern": '{"body": not json'}]}}
        unchanged = lam.get_event_source_mapping(UUID=mapping_id)
        assert (unchanged["BatchSize"], unchanged["FilterCriteria"], unchanged["LastModified"]) == (
            5, {"Filters": [{"Pattern": old_filter}]}, created["LastModified"])

        # a change that lands: the page, the API and the poller all have it
        form.get_by_label("Batch size").fill("3")
        form.get_by_label("Filter patterns (one JSON pattern per line)").fill(new_filter)
        form.get_by_role("button", name="Save mapping settings").click()
        page.get_by_role("status").filter(has_text=f"Saved the settings of the mapping from {arn}").wait_for()
        mapping_row.filter(has_text=new_filter).wait_for()  # the table redrawn from the API
        expect(mapping_row.get_by_role("cell").nth(2)).to_have_text("3")
        assert old_filter not in mapping_row.inner_text()
        got = lam.get_event_source_mapping(UUID=mapping_id)
        assert got["BatchSize"] == 3 and got["FilterCriteria"] == {"Filters": [{"Pattern": new_filter}]}
        assert got["MaximumBatchingWindowInSeconds"] == 1  # not sent, not changed
        assert got["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert sent[-1] == {"BatchSize": 3, "FilterCriteria": {"Filters": [{"Pattern": new_filter}]}}
        expect(mapping_row.get_by_role("button", name="Edit", exact=True)).to_be_focused()  # back where the user was
        wait_until(lambda: lam.get_event_source_mapping(UUID=mapping_id)["State"] == "Enabled", timeout=60,
                   interval=0.2, what="the poller to restart with the new settings")
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "order"}))  # only the old filter's
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "refund"}))
        wait_until(lambda: any('"kind": "refund"' in e["message"] for e in logs.filter_log_events(
            logGroupName=f"/aws/lambda/{name}").get("events", [])) if _has_group(logs, name) else False,
            timeout=60, interval=0.5, what="the message of the new filter to reach the function")

        def drained() -> bool:  # the order taken off the queue too: dropped by the new filter
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            return attributes["ApproximateNumberOfMessages"] == "0" == attributes["ApproximateNumberOfMessagesNotVisible"]

        wait_until(drained, timeout=60, interval=0.5, what="the queue to be drained")
        messages = [e["message"] for e in logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]]
        assert not any('"kind": "order"' in m for m in messages)

        # clearing: no filter and no item failures, as Lambda is told them ({"Filters": []}, [])
        page.keyboard.press("Enter")  # the focused Edit opens the form, the focus on its first field
        expect(form.get_by_label("Batch size")).to_be_focused()
        expect(form.get_by_label("Batch size")).to_have_value("3")
        form.get_by_label("Filter patterns (one JSON pattern per line)").fill("")
        form.get_by_label("Report batch item failures").uncheck()
        form.get_by_role("button", name="Save mapping settings").click()
        expect(mapping_row).not_to_contain_text(new_filter)  # redrawn: the filters column is empty
        assert sent[-1] == {"FilterCriteria": {"Filters": []}, "FunctionResponseTypes": []}
        cleared = lam.get_event_source_mapping(UUID=mapping_id)
        assert "FilterCriteria" not in cleared and cleared["FunctionResponseTypes"] == []
        assert cleared["BatchSize"] == 3

"""Commands for humans: `lambdalet deploy`, `invoke`, `ls`, `mappings`, `logs`, `nodes` and `rm`.

They are clients of the Lambda API (boto3), so they work against any Lambda-compatible endpoint:
`--endpoint-url`, else botocore's `AWS_ENDPOINT_URL_LAMBDA` / `AWS_ENDPOINT_URL`, else a local
Lambdalet on http://127.0.0.1:9001. With no AWS credentials configured they use placeholder ones
(Lambdalet does not check them). Every failure is one readable line on stderr and exit status 1.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from lambdalet import packaging

DEFAULT_ENDPOINT = "http://127.0.0.1:9001"
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lambdalet"
SHOW_PROGRESS_BYTES = 1024 * 1024
ENDPOINT_KEY = "lambdalet.endpoint_url"


def _endpoint(explicit: str | None, service: str = "lambda") -> str:
    """--endpoint-url, else botocore's AWS_ENDPOINT_URL_<SERVICE> (for `logs`, the Lambda one next:
    Lambdalet serves both on one port), else AWS_ENDPOINT_URL, else the local default."""
    if explicit:
        return explicit
    names = [f"AWS_ENDPOINT_URL_{service.upper()}"] + (["AWS_ENDPOINT_URL_LAMBDA"] if service != "lambda" else [])
    for name in (*names, "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return DEFAULT_ENDPOINT


def _has_credentials() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
                or Path("~/.aws/credentials").expanduser().exists())


def lambda_client(endpoint_url: str | None) -> Any:
    return aws_client("lambda", endpoint_url)


def logs_client() -> Any:
    """A CloudWatch Logs client for the endpoint of the running `api_command`."""
    return aws_client("logs", click.get_current_context().meta.get(ENDPOINT_KEY))


def aws_client(service: str, endpoint_url: str | None) -> Any:
    import boto3  # imported here: `lambdalet server` never needs it
    from botocore.config import Config

    session = boto3.session.Session()
    credentials = {} if _has_credentials() else {"aws_access_key_id": "lambdalet", "aws_secret_access_key": "lambdalet"}
    return session.client(service, endpoint_url=_endpoint(endpoint_url, service), region_name=session.region_name or "us-east-1",
                          config=Config(retries={"mode": "standard", "max_attempts": 2}, read_timeout=960,
                                        connect_timeout=5), **credentials)


def api_command(function: Callable[..., Any]) -> Callable[..., Any]:
    """--endpoint-url for a command, and every API failure as one line instead of a traceback."""

    @click.option("--endpoint-url", envvar="LAMBDALET_ENDPOINT_URL", metavar="URL",
                  help=f"Lambda API to talk to (default: $AWS_ENDPOINT_URL_LAMBDA, $AWS_ENDPOINT_URL or {DEFAULT_ENDPOINT}).")
    @functools.wraps(function)
    def wrapper(*args: Any, endpoint_url: str | None, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        click.get_current_context().meta[ENDPOINT_KEY] = endpoint_url
        try:
            return function(*args, client=lambda_client(endpoint_url), **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise click.ClickException(f"{error.get('Code', 'Error')}: {error.get('Message') or exc}") from None
        except EndpointConnectionError:
            raise click.ClickException(f"cannot reach the Lambda API at {_endpoint(endpoint_url)}; "
                                       "is `lambdalet server` running?") from None
        except BotoCoreError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _exists(client: Any, name: str) -> dict | None:
    try:
        return client.get_function_configuration(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        return None


def key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    """--env KEY=VALUE options as a dict (a malformed pair is click's usage error)."""
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        variables[key] = value
    return variables


def _zip_folder(path: Path) -> bytes:
    total = packaging.folder_size(path)
    if total < SHOW_PROGRESS_BYTES:
        return packaging.build_zip(path)
    with click.progressbar(length=total, label=f"Packaging {path}", file=sys.stderr) as bar:
        return packaging.build_zip(path, progress=bar.update)


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size / 1024:.1f} KB"


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", help="Function name (default: the folder's name).")
@click.option("--runtime", help="e.g. python3.12, nodejs20.x, provided.al2023 (default: guessed from the folder).")
@click.option("--handler", help="e.g. app.handler (default: guessed from the folder's files).")
@click.option("--memory", type=click.IntRange(128, 10240), help="MemorySize in MB.")
@click.option("--timeout", type=click.IntRange(1, 900), help="Timeout in seconds.")
@click.option("--env", multiple=True, metavar="KEY=VALUE", help="An environment variable (repeatable; replaces all).")
@click.option("--layer", multiple=True, metavar="ARN", help="A layer version ARN (repeatable, in order).")
@click.option("--role", default=DEFAULT_ROLE, show_default=True, help="Execution role ARN (new functions).")
@click.option("--publish", is_flag=True, help="Publish a version after deploying.")
@click.option("--alias", metavar="NAME", help="Point this alias at what was deployed (created if missing).")
@click.option("--url", is_flag=True, help="Make sure the function (or --alias) has a function URL and print it.")
@click.option("--watch", is_flag=True,
              help="Hot reload: the server reads the code live from PATH (on its own host) instead of a zip; "
                   "every edit is picked up by the next invoke.")
@click.option("--hot-reload-bucket", envvar="LAMBDALET_HOT_RELOAD_BUCKET", default="hot-reload", show_default=True,
              help="The server's hot-reload bucket name (its --hot-reload-bucket).")
@api_command
def deploy(path: Path, name: str | None, runtime: str | None, handler: str | None, memory: int | None,
           timeout: int | None, env: tuple[str, ...], layer: tuple[str, ...], role: str, publish: bool,
           alias: str | None, url: bool, watch: bool, hot_reload_bucket: str, client: Any) -> None:
    """Zip the folder PATH and create or update a function from it.

    Files excluded by .gitignore and .lambdaletignore are left out. Prints the function's ARN,
    and its URL with --url. With --watch nothing is uploaded: the function runs PATH itself.
    """
    started = time.monotonic()
    path = path.resolve()
    name = name or re.sub(r"[^a-zA-Z0-9_-]", "-", path.name)[:64]
    current = _exists(client, name)
    runtime = runtime or (current["Runtime"] if current else packaging.guess_runtime(path))
    if runtime is None:
        raise click.UsageError(f"cannot tell the runtime of {path}: pass --runtime")
    handler = handler or (current["Handler"] if current else packaging.guess_handler(path, runtime))
    if handler is None:
        raise click.UsageError(f"cannot find a handler in {path}: pass --handler (e.g. app.handler)")
    package = b"" if watch else _zip_folder(path)
    code = {"S3Bucket": hot_reload_bucket, "S3Key": str(path)} if watch else {"ZipFile": package}
    config: dict[str, Any] = {"Runtime": runtime, "Handler": handler}
    if memory:
        config["MemorySize"] = memory
    if timeout:
        config["Timeout"] = timeout
    if env:
        config["Environment"] = {"Variables": key_values(env)}
    if layer:
        config["Layers"] = list(layer)
    if len(package) >= SHOW_PROGRESS_BYTES:
        click.echo(f"Uploading {_megabytes(len(package))}...", err=True)
    if current is None:
        result = client.create_function(FunctionName=name, Role=role, Code=code, **config)
        client.get_waiter("function_active_v2").wait(FunctionName=name)
    else:
        client.update_function_code(FunctionName=name, **code)
        client.get_waiter("function_updated_v2").wait(FunctionName=name)
        result = client.update_function_configuration(FunctionName=name, **config)
        client.get_waiter("function_updated_v2").wait(FunctionName=name)
    arn, version = result["FunctionArn"], "$LATEST"
    if publish:
        version = client.publish_version(FunctionName=name)["Version"]
    source = f"code read live from {path}" if watch else _megabytes(len(package))
    click.echo(f"{'Created' if current is None else 'Updated'} {name} ({runtime}, {handler}, {source}) "
               f"in {time.monotonic() - started:.1f} s", err=True)
    click.echo(arn if version == "$LATEST" else f"{arn}:{version}")
    if alias:
        try:
            client.update_alias(FunctionName=name, Name=alias, FunctionVersion=version)
        except client.exceptions.ResourceNotFoundException:
            client.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)
        click.echo(f"alias {alias} -> {version}", err=True)
    if url:
        qualifier = {"Qualifier": alias} if alias else {}
        try:
            function_url = client.get_function_url_config(FunctionName=name, **qualifier)["FunctionUrl"]
        except client.exceptions.ResourceNotFoundException:
            function_url = client.create_function_url_config(FunctionName=name, AuthType="NONE",
                                                             **qualifier)["FunctionUrl"]
        click.echo(function_url)


def _read_payload(payload: str | None) -> bytes:
    if payload is None:
        return b"{}"
    if payload == "-":
        data = sys.stdin.buffer.read()
    elif payload.startswith("@"):
        try:
            data = Path(payload[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {payload[1:]}: {exc.strerror}", param_hint="PAYLOAD") from None
    else:
        data = payload.encode()
    try:
        json.loads(data)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PAYLOAD") from None
    return data


def _show_error(body: bytes) -> None:
    """A function error as a person reads it: type, message, then the stack."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        click.echo(f"Function error: {body.decode(errors='replace')}", err=True)
        return
    click.echo(f"Function error: {error.get('errorType', 'Error')}: {error.get('errorMessage', '')}", err=True)
    for line in error.get("stackTrace") or error.get("trace") or []:
        click.echo(f"  {line.rstrip() if isinstance(line, str) else line}", err=True)


@click.command()
@click.argument("name")
@click.argument("payload", required=False)
@click.option("--qualifier", "-q", help="A version or alias.")
@click.option("--async", "asynchronous", is_flag=True, help="Invoke asynchronously (InvocationType=Event).")
@click.option("--tail", is_flag=True, help="Print the last 4 KB of the invocation's log to stderr.")
@api_command
def invoke(name: str, payload: str | None, qualifier: str | None, asynchronous: bool, tail: bool,
           client: Any) -> None:
    """Invoke function NAME with PAYLOAD: JSON text, @file, or - for stdin (default {}).

    Prints the result; exits 1 when the function fails, with the error shown readably.
    """
    params: dict[str, Any] = {"FunctionName": name, "Payload": _read_payload(payload)}
    if qualifier:
        params["Qualifier"] = qualifier
    if asynchronous:
        response = client.invoke(InvocationType="Event", **params)
        click.echo(f"accepted: request id {response['ResponseMetadata']['RequestId']}", err=True)
        return
    response = client.invoke(LogType="Tail" if tail else "None", **params)
    body = response["Payload"].read()
    if tail and response.get("LogResult"):
        click.echo(base64.b64decode(response["LogResult"]).decode(errors="replace").rstrip("\n"), err=True)
    if response.get("FunctionError"):
        _show_error(body)
        sys.exit(1)
    try:
        click.echo(json.dumps(json.loads(body), indent=2) if body else "")
    except ValueError:
        click.echo(body.decode(errors="replace"))


@click.command(name="ls")
@api_command
def list_functions(client: Any) -> None:
    """List the functions."""
    rows = [(f["FunctionName"], f.get("Runtime", "-"), f"{f['MemorySize']} MB", f"{f['Timeout']} s",
             f["LastModified"][:19].replace("T", " "))
            for page in client.get_paginator("list_functions").paginate() for f in page["Functions"]]
    if not rows:
        click.echo("no functions yet: `lambdalet deploy PATH` creates one", err=True)
        return
    _table(("NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST MODIFIED (UTC)"), rows)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Columns padded to their widest cell, as `ls` and `mappings` print them."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


@click.command(name="mappings")
@click.argument("function", required=False)
@api_command
def list_mappings(function: str | None, client: Any) -> None:
    """List event source mappings (of one FUNCTION, or all): source, state, batch size, last result."""
    params = {"FunctionName": function} if function else {}
    rows = [(m["UUID"], m["FunctionArn"].split(":function:", 1)[-1], m.get("EventSourceArn", "-"), m["State"],
             m.get("BatchSize", "-"), m.get("LastProcessingResult", "-"))
            for page in client.get_paginator("list_event_source_mappings").paginate(**params)
            for m in page["EventSourceMappings"]]
    if not rows:
        click.echo("no event source mappings" + (f" for {function}" if function else "") +
                   ": `aws lambda create-event-source-mapping` creates one", err=True)
        return
    _table(("UUID", "FUNCTION", "SOURCE", "STATE", "BATCH", "LAST RESULT"), rows)


@click.command(name="nodes")
@click.option("--endpoint-url", envvar="LAMBDALET_ENDPOINT_URL", metavar="URL",
              help=f"A Lambdalet server (default: $AWS_ENDPOINT_URL_LAMBDA, $AWS_ENDPOINT_URL or {DEFAULT_ENDPOINT}).")
def list_nodes(endpoint_url: str | None) -> None:
    """List the live nodes sharing the server's database: name, URL, load, last heartbeat."""
    import urllib.error
    import urllib.request

    url = _endpoint(endpoint_url).rstrip("/") + "/_lambdalet/nodes"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            listed = json.load(answer)["nodes"]
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{url} answered HTTP {exc.code}: is it a Lambdalet server?") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {url} ({exc}); is `lambdalet server` running?") from None
    now = time.time()
    rows = [(("* " if node["self"] else "  ") + node["name"], node["url"], node["load"].get("inFlight", "-"),
             sum(node["load"].get("environments", {}).values()),
             f"{node['load'].get('memoryUsedMb', 0)}/{node['load'].get('memoryLimitMb', 0)} MB",
             f"{now - node['lastHeartbeat']:.0f} s ago") for node in listed]
    _table(("NODE (* answered)", "URL", "IN FLIGHT", "ENVIRONMENTS", "MEMORY", "HEARTBEAT"), rows)


@click.command(name="rm")
@click.argument("names", nargs=-1, required=True)
@api_command
def remove(names: tuple[str, ...], client: Any) -> None:
    """Delete functions (all their versions, aliases and URLs)."""
    missing = []
    for name in names:
        try:
            client.delete_function(FunctionName=name)
            click.echo(f"deleted {name}", err=True)
        except client.exceptions.ResourceNotFoundException:
            missing.append(name)
    if missing:
        raise click.ClickException(f"no such function: {', '.join(missing)}")


SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _since_ms(since: str) -> int:
    """`10m`, `2h`, `30s`, `1d`, `1w` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    match = SINCE.match(since.strip())
    if match:
        return int((time.time() - float(match.group(1)) * SECONDS[match.group(2)]) * 1000)
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use e.g. 10m, 2h, 1d or an ISO time like 2024-05-01T12:00", param_hint="--since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _show_event(event: dict) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] / 1000))
    for line in event["message"].rstrip("\n").split("\n"):
        click.echo(f"{stamp}.{event['timestamp'] % 1000:03d}Z {line}")


@click.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines as they are written, until Ctrl-C.")
@click.option("--since", default="10m", show_default=True, metavar="WHEN",
              help="Start this long ago (30s, 10m, 2h, 1d) or at an ISO time.")
@click.option("--filter", "filter_pattern", metavar="TEXT",
              help='CloudWatch filter pattern: terms that must all occur, "a phrase", ?either ?or, -not.')
@click.option("--poll", default=0.5, show_default=True, type=click.FloatRange(0.05, 60), hidden=True,
              help="Seconds between polls with --follow.")
@api_command
def logs(name: str, follow: bool, since: str, filter_pattern: str | None, poll: float, client: Any) -> None:
    """Print function NAME's logs (its log group, every stream interleaved by time).

    Reads CloudWatch Logs' API (FilterLogEvents) at the same endpoint as the Lambda API, or at
    $AWS_ENDPOINT_URL_LOGS. The log group is the function's LoggingConfig.LogGroup.
    """
    try:
        group = client.get_function_configuration(FunctionName=name).get("LoggingConfig", {}).get("LogGroup")
    except client.exceptions.ResourceNotFoundException:
        group = None  # a deleted function's logs stay readable, as on AWS
    group = group or f"/aws/lambda/{name}"
    reader = logs_client()
    params: dict[str, Any] = {"logGroupName": group, "startTime": _since_ms(since), "interleaved": True}
    if filter_pattern:
        params["filterPattern"] = filter_pattern
    seen: set[str] = set()  # event ids at the newest timestamp printed, which the next poll reads again
    try:
        while True:
            try:
                response = reader.filter_log_events(**params)
            except reader.exceptions.ResourceNotFoundException:
                if not follow:
                    raise click.ClickException(f"no logs yet for {name} (log group {group})") from None
                response = {"events": []}
            for event in response.get("events", []):
                if event["eventId"] in seen:
                    continue
                _show_event(event)
                if event["timestamp"] > params["startTime"]:
                    params["startTime"], seen = event["timestamp"], set()
                seen.add(event["eventId"])
            if response.get("nextToken"):
                params["nextToken"] = response["nextToken"]
                continue
            params.pop("nextToken", None)
            if not follow:
                return
            time.sleep(poll)
    except KeyboardInterrupt:
        return


COMMANDS = (deploy, invoke, list_functions, list_mappings, list_nodes, remove, logs)

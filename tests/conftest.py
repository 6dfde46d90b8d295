"""Shared fixtures: a real Lambdalet server on a free port, driven over HTTP by boto3 and the AWS CLI.

Nothing here reaches into the server's internals: every test talks to it as a user would.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import boto3
import pytest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
#: The sandbox backend every test server runs (`pytest --sandbox process` tests the fallback).
SANDBOX = {"value": "auto"}
#: A PostgreSQL server (`pytest --postgres URL`): every test server then gets a database of its own
#: there instead of SQLite.
POSTGRES = {"url": ""}


def pytest_addoption(parser):
    parser.addoption("--sandbox", default="auto", choices=("auto", "linux", "process"),
                     help="sandbox backend of the servers the tests start")
    parser.addoption("--postgres", default=os.environ.get("LAMBDALET_TEST_POSTGRES", ""),
                     help="SQLAlchemy URL of a PostgreSQL server (its maintenance database, e.g. "
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres; default: "
                          "$LAMBDALET_TEST_POSTGRES, as scripts/with-postgres sets it): each test server gets "
                          "a fresh database there instead of SQLite")


def fresh_postgres_database(base_url: str) -> str:
    """CREATE a new database on the PostgreSQL server of `base_url`; return its URL."""
    import sqlalchemy

    name = f"lambdalet_test_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as exc:
        raise pytest.UsageError(f"--postgres {base_url}: cannot reach PostgreSQL ({exc.orig})") from None
    finally:
        engine.dispose()
    return str(sqlalchemy.engine.make_url(base_url).set(database=name).render_as_string(hide_password=False))


#: Every server log of this session, shown (warnings and errors) when a test failed.
SERVER_LOGS: list[Path] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == 0:
        return
    for path in (p for p in SERVER_LOGS if p.exists()):
        lines = [line for line in path.read_text(errors="replace").splitlines()
                 if " WARNING " in line or " ERROR " in line or line.startswith(("Traceback", "  "))]
        if lines:
            terminalreporter.write_sep("-", f"server log {path.name} (warnings and errors)")
            terminalreporter.write_line("\n".join(lines[-40:]))


def pytest_configure(config):
    SANDBOX["value"] = config.getoption("--sandbox")
    POSTGRES["url"] = config.getoption("--postgres")
    config.addinivalue_line("markers", "isolation: proves a sandbox escape is impossible (linux backend only)")
    config.addinivalue_line("markers", "snapstart: SnapStart templates (linux backend only)")
    config.addinivalue_line("markers", "ric: AWS's aws-lambda-ric from npm, built from source on first use (minutes; "
                                       "`make test-ric`, not part of `make test`)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """Build a deployment package in memory; `modes` sets Unix permissions (e.g. 0o755 for bootstrap)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            mode = (modes or {}).get(name, 0o644)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


class Server:
    """A `lambdalet server` subprocess with its own data directory; restartable in place."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None, args: list[str] | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"server-{data_dir.name}.log"
        SERVER_LOGS.append(self.log_path)
        if POSTGRES["url"]:  # made once: a restarted server finds its data again
            self.args = ["--database-url", fresh_postgres_database(POSTGRES["url"]), *self.args]

    def start(self) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", **self.extra_env}
        env.setdefault("LAMBDALET_KEEP_ALIVE", "60")
        env.setdefault("LAMBDALET_DRAIN_TIMEOUT", "5")  # a test that stops a busy server need not wait 30 s
        cmd = [sys.executable, "-m", "lambdalet", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--sandbox", SANDBOX["value"], *self.args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/2015-03-31/functions", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:  # --auth iam: an unsigned request's 403 is an answer too
                if exc.code == 403:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer within 30 s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, service: str = "lambda", **config) -> "boto3.client":
        cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120, **config)
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test", config=cfg)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running(srv: Server) -> Iterator[Server]:
    """A server started for the length of a `with` block (a fixture's or a test's own)."""
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """One server shared by the whole session; tests use unique function names."""
    srv = Server(tmp_path_factory.mktemp("data"))
    srv.start()
    yield srv
    srv.stop()


class Moto:
    """`moto` in server mode: SQS, SNS, EventBridge, ... over real HTTP, as AWS would be reached."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        if importlib.util.find_spec("moto") is None:
            raise RuntimeError("moto[server] is not installed: run `make test` (it installs the test extras)")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}: see {log_path}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer within 30 s: see {log_path}") from None
                time.sleep(0.1)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="session")
def moto(tmp_path_factory) -> Iterator[Moto]:
    """One moto server for the session; tests use unique resource names."""
    server = Moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path) -> Iterator[Server]:
    """A server of the test's own, for tests that restart or configure it."""
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def lambda_client(server: Server):
    return server.client()


@pytest.fixture
def unique_name(request) -> str:
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def create_function(lambda_client, unique_name) -> Iterator[Callable[..., dict]]:
    """Create a function (Python handler by default) and delete it after the test."""
    created: list[str] = []

    def _create(code: str | None = None, *, files: dict[str, str | bytes] | None = None,
                modes: dict[str, int] | None = None, name: str | None = None, **kwargs) -> dict:
        fn_name = name or f"{unique_name}-{len(created)}"
        if files is None:
            files = {"app.py": code or "def handler(event, context):\n    return event\n"}
        params = {
            "FunctionName": fn_name,
            "Runtime": "python3.11",
            "Role": ROLE,
            "Handler": "app.handler",
            "Code": {"ZipFile": make_zip(files, modes)},
        }
        params.update(kwargs)
        resp = lambda_client.create_function(**params)
        created.append(fn_name)
        return resp

    yield _create
    delete_functions(lambda_client, created)


def delete_functions(client, names: list[str]) -> None:
    """Delete the functions a test made; those it deleted itself (or never made) are skipped."""
    for name in names:
        try:
            client.delete_function(FunctionName=name)
        except client.exceptions.ResourceNotFoundException:
            pass


def invoke_json(client, name: str, payload=None, **kwargs) -> tuple[dict, object]:
    """Invoke and decode the JSON result; returns (response metadata, decoded payload)."""
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload if payload is not None else {}), **kwargs)
    body = resp["Payload"].read()
    return resp, (json.loads(body) if body else None)


def aws_cli(server: Server, *args: str, check: bool = True, input: bytes | None = None,
            cwd: Path | None = None, credentials: tuple[str, str] = ("test", "test")) -> subprocess.CompletedProcess:
    """Run the real AWS CLI (awscli from PyPI) against the server, signing with `credentials`."""
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    assert aws, "the AWS CLI is not installed: run `make test` (it installs the test extras)"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": credentials[0], "AWS_SECRET_ACCESS_KEY": credentials[1],
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""}
    proc = subprocess.run([aws, "--endpoint-url", server.url, *args], capture_output=True, env=env,
                          input=input, cwd=cwd, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return proc


# OCI registries and images for the container-image tests (tests/integration/oci_support.py).
# Debian's docker-registry must be installed (scripts/ensure-test-packages, which `make test` runs):
# without it these fixtures fail, saying which package is missing, rather than skip.

#: The login of the `private_registry` (HTTP Basic, htpasswd with bcrypt).
PRIVATE_REGISTRY_LOGIN = ("lambdalet", "registry-s3cret")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """docker-registry on a free port of 127.0.0.1, anonymous, filesystem storage in a tmp dir."""
    from integration.oci_support import Registry

    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def private_registry(tmp_path_factory):
    """A second docker-registry whose every request needs PRIVATE_REGISTRY_LOGIN (Basic auth)."""
    from integration.oci_support import Registry

    reg = Registry(tmp_path_factory.mktemp("private-registry"), login=PRIVATE_REGISTRY_LOGIN).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def python_runtime_layer():
    """(layer, interpreter path) of the AWS-base-image-like Python image (oci_support.python_runtime_layer):
    this interpreter, its libraries, busybox and awslambdaric (cached under .cache/). Built once a session."""
    from integration.oci_support import python_runtime_layer as build

    return build(REPO_ROOT / ".cache")

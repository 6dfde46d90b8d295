#!/usr/bin/env python3
"""Invoke benchmark for Lambdalet: warm latency, throughput and cold starts of a trivial function.

How to run (from the repository root)::

    make bench                                        # = .venv/bin/python bench/invoke.py
    .venv/bin/python bench/invoke.py --quick          # smoke run, well under 30 s
    .venv/bin/python bench/invoke.py --json-out results.json
    .venv/bin/python bench/invoke.py --endpoint http://127.0.0.1:9001   # an already running server

Without --endpoint the script starts its own server, ``python -m lambdalet server`` on a free port
of 127.0.0.1 with a temporary data dir and LAMBDALET_KEEP_ALIVE=600, sends its output to a temporary
log file, and always stops it at the end (SIGTERM, then SIGKILL), also on Ctrl-C or an error. The
data dir is removed; the log is kept (and its path printed) only when something went wrong.

Every run creates one function, Python 3.11 with ``def handler(event, context): return event``
(or, with ``--runtime nodejs20.x``, ``exports.handler = async (event) => event``), and deletes it
at the end. Only 127.0.0.1 is ever contacted. All times are wall-clock, measured by
the client, in milliseconds; percentiles are nearest-rank (p99 of 2,000 samples is the 20th slowest).

What each number means:

warm latency, http.client
    One client invokes the function N times in a row (after a warm-up), payload ``{"n": 1}``, on one
    keep-alive HTTP/1.1 ``http.client`` connection reused for every request, so every invoke hits
    the same warm execution environment. This is the least client overhead Python allows, i.e. close
    to the server's own cost of one invoke: Lambda API request → runtime's /invocation/next → handler
    → /response → reply.
warm latency, boto3
    The same with boto3's ``client.invoke()`` (fewer iterations). The difference to the line above is
    SDK overhead (request building, SigV4 signing, parsing), not server time.
throughput
    C client threads, each with its own keep-alive HTTP/1.1 connection, invoke back to back for D
    seconds after a per-client warm-up (so C warm environments exist before timing starts).
    invokes/s counts 200 responses with the right body only; anything else is an error and shown.
    Latency under that load is reported too, and the CPU used by the server process, by its runtime
    processes (all its descendants: zygotes and environments), by this client and by the whole
    machine (anyone's work, from /proc/stat), in % of one core: the server's event loop is one
    thread, so "server" near 100 % means the server is the limit; "machine" near 100 % × CPUs means
    the machine is. The load generator (``--client``) shares the machine's two cores with the
    server, so its own cost per request is taken from what it measures. The default, ``raw``, is a
    lean hand-written HTTP/1.1 client (``RawConnection``: fixed request bytes, a Content-Length
    reply) costing ~50 µs a request, as a C load generator would; ``http.client`` costs ~275 µs,
    and with eight threads it took ~55 % of a core at 2,000 invokes/s. Threads were chosen over an
    aiohttp client because they cost the client less CPU per request.
cold start
    K times: UpdateFunctionConfiguration with a new value of the environment variable BENCH_N
    (which retires the warm environments), then one invoke timed end to end (client → response).
    ``Init Duration`` is the server's own figure from the invoke's REPORT line (read with
    ``X-Amz-Log-Type: Tail``): from starting the runtime process until it asked for its first event.
    ``other`` is end to end minus Init Duration minus the REPORT Duration: the HTTP exchange,
    routing, and whatever else the server does around the invoke. ``update`` is the latency of the
    UpdateFunctionConfiguration call itself (boto3).
parallel cold start
    After one more update, P clients (connections opened beforehand) invoke at the same moment; the
    number is the time until all P responses have arrived. Each needs a new environment, so this
    shows how cold starts scale when they compete for the CPUs. Repeated a few rounds; median shown.
    Per round also: min/p50/max Init Duration, the CPU used meanwhile, and the CPU each new runtime
    process used to start (what P cold starts cost the machine, whatever the wall-clock time).

The last line printed is one JSON object with every number (also written by --json-out). The exit
status is 0 when every step ran without errors, 1 otherwise, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import functools
import http.client
import io
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import boto3
from botocore.config import Config

FUNCTIONS_PATH = "/2015-03-31/functions"
HOST = "127.0.0.1"
PAYLOAD = b'{"n": 1}'
HANDLER_SOURCE = "def handler(event, context):\n    return event\n"
NODE_HANDLER_SOURCE = "exports.handler = async (event) => event;\n"
ROLE = "arn:aws:iam::000000000000:role/r"
ENV_KEY = "BENCH_N"  # changed before every cold start
INVOKE_HEADERS = {"Content-Type": "application/json"}
TAIL_HEADERS = {**INVOKE_HEADERS, "X-Amz-Log-Type": "Tail"}
INIT_DURATION = re.compile(r"Init Duration: (\d+\.\d+) ms")
REPORT_DURATION = re.compile(r"REPORT RequestId: \S+\tDuration: (\d+\.\d+) ms")

HTTP_TIMEOUT_S = 60.0  # one request; a hung server fails the step instead of hanging the run
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
BARRIER_TIMEOUT_S = 120.0
THROUGHPUT_WARMUP_PER_CLIENT = 20
MAX_REQUESTS_PER_CLIENT = 10_000_000  # a hard cap on the timed loops, far above any real rate
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

T = TypeVar("T")


# -- plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    iterations: int
    warmup: int
    boto3_iterations: int
    duration_s: float
    concurrency: tuple[int, ...]
    cold: int
    parallel: int  # 0: as many as the server's memory budget holds, at most AUTO_PARALLEL_MAX
    parallel_rounds: int
    #: MemorySize of the benchmarked function. 1,769 MB = one vCPU, so the numbers measure the platform,
    #: not Lambda's CPU share (at 128 MB a function gets 7 % of a CPU, as on AWS).
    memory_mb: int = 1769
    #: Runtime of the benchmarked function: a pythonX.Y or nodejsNN.x with the echo handler.
    runtime: str = "python3.11"
    #: The throughput step's load generator: "raw" (`RawConnection`) or "http.client" (`Connection`).
    client: str = "raw"


AUTO_PARALLEL_MAX = 20
FULL = Plan(iterations=2000, warmup=200, boto3_iterations=300, duration_s=5.0, concurrency=(1, 4, 8),
            cold=30, parallel=0, parallel_rounds=3)
QUICK = Plan(iterations=300, warmup=50, boto3_iterations=50, duration_s=1.0, concurrency=(1, 4, 8),
             cold=5, parallel=0, parallel_rounds=1)


def auto_parallel(port: int, memory_mb: int) -> int:
    """How many environments of `memory_mb` the server's memory budget holds (at most
    AUTO_PARALLEL_MAX): more would be throttled by design, which is not what step 4 measures."""
    _status, data = get_json(port, "/_lambdalet/status")
    try:
        limit = int(data["memory_budget_mb"]["limit"])
    except (TypeError, KeyError, ValueError):
        return AUTO_PARALLEL_MAX
    return max(1, min(AUTO_PARALLEL_MAX, limit // memory_mb))


# -- statistics -------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Nearest-rank percentiles of a sample, in milliseconds (None when the sample is empty)."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    min: float | None
    mean: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None, None, None, None)

        def rank(p: float) -> float:
            return round(ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1], 3)

        return cls(len(ordered), rank(50), rank(90), rank(99), round(ordered[-1], 3), round(ordered[0], 3),
                   round(statistics.fmean(ordered), 3))


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# -- HTTP -------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    log_result: str | None
    function_error: str | None

    def log_text(self) -> str:
        """The decoded X-Amz-Log-Result (asked for with X-Amz-Log-Type: Tail)."""
        if self.log_result is None:
            raise ValueError("the reply has no X-Amz-Log-Result header although X-Amz-Log-Type: Tail was sent")
        try:
            return base64.b64decode(self.log_result, validate=True).decode("utf-8", "replace")
        except binascii.Error:
            raise ValueError(f"X-Amz-Log-Result is not base64: {self.log_result[:80]!r}") from None


class Connection:
    """One keep-alive HTTP/1.1 connection to the Lambda API (http.client: the cheapest client)."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
        self._used = False
        #: times the connection had to be reopened: the server did not keep it alive
        self.reconnects = 0

    def connect(self) -> None:
        self._conn.connect()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        if self._used and self._conn.sock is None:
            self.reconnects += 1
        self._used = True
        try:
            self._conn.request("POST", path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            raise
        return Reply(response.status, data, response.getheader("X-Amz-Log-Result"),
                     response.getheader("X-Amz-Function-Error"))

    def close(self) -> None:
        self._conn.close()


class RawConnection:
    """One keep-alive HTTP/1.1 connection written by hand: the load generator for throughput.

    The client shares this 2-core machine with the server and the runtimes, so what it costs per
    request is taken from them: eight http.client threads used ~55 % of a core at 2,000 invokes/s
    (~275 µs a request), this ~13 % (~50 µs), as a C load generator (wrk, ab) would. It sends
    the same request bytes every time and reads exactly what the server sends: a status line,
    headers and a Content-Length body; anything else (chunked, no length) is an error. Same
    interface as `Connection`.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._requests: dict[tuple[str, bytes, tuple[tuple[str, str], ...]], bytes] = {}
        self._used = False
        self.reconnects = 0

    def connect(self) -> None:
        self._sock = socket.create_connection((HOST, self._port), timeout=HTTP_TIMEOUT_S)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def _request_bytes(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        key = (path, body, tuple(headers.items()))
        request = self._requests.get(key)
        if request is None:
            lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{self._port}", f"Content-Length: {len(body)}",
                     *(f"{k}: {v}" for k, v in headers.items())]
            request = self._requests[key] = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        return request

    def _receive(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("the server closed the connection")
        self._buffer += chunk

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        if self._sock is None:
            if self._used:
                self.reconnects += 1
            self.connect()
        self._used = True
        try:
            assert self._sock is not None
            self._sock.sendall(self._request_bytes(path, body, headers))
            while (end := self._buffer.find(b"\r\n\r\n")) < 0:
                self._receive()
            head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4:]
            status_line, *header_lines = head.split("\r\n")
            fields = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if "content-length" not in fields:
                raise http.client.HTTPException(f"no Content-Length in the reply: {status_line}")
            length = int(fields["content-length"])
            while len(self._buffer) < length:
                self._receive()
            data, self._buffer = self._buffer[:length], self._buffer[length:]
            if fields.get("connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.close()
            if isinstance(exc, ValueError):
                raise http.client.HTTPException(f"unreadable reply: {exc}") from None
            raise
        return Reply(int(status_line.split(" ", 2)[1]), data, fields.get("x-amz-log-result"),
                     fields.get("x-amz-function-error"))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""


CLIENTS: dict[str, type[Connection] | type[RawConnection]] = {"raw": RawConnection, "http.client": Connection}


CLIENT_NAMES = {"raw": "raw-socket HTTP/1.1", "http.client": "http.client"}


def invoke_path(name: str) -> str:
    return f"{FUNCTIONS_PATH}/{urllib.parse.quote(name, safe='')}/invocations"


def describe_failure(reply: Reply) -> str:
    kind = f"HTTP {reply.status}"
    if reply.status == 200 and reply.function_error:
        kind += f" X-Amz-Function-Error: {reply.function_error}"
    elif reply.status == 200:
        kind += " wrong body"
    return f"{kind}: {reply.body[:200].decode('utf-8', 'replace')}"


class ErrorLog:
    """Counts errors by kind and keeps the first few descriptions as evidence."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.samples: list[str] = []

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(detail)

    def add_reply(self, reply: Reply) -> None:
        self.add(f"HTTP {reply.status}" + (" function error" if reply.function_error else ""),
                 describe_failure(reply))

    def add_exception(self, exc: BaseException) -> None:
        self.add(type(exc).__name__, f"{type(exc).__name__}: {exc}")

    def merge(self, other: ErrorLog) -> None:
        self.counts.update(other.counts)
        self.samples.extend(other.samples[: max(0, 5 - len(self.samples))])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_kind": dict(self.counts), "samples": self.samples}


def get_json(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body) if body else None
        except ValueError:
            return response.status, None
    finally:
        conn.close()


# -- the server under test --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tail_of(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ManagedServer:
    """`python -m lambdalet server` as a child process, on a free port with a temporary data dir.

    `extra_env` is added to the server's environment (e.g. `AWS_ENDPOINT_URL`, for a benchmark whose
    server reaches a local moto, as event source mappings do)."""

    def __init__(self, extra_env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.extra_env = dict(extra_env or {})
        self.args = list(args or [])
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="lambdalet-bench-data-"))
        fd, log_name = tempfile.mkstemp(prefix="lambdalet-bench-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_name)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exit_status(self) -> int | None:
        """The server's exit status if it has exited (it should not before stop())."""
        return self.proc.poll() if self.proc else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "lambdalet", "server", "--host", HOST, "--port", str(self.port),
                "--data-dir", str(self.data_dir), *self.args]
        env = {**os.environ, "LAMBDALET_KEEP_ALIVE": "600", **self.extra_env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.proc.returncode} before it was ready; "
                                   f"its log ({self.log_path}) ends with:\n{tail_of(self.log_path)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get_json(self.port, FUNCTIONS_PATH, timeout=1.0)[0] in (200, 403):  # 403: --auth iam
                    return
            time.sleep(POLL_INTERVAL_S)
        raise RuntimeError(f"the server did not answer GET {FUNCTIONS_PATH} with 200 within {READY_TIMEOUT_S:.0f} s; "
                           f"its log ({self.log_path}) ends with:\n{tail_of(self.log_path)}")

    def stop(self, keep_log: bool) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; remove the data dir (and the log unless kept)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"warning: the server ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if not keep_log:
            self.log_path.unlink(missing_ok=True)


class ExternalServer:
    """A server someone else started (--endpoint); nothing to start or stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pid: int | None = None
        self.log_path: Path | None = None

    def exit_status(self) -> int | None:
        return None

    def start(self) -> None:
        try:
            status, _ = get_json(self.port, FUNCTIONS_PATH)
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeError(f"no server at http://{HOST}:{self.port}: {exc}") from None
        if status != 200:
            raise RuntimeError(f"GET {FUNCTIONS_PATH} answered {status}, not 200")

    def stop(self, keep_log: bool) -> None:
        pass


def endpoint_port(url: str) -> int:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname != HOST or parsed.port is None:
        raise argparse.ArgumentTypeError(f"--endpoint must look like http://{HOST}:PORT (only {HOST} is used)")
    return parsed.port


# -- CPU accounting (Linux /proc) -------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from "state" on; the name may hold spaces


def cpu_seconds(pid: int) -> float | None:
    fields = _proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else None  # utime + stime


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy (not idle or waiting for I/O) since boot, by anyone."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # user..steal minus idle and iowait


def children_cpu(parent: int) -> dict[int, float]:
    """CPU seconds of every live descendant of `parent`: the server's runtime processes, which under
    the linux backend are the children of a zygote, itself a child of the server."""
    stats: dict[int, tuple[int, float]] = {}  # pid: (parent pid, CPU seconds)
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))):
                stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _seconds) in stats.items():
        children.setdefault(ppid, []).append(pid)
    result: dict[int, float] = {}
    pending = list(children.get(parent, ()))
    while pending:
        pid = pending.pop()
        result[pid] = stats[pid][1]
        pending.extend(children.get(pid, ()))
    return result


@dataclass
class CpuSnapshot:
    wall: float
    client: float
    server: float | None
    runtimes: dict[int, float]
    machine: float | None

    @classmethod
    def take(cls, server_pid: int | None) -> CpuSnapshot:
        server = cpu_seconds(server_pid) if server_pid else None
        runtimes = children_cpu(server_pid) if server_pid else {}
        return cls(time.perf_counter(), time.process_time(), server, runtimes, machine_busy_seconds())

    def usage_since(self, before: CpuSnapshot) -> dict[str, float | None]:
        """% of one core used by the client, the server process, its runtimes and the whole machine."""
        wall = self.wall - before.wall

        def pct(seconds: float | None) -> float | None:
            return round(100 * seconds / wall, 1) if seconds is not None and wall > 0 else None

        server = self.server - before.server if self.server is not None and before.server is not None else None
        runtimes = sum(cpu - before.runtimes.get(pid, 0.0) for pid, cpu in self.runtimes.items())
        machine = self.machine - before.machine if self.machine is not None and before.machine is not None else None
        return {"client_pct": pct(self.client - before.client), "server_pct": pct(server),
                "runtimes_pct": pct(runtimes) if self.server is not None else None, "machine_pct": pct(machine)}


# -- the function -----------------------------------------------------------------------------------


def handler_zip(runtime: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if runtime.startswith("nodejs"):
            archive.writestr("app.js", NODE_HANDLER_SOURCE)
        else:
            archive.writestr("app.py", HANDLER_SOURCE)
    return buffer.getvalue()


def lambda_client(port: int) -> Any:
    return boto3.client(
        "lambda", endpoint_url=f"http://{HOST}:{port}", region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=HTTP_TIMEOUT_S),
    )


def wait_until(lam: Any, name: str, key: str, wanted: str, current: str | None) -> None:
    """Poll GetFunctionConfiguration (bounded) until `key` (State, LastUpdateStatus) is `wanted`."""
    for _ in range(int(READY_TIMEOUT_S / POLL_INTERVAL_S)):
        if current in (wanted, None):
            return
        time.sleep(POLL_INTERVAL_S)
        current = lam.get_function_configuration(FunctionName=name).get(key)
    raise RuntimeError(f"{name}: {key} is still {current!r} after {READY_TIMEOUT_S:.0f} s")


def create_function(lam: Any, name: str, memory_mb: int, runtime: str) -> None:
    config = lam.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler="app.handler",
                                 Code={"ZipFile": handler_zip(runtime)}, MemorySize=memory_mb)
    wait_until(lam, name, "State", "Active", config.get("State"))


def update_environment(lam: Any, name: str, value: str) -> float:
    """Set the env var BENCH_N (retires the warm environments); returns the call's latency in ms.

    (Not "N": Lambda, and Lambdalet with it, refuses keys shorter than two characters.)
    """
    started = time.perf_counter()
    config = lam.update_function_configuration(FunctionName=name, Environment={"Variables": {ENV_KEY: value}})
    elapsed = ms_since(started)
    wait_until(lam, name, "LastUpdateStatus", "Successful", config.get("LastUpdateStatus"))
    return elapsed


def environment_counts(port: int, name: str) -> dict[str, int] | None:
    """The server's own count of this function's environments (Lambdalet's status endpoint), if any."""
    with contextlib.suppress(OSError, http.client.HTTPException, AttributeError, TypeError):
        status, body = get_json(port, "/_lambdalet/status")
        if status == 200:
            counts = body["functions"][name]["environments"]
            return {str(k): int(v) for k, v in counts.items()}
    return None


# -- 1. warm latency --------------------------------------------------------------------------------


def first_invoke(port: int, name: str) -> bytes:
    """One invoke that must echo the payload; returns the exact bytes later replies are compared with."""
    conn = Connection(port)
    try:
        reply = conn.post(invoke_path(name), PAYLOAD, INVOKE_HEADERS)
    finally:
        conn.close()
    if reply.status != 200 or reply.function_error:
        raise RuntimeError(f"the first invoke failed: {describe_failure(reply)}")
    try:
        echoed = json.loads(reply.body)
    except ValueError:
        echoed = None
    if echoed != json.loads(PAYLOAD):
        raise RuntimeError(f"the handler should echo {PAYLOAD!r} but returned {reply.body[:200]!r}")
    return reply.body


def warm_http(port: int, name: str, plan: Plan, expected: bytes) -> dict[str, Any]:
    conn = Connection(port)
    path = invoke_path(name)
    errors = ErrorLog()
    try:
        for _ in range(plan.warmup):
            conn.post(path, PAYLOAD, INVOKE_HEADERS)
        samples: list[float] = []
        for _ in range(plan.iterations):
            started = time.perf_counter()
            try:
                reply = conn.post(path, PAYLOAD, INVOKE_HEADERS)
            except (OSError, http.client.HTTPException) as exc:
                errors.add_exception(exc)
                continue
            elapsed = ms_since(started)
            if reply.status == 200 and reply.body == expected and not reply.function_error:
                samples.append(elapsed)
            else:
                errors.add_reply(reply)
    finally:
        conn.close()
    return {"client": "http.client keep-alive", **asdict(Stats.of(samples)), "errors": errors.to_json(),
            "reconnects": conn.reconnects}


def warm_boto3(lam: Any, name: str, plan: Plan, expected: bytes) -> dict[str, Any]:
    errors = ErrorLog()

    def once() -> tuple[int, str | None, bytes]:
        response = lam.invoke(FunctionName=name, Payload=PAYLOAD)
        return response["StatusCode"], response.get("FunctionError"), response["Payload"].read()

    for _ in range(max(1, plan.warmup // 10)):
        once()
    samples: list[float] = []
    for _ in range(plan.boto3_iterations):
        started = time.perf_counter()
        try:
            status, function_error, body = once()
        except Exception as exc:  # botocore raises many kinds; each is one failed invoke
            errors.add_exception(exc)
            continue
        elapsed = ms_since(started)
        if status == 200 and not function_error and body == expected:
            samples.append(elapsed)
        else:
            errors.add_reply(Reply(status, body, None, function_error))
    return {"client": "boto3 invoke", **asdict(Stats.of(samples)), "errors": errors.to_json()}


# -- 2. throughput ----------------------------------------------------------------------------------


@dataclass
class Worker:
    port: int
    path: str
    expected: bytes
    client: str = "raw"
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: ErrorLog = field(default_factory=ErrorLog)
    reconnects: int = 0

    def run(self, start: threading.Barrier, clock: dict[str, float], stop: threading.Event) -> None:
        conn = CLIENTS[self.client](self.port)
        try:
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn.connect()
                for _ in range(THROUGHPUT_WARMUP_PER_CLIENT):  # one warm environment per client
                    conn.post(self.path, PAYLOAD, INVOKE_HEADERS)
            try:
                start.wait(BARRIER_TIMEOUT_S)
            except threading.BrokenBarrierError:
                return
            deadline = clock["deadline"]
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if stop.is_set() or time.perf_counter() >= deadline:
                    break
                self.one(conn)
        finally:
            self.reconnects = conn.reconnects
            conn.close()

    def one(self, conn: Connection | RawConnection) -> None:
        started = time.perf_counter()
        try:
            reply = conn.post(self.path, PAYLOAD, INVOKE_HEADERS)
        except (OSError, http.client.HTTPException) as exc:
            self.errors.add_exception(exc)
            return
        self.latencies.append(ms_since(started))
        if reply.status == 200 and reply.body == self.expected and not reply.function_error:
            self.ok += 1
        else:
            self.errors.add_reply(reply)


def throughput(port: int, server_pid: int | None, name: str, clients: int, duration_s: float,
               expected: bytes, client: str = "raw") -> dict[str, Any]:
    workers = [Worker(port, invoke_path(name), expected, client) for _ in range(clients)]
    clock: dict[str, float] = {}
    before: list[CpuSnapshot] = []

    def go() -> None:  # runs once, when every client is warm, just before they are released
        before.append(CpuSnapshot.take(server_pid))
        clock["start"] = time.perf_counter()
        clock["deadline"] = clock["start"] + duration_s

    start = threading.Barrier(clients, action=go)
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(start, clock, stop), daemon=True) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BARRIER_TIMEOUT_S + duration_s + HTTP_TIMEOUT_S)
    finally:
        stop.set()
    after = CpuSnapshot.take(server_pid)
    if "start" not in clock:
        raise RuntimeError(f"the {clients} clients never all got ready (warm-up failed or hung)")
    elapsed = after.wall - clock["start"]
    errors = ErrorLog()
    for worker in workers:
        errors.merge(worker.errors)
    ok = sum(w.ok for w in workers)
    return {
        "clients": clients, "client": client, "seconds": round(elapsed, 3), "ok": ok, "invokes_per_s": round(ok / elapsed, 1),
        "latency": asdict(Stats.of([x for w in workers for x in w.latencies])),
        "cpu": after.usage_since(before[0]), "errors": errors.to_json(),
        "reconnects": sum(w.reconnects for w in workers),
    }


# -- 3. cold start ----------------------------------------------------------------------------------


def parse_report(reply: Reply) -> tuple[float | None, float | None]:
    """(Init Duration, Duration) from the REPORT line of a Tail log, each None when absent."""
    text = reply.log_text()
    init = INIT_DURATION.search(text)
    duration = REPORT_DURATION.search(text)
    return (float(init.group(1)) if init else None, float(duration.group(1)) if duration else None)


def cold_starts(lam: Any, port: int, name: str, iterations: int, expected: bytes) -> dict[str, Any]:
    conn = Connection(port)
    path = invoke_path(name)
    errors = ErrorLog()
    end_to_end: list[float] = []
    inits: list[float] = []
    others: list[float] = []
    updates: list[float] = []
    warm_hits = 0  # a 200 without Init Duration: the update did not retire the warm environment
    try:
        for i in range(iterations):
            updates.append(update_environment(lam, name, str(i)))
            started = time.perf_counter()
            try:
                reply = conn.post(path, PAYLOAD, TAIL_HEADERS)
            except (OSError, http.client.HTTPException) as exc:
                errors.add_exception(exc)
                continue
            elapsed = ms_since(started)
            if reply.status != 200 or reply.body != expected or reply.function_error:
                errors.add_reply(reply)
                continue
            end_to_end.append(elapsed)
            try:
                init, duration = parse_report(reply)
            except ValueError as exc:
                errors.add("bad log tail", str(exc))
                continue
            if init is None:
                warm_hits += 1
                continue
            inits.append(init)
            if duration is not None:
                others.append(elapsed - init - duration)
    finally:
        conn.close()
    return {"end_to_end": asdict(Stats.of(end_to_end)), "init_duration": asdict(Stats.of(inits)),
            "other": asdict(Stats.of(others)), "update": asdict(Stats.of(updates)),
            "not_cold": warm_hits, "errors": errors.to_json()}


# -- 4. parallel cold starts ------------------------------------------------------------------------


def parallel_round(lam: Any, port: int, server_pid: int | None, name: str, clients: int, round_no: int,
                   expected: bytes) -> dict[str, Any]:
    update_environment(lam, name, f"parallel-{round_no}")
    path = invoke_path(name)
    conns = [Connection(port) for _ in range(clients)]
    replies: list[Reply | BaseException | None] = [None] * clients
    finished = [0.0] * clients
    clock: dict[str, float] = {}
    before: list[CpuSnapshot] = []

    def go() -> None:
        before.append(CpuSnapshot.take(server_pid))
        clock["start"] = time.perf_counter()

    start = threading.Barrier(clients, action=go)

    def client(i: int) -> None:
        try:
            start.wait(BARRIER_TIMEOUT_S)
            replies[i] = conns[i].post(path, PAYLOAD, TAIL_HEADERS)
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            replies[i] = exc
        finished[i] = time.perf_counter()

    try:
        for conn in conns:
            conn.connect()
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BARRIER_TIMEOUT_S + HTTP_TIMEOUT_S)
        after = CpuSnapshot.take(server_pid)
    finally:
        for conn in conns:
            conn.close()
    if "start" not in clock:
        raise RuntimeError("the parallel clients never started")
    errors = ErrorLog()
    inits: list[float] = []
    latencies: list[float] = []
    not_cold = 0  # a 200 without Init Duration: served by an environment that should have been retired
    for reply, end in zip(replies, finished):
        if isinstance(reply, BaseException):
            errors.add_exception(reply)
        elif reply is None:
            errors.add("no reply", f"no reply within {HTTP_TIMEOUT_S:.0f} s")
        elif reply.status != 200 or reply.body != expected or reply.function_error:
            errors.add_reply(reply)
        else:
            latencies.append((end - clock["start"]) * 1000)
            try:
                init, _ = parse_report(reply)
            except ValueError as exc:
                errors.add("bad log tail", str(exc))
                continue
            if init is None:
                not_cold += 1
            else:
                inits.append(init)
    done = [end for end in finished if end]
    new_runtimes_cpu = sum(cpu - before[0].runtimes.get(pid, 0.0) for pid, cpu in after.runtimes.items())
    return {
        "all_done_ms": round((max(done) - clock["start"]) * 1000, 3) if done else None,
        "latency": asdict(Stats.of(latencies)), "init_duration": asdict(Stats.of(inits)),
        "cold": len(inits), "not_cold": not_cold, "ok": len(latencies),
        "environments": environment_counts(port, name),
        "cpu": after.usage_since(before[0]),
        "runtime_cpu_ms_per_environment": round(1000 * new_runtimes_cpu / clients, 1) if server_pid else None,
        "errors": errors.to_json(),
    }


def parallel_cold(lam: Any, port: int, server_pid: int | None, name: str, clients: int, rounds: int,
                  expected: bytes) -> dict[str, Any]:
    results = [parallel_round(lam, port, server_pid, name, clients, r, expected) for r in range(rounds)]
    totals = [r["all_done_ms"] for r in results if r["all_done_ms"] is not None]
    errors = ErrorLog()
    for r in results:
        errors.counts.update(r["errors"]["by_kind"])
        errors.samples.extend(r["errors"]["samples"][: max(0, 5 - len(errors.samples))])
    return {"clients": clients, "rounds": results,
            "all_done_ms_median": round(statistics.median(totals), 3) if totals else None,
            "not_cold": sum(r["not_cold"] for r in results), "errors": errors.to_json()}


# -- machine facts and report -----------------------------------------------------------------------


def code_revision() -> str | None:
    """The git commit of this checkout, noting uncommitted changes under lambdalet/ (what a started server runs)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "lambdalet")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + (" + uncommitted changes in lambdalet/" if dirty else "")


def machine_facts() -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "cpus_usable": usable, "cpu_model": cpu_model, "memory_gb": mem_gb,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "code": code_revision(),
    }


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def stats_row(label: str, s: dict[str, Any], extra: str = "") -> str:
    return (f"  {label:<26}{s['n']:>6}{fmt(s['p50']):>9}{fmt(s['p90']):>9}{fmt(s['p99']):>9}"
            f"{fmt(s['max']):>9}  {extra}")


STATS_HEADER = f"  {'':<26}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"


def print_latency_table(header: str, samples: dict[str, Sequence[float]], width: int = 8, digits: int = 3,
                        align: str = "<") -> dict[str, Stats]:
    """The p50/p90/p99/max table the side-by-side benchmarks print (auth, console, function URL,
    streaming): one row per label, `header` over the labels. Returns the rows' statistics."""
    print(f"{header:{align}{width}} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    stats = {label: Stats.of(values) for label, values in samples.items()}
    for label, s in stats.items():
        print(f"{label:{align}{width}} {s.p50:8.{digits}f} {s.p90:8.{digits}f} {s.p99:8.{digits}f} {s.max:8.{digits}f}")
    return stats


def print_header(facts: dict[str, Any], target: str, plan: Plan) -> None:
    print("Lambdalet invoke benchmark")
    print(f"  date      {facts['date']}")
    print(f"  machine   {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), {facts['cpu_model']}, "
          f"{facts['memory_gb']} GB, {facts['os']}, load avg {' '.join(map(str, facts['load_avg_at_start']))}")
    print(f"  python    {facts['python']} ({facts['python_executable']})")
    print(f"  code      {facts['code'] or 'unknown (not a git checkout)'}")
    print(f"  server    {target}")
    print(f"  plan      {plan.iterations} warm invokes (+{plan.warmup} warm-up), {plan.boto3_iterations} boto3, "
          f"{plan.duration_s:g} s × clients {','.join(map(str, plan.concurrency))}, {plan.cold} cold, "
          f"{plan.parallel or 'auto'} parallel cold × {plan.parallel_rounds}; function {plan.runtime}, MemorySize {plan.memory_mb} MB")
    print(flush=True)


def print_step_error(title: str, error: str) -> None:
    print(f"{title}\n  NOT MEASURED — {error}\n", flush=True)


def errors_note(result: dict[str, Any]) -> str:
    errors = result["errors"]
    return f"errors {errors['total']}" + (f" {errors['by_kind']}" if errors["total"] else "")


def print_warm(results: dict[str, Any]) -> None:
    print("1. Warm invoke latency, ms (sequential, one client)")
    print(STATS_HEADER)
    for key in ("http", "boto3"):
        r = results.get(key)
        if r is None:
            continue
        if "error" in r:
            print(f"  {key:<26}NOT MEASURED — {r['error']}")
        else:
            extra = errors_note(r) + (f", reconnects {r['reconnects']}" if r.get("reconnects") else "")
            print(stats_row(r["client"], r, extra))
    print(flush=True)


def print_throughput_row(r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"  {r['clients']:>7}  NOT MEASURED — {r['error']}", flush=True)
        return
    cpu = r["cpu"]
    lat = r["latency"]
    extra = errors_note(r) + (f", reconnects {r['reconnects']}" if r["reconnects"] else "")
    print(f"  {r['clients']:>7}{r['invokes_per_s']:>11.0f}{r['ok']:>8}{fmt(lat['p50']):>8}{fmt(lat['p99']):>8}"
          f"{fmt(cpu['server_pct'], 0):>8}{fmt(cpu['runtimes_pct'], 0):>9}{fmt(cpu['client_pct'], 0):>8}"
          f"{fmt(cpu['machine_pct'], 0):>9}  {extra}",
          flush=True)


def print_cold(r: dict[str, Any]) -> None:
    print(f"3. Cold start, ms (update configuration, then one invoke; {r['end_to_end']['n']} ok)")
    print(STATS_HEADER)
    print(stats_row("end to end (client)", r["end_to_end"], errors_note(r)))
    print(stats_row("Init Duration (REPORT)", r["init_duration"]))
    print(stats_row("other (e2e−init−duration)", r["other"]))
    print(stats_row("UpdateFunctionConfig call", r["update"]))
    if r["not_cold"]:
        print(f"  !! {r['not_cold']} invokes after an update had no Init Duration: they were not cold starts")
    print(flush=True)


def print_parallel(r: dict[str, Any]) -> None:
    print(f"4. Parallel cold start: {r['clients']} concurrent first invokes after an update")
    for i, rnd in enumerate(r["rounds"]):
        envs, init, cpu = rnd["environments"], rnd["init_duration"], rnd["cpu"]
        print(f"  round {i + 1}: all {rnd['ok']}/{r['clients']} done in {fmt(rnd['all_done_ms'], 0)} ms, "
              f"{rnd['cold']} cold, {errors_note(rnd)}; per-invoke p50 {fmt(rnd['latency']['p50'], 0)} ms; "
              f"Init Duration min/p50/max {fmt(init['min'], 0)}/{fmt(init['p50'], 0)}/{fmt(init['max'], 0)} ms")
        print(f"           CPU (% of one core) server {fmt(cpu['server_pct'], 0)}, "
              f"runtimes {fmt(cpu['runtimes_pct'], 0)}, machine {fmt(cpu['machine_pct'], 0)}; "
              f"runtime CPU per environment {fmt(rnd['runtime_cpu_ms_per_environment'], 0)} ms"
              + (f"; environments after: {envs}" if envs else ""))
    print(f"  median time for all {r['clients']} to complete: {fmt(r['all_done_ms_median'], 0)} ms\n", flush=True)


def print_list(title: str, lines: list[str], footer: str | None = None) -> None:
    """A titled list (problems, notes) before the JSON summary; nothing when there is none."""
    if not lines:
        return
    print(f"{title}:")
    for line in lines:
        print(f"  - {line}")
    if footer is not None:
        print(f"  {footer}")
    print()


def finish(results: dict[str, Any], json_out: Path | None, interrupted: bool) -> int:
    """Print the results as one JSON line (and write them to `json_out`); the exit status is 130 when
    interrupted and 1 when there were problems."""
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, separators=(",", ":")))
    return 130 if interrupted else (1 if results["problems"] else 0)


def problems_of(results: dict[str, Any]) -> list[str]:
    """Every failed step and every error count, as one line each."""
    found: list[str] = []

    def visit(where: str, node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("error"), str):
                found.append(f"{where}: {node['error']}")
            errors = node.get("errors")
            if isinstance(errors, dict) and errors.get("total"):
                found.append(f"{where}: {errors['total']} errors {errors['by_kind']}; e.g. {errors['samples'][:1]}")
            if node.get("not_cold"):
                found.append(f"{where}: {node['not_cold']} invokes after an update were not cold starts")
            for key, value in node.items():
                if key not in ("errors", "rounds"):
                    visit(f"{where}.{key}" if where else key, value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(f"{where}[{i}]", value)

    visit("", {k: v for k, v in results.items() if k not in ("machine", "plan")})
    return found


# -- main -------------------------------------------------------------------------------------------


def attempt(results: dict[str, Any], key: str, step: Callable[[], T]) -> T | None:
    """Run one step; a failure is recorded (and reported) instead of stopping the whole run."""
    try:
        value = step()
    except Exception as exc:
        results[key] = {"error": f"{type(exc).__name__}: {exc}"}
        return None
    results[key] = value
    return value


def run(server: ManagedServer | ExternalServer, plan: Plan, results: dict[str, Any]) -> None:
    lam = lambda_client(server.port)
    name = f"bench-invoke-{uuid.uuid4().hex[:8]}"
    try:
        create_function(lam, name, plan.memory_mb, plan.runtime)
    except Exception as exc:
        results["setup"] = {"error": f"CreateFunction failed: {type(exc).__name__}: {exc}"}
        print_step_error("Setup", results["setup"]["error"])
        return
    try:
        try:
            expected = first_invoke(server.port, name)
        except Exception as exc:
            results["setup"] = {"error": f"the first invoke failed: {type(exc).__name__}: {exc}"}
            print_step_error("Setup", results["setup"]["error"] + " — nothing else can be measured")
            return
        warm: dict[str, Any] = {}
        results["warm"] = warm
        attempt(warm, "http", lambda: warm_http(server.port, name, plan, expected))
        attempt(warm, "boto3", lambda: warm_boto3(lam, name, plan, expected))
        print_warm(warm)

        print(f"2. Throughput (each client a thread with its own keep-alive {CLIENT_NAMES[plan.client]} connection)")
        print(f"  {'clients':>7}{'invokes/s':>11}{'ok':>8}{'p50 ms':>8}{'p99 ms':>8}"
              f"{'server':>8}{'runtimes':>9}{'client':>8}{'machine':>9}  (CPU, % of one core)")
        rows: list[dict[str, Any]] = []
        results["throughput"] = rows
        for clients in plan.concurrency:
            level: dict[str, Any] = {"clients": clients}
            rows.append(level)
            attempt(level, "result", functools.partial(throughput, server.port, server.pid, name, clients,
                                                       plan.duration_s, expected, plan.client))
            level.update(level.pop("result"))
            print_throughput_row(level)
        print(flush=True)

        cold = attempt(results, "cold", lambda: cold_starts(lam, server.port, name, plan.cold, expected))
        if cold is None:
            print_step_error("3. Cold start", results["cold"]["error"])
        else:
            print_cold(cold)
        clients = plan.parallel or auto_parallel(server.port, plan.memory_mb)
        par = attempt(results, "parallel_cold",
                      lambda: parallel_cold(lam, server.port, server.pid, name, clients, plan.parallel_rounds,
                                            expected))
        if par is None:
            print_step_error("4. Parallel cold start", results["parallel_cold"]["error"])
        else:
            print_parallel(par)
    finally:
        with contextlib.suppress(Exception):
            lam.delete_function(FunctionName=name)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (or bench/README.md) for what each number means.")
    parser.add_argument("--iterations", type=int, help=f"sequential warm invokes (default {FULL.iterations}, after "
                        f"{FULL.warmup} warm-up invokes; for another N the warm-up is N/10, between 10 and "
                        f"{FULL.warmup})")
    parser.add_argument("--duration", type=float, help=f"seconds per throughput level (default {FULL.duration_s:g})")
    parser.add_argument("--cold", type=int, help=f"cold-start iterations (default {FULL.cold})")
    parser.add_argument("--boto3-iterations", type=int, help=f"boto3 invokes (default {FULL.boto3_iterations})")
    parser.add_argument("--concurrency", help="throughput client counts, comma-separated (default 1,4,8)")
    parser.add_argument("--parallel", type=int, help="concurrent first invokes (default: as many environments as "
                                                     f"the server's memory budget holds, at most {AUTO_PARALLEL_MAX})")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--endpoint", metavar="URL", help=f"use a running server (http://{HOST}:PORT) instead of "
                        "starting one")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run (< 30 s)")
    parser.add_argument("--memory", type=int, default=1769,
                        help="MemorySize of the function (default 1769 = one vCPU; at 128 MB Lambda's CPU share "
                             "of 7 %% throttles a busy environment)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="throughput load generator: raw (a lean hand-written HTTP/1.1 client, the default) or "
                             "http.client (the standard library's; costs the shared CPUs ~5x more per request)")
    parser.add_argument("--runtime", default="python3.11",
                        help="runtime of the echo function: python3.X or nodejsNN.x (default python3.11)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    iterations = args.iterations if args.iterations is not None else base.iterations
    concurrency = base.concurrency
    if args.concurrency:
        try:
            concurrency = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
        except ValueError:
            parser.error("--concurrency takes integers, e.g. 1,4,8")
    plan = Plan(
        iterations=iterations,
        warmup=base.warmup if args.iterations is None else max(10, min(base.warmup, iterations // 10)),
        boto3_iterations=args.boto3_iterations if args.boto3_iterations is not None else base.boto3_iterations,
        duration_s=args.duration if args.duration is not None else base.duration_s,
        concurrency=concurrency,
        cold=args.cold if args.cold is not None else base.cold,
        parallel=args.parallel if args.parallel is not None else base.parallel,
        parallel_rounds=base.parallel_rounds,
        memory_mb=args.memory,
        runtime=args.runtime,
        client=args.client,
    )
    numbers = [plan.iterations, plan.boto3_iterations, plan.cold, plan.parallel or 1, *plan.concurrency]
    if min(numbers) < 1 or plan.duration_s <= 0 or max(numbers) > 1_000_000 or max(plan.concurrency) > 256:
        parser.error("counts must be ≥ 1 (clients ≤ 256) and --duration > 0")
    if args.endpoint:
        try:
            endpoint_port(args.endpoint)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    return args, plan


def guarded(body: Callable[[], None], problems: list[str]) -> bool:
    """Run a benchmark's body; an error or Ctrl-C (SIGTERM: `_terminate`) becomes a line in
    `problems` rather than a traceback, so the caller still stops its servers and prints the JSON.
    True when interrupted."""
    try:
        body()
    except KeyboardInterrupt:
        problems.append("interrupted")
        return True
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    return False


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same way out as Ctrl-C: the server is stopped


def main(argv: Sequence[str] | None = None) -> int:
    args, plan = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    facts = machine_facts()
    results: dict[str, Any] = {"machine": facts, "plan": asdict(plan)}
    server: ManagedServer | ExternalServer = (
        ExternalServer(endpoint_port(args.endpoint)) if args.endpoint else ManagedServer()
    )
    target = (f"existing server at {args.endpoint}" if args.endpoint else
              f"started: {sys.executable} -m lambdalet server --port {server.port} (LAMBDALET_KEEP_ALIVE=600)")
    results["server"] = {"endpoint": f"http://{HOST}:{server.port}", "managed": not args.endpoint}
    print_header(facts, target, plan)
    problems: list[str] = []

    def body() -> None:
        started = time.perf_counter()
        server.start()
        results["server"]["ready_ms"] = round(ms_since(started), 1)
        if isinstance(server, ManagedServer):
            print(f"Server answered after {results['server']['ready_ms']:.0f} ms (start-up time)\n", flush=True)
        run(server, plan, results)

    try:
        interrupted = guarded(body, problems)
    finally:
        problems += problems_of(results)
        if server.exit_status() is not None:
            problems.append(f"the server exited during the run (status {server.exit_status()})")
        server.stop(keep_log=bool(problems) and not interrupted)
    results["problems"] = problems
    kept_log = server.log_path is not None and server.log_path.exists()
    print_list("Problems", problems, footer=f"server log kept at {server.log_path}" if kept_log else None)
    return finish(results, args.json_out, interrupted)


if __name__ == "__main__":
    sys.exit(main())

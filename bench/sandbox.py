#!/usr/bin/env python3
"""Sandbox benchmark for Lambdalet: what each sandbox backend costs, side by side.

How to run (from the repository root; the linux backend needs root)::

    .venv/bin/python bench/sandbox.py                       # both backends, about 65 s
    .venv/bin/python bench/sandbox.py --quick               # smoke run, under 60 s
    .venv/bin/python bench/sandbox.py --backends process --json-out sandbox.json

For each backend (``--backends linux,process``) the script starts its own server, one after the
other on the same machine: ``python -m lambdalet server --sandbox BACKEND`` on a free port of
127.0.0.1, with a temporary data dir and LAMBDALET_KEEP_ALIVE=600 (server start, stop, Ctrl-C and
error handling are bench/invoke.py's). Only 127.0.0.1 is ever contacted. Every function it creates
is deleted, every server it starts is stopped (SIGTERM, then SIGKILL), also on Ctrl-C or an error.
All times are wall-clock, measured by the client, in ms; percentiles are nearest-rank.

What is measured, per backend (MemorySize 1,769 MB = one vCPU unless said otherwise):

1. cold start, trivial handler (``return event``, python3.11): N times UpdateFunctionConfiguration
   with a new environment variable (which retires the warm environment), then one invoke timed end
   to end; ``Init Duration`` is the server's figure from the REPORT line (X-Amz-Log-Type: Tail).
2. cold start, heavy handler: module-level ``import boto3`` (the runtime's SDK) and three clients
   (s3, sqs, dynamodb) — an init of several hundred ms (checked: a p50 under 200 ms is an error);
   measured like 1.
2b. SnapStart, on a second server started with ``--snapstart-latest``: the heavy handler created with
   ``SnapStart={"ApplyOn": "PublishedVersions"}`` and, for comparison, without it — both on
   python3.12, as SnapStart for Python needs 3.12 or later. Cold starts are forced without touching
   the configuration (a change would call for a new snapshot): after the first invoke, N times an
   invoke with ``{"crash": true}`` (the handler calls ``os._exit``, which ends its environment),
   then one invoke timed end to end, whose REPORT line must carry ``Restore Duration`` (SnapStart)
   or ``Init Duration``. If the server does not know the flag, or CreateFunction refuses SnapStart
   (e.g. on the process backend), that is reported as "not available" and the run goes on.
3. warm invoke: 2,000 sequential invokes on one keep-alive http.client connection, and the rate of
   8 concurrent keep-alive clients for 5 s (bench/invoke.py's ``warm_http`` and ``throughput``, with
   its default lean raw-socket client).
4. scale from 0 to 100: a function of MemorySize 128 and Timeout 10 whose handler sleeps 1 s; 100
   threads, each with its own connection opened beforehand, invoke at the same instant. Reported:
   the time until all 100 have answered (target: 2 s), cold starts (invokes with Init Duration),
   errors, the most environments the status endpoint showed during the burst (sampled every 50 ms),
   the environments afterwards (GET /_lambdalet/status), the CPU the server process and the sandbox
   processes (zygotes, environments: the server's descendants) used per environment, and the CPU of
   the server and of the whole machine during the burst.
5. memory per idle warm environment, right after 4 (100 idle environments): the unique memory (USS =
   Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) and PSS of each environment's processes
   — linux: the server's descendants running as uid 993 (the sandbox uid), grouped per environment;
   process: the server's children whose command line holds bootstrap.py, with their descendants.
   Target: ≤ 5 MB USS per environment. The linux backend's zygotes are shown on their own: they
   are paid once per interpreter, not per environment.

The last line printed is one JSON object with every number (also written by --json-out). The exit
status is 0 when every step ran without errors, 1 otherwise, 130 when interrupted. A target that is
missed, or SnapStart that is not available, is reported but is not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (bench/invoke.py: server handling, HTTP client, statistics)

from botocore.exceptions import ClientError  # noqa: E402

BACKENDS = ("linux", "process")
RUNTIME = "python3.11"
SANDBOX_UID = 993  # the server's default --sandbox-uid
SNAPSTART_FLAG = "--snapstart-latest"
RESTORE_DURATION = re.compile(r"Restore Duration: (\d+(?:\.\d+)?) ms")
CRASH_PAYLOAD = b'{"crash": true}'
HEAVY_INIT_MIN_MS = 200.0
SCALE_TARGET_MS = 2000.0
USS_TARGET_MB = 5.0
SETTLE_TIMEOUT_S = 10.0  # environments going idle after a burst, or away after a crash
SAMPLE_INTERVAL_S = 0.05  # status endpoint sampling during the scale burst
SCALE_HANDLER_SLEEP_S = 1.0

TRIVIAL_SOURCE = "def handler(event, context):\n    return event\n"
HEAVY_SOURCE = '''import os

import boto3

CLIENTS = [boto3.client(service, region_name="us-east-1") for service in ("s3", "sqs", "dynamodb")]


def handler(event, context):
    if isinstance(event, dict) and event.get("crash"):
        os._exit(3)  # ends this execution environment: the next invoke is a cold start
    return event
'''
SLEEP_SOURCE = f'''import time


def handler(event, context):
    time.sleep({SCALE_HANDLER_SLEEP_S})
    return event
'''


# -- plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    backends: tuple[str, ...]
    cold: int = 40
    heavy_cold: int = 15
    warm: int = 2000
    warm_warmup: int = 200
    clients: int = 8
    duration_s: float = 5.0
    scale: int = 100
    #: MemorySize of the functions of steps 1–3: one vCPU (at 128 MB Lambda's 7 % CPU share would be
    #: what is measured, not the platform). The scale step's function has Lambda's smallest, 128 MB.
    memory_mb: int = 1769
    scale_memory_mb: int = 128
    snapstart: bool = True
    #: SnapStart for Python needs python3.12 or later, on AWS and on Lambdalet.
    snapstart_runtime: str = "python3.12"
    #: extra `lambdalet server` flags for every server started (experiments: --max-parallel-starts 32)
    server_args: tuple[str, ...] = ()


FULL = Plan(backends=BACKENDS)
QUICK = Plan(backends=BACKENDS, cold=5, heavy_cold=3, warm=300, warm_warmup=50, duration_s=1.0)


def base_plan(plan: Plan) -> base.Plan:
    """The bench/invoke.py plan its warm_http() reads (iterations and warm-up only)."""
    return base.Plan(iterations=plan.warm, warmup=plan.warm_warmup, boto3_iterations=0, duration_s=plan.duration_s,
                     concurrency=(plan.clients,), cold=0, parallel=0, parallel_rounds=0, memory_mb=plan.memory_mb)


# -- the servers under test -------------------------------------------------------------------------


class BackendServer(base.ManagedServer):
    """bench/invoke.py's ManagedServer with `--sandbox BACKEND` and extra flags."""

    def __init__(self, backend: str, extra: Sequence[str] = ()) -> None:
        super().__init__()
        self.backend = backend
        self.extra = list(extra)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "lambdalet", "server", "--host", base.HOST, "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--sandbox", self.backend, *self.extra]

    def start(self) -> None:  # as ManagedServer.start, with our argv
        env = {**os.environ, "LAMBDALET_KEEP_ALIVE": "600"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + base.READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerExited(f"the server exited with status {self.proc.returncode} before it was ready; "
                                   f"its log ({self.log_path}) ends with:\n{base.tail_of(self.log_path)}",
                                   base.tail_of(self.log_path, 3))
            with contextlib.suppress(OSError, http.client.HTTPException):
                if base.get_json(self.port, base.FUNCTIONS_PATH, timeout=1.0)[0] == 200:
                    return
            time.sleep(base.POLL_INTERVAL_S)
        raise RuntimeError(f"the server did not answer GET {base.FUNCTIONS_PATH} with 200 within "
                           f"{base.READY_TIMEOUT_S:.0f} s; its log ({self.log_path}) ends with:\n"
                           f"{base.tail_of(self.log_path)}")


class ServerExited(RuntimeError):
    def __init__(self, message: str, last_lines: str) -> None:
        super().__init__(message)
        self.last_lines = last_lines


@contextlib.contextmanager
def running_server(backend: str, extra: Sequence[str], record: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Start a server, yield it, always stop it; the log is kept (path recorded) when a step failed."""
    server = BackendServer(backend, extra)
    started = time.perf_counter()
    failed = True
    try:
        server.start()
        record["ready_ms"] = round(base.ms_since(started), 1)
        yield server
        failed = bool(base.problems_of(record)) or server.exit_status() is not None
    except KeyboardInterrupt:
        failed = False  # as bench/invoke.py: no log kept when the user stopped the run
        raise
    finally:
        if server.exit_status() is not None and "ready_ms" in record:
            record["exited"] = f"the server exited during the run (status {server.exit_status()})"
            record["error"] = record["exited"]
        server.stop(keep_log=failed)
        if failed and server.log_path.exists():
            record["log"] = str(server.log_path)


# -- functions --------------------------------------------------------------------------------------


def zip_of(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def create_function(lam: Any, prefix: str, source: str, memory_mb: int, timeout_s: int = 30,
                    runtime: str = RUNTIME, **extra: Any) -> str:
    name = f"bench-sandbox-{prefix}-{uuid.uuid4().hex[:8]}"
    config = lam.create_function(FunctionName=name, Runtime=runtime, Role=base.ROLE, Handler="app.handler",
                                 Code={"ZipFile": zip_of(source)}, MemorySize=memory_mb, Timeout=timeout_s, **extra)
    base.wait_until(lam, name, "State", "Active", config.get("State"))
    return name


@contextlib.contextmanager
def function(lam: Any, prefix: str, source: str, memory_mb: int, timeout_s: int = 30,  # type: ignore[no-untyped-def]
             runtime: str = RUNTIME, **extra: Any):
    name = create_function(lam, prefix, source, memory_mb, timeout_s, runtime, **extra)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            lam.delete_function(FunctionName=name)


def settle(port: int, name: str, done: Callable[[dict[str, int]], bool],
           timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, int] | None:
    """Poll the status endpoint (bounded) until `done(counts)`; returns the last counts."""
    counts = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = base.environment_counts(port, name)
        if counts is None or done(counts):
            return counts
        time.sleep(base.POLL_INTERVAL_S)
    return counts


def post(port: int, name: str, body: bytes, headers: dict[str, str]) -> tuple[base.Reply, float]:
    conn = base.Connection(port)
    try:
        started = time.perf_counter()
        reply = conn.post(base.invoke_path(name), body, headers)
        return reply, base.ms_since(started)
    finally:
        conn.close()


def echoes_payload(body: bytes) -> bool:
    try:
        return json.loads(body) == json.loads(base.PAYLOAD)
    except ValueError:
        return False


def ok(reply: base.Reply, expected: bytes) -> bool:
    return reply.status == 200 and not reply.function_error and reply.body == expected


def start_durations(reply: base.Reply) -> tuple[float | None, float | None]:
    """(Init Duration, Restore Duration) of the REPORT line, each None when absent."""
    text = reply.log_text()
    init = base.INIT_DURATION.search(text)
    restore = RESTORE_DURATION.search(text)
    return (float(init.group(1)) if init else None, float(restore.group(1)) if restore else None)


# -- 1 and 2. cold starts ---------------------------------------------------------------------------


def cold_trivial(lam: Any, port: int, plan: Plan) -> dict[str, Any]:
    with function(lam, "trivial", TRIVIAL_SOURCE, plan.memory_mb) as name:
        expected = base.first_invoke(port, name)
        return base.cold_starts(lam, port, name, plan.cold, expected)


def cold_heavy(lam: Any, port: int, plan: Plan) -> dict[str, Any]:
    with function(lam, "heavy", HEAVY_SOURCE, plan.memory_mb) as name:
        expected = base.first_invoke(port, name)
        result = base.cold_starts(lam, port, name, plan.heavy_cold, expected)
    p50 = result["init_duration"]["p50"]
    result["init_at_least_ms"] = HEAVY_INIT_MIN_MS
    if p50 is not None and p50 < HEAVY_INIT_MIN_MS:
        result["error"] = (f"the heavy handler's Init Duration p50 is {p50:.0f} ms, below the {HEAVY_INIT_MIN_MS:.0f} ms "
                           "this step is meant to measure")
    return result


def snapstart(backend: str, plan: Plan) -> dict[str, Any]:
    """The heavy handler with and without SnapStart, on a server of its own started with --snapstart-latest.

    SnapStart needs python3.12 or later (as on AWS), so both functions use plan.snapstart_runtime, and
    both have their cold starts forced the same way (a crashing invoke), for a like-for-like pair.
    """
    record: dict[str, Any] = {"available": False, "runtime": plan.snapstart_runtime}
    try:
        with running_server(backend, [*plan.server_args, SNAPSTART_FLAG], record) as server:
            lam = base.lambda_client(server.port)
            try:
                name = create_function(lam, "snap", HEAVY_SOURCE, plan.memory_mb, runtime=plan.snapstart_runtime,
                                       SnapStart={"ApplyOn": "PublishedVersions"})
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidParameterValueException":
                    record["reason"] = f"CreateFunction refused SnapStart: {exc.response['Error'].get('Message')}"
                    return record
                raise
            record["available"] = True
            try:
                record["snap_start"] = lam.get_function_configuration(FunctionName=name).get("SnapStart")
                base.attempt(record, "with", lambda: crash_cold(server.port, name, plan.heavy_cold))
            finally:
                with contextlib.suppress(Exception):
                    lam.delete_function(FunctionName=name)
            with function(lam, "nosnap", HEAVY_SOURCE, plan.memory_mb, runtime=plan.snapstart_runtime) as plain:
                base.attempt(record, "without", lambda: crash_cold(server.port, plain, plan.heavy_cold))
    except ServerExited as exc:  # before it was ready
        if "no such option" not in exc.last_lines.lower():
            record["error"] = str(exc)
            return record
        record.pop("error", None)
        with contextlib.suppress(OSError, KeyError):
            Path(record.pop("log")).unlink()  # the refusal is the answer, not a failure
        last = exc.last_lines.strip().splitlines()
        record["reason"] = f"the server does not know {SNAPSTART_FLAG} ({last[-1] if last else 'it exited'})"
    except Exception as exc:  # KeyboardInterrupt goes on up
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


def crash_cold(port: int, name: str, iterations: int) -> dict[str, Any]:
    """A first invoke, then `iterations` times: a crashing invoke (which ends the environment without
    changing the function), and one invoke timed end to end, which must be a cold start."""
    errors = base.ErrorLog()
    first, first_ms = post(port, name, base.PAYLOAD, base.TAIL_HEADERS)
    if first.status != 200 or first.function_error:
        raise RuntimeError(f"the first invoke failed: {base.describe_failure(first)}")
    expected = first.body
    first_init, first_restore = start_durations(first)
    end_to_end: list[float] = []
    inits: list[float] = []
    restores: list[float] = []
    not_cold = 0
    for _ in range(iterations):
        try:
            crash, _ = post(port, name, CRASH_PAYLOAD, base.INVOKE_HEADERS)
        except (OSError, http.client.HTTPException) as exc:
            errors.add_exception(exc)
            continue
        if crash.status != 200 or not crash.function_error:
            errors.add("crash invoke did not fail", base.describe_failure(crash))
        # the crashed environment is gone once the status endpoint no longer counts it (1 s at most:
        # a SnapStart template might be counted as an environment too)
        settle(port, name, lambda c: c.get("idle", 0) + c.get("busy", 0) == 0, timeout_s=1.0)
        try:
            reply, elapsed = post(port, name, base.PAYLOAD, base.TAIL_HEADERS)
        except (OSError, http.client.HTTPException) as exc:
            errors.add_exception(exc)
            continue
        if not ok(reply, expected):
            errors.add_reply(reply)
            continue
        end_to_end.append(elapsed)
        init, restore = start_durations(reply)
        if init is None and restore is None:
            not_cold += 1
        if init is not None:
            inits.append(init)
        if restore is not None:
            restores.append(restore)
    return {"first_invoke_ms": round(first_ms, 1), "first_init_duration": first_init,
            "first_restore_duration": first_restore,
            "end_to_end": asdict(base.Stats.of(end_to_end)), "init_duration": asdict(base.Stats.of(inits)),
            "restore_duration": asdict(base.Stats.of(restores)), "not_cold": not_cold, "errors": errors.to_json()}


# -- 3. warm ----------------------------------------------------------------------------------------


def warm(lam: Any, server: BackendServer, plan: Plan) -> dict[str, Any]:
    with function(lam, "warm", TRIVIAL_SOURCE, plan.memory_mb) as name:
        expected = base.first_invoke(server.port, name)
        result: dict[str, Any] = {}
        base.attempt(result, "latency", lambda: base.warm_http(server.port, name, base_plan(plan), expected))
        base.attempt(result, "throughput", lambda: base.throughput(server.port, server.pid, name, plan.clients,
                                                                    plan.duration_s, expected))
        return result


# -- 4. scale from 0 --------------------------------------------------------------------------------


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of every live descendant of `root` (zygotes, spares, runtimes and their children)."""
    result: dict[int, float] = {}
    for pid in descendants(processes(), root):
        seconds = base.cpu_seconds(pid)
        if seconds is not None:
            result[pid] = seconds
    return result


def scale(port: int, server_pid: int | None, name: str, clients: int) -> dict[str, Any]:
    path = base.invoke_path(name)
    conns = [base.Connection(port) for _ in range(clients)]
    replies: list[base.Reply | BaseException | None] = [None] * clients
    finished = [0.0] * clients
    clock: dict[str, float] = {}
    before: dict[str, Any] = {}

    def go() -> None:  # runs once, when every client is ready, just before they are released
        before["cpu"] = base.CpuSnapshot.take(server_pid)
        before["tree"] = tree_cpu(server_pid) if server_pid else {}
        clock["start"] = time.perf_counter()

    start = threading.Barrier(clients, action=go)
    all_done = threading.Event()
    samples: list[tuple[float, int, int]] = []  # (ms since start, environments, of them starting)

    def client(i: int) -> None:
        try:
            start.wait(base.BARRIER_TIMEOUT_S)
            replies[i] = conns[i].post(path, base.PAYLOAD, base.TAIL_HEADERS)
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            replies[i] = exc
        finished[i] = time.perf_counter()

    def sampler() -> None:  # what the server says while the burst is on (about 20 requests/s)
        deadline = time.monotonic() + base.BARRIER_TIMEOUT_S + base.HTTP_TIMEOUT_S
        while not all_done.is_set() and time.monotonic() < deadline:
            counts = base.environment_counts(port, name)
            if counts is not None and "start" in clock:
                samples.append((base.ms_since(clock["start"]), sum(counts.values()), counts.get("starting", 0)))
            all_done.wait(SAMPLE_INTERVAL_S)

    try:
        for conn in conns:
            conn.connect()
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(base.BARRIER_TIMEOUT_S + base.HTTP_TIMEOUT_S)
        all_done.set()
        after_cpu = base.CpuSnapshot.take(server_pid)
        after_tree = tree_cpu(server_pid) if server_pid else {}
        watcher.join(10)
    finally:
        all_done.set()
        for conn in conns:
            conn.close()
    if "start" not in clock:
        raise RuntimeError("the scale clients never started")
    errors = base.ErrorLog()
    latencies: list[float] = []
    inits: list[float] = []
    not_cold = 0
    for reply, end in zip(replies, finished):
        if isinstance(reply, BaseException):
            errors.add_exception(reply)
        elif reply is None:
            errors.add("no reply", f"no reply within {base.HTTP_TIMEOUT_S:.0f} s")
        elif reply.status != 200 or reply.function_error or not echoes_payload(reply.body):
            errors.add_reply(reply)
        else:
            latencies.append((end - clock["start"]) * 1000)
            init, _ = base.parse_report(reply)
            if init is None:
                not_cold += 1
            else:
                inits.append(init)
    done = [end for reply, end in zip(replies, finished) if end and isinstance(reply, base.Reply)]
    after = settle(port, name, lambda c: c.get("busy", 0) == 0 and c.get("starting", 0) == 0)
    reached = next((t for t, total, _ in samples if total >= clients), None)
    cpu = after_cpu.usage_since(before["cpu"])
    del cpu["runtimes_pct"]  # direct children only: under linux that is the zygote, not the environments
    sandbox_cpu_s = sum(cpu_s - before["tree"].get(pid, 0.0) for pid, cpu_s in after_tree.items())
    wall_s = after_cpu.wall - before["cpu"].wall
    cpu["sandbox_pct"] = round(100 * sandbox_cpu_s / wall_s, 1) if server_pid and wall_s > 0 else None
    return {
        "clients": clients,
        "all_done_ms": round((max(done) - clock["start"]) * 1000, 1) if done else None,
        "target_ms": SCALE_TARGET_MS,
        "handler_sleep_ms": SCALE_HANDLER_SLEEP_S * 1000,
        "ok": len(latencies), "cold": len(inits), "not_cold": not_cold,
        "latency": asdict(base.Stats.of(latencies)), "init_duration": asdict(base.Stats.of(inits)),
        "max_environments_seen": max((total for _, total, _ in samples), default=None),
        "max_starting_seen": max((starting for _, _, starting in samples), default=None),
        "all_environments_seen_at_ms": round(reached, 1) if reached is not None else None,
        "environments_after": after,
        "cpu": cpu,
        "server_cpu_ms_per_environment": (round(10 * cpu["server_pct"] * wall_s / clients, 1)
                                          if cpu["server_pct"] is not None else None),
        "sandbox_cpu_ms_per_environment": round(1000 * sandbox_cpu_s / clients, 1) if server_pid else None,
        "status_samples": [[round(t), total, starting] for t, total, starting in samples],
        "errors": errors.to_json(),
    }


# -- 5. memory per idle environment -----------------------------------------------------------------


@dataclass
class Proc:
    pid: int
    ppid: int
    uid: int
    cmdline: str


def processes() -> dict[int, Proc]:
    found: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue  # gone meanwhile
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            found[pid] = Proc(pid, int(fields["PPid"].split()[0]), int(fields["Uid"].split()[0]), cmdline)
        except (KeyError, ValueError, IndexError):
            continue
    return found


def descendants(procs: dict[int, Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    seen: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def smaps_kb(pid: int) -> dict[str, int] | None:
    """Rss, Pss and USS (Private_Clean + Private_Dirty) of one process, in kB."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0])
    return {"rss": values.get("Rss", 0), "pss": values.get("Pss", 0),
            "uss": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)}


def environment_groups(backend: str, server_pid: int) -> tuple[dict[int, list[int]], list[int]]:
    """Runtime processes grouped per environment (root pid → pids), and the linux zygotes' pids."""
    procs = processes()
    under = descendants(procs, server_pid)
    groups: dict[int, list[int]] = {}
    zygotes: list[int] = []
    if backend == "linux":
        sandboxed = {pid for pid in under if procs[pid].uid == SANDBOX_UID}
        for pid in sandboxed:
            root = pid
            while procs[root].ppid in sandboxed:
                root = procs[root].ppid
            groups.setdefault(root, []).append(pid)
        zygotes = [pid for pid in under if procs[pid].ppid == server_pid and "zygote.py" in procs[pid].cmdline]
    else:
        for pid in under:
            if procs[pid].ppid == server_pid and "bootstrap.py" in procs[pid].cmdline:
                groups[pid] = [pid, *descendants(procs, pid)]
    return groups, zygotes


def mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 2)


def memory(backend: str, server_pid: int, expected_environments: int) -> dict[str, Any]:
    groups, zygotes = environment_groups(backend, server_pid)
    per_env: list[dict[str, int]] = []
    for pids in groups.values():
        readings = [r for r in (smaps_kb(pid) for pid in pids) if r is not None]
        if readings:
            per_env.append({k: sum(r[k] for r in readings) for k in ("rss", "pss", "uss")})
    result: dict[str, Any] = {"environments": len(per_env), "expected": expected_environments,
                              "processes": sum(len(p) for p in groups.values()), "target_uss_mb": USS_TARGET_MB}
    for key in ("uss", "pss", "rss"):
        values = [e[key] for e in per_env]
        stats = base.Stats.of(values)  # nearest-rank, as every other percentile here
        result[key] = {"p50_mb": mb(stats.p50), "mean_mb": mb(stats.mean), "max_mb": mb(stats.max),
                       "total_mb": mb(sum(values)) if values else None}
    zygote_readings = [r for r in (smaps_kb(pid) for pid in zygotes) if r is not None]
    result["zygotes"] = {"count": len(zygote_readings),
                         **{f"{k}_mb": mb(sum(r[k] for r in zygote_readings)) for k in ("uss", "pss", "rss")}}
    if len(per_env) != expected_environments:
        result["error"] = (f"found {len(per_env)} environments' processes, the status endpoint says "
                           f"{expected_environments} are idle")
    return result


def scale_and_memory(lam: Any, server: BackendServer, plan: Plan) -> tuple[dict[str, Any], dict[str, Any] | None]:
    with function(lam, "scale", SLEEP_SOURCE, plan.scale_memory_mb, timeout_s=10) as name:
        result = scale(server.port, server.pid, name, plan.scale)
        after = result["environments_after"] or {}
        mem: dict[str, Any] = {}
        if server.pid is not None:
            base.attempt(mem, "result", lambda: memory(server.backend, server.pid, after.get("idle", 0)))
            mem = mem["result"]
        return result, mem


# -- one backend ------------------------------------------------------------------------------------


def progress(backend: str, text: str) -> None:
    print(f"  [{backend}] {text}", flush=True)


def run_backend(backend: str, plan: Plan) -> dict[str, Any]:
    record: dict[str, Any] = {}
    try:
        with running_server(backend, plan.server_args, record) as server:
            progress(backend, f"server ready after {record['ready_ms']:.0f} ms (pid {server.pid}, port {server.port})")
            code, status = base.get_json(server.port, "/_lambdalet/status")
            record["status"] = status if code == 200 else None
            if isinstance(status, dict) and status.get("sandbox") != backend:
                record["error"] = f"asked for --sandbox {backend}, the server runs {status.get('sandbox')!r}"
                return record
            lam = base.lambda_client(server.port)
            steps: list[tuple[str, str, Callable[[], Any]]] = [
                ("cold_trivial", f"1. {plan.cold} cold starts, trivial handler", lambda: cold_trivial(lam, server.port, plan)),
                ("cold_heavy", f"2. {plan.heavy_cold} cold starts, heavy handler",
                 lambda: cold_heavy(lam, server.port, plan)),
                ("warm", f"3. {plan.warm} warm invokes + {plan.clients} clients × {plan.duration_s:g} s",
                 lambda: warm(lam, server, plan)),
            ]
            for key, title, step in steps:
                started = time.perf_counter()
                base.attempt(record, key, step)
                progress(backend, f"{title}: {base.ms_since(started) / 1000:.1f} s"
                         + (f" — {record[key]['error']}" if "error" in record[key] else ""))
            started = time.perf_counter()
            pair = base.attempt(record, "scale", lambda: scale_and_memory(lam, server, plan))
            if pair is not None:
                record["scale"], record["memory"] = pair
            progress(backend, f"4+5. scale 0 → {plan.scale} and memory: {base.ms_since(started) / 1000:.1f} s")
    except Exception as exc:  # the server did not start, or died; KeyboardInterrupt goes on up
        record["error"] = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
    if plan.snapstart and "ready_ms" in record:
        started = time.perf_counter()
        record["snapstart"] = snapstart(backend, plan)
        snap = record["snapstart"]
        progress(backend, f"2b. heavy handler with SnapStart: {base.ms_since(started) / 1000:.1f} s — "
                 + ("available" if snap.get("available") else f"not available: {snap.get('reason') or snap.get('error')}"))
    return record


# -- report -----------------------------------------------------------------------------------------


def get(record: dict[str, Any], *keys: str) -> Any:
    node: Any = record
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def pair(record: dict[str, Any], *keys: str, digits: int = 1) -> str:
    stats = get(record, *keys)
    if not isinstance(stats, dict) or not stats.get("n"):
        return "—"
    return f"{base.fmt(stats['p50'], digits)} / {base.fmt(stats['p99'], digits)}"


def table_rows(records: dict[str, dict[str, Any]], plan: Plan) -> list[tuple[str, list[str]]]:
    def per(fn: Callable[[dict[str, Any]], str]) -> list[str]:
        cells = []
        for record in records.values():
            if "ready_ms" not in record:
                cells.append("server did not start")
                continue
            try:
                cells.append(fn(record))
            except (TypeError, KeyError, ValueError):
                cells.append("—")
        return cells

    def snap(fn: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        def cell(record: dict[str, Any]) -> str:
            s = record.get("snapstart") or {}
            if not s.get("available"):
                return "not available" if "reason" in s else ("error" if "error" in s else "—")
            return fn(s)
        return cell

    def count(stats: dict[str, Any] | None) -> str:
        return str(stats["n"]) if stats else "—"

    def scale_done(r: dict[str, Any]) -> str:
        ms = get(r, "scale", "all_done_ms")
        if ms is None:
            return "—"
        return f"{ms:,.0f} ({'meets' if ms <= SCALE_TARGET_MS else 'misses'} 2 s)"

    def envs(r: dict[str, Any]) -> str:
        after = get(r, "scale", "environments_after") or {}
        return " / ".join(str(after.get(k, "?")) for k in ("idle", "busy", "starting"))

    def mem(key: str) -> Callable[[dict[str, Any]], str]:
        def cell(r: dict[str, Any]) -> str:
            m = get(r, "memory", key) or {}
            return f"{base.fmt(m.get('p50_mb'))} / {base.fmt(m.get('mean_mb'))}" if m.get("p50_mb") is not None else "—"
        return cell

    def uss_verdict(r: dict[str, Any]) -> str:
        p50 = get(r, "memory", "uss", "p50_mb")
        return "—" if p50 is None else ("meets" if p50 <= USS_TARGET_MB else "misses")

    def zygote(r: dict[str, Any]) -> str:
        z = get(r, "memory", "zygotes") or {}
        return f"{z['count']}: {base.fmt(z['uss_mb'], 1)} / {base.fmt(z['pss_mb'], 1)}" if z.get("count") else "none"

    return [
        ("Server start-up, ms", per(lambda r: f"{r['ready_ms']:,.0f}")),
        ("1. Cold start, trivial: end to end p50 / p99, ms (n)",
         per(lambda r: f"{pair(r, 'cold_trivial', 'end_to_end')} ({count(get(r, 'cold_trivial', 'end_to_end'))})")),
        ("1. Cold start, trivial: Init Duration p50 / p99, ms", per(lambda r: pair(r, "cold_trivial", "init_duration"))),
        ("2. Cold start, heavy (boto3 + 3 clients): end to end p50 / p99, ms (n)",
         per(lambda r: f"{pair(r, 'cold_heavy', 'end_to_end')} ({count(get(r, 'cold_heavy', 'end_to_end'))})")),
        ("2. Cold start, heavy: Init Duration p50 / p99, ms", per(lambda r: pair(r, "cold_heavy", "init_duration"))),
        (f"2b. Heavy, {plan.snapstart_runtime}, no SnapStart, crash-forced cold: e2e p50 / p99, ms (n)",
         per(snap(lambda s: f"{pair(s, 'without', 'end_to_end')} ({count(get(s, 'without', 'end_to_end'))})"))),
        (f"2b. Heavy, {plan.snapstart_runtime}, no SnapStart: Init Duration p50 / p99, ms",
         per(snap(lambda s: pair(s, "without", "init_duration")))),
        (f"2b. Heavy, {plan.snapstart_runtime}, SnapStart: first invoke (builds the template), ms",
         per(snap(lambda s: f"{s['with']['first_invoke_ms']:,.0f}"))),
        (f"2b. Heavy, {plan.snapstart_runtime}, SnapStart, later cold starts: e2e p50 / p99, ms (n)",
         per(snap(lambda s: f"{pair(s, 'with', 'end_to_end')} ({count(get(s, 'with', 'end_to_end'))})"))),
        (f"2b. Heavy, {plan.snapstart_runtime}, SnapStart: Restore Duration p50 / p99, ms",
         per(snap(lambda s: pair(s, "with", "restore_duration")))),
        ("3. Warm, 1 keep-alive client: p50 / p99, ms (n)",
         per(lambda r: f"{pair(r, 'warm', 'latency', digits=2)} ({count(get(r, 'warm', 'latency'))})")),
        (f"3. Warm, {plan.clients} keep-alive clients: invokes/s",
         per(lambda r: f"{get(r, 'warm', 'throughput', 'invokes_per_s'):,.0f}")),
        (f"3. Warm, {plan.clients} clients: p50 / p99, ms", per(lambda r: pair(r, "warm", "throughput", "latency",
                                                                              digits=2))),
        (f"3. Warm, {plan.clients} clients: CPU server / machine, % of a core",
         per(lambda r: f"{base.fmt(get(r, 'warm', 'throughput', 'cpu', 'server_pct'), 0)} / "
                       f"{base.fmt(get(r, 'warm', 'throughput', 'cpu', 'machine_pct'), 0)}")),
        (f"4. Scale 0 → {plan.scale} (1 s handler): all answered, ms", per(scale_done)),
        ("4. Scale: cold starts / errors",
         per(lambda r: f"{get(r, 'scale', 'cold')} / {get(r, 'scale', 'errors', 'total')}")),
        ("4. Scale: Init Duration p50 / p99, ms", per(lambda r: pair(r, "scale", "init_duration", digits=0))),
        ("4. Scale: most environments seen at once (status)",
         per(lambda r: f"{get(r, 'scale', 'max_environments_seen')} "
                       f"(all at {base.fmt(get(r, 'scale', 'all_environments_seen_at_ms'), 0)} ms)")),
        ("4. Scale: CPU per environment, server / sandbox processes, ms",
         per(lambda r: f"{base.fmt(get(r, 'scale', 'server_cpu_ms_per_environment'), 1)} / "
                       f"{base.fmt(get(r, 'scale', 'sandbox_cpu_ms_per_environment'), 1)}")),
        ("4. Scale: CPU server / machine during the burst, % of a core",
         per(lambda r: f"{base.fmt(get(r, 'scale', 'cpu', 'server_pct'), 0)} / "
                       f"{base.fmt(get(r, 'scale', 'cpu', 'machine_pct'), 0)}")),
        ("4. Scale: environments after, idle / busy / starting", per(envs)),
        ("5. Idle environment USS p50 / mean, MB (target ≤ 5)", per(mem("uss"))),
        ("5. USS target", per(uss_verdict)),
        ("5. Idle environment PSS p50 / mean, MB", per(mem("pss"))),
        ("5. Idle environment RSS p50 / mean, MB", per(mem("rss"))),
        ("5. Environments measured (processes)",
         per(lambda r: f"{get(r, 'memory', 'environments')} ({get(r, 'memory', 'processes')})")),
        ("5. Zygotes: USS / PSS, MB (once per interpreter)",
         per(zygote)),
    ]


def print_table(records: dict[str, dict[str, Any]], plan: Plan) -> None:
    rows = table_rows(records, plan)
    header = ["Measurement", *records]
    widths = [max(len(header[0]), *(len(label) for label, _ in rows))]
    for i in range(len(records)):
        widths.append(max(len(header[i + 1]), *(len(cells[i]) for _, cells in rows)))
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|")
    for label, cells in rows:
        print("| " + " | ".join([label.ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells, widths[1:]))]) + " |")
    print(flush=True)


def print_header(facts: dict[str, Any], plan: Plan) -> None:
    print("Lambdalet sandbox benchmark")
    print(f"  date      {facts['date']}")
    print(f"  machine   {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), {facts['cpu_model']}, "
          f"{facts['memory_gb']} GB, {facts['os']}, load avg {' '.join(map(str, facts['load_avg_at_start']))}")
    print(f"  python    {facts['python']} ({facts['python_executable']}); functions {RUNTIME}")
    print(f"  code      {facts['code'] or 'unknown (not a git checkout)'}")
    print(f"  backends  {', '.join(plan.backends)} (one server each, one after the other)"
          + (f"; extra server flags: {' '.join(plan.server_args)}" if plan.server_args else ""))
    print(f"  plan      {plan.cold} trivial + {plan.heavy_cold} heavy cold starts (MemorySize {plan.memory_mb}), "
          f"{plan.warm} warm invokes (+{plan.warm_warmup} warm-up), {plan.clients} clients × {plan.duration_s:g} s, "
          f"scale 0 → {plan.scale} (MemorySize {plan.scale_memory_mb}), SnapStart {'tried' if plan.snapstart else 'skipped'}")
    print(flush=True)


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (or bench/README.md) for what each number means.")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default linux,process)")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run (< 60 s)")
    parser.add_argument("--cold", type=int, help=f"trivial cold starts (default {FULL.cold}, quick {QUICK.cold})")
    parser.add_argument("--heavy-cold", type=int, help=f"heavy cold starts (default {FULL.heavy_cold}, "
                        f"quick {QUICK.heavy_cold})")
    parser.add_argument("--scale", type=int, help=f"concurrent first invokes (default {FULL.scale})")
    parser.add_argument("--no-snapstart", action="store_true", help="skip the SnapStart server")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for every server started, repeatable "
                             "(e.g. --server-arg=--max-parallel-starts --server-arg=32)")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if not backends or any(b not in BACKENDS for b in backends) or len(set(backends)) != len(backends):
        parser.error(f"--backends takes a comma-separated subset of {','.join(BACKENDS)}")
    plan = replace(QUICK if args.quick else FULL, backends=backends, snapstart=not args.no_snapstart,
                   server_args=tuple(args.server_arg))
    overrides = {k: v for k, v in (("cold", args.cold), ("heavy_cold", args.heavy_cold), ("scale", args.scale))
                 if v is not None}
    plan = replace(plan, **overrides)
    if min(plan.cold, plan.heavy_cold, plan.scale) < 1 or max(plan.cold, plan.heavy_cold) > 10_000 or plan.scale > 1000:
        parser.error("counts must be ≥ 1 (cold starts ≤ 10,000, --scale ≤ 1,000)")
    return args, plan


def main(argv: Sequence[str] | None = None) -> int:
    args, plan = parse_args(argv)
    signal.signal(signal.SIGTERM, base._terminate)
    facts = base.machine_facts()
    results: dict[str, Any] = {"benchmark": "sandbox", "machine": facts, "plan": asdict(plan), "backends": {}}
    print_header(facts, plan)
    interrupted = False
    problems: list[str] = []
    try:
        for backend in plan.backends:
            print(f"{backend}:", flush=True)
            results["backends"][backend] = run_backend(backend, plan)
            print(flush=True)
    except KeyboardInterrupt:
        interrupted = True
        problems.append("interrupted")
    problems += base.problems_of({"backends": results["backends"]})
    notes: list[str] = []
    for backend, record in results["backends"].items():
        snap = record.get("snapstart") or {}
        if not snap.get("available") and "reason" in snap:
            notes.append(f"{backend}: SnapStart not available — {snap['reason']}")
        if record.get("log"):
            notes.append(f"{backend}: server log kept at {record['log']}")
        if get(record, "snapstart", "log"):
            notes.append(f"{backend}: SnapStart server log kept at {snap['log']}")
    results["problems"], results["notes"] = problems, notes
    if results["backends"]:
        print_table(results["backends"], plan)
    base.print_list("Notes", notes)
    base.print_list("Problems", problems)
    return base.finish(results, args.json_out, interrupted)


if __name__ == "__main__":
    sys.exit(main())

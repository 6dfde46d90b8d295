#!/usr/bin/env python3
"""Event source mapping benchmark: an SQS queue (moto) polled by Lambdalet, against a bare consumer.

    .venv/bin/python bench/event_source_mappings.py [--messages 5000] [--latency-samples 100]
    .venv/bin/python bench/event_source_mappings.py --quick          # smoke run (1,000 messages, 20 samples)
    .venv/bin/python bench/event_source_mappings.py --json-out esm.json

The script starts a moto server (`python -m moto.server`) and a Lambdalet server whose environment
points boto3 at it (`AWS_ENDPOINT_URL`), both on free ports of 127.0.0.1, and stops both at the
end, also on Ctrl-C, SIGTERM or an error; their temporary directories are removed (the logs are
kept, and their paths printed, only when something went wrong). Every queue is fresh. All four
measurements use the same moto server, one after the other, so moto's own cost is in both columns:

1. **Bare consumer throughput**: N messages are sent (send_message_batch) to a queue, then one
   thread of this process runs receive_message (MaxNumberOfMessages=10, WaitTimeSeconds=20, all
   attributes, as Lambda asks) → delete_message_batch until it has deleted N: messages/s from its
   first receive to its last delete.
2. **Mapping throughput**: N messages are sent to another queue, then an event source mapping
   (BatchSize 10, no batching window) is created for a function `def handler(event, context):
   return None` (MemorySize 1,769 MB: one vCPU). Timed from the CreateEventSourceMapping call until
   the queue is empty: moto's ApproximateNumberOfMessages + …NotVisible + …Delayed, which moto
   counts exactly, all 0 (polled every 50 ms). The poller deletes a batch only after the function
   succeeded with it, so an empty queue means every message was delivered and deleted. Lambdalet's
   own counters (/metrics: records delivered, failed) and the function's invocation count are
   shown as a cross-check, with the CPU the Lambdalet and moto servers used meanwhile.
3. **Bare consumer latency**: N messages one after another into an idle queue, on which the
   consumer thread waits in its long poll: from SendMessage returning (time.time()) to that
   receive_message returning in the consumer (time.time()). The next message is sent after the
   consumer has deleted the previous one, and 20 ms more, so it is back in its long poll.
4. **Mapping latency**: the same with a mapping on another idle queue and a function that records
   time.time() at its start and prints it with the message body; the benchmark reads the function's
   log files (the server writes them within ~50 ms) for the line, which also says the message was
   handled, waits 20 ms, and sends the next. Same machine, same clock. Three messages before the
   N samples warm the function (its cold start is not what this measures).

Targets (issue 13, item 7): the mapping reaches ≥ 80 % of the bare consumer's messages/s, and adds
≤ 20 ms p50 latency over it. All times are wall clock in milliseconds; percentiles are
nearest-rank. The last line printed is one JSON object with every number (also written by
--json-out). The exit status is 0 when everything ran without errors, 1 otherwise, 130 when
interrupted. Never asserts on time: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling, statistics and CPU accounting of the invoke benchmark)

REGION = "us-east-1"
BATCH_SIZE = 10
MEMORY_MB = 1769
SETTLE_S = 0.02  # after a message was handled: the consumer is back in its long poll before the next send
EMPTY_POLL_S = 0.05
LOG_POLL_S = 0.002
SAMPLE_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 600.0
WARMUP_MESSAGES = 3
NOOP_SOURCE = "def handler(event, context):\n    return None\n"
CLOCK_SOURCE = ("import time\n\n\ndef handler(event, context):\n    started = time.time()\n"
                "    for record in event['Records']:\n        print('BENCH_CLOCK', record['body'], repr(started))\n")
CLOCK_LINE = re.compile(r"BENCH_CLOCK (\S+) (\d+\.\d+(?:e[+-]?\d+)?)")
COUNT_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed"]


@dataclass(frozen=True)
class Plan:
    messages: int
    latency_samples: int


FULL = Plan(messages=5000, latency_samples=100)
QUICK = Plan(messages=1000, latency_samples=20)


# -- moto -------------------------------------------------------------------------------------------

#: Run before moto's server (unless --moto-as-is). moto 5's SQS reads the clock (a datetime
#: subtraction, ~5 µs) once per message of the queue for every count it makes, and builds the
#: queue's whole attribute dict (three such counts) for every message sent and every message
#: received (the retention check): with 1,000 messages queued a receive took ~460 ms and a batch
#: send ~130 ms, with 5,000 several seconds, so a deep queue measured moto's quadratic cost and
#: nothing else. The patch reads the clock once per count and the retention period directly; what
#: moto answers is unchanged. It also holds the queue's lock while deleting: moto rebuilds the
#: queue's message list without it, so two concurrent DeleteMessageBatch calls (a mapping runs
#: five pollers or more) can undo each other's deletes, and ~1 run in 2 left 10 messages in flight
#: until their visibility timeout (30 s) with 8 threads. Both consumers use the same moto.
MOTO_PATCH = """
from moto.core.utils import unix_time_millis
from moto.sqs import models


def _count(test):
    def count(self):
        now = unix_time_millis()
        return [m for m in self._messages if test(m, now)]
    return count


def _visible(m, now):
    return now > m.visible_at and not now < m.delayed_until


_messages = _count(_visible)
models.Queue.messages = property(_messages)
models.Queue.approximate_number_of_messages = property(lambda self: len(_messages(self)))
models.Queue.approximate_number_of_messages_not_visible = property(
    lambda self: len(_count(lambda m, now: not now > m.visible_at)(self)))
models.Queue.approximate_number_of_messages_delayed = property(
    lambda self: len(_count(lambda m, now: now < m.delayed_until)(self)))


def _retained(self, queue_name, message):
    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time_millis() / 1000


models.SQSBackend.is_message_valid_based_on_retention_period = _retained
_delete = models.Queue.delete_message


def _locked_delete(self, receipt_handle):
    with self._messages_lock:
        _delete(self, receipt_handle)


models.Queue.delete_message = _locked_delete
"""


class MotoServer:
    """`python -m moto.server` as a child process on a free port (as tests/conftest.py's Moto),
    with MOTO_PATCH applied first unless `as_is`."""

    def __init__(self, log_path: Path, as_is: bool = False) -> None:
        self.as_is = as_is
        self.port = base.free_port()
        self.url = f"http://{base.HOST}:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            argv = ["-m", "moto.server"] if self.as_is else [
                "-c", MOTO_PATCH + "\nimport sys\nfrom moto.server import main\nsys.exit(main(sys.argv[1:]))"]
            self.proc = subprocess.Popen([sys.executable, *argv, "-H", base.HOST, "-p", str(self.port)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + base.READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self.proc.returncode}:\n{base.tail_of(self.log_path)}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not answer within {base.READY_TIMEOUT_S:.0f} s") from None
                time.sleep(base.POLL_INTERVAL_S)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(base.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(base.STOP_TIMEOUT_S)

    def client(self, service: str) -> Any:
        """A client for this process's own calls: a pool as large as the threads that use it."""
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id="bench",
                            aws_secret_access_key="bench",
                            config=Config(retries={"max_attempts": 1}, read_timeout=60, max_pool_connections=4))


# -- queues and the server's side -------------------------------------------------------------------


def new_queue(sqs: Any, label: str) -> tuple[str, str]:
    """A fresh standard queue (visibility timeout 30 s, above the functions' 3 s): its URL and ARN."""
    url = sqs.create_queue(QueueName=f"bench-esm-{label}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def fill(sqs: Any, url: str, count: int) -> float:
    """Send `count` small messages, ten per send_message_batch; returns seconds taken."""
    started = time.perf_counter()
    for first in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps({"n": first + i})} for i in range(min(10, count - first))]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"send_message_batch failed: {answer['Failed'][:1]}")
    return time.perf_counter() - started


def queue_count(sqs: Any, url: str) -> int:
    """Messages still in the queue, visible, in flight or delayed (moto counts them exactly)."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNT_ATTRIBUTES)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in COUNT_ATTRIBUTES)


def metric_values(port: int, name: str, labels: dict[str, str]) -> dict[str, float]:
    """Samples of one Prometheus metric whose labels include `labels`, by their other labels."""
    conn = http.client.HTTPConnection(base.HOST, port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text, _, value = line[len(name) + 1:].rpartition("} ")
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(pairs.get(k) == v for k, v in labels.items()):
            rest = ",".join(f"{k}={v}" for k, v in pairs.items() if k not in labels)
            found[rest] = found.get(rest, 0.0) + float(value)
    return found


def create_function(lam: Any, name: str, source: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    config = lam.create_function(FunctionName=name, Runtime="python3.11", Role=base.ROLE, Handler="app.handler",
                                 Code={"ZipFile": buffer.getvalue()}, MemorySize=MEMORY_MB)
    base.wait_until(lam, name, "State", "Active", config.get("State"))


def create_mapping(lam: Any, function: str, queue_arn: str) -> str:
    return lam.create_event_source_mapping(FunctionName=function, EventSourceArn=queue_arn,
                                           BatchSize=BATCH_SIZE)["UUID"]


def delete_mapping(lam: Any, mapping: str) -> None:
    """Delete a mapping and wait until it is gone, so its pollers stop competing for moto."""
    lam.delete_event_source_mapping(UUID=mapping)
    deadline = time.monotonic() + base.READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            lam.get_event_source_mapping(UUID=mapping)
        except lam.exceptions.ResourceNotFoundException:
            return
        time.sleep(base.POLL_INTERVAL_S)
    raise RuntimeError(f"the mapping {mapping} was still there {base.READY_TIMEOUT_S:.0f} s after its deletion")


class ClockLog:
    """Reads the clock function's log files as they grow: BENCH_CLOCK lines, body → handler start."""

    def __init__(self, data_dir: Path, function: str) -> None:
        self.group = data_dir / "logs" / quote(f"/aws/lambda/{function}", safe="")
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self.seen: dict[str, float] = {}

    def read(self) -> None:
        if not self.group.is_dir():
            return
        for path in self.group.glob("*.log"):
            with open(path, "rb") as file:
                file.seek(self._offsets.get(path, 0))
                chunk = self._partial.pop(path, b"") + file.read()
                self._offsets[path] = file.tell()
            lines = chunk.split(b"\n")
            if lines[-1]:
                self._partial[path] = lines[-1]
            for line in lines[:-1]:
                if (match := CLOCK_LINE.search(line.decode("utf-8", "replace"))) is not None:
                    self.seen[match.group(1)] = float(match.group(2))

    def wait_for(self, body: str, timeout: float = SAMPLE_TIMEOUT_S) -> float:
        """The handler's start time (epoch seconds) for the message with this body."""
        deadline = time.monotonic() + timeout
        while True:
            self.read()
            if body in self.seen:
                return self.seen[body]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no handler log line for message {body!r} within {timeout:.0f} s")
            time.sleep(LOG_POLL_S)


class LatencySamples:
    """Latency from SendMessage returning (the target's measure) and from its start. The first can
    be negative: moto hands the message to a waiting long poll before the sender has read its
    reply; the second includes the SendMessage call itself (~3 ms against moto)."""

    def __init__(self) -> None:
        self.from_return: list[float] = []
        self.from_start: list[float] = []

    def add(self, sending: float, sent: float, arrived: float) -> None:
        self.from_return.append((arrived - sent) * 1000)
        self.from_start.append((arrived - sending) * 1000)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(base.Stats.of(self.from_return)), "from_send_start": asdict(base.Stats.of(self.from_start))}


# -- the bare consumer ------------------------------------------------------------------------------


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    """What a poller asks for: ten messages, a 20 s long poll, every attribute."""
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=20, AttributeNames=["All"],
                               MessageAttributeNames=["All"]).get("Messages", [])


def delete(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    answer = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    if answer.get("Failed"):
        raise RuntimeError(f"delete_message_batch failed: {answer['Failed'][:1]}")


def in_thread(function: Callable[[], Any]) -> Any:
    """Run `function` in one thread of this process (as the brief's consumer is) and return its
    result; the main thread only waits, so it costs the consumer nothing."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed back to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="bench-consumer", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)  # in short waits, so Ctrl-C is seen
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def bare_throughput(moto: MotoServer, plan: Plan) -> dict[str, Any]:
    sqs = moto.client("sqs")
    url, _arn = new_queue(sqs, "bare-tput")
    fill_s = fill(sqs, url, plan.messages)

    def consume() -> tuple[float, int, int]:
        deleted = calls = 0
        started = time.perf_counter()
        while deleted < plan.messages:
            messages = receive(sqs, url)
            calls += 1
            if messages:
                delete(sqs, url, messages)
                calls += 1
                deleted += len(messages)
        return time.perf_counter() - started, deleted, calls

    moto_cpu = base.cpu_seconds(moto.pid) if moto.pid else None
    elapsed, deleted, calls = in_thread(consume)
    moto_used = base.cpu_seconds(moto.pid) - moto_cpu if moto.pid and moto_cpu is not None else None
    return {"messages": deleted, "seconds": round(elapsed, 3), "messages_per_s": round(deleted / elapsed, 1),
            "fill_s": round(fill_s, 2), "aws_calls": calls, "left_in_queue": queue_count(sqs, url),
            "moto_cpu_pct": round(100 * moto_used / elapsed, 1) if moto_used is not None else None}


def bare_latency(moto: MotoServer, plan: Plan) -> dict[str, Any]:
    sqs, consumer_sqs = moto.client("sqs"), moto.client("sqs")
    url, _arn = new_queue(sqs, "bare-lat")
    received: dict[str, float] = {}
    handled = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            while not stop.is_set():
                messages = receive(consumer_sqs, url)
                now = time.time()
                for message in messages:
                    received[message["Body"]] = now
                if messages:
                    delete(consumer_sqs, url, messages)
                    handled.set()
        except BaseException as exc:
            failure.append(exc)
            handled.set()

    thread = threading.Thread(target=consume, name="bench-consumer", daemon=True)
    thread.start()
    samples = LatencySamples()
    try:
        time.sleep(SETTLE_S)
        for i in range(WARMUP_MESSAGES + plan.latency_samples):
            body = f"m{i}"
            handled.clear()
            sending = time.time()
            sqs.send_message(QueueUrl=url, MessageBody=body)
            sent = time.time()
            if not handled.wait(SAMPLE_TIMEOUT_S) or failure:
                raise failure[0] if failure else TimeoutError(f"message {body} not received in {SAMPLE_TIMEOUT_S} s")
            if i >= WARMUP_MESSAGES:
                samples.add(sending, sent, received[body])
            time.sleep(SETTLE_S)
    finally:
        stop.set()
        sqs.send_message(QueueUrl=url, MessageBody="stop")  # ends the consumer's long poll now
        thread.join(base.HTTP_TIMEOUT_S)
    return samples.to_json()


# -- the mapping ------------------------------------------------------------------------------------


def mapping_throughput(moto: MotoServer, server: base.ManagedServer, lam: Any, plan: Plan, function: str
                       ) -> dict[str, Any]:
    sqs = moto.client("sqs")
    url, arn = new_queue(sqs, "esm-tput")
    fill_s = fill(sqs, url, plan.messages)
    before = {"server": base.cpu_seconds(server.pid) if server.pid else None,
              "moto": base.cpu_seconds(moto.pid) if moto.pid else None}
    invocations_before = sum(metric_values(server.port, "lambdalet_invocations_total", {"function": function}).values())
    started = time.perf_counter()
    mapping = create_mapping(lam, function, arn)
    try:
        deadline = started + DRAIN_TIMEOUT_S
        while (left := queue_count(sqs, url)) > 0:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{left} of {plan.messages} messages still in the queue after {DRAIN_TIMEOUT_S:.0f} s")
            time.sleep(EMPTY_POLL_S)
        elapsed = time.perf_counter() - started
        cpu = {name: (base.cpu_seconds(pid) - before[name]) if pid and before[name] is not None else None
               for name, pid in (("server", server.pid), ("moto", moto.pid))}
        records = metric_values(server.port, "lambdalet_event_source_mapping_records_total", {"mapping": mapping})
        invocations = sum(metric_values(server.port, "lambdalet_invocations_total", {"function": function}).values())
    finally:
        delete_mapping(lam, mapping)
    by_outcome = {key.rpartition("outcome=")[2]: int(value) for key, value in records.items()}
    return {"messages": plan.messages, "seconds": round(elapsed, 3), "messages_per_s": round(plan.messages / elapsed, 1),
            "fill_s": round(fill_s, 2), "records": by_outcome, "invocations": int(invocations - invocations_before),
            "server_cpu_pct": round(100 * cpu["server"] / elapsed, 1) if cpu["server"] is not None else None,
            "server_cpu_us_per_message": round(1e6 * cpu["server"] / plan.messages) if cpu["server"] is not None else None,
            "moto_cpu_pct": round(100 * cpu["moto"] / elapsed, 1) if cpu["moto"] is not None else None,
            "completion": "moto's ApproximateNumberOfMessages + NotVisible + Delayed == 0"}


def mapping_latency(moto: MotoServer, server: base.ManagedServer, lam: Any, plan: Plan, function: str
                    ) -> dict[str, Any]:
    sqs = moto.client("sqs")
    url, arn = new_queue(sqs, "esm-lat")
    clock = ClockLog(server.data_dir, function)
    mapping = create_mapping(lam, function, arn)
    samples = LatencySamples()
    try:
        for i in range(WARMUP_MESSAGES + plan.latency_samples):
            body = f"m{i}"
            sending = time.time()
            sqs.send_message(QueueUrl=url, MessageBody=body)
            sent = time.time()
            handler_started = clock.wait_for(body)
            if i >= WARMUP_MESSAGES:
                samples.add(sending, sent, handler_started)
            time.sleep(SETTLE_S)
    finally:
        delete_mapping(lam, mapping)
    return samples.to_json()


# -- output -----------------------------------------------------------------------------------------


def measured(results: dict[str, Any], bare_label: str, width: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The two consumers' results that exist, as (key, label, result); a step that failed is
    printed as NOT MEASURED here instead."""
    rows = []
    for key, label in (("bare", bare_label), ("mapping", "event source mapping")):
        r = results.get(key, {})
        if "error" in r:
            print(f"  {label:<{width}}  NOT MEASURED — {r['error']}")
        elif r:
            rows.append((key, label, r))
    return rows


def print_throughput(results: dict[str, Any]) -> None:
    print("1. Throughput: a pre-filled queue drained, BatchSize 10")
    print(f"  {'consumer':<34}{'messages':>9}{'seconds':>9}{'msgs/s':>9}  notes")
    for key, label, r in measured(results, "bare boto3 loop (1 thread)", 34):
        if key == "bare":
            notes = f"{r['aws_calls']} AWS calls; moto CPU {r['moto_cpu_pct']} %"
        else:
            notes = (f"records {r['records']}, {r['invocations']} invocations; CPU % of a core: server "
                     f"{r['server_cpu_pct']} ({r['server_cpu_us_per_message']} µs/message), moto {r['moto_cpu_pct']}")
        print(f"  {label:<34}{r['messages']:>9}{r['seconds']:>9.2f}{r['messages_per_s']:>9.0f}  {notes}")
    print(flush=True)


def print_latency(results: dict[str, Any]) -> None:
    print("2. Latency, idle queue: SendMessage returned → receive returned (bare) / handler started (mapping), ms")
    print("   (negative values: the consumer had the message before the sender had read SendMessage's reply)")
    print(f"  {'':<26}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for _key, label, r in measured(results, "bare boto3 long poll", 26):
        print(base.stats_row(label, r))
        print(base.stats_row("  (from SendMessage start)", r["from_send_start"]))
    print(flush=True)


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 13's two targets, against the bare consumer of the same run."""
    out: dict[str, Any] = {}
    tput, lat = results.get("throughput", {}), results.get("latency", {})
    with contextlib.suppress(KeyError, TypeError, ZeroDivisionError):
        ratio = tput["mapping"]["messages_per_s"] / tput["bare"]["messages_per_s"]
        out["throughput_ratio"] = round(ratio, 3)
        out["throughput_meets_80pct"] = ratio >= 0.8
    with contextlib.suppress(KeyError, TypeError):
        added = lat["mapping"]["p50"] - lat["bare"]["p50"]
        out["latency_p50_added_ms"] = round(added, 2)
        out["latency_p99_added_ms"] = round(lat["mapping"]["p99"] - lat["bare"]["p99"], 2)
        out["latency_meets_20ms"] = added <= 20
    return out


def print_targets(t: dict[str, Any]) -> None:
    print("3. Targets (issue 13 item 7)")
    if "throughput_ratio" in t:
        print(f"  mapping / bare messages/s = {100 * t['throughput_ratio']:.0f} %  (target ≥ 80 %: "
              f"{'meets' if t['throughput_meets_80pct'] else 'misses'})")
    if "latency_p50_added_ms" in t:
        print(f"  added p50 latency = {t['latency_p50_added_ms']:.1f} ms, p99 {t['latency_p99_added_ms']:.1f} ms  "
              f"(target ≤ 20 ms at p50: {'meets' if t['latency_meets_20ms'] else 'misses'})")
    print(flush=True)


# -- main -------------------------------------------------------------------------------------------


def run(moto: MotoServer, server: base.ManagedServer, plan: Plan, results: dict[str, Any]) -> None:
    lam = base.lambda_client(server.port)
    suffix = uuid.uuid4().hex[:8]
    noop, clock = f"bench-esm-noop-{suffix}", f"bench-esm-clock-{suffix}"
    try:
        create_function(lam, noop, NOOP_SOURCE)
        create_function(lam, clock, CLOCK_SOURCE)
        tput: dict[str, Any] = {}
        results["throughput"] = tput
        base.attempt(tput, "bare", lambda: bare_throughput(moto, plan))
        base.attempt(tput, "mapping", lambda: mapping_throughput(moto, server, lam, plan, noop))
        print_throughput(tput)
        lat: dict[str, Any] = {}
        results["latency"] = lat
        base.attempt(lat, "bare", lambda: bare_latency(moto, plan))
        base.attempt(lat, "mapping", lambda: mapping_latency(moto, server, lam, plan, clock))
        print_latency(lat)
        results["targets"] = targets(results)
        print_targets(results["targets"])
    finally:
        for name in (noop, clock):
            with contextlib.suppress(Exception):
                lam.delete_function(FunctionName=name)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (or bench/README.md) for what each number means.")
    parser.add_argument("--messages", type=int, help=f"messages per throughput queue (default {FULL.messages})")
    parser.add_argument("--latency-samples", type=int, help=f"latency samples each (default {FULL.latency_samples})")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.messages} messages, {QUICK.latency_samples} latency samples")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--moto-as-is", action="store_true",
                        help="run moto without the patch for its per-message clock reads (MOTO_PATCH): shows moto's "
                             "quadratic cost on a deep queue; use with --messages 500 or so")
    args = parser.parse_args(argv)
    default = QUICK if args.quick else FULL
    plan = Plan(messages=args.messages if args.messages is not None else default.messages,
                latency_samples=args.latency_samples if args.latency_samples is not None else default.latency_samples)
    if not 1 <= plan.messages <= 1_000_000 or not 1 <= plan.latency_samples <= 100_000:
        parser.error("--messages and --latency-samples must be ≥ 1")
    return args, plan


def main(argv: Sequence[str] | None = None) -> int:
    args, plan = parse_args(argv)
    signal.signal(signal.SIGTERM, base._terminate)
    facts = base.machine_facts()
    results: dict[str, Any] = {"machine": facts, "plan": asdict(plan), "moto_patched": not args.moto_as_is}
    work = Path(tempfile.mkdtemp(prefix="lambdalet-bench-esm-"))
    moto = MotoServer(work / "moto.log", as_is=args.moto_as_is)
    server = base.ManagedServer(extra_env={"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "bench",
                                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    print(f"Event source mapping benchmark — {facts['date']}, code {facts['code']}, {facts['cpus_usable']} CPUs, "
          f"load {facts['load_avg_at_start']}")
    print(f"{plan.messages} messages per throughput queue, {plan.latency_samples} latency samples; moto at {moto.url}, "
          f"Lambdalet at http://{base.HOST}:{server.port}\n", flush=True)
    problems: list[str] = []

    def body() -> None:
        moto.start()
        server.start()
        run(moto, server, plan, results)

    interrupted = True  # unless guarded() returns
    try:
        interrupted = base.guarded(body, problems)
    finally:
        problems += base.problems_of(results)
        failed = results.get("throughput", {}).get("mapping", {}).get("records", {}).get("failed")
        if failed:
            problems.append(f"throughput.mapping: {failed} records failed")
        keep = bool(problems) and not interrupted
        server.stop(keep_log=keep)
        moto.stop()
        if keep:
            kept = work.with_name(work.name + "-moto.log")
            with contextlib.suppress(OSError):
                shutil.move(str(moto.log_path), kept)
                problems.append(f"moto log kept at {kept}; server log kept at {server.log_path}")
        shutil.rmtree(work, ignore_errors=True)
    results["problems"] = problems
    base.print_list("Problems", problems)
    return base.finish(results, args.json_out, interrupted)


if __name__ == "__main__":
    sys.exit(main())

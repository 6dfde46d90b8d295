"""Function logs: one stream per execution environment, and Lambda's platform lines.

Streams are named as on Lambda (`YYYY/MM/DD/[<version>]<32 hex>`) in the log group
`/aws/lambda/<function>` (or the function's `LoggingConfig.LogGroup`). A group is a directory
`<data-dir>/logs/<group, percent-encoded>/` holding `.group.json` (creation time, retention) and
one file per stream, `<stream, percent-encoded>.log`, one event per line: `<epoch ms> <message>`.
A message never holds a newline. A printed line is kept as printed, a carriage return included,
and an empty one is no event, as Lambda stores them. A multi-line record of Lambdalet's own
runtimes (an error's traceback, a logging record, a console line with newlines) arrives as one
line starting with RECORD_MARK, its lines joined by `\\r` and its own carriage returns written as
RECORD_CR: readers show it with its newlines and carriage returns (as AWS's runtimes, which write
records through a channel of their own, have them in CloudWatch).

Lines are kept in memory as they arrive; one loop timer writes every stream written to at most
`flush_interval` seconds later (and readers, and the end of an environment, flush first), so a
line is on disk within ~50 ms without a system call per line. A new environment's stream file (and
its group) is created by that flush too, never on the cold-start path. Reading is `log_groups.py`.

A group may take at most `max_group_bytes` of disk (`--max-log-group-mb`): a function printing
as fast as it can would otherwise fill the host's disk. Past it, the group's oldest streams that
no environment writes any more are deleted; if the writing streams alone are over it, their new
lines are dropped, and each says so once in a line of its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

MB = 1024 * 1024
TAIL_BYTES = 4096
FLUSH_INTERVAL = 0.05
GROUP_META = ".group.json"
STREAM_SUFFIX = ".log"
#: The first character of a runtime's multi-line record (ASCII record separator): its `\r`s are
#: the record's newlines, and RECORD_CR (the same character, further on) its carriage returns.
#: Lambdalet's bootstraps write them (they cannot import this module).
RECORD_MARK = "\x1e"
RECORD_CR = "\x1e"


def stream_name(version: str, env_id: str) -> str:
    return time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{version}]{env_id}"


#: The longest file name written for a group or stream: Linux's NAME_MAX (255 bytes) less room for
#: ".log" and a temporary file's suffix. Valid names are longer (512 characters, "/" percent-encoded
#: as three): those are spelled as LONG_NAME and a digest, and a group's name is kept in its meta.
MAX_FILE_NAME = 224
LONG_NAME = "%%"  # never written by quote(): "%" is always followed by two hex digits


def encode_name(name: str) -> str:
    """A group or stream name as one file name (reversible: `decode_name`, or for a long name the
    group's meta). quote() keeps dots, so the names "." and ".." (valid log group names) are
    spelled out: they would be directories already, the logs directory and the data directory."""
    encoded = quote(name, safe="", errors="surrogatepass") if name.strip(".") else "%2E" * len(name)
    if len(encoded) > MAX_FILE_NAME:
        return LONG_NAME + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return encoded


def decode_name(file_name: str) -> str | None:
    """The name a file was encoded from; None for a long name's digest (read its group's meta)."""
    return None if file_name.startswith(LONG_NAME) else unquote(file_name, errors="surrogatepass")


def now_ms() -> int:
    return int(time.time() * 1000)


class LogStream:
    """One stream's lines, kept until the store's next flush writes them to the stream's file
    (created, with its group, by the first flush that has lines for it)."""

    def __init__(self, store: "LogStore", group: str, name: str) -> None:
        self.store = store
        self.group = group
        self.name = name
        self.path = store.group_dir(group) / (encode_name(name) + STREAM_SUFFIX)
        self._file: IO[bytes] | None = None
        self._pending: list[str] = []
        self._dropping = False  # over the group's size limit: lines are dropped until there is room

    def write(self, message: str, timestamp_ms: int | None = None) -> None:
        stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        self._pending.append(f"{stamp} {message}\n")
        if len(self._pending) == 1:
            self.store.schedule_flush(self)

    def flush(self) -> None:
        if not self._pending:
            return
        if self._file is None:
            self.store.ensure_group(self.group)
            self._file = open(self.path, "ab")
            self.store.live[self.path] = self
        lines, self._pending = self._pending, []
        data = "".join(lines).encode("utf-8", "replace")
        # Once dropping, a stream resumes only when a tenth of the limit is free again: a short line
        # squeezed in between floods would otherwise end the episode and make it say so again.
        reserve = self.store.max_group_bytes // 10 if self._dropping else 0
        if not self.store.make_room(self.group, len(data) + reserve):
            if self._dropping:
                return
            self._dropping = True
            limit_mb = self.store.max_group_bytes // MB
            data = (f"{now_ms()} [lambdalet] The log group {self.group} holds {limit_mb} MB, its limit "
                    "(--max-log-group-mb): lines of this stream are dropped until there is room.\n").encode()
        else:
            self._dropping = False
        self._file.write(data)
        self._file.flush()
        self.store.wrote(self.group, len(data))

    def detach(self) -> None:
        """Close the file and drop unwritten lines (its group was deleted): the next line creates
        group and stream again."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
            self.store.live.pop(self.path, None)
        self._pending = []

    def close(self) -> None:
        """The environment is gone: write what is left, then close."""
        try:
            self.flush()
        except OSError:
            pass
        self.detach()


class LogStore:
    """Where streams live, the group metadata, and the one flush timer for every stream."""

    def __init__(self, root: Path, flush_interval: float = FLUSH_INTERVAL, max_group_bytes: int = 0) -> None:
        self.root = root / "logs"
        self.flush_interval = flush_interval
        #: Most bytes of stream files one group may hold (0: no limit).
        self.max_group_bytes = max_group_bytes
        #: Bytes of each group's stream files, counted once from disk, then as they are written.
        self._group_bytes: dict[str, int] = {}
        #: Streams with an open file, by path: never rewritten by the retention sweep.
        self.live: dict[Path, LogStream] = {}
        self._dirty: list[LogStream] = []
        self._timer: asyncio.TimerHandle | None = None

    def group_name(self, function_name: str) -> str:
        return f"/aws/lambda/{function_name}"

    def group_dir(self, group: str) -> Path:
        return self.root / encode_name(group)

    def open_stream(self, group: str, name: str) -> LogStream:
        return LogStream(self, group, name)

    def ensure_group(self, group: str, retention_days: int | None = None) -> bool:
        """Create the group if it does not exist; True if it was created."""
        directory = self.group_dir(group)
        if (directory / GROUP_META).exists():
            return False
        directory.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"creationTime": now_ms(), "logGroupName": group}
        if retention_days is not None:
            meta["retentionInDays"] = retention_days
        write_meta(directory, meta)
        return True

    def schedule_flush(self, stream: LogStream) -> None:
        self._dirty.append(stream)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (tools, unit tests): write through
                self.flush_all()
                return
            self._timer = loop.call_later(self.flush_interval, self.flush_all)

    def flush_all(self) -> None:
        """Flush every stream written since the last flush (the timer's job; readers call it first)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        dirty, self._dirty = self._dirty, []
        for stream in dirty:
            try:
                stream.flush()
            except OSError:  # disk full, group directory removed meanwhile: lines are dropped
                stream.detach()

    def detach_group(self, group: str) -> None:
        directory = self.group_dir(group)
        for path, stream in list(self.live.items()):
            if path.parent == directory:
                stream.detach()
        self._group_bytes.pop(group, None)

    def sizes_changed(self) -> None:
        """Stream files were removed or rewritten behind the store's back (the retention sweep)."""
        self._group_bytes.clear()

    def wrote(self, group: str, size: int) -> None:
        if group in self._group_bytes:
            self._group_bytes[group] += size

    def make_room(self, group: str, size: int) -> bool:
        """Whether `size` more bytes fit in the group, deleting its oldest streams that no
        environment writes any more until they do."""
        if not self.max_group_bytes:
            return True
        used = self._group_bytes.get(group)
        if used is None:
            used = self._group_bytes[group] = sum(file_size for _path, file_size, _mtime in self._stream_files(group))
        if used + size <= self.max_group_bytes:
            return True
        for path, file_size, _mtime in sorted(self._stream_files(group), key=lambda item: item[2]):
            if path in self.live:
                continue
            path.unlink(missing_ok=True)
            used -= file_size
            if used + size <= self.max_group_bytes:
                break
        self._group_bytes[group] = used
        return used + size <= self.max_group_bytes

    def _stream_files(self, group: str) -> list[tuple[Path, int, float]]:
        files = []
        try:
            with os.scandir(self.group_dir(group)) as entries:
                for entry in entries:
                    if entry.name.endswith(STREAM_SUFFIX):
                        try:
                            stat = entry.stat()
                        except FileNotFoundError:
                            continue
                        files.append((Path(entry.path), stat.st_size, stat.st_mtime))
        except FileNotFoundError:
            pass
        return files


def read_meta(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / GROUP_META).read_text())
    except (OSError, ValueError):
        return None


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Atomically (write, then rename) so a reader never sees half a file."""
    tmp = directory / f"{GROUP_META}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, directory / GROUP_META)


# Lambda's platform lines (Text format). Tabs and spacing are exact: parsers in the wild split on them.

def init_start_line(version_label: str, runtime_version_arn: str, restore: bool = False) -> str:
    """INIT_START, or RESTORE_START for an environment restored from a SnapStart snapshot."""
    phase = "RESTORE_START" if restore else "INIT_START"
    return f"{phase} Runtime Version: {version_label}\tRuntime Version ARN: {runtime_version_arn}"


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
    restore: bool = False,
) -> str:
    """REPORT; a SnapStart environment's first one shows Restore Duration where others show Init Duration."""
    billed = math.ceil(duration_ms + (init_ms or 0.0))
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_memory_mb} MB\t"
    )
    if init_ms is not None:
        line += f"{'Restore' if restore else 'Init'} Duration: {init_ms:.2f} ms\t"
    if status:
        line += f"Status: {status}"
        if error_type:
            line += f"\tError Type: {error_type}"
    return line


def report_metrics(duration_ms: float, memory_mb: int, max_memory_mb: int, init_ms: float | None = None,
                   restore: bool = False, digits: int = 2) -> dict[str, Any]:
    """platform.report's metrics, as JSON logs and the Telemetry API carry them."""
    metrics: dict[str, Any] = {"durationMs": round(duration_ms, digits),
                               "billedDurationMs": math.ceil(duration_ms + (init_ms or 0.0)),
                               "memorySizeMB": memory_mb, "maxMemoryUsedMB": max_memory_mb}
    if init_ms is not None:
        metrics["restoreDurationMs" if restore else "initDurationMs"] = round(init_ms, digits)
    return metrics


def init_report_line(init_ms: float, status: str, error_type: str | None) -> str:
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: {status}"
    return f"{line}\tError Type: {error_type}" if error_type else line


def timeout_line(request_id: str, timeout_s: int) -> str:
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"


def record_text(stored: str, newline: str = "\n") -> str:
    """A stored message as the function wrote it: a runtime's multi-line record (RECORD_MARK) with
    its lines joined by `newline` and its carriage returns; any other line as it is."""
    if stored.startswith(RECORD_MARK):
        return stored[1:].replace("\r", newline).replace(RECORD_CR, "\r")
    return stored


def tail(lines: list[str]) -> str:
    """X-Amz-Log-Result: base64 of the last 4 KB of an invocation's log (a record's lines joined
    by \\r)."""
    data = "".join(record_text(line, "\r") + "\n" for line in lines).encode("utf-8", errors="replace")
    return base64.b64encode(data[-TAIL_BYTES:]).decode()


# LoggingConfig: levels, and the JSON format of platform records and filtering of application lines.

APPLICATION_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SYSTEM_LEVELS = ("DEBUG", "INFO", "WARN")
_RANK = {name: rank for rank, name in enumerate(APPLICATION_LEVELS)}
_RANK.update({"WARNING": _RANK["WARN"], "CRITICAL": _RANK["FATAL"]})


def level_rank(level: Any) -> int:
    """A record's level; anything missing or unknown is INFO, as Lambda reads it."""
    if isinstance(level, str):
        return _RANK.get(level.upper(), _RANK["INFO"])
    return _RANK["INFO"]


def json_time(timestamp_ms: int | None = None) -> str:
    moment = datetime.fromtimestamp((timestamp_ms if timestamp_ms is not None else now_ms()) / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class LogFormat:
    """How one function configuration's platform lines are written and its output lines filtered.

    Text (the default): Lambda's text platform lines, every output line kept. JSON: platform events
    as Telemetry-API-shaped records (`platform.initStart`, `platform.start`, `platform.report`,
    `platform.initReport`, `platform.extension`; INFO level, dropped when SystemLogLevel is WARN;
    `platform.runtimeDone` at DEBUG), and output lines below ApplicationLogLevel dropped (a JSON
    object's `level`, anything else counts as INFO).
    """

    def __init__(self, log_format: str = "Text", application_level: str = "", system_level: str = "") -> None:
        self.json = log_format == "JSON"
        self._app_min = level_rank(application_level or "INFO")
        self._system_info = level_rank(system_level or "INFO") <= _RANK["INFO"]
        #: platform.runtimeDone is a DEBUG record: written only when SystemLogLevel is DEBUG.
        self.system_debug = self.json and level_rank(system_level or "INFO") <= _RANK["DEBUG"]
        #: Output lines need a look only when something can be dropped.
        self.filters_output = self.json and self._app_min > _RANK["TRACE"]

    def keep_output(self, line: str) -> bool:
        if not line.startswith("{"):
            return _RANK["INFO"] >= self._app_min
        try:
            record = json.loads(line)
        except ValueError:
            return _RANK["INFO"] >= self._app_min
        return level_rank(record.get("level") if isinstance(record, dict) else None) >= self._app_min

    def _record(self, kind: str, record: dict[str, Any]) -> str | None:
        if not self._system_info:
            return None
        return json.dumps({"time": json_time(), "type": kind, "record": record}, separators=(",", ":"))

    def init_start(self, version_label: str, runtime_version_arn: str, restore: bool = False,
                   initialization_type: str = "on-demand") -> str | None:
        if not self.json:
            return init_start_line(version_label, runtime_version_arn, restore)
        return self._record("platform.restoreStart" if restore else "platform.initStart", {
            "initializationType": initialization_type, "phase": "init", "runtimeVersion": version_label,
            "runtimeVersionArn": runtime_version_arn})

    def extension(self, name: str, state: str, events: list[str]) -> str | None:
        """What Lambda logs of each extension when init ends."""
        if not self.json:
            return f"EXTENSION\tName: {name}\tState: {state}\tEvents: [{', '.join(events)}]"
        return self._record("platform.extension", {"name": name, "state": state, "events": events})

    def runtime_done(self, record: dict[str, Any]) -> str | None:
        return self._record("platform.runtimeDone", record) if self.system_debug else None

    def start(self, request_id: str, version: str) -> str | None:
        if not self.json:
            return start_line(request_id, version)
        return self._record("platform.start", {"requestId": request_id, "version": version})

    def end(self, request_id: str) -> str | None:
        return None if self.json else end_line(request_id)

    def report(self, request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int,
               init_ms: float | None = None, status: str | None = None, error_type: str | None = None,
               restore: bool = False) -> str | None:
        if not self.json:
            return report_line(request_id, duration_ms, memory_mb, max_memory_mb, init_ms, status, error_type,
                               restore)
        metrics = report_metrics(duration_ms, memory_mb, max_memory_mb, init_ms, restore)
        record: dict[str, Any] = {"requestId": request_id, "metrics": metrics, "status": status or "success"}
        if error_type:
            record["errorType"] = error_type
        return self._record("platform.report", record)

    def init_report(self, init_ms: float, status: str, error_type: str | None) -> str | None:
        if not self.json:
            return init_report_line(init_ms, status, error_type)
        record: dict[str, Any] = {"initializationType": "on-demand", "phase": "init", "status": status,
                                  "metrics": {"durationMs": round(init_ms, 2)}}
        if error_type:
            record["errorType"] = error_type
        return self._record("platform.initReport", record)


TEXT = LogFormat()

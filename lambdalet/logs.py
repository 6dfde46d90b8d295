"""Function logs: one stream per execution environment, and Lambda's platform lines.

Streams are named as on Lambda (`YYYY/MM/DD/[<version>]<32 hex>`) in the log group
`/aws/lambda/<function>`. Each stream is a file under `<data-dir>/logs/<function>/`, one event per
line: `<epoch milliseconds> <message>`. A message never holds a newline: a runtime's multi-line
record arrives with its lines joined by `\\r`, as AWS's runtimes write them.
"""

from __future__ import annotations

import base64
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

TAIL_BYTES = 4096


def stream_name(version: str, env_id: str) -> str:
    return time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{version}]{env_id}"


class LogStream:
    """Buffered writer of one stream's file; flushed after each invocation and at close."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.path = directory / (name.replace("/", "-") + ".log")
        self._file: IO[str] | None = None

    def write(self, message: str, timestamp_ms: int | None = None) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        self._file.write(f"{stamp} {message}\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root / "logs"

    def group_name(self, function_name: str) -> str:
        return f"/aws/lambda/{function_name}"

    def open_stream(self, function_name: str, name: str) -> LogStream:
        return LogStream(self.root / function_name, name)


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


def init_report_line(init_ms: float, status: str, error_type: str | None) -> str:
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: {status}"
    return f"{line}\tError Type: {error_type}" if error_type else line


def timeout_line(request_id: str, timeout_s: int) -> str:
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"


def tail(lines: list[str]) -> str:
    """X-Amz-Log-Result: base64 of the last 4 KB of an invocation's log."""
    data = "".join(line + "\n" for line in lines).encode("utf-8", errors="replace")
    return base64.b64encode(data[-TAIL_BYTES:]).decode()

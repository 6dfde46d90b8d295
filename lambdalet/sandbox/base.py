"""The interface every sandbox backend implements.

A backend decides what paths a function sees (`layout`), starts the runtime process confined to
its limits (`start`), and hands back a `SandboxProcess`: its pid, one file descriptor carrying its
merged stdout/stderr, one that becomes readable when it exits, and ways to kill it and to read its
peak memory. Backends know nothing of HTTP, the database or Lambda's API.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Paths as the function sees them."""

    task_root: str
    runtime_dir: str
    tmp_dir: str


@dataclass(frozen=True)
class SandboxSpec:
    env_id: str
    argv: list[str]
    env: dict[str, str]
    code_dir: Path
    layout: Layout
    memory_mb: int
    ephemeral_mb: int


@dataclass(frozen=True)
class ExitStatus:
    code: int | None
    signal: int | None

    def describe(self) -> str:
        """Go's os.ProcessState wording, which Lambda's error messages use ("signal: killed")."""
        if self.signal is not None:
            try:
                name = signal.strsignal(self.signal) or f"signal {self.signal}"
            except ValueError:
                name = f"signal {self.signal}"
            return f"signal: {name.lower()}"
        return f"exit status {self.code}"


class SandboxProcess(ABC):
    pid: int
    #: Read end of the merged stdout/stderr pipe (non-blocking).
    output_fd: int
    #: Becomes readable when the process has exited (a pidfd on Linux).
    exit_fd: int

    @abstractmethod
    def kill(self) -> None:
        """Kill the runtime and everything it started."""

    @abstractmethod
    def reap(self) -> ExitStatus | None:
        """Collect the exit status once exit_fd is readable; None while still running."""

    @abstractmethod
    def peak_memory_mb(self) -> int:
        """Peak resident memory so far, in MB (REPORT's Max Memory Used)."""

    @abstractmethod
    def close(self) -> None:
        """Release file descriptors and on-disk state once the process is gone."""


class SandboxBackend(ABC):
    name: str
    isolates: bool

    @abstractmethod
    def layout(self, code_dir: Path, env_id: str) -> Layout: ...

    @abstractmethod
    def start(self, spec: SandboxSpec) -> SandboxProcess: ...

    def describe(self) -> str:
        return self.name

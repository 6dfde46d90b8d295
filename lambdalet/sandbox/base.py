"""The interface every sandbox backend implements.

A backend decides what paths a function sees (`layout`), starts the runtime process confined to
its limits (`start`), and hands back a `SandboxProcess`: its pid, one file descriptor carrying its
merged stdout/stderr, a callback for its exit, and ways to kill it and to read its peak memory.
Backends know nothing of HTTP, the database or Lambda's API.
"""

from __future__ import annotations

import os

import signal
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Layout:
    """Paths as the function sees them."""

    task_root: str
    runtime_dir: str
    tmp_dir: str
    sdk_dir: str | None = None
    #: The function's layers: `/opt`, except where the backend cannot mount (process).
    opt_dir: str = "/opt"
    #: Where the runtime finds the Runtime API inside the sandbox, when the sandbox has a network of
    #: its own (the process then brings the listening socket); None: the server listens on the host.
    runtime_api: str | None = None


@dataclass(frozen=True)
class SandboxSpec:
    env_id: str
    argv: list[str]
    env: dict[str, str]
    code_dir: Path
    layout: Layout
    memory_mb: int
    ephemeral_mb: int
    #: argv is `<interpreter> -S -s <bootstrap.py> ...`: a backend with a preloaded zygote for that
    #: interpreter may run the bootstrap in-process instead of exec'ing it.
    python_bootstrap: bool = False
    #: SnapStart: environments with the same key fork from one initialised template.
    snapshot_key: str | None = None
    #: The managed runtime's language binary (a python or node), whose installation the runtime
    #: needs to see; None for custom runtimes.
    interpreter: str | None = None
    #: The merged tree of the function's layers on the host (None: no layers), seen at layout.opt_dir.
    layers_dir: Path | None = None
    #: A network namespace of its own with only loopback (see `lambdalet/network.py`).
    isolated_network: bool = False
    #: A connected socket (its fd) over which Lambdalet's own Python bootstrap speaks frames instead
    #: of connecting to the Runtime API; only given to backends that `supports_runtime_channel`.
    runtime_channel: int | None = None
    #: A container image: `code_dir` is the image's unpacked root, which becomes the environment's
    #: `/` (nothing of the host's system paths); argv[0] is looked up on the image's PATH.
    image: bool = False
    #: The working directory (as the function sees it); None: the task root.
    cwd: str | None = None


@dataclass(frozen=True)
class ExitStatus:
    code: int | None
    signal: int | None
    #: Killed by the kernel for going past its memory limit.
    oom: bool = False

    @classmethod
    def from_wait_status(cls, status: int, oom: bool = False) -> "ExitStatus":
        import os

        if os.WIFSIGNALED(status):
            return cls(code=None, signal=os.WTERMSIG(status), oom=oom)
        return cls(code=os.WEXITSTATUS(status), signal=None, oom=oom)

    def describe(self) -> str:
        """Go's os.ProcessState wording, which Lambda's error messages use ("signal: killed")."""
        if self.signal is not None:
            try:
                name = signal.strsignal(self.signal) or f"signal {self.signal}"
            except ValueError:
                name = f"signal {self.signal}"
            return f"signal: {name.lower()}"
        return f"exit status {self.code}"


ExitCallback = Callable[[ExitStatus], None]


@dataclass
class SandboxCounters:
    """What a backend counts about itself (plain integers; `/metrics` reads them when scraped)."""

    starts: int = 0  # runtime processes asked for
    start_failures: int = 0  # ... that the backend could not start (a function's init error is not one)
    zygote_starts: int = 0
    zygote_start_failures: int = 0
    zygote_exits: int = 0  # zygotes that died while in use


class ResidentPeak:
    """A live process's peak resident memory (VmHWM), read through one descriptor kept open on its
    /proc status: a single pread whenever asked, 0 once the process is gone."""

    __slots__ = ("pid", "_fd")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None

    def read_mb(self) -> int:
        try:
            if self._fd is None:
                self._fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY | os.O_CLOEXEC)
            status = os.pread(self._fd, 4096, 0)
            start = status.index(b"VmHWM:") + 6
            return -(-int(status[start:status.index(b"kB", start)]) // 1024)
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def peak_rss_mb(pid: int) -> int | None:
    """A live process's peak resident memory (VmHWM) in MB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return -(-int(line.split()[1]) // 1024)
    except OSError:
        pass
    return None


class SandboxProcess(ABC):
    pid: int
    #: Read end of the merged stdout/stderr pipe (non-blocking).
    output_fd: int
    #: The Runtime API's listening socket, opened inside the sandbox's own network (see Layout).
    runtime_api_socket: "socket.socket | None" = None
    #: MemorySize is enforced as the process runs (a cgroup): the environment need not compare
    #: `peak_memory_mb` with it after each invocation (which also counts pages the limit does not).
    enforces_memory = False

    @abstractmethod
    def on_exit(self, callback: ExitCallback) -> None:
        """Call `callback` (on the event loop) once the process has exited."""

    def initialized(self) -> None:
        """Init is over: apply invoke-phase limits (init runs with burst CPU, as on Lambda)."""

    @abstractmethod
    def kill(self) -> None:
        """Kill the runtime and everything it started."""

    @abstractmethod
    def peak_memory_mb(self) -> int:
        """Peak memory so far, in MB (REPORT's Max Memory Used): what the environment's processes
        hold resident, including pages shared with the process they were forked from."""

    @abstractmethod
    def close(self) -> None:
        """Release file descriptors and other resources once the process is gone."""

    def made_connection(self, listener: tuple[str, int], peer: tuple[str, int]) -> bool:
        """Whether this environment's processes made the loopback TCP connection from `peer` to its
        Runtime API `listener` (`lambdalet/sandbox/peers.py`). A backend without isolation accepts
        anyone's: its functions run as the server's user and could reach everything anyway."""
        return True


class SandboxBackend(ABC):
    name: str
    isolates: bool
    counts: SandboxCounters

    def __init__(self) -> None:
        self.counts = SandboxCounters()

    @abstractmethod
    def layout(self, code_dir: Path, env_id: str, layers_dir: Path | None = None,
               isolated_network: bool = False) -> Layout: ...

    @abstractmethod
    async def start(self, spec: SandboxSpec) -> SandboxProcess: ...

    def describe(self) -> str:
        return self.name

    #: Whether the backend can run SnapStart templates.
    supports_snapstart = False
    #: Whether the backend can make a container image an environment's root (PackageType Image).
    supports_images = False
    #: Whether the backend can hand an in-process Python bootstrap a connected runtime channel.
    supports_runtime_channel = False
    #: Whether environments can have a network of their own, and whether they do by default.
    supports_network_isolation = False
    isolated_network_by_default = False

    def retire(self, snapshot_key: str) -> None:
        """The configuration behind a SnapStart template changed: no new environments from it."""

    async def close(self) -> None:
        """Release what the backend holds (zygotes, cgroup parents) at server shutdown."""

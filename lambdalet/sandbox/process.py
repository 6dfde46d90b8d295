"""The `process` backend: each environment is a plain child process with resource limits.

It does not isolate functions from each other or from the host (no namespaces, no cgroups), and
says so at start-up. Limits, applied between fork and exec: open files (1,024, as on Lambda),
no core dumps, largest file written (the ephemeral-storage size), and a data-segment safety net
of four times MemorySize (at least MemorySize + 512 MB) that stops a runaway allocation before
it reaches the host. It is loose on purpose: it counts virtual memory (every thread's stack), and
MemorySize itself is about resident memory, which the environment checks after each invocation
against the peak RSS (Lambda's `Runtime.OutOfMemory`). Each environment gets its own TMPDIR. The runtime is killed with SIGKILL if the server dies
(PR_SET_PDEATHSIG), and its whole process group is killed when the environment stops.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import resource
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from lambdalet.runtimes.python_sdk import PythonSdk
from lambdalet.sandbox.base import (
    ExitCallback,
    ExitStatus,
    Layout,
    SandboxBackend,
    SandboxProcess,
    SandboxSpec,
    peak_rss_mb,
)

RUNTIME_DIR = str(Path(__file__).resolve().parent.parent / "runtimes")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if sys.platform == "linux" else None
MB = 1024 * 1024


class ProcessSandbox(SandboxBackend):
    name = "process"
    isolates = False

    def __init__(self, root: Path, sdk: PythonSdk | None = None) -> None:
        super().__init__()
        self.root = root
        self.sdk_dir = str(sdk.path) if sdk is not None else None
        # fork+exec takes ~10-30 ms of a busy server: done off the event loop, by one thread that
        # lives as long as the server (PR_SET_PDEATHSIG fires when the *forking thread* exits).
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambdalet-spawner")
        shutil.rmtree(root, ignore_errors=True)  # leftovers of a previous run
        root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return "process (no isolation: functions run as plain child processes of the server)"

    def layout(self, code_dir: Path, env_id: str, layers_dir: Path | None = None,
               isolated_network: bool = False) -> Layout:
        """Paths on the host: nothing is mounted, so /var/task and /opt (with layers) are where the
        code and the merged layers are; LAMBDA_TASK_ROOT and the search paths say so."""
        return Layout(task_root=str(code_dir), runtime_dir=RUNTIME_DIR, tmp_dir=str(self.root / env_id / "tmp"),
                      sdk_dir=self.sdk_dir, opt_dir=str(layers_dir) if layers_dir is not None else "/opt")

    async def start(self, spec: SandboxSpec) -> "ChildProcess":
        if spec.image:  # refused at CreateFunction; a database made under the linux backend can still hold one
            raise OSError("a container image function needs the linux sandbox backend")
        tmp = Path(spec.layout.tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**spec.env, "TMPDIR": str(tmp)}
        limits = _limits(spec.memory_mb, spec.ephemeral_mb)

        def confine() -> None:  # runs in the child between fork and exec: syscalls only
            for which, value in limits:
                resource.setrlimit(which, (value, value))
            if _libc is not None:
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

        popen = partial(
            subprocess.Popen,
            spec.argv,
            env=env,
            cwd=spec.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=confine,
            close_fds=True,
        )
        self.counts.starts += 1
        try:
            proc = await asyncio.get_running_loop().run_in_executor(self._spawner, popen)
        except Exception:
            self.counts.start_failures += 1
            raise
        return ChildProcess(proc, tmp.parent)

    async def close(self) -> None:
        self._spawner.shutdown(wait=False)


def _limits(memory_mb: int, ephemeral_mb: int) -> list[tuple[int, int]]:
    return [
        (resource.RLIMIT_NOFILE, 1024),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, ephemeral_mb * MB),
        (resource.RLIMIT_DATA, max(4 * memory_mb, memory_mb + 512) * MB),
    ]


class ChildProcess(SandboxProcess):
    def __init__(self, proc: subprocess.Popen, workdir: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        assert proc.stdout is not None
        self.output_fd = proc.stdout.fileno()
        os.set_blocking(self.output_fd, False)
        self.exit_fd = os.pidfd_open(proc.pid)
        self.workdir = workdir
        self._peak_mb = 0

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def on_exit(self, callback: ExitCallback) -> None:
        loop = asyncio.get_running_loop()

        def exited() -> None:
            status = self.reap()
            if status is not None:
                loop.remove_reader(self.exit_fd)
                callback(status)

        loop.add_reader(self.exit_fd, exited)

    def reap(self) -> ExitStatus | None:
        if self.proc.returncode is None:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            self._peak_mb = max(self._peak_mb, -(-usage.ru_maxrss // 1024))  # exact peak RSS of the child
            self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.kill()  # whatever the runtime left behind in its process group
        code = self.proc.returncode
        return ExitStatus(code=None, signal=-code) if code < 0 else ExitStatus(code=code, signal=None)

    def peak_memory_mb(self) -> int:
        self._peak_mb = max(self._peak_mb, peak_rss_mb(self.pid) or 0)
        return self._peak_mb

    def close(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.exit_fd)
        except (RuntimeError, ValueError, OSError):
            pass
        for closer in (lambda: os.close(self.exit_fd), lambda: self.proc.stdout and self.proc.stdout.close()):
            try:
                closer()
            except OSError:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)

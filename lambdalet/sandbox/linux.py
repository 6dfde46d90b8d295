"""The `linux` backend: every environment in its own namespaces, cgroups and private root.

Each environment is cloned by a zygote (`zygote.py`, one per interpreter, started on first use)
into new PID, mount, IPC and UTS namespaces, and with `--sandbox-network isolated` a network
namespace with only loopback, where the Runtime API is at 127.0.0.1:9001 as on Lambda.
Inside, `confine.py` builds a tmpfs root: the function's code read-only at `/var/task`, the runtime
at `/var/runtime`, the AWS SDK at `/var/lang/python-sdk`, its merged layers read-only at `/opt`
(an empty directory without layers), a private `/tmp` tmpfs capped at
EphemeralStorage, its own `/proc`, a minimal `/dev`, and read-only binds of the host's `/usr`,
`/lib*`, `/etc` and the interpreter's (python's or node's) prefix — nothing else of the host, none of the data
directory. It joins cgroups with memory at MemorySize, CPU in proportion to memory and at most
1,024 processes (`cgroups.py`), sets no_new_privs and runs as an unprivileged uid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Generic, TypeVar

from lambdalet.runtimes.python_sdk import PythonSdk
from lambdalet.sandbox import peers
from lambdalet.sandbox.base import (ExitCallback, ExitStatus, Layout, ResidentPeak, SandboxBackend, SandboxProcess,
                                    SandboxSpec)
from lambdalet.sandbox.cgroups import Cgroups, EnvironmentCgroup
from lambdalet.sandbox.forkserver import ForkServer, ZygoteDied
from lambdalet.sandbox.templates import SnapshotTemplate, TemplateChild, TemplateInitFailed

log = logging.getLogger(__name__)
RUNTIMES_DIR = Path(__file__).resolve().parent.parent / "runtimes"
BOOTSTRAP_PY = RUNTIMES_DIR / "python" / "bootstrap.py"
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
SDK_DIR = "/var/lang/python-sdk"
TASK_ROOT, RUNTIME_DIR, OPT_DIR = "/var/task", "/var/runtime", "/opt"
REHEARSAL_DIR = f"{RUNTIME_DIR}/python/rehearsal"  # the stand-in handler spares warm up on
EXEC_ZYGOTE = "exec"
T = TypeVar("T")
RUNTIME_API_PORT = 9001  # inside an environment with its own network, as on Lambda
CHANNEL_FD, CHANNEL_ENV = 3, "_LAMBDALET_RUNTIME_FD"  # where an in-process bootstrap finds its channel


def _system_entries() -> tuple[list[list[str]], list[list[Any]]]:
    """Host system paths as (symlinks, read-only binds): merged-/usr layouts keep their symlinks."""
    links, binds = [], []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            links.append([path, os.readlink(path)])
        elif os.path.isdir(path):
            binds.append([path, path, False])
    return links, binds


def interpreter_prefix(interpreter: str) -> str:
    """The installation prefix of an interpreter binary (…/bin/python3.X → …)."""
    return str(Path(os.path.realpath(interpreter)).parent.parent)


class LinuxSandbox(SandboxBackend):
    name = "linux"
    isolates = True
    supports_runtime_channel = True
    supports_network_isolation = True
    supports_snapstart = True  # for functions on the host network: restored environments share the template's
    supports_images = True

    def __init__(self, data_dir: Path, sdk: PythonSdk | None, *, uid: int, max_parallel_starts: int,
                 mb_per_vcpu: int, isolated_network_by_default: bool = False) -> None:
        super().__init__()
        self.sdk = sdk
        self.uid = uid
        self.isolated_network_by_default = isolated_network_by_default
        self.cgroups = Cgroups(mb_per_vcpu)
        self.mount_point = data_dir / "sandboxes" / "root"  # only ever mounted inside an environment
        self.mount_point.mkdir(parents=True, exist_ok=True)
        self._links, self._system_binds = _system_entries()
        self._shared_specs: dict[tuple[str | None, bool, bool], dict[str, Any]] = {}
        self._zygote_starts: SingleFlight[ForkServer] = SingleFlight()
        self._template_starts: SingleFlight[SnapshotTemplate] = SingleFlight()
        self._starts = asyncio.Semaphore(max_parallel_starts)

    def describe(self) -> str:
        network = ("NET namespace with loopback only" if self.isolated_network_by_default
                   else "host network") + " by default"
        return (f"linux (PID/mount/IPC/UTS namespaces, private root, cgroup v{self.cgroups.version} limits, "
                f"uid {self.uid}, {network})")

    def layout(self, code_dir: Path, env_id: str, layers_dir: Path | None = None,
               isolated_network: bool = False) -> Layout:
        return Layout(task_root=TASK_ROOT, runtime_dir=RUNTIME_DIR, tmp_dir="/tmp",
                      sdk_dir=SDK_DIR if self.sdk is not None else None,
                      runtime_api=f"127.0.0.1:{RUNTIME_API_PORT}" if isolated_network else None)

    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        self.counts.starts += 1
        try:
            try:
                return await self._start(spec)
            except ZygoteDied:  # it died under this start (killed, OOM): the next start makes a new one
                log.warning("the zygote died while starting %s; trying once more with a new one", spec.env_id)
                return await self._start(spec)
        except TemplateInitFailed:  # the function's own init failed: not the sandbox's failure
            raise
        except Exception:
            self.counts.start_failures += 1
            raise

    async def _start(self, spec: SandboxSpec) -> SandboxProcess:
        if spec.snapshot_key is not None:
            if spec.isolated_network:  # refused when configured (lambdalet/network.py); never mixed here
                raise OSError("SnapStart environments share the host network")
            return await self._restore(spec)
        async with self._starts:
            in_process = spec.python_bootstrap and len(spec.argv) >= 4 and spec.argv[3] == str(BOOTSTRAP_PY)
            if in_process:
                key = spec.argv[0]
            else:  # exec'd runtimes whose roots differ (an interpreter outside /usr) get zygotes of their own
                prefix = self._interpreter_bind(spec)
                key = EXEC_ZYGOTE if prefix is None else f"{EXEC_ZYGOTE}:{prefix}"
            zygote = await self._zygote(key, spec.isolated_network)
            own = self._own_spec(spec, in_process)
            channel = (spec.runtime_channel,) if in_process and spec.runtime_channel is not None else ()
            if channel:
                own["env"] = {**spec.env, CHANNEL_ENV: str(CHANNEL_FD)}
            process, reply = await self._spawn(zygote, spec, own, channel)
            if reply["fds"]:
                process.runtime_api_socket = socket.socket(fileno=reply["fds"][0])
            return process

    async def _spawn(self, zygote: ForkServer, spec: SandboxSpec, own: dict[str, Any],
                     extra_fds: tuple[int, ...] = ()) -> tuple[LinuxProcess, dict[str, Any]]:
        """Have `zygote` fork one environment (writing to a fresh output pipe) and adopt its cgroup;
        returns the process and the zygote's reply."""
        reply, read_end = await with_output_pipe(
            lambda write_end: zygote.spawn(self._shared_spec(spec), own, [write_end, *extra_fds]))
        cgroup = self.cgroups.adopt(reply["cgroup"], spec.memory_mb)
        return LinuxProcess(reply["pid"], read_end, cgroup, zygote, self.cgroups), reply

    def _shared_spec(self, spec: SandboxSpec) -> dict[str, Any]:
        """What every environment of one zygote shares: the zygote's spares are built from it.
        Made once per interpreter and kind, and never changed: `ForkServer` sends it only when
        it is not the one it sent last."""
        key = (spec.interpreter or (spec.argv[0] if spec.python_bootstrap else None), spec.python_bootstrap,
               spec.isolated_network)
        shared = self._shared_specs.get(key)
        if shared is None:
            shared = self._shared_specs[key] = self._make_shared_spec(spec)
        return shared

    def _make_shared_spec(self, spec: SandboxSpec) -> dict[str, Any]:
        binds = list(self._system_binds)
        prefix = self._interpreter_bind(spec)
        if prefix is not None:
            binds.append([prefix, prefix, False])
        binds.append([str(RUNTIMES_DIR), RUNTIME_DIR, False])
        wrapped_python = spec.env.get("_LAMBDALET_PYTHON_SDK") == SDK_DIR  # runtimes/registry.py
        if self.sdk is not None and (spec.python_bootstrap or wrapped_python):
            binds += [[str(source), f"{SDK_DIR}/{name}", False] for name, source in self.sdk.members.items()]
        shared = {"root": str(self.mount_point), "symlinks": self._links, "binds": binds,
                  "dirs": [OPT_DIR, TASK_ROOT], "cgroup_parents": self.cgroups.zygote_parents(),
                  "rehearsal_dir": REHEARSAL_DIR}
        if spec.isolated_network:
            shared["runtime_api_port"] = RUNTIME_API_PORT
        return shared

    def _interpreter_bind(self, spec: SandboxSpec) -> str | None:
        """The installation prefix of the runtime's interpreter (python or node), when the system
        paths every environment sees do not already hold it."""
        interpreter = spec.interpreter or (spec.argv[0] if spec.python_bootstrap else None)
        if interpreter is None:
            return None
        prefix = interpreter_prefix(interpreter)
        if any(prefix == b[0] or prefix.startswith(b[0] + "/") for b in self._system_binds):
            return None
        return prefix

    async def _restore(self, spec: SandboxSpec) -> TemplateChild:
        """SnapStart: fork a new environment from the function's initialised template."""
        template = await self._template(spec)
        child, child.output_fd = await with_output_pipe(lambda write_end: template.fork(spec.env, write_end))
        return child

    async def _template(self, spec: SandboxSpec) -> SnapshotTemplate:
        assert spec.snapshot_key is not None
        return await self._template_starts.get(
            spec.snapshot_key, lambda template: template.alive and not template.retired,
            lambda: self._start_template(spec))

    async def _start_template(self, spec: SandboxSpec) -> SnapshotTemplate:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in spec.env.items() if k != "AWS_LAMBDA_RUNTIME_API"}
        template_spec = SandboxSpec(spec.env_id, spec.argv, env, spec.code_dir, spec.layout, spec.memory_mb,
                                    spec.ephemeral_mb, python_bootstrap=True, interpreter=spec.interpreter,
                                    layers_dir=spec.layers_dir)
        own = self._own_spec(template_spec, in_process=True)
        own["mode"] = "template"
        async with self._starts:
            zygote = await self._zygote(spec.argv[0], isolated_network=False)
            try:
                process, _reply = await self._spawn(zygote, template_spec, own, (theirs.fileno(),))
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
        name = spec.snapshot_key

        def template_output(data: bytes) -> None:
            for line in data.decode("utf-8", "replace").splitlines():
                log.info("SnapStart template %s: %s", name, line)

        template = SnapshotTemplate(name or "", process, ours, process.cgroup, spec.memory_mb, template_output)
        try:
            await template.ready()
        except TemplateInitFailed:
            template.stop()
            raise
        return template

    def retire(self, snapshot_key: str) -> None:
        template = self._template_starts.forget(snapshot_key)
        if template is not None:
            template.retire()

    def _own_spec(self, spec: SandboxSpec, in_process: bool) -> dict[str, Any]:
        return {
            "mode": "python" if in_process else "exec",
            "argv": spec.argv if not in_process else [spec.argv[3], *spec.argv[4:]],
            "env": spec.env,
            "cwd": spec.cwd or TASK_ROOT,
            "image": spec.image,
            "root": str(self.mount_point),
            "code_dir": str(spec.code_dir),
            "task_root": TASK_ROOT,
            "layers_dir": str(spec.layers_dir) if spec.layers_dir is not None else None,
            "opt_dir": OPT_DIR,
            "tmp_mb": spec.ephemeral_mb,
            "cgroup_limits": self.cgroups.limits(spec.memory_mb),
            "rlimits": [[resource.RLIMIT_NOFILE, 1024], [resource.RLIMIT_CORE, 0]],
            "uid": self.uid,
            "gid": self.uid,
            "hostname": "lambdalet",
        }

    async def _zygote(self, interpreter_key: str, isolated_network: bool) -> ForkServer:
        """The zygote for one interpreter (or exec-only kind) and network: each keeps spares of
        its own, so functions on either network find ready ones."""
        key = f"{interpreter_key}|isolated" if isolated_network else interpreter_key

        async def start() -> ForkServer:
            exec_only = interpreter_key.startswith(EXEC_ZYGOTE)
            interpreter = os.path.realpath(sys.executable) if exec_only else interpreter_key
            zygote = ForkServer(interpreter, None if exec_only else BOOTSTRAP_PY, on_died=self._zygote_died)
            self.counts.zygote_starts += 1
            try:
                await zygote.start()
            except Exception:
                self.counts.zygote_start_failures += 1
                raise
            return zygote

        return await self._zygote_starts.get(key, lambda zygote: zygote.alive, start)

    def _zygote_died(self) -> None:
        self.counts.zygote_exits += 1

    async def close(self) -> None:
        for template in self._template_starts.values():
            template.stop()
        for zygote in self._zygote_starts.values():
            zygote.stop()
        self.cgroups.close()


async def with_output_pipe(spawn: Callable[[int], Awaitable[T]]) -> tuple[T, int]:
    """Run `spawn(write_end)` with a fresh output pipe; return its result and the pipe's read end
    (non-blocking). The server never keeps the write end; the read end is closed if `spawn` fails."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        result = await spawn(write_end)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    os.set_blocking(read_end, False)
    return result, read_end


class SingleFlight(Generic[T]):
    """One live T per key: concurrent callers that find none share a single start."""

    def __init__(self) -> None:
        self._live: dict[str, T] = {}
        self._starting: dict[str, asyncio.Future[T]] = {}

    async def get(self, key: str, usable: Callable[[T], bool], start: Callable[[], Awaitable[T]]) -> T:
        item = self._live.get(key)
        if item is not None and usable(item):
            return item
        starting = self._starting.get(key)
        if starting is not None:
            return await asyncio.shield(starting)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            item = self._live[key] = await start()
            future.set_result(item)
            return item
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failed start with no other waiter is not an error to log
            raise
        finally:
            del self._starting[key]

    def forget(self, key: str) -> T | None:
        return self._live.pop(key, None)

    def values(self) -> list[T]:
        return list(self._live.values())


class LinuxProcess(SandboxProcess):
    enforces_memory = True  # the cgroup's memory.max

    def __init__(self, pid: int, output_fd: int, cgroup: EnvironmentCgroup, zygote: ForkServer,
                 cgroups: Cgroups) -> None:
        self.pid = pid
        self.output_fd = output_fd
        self.cgroup = cgroup
        self._zygote = zygote
        self._cgroups = cgroups
        self._peak_mb = 0
        self._resident = ResidentPeak(pid)
        self._cgroup_peak_seen = -1
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None  # already gone; its exit report is on its way

    def on_exit(self, callback: ExitCallback) -> None:
        def exited(status: int, maxrss_kb: int) -> None:
            self._peak_mb = max(self._peak_mb, self.cgroup.peak_memory_mb(), -(-maxrss_kb // 1024))
            callback(ExitStatus.from_wait_status(status, oom=self.cgroup.oom_killed()))

        self._zygote.watch(self.pid, exited)

    def initialized(self) -> None:
        """The CPU quota is written on the cgroup thread: the first invocation is ready to go now."""
        self._cgroups.in_background(self.cgroup.throttle_cpu)

    def kill(self) -> None:
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)  # pid 1 of its namespace: all of it
            except ProcessLookupError:
                pass
            # ... but a killed process dies only once it runs: lift the CPU quota (off the loop)
            self._cgroups.in_background(self.cgroup.kill_remaining)

    def peak_memory_mb(self) -> int:
        """The larger of the cgroup's peak and the runtime's peak resident memory (VmHWM).

        The cgroup is charged only for pages the environment itself brought in: what it shares
        copy-on-write with its zygote (the interpreter, the pre-imported bootstrap) stays the
        zygote's, so the cgroup alone said 2-4 MB for a Python hello, where AWS, whose
        environments start from nothing, reports ~35 MB. VmHWM counts those shared pages too. It
        is read (one more pread) only when the cgroup's peak has grown since it was last read: a
        warm environment at its steady state pays nothing more than the cgroup's read."""
        peak = self.cgroup.peak_memory_mb()
        if peak != self._cgroup_peak_seen:
            self._cgroup_peak_seen = peak
            self._peak_mb = max(self._peak_mb, self._resident.read_mb())
        self._peak_mb = max(self._peak_mb, peak)
        return self._peak_mb

    def made_connection(self, listener: tuple[str, int], peer: tuple[str, int]) -> bool:
        return peers.connected_from_tree(listener, peer, self.cgroup.procs(), root=self.pid)

    def close(self) -> None:
        for fd in (self.output_fd, self._pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._pidfd = None
        self._resident.close()
        self._cgroups.release(self.cgroup)

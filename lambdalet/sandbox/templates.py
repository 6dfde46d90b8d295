"""SnapStart templates, server side: one initialised process per function configuration.

A template is an environment (cloned and confined like any other, by the zygote) that ran the
function's init and `before snapshot` hooks once and then forks a ready environment on request
(`runtimes/python/snapshot.py` is its other half). Environments forked from one template share
its namespaces and its cgroup, whose memory and CPU limits grow by one environment's share with
each child; each child is still killed, watched and measured on its own through its host pid.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import logging
import os
import signal
import socket
from typing import Any, Callable

from lambdalet.sandbox import peers
from lambdalet.sandbox.base import ExitCallback, ExitStatus, SandboxProcess, peak_rss_mb
from lambdalet.sandbox.cgroups import EnvironmentCgroup

log = logging.getLogger(__name__)


class TemplateInitFailed(Exception):
    """The function's init failed in the template: its error payload and type."""

    def __init__(self, body: bytes, error_type: str) -> None:
        super().__init__(error_type)
        self.body, self.error_type = body, error_type


class SnapshotTemplate:
    def __init__(self, key: str, process: SandboxProcess, sock: socket.socket, cgroup: EnvironmentCgroup,
                 memory_mb: int, on_output: Callable[[bytes], None]) -> None:
        self.key = key
        self.process = process
        self.cgroup = cgroup
        self.memory_mb = memory_mb
        self.retired = False
        self._sock = sock
        self._on_output = on_output
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, "TemplateChild"] = {}  # by pid in the template's namespace
        self._early_exits: dict[int, int] = {}
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self.alive = True
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._loop.add_reader(process.output_fd, self._read_output)
        process.on_exit(self._template_exited)

    async def ready(self) -> None:
        await asyncio.shield(self._ready)

    async def fork(self, env: dict[str, str], output_fd: int) -> "TemplateChild":
        request_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[request_id] = future
        self._resize(len(self._children) + 1)
        message = json.dumps({"id": request_id, "env": env}).encode()
        self._sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [output_fd]))])
        local_pid = await future
        child = TemplateChild(self, local_pid, _host_pid(self.process.pid, local_pid))
        self._children[local_pid] = child
        if local_pid in self._early_exits:
            self._child_exited(local_pid, self._early_exits.pop(local_pid))
        return child

    def retire(self) -> None:
        """No new children; the template goes once its last child has (killing it kills them all)."""
        self.retired = True
        if not self._children:
            self.stop()

    def stop(self) -> None:
        if self.alive:
            self.alive = False
            self.process.kill()

    def _resize(self, children: int) -> None:
        """The template's group holds the template and its children: one environment's share each."""
        self.cgroup.resize(self.memory_mb, children + 1)

    def _on_readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._loop.remove_reader(self._sock.fileno())
                return
            self._dispatch(json.loads(data))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            if message["exit"] in self._children:
                self._child_exited(message["exit"], message["status"])
            else:
                self._early_exits[message["exit"]] = message["status"]
        elif "ready" in message:
            if not self._ready.done():
                self._ready.set_result(None)
        elif "init_error" in message:
            if not self._ready.done():
                self._ready.set_exception(TemplateInitFailed(json.dumps(message["init_error"]).encode(),
                                                             message.get("error_type") or "Runtime.Unknown"))
        else:
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message["pid"])

    def _child_exited(self, local_pid: int, status: int) -> None:
        child = self._children.pop(local_pid)
        self._resize(len(self._children))
        child.exited(ExitStatus.from_wait_status(status))
        if self.retired and not self._children:
            self.stop()

    def _template_exited(self, status: ExitStatus) -> None:
        self.alive = False
        if not self._ready.done():
            self._ready.set_exception(TemplateInitFailed(b"", "Runtime.ExitError"))
            self._ready.exception()
        for child in list(self._children.values()):
            child.exited(ExitStatus(code=None, signal=signal.SIGKILL))
        self._children.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(OSError("the SnapStart template exited"))
        # Stop watching both descriptors before they are closed: a closed number is soon reused
        # (another environment's Runtime API socket, say), and a reader left on it would steal its data.
        for fd in (self._sock.fileno(), self.process.output_fd):
            try:
                self._loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
        self._sock.close()
        self.process.close()

    def _read_output(self) -> None:
        try:
            data = os.read(self.process.output_fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not data:
            self._loop.remove_reader(self.process.output_fd)
            return
        self._on_output(data)


def _host_pid(template_host_pid: int, local_pid: int) -> int:
    """The host pid of a template's child from its pid in the template's namespace (NSpid)."""
    children = f"/proc/{template_host_pid}/task/{template_host_pid}/children"
    with open(children) as handle:
        candidates = handle.read().split()
    for candidate in candidates:
        try:
            with open(f"/proc/{candidate}/status") as status:
                for line in status:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == local_pid:
                            return int(candidate)
                        break
        except OSError:
            continue
    raise ProcessLookupError(f"no child {local_pid} of template {template_host_pid}")


class TemplateChild(SandboxProcess):
    """An environment forked from a SnapStart template."""

    def __init__(self, template: SnapshotTemplate, local_pid: int, host_pid: int) -> None:
        self.template = template
        self.local_pid = local_pid
        self.pid = host_pid
        self.output_fd = -1  # set by LinuxSandbox: the read end of the pipe it gave the template
        self._pidfd: int | None = os.pidfd_open(host_pid)
        self._callback: ExitCallback | None = None
        self._exit: ExitStatus | None = None
        self._peak_mb = 0

    def on_exit(self, callback: ExitCallback) -> None:
        if self._exit is not None:
            callback(self._exit)
        else:
            self._callback = callback

    def exited(self, status: ExitStatus) -> None:
        self._exit = status
        if self._callback is not None:
            self._callback(status)

    def kill(self) -> None:
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def peak_memory_mb(self) -> int:
        self._peak_mb = max(self._peak_mb, peak_rss_mb(self.pid) or 0)
        return self._peak_mb

    def made_connection(self, listener: tuple[str, int], peer: tuple[str, int]) -> bool:
        """Its siblings share the template's cgroup: only this child's own process tree counts."""
        return peers.connected_from_tree(listener, peer, self.template.cgroup.procs(), root=self.pid)

    def close(self) -> None:
        for fd in (self.output_fd, self._pidfd):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._pidfd = None

"""The server's side of a zygote (`zygote.py`): start it, ask it for environments, hear exits.

Messages are JSON over a SOCK_SEQPACKET socketpair (one message per datagram, file descriptors
passed with SCM_RIGHTS), read with `add_reader` on the server's event loop. The zygote is the
parent of every environment it clones, so it reaps them and reports each exit status; if the
zygote itself dies, its environments die with it (PR_SET_PDEATHSIG) and are reported as killed.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import ctypes.util
import itertools
import json
import logging
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)
ZYGOTE_PY = Path(__file__).resolve().parent / "zygote.py"
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
ExitListener = Callable[[int, int], None]  # (wait status, peak RSS in kB)


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ZygoteDied(RuntimeError):
    pass


class ForkServer:
    def __init__(self, interpreter: str, bootstrap: Path | None, on_died: Callable[[], None] | None = None) -> None:
        self.interpreter = interpreter
        self.bootstrap = bootstrap
        self._on_died = on_died  # called when a zygote that was ready exits without being stopped
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: dict[int, ExitListener] = {}
        self._early_exits: dict[int, tuple[int, int]] = {}
        self._ready: asyncio.Future[int] | None = None
        self._generic_sent: dict[str, Any] | None = None  # the zygote keeps the last one it was sent
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self.alive = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [self.interpreter, "-S", "-s", str(ZYGOTE_PY), str(theirs.fileno())]
        if self.bootstrap is not None:
            argv.append(str(self.bootstrap))
        self._proc = subprocess.Popen(
            argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={"PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8"}, preexec_fn=_die_with_parent,
        )
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        self.alive = True
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), 30)
        except Exception:
            self.stop()
            raise

    async def spawn(self, generic: dict[str, Any], spec: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """Start an environment: `generic` is what every environment of this zygote shares (its spares
        are built from it; callers pass the same object while it holds, so it is sent only when it
        changes), `spec` this one's own part; `fds[0]` becomes its stdout and stderr.
        Returns the zygote's answer: the environment's `pid`, the name of its `cgroup`, and in `fds`
        the Runtime API's listening socket when environments have their own network."""
        if not self.alive or self._sock is None:
            raise ZygoteDied("the zygote is not running")
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        request = {"id": request_id, "spec": spec}
        if generic is not self._generic_sent:
            request["generic"] = generic
        message = json.dumps(request).encode()
        try:
            self._sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except (BrokenPipeError, ConnectionResetError):
            self._pending.pop(request_id, None)
            self._died()
            raise ZygoteDied("the zygote is not running") from None
        self._generic_sent = generic
        return await future

    def watch(self, pid: int, listener: ExitListener) -> None:
        early = self._early_exits.pop(pid, None)
        if early is not None:
            listener(*early)
        else:
            self._listeners[pid] = listener

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            fds = array.array("i")
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
            except BlockingIOError:
                return
            except OSError:
                data, ancdata = b"", []
            if not data:
                self._died()
                return
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
            message = json.loads(data)
            message["fds"] = list(fds)
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            pid, status, maxrss = message["exit"], message["status"], message.get("maxrss_kb", 0)
            listener = self._listeners.pop(pid, None)
            if listener is not None:
                listener(status, maxrss)
            else:
                self._early_exits[pid] = (status, maxrss)
        elif "ready" in message:
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message["ready"])
        else:
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(OSError(f"the zygote could not start an environment: {message['error']}"))
                else:
                    future.set_result(message)

    def _died(self) -> None:
        if not self.alive:
            return
        log.error("zygote for %s exited; its environments are gone", self.interpreter)
        was_ready = self._ready is not None and self._ready.done() and not self._ready.cancelled() \
            and self._ready.exception() is None
        self.stop()
        if was_ready and self._on_died is not None:
            self._on_died()

    def stop(self) -> None:
        self.alive = False
        if self._sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            except (RuntimeError, ValueError, OSError):
                pass
            self._sock.close()
            self._sock = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ZygoteDied("the zygote exited"))
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ZygoteDied("the zygote exited before it was ready"))
        killed = signal.SIGKILL  # a wait status of "killed by SIGKILL"
        for listener in self._listeners.values():
            listener(killed, 0)
        self._listeners.clear()

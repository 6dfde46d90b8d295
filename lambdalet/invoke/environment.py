"""An execution environment: one sandboxed runtime process bound to one function configuration.

States (every transition not listed is refused):

    STARTING ──▶ IDLE ⇄ BUSY          and from any state ──▶ STOPPING ──▶ GONE

The environment owns its runtime process, its Runtime API listener and its log stream. Everything
runs on the server's one event loop: output and exit are watched with `add_reader` on the output
pipe and the process's exit descriptor, and each invocation's timeout is a loop timer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

from lambdalet import logs
from lambdalet.invoke.env_vars import build_env
from lambdalet.invoke.extensions import (EXIT_TOKEN_VARIABLE, REGISTRATION_CLOSED, SHUTDOWN_DEADLINE_S, Extension,
                                         ExtensionRefusal, Extensions, external_extensions)
from lambdalet.invoke.telemetry import TELEMETRY, Api, Telemetry
from lambdalet.invoke.streaming import ResponseStream, buffering_stream
from lambdalet.images.store import ImageUnusable
from lambdalet.invoke.types import Invocation, InvocationResult, LogTail, platform_error
from lambdalet.model import FunctionConfig, runtime_version_arn
from lambdalet.runtimes.registry import EntrypointNotFound, Runtime, RuntimeRegistry, launcher_script
from lambdalet.sandbox.base import ExitStatus, Layout, SandboxBackend, SandboxProcess, SandboxSpec
from lambdalet.sandbox.templates import TemplateInitFailed

if TYPE_CHECKING:
    from lambdalet.images.store import ImageStore
    from lambdalet.invoke.runtime_api import RuntimeApiServer

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # what the Runtime API accepts from /response
MAX_LINE_BYTES = 256 * 1024  # a CloudWatch log event's largest message: longer lines are logged in pieces
#: Output an environment may write per second: past it the server stops reading its pipe for the
#: rest of a 100 ms window, and the function's writes wait, so one function's log flood cannot
#: take the server's one event loop from every other invocation.
OUTPUT_BYTES_PER_S = 8 * 1024 * 1024
OUTPUT_WINDOW_S = 0.1
#: At most how long a runtime's exit waits for its last requests to be read (a streamed /response
#: to its end), and how often it looks whether they have been.
STREAM_DRAIN_S = 2.0
EXIT_POLL_S = 0.005
_closing: set["asyncio.Task[None]"] = set()  # telemetry sessions closing after their environment


class EnvState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    GONE = "gone"


TRANSITIONS: dict[EnvState, frozenset[EnvState]] = {
    EnvState.STARTING: frozenset({EnvState.IDLE, EnvState.STOPPING}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.STOPPING}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.STOPPING}),
    EnvState.STOPPING: frozenset({EnvState.GONE}),
    EnvState.GONE: frozenset(),
}


class InvalidTransition(RuntimeError):
    pass


class RuntimeApiRefusal(Exception):
    """The Runtime API refuses a runtime's request: HTTP status plus Lambda's errorType."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


class InitFailure(Exception):
    """The environment could not finish init; the invocation that waited for it gets this error."""

    def __init__(self, env: "Environment", error_type: str, message: str, body: bytes | None = None,
                 status: str = "error") -> None:
        super().__init__(message)
        self.env, self.error_type, self.message, self.body, self.status = env, error_type, message, body, status

    def result_for(self, invocation: Invocation) -> InvocationResult:
        return self.env.report_init_failure(invocation, self)


class Environment:
    def __init__(
        self,
        config: FunctionConfig,
        runtime: Runtime,
        *,
        registry: RuntimeRegistry,
        sandbox: SandboxBackend,
        runtime_api: "RuntimeApiServer",
        log_store: logs.LogStore,
        code_dir: os.PathLike[str] | str,
        region: str,
        images: "ImageStore | None" = None,
        passthrough: dict[str, str],
        use_sdk: bool,
        init_timeout: float,
        snapshot_key: str | None = None,
        provisioned: bool = False,
        layers_dir: Path | None = None,
        isolated_network: bool = False,
        fetch_code: "Callable[[FunctionConfig], Awaitable[str | None]] | None" = None,
    ) -> None:
        self.env_id = os.urandom(16).hex()
        self.config = config
        self.runtime = runtime
        self.state = EnvState.STARTING
        self.on_gone: Callable[[Environment], None] | None = None
        self.idle_since = 0.0
        #: When (monotonic) the pool must stop reusing it: its role credentials expire an hour later
        #: (auth/execution_roles.py). None: never.
        self.retire_at: float | None = None
        self.budgeted_mb = 0  # MemorySize counted against the host's memory budget
        self.invocations = 0
        self.init_ms: float | None = None
        self._created = time.monotonic()
        self._registry = registry
        self._sandbox = sandbox
        self._runtime_api = runtime_api
        self._code_dir = code_dir
        self._images = images  # pulls an image function's root on a server that has not got it yet
        self._fetch_code = fetch_code  # code and layers this node lacks, fetched (peer_code.py): what is missing
        self._layers_dir = layers_dir  # the merged tree of the function's layers, built beforehand
        self._isolated_network = isolated_network  # a network namespace with only loopback
        self._region = region
        self._passthrough = passthrough
        self._use_sdk = use_sdk
        self._snapshot_key = snapshot_key
        #: Provisioned concurrency: initialised ahead of traffic, never reaped, no cold start reported.
        self.provisioned = provisioned
        self._init_timeout = init_timeout
        self._loop = asyncio.get_running_loop()
        self._process: SandboxProcess | None = None
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._init_failure: InitFailure | None = None
        self._current: Invocation | None = None
        self._pending: Invocation | None = None
        self._next_waiter: asyncio.Future[Invocation] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._delivered_at = 0.0
        self._out_buffer = b""
        self._out_window_end = 0.0  # the output rate's current window, and what was read in it
        self._out_window_bytes = 0
        self._out_paused: asyncio.TimerHandle | None = None
        self._init_lines = LogTail()  # what init wrote, for the first invocation's log tail
        self._log_group = config.log_group_name
        self.stream = log_store.open_stream(self._log_group, logs.stream_name(config.version, self.env_id))
        self._format = logs.LogFormat(config.log_format, config.application_log_level, config.system_log_level)
        #: Extensions API and Telemetry API state: only for an environment that has extensions
        #: (external ones in its layers, or an internal one registered during init), so an
        #: environment without any pays nothing for them.
        self.extensions: Extensions | None = None
        self.telemetry: Telemetry | None = None
        self._runtime_waiting = False  # its first /next came before every extension was ready
        self._shutting_down = False  # SHUTDOWN sent to the extensions: killed at its deadline
        #: The invocation whose streamed /response request is being read, and the error of a
        #: runtime that exited meanwhile, reported once that request is read to its end.
        self._streaming: Invocation | None = None
        self._exit_result: InvocationResult | None = None
        #: An exit seen while the runtime's last requests may still be unread: reported once its
        #: Runtime API listener is quiet (RuntimeApiServer.busy), or at the deadline.
        self._pending_exit: ExitStatus | None = None
        self._exit_deadline = 0.0
        #: What launch.sh prefixes the line it writes when an external extension exits (the
        #: environment's own: function code that prints one can only end its own environment).
        self._exit_token = ""
        self._running_externals: set[str] = set()

    def __repr__(self) -> str:
        return f"<Environment {self.config.name}:{self.config.version} {self.env_id[:8]} {self.state.value}>"

    # -- state machine --------------------------------------------------------------------------

    def transition(self, new: EnvState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"{self!r}: {self.state.value} -> {new.value} is not allowed")
        self.state = new

    # -- start ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runtime and wait until it asks for its first event (init done)."""
        started = time.monotonic()
        if self.config.image is not None:
            await self._pull_image_if_missing()
        elif self._fetch_code is not None and not self.config.hot_reload_dir:
            missing = await self._fetch_code(self.config)  # at once when this node has it all
            if missing is not None:
                self._finish_stopping()
                raise InitFailure(self, "Runtime.InvalidEntrypoint", missing)
        layout = self._sandbox.layout(self._code_dir, self.env_id, self._layers_dir,  # type: ignore[arg-type]
                                      self._isolated_network)
        process, listener, channel = await self._start_process(layout)
        self._process = process
        self._loop.add_reader(process.output_fd, self._read_output)
        process.on_exit(self._on_exit)
        # The runtime is initialising already: the server serves its sockets alongside.
        if channel is not None:
            await self._runtime_api.attach_channel(self, channel)
        if listener is not None:  # on the host's loopback: any process could connect
            await self._runtime_api.serve(self, listener, guarded=True)
        if process.runtime_api_socket is not None:  # in the environment's own network: only it can
            await self._runtime_api.serve(self, process.runtime_api_socket)
        if self.state in (EnvState.STOPPING, EnvState.GONE):  # stopped while the sandbox was starting
            process.kill()
        elif self._ready.done():  # the runtime asked for its first event before the sandbox answered
            process.initialized()
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._init_timeout + self.config.timeout)
        except asyncio.TimeoutError:
            log.warning("%r: init did not finish within %.0f s", self, self._init_timeout + self.config.timeout)
            self._init_failure = InitFailure(
                self, "Sandbox.Timedout", f"Task timed out after {self.config.timeout:.2f} seconds", status="timeout"
            )
            self.stop()
            raise self._init_failure from None
        finally:
            self.init_ms = (time.monotonic() - started) * 1000
        # _ready raised InitFailure above if init failed; here the runtime is waiting on /next.

    async def _start_process(self, layout: Layout) -> tuple[SandboxProcess, socket.socket | None,
                                                             socket.socket | None]:
        """Have the sandbox start the runtime; returns it with the sockets the server must serve.

        The Runtime API's listening socket is bound here, for the port in AWS_LAMBDA_RUNTIME_API,
        and served only once the process runs (connections wait in its backlog). Lambdalet's own
        Python bootstrap also gets a channel connected in advance, so its first /next costs no
        connect and no accept. Both are closed here if the start fails."""
        listener = channel = None
        try:
            runtime_api = layout.runtime_api
            if runtime_api is None:
                listener = self._runtime_api.bind()
                runtime_api = f"{self._runtime_api.host}:{listener.getsockname()[1]}"
            spec = self._sandbox_spec(layout, runtime_api)
            theirs = None
            if spec.python_bootstrap and self._snapshot_key is None and self._sandbox.supports_runtime_channel:
                channel, theirs = socket.socketpair()
                spec = dataclasses.replace(spec, runtime_channel=theirs.fileno())
            try:
                return await self._sandbox.start(spec), listener, channel
            finally:
                if theirs is not None:
                    theirs.close()  # passed on (or the start failed): the runtime holds the only copy
        except BaseException as exc:
            for sock in (listener, channel):
                if sock is not None:
                    sock.close()
            if isinstance(exc, TemplateInitFailed):
                self._finish_stopping()
                raise InitFailure(self, exc.error_type, "init failed", exc.body or None) from None
            if isinstance(exc, OSError):
                self._finish_stopping()
                raise InitFailure(self, "Runtime.InvalidEntrypoint", f"cannot start runtime: {exc}") from None
            raise

    async def _pull_image_if_missing(self) -> None:
        """The first cold start on a server without this image's root pulls it (by digest) and says so."""
        image = self.config.image
        assert image is not None and self._images is not None
        if Path(self._code_dir).is_dir():
            return
        pull_started = time.monotonic()
        try:
            await asyncio.to_thread(self._images.ensure, image)
        except ImageUnusable as exc:
            self._finish_stopping()
            raise InitFailure(self, "Runtime.InvalidEntrypoint", str(exc)) from None
        self._log(f"Pulled image {image.resolved_uri} in {(time.monotonic() - pull_started) * 1000:.0f} ms")

    def _image_spec(self, layout: Layout, runtime_api: str, env: dict[str, str]) -> SandboxSpec:
        """A container image's process: its ENTRYPOINT + CMD (or ImageConfig's) in its working
        directory, with its ENV under the function's variables and Lambda's reserved ones."""
        image = self.config.image
        assert image is not None
        argv = self.config.image_argv()
        # The image's own /opt/extensions (symlinks not followed: they point into the image, not
        # the host), started by the launcher given inline: the image is the whole root.
        externals = external_extensions(Path(self._code_dir) / "opt", follow_symlinks=False)
        if externals:
            self._track_extensions(externals)
            env[EXIT_TOKEN_VARIABLE] = self._exit_token
            argv = ["/bin/sh", "-c", launcher_script(), "launch.sh", "/opt/extensions", *argv]
        return SandboxSpec(self.env_id, argv, env, Path(self._code_dir), layout, self.config.memory_size,
                           self.config.ephemeral_storage, isolated_network=self._isolated_network, image=True,
                           cwd=self.config.image_working_dir)

    def _sandbox_spec(self, layout: Layout, runtime_api: str) -> SandboxSpec:
        """The runtime's environment variables and command, as the sandbox takes them."""
        env = build_env(
            self.config, self.runtime, region=self._region, runtime_api=runtime_api, task_root=layout.task_root,
            runtime_dir=layout.runtime_dir, log_group=self._log_group, log_stream=self.stream.name,
            passthrough=self._passthrough,
            initialization_type=self._initialization_type,
            opt_dir=layout.opt_dir, image_env=self.config.image.env if self.config.image is not None else None,
        )
        if self.config.image is not None:
            return self._image_spec(layout, runtime_api, env)
        sdk_dir = layout.sdk_dir if self._use_sdk else None
        externals = external_extensions(self._layers_dir)
        if externals and self._snapshot_key is not None:  # a snapshot is one process: no launcher
            self._finish_stopping()
            raise InitFailure(self, "Runtime.InvalidEntrypoint",
                              "SnapStart cannot start the external extensions in /opt/extensions on this server "
                              f"({', '.join(sorted(externals))}): publish without SnapStart, or without those layers")
        if externals:
            self._track_extensions(externals)
            env[EXIT_TOKEN_VARIABLE] = self._exit_token
        try:
            argv = self._registry.command(self.runtime, layout.task_root, Path(self._code_dir), sdk_dir, env,
                                          opt_dir=layout.opt_dir, layers_dir=self._layers_dir,
                                          with_extensions=bool(externals))
        except EntrypointNotFound as exc:
            self._finish_stopping()
            raise InitFailure(self, exc.error_type, str(exc)) from None
        if self.runtime.version_label:
            arn = runtime_version_arn(self._region, self.config.runtime, self.runtime.build)
            self._log(self._format.init_start(self.runtime.version_label, arn, restore=self._snapshot_key is not None))
            self._platform("platform.initStart", {
                "initializationType": self._initialization_type, "phase": "init",
                "runtimeVersion": self.runtime.version_label, "runtimeVersionArn": arn,
                "functionName": self.config.name, "functionVersion": self.config.version})
        in_process_python = self.runtime.is_python and argv[0] == self.runtime.interpreter
        return SandboxSpec(
            self.env_id, argv, env, Path(self._code_dir), layout, self.config.memory_size,
            self.config.ephemeral_storage, python_bootstrap=in_process_python, snapshot_key=self._snapshot_key,
            interpreter=self.runtime.interpreter, layers_dir=self._layers_dir,
            isolated_network=self._isolated_network)

    @property
    def _initialization_type(self) -> str:
        return ("provisioned-concurrency" if self.provisioned
                else "snap-start" if self._snapshot_key is not None else "on-demand")

    def report_init_failure(self, invocation: Invocation, failure: InitFailure) -> InvocationResult:
        """Log and shape the error of an invocation whose environment failed to initialise."""
        invocation.log_lines.extend(self._init_lines)
        self._log(self._format.init_report(self.init_ms or 0.0, failure.status, failure.error_type))
        self._log(self._format.start(invocation.request_id, self.config.version), invocation)
        payload = failure.body or platform_error(invocation.request_id, failure.error_type, failure.message)
        if failure.body is None:
            self._log_error(invocation, failure.error_type, failure.message)
        self._log(self._format.end(invocation.request_id), invocation)
        self._log(self._format.report(invocation.request_id, 0.0, self.config.memory_size, self._peak_memory(),
                                      init_ms=self.init_ms, status=failure.status, error_type=failure.error_type),
                  invocation)
        self.stream.flush()
        return InvocationResult(payload, function_error=True, status=failure.status, error_type=failure.error_type,
                                executed_version=self.config.version)

    # -- invoke ---------------------------------------------------------------------------------

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """Run one invocation (the environment is BUSY) and write its START/END/REPORT lines."""
        if self.state is not EnvState.BUSY:  # its runtime died since it was handed out
            return self._failed(invocation, "Runtime.ExitError",
                                "Runtime exited with error: the environment stopped before the invocation started")
        first = self.invocations == 0 and not self.provisioned  # provisioned inits are not cold starts
        self.invocations += 1
        if first:
            invocation.log_lines.extend(self._init_lines)
            self._init_lines = LogTail()
        invocation.result = self._loop.create_future()
        self._current = invocation
        started = time.monotonic()
        self._delivered_at = started
        invocation.deadline_ms = int(time.time() * 1000) + self.config.timeout * 1000
        self._log(self._format.start(invocation.request_id, self.config.version), invocation)
        if self.extensions is not None:
            self._extensions_invoke(invocation)
        self._timer = self._loop.call_later(self.config.timeout, self._on_timeout, invocation)
        if self._next_waiter is not None and not self._next_waiter.done():
            self._hand_over(invocation, self._next_waiter)
        else:
            self._pending = invocation
        try:
            result = await invocation.result
        finally:
            self._timer.cancel()
            self._current = None
            self._pending = None
        # Every path that resolves a result (response, error, timeout, exit) drained the output first.
        duration_ms = invocation.duration_ms = (time.monotonic() - self._delivered_at) * 1000
        peak_mb = self._peak_memory()
        if peak_mb > self.config.memory_size and result.error_type is None and not self._process_enforces_memory:
            result = self._out_of_memory(invocation)
        if self._format.system_debug:  # JSON logs at SystemLogLevel DEBUG
            self._log(self._format.runtime_done(_runtime_done(invocation, result, duration_ms)), invocation)
        self._log(self._format.end(invocation.request_id), invocation)
        self._log(self._format.report(
            invocation.request_id, duration_ms, self.config.memory_size, peak_mb,
            init_ms=self.init_ms if first else None, status=result.status, error_type=result.error_type,
            restore=self._snapshot_key is not None,
        ), invocation)
        if self.telemetry is not None:
            self._telemetry_done(invocation, result, duration_ms, peak_mb, self.init_ms if first else None)
        return result  # the log store's timer flushes the stream within ~50 ms

    def _out_of_memory(self, invocation: Invocation) -> InvocationResult:
        """The runtime's resident memory went past MemorySize: Lambda's out-of-memory failure."""
        message = "Runtime exited with error: signal: killed"
        self._log_error(invocation, "Runtime.OutOfMemory", message)
        self.stop()
        return self._failed(invocation, "Runtime.OutOfMemory", message)

    def _failed(self, invocation: Invocation, error_type: str, message: str) -> InvocationResult:
        """An invocation's result when Lambda itself reports the error (the runtime could not answer)."""
        return InvocationResult(platform_error(invocation.request_id, error_type, message), function_error=True,
                                status="error", error_type=error_type, executed_version=self.config.version)

    def _log_error(self, invocation: Invocation, error_type: str, message: str) -> None:
        """The two lines Lambda logs for an error it reports itself."""
        self._log(f"RequestId: {invocation.request_id} Error: {message}", invocation)
        self._log(error_type, invocation)
        self._platform("platform.fault", f"RequestId: {invocation.request_id} Error: {message}\n{error_type}")

    def _hand_over(self, invocation: Invocation, waiter: "asyncio.Future[Invocation]") -> None:
        invocation.delivered = True
        self._delivered_at = time.monotonic()
        self._next_waiter = None
        waiter.set_result(invocation)

    def _resolve(self, invocation: Invocation, result: InvocationResult) -> bool:
        if invocation.result is None or invocation.result.done():
            return False
        invocation.result.set_result(result)
        if invocation.stream is not None:  # timed out or crashed mid-stream: the reader sees the end
            invocation.stream.close()
        return True

    def _on_timeout(self, invocation: Invocation) -> None:
        log.warning("%r: invocation %s timed out after %d s; %s", self, invocation.request_id, self.config.timeout,
                    "the runtime had taken the event" if invocation.delivered
                    else "the runtime never asked for the event (stalled before /next)")
        self._drain_output()
        self._peak_memory()  # sample before the kill: REPORT still needs it
        self._log(logs.timeout_line(invocation.request_id, self.config.timeout), invocation)
        message = f"Task timed out after {self.config.timeout:.2f} seconds"
        self._resolve(invocation, InvocationResult(
            platform_error(invocation.request_id, "Sandbox.Timedout", message), function_error=True,
            status="timeout", executed_version=self.config.version,
        ))
        self.shut_down("timeout")  # the extensions hear why, as on Lambda

    # -- Runtime API callbacks (called by RuntimeApiServer) ----------------------------------------

    def made_connection(self, listener: tuple[str, int], peer: tuple[str, int]) -> bool:
        """Whether a connection to the Runtime API's host-loopback listener is this environment's own."""
        return self._process is not None and self._process.made_connection(listener, peer)

    async def next_invocation(self) -> Invocation:
        """The runtime's /next: the pending invocation, or the next one handed over."""
        nxt = self.next_or_waiter()
        return nxt if isinstance(nxt, Invocation) else await nxt

    def next_or_waiter(self) -> "Invocation | asyncio.Future[Invocation]":
        """/next without a coroutine: the pending invocation, or a future the next one will resolve
        (cancelled if the runtime exits first). Raises RuntimeApiRefusal."""
        if self.state is EnvState.STARTING and not self._ready.done():
            if self.extensions is not None and not self.extensions.init_done:
                self._runtime_waiting = True  # init ends once the extensions are ready too
            else:
                self._init_done()
        current = self._current
        if current is not None and current.delivered and current.result is not None and not current.result.done():
            raise RuntimeApiRefusal(403, "InvalidStateTransition",
                                    "/next called before the current invocation was answered")
        if self._pending is not None:
            invocation, self._pending = self._pending, None
            invocation.delivered = True
            self._delivered_at = time.monotonic()
            return invocation
        if self.state in (EnvState.STOPPING, EnvState.GONE):
            raise RuntimeApiRefusal(500, "Runtime.Stopped", "the environment is shutting down")
        self._next_waiter = self._loop.create_future()
        return self._next_waiter

    def _init_done(self) -> None:
        """The runtime and every extension wait for their first event: init is over."""
        self.transition(EnvState.IDLE)
        if self._process is not None:
            self._process.initialized()
        self._ready.set_result(None)
        if self.extensions is not None:
            self._extensions_ready()

    def _invocation_for(self, request_id: str) -> Invocation:
        current = self._current
        if current is None or current.request_id != request_id or not current.delivered or (
            current.result is not None and current.result.done()
        ):
            raise RuntimeApiRefusal(400, "InvalidRequestID", "Invalid request ID")
        return current

    def on_response(self, request_id: str, body: bytes, content_type: str) -> None:
        invocation = self._invocation_for(request_id)
        if len(body) > MAX_RESPONSE_BYTES:
            self.on_oversized_response(request_id)
            raise RuntimeApiRefusal(413, "RequestEntityTooLarge",
                                    f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
        self._drain_output()
        self._resolve(invocation, InvocationResult(body, content_type=content_type,
                                                   executed_version=self.config.version))

    def on_stream_start(self, request_id: str, content_type: str) -> ResponseStream:
        """A streamed /response begins: where its bytes go (the caller's stream, or a buffer of
        the response's usual limit when the caller wants it whole)."""
        invocation = self._invocation_for(request_id)
        if invocation.stream is None:
            invocation.stream = buffering_stream(MAX_RESPONSE_BYTES)
            invocation.stream.buffered_caller = True
        invocation.stream.start(content_type)
        self._streaming = invocation
        return invocation.stream

    def on_stream_end(self, request_id: str, content_type: str, error_type: str | None,
                      error_body: bytes | None) -> None:
        """A streamed /response ended, maybe with the error its trailers carry."""
        invocation = self._invocation_for(request_id)
        stream = invocation.stream
        assert stream is not None
        self._drain_output()
        if stream.too_large:
            limit = stream.limit
            error = {"errorMessage": f"Response payload size exceeded maximum allowed payload size ({limit} bytes).",
                     "errorType": "Function.ResponseSizeTooLarge"}
            result = InvocationResult(json.dumps(error).encode(), function_error=True, status="error",
                                      error_type="Function.ResponseSizeTooLarge", executed_version=self.config.version)
        elif error_type:
            body = error_body or json.dumps({"errorMessage": error_type, "errorType": error_type}).encode()
            result = InvocationResult(body, function_error=True, executed_version=self.config.version)
        else:
            payload = stream.collected() if stream.buffered_caller else b""
            result = InvocationResult(payload, content_type=content_type, executed_version=self.config.version)
        self._resolve(invocation, result)

    def on_oversized_response(self, request_id: str) -> None:
        invocation = self._invocation_for(request_id)
        error = {"errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                 "errorType": "Function.ResponseSizeTooLarge"}
        self._resolve(invocation, InvocationResult(json.dumps(error).encode(), function_error=True,
                                                   executed_version=self.config.version))

    def on_error(self, request_id: str, body: bytes) -> None:
        invocation = self._invocation_for(request_id)
        self._drain_output()
        self._resolve(invocation, InvocationResult(body or b"{}", function_error=True,
                                                   executed_version=self.config.version))

    def on_init_error(self, body: bytes, error_type: str | None) -> None:
        if self.state is not EnvState.STARTING or self._ready.done():
            raise RuntimeApiRefusal(403, "InvalidStateTransition", "init/error is only accepted during init")
        if not error_type:
            try:
                error_type = json.loads(body).get("errorType")
            except (ValueError, AttributeError, RecursionError):
                error_type = None
        self._fail_init(error_type, body)

    def _fail_init(self, error_type: str | None, body: bytes, message: str = "init failed") -> None:
        self._drain_output()
        self._peak_memory()  # sample before the kill: REPORT still needs it
        self._init_failure = InitFailure(self, error_type or "Runtime.Unknown", message, body or None)
        self._ready.set_exception(self._init_failure)
        self._ready.exception()  # retrieved: start() may be past waiting (it still gets it if it waits)
        self.stop()

    # -- Extensions API and Telemetry API (called by RuntimeApiServer) --------------------------------

    def _track_extensions(self, expected: frozenset[str]) -> None:
        """From now on this environment has extensions: init waits for them, invocations tell them."""
        role_account = self.config.role.split(":")[4] if self.config.role.count(":") >= 5 else ""
        self.extensions = Extensions(expected, self.config.name, self.config.version, self.config.handler,
                                     role_account, changed=self._extensions_changed)
        self.telemetry = Telemetry()
        if expected:
            self._exit_token = f"lambdalet-extension-exit-{os.urandom(8).hex()}"
            self._running_externals = set(expected)

    def _platform(self, event_type: str, record: object) -> None:
        if self.telemetry is not None:
            self.telemetry.emit(event_type, record)

    def register_extension(self, name: str | None, body: object, features: str) -> tuple[str, dict[str, object]]:
        """POST /extension/register. An internal extension (a name that is no executable in
        /opt/extensions) may register only while init runs, before the runtime's first /next."""
        if self.extensions is None:
            if self.state is not EnvState.STARTING or self._ready.done():
                raise ExtensionRefusal(403, "Extension.RegistrationClosed", REGISTRATION_CLOSED)
            self._track_extensions(frozenset())
        assert self.extensions is not None
        return self.extensions.register(name, body, features)

    def _extension(self, identifier: str | None) -> Extension:
        if self.extensions is None:
            raise ExtensionRefusal(403, "Extension.UnknownExtensionIdentifier", f"Unknown extension {identifier}")
        return self.extensions.find(identifier)

    def extension_next(self, identifier: str | None) -> "dict[str, object] | asyncio.Future[dict[str, object]]":
        """GET /extension/event/next: the extension is done with its last event (or its init)."""
        extension = self._extension(identifier)
        assert self.extensions is not None
        return self.extensions.next_event(extension)

    def extension_error(self, identifier: str | None, phase: str, error_type: str | None, body: bytes) -> None:
        """POST /extension/init/error or /exit/error: init fails (Extension.InitError, as the
        emulator reports it), or the environment ends, the invocation in progress failing with
        Extension.ExitError; the extension's own error type is logged."""
        extension = self._extension(identifier)
        if not error_type:
            raise ExtensionRefusal(403, "Extension.MissingHeader", "Lambda-Extension-Function-Error-Type not found")
        if phase == "init":
            if self.state is not EnvState.STARTING or self._ready.done():
                raise ExtensionRefusal(403, "Extension.InvalidExtensionState", "init/error is only accepted during init")
            self._log(f"EXTENSION\tName: {extension.name}\tState: InitError\tEvents: [{', '.join(extension.events)}]"
                      f"\tError Type: {error_type}")
            self._fail_init("Extension.InitError", b"",
                            f"Extension {extension.name} failed its init: {error_type}")
            return
        self._fail_current("Extension.ExitError", f"Extension {extension.name} exited with error: {error_type}")
        self.stop()

    def subscribe_telemetry(self, identifier: str | None, body: object, api: Api = TELEMETRY) -> None:
        """PUT /2022-07-01/telemetry, or the Logs API's PUT /2020-08-15/logs: only during init, as on Lambda."""
        extension = self._extension(identifier)
        if self.state is not EnvState.STARTING or self._ready.done():
            raise ExtensionRefusal(403, f"{api.name}.SubscriptionClosed", f"{api.name} API subscription is closed already")
        if self._isolated_network:
            raise ExtensionRefusal(400, api.validation_error,
                                   f"The {api.name} API cannot deliver into an isolated network on this server: "
                                   "give the function the host network to subscribe")
        assert self.telemetry is not None
        self.telemetry.subscribe(extension.name, body, api)

    def _extensions_changed(self) -> None:
        """An extension waits on /event/next: maybe the runtime and every extension are ready."""
        if (self._runtime_waiting and self.state is EnvState.STARTING and not self._ready.done()
                and self.extensions is not None and self.extensions.init_done):
            self._runtime_waiting = False
            self._init_done()

    def _extensions_ready(self) -> None:
        """Init is over: registration closes, and the EXTENSION lines and events say who is there."""
        assert self.extensions is not None
        self.extensions.close_registration()
        for extension in self.extensions.registered.values():
            events = list(extension.events)
            self._log(self._format.extension(extension.name, extension.state, events))
            self._platform("platform.extension", {"name": extension.name, "state": extension.state, "events": events})
        self._platform("platform.initRuntimeDone", {"initializationType": self._initialization_type,
                                                    "phase": "init", "status": "success"})
        self._platform("platform.initReport", {
            "initializationType": self._initialization_type, "phase": "init", "status": "success",
            "metrics": {"durationMs": round((time.monotonic() - self._created) * 1000, 3)}})
        assert self.telemetry is not None
        self.telemetry.init_done()

    def _extensions_invoke(self, invocation: Invocation) -> None:
        assert self.extensions is not None
        tracing = {"type": "X-Amzn-Trace-Id", "value": invocation.trace_id}
        self.extensions.invoke({"eventType": "INVOKE", "deadlineMs": invocation.deadline_ms,
                                "requestId": invocation.request_id, "invokedFunctionArn": invocation.invoked_arn,
                                "tracing": tracing})
        self._platform("platform.start", {"requestId": invocation.request_id, "version": self.config.version,
                                          "tracing": tracing})

    def _telemetry_done(self, invocation: Invocation, result: InvocationResult, duration_ms: float, peak_mb: int,
                        init_ms: float | None) -> None:
        record = _runtime_done(invocation, result, duration_ms)
        self._platform("platform.runtimeDone", record)
        self._platform("platform.report", {**record, "metrics": logs.report_metrics(
            duration_ms, self.config.memory_size, peak_mb, init_ms, digits=3)})

    def settled(self) -> "asyncio.Future[None] | None":
        """None when the environment may take its next invocation now; else a future resolved once
        every extension is done with the last INVOKE (it asks for its next event)."""
        if self.extensions is None or self.extensions.idle or self.state is not EnvState.BUSY:
            return None
        return self.extensions.when_idle()

    def shut_down(self, reason: str = "spindown") -> None:
        """Stop the environment as Lambda does when it spins one down (or one timed out: `reason`
        "timeout"): the extensions registered for SHUTDOWN get it, with its deadline; it is killed
        once they are done with it, or at the deadline."""
        extensions = self.extensions
        if (extensions is None or not extensions.wants_shutdown or self._process is None
                or self.state not in (EnvState.IDLE, EnvState.BUSY)):
            self.stop()
            return
        self.transition(EnvState.STOPPING)
        self._shutting_down = True
        if self.telemetry is not None:
            self.telemetry.flush()  # while its subscriber still runs
        done = extensions.shutdown(reason, int(time.time() * 1000 + SHUTDOWN_DEADLINE_S * 1000))
        deadline = self._loop.call_later(SHUTDOWN_DEADLINE_S, self._kill)
        done.add_done_callback(lambda _: (deadline.cancel(), self._kill()))

    def _extension_exited(self, name_and_status: str) -> None:
        """An external extension's process ended (launch.sh said so). After SHUTDOWN that is the
        end it was asked for: once every one has, the environment goes at once. Any other time it
        is Lambda's Extension.Crash: init fails, or the invocation in progress does, and the
        environment is reset."""
        name, _, status = name_and_status.rpartition(" ")
        self._running_externals.discard(name)
        if self.state in (EnvState.STOPPING, EnvState.GONE) and not self._shutting_down:
            return  # killed with the rest of the environment
        if self._shutting_down:
            if not self._running_externals:
                self._kill()
            return
        message = f"Extension {name} exited with status {status}"
        if self.state is EnvState.STARTING and not self._ready.done():
            self._log(f"EXTENSION\tName: {name}\tState: Crashed\tExit status: {status}")
            self._fail_init("Extension.Crash", b"", message)
            return
        if not self._fail_current("Extension.Crash", message):
            self._log(message)
        self.stop()

    def _fail_current(self, error_type: str, message: str) -> bool:
        """Fail the invocation in progress, if there is one, with an error Lambda reports itself."""
        invocation = self._current
        if invocation is None or invocation.result is None or invocation.result.done():
            return False
        self._drain_output()  # what the runtime wrote before: this invocation's
        self._log_error(invocation, error_type, message)
        self._resolve(invocation, self._failed(invocation, error_type, message))
        return True

    def _kill(self) -> None:
        if self._process is not None and self.state is EnvState.STOPPING:
            self._process.kill()

    # -- output and exit --------------------------------------------------------------------------

    def _log(self, line: str | None, invocation: Invocation | None = None) -> None:
        if line is None:  # a platform record SystemLogLevel filters out
            return
        self.stream.write(line)
        target = invocation or self._current
        if target is not None:
            target.log_lines.append(line)
        else:
            self._init_lines.append(line)

    def _log_output(self, line: str) -> None:
        """A line the runtime wrote; with the JSON format, dropped when below ApplicationLogLevel."""
        if self._exit_token and line.startswith(self._exit_token):  # handled once this read is done
            self._loop.call_soon(self._extension_exited, line[len(self._exit_token):].strip())
            return
        if self._format.filters_output and not self._format.keep_output(line):
            return
        self._log(line)
        if self.telemetry is not None:  # extensions' output shares the runtime's pipe: all of it is `function`
            self.telemetry.emit("function", line)

    def _read_output(self) -> None:
        if self._process is None:
            return
        try:
            data = os.read(self._process.output_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._process.output_fd)
            self._flush_partial_line()
            return
        self._take_output(data)
        self._meter_output(len(data))

    def _meter_output(self, size: int) -> None:
        """Count output against OUTPUT_BYTES_PER_S; over it, stop reading until the window ends."""
        now = time.monotonic()
        if now >= self._out_window_end:
            self._out_window_end, self._out_window_bytes = now + OUTPUT_WINDOW_S, 0
        self._out_window_bytes += size
        if self._out_window_bytes >= OUTPUT_BYTES_PER_S * OUTPUT_WINDOW_S and self._process is not None:
            self._loop.remove_reader(self._process.output_fd)
            self._out_paused = self._loop.call_later(self._out_window_end - now, self._resume_output)

    def _resume_output(self) -> None:
        self._out_paused = None
        if self._process is not None and self.state is not EnvState.GONE:
            self._loop.add_reader(self._process.output_fd, self._read_output)

    def _take_output(self, data: bytes) -> None:
        """Log the complete lines in `data` (after what was left over); keep the rest for later.

        A line longer than a log event may be (256 KB, CloudWatch's) is logged in pieces of that
        size, even before its end arrives: a function writing without newlines would otherwise
        grow the buffer without bound, and copy it at every read."""
        *lines, rest = (self._out_buffer + data if self._out_buffer else data).split(b"\n")
        for line in lines:
            if not line:  # an empty line is no event on Lambda
                continue
            if len(line) <= MAX_LINE_BYTES:
                self._log_output(line.decode("utf-8", errors="replace"))
            else:
                self._log_pieces(line)
        if len(rest) > MAX_LINE_BYTES:
            whole = len(rest) - len(rest) % MAX_LINE_BYTES
            self._log_pieces(rest[:whole])
            rest = rest[whole:]
        self._out_buffer = rest

    def _log_pieces(self, line: bytes) -> None:
        for start in range(0, len(line), MAX_LINE_BYTES):
            self._log_output(line[start:start + MAX_LINE_BYTES].decode("utf-8", errors="replace"))

    def _drain_output(self) -> None:
        """Read everything the runtime wrote before it answered, so logs land in the right invocation."""
        if self._process is None:
            return
        for _ in range(64):
            try:
                data = os.read(self._process.output_fd, 65536)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            self._take_output(data)
        self._flush_partial_line()

    def _flush_partial_line(self) -> None:
        if self._out_buffer:
            self._log_output(self._out_buffer.decode("utf-8", errors="replace"))
            self._out_buffer = b""

    @property
    def _process_enforces_memory(self) -> bool:
        return self._process is not None and self._process.enforces_memory

    def _peak_memory(self) -> int:
        return self._process.peak_memory_mb() if self._process else 0

    def _on_exit(self, status: ExitStatus) -> None:
        """The runtime process ended. Its last requests may still be unread on their connections
        (a chunk of a streamed response before a crash): the exit is reported once every
        connection is read to its end (the kernel closed them with the process), or at STREAM_DRAIN_S."""
        if self.extensions is not None and self._process is not None:
            self._process.kill()  # the extensions go too, and with them their connections
        self._pending_exit = status
        self._exit_deadline = self._loop.time() + STREAM_DRAIN_S
        self._exit_when_quiet()

    def _exit_when_quiet(self, quiet: int = 0) -> None:
        """Report the exit once the listener was seen quiet twice, a poll apart: a connection the
        server has just accepted is neither waiting nor open for the loop iteration or two before
        its protocol sees it."""
        if self._pending_exit is None:
            return
        quiet = 0 if self._runtime_api.busy(self) else quiet + 1
        if quiet < 2 and self._loop.time() < self._exit_deadline:
            self._loop.call_later(EXIT_POLL_S, self._exit_when_quiet, quiet)
            return
        self._loop.call_soon(self._exit_now)  # after the handlers of what those connections carried start

    def _exit_now(self) -> None:
        status, self._pending_exit = self._pending_exit, None
        if status is None:
            return  # reported already
        self._drain_output()
        self._report_exit(status)
        self._finish_stopping()

    def _report_exit(self, status: ExitStatus) -> None:
        message = f"Runtime exited with error: {status.describe()}"
        error_type = "Runtime.OutOfMemory" if status.oom else "Runtime.ExitError"
        if not self._ready.done():
            self._init_failure = InitFailure(self, error_type, message)
            self._ready.set_exception(self._init_failure)
            self._ready.exception()  # retrieved: start() may be past waiting (it still gets it if it waits)
        invocation = self._current
        if invocation is not None and invocation.result is not None and not invocation.result.done():
            self._log_error(invocation, error_type, message)
            failed = self._failed(invocation, error_type, message)
            if self._streaming is invocation:
                # Its streamed /response may still hold bytes the runtime wrote before it died:
                # they go to the caller first, then the error (on_stream_request_done).
                self._exit_result = failed
                self._loop.call_later(STREAM_DRAIN_S, self._resolve_after_exit)
            else:
                self._resolve(invocation, failed)
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.cancel()

    def on_stream_request_done(self, request_id: str) -> None:
        """The runtime's streamed /response request is read to its end (or its connection is
        gone): an exit that came meanwhile is reported now, after the bytes it had sent."""
        if self._streaming is not None and self._streaming.request_id == request_id:
            self._streaming = None
            self._resolve_after_exit()

    def _resolve_after_exit(self) -> None:
        result, self._exit_result = self._exit_result, None
        invocation = self._current
        if result is not None and invocation is not None:
            self._resolve(invocation, result)

    # -- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Kill the runtime; cleanup follows when its exit is observed."""
        if self.state is EnvState.STOPPING and self._shutting_down:
            self._kill()  # no waiting for the extensions' SHUTDOWN any more
            return
        if self.state in (EnvState.STOPPING, EnvState.GONE):
            return
        self.transition(EnvState.STOPPING)
        if self._process is None:
            self._finish_stopping()
            return
        self._process.kill()

    def _finish_stopping(self) -> None:
        if self.state is EnvState.GONE:
            return
        if self.state is not EnvState.STOPPING:
            self.transition(EnvState.STOPPING)
        if not self._ready.done():
            self._ready.set_exception(self._init_failure or InitFailure(self, "Runtime.ExitError", "stopped"))
            self._ready.exception()  # retrieved: nobody may be waiting any more
        if self._out_paused is not None:
            self._out_paused.cancel()
        if self.extensions is not None:
            self._close_extensions()
        if self._process is not None:
            try:
                self._loop.remove_reader(self._process.output_fd)
            except (ValueError, OSError):
                pass
            self._process.close()
        self._runtime_api.close(self)
        self.stream.close()
        self.transition(EnvState.GONE)
        if self.on_gone is not None:
            self.on_gone(self)

    def _close_extensions(self) -> None:
        """The runtime is gone: so are its extensions (which outlive a runtime that exits by itself
        unless killed), and what telemetry is buffered goes out."""
        assert self.extensions is not None
        self.extensions.close()
        if self._process is not None:
            self._process.kill()
        if self.telemetry is not None:
            self.telemetry.flush()
            task = self._loop.create_task(self.telemetry.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)


def _runtime_done(invocation: Invocation, result: InvocationResult, duration_ms: float) -> dict[str, object]:
    """platform.runtimeDone's record: how the runtime's part of an invocation ended."""
    record: dict[str, object] = {"requestId": invocation.request_id,
                                 "status": result.status or ("error" if result.function_error else "success"),
                                 "metrics": {"durationMs": round(duration_ms, 3), "producedBytes": len(result.payload)}}
    if result.error_type:
        record["errorType"] = result.error_type
    return record

"""Environment.start when the runtime is quicker than its sandbox's answer (a SnapStart fork is)."""

import asyncio
from pathlib import Path

from lambdalet.invoke.environment import Environment, EnvState
from lambdalet.invoke.runtime_api import RuntimeApiServer
from lambdalet.logs import LogStore
from lambdalet.model import FunctionConfig
from lambdalet.runtimes.registry import Runtime, RuntimeRegistry
from lambdalet.sandbox.base import Layout, SandboxBackend, SandboxProcess


class QuickProcess(SandboxProcess):
    def __init__(self, output_fd: int) -> None:
        self.pid, self.output_fd = 0, output_fd
        self.killed = self.initialized_calls = 0

    def on_exit(self, callback):
        pass

    def initialized(self):
        self.initialized_calls += 1

    def kill(self):
        self.killed += 1

    def peak_memory_mb(self):
        return 0

    def close(self):
        pass


class QuickSandbox(SandboxBackend):
    """Lets the runtime ask for its first event before start() returns, as a fast fork does."""

    name, isolates = "quick", False

    def __init__(self, env_holder: dict) -> None:
        self.env_holder = env_holder
        self.process: QuickProcess | None = None

    def layout(self, code_dir: Path, env_id: str, layers_dir: Path | None = None,
               isolated_network: bool = False) -> Layout:
        return Layout(task_root="/var/task", runtime_dir="/var/runtime", tmp_dir="/tmp")

    async def start(self, spec) -> SandboxProcess:
        env = self.env_holder["env"]
        next_event = asyncio.get_running_loop().create_task(env.next_invocation())
        await asyncio.sleep(0)  # the runtime's /next is handled before the sandbox's answer
        assert env.state is EnvState.IDLE
        next_event.cancel()
        read_end, _write_end = __import__("os").pipe()
        self.process = QuickProcess(read_end)
        return self.process


def test_a_runtime_that_is_ready_before_its_sandbox_answers_is_kept(tmp_path):
    async def scenario() -> None:
        config = FunctionConfig(name="f", runtime="provided.al2023", handler="h",
                                role="arn:aws:iam::000000000000:role/r", code_sha256="00" * 32, code_size=1)
        (tmp_path / "code").mkdir()
        (tmp_path / "code" / "bootstrap").write_text("#!/bin/sh\n")
        (tmp_path / "code" / "bootstrap").chmod(0o755)
        holder: dict = {}
        sandbox = QuickSandbox(holder)
        api = RuntimeApiServer()
        env = Environment(config, Runtime("provided.al2023", None, None), registry=RuntimeRegistry(),
                          sandbox=sandbox, runtime_api=api, log_store=LogStore(tmp_path),
                          code_dir=tmp_path / "code", region="us-east-1", passthrough={}, use_sdk=False,
                          init_timeout=5)
        holder["env"] = env
        await env.start()
        assert env.state is EnvState.IDLE
        assert sandbox.process is not None
        assert sandbox.process.killed == 0  # it was not mistaken for a stopped environment
        assert sandbox.process.initialized_calls == 1  # and its invoke-phase limits were applied
        await api.shutdown()

    asyncio.run(scenario())

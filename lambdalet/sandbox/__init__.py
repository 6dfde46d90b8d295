"""Sandbox backends: how an execution environment's runtime process is started and confined."""

from __future__ import annotations

from pathlib import Path

from lambdalet.runtimes.python_sdk import PythonSdk
from lambdalet.sandbox.base import SandboxBackend

BACKENDS = ("auto", "linux", "process")
NETWORKS = ("host", "isolated")


def linux_unavailable() -> str | None:
    """None when the linux backend can run here, else the reason it cannot."""
    import os
    import sys

    if sys.platform != "linux":
        return f"{sys.platform} is not Linux"
    from lambdalet.sandbox.cgroups import available

    reason = available()
    if reason is None and not os.path.exists("/proc/self/ns/pid"):
        reason = "the kernel has no PID namespaces"
    if reason is None:
        from lambdalet.sandbox import confine

        try:
            os.close(confine.clone_tree_read_only(os.path.dirname(__file__)))
        except OSError as exc:
            reason = f"the kernel lacks the mount API environments need (Linux >= 5.12): {exc.strerror}"
    return reason


def create_backend(name: str, data_dir: Path, sdk: PythonSdk | None, *, uid: int, network: str,
                   max_parallel_starts: int, mb_per_vcpu: int) -> tuple[SandboxBackend, str]:
    """The backend to run, and why it was chosen (said at start-up)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if network not in NETWORKS:
        raise ValueError(f"--sandbox-network must be one of {', '.join(NETWORKS)}, not {network!r}")
    reason = "requested with --sandbox"
    if name == "auto":
        unavailable = linux_unavailable()
        name = "process" if unavailable else "linux"
        reason = f"auto: the linux backend is unavailable ({unavailable})" if unavailable else "auto: the host allows it"
    if name == "linux":
        from lambdalet.sandbox.linux import LinuxSandbox

        unavailable = linux_unavailable()
        if unavailable:
            raise ValueError(f"the linux sandbox cannot run here: {unavailable}; use --sandbox process")
        return LinuxSandbox(data_dir, sdk, uid=uid, max_parallel_starts=max_parallel_starts,
                            mb_per_vcpu=mb_per_vcpu, isolated_network_by_default=network == "isolated"), reason
    if network == "isolated":
        raise ValueError("--sandbox-network isolated needs the linux sandbox backend, which is not in use")
    from lambdalet.sandbox.process import ProcessSandbox

    return ProcessSandbox(data_dir / "sandboxes", sdk), reason

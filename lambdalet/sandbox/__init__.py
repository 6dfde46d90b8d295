"""Sandbox backends: how an execution environment's runtime process is started and confined."""

from __future__ import annotations

from pathlib import Path

from lambdalet.sandbox.base import SandboxBackend


def create_backend(name: str, data_dir: Path) -> SandboxBackend:
    if name == "process":
        from lambdalet.sandbox.process import ProcessSandbox

        return ProcessSandbox(data_dir / "sandboxes")
    raise ValueError(f"unknown sandbox backend {name!r}; available: process")

"""The AWS SDK's bytecode is written for each runtime's interpreter, once (python_sdk.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from lambdalet.runtimes.python_sdk import PythonSdk

RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
TAG = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"


def fake_sdk(root: Path) -> PythonSdk:
    members = {}
    for package in ("boto3", "botocore"):
        (root / package).mkdir()
        (root / package / "__init__.py").write_text(f"NAME = {package!r}\n")
        (root / package / "client.py").write_text("def make():\n    return 1\n")
        members[package] = root / package
    return PythonSdk(root, (3, 9), "0", members)


def test_bytecode_is_written_for_the_runtimes_interpreter_and_only_once(tmp_path):
    sdk = fake_sdk(tmp_path)

    assert sdk.compile_bytecode(RUNTIME, sys.executable) is True

    for package in ("boto3", "botocore"):
        for module in ("__init__", "client"):
            assert (tmp_path / package / "__pycache__" / f"{module}.{TAG}.pyc").is_file()
    assert sdk.compile_bytecode(RUNTIME, sys.executable) is False  # already there: nothing started

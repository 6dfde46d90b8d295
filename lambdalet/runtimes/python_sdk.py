"""The AWS SDK that Python functions can import without bundling it, as on AWS Lambda.

A directory of links to the server's own installed boto3 and its pure-Python dependencies, placed
after the function's code and layers on `sys.path` by the bootstrap, so a function's bundled copy
always wins. It is offered only to runtimes the installed packages declare support for
(`Requires-Python`): older runtimes get no SDK rather than one that fails to import.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
#: Import name → distribution name.
SDK_MODULES = {"boto3": "boto3", "botocore": "botocore", "s3transfer": "s3transfer", "jmespath": "jmespath",
               "dateutil": "python-dateutil", "urllib3": "urllib3", "six": "six"}
_MIN_VERSION = re.compile(r">=\s*(\d+)\.(\d+)")


@dataclass(frozen=True)
class PythonSdk:
    path: Path
    min_python: tuple[int, int]
    boto3_version: str
    #: Name in the SDK directory → the installed package (or module file) it links to.
    members: dict[str, Path]

    def supports(self, runtime: str) -> bool:
        """Whether the SDK can run on a `python3.X` runtime."""
        major, minor = (int(part) for part in runtime.removeprefix("python").split("."))
        return (major, minor) >= self.min_python

    def compile_bytecode(self, runtime: str, interpreter: str) -> bool:
        """Write the SDK's bytecode for one runtime's interpreter, next to the installed packages,
        as pip does at install time for the interpreter it runs under; False if it was there already.

        Functions import the SDK from a read-only tree, where their interpreter cannot write the
        bytecode it compiles: without it, `import boto3` compiles boto3 and botocore at every cold
        start (1.2-1.7 s against 0.4 s for python3.12 on a 2-vCPU VM). A tree that is not writable
        is left as it is.
        """
        tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
        anchor = self.members.get("boto3")  # a reinstalled boto3 comes without the marker
        marker = (anchor / "__pycache__" / f".lambdalet-compiled.{tag}"
                  if anchor is not None and anchor.is_dir() else None)
        if marker is not None and marker.exists():
            return False
        subprocess.run([interpreter, "-m", "compileall", "-q", *(str(path) for path in self.members.values())],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       preexec_fn=lambda: os.nice(10), timeout=600, check=False)
        if marker is not None:  # whatever could be compiled was: not again at every start
            try:
                marker.touch()
            except OSError:
                pass
        return True


def compile_sdk_bytecode(sdk: PythonSdk, interpreters: list[tuple[str, str]]) -> None:
    """`PythonSdk.compile_bytecode` for every runtime's interpreter (run on a thread at start-up)."""
    for runtime, interpreter in interpreters:
        if sdk.supports(runtime):
            try:
                if sdk.compile_bytecode(runtime, interpreter):
                    log.info("compiled the AWS SDK's bytecode for %s", runtime)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("could not compile the AWS SDK's bytecode for %s: %s", runtime, exc)


def prepare_python_sdk(data_dir: Path) -> PythonSdk | None:
    target = data_dir / "runtime" / "python-sdk"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    min_python = (3, 0)
    members: dict[str, Path] = {}
    for module, distribution in SDK_MODULES.items():
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            log.warning("%s is not installed: Python functions will not find it on their path", module)
            return None
        source = Path(spec.origin)
        if source.name == "__init__.py":
            source = source.parent
        os.symlink(source, target / source.name)
        members[source.name] = source
        requires = importlib.metadata.metadata(distribution).get("Requires-Python") or ""
        match = _MIN_VERSION.search(requires)
        if match:
            min_python = max(min_python, (int(match[1]), int(match[2])))
    return PythonSdk(target, min_python, importlib.metadata.version("boto3"), members)

"""Runtime name → how to start an execution environment for it.

Python runtimes run Lambdalet's own stdlib-only bootstrap (`runtimes/python/bootstrap.py`) on a
host interpreter of exactly that version; `provided.*` runtimes run the function's `bootstrap`.
Interpreters are resolved once, to real binaries: shell shims (pyenv and friends) cost ~100 ms per
start and may not even resolve the version, so they are never used.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lambdalet.errors import InvalidParameterValueException, InvalidRuntimeException

PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
PROVIDED = ("provided", "provided.al2", "provided.al2023")
SUPPORTED = tuple(f"python{v}" for v in PYTHON_VERSIONS) + PROVIDED
# Runtime identifiers AWS Lambda knows but Lambdalet does not run (yet): refused with a clear reason.
KNOWN_ELSEWHERE = (
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x",
    "nodejs16.x", "nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x", "java8", "java8.al2", "java11",
    "java17", "java21", "java25", "python2.7", "python3.6", "python3.7", "python3.8", "python3.14",
    "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet6", "dotnet8", "dotnet10",
    "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "ruby3.2", "ruby3.3", "ruby3.4",
)
BOOTSTRAP_PY = Path(__file__).resolve().parent / "python" / "bootstrap.py"


@dataclass(frozen=True)
class Runtime:
    name: str
    #: Value of AWS_EXECUTION_ENV; AWS leaves it unset for custom runtimes.
    execution_env: str | None
    #: What INIT_START reports as "Runtime Version" (managed runtimes only).
    version_label: str | None
    interpreter: str | None = None

    @property
    def is_python(self) -> bool:
        return self.name.startswith("python")


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


class RuntimeRegistry:
    def __init__(self, configured_interpreters: tuple[str, ...] = ()) -> None:
        self._configured: dict[str, str] = {}
        for item in configured_interpreters:
            runtime, sep, path = item.partition("=")
            if not sep or runtime not in SUPPORTED or not runtime.startswith("python"):
                raise ValueError(f"--python-interpreter wants RUNTIME=PATH with a python3.X runtime, got {item!r}")
            self._configured[runtime] = path
        self._resolved: dict[str, Runtime] = {}

    def check(self, name: str) -> Runtime:
        """The runtime for a CreateFunction/UpdateFunctionConfiguration, or Lambda's 400 saying why not."""
        if name not in SUPPORTED:
            if name in KNOWN_ELSEWHERE:
                raise InvalidParameterValueException(
                    f"The runtime parameter of {name} is not supported by this Lambdalet server. "
                    f"Supported runtimes: {', '.join(SUPPORTED)}."
                )
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{name}' at 'runtime' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(SUPPORTED)}]"
            )
        try:
            return self.get(name)
        except InvalidRuntimeException as exc:
            raise InvalidParameterValueException(exc.message) from exc

    def get(self, name: str) -> Runtime:
        """The runtime for an invoke; a vanished interpreter is Lambda's 502 InvalidRuntimeException."""
        runtime = self._resolved.get(name)
        if runtime is None:
            runtime = self._resolve(name)
            self._resolved[name] = runtime
        return runtime

    def _resolve(self, name: str) -> Runtime:
        if name in PROVIDED:
            return Runtime(name, execution_env=None, version_label=None)
        version = name.removeprefix("python")
        interpreter = self._find_interpreter(name, version)
        if interpreter is None:
            raise InvalidRuntimeException(
                f"Runtime {name} needs a python{version} interpreter, which this server cannot find. "
                f"Install Python {version}, or point Lambdalet at one with "
                f"--python-interpreter {name}=/path/to/python{version} "
                f"(or LAMBDALET_PYTHON_INTERPRETER)."
            )
        return Runtime(name, f"AWS_Lambda_{name}", f"python:{version}.lambdalet", interpreter)

    def _find_interpreter(self, runtime: str, version: str) -> str | None:
        if runtime in self._configured:
            path = self._configured[runtime]
            return path if os.access(path, os.X_OK) else None
        exe = f"python{version}"
        candidates = [shutil.which(exe) or ""]
        pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/{exe}"), reverse=True)
        candidates += [f"/usr/local/bin/{exe}", f"/usr/bin/{exe}"]
        candidates += sorted(glob.glob(os.path.expanduser(f"~/.local/share/uv/python/cpython-{version}.*/bin/{exe}")))
        for candidate in candidates:
            if candidate and is_elf(os.path.realpath(candidate)):
                return os.path.realpath(candidate)
        return None

    def command(self, runtime: Runtime, task_root: str, code_dir: Path, sdk_dir: str | None,
                env: dict[str, str], opt_dir: str = "/opt", layers_dir: Path | None = None) -> list[str]:
        """The argv that starts the runtime, with paths as the function sees them (`task_root`, `opt_dir`).

        AWS_LAMBDA_EXEC_WRAPPER wraps managed runtimes as on AWS. A custom runtime's `bootstrap`
        is looked for in the function's code (`code_dir` on the host), then in its layers
        (`layers_dir` on the host), as Lambda looks at /var/task/bootstrap, then /opt/bootstrap.
        """
        if runtime.is_python:
            argv = [runtime.interpreter or "python3", "-S", "-s", str(BOOTSTRAP_PY)]
            if sdk_dir:
                argv.append(sdk_dir)
            wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
            return [wrapper, *argv] if wrapper else argv
        for host_dir, seen_as in ((code_dir, task_root), (layers_dir, opt_dir)):
            candidate = host_dir / "bootstrap" if host_dir is not None else None
            if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
                return [f"{seen_as}/bootstrap"]
        raise EntrypointNotFound([f"{task_root}/bootstrap", f"{opt_dir}/bootstrap"])


class EntrypointNotFound(Exception):
    """A custom runtime without an executable `bootstrap`: Lambda's Runtime.InvalidEntrypoint."""

    error_type = "Runtime.InvalidEntrypoint"

    def __init__(self, searched: list[str]) -> None:
        super().__init__(f"Couldn't find valid bootstrap(s): [{' '.join(searched)}]")
        self.searched = searched

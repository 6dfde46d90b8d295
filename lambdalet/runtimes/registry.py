"""Runtime name → how to start an execution environment for it.

Python runtimes run Lambdalet's own stdlib-only bootstrap (`runtimes/python/bootstrap.py`) on a
host interpreter of exactly that version; Node.js runtimes run its dependency-free bootstrap
(`runtimes/node/bootstrap.cjs`) on a host `node` of that major version; `provided.*` runtimes run
the function's `bootstrap`. Interpreters are resolved once, to real binaries: shell shims (pyenv,
nvm's wrappers and friends) cost ~100 ms per start and may not even resolve the version, so they
are never used.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lambdalet.errors import InvalidParameterValueException, InvalidRuntimeException
from lambdalet.model import runtime_version_arn

#: The runtimes this server runs: a new interpreter version is one entry here (and an interpreter
#: of that version on the host). Everything else about a runtime (its AWS_EXECUTION_ENV, how it is
#: found and started, its layer paths) follows from its family: python, nodejs or provided.
PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
NODE_VERSIONS = ("18", "20", "22", "24")
NODE = tuple(f"nodejs{v}.x" for v in NODE_VERSIONS)
PROVIDED = ("provided", "provided.al2", "provided.al2023")
SUPPORTED = tuple(f"python{v}" for v in PYTHON_VERSIONS) + NODE + PROVIDED


@functools.cache
def known_elsewhere() -> frozenset[str]:
    """Runtime identifiers AWS Lambda knows but Lambdalet does not run, refused with a clear reason.
    Taken from botocore's model (loaded on first use: the CLI should not pay for it), so a runtime
    AWS adds is known here without a change."""
    from lambdalet import service_model

    return frozenset(service_model.service_model("lambda").shape_for("Runtime").enum) - frozenset(SUPPORTED)


@functools.cache
def lambda_runtimes() -> tuple[str, ...]:
    """Every runtime identifier Lambda knows, sorted (a layer's CompatibleRuntimes may name any)."""
    return tuple(sorted(known_elsewhere() | frozenset(SUPPORTED)))
#: Runtimes AWS no longer lets a function be created or updated with (existing functions still run):
#: refused at CreateFunction/UpdateFunctionConfiguration with AWS's deprecation text.
DEPRECATED = ("provided", "python3.7", "python3.8", "nodejs12.x", "nodejs14.x", "nodejs16.x", "java8", "go1.x",
              "ruby2.7", "dotnetcore3.1")
BOOTSTRAP_PY = Path(__file__).resolve().parent / "python" / "bootstrap.py"
BOOTSTRAP_NODE = Path(__file__).resolve().parent / "node" / "bootstrap.cjs"
LAUNCHER = Path(__file__).resolve().parent / "extensions" / "launch.sh"  # starts /opt/extensions


@dataclass(frozen=True)
class Runtime:
    name: str
    #: Value of AWS_EXECUTION_ENV; AWS leaves it unset for custom runtimes.
    execution_env: str | None
    #: What INIT_START reports as "Runtime Version" (managed runtimes only).
    version_label: str | None
    interpreter: str | None = None
    #: Which build of the interpreter this is (`build_id`); "" for runtimes without one (provided.*).
    build: str = ""

    @property
    def is_python(self) -> bool:
        return self.name.startswith("python")

    @property
    def is_node(self) -> bool:
        return self.name.startswith("nodejs")

    @property
    def node_major(self) -> str:
        """"22" for nodejs22.x."""
        return self.name.removeprefix("nodejs").removesuffix(".x")


#: What runs a container image function: the image's own ENTRYPOINT, no runtime of Lambda's.
IMAGE_RUNTIME = Runtime("", execution_env=None, version_label=None)


def build_id(path: str) -> str:
    """An interpreter binary's identity: its real path, size and modification time. An upgrade
    in place (a new binary) or another interpreter is another build, so another runtime version."""
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
    except OSError:
        return ""
    return hashlib.sha256(f"{real}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def node_version(path: str) -> str | None:
    """`node --version` of a binary ("v20.11.1"), or None if it is not a working node."""
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    version = proc.stdout.strip()
    return version if proc.returncode == 0 and re.fullmatch(r"v\d+\.\d+\.\d+.*", version) else None


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key of an nvm-style path (…/v22.3.0/bin/node): its version numbers."""
    match = re.search(r"/v(\d+)\.(\d+)\.(\d+)/", path)
    return tuple(int(n) for n in match.groups()) if match else ()


class RuntimeRegistry:
    def __init__(self, configured_interpreters: tuple[str, ...] = (), configured_node: tuple[str, ...] = ()) -> None:
        self._configured: dict[str, str] = {}
        for item in configured_interpreters:
            runtime, sep, path = item.partition("=")
            if not sep or runtime not in SUPPORTED or not runtime.startswith("python"):
                raise ValueError(f"--python-interpreter wants RUNTIME=PATH with a python3.X runtime, got {item!r}")
            self._configured[runtime] = path
        for item in configured_node:
            runtime, sep, path = item.partition("=")
            if not sep or runtime not in NODE:
                raise ValueError(f"--node-binary wants RUNTIME=PATH with one of {', '.join(NODE)}, got {item!r}")
            self._configured[runtime] = path
        self._resolved: dict[str, Runtime] = {}
        self._node_versions: dict[str, str | None] = {}  # real path -> `node --version`

    def check(self, name: str) -> Runtime:
        """The runtime for a CreateFunction/UpdateFunctionConfiguration, or Lambda's 400 saying why not."""
        if name in DEPRECATED:
            raise InvalidParameterValueException(
                f"The runtime parameter of {name} is no longer supported for creating or updating AWS Lambda "
                "functions. We recommend you use a supported runtime while creating or updating functions.")
        if name not in SUPPORTED:
            if name in known_elsewhere():
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

    def version_arn(self, runtime: Runtime, region: str) -> str:
        """The runtime version ARN of one build (what INIT_START reports, what a pin names)."""
        return runtime_version_arn(region, runtime.name, runtime.build)

    def pinned(self, name: str, interpreter: str, arn: str, region: str) -> Runtime:
        """The build a function is pinned to (PutRuntimeManagementConfig Manual), checked at each
        cold start: still there, unchanged, else Lambda's 502 InvalidRuntimeException."""
        current = self.get(name)
        runtime = dataclasses.replace(current, interpreter=interpreter, build=build_id(interpreter)) \
            if current.interpreter else current
        if self.version_arn(runtime, region) != arn:
            raise InvalidRuntimeException(
                f"The runtime version {arn} this function is pinned to (UpdateRuntimeOn: Manual) is no longer "
                f"on this server: {interpreter or name} is gone or was replaced. Pin the current version "
                f"({self.version_arn(current, region)}) or set UpdateRuntimeOn to Auto.")
        return runtime

    def python_interpreters(self) -> list[tuple[str, str]]:
        """(runtime, interpreter) for every Python runtime this server can run."""
        found = []
        for version in PYTHON_VERSIONS:
            try:
                runtime = self.get(f"python{version}")
            except InvalidRuntimeException:
                continue
            if runtime.interpreter:
                found.append((runtime.name, runtime.interpreter))
        return found

    def _resolve(self, name: str) -> Runtime:
        if name in PROVIDED:
            return Runtime(name, execution_env=None, version_label=None)
        if name in NODE:
            major = name.removeprefix("nodejs").removesuffix(".x")
            binary = self._find_node(name, major)
            if binary is None:
                configured = self._configured.get(name)
                found = f"the configured {configured} is not an executable node binary" if configured \
                    else f"no node v{major}.x was found on PATH, in /usr/local/bin, /usr/bin or nvm's versions"
                raise InvalidRuntimeException(
                    f"Runtime {name} needs a Node.js {major} binary, which this server cannot find ({found}). "
                    f"Install Node.js {major}, or point Lambdalet at one with "
                    f"--node-binary {name}=/path/to/node (or LAMBDALET_NODE_BINARY)."
                )
            return Runtime(name, f"AWS_Lambda_{name}", f"nodejs:{major}.lambdalet", binary, build_id(binary))
        version = name.removeprefix("python")
        interpreter = self._find_interpreter(name, version)
        if interpreter is None:
            raise InvalidRuntimeException(
                f"Runtime {name} needs a python{version} interpreter, which this server cannot find. "
                f"Install Python {version}, or point Lambdalet at one with "
                f"--python-interpreter {name}=/path/to/python{version} "
                f"(or LAMBDALET_PYTHON_INTERPRETER)."
            )
        return Runtime(name, f"AWS_Lambda_{name}", f"python:{version}.lambdalet", interpreter, build_id(interpreter))

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

    def _find_node(self, runtime: str, major: str) -> str | None:
        """A real `node` binary of this major version: configured (taken as is), else searched."""
        if runtime in self._configured:
            path = os.path.realpath(self._configured[runtime])
            return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
        candidates = [shutil.which(exe) or "" for exe in (f"node{major}", "node", "nodejs")]
        candidates += [f"/usr/local/bin/node{major}", "/usr/local/bin/node", "/usr/bin/node", "/usr/bin/nodejs"]
        nvm_dir = os.environ.get("NVM_DIR", os.path.expanduser("~/.nvm"))
        candidates += sorted(glob.glob(f"{nvm_dir}/versions/node/v{major}.*/bin/node"), key=_version_key, reverse=True)
        for candidate in candidates:
            real = os.path.realpath(candidate) if candidate else ""
            if not real or not is_elf(real):
                continue
            if real not in self._node_versions:
                self._node_versions[real] = node_version(real)
            version = self._node_versions[real]
            if version is not None and version.startswith(f"v{major}."):
                return real
        return None

    @staticmethod
    def node_flags(memory_mb: int) -> list[str]:
        """V8 heap sizes from MemorySize, as AWS's Node.js bootstrap sets them (a tenth for the young
        generation, the rest for the old one), and its other flags."""
        new_space = memory_mb // 10
        return ["--expose-gc", "--max-http-header-size=81920", f"--max-semi-space-size={max(new_space // 2, 1)}",
                f"--max-old-space-size={memory_mb - new_space}"]

    def command(self, runtime: Runtime, task_root: str, code_dir: Path, sdk_dir: str | None,
                env: dict[str, str], opt_dir: str = "/opt", layers_dir: Path | None = None,
                with_extensions: bool = False) -> list[str]:
        """The argv that starts the runtime, with paths as the function sees them (`task_root`,
        `opt_dir`, and LAMBDA_RUNTIME_DIR in `env` for the Node.js bootstrap).

        AWS_LAMBDA_EXEC_WRAPPER wraps managed runtimes as on AWS (a wrapped Python runtime's SDK
        path is added to `env`). A custom runtime's `bootstrap` is looked for in the function's
        code (`code_dir` on the host), then in its layers (`layers_dir` on the host), as Lambda
        looks at /var/task/bootstrap, then /opt/bootstrap.

        `with_extensions`: the layers have external extensions (executables in /opt/extensions),
        started beside the runtime by `extensions/launch.sh`, which then execs the runtime.
        """
        argv = self._runtime_command(runtime, task_root, code_dir, sdk_dir, env, opt_dir, layers_dir,
                                     wrapped=with_extensions)
        if not with_extensions:
            return argv
        launcher = (f"{env['LAMBDA_RUNTIME_DIR']}/extensions/launch.sh" if env.get("LAMBDA_RUNTIME_DIR")
                    else str(LAUNCHER))  # as the function sees it, like the Python bootstrap's path
        return ["/bin/sh", launcher, f"{opt_dir}/extensions", *argv]

    def _runtime_command(self, runtime: Runtime, task_root: str, code_dir: Path, sdk_dir: str | None,
                         env: dict[str, str], opt_dir: str, layers_dir: Path | None, wrapped: bool) -> list[str]:
        """The runtime's own argv; `wrapped`: something execs it (it cannot run in-process)."""
        wrapper = self._exec_wrapper(env, task_root, opt_dir)
        if runtime.is_python:
            if wrapper or wrapped:
                # The wrapper execs the interpreter inside the environment, where the bootstrap is
                # under LAMBDA_RUNTIME_DIR, and the bootstrap is the last argument, as on AWS: AWS's
                # documented wrapper puts interpreter flags in before it. The SDK's path goes in
                # `env` instead (_LAMBDALET_PYTHON_SDK, which the bootstrap removes).
                bootstrap = (f"{env['LAMBDA_RUNTIME_DIR']}/python/bootstrap.py" if env.get("LAMBDA_RUNTIME_DIR")
                             else str(BOOTSTRAP_PY))
                if sdk_dir:
                    env["_LAMBDALET_PYTHON_SDK"] = sdk_dir
                argv = [runtime.interpreter or "python3", "-S", "-s", bootstrap]
                return [wrapper, *argv] if wrapper else argv
            # Unwrapped, the sandbox runs the bootstrap in-process, the SDK's path its argument.
            argv = [runtime.interpreter or "python3", "-S", "-s", str(BOOTSTRAP_PY)]
            if sdk_dir:
                argv.append(sdk_dir)
            return argv
        if runtime.is_node:
            memory_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128)
            runtime_dir = env.get("LAMBDA_RUNTIME_DIR") or str(BOOTSTRAP_NODE.parent.parent)
            argv = [runtime.interpreter or "node", *self.node_flags(memory_mb), f"{runtime_dir}/node/bootstrap.cjs"]
            return [wrapper, *argv] if wrapper else argv
        for host_dir, seen_as in ((code_dir, task_root), (layers_dir, opt_dir)):
            candidate = host_dir / "bootstrap" if host_dir is not None else None
            if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
                return [f"{seen_as}/bootstrap"]
        raise EntrypointNotFound([f"{task_root}/bootstrap", f"{opt_dir}/bootstrap"])


    @staticmethod
    def _exec_wrapper(env: dict[str, str], task_root: str, opt_dir: str) -> str | None:
        """AWS_LAMBDA_EXEC_WRAPPER as the function sees it: a path under /var/task or /opt is
        where the code or the layers are (only the process backend puts them elsewhere)."""
        wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
        if not wrapper:
            return None
        for seen_as, actual in (("/var/task/", task_root), ("/opt/", opt_dir)):
            if wrapper.startswith(seen_as) and actual.rstrip("/") != seen_as.rstrip("/"):
                return f"{actual.rstrip('/')}/{wrapper[len(seen_as):]}"
        return wrapper


@functools.cache
def launcher_script() -> str:
    """extensions/launch.sh's text, for `sh -c` where the file is out of reach (an image's root)."""
    return LAUNCHER.read_text()


class EntrypointNotFound(Exception):
    """A custom runtime without an executable `bootstrap`: Lambda's Runtime.InvalidEntrypoint."""

    error_type = "Runtime.InvalidEntrypoint"

    def __init__(self, searched: list[str]) -> None:
        super().__init__(f"Couldn't find valid bootstrap(s): [{' '.join(searched)}]")
        self.searched = searched

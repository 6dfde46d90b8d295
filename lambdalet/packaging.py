"""Turning a folder into a deployment package, and guessing what a folder holds.

`build_zip` skips what `.gitignore` and `.lambdaletignore` exclude (git's own rules, through
`pathspec`), plus version-control and cache directories nobody wants deployed. `guess_runtime` and
`guess_handler` give `lambdalet deploy` defaults so that a folder with one handler deploys with no
flags at all.
"""

from __future__ import annotations

import io
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import pathspec

IGNORE_FILES = (".gitignore", ".lambdaletignore")
ALWAYS_SKIPPED = (".git/", ".hg/", ".svn/", "__pycache__/", ".venv/", ".lambdalet/", ".DS_Store", "*.pyc")
#: Handler files and function names tried in order when --handler is not given.
PYTHON_HANDLERS = (("lambda_function.py", "lambda_handler"), ("app.py", "handler"), ("handler.py", "handler"),
                   ("main.py", "handler"), ("index.py", "handler"))
NODE_HANDLERS = ("index.mjs", "index.js", "index.cjs", "app.mjs", "app.js", "handler.mjs", "handler.js")


def _ignore_spec(root: Path) -> pathspec.PathSpec:
    lines = list(ALWAYS_SKIPPED)
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines.extend(path.read_text(errors="replace").splitlines())
    return pathspec.GitIgnoreSpec.from_lines(lines)


def package_files(root: Path) -> Iterator[Path]:
    """Every file of `root` that belongs in the package, in a stable order (paths relative to root)."""
    spec = _ignore_spec(root)
    for directory, dirs, files in os.walk(root):
        relative_dir = Path(directory).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(relative_dir / d).as_posix()}/"))
        for name in sorted(files):
            relative = relative_dir / name
            if name not in IGNORE_FILES and not spec.match_file(relative.as_posix()):
                yield relative


def build_zip(root: Path, progress: Callable[[int], None] | None = None) -> bytes:
    """The folder as a zip, file modes kept (an executable `bootstrap` stays executable);
    `progress(bytes)` is told about each file as it is added."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in package_files(root):
            path = root / relative
            info = zipfile.ZipInfo.from_file(path, relative.as_posix())
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            archive.writestr(info, data)
            if progress is not None:
                progress(len(data))
    return buffer.getvalue()


def guess_runtime(root: Path) -> str | None:
    if (root / "bootstrap").is_file():
        return "provided.al2023"
    if (root / "package.json").is_file() or any((root / name).is_file() for name in NODE_HANDLERS):
        return "nodejs20.x"
    if any(root.glob("*.py")):
        return f"python{sys.version_info.major}.{sys.version_info.minor}"
    return None


def guess_handler(root: Path, runtime: str) -> str | None:
    if runtime.startswith("provided"):
        return "bootstrap"
    if runtime.startswith("nodejs"):
        for name in NODE_HANDLERS:
            if (root / name).is_file():
                return f"{name.rsplit('.', 1)[0]}.handler"
        return None
    for file_name, function in PYTHON_HANDLERS:
        path = root / file_name
        if path.is_file() and re.search(rf"^(async\s+)?def\s+{function}\s*\(", path.read_text(errors="replace"), re.M):
            return f"{file_name[:-3]}.{function}"
    return None


def folder_size(root: Path) -> int:
    return sum((root / relative).stat().st_size for relative in package_files(root))

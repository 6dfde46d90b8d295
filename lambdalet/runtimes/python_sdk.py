"""The AWS SDK that Python functions can import without bundling it, as on AWS Lambda.

A directory of links to the server's own installed boto3 and its pure-Python dependencies, placed
after the function's code and layers on `sys.path` by the bootstrap, so a function's bundled copy
always wins.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
SDK_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def prepare_python_sdk(data_dir: Path) -> Path | None:
    target = data_dir / "runtime" / "python-sdk"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in SDK_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            log.warning("%s is not installed: Python functions will not find it on their path", name)
            continue
        source = Path(spec.origin)
        if source.name == "__init__.py":
            source = source.parent
        os.symlink(source, target / source.name)
    return target

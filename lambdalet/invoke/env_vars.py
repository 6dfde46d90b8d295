"""The environment variables a function sees (CONTRACT §5.1): defaults, the user's, then reserved."""

from __future__ import annotations

import os

from lambdalet.model import FunctionConfig
from lambdalet.runtimes.registry import Runtime

#: Server variables passed through to functions so their SDK calls reach the same endpoints, with
#: the same credentials, as the server's own (botocore's standard configuration variables).
PASSTHROUGH_PREFIXES = ("AWS_ENDPOINT_URL",)
PASSTHROUGH_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
OPT = "/opt"
#: Where AWS_XRAY_DAEMON_ADDRESS points, as on Lambda (no daemon listens: tracing is PassThrough).
XRAY_DAEMON_PORT = 2000


def passthrough_from(environ: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in environ.items()
        if k in PASSTHROUGH_NAMES or any(k == p or k.startswith(p + "_") for p in PASSTHROUGH_PREFIXES)
    }


def build_env(
    config: FunctionConfig,
    runtime: Runtime,
    *,
    region: str,
    runtime_api: str,
    task_root: str,
    runtime_dir: str,
    log_group: str,
    log_stream: str,
    passthrough: dict[str, str],
    initialization_type: str = "on-demand",
    opt_dir: str = OPT,
    image_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """`opt_dir` is where the function sees its layers: `/opt`, except under the process backend.
    `image_env`: a container image's ENV, over Lambda's defaults and under everything else."""
    env = {
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": f"/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:{opt_dir}/bin",
        "LD_LIBRARY_PATH": f"/var/lang/lib:/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:"
                           f"{task_root}:{task_root}/lib:{opt_dir}/lib",
    }
    if image_env:
        env.update(image_env)
    if runtime.is_node:
        env["NODE_PATH"] = (f"{opt_dir}/nodejs/node{runtime.node_major}/node_modules:{opt_dir}/nodejs/node_modules:"
                            f"{runtime_dir}/node_modules:{runtime_dir}:{task_root}")
    if runtime.is_python:  # set by AWS's Python runtime; a function may set its own
        env["PYTHONPATH"] = runtime_dir
    env.update(passthrough)
    env.update(config.environment)
    handler = config.handler
    if config.image is not None:  # an image's "handler" is its command, as AWS's base images read it
        command = config.image_config.get("Command", config.image.command)
        handler = command[0] if command else ""
    xray_host = runtime_api.rpartition(":")[0]  # AWS's daemon listens beside its Runtime API
    env.update(
        {
            "_HANDLER": handler,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": config.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": runtime_dir,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": f"{xray_host}:{XRAY_DAEMON_PORT}",
            "_AWS_XRAY_DAEMON_ADDRESS": xray_host,
            "_AWS_XRAY_DAEMON_PORT": str(XRAY_DAEMON_PORT),
        }
    )
    if runtime.is_python or runtime.is_node:  # what the shell that starts AWS's managed runtimes leaves
        env["PWD"] = task_root
        env["SHLVL"] = "0"
    if config.log_format == "JSON":  # read by AWS's runtime clients and ours
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        env["AWS_LAMBDA_LOG_LEVEL"] = config.application_log_level or "INFO"
    if runtime.execution_env:
        env["AWS_EXECUTION_ENV"] = runtime.execution_env
    if runtime.is_python:
        env["_LAMBDALET_RUNTIME_FRAMES"] = "1"  # our bootstrap's faster Runtime API (invoke/frames.py)
        if opt_dir != OPT:  # where our bootstrap finds /opt/python (the process backend's /opt)
            env["_LAMBDALET_OPT_DIR"] = opt_dir
        if config.hot_reload_dir:  # no bytecode caching in a directory that changes under us
            env["_LAMBDALET_HOT_RELOAD"] = "1"
    return env


def server_passthrough() -> dict[str, str]:
    return passthrough_from(dict(os.environ))

"""Layer rules that need no server: ARNs, the 250 MB limit, and the search paths layers add."""

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.invoke.env_vars import build_env
from lambdalet.layers import check_unzipped_size
from lambdalet.model import FunctionConfig, FunctionLayer, parse_layer_name, parse_layer_version_arn
from lambdalet.runtimes.registry import Runtime


def test_layer_arns_parse():
    ref = parse_layer_version_arn("arn:aws:lambda:us-east-1:123456789012:layer:my-layer:7")
    assert (ref.name, ref.version, ref.account, ref.region) == ("my-layer", 7, "123456789012", "us-east-1")
    assert parse_layer_version_arn("arn:aws:lambda:us-east-1:123456789012:layer:my-layer") is None
    assert parse_layer_name("arn:aws:lambda:us-east-1:123456789012:layer:my-layer").name == "my-layer"
    with pytest.raises(InvalidParameterValueException):
        parse_layer_name("not:a:layer")


def test_code_and_layers_together_are_limited_to_250_mb():
    layers = (FunctionLayer("arn", 1, "00", 200_000_000), FunctionLayer("arn2", 1, "11", 62_144_000))
    check_unzipped_size(0, layers)
    with pytest.raises(InvalidParameterValueException) as error:
        check_unzipped_size(1, layers)
    assert error.value.message == ("Function code combined with layers exceeds the maximum allowed size of "
                                   "262144000 bytes. The actual size is 262144001 bytes.")


def env_for(runtime: str, opt_dir: str = "/opt") -> dict[str, str]:
    config = FunctionConfig(name="f", runtime=runtime, handler="index.handler", role="r", code_sha256="00",
                            code_size=1)
    return build_env(config, Runtime(runtime, None, None), region="us-east-1", runtime_api="127.0.0.1:1",
                     task_root="/var/task", runtime_dir="/var/runtime", log_group="g", log_stream="s",
                     passthrough={}, opt_dir=opt_dir)


def test_search_paths_as_lambda_sets_them():
    env = env_for("nodejs20.x")
    assert env["PATH"] == "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"  # as on Lambda
    assert env["LD_LIBRARY_PATH"].endswith(":/var/task:/var/task/lib:/opt/lib")
    assert env["NODE_PATH"] == ("/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:"
                                "/var/runtime/node_modules:/var/runtime:/var/task")
    assert "NODE_PATH" not in env_for("python3.12") and "_LAMBDALET_OPT_DIR" not in env_for("python3.12")


def test_the_process_backend_points_the_search_paths_at_the_merged_layers():
    env = env_for("python3.12", opt_dir="/data/opt/abc")
    assert env["PATH"].endswith(":/data/opt/abc/bin") and env["LD_LIBRARY_PATH"].endswith(":/data/opt/abc/lib")
    assert env["_LAMBDALET_OPT_DIR"] == "/data/opt/abc"  # read (and removed) by the Python bootstrap

"""Under the process backend (no private root to put an image in), image functions are refused,
saying the linux sandbox is needed. The server here runs `--sandbox process` whatever the pass,
so this file runs in every pass of `make test`."""

from __future__ import annotations

import pytest

from conftest import ROLE, Server

from . import oci_support as oci
from .helpers import error_code_and_status


@pytest.fixture
def process_server(tmp_path):
    server = Server(tmp_path / "data", args=["--sandbox", "process"])  # the last --sandbox wins
    server.start()
    yield server
    server.stop()


def test_the_process_backend_refuses_image_functions(process_server, registry) -> None:
    oci.push_image(registry.client(), "process-refusal", "v1", [oci.busybox_layer(), oci.bootstrap_layer()],
                   oci.ImageSpec(entrypoint=["/var/task/bootstrap"], env={"PATH": "/bin"}))
    lam = process_server.client()
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as refused:
        lam.create_function(FunctionName="image-on-process", PackageType="Image", Role=ROLE,
                            Code={"ImageUri": f"{registry.host}/process-refusal:v1"})
    assert error_code_and_status(refused.value) == ("InvalidParameterValueException", 400)
    assert "linux" in refused.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="image-on-process")

"""Per-function network isolation: the `lambdalet:sandbox-network` tag.

Under the linux backend an environment either shares the host's network (`host`: it reaches
the internet, as a Lambda function outside a VPC does, and the server's own API) or gets a network
namespace of its own with only loopback (`isolated`: the Runtime API at 127.0.0.1:9001, as on
Lambda, and nothing else). `--sandbox-network` sets what functions get by default; a function
tagged `lambdalet:sandbox-network` = `host` or `isolated` gets that instead. Lambda's API has no
field for this (a VPC is a different thing), and tags are what infrastructure tools already set.
The tag is validated like any setting: a value the server cannot honour is refused, never stored
and ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from lambdalet.errors import InvalidParameterValueException

if TYPE_CHECKING:
    from lambdalet.sandbox.base import SandboxBackend

NETWORK_TAG = "lambdalet:sandbox-network"
MODES = ("host", "isolated")


def isolated(tags: Mapping[str, str], server_default: bool) -> bool:
    """Whether a function with these tags runs in an isolated network."""
    mode = tags.get(NETWORK_TAG)
    return server_default if mode is None else mode == "isolated"


def check(tags: Mapping[str, str], sandbox: "SandboxBackend", *, snap_start: bool) -> None:
    """Refuse a function's tags when its network setting cannot be honoured by `sandbox`."""
    mode = tags.get(NETWORK_TAG)
    if mode is not None and mode not in MODES:
        raise InvalidParameterValueException(
            f"Tag {NETWORK_TAG} must be one of {', '.join(MODES)}, not {mode!r}.")
    if mode == "isolated" and not sandbox.supports_network_isolation:
        raise InvalidParameterValueException(
            f"Tag {NETWORK_TAG}=isolated needs the linux sandbox backend, which this server does not use.")
    if snap_start and isolated(tags, sandbox.isolated_network_by_default):
        raise InvalidParameterValueException(
            "SnapStart needs the host network: environments restored from a snapshot share its network. "
            f"Tag the function {NETWORK_TAG}=host, or turn SnapStart off.")

"""Tenant isolation (TenancyConfig PER_TENANT): what Lambda refuses around it.

The isolation itself is the warm pools' key (invoke/pool.py: one pool per tenant id) and the
invocation's tenant id (invoke/types.py, the Runtime API's Lambda-Runtime-Aws-Tenant-Id header).
AWS documents the error type of these refusals (InvalidParameterValueException) but not their
exact words: docs/deviations.md.
"""

from __future__ import annotations

from lambdalet.errors import InvalidParameterValueException
from lambdalet.model import FunctionConfig

TENANT_MISSING = ("The invoked function has tenant isolation enabled (TenancyConfig PER_TENANT): "
                  "add a tenant ID (X-Amz-Tenant-Id) to the request and try again.")
TENANT_UNEXPECTED = ("The invoked function does not have tenant isolation enabled: "
                     "remove the tenant ID (X-Amz-Tenant-Id) from the request and try again.")


def not_supported(feature: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"{feature} is not supported for functions with tenant isolation.")


def refuse_with_tenancy(config: FunctionConfig, feature: str) -> None:
    """The features Lambda does not offer with tenant isolation (SnapStart, provisioned concurrency,
    function URLs, event source mappings): each invocation needs a tenant id they cannot give."""
    if config.tenant_isolation:
        raise not_supported(feature)

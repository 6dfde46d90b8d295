"""IAM's errors, with the codes and statuses of its service model and the words IAM answers with.

Raised by the IAM API (`api/iam.py`) and by its repository (`store/iam.py`, where a check and
the write it guards share one transaction); rendered as the query protocol's XML error.
"""

from __future__ import annotations


class IamError(Exception):
    """An IAM error: `code` and `status` as botocore's IAM model lists them."""

    code = "ServiceFailure"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoSuchEntity(IamError):
    code, status = "NoSuchEntity", 404


class EntityAlreadyExists(IamError):
    code, status = "EntityAlreadyExists", 409


class DeleteConflict(IamError):
    code, status = "DeleteConflict", 409


class LimitExceeded(IamError):
    code, status = "LimitExceeded", 409


class MalformedPolicyDocument(IamError):
    code, status = "MalformedPolicyDocument", 400


class InvalidInput(IamError):
    code, status = "InvalidInput", 400


class ValidationError(IamError):
    code, status = "ValidationError", 400


def no_such_user(name: str) -> NoSuchEntity:
    return NoSuchEntity(f"The user with name {name} cannot be found.")


def no_such_role(name: str) -> NoSuchEntity:
    return NoSuchEntity(f"The role with name {name} cannot be found.")


def no_such_inline_policy(kind: str, name: str) -> NoSuchEntity:
    """kind: "user" or "role"."""
    return NoSuchEntity(f"The {kind} policy with name {name} cannot be found.")


def no_such_access_key(access_key_id: str) -> NoSuchEntity:
    return NoSuchEntity(f"The Access Key with id {access_key_id} cannot be found")


def policy_not_found(arn: str) -> NoSuchEntity:
    return NoSuchEntity(f"Policy {arn} was not found.")


def policy_not_attachable(arn: str) -> NoSuchEntity:
    return NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")

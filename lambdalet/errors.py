"""Every error the Lambda API can answer with, each naming its HTTP status and error type once.

    LambdaError
     ├── InvalidParameterValueException      400
     ├── InvalidRequestContentException      400
     ├── ValidationException                 400   (a broken constraint of the service model)
     ├── AccessDeniedException               403   (a function calling more than Invoke; api/callers.py)
     ├── ResourceNotFoundException           404   (message member spelled `Message`)
     ├── ProvisionedConcurrencyConfigNotFoundException 404
     ├── ResourceConflictException           409
     ├── PreconditionFailedException         412
     ├── PolicyLengthExceededException       400
     ├── RequestTimeoutException             408   (a body not sent within --http-body-timeout)
     ├── RequestTooLargeException            413   (Invoke's payload)
     ├── RequestEntityTooLargeException      413   (any other operation's body)
     ├── UnsupportedMediaTypeException       415
     ├── TooManyRequestsException            429
     ├── UnknownOperationException           404 / 405 (a route or method we do not serve)
     ├── ServiceException                    500   (a bug of ours, never a client's mistake)
     └── InvalidRuntimeException             502   (the host cannot run the function's runtime)

Rendering (header `x-amzn-ErrorType` plus a JSON body with `Type` and the message) lives in
`lambdalet.api.errors`.
"""

from __future__ import annotations


class LambdaError(Exception):
    status: int = 400
    error_type: str = "LambdaError"
    #: The member name the botocore model uses for the message (most 4xx use lower-case).
    message_member: str = "message"
    fault: str = "User"

    def __init__(self, message: str, **extra: str) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, str]:
        return {"Type": self.fault, self.message_member: self.message, **self.extra}


class InvalidParameterValueException(LambdaError):
    status, error_type = 400, "InvalidParameterValueException"


class InvalidRequestContentException(LambdaError):
    status, error_type = 400, "InvalidRequestContentException"


class ValidationException(LambdaError):
    """Coral's answer for a member that breaks a modeled constraint (enum, pattern, range). It is
    not one of Lambda's modeled errors, so its body carries the message alone."""

    status, error_type = 400, "ValidationException"

    def body(self) -> dict[str, str]:
        return {"message": self.message}


class AccessDeniedException(LambdaError):
    status, error_type, message_member = 403, "AccessDeniedException", "Message"


class ResourceNotFoundException(LambdaError):
    status, error_type, message_member = 404, "ResourceNotFoundException", "Message"


class ProvisionedConcurrencyConfigNotFoundException(LambdaError):
    status, error_type = 404, "ProvisionedConcurrencyConfigNotFoundException"


class ResourceConflictException(LambdaError):
    status, error_type = 409, "ResourceConflictException"


class PreconditionFailedException(LambdaError):
    status, error_type = 412, "PreconditionFailedException"


class PolicyLengthExceededException(LambdaError):
    status, error_type = 400, "PolicyLengthExceededException"


def check_revision(given: str | None, current: str | None, read_with: str = "GetFunction/GetAlias") -> None:
    """A RevisionId precondition: absent, or the current revision (read with the `read_with` API)."""
    if given is not None and given != current:
        raise PreconditionFailedException(
            "The Revision Id provided does not match the latest Revision Id. "
            f"Call the {read_with} API to retrieve the latest Revision Id")


def check_active(state: str) -> None:
    """A function (or version) being created cannot be invoked (Invoke, InvokeAsync, streams,
    function URLs, event source mappings), as AWS answers Invoke."""
    if state != "Active":
        raise ResourceConflictException(
            f"The operation cannot be performed at this time. The function is currently in the following state: "
            f"{state}")


class RequestTimeoutException(LambdaError):
    """A client that did not finish sending its request body within --http-body-timeout."""

    status, error_type = 408, "RequestTimeoutException"


class RecursiveInvocationException(LambdaError):
    """A recursive loop was stopped (lambdalet/invoke/recursion.py)."""

    status, error_type, message_member = 400, "RecursiveInvocationException", "Message"


class RequestTooLargeException(LambdaError):
    status, error_type = 413, "RequestTooLargeException"


class RequestEntityTooLargeException(LambdaError):
    """Coral's answer for a body over an operation's request limit ("Request must be smaller than
    70167211 bytes for the CreateFunction operation"); not a modeled error: its body is the message."""

    status, error_type = 413, "RequestEntityTooLargeException"

    def body(self) -> dict[str, str]:
        return {"message": self.message}


class UnsupportedMediaTypeException(LambdaError):
    status, error_type = 415, "UnsupportedMediaTypeException"


class TooManyRequestsException(LambdaError):
    status, error_type = 429, "TooManyRequestsException"

    def __init__(self, message: str, reason: str, retry_after: int = 1) -> None:
        super().__init__(message, Reason=reason)
        self.headers["Retry-After"] = str(retry_after)


class UnknownOperationException(LambdaError):
    status, error_type = 404, "UnknownOperationException"

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class ServiceException(LambdaError):
    status, error_type, message_member, fault = 500, "ServiceException", "Message", "Service"


class InvalidRuntimeException(LambdaError):
    status, error_type, message_member, fault = 502, "InvalidRuntimeException", "Message", "Service"

"""Lambda's semantic rules on request bodies, with Lambda's exception types and messages.

Every constraint botocore's model states (lengths, patterns, enums, ranges, required members) is
checked before the handler runs, as Coral's ValidationException (`api/model_body.py`); what is left
here are Lambda's own rules (reserved environment keys, the 4 KB environment, the host's
architecture, at most 50 tags, log levels only with JSON) and its InvalidParameterValueException.
`Body` wraps the decoded body; its accessors still check types, for bodies the model check did not
see. Members Lambdalet does not implement yet are refused unless they are empty or hold the AWS
default: configuration that would silently have no effect is never accepted.
"""

from __future__ import annotations

import json
import platform
import re
from typing import Any

from lambdalet.errors import InvalidParameterValueException

RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)
ENV_LIMIT_BYTES = 4096
HANDLER = re.compile(r"^[^\s]+$")
ROLE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
HOST_ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine().lower()
)


def constraint_error(value: Any, member: str, constraint: str) -> InvalidParameterValueException:
    """Lambda's (Coral's) wording for a member that breaks a modeled constraint."""
    return InvalidParameterValueException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"Member must {constraint}"
    )


def _member(name: str) -> str:
    return name[0].lower() + name[1:]


class Body:
    """A request body being validated: each accessor checks one member and returns it."""

    def __init__(self, data: Any, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise InvalidParameterValueException("The request body must be a JSON object.")
        self.data = data
        self.prefix = prefix

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def path(self, name: str) -> str:
        return f"{self.prefix}{_member(name)}"

    def string(self, name: str, default: str | None = None, *, max_len: int | None = None,
               pattern: re.Pattern[str] | None = None, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise InvalidParameterValueException(f"{name} is required.")
            return default
        if not isinstance(value, str):
            raise constraint_error(value, self.path(name), "be a string")
        if max_len is not None and len(value) > max_len:
            raise constraint_error(value, self.path(name), f"have length less than or equal to {max_len}")
        if pattern is not None and not pattern.match(value):
            raise constraint_error(value, self.path(name), f"satisfy regular expression pattern: {pattern.pattern.strip('^$')}")
        return value

    def integer(self, name: str, default: int | None = None, *, low: int, high: int) -> int | None:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise constraint_error(value, self.path(name), "be an integer")
        if value < low:
            raise constraint_error(value, self.path(name), f"have value greater than or equal to {low}")
        if value > high:
            raise constraint_error(value, self.path(name), f"have value less than or equal to {high}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise constraint_error(value, self.path(name), "be a boolean")
        return value

    def struct(self, name: str) -> "Body | None":
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise constraint_error(value, self.path(name), "be a structure")
        return Body(value, prefix=f"{self.path(name)}.")

    def string_map(self, name: str) -> dict[str, str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise constraint_error(value, self.path(name), "be a map of strings to strings")
        return value

    def string_list(self, name: str) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise constraint_error(value, self.path(name), "be a list of strings")
        return value

    def refuse_unless_default(self, name: str, *defaults: Any, issue: str) -> None:
        """Refuse a member Lambdalet cannot honour yet, unless it is empty or the AWS default."""
        value = self.data.get(name)
        if value is None or value in defaults or _is_empty(value):
            return
        raise InvalidParameterValueException(
            f"{name} is not supported by this Lambdalet server yet ({issue}); "
            f"remove it or leave it at its default."
        )


def _is_empty(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_empty(v) for v in value.values())
    if isinstance(value, (list, str)):
        return len(value) == 0
    return False


def environment(body: Body) -> dict[str, str] | None:
    env_struct = body.struct("Environment")
    if env_struct is None:
        return None
    variables = env_struct.string_map("Variables") or {}
    reserved = sorted(k for k in variables if k in RESERVED_ENV_KEYS)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > ENV_LIMIT_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )
    return variables


def architectures(body: Body) -> tuple[str, ...] | None:
    values = body.string_list("Architectures")  # one of x86_64, arm64: the model's
    if not values:
        return None
    if values[0] != HOST_ARCHITECTURE:
        raise InvalidParameterValueException(
            f"Architectures [{values[0]}] cannot run on this {HOST_ARCHITECTURE} host; "
            f"use [{HOST_ARCHITECTURE}] (Lambdalet runs functions on the host's own architecture)."
        )
    return (values[0],)


def tags(body: Body) -> dict[str, str] | None:
    """Tags (their keys' and values' lengths and characters are the model's); at most 50, as
    recorded (test_tag_limits: create_function_invalid_tags)."""
    value = body.string_map("Tags")
    if value is None:
        return None
    if len(value) > MAX_TAGS:
        raise InvalidParameterValueException(TOO_MANY_TAGS)
    return value


MAX_TAGS = 50
TOO_MANY_TAGS = "Number of tags exceeds resource tag limit."


def logging_config(body: Body, current: dict[str, str] | None) -> dict[str, str] | None:
    """LoggingConfig: the members given replace the current ones; levels only with JSON, as on Lambda.

    Returns the FunctionConfig fields (log_format, application_log_level, system_log_level, log_group).
    """
    struct = body.struct("LoggingConfig")
    if struct is None:
        return None
    merged = dict(current or {"log_format": "Text", "application_log_level": "", "system_log_level": "",
                              "log_group": ""})

    log_format = struct.string("LogFormat")  # enums, the group's length and pattern: the model's
    app_level = struct.string("ApplicationLogLevel")
    system_level = struct.string("SystemLogLevel")
    group = struct.string("LogGroup")
    if log_format is not None:
        merged["log_format"] = log_format
    if merged["log_format"] == "Text":
        if app_level or system_level:
            raise InvalidParameterValueException(
                'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your request '
                'or change the LogFormat to "Json" and try again.')
        merged["application_log_level"] = merged["system_log_level"] = ""
    else:
        merged["application_log_level"] = app_level or merged["application_log_level"] or "INFO"
        merged["system_log_level"] = system_level or merged["system_log_level"] or "INFO"
    if group is not None:
        merged["log_group"] = group
    return merged


def refuse_unsupported_config(body: Body) -> None:
    """Configuration members that later issues implement; until then they must stay empty/default."""
    body.refuse_unless_default("VpcConfig", issue="VPC networking is not modelled")
    body.refuse_unless_default("KMSKeyArn", issue="KMS is not modelled")
    body.refuse_unless_default("FileSystemConfigs", issue="EFS is not modelled")
    body.refuse_unless_default("TracingConfig", {"Mode": "PassThrough"}, issue="X-Ray tracing is not modelled")
    refuse_unsupported_publishing(body)
    for member in ("CapacityProviderConfig", "DurableConfig", "RuntimeConfig", "AcceleratorConfig"):
        body.refuse_unless_default(member, issue="capacity providers, durable functions, customer-managed "
                                                 "runtimes and accelerators are not built yet")


def refuse_unsupported_publishing(body: Body) -> None:
    """`PublishTo` (CreateFunction, UpdateFunctionCode, PublishVersion) belongs to capacity providers."""
    body.refuse_unless_default("PublishTo", issue="capacity providers are not built yet")


def refuse_unsupported_code_storage(body: Body) -> None:
    """UpdateFunctionCode's storage members: only the default (a copy, unencrypted) is built."""
    body.refuse_unless_default("S3ObjectStorageMode", "COPY", issue="code is always stored as a copy")
    body.refuse_unless_default("SourceKMSKeyArn", issue="KMS is not modelled")
    refuse_unsupported_publishing(body)


def image_config(body: Body) -> dict[str, Any] | None:
    """ImageConfig (EntryPoint, Command, WorkingDirectory) as given; {} clears it. None: not given."""
    config = body.struct("ImageConfig")
    if config is None:
        return None
    result: dict[str, Any] = {}
    for name in ("EntryPoint", "Command"):
        values = config.string_list(name)  # lengths: the model's
        if values is not None:
            result[name] = values
    directory = config.string("WorkingDirectory")
    if directory is not None:
        result["WorkingDirectory"] = directory
    return result

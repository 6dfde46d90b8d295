"""Domain types (frozen dataclasses) and ARN parsing/formatting.

Nothing here does I/O: the store persists these types, the API renders them, the invoker runs them.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lambdalet.errors import InvalidParameterValueException

LATEST = "$LATEST"

_NAME = r"[a-zA-Z0-9-_]+"
_QUALIFIER = r"\$LATEST|[a-zA-Z0-9-_]+"
#: What the model's FunctionName pattern of the read and invoke operations allows today: `.` in
#: names, `$LATEST.PUBLISHED`, `eusc-` regions and the `-iso` partitions. (CreateFunction's own
#: pattern still forbids `.`, so such a name is never found, which is AWS's answer too.)
_FUNCTION = r"[a-zA-Z0-9-_\.]+"
_FUNCTION_QUALIFIER = r"\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9-_]+"
_REGION = r"(?:eusc-)?[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d"
_FULL_ARN = re.compile(
    rf"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>{_REGION}):"
    rf"(?P<account>\d{{12}}):function:(?P<name>{_FUNCTION})(?::(?P<qualifier>{_FUNCTION_QUALIFIER}))?$"
)
_PARTIAL_ARN = re.compile(
    rf"^(?P<account>\d{{12}}):function:(?P<name>{_FUNCTION})(?::(?P<qualifier>{_FUNCTION_QUALIFIER}))?$"
)
_BARE = re.compile(rf"^(?P<name>{_FUNCTION})(?::(?P<qualifier>{_FUNCTION_QUALIFIER}))?$")
_LAYER_ARN = (rf"arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{{2}}(?:-gov)?-[a-z]+-\d):"
              rf"(?P<account>\d{{12}}):layer:(?P<name>{_NAME})")
_LAYER_NAME = re.compile(rf"^(?:{_LAYER_ARN}|(?P<bare>{_NAME}))$")
_LAYER_VERSION_ARN = re.compile(rf"^{_LAYER_ARN}:(?P<version>[0-9]+)$")
#: Lambda's (Coral's) pattern for a layer version ARN, as its validation messages quote it.
LAYER_VERSION_ARN_PATTERN = (r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|"
                             r"(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)")


@dataclass(frozen=True)
class FunctionRef:
    """What a FunctionName path parameter names: a function, maybe qualified, maybe in an ARN."""

    name: str
    qualifier: str | None = None
    account: str | None = None
    region: str | None = None


def alias_of(qualifier: str | None) -> str:
    """The alias a qualifier names; "" when it names $LATEST, a version or nothing."""
    return "" if not qualifier or qualifier == LATEST or qualifier.isdigit() else qualifier


@functools.lru_cache(maxsize=4096)
def parse_function_name(raw: str) -> FunctionRef:
    """Parse a bare name, `name:qualifier`, a partial ARN or a full ARN (as Lambda accepts them).

    Cached: the invoke path parses the same few names over and over (failures are not cached).
    """
    for pattern, limit in ((_FULL_ARN, 140), (_PARTIAL_ARN, 140), (_BARE, 140)):
        match = pattern.match(raw)
        if match and len(raw) <= limit:
            groups = match.groupdict()
            if len(groups["name"]) > 64:
                break
            return FunctionRef(
                name=groups["name"],
                qualifier=groups.get("qualifier"),
                account=groups.get("account"),
                region=groups.get("region"),
            )
    raise InvalidParameterValueException(
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: "
        "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
        "(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
    )


@dataclass(frozen=True)
class Arns:
    """Formats ARNs for one account and region."""

    account: str
    region: str

    def function(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def layer(self, name: str, version: int | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:layer:{name}"
        return f"{arn}:{version}" if version is not None else arn


@dataclass(frozen=True)
class LayerRef:
    """What a LayerName path parameter or a layer version ARN names (account/region: ARN forms only)."""

    name: str
    version: int | None = None
    account: str | None = None
    region: str | None = None


def parse_layer_name(raw: str) -> LayerRef:
    """A layer name or layer ARN (LayerName of the layer APIs)."""
    match = _LAYER_NAME.match(raw)
    if match is None or len(raw) > 140:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{raw}' at 'layerName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: "
            "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
        )
    if match.group("bare"):
        return LayerRef(match.group("bare"))
    return LayerRef(match.group("name"), account=match.group("account"), region=match.group("region"))


def parse_layer_version_arn(raw: str) -> LayerRef | None:
    """A layer version ARN (`arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N`), or None if it is not one."""
    match = _LAYER_VERSION_ARN.match(raw)
    if match is None or len(raw) > 140:
        return None
    return LayerRef(match.group("name"), int(match.group("version")), match.group("account"), match.group("region"))


def now_iso() -> str:
    """Lambda's LastModified format: ISO-8601 with milliseconds and a +0000 offset."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def new_revision_id() -> str:
    return str(uuid.uuid4())


def sha256_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@dataclass(frozen=True)
class FunctionLayer:
    """One entry of a function's `Layers`: the layer version as it was when attached. The content
    hash stays with the function, so deleting the layer version never breaks it."""

    arn: str
    code_size: int
    code_sha256: str  # hex digest of the layer zip, its blob key
    unzipped_size: int

    def to_api(self) -> dict[str, Any]:
        return {"Arn": self.arn, "CodeSize": self.code_size}


def layers_key(layers: "tuple[FunctionLayer, ...]") -> str:
    """The content address of a list of layers, in order: what their merged /opt is cached by."""
    return hashlib.sha256("\n".join(layer.code_sha256 for layer in layers).encode()).hexdigest()


@dataclass(frozen=True)
class LayerVersion:
    """One published, immutable version of a layer."""

    name: str
    version: int
    code_sha256: str  # hex digest of the layer zip, its blob key
    code_size: int
    unzipped_size: int
    description: str = ""
    license_info: str | None = None
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    created: str = field(default_factory=now_iso)
    #: Which of CompatibleRuntimes/CompatibleArchitectures the publish gave: AWS echoes them, even empty.
    compatible_given: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["compatible_runtimes"] = list(self.compatible_runtimes)
        record["compatible_architectures"] = list(self.compatible_architectures)
        record["compatible_given"] = list(self.compatible_given)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "LayerVersion":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["compatible_runtimes"] = tuple(values.get("compatible_runtimes", ()))
        values["compatible_architectures"] = tuple(values.get("compatible_architectures", ()))
        values["compatible_given"] = tuple(values.get("compatible_given", ()))
        return cls(**values)

    def as_function_layer(self, arns: Arns) -> FunctionLayer:
        return FunctionLayer(arns.layer(self.name, self.version), self.code_size, self.code_sha256,
                             self.unzipped_size)

    def matches(self, runtime: str | None, architecture: str | None) -> bool:
        """ListLayers/ListLayerVersions filters: CompatibleRuntime and CompatibleArchitecture."""
        return ((runtime is None or runtime in self.compatible_runtimes)
                and (architecture is None or architecture in self.compatible_architectures))

    def to_list_item(self, arns: Arns) -> dict[str, Any]:
        """The LayerVersionsListItem shape."""
        item: dict[str, Any] = {
            "LayerVersionArn": arns.layer(self.name, self.version),
            "Version": self.version,
            "Description": self.description,
            "CreatedDate": self.created,
        }
        if self.compatible_runtimes or "CompatibleRuntimes" in self.compatible_given:
            item["CompatibleRuntimes"] = list(self.compatible_runtimes)
        if self.license_info is not None:
            item["LicenseInfo"] = self.license_info
        if self.compatible_architectures or "CompatibleArchitectures" in self.compatible_given:
            item["CompatibleArchitectures"] = list(self.compatible_architectures)
        return item

    def to_api(self, arns: Arns, location: str) -> dict[str, Any]:
        """The GetLayerVersion/PublishLayerVersion response shape."""
        return {
            "Content": {"Location": location, "CodeSha256": sha256_b64(self.code_sha256), "CodeSize": self.code_size},
            "LayerArn": arns.layer(self.name),
            **self.to_list_item(arns),
        }


@dataclass(frozen=True)
class FunctionImage:
    """A container image as a function's code: the URI given, the digest it resolved to once, and
    what the image config says to run (`lambdalet/images/store.py`)."""

    uri: str  # ImageUri as given (a tag, or a digest)
    resolved_uri: str  # repository@sha256:... of what the URI named when the code was set
    root_digest: str  # sha256:... of this host's platform manifest: the unpacked root's key
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    working_dir: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def digest_hex(self) -> str:
        """CodeSha256 of an image function: the hex digest of the manifest it resolved to, as AWS gives it."""
        return self.resolved_uri.rsplit("@sha256:", 1)[1]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "FunctionImage":
        return cls(**{**record, "entrypoint": tuple(record.get("entrypoint", ())),
                      "command": tuple(record.get("command", ()))})


IMAGE_CONFIG_MEMBERS = ("EntryPoint", "Command", "WorkingDirectory")


@dataclass(frozen=True)
class FunctionConfig:
    """One version's configuration and code (today only $LATEST). Immutable: updates make a new one."""

    name: str
    runtime: str
    handler: str
    role: str
    code_sha256: str  # hex digest of the deployment zip, which is also its blob key
    code_size: int
    description: str = ""
    timeout: int = 3
    memory_size: int = 128
    ephemeral_storage: int = 512
    environment: dict[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    version: str = LATEST
    package_type: str = "Zip"
    snap_start: str = "None"  # SnapStart.ApplyOn: "None" or "PublishedVersions"
    dead_letter_target: str = ""  # DeadLetterConfig.TargetArn: an SQS queue or SNS topic, "" for none
    #: Layers, in order (later ones override earlier files in /opt).
    layers: tuple[FunctionLayer, ...] = ()
    #: Hot reload: the host directory the code is read from, live, instead of a zip ("" for a zip),
    #: and the node whose host has it (the one the code was given through), where its invokes run.
    hot_reload_dir: str = ""
    hot_reload_node: str = ""
    #: PackageType Image: the image (None for a zip), and ImageConfig's overrides as the API gives them.
    image: FunctionImage | None = None
    image_config: dict[str, Any] = field(default_factory=dict)
    #: LoggingConfig: "Text" or "JSON"; the levels only with JSON ("" otherwise); "" = /aws/lambda/<name>.
    log_format: str = "Text"
    application_log_level: str = ""
    system_log_level: str = ""
    log_group: str = ""
    #: TenancyConfig.TenantIsolationMode: "PER_TENANT" or "" (none). Set at creation only, as on Lambda.
    tenant_isolation: str = ""
    #: A published version: the RevisionId of $LATEST it was published from (the no-op rule).
    source_revision: str = ""
    #: Lambda's states, kept with the configuration (so in the database): State "Pending" (just
    #: created or published) or "Active"; LastUpdateStatus "" (none yet: a function being created),
    #: "InProgress" or "Successful". `settled_revision` is the RevisionId it takes once settled
    #: (Active/Successful), chosen in advance so that a restart settles it the same way.
    state: str = "Active"
    last_update_status: str = "Successful"
    settled_revision: str = ""
    #: Environment was given (possibly with no variables): Lambda then echoes `{"Variables": {...}}`.
    environment_given: bool = False
    revision_id: str = field(default_factory=new_revision_id)
    last_modified: str = field(default_factory=now_iso)

    def replace(self, **changes: Any) -> "FunctionConfig":
        """A new configuration with a fresh RevisionId and LastModified, as every Lambda update makes."""
        changes.setdefault("revision_id", new_revision_id())
        changes.setdefault("last_modified", now_iso())
        return dataclasses.replace(self, **changes)

    @property
    def settled(self) -> bool:
        """Neither being created (Pending) nor being updated (InProgress)."""
        return self.state == "Active" and self.last_update_status != "InProgress"

    def unsettled(self, *, pending: bool) -> "FunctionConfig":
        """This configuration as Lambda answers a change with it: `pending` (created, or a version
        published from a function not yet settled) or with its update in progress."""
        states = {"state": "Pending", "last_update_status": ""} if pending else {"last_update_status": "InProgress"}
        return dataclasses.replace(self, **states, settled_revision=new_revision_id())

    def settle(self) -> "FunctionConfig":
        """Active, its last update Successful, with the RevisionId chosen for that (as AWS changes it)."""
        if self.settled:
            return self
        return dataclasses.replace(self, state="Active", last_update_status="Successful",
                                   revision_id=self.settled_revision or new_revision_id(), settled_revision="")

    def runs_as(self, other: "FunctionConfig") -> bool:
        """Whether `other` runs exactly as this configuration: they differ at most in their states and
        RevisionIds (a change settling, a version published from $LATEST), which no environment sees."""
        blank = dict.fromkeys(BOOKKEEPING, "")
        return dataclasses.replace(self, **blank) == dataclasses.replace(other, **blank)

    def to_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["architectures"] = list(self.architectures)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "FunctionConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["architectures"] = tuple(values.get("architectures", ("x86_64",)))
        values["layers"] = tuple(FunctionLayer(**layer) for layer in values.get("layers", ()))
        if values.get("image"):
            values["image"] = FunctionImage.from_record(values["image"])
        return cls(**values)

    def image_argv(self) -> list[str]:
        """An image function's process: ENTRYPOINT + CMD, each replaced by ImageConfig's when it has one."""
        assert self.image is not None
        entrypoint = self.image_config.get("EntryPoint", self.image.entrypoint)
        command = self.image_config.get("Command", self.image.command)
        return [*entrypoint, *command]

    @property
    def image_working_dir(self) -> str:
        assert self.image is not None
        return self.image_config.get("WorkingDirectory") or self.image.working_dir or "/"

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/aws/lambda/{self.name}"

    def logging_config(self) -> dict[str, str]:
        """LoggingConfig as Lambda echoes it: the levels only with the JSON format."""
        config = {"LogFormat": self.log_format}
        if self.log_format == "JSON":
            config["ApplicationLogLevel"] = self.application_log_level or "INFO"
            config["SystemLogLevel"] = self.system_log_level or "INFO"
        config["LogGroup"] = self.log_group_name
        return config

    def to_api(self, arns: Arns, qualifier: str | None = None, listed: bool = False) -> dict[str, Any]:
        """The FunctionConfiguration shape of Lambda's API. `qualifier`: what the ARN is qualified
        with (default: a published version's number; `$LATEST` or an alias where AWS names them).
        `listed`: the subset list operations give (no states, no RuntimeVersionConfig)."""
        if qualifier is None and self.version != LATEST:
            qualifier = self.version
        config: dict[str, Any] = {
            "FunctionName": self.name,
            "FunctionArn": arns.function(self.name, qualifier),
            "Runtime": self.runtime,
            "Role": self.role,
            "Handler": self.handler,
            "CodeSize": self.code_size,
            "Description": self.description,
            "Timeout": self.timeout,
            "MemorySize": self.memory_size,
            "LastModified": self.last_modified,
            "CodeSha256": sha256_b64(self.code_sha256),
            "Version": self.version,
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": self.revision_id,
            **self._states(),
            "PackageType": self.package_type,
            "Architectures": list(self.architectures),
            "EphemeralStorage": {"Size": self.ephemeral_storage},
            # $LATEST is never optimised (SnapStart applies to published versions), as AWS reports it
            "SnapStart": {"ApplyOn": self.snap_start, "OptimizationStatus":
                          "On" if self.snap_start == "PublishedVersions" and self.version != LATEST else "Off"},
            "RuntimeVersionConfig": {"RuntimeVersionArn": runtime_version_arn(arns.region, self.runtime)},
            "LoggingConfig": self.logging_config(),
        }
        if self.environment or self.environment_given:
            config["Environment"] = {"Variables": dict(self.environment)}
        if self.tenant_isolation:
            config["TenancyConfig"] = {"TenantIsolationMode": self.tenant_isolation}
        if self.dead_letter_target:
            config["DeadLetterConfig"] = {"TargetArn": self.dead_letter_target}
        if self.layers:
            config["Layers"] = [layer.to_api() for layer in self.layers]
        if self.image is not None:  # no runtime of Lambda's: no Runtime, Handler or runtime version
            for member in ("Runtime", "Handler", "RuntimeVersionConfig"):
                del config[member]
            config["CodeSha256"] = self.image.digest_hex
            if self.image_config:
                config["ImageConfigResponse"] = {"ImageConfig": dict(self.image_config)}
        if listed:
            for member in LISTED_WITHOUT:
                config.pop(member, None)
        return config

    def _states(self) -> dict[str, str]:
        states = {"State": self.state}
        if self.state == "Pending":
            states.update(StateReason=BEING_CREATED, StateReasonCode="Creating")
        if self.last_update_status:
            states["LastUpdateStatus"] = self.last_update_status
        if self.last_update_status == "InProgress":  # AWS's words, also for an update
            states.update(LastUpdateStatusReason=BEING_CREATED, LastUpdateStatusReasonCode="Creating")
        return states


BEING_CREATED = "The function is being created."
#: What FunctionConfig.runs_as ignores.
BOOKKEEPING = ("revision_id", "source_revision", "settled_revision", "state", "last_update_status")
#: What ListFunctions and ListVersionsByFunction leave out of a FunctionConfiguration (as AWS
#: documents: "use GetFunction" for them).
LISTED_WITHOUT = ("State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason",
                  "LastUpdateStatusReasonCode", "RuntimeVersionConfig")


@dataclass(frozen=True)
class Alias:
    """A name for a version, optionally splitting traffic with one more version by weight."""

    function_name: str
    name: str
    function_version: str
    description: str = ""
    #: AdditionalVersionWeights: at most one other published version and its share of traffic.
    weights: dict[str, float] = field(default_factory=dict)
    revision_id: str = field(default_factory=new_revision_id)

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Alias":
        return cls(**record)

    def to_api(self, arns: Arns) -> dict[str, Any]:
        result: dict[str, Any] = {
            "AliasArn": arns.function(self.function_name, self.name),
            "Name": self.name,
            "FunctionVersion": self.function_version,
            "Description": self.description,
            "RevisionId": self.revision_id,
        }
        if self.weights:
            result["RoutingConfig"] = {"AdditionalVersionWeights": dict(self.weights)}
        return result

    def pick_version(self, draw: float) -> str:
        """The version one invocation runs: the additional one with its weight's probability."""
        for version, weight in self.weights.items():
            if draw < weight:
                return version
        return self.function_version


def runtime_version_arn(region: str, runtime: str, build: str = "") -> str:
    """A runtime-version ARN (Lambda's has a 64-hex digest of the runtime build): of one build of
    the runtime's interpreter (`runtimes.registry.build_id`), or with none the runtime's own."""
    digest = hashlib.sha256(f"lambdalet:{runtime}:{build}".encode() if build else f"lambdalet:{runtime}".encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"

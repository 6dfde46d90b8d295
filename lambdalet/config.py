"""Every knob of the server in one place.

Each field is documented once, here; the CLI turns every field into a `lambdalet server --flag`, and
each can also be set as a `LAMBDALET_<NAME>` environment variable. `docs/configuration.md` lists them
all, and a test fails when one is missing there, so the docs cannot drift.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


API_ACCESS = ("invoke", "full")  # --sandbox-api-access (api/callers.py)
AUTH_MODES = ("open", "iam")  # --auth (api/authentication.py)
ROLE_CREDENTIALS = ("local", "upstream")  # --role-credentials (auth/execution_roles.py)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def knob(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help, **kwargs})


def parse_port_range(value: str) -> tuple[int, int] | None:
    """`FIRST-LAST` (or one port), or None for `none`: no listeners."""
    if value.strip().lower() == "none":
        return None
    first, _, last = value.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"--function-url-ports must be FIRST-LAST or none, not {value!r}") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"--function-url-ports {value!r} is not a range of ports (1-65535)")
    return low, high


@dataclass(frozen=True)
class Settings:
    host: str = knob("127.0.0.1", "Address the Lambda API listens on.")
    port: int = knob(9001, "Port of the Lambda API (and of function code downloads).")
    function_url_ports: str = knob(
        "9002-9999", "Ports function URLs get a listener of their own on (FIRST-LAST): each URL is given one "
        "at creation and keeps it, and FunctionUrl is http://<function-url-host>:<port>/, which every client "
        "reaches. 'none': no listeners; FunctionUrl is then http://<url-id>.lambda-url.<region>.localhost:<port>/ "
        "on the API port (which browsers resolve, and other clients reach with that Host header)."
    )
    function_url_host: str = knob(
        "", "Host name FunctionUrl gives for the URLs' own listeners; empty: --host, or 127.0.0.1 when the "
        "server listens on every address."
    )
    data_dir: Path = knob(Path(".lambdalet"), "Where the database, code blobs and logs live.")
    database_url: str = knob(
        "", "SQLAlchemy URL of the metadata store; empty means SQLite at <data-dir>/lambdalet.db."
    )
    account_id: str = knob("000000000000", "AWS account id used in every ARN.")
    auth: str = knob(
        "", "'open': any credentials act as the account's root (the default, allowed only while --host is a "
        "loopback address unless said explicitly); 'iam': every request must carry a valid SigV4 signature "
        "(the account's root key: LAMBDALET_ROOT_ACCESS_KEY_ID/LAMBDALET_ROOT_SECRET_ACCESS_KEY, "
        "--accounts-file, or keys generated at the first start into <data-dir>/root-credentials; an IAM "
        "user's; a role session's) and is authorised by IAM's policies, and functions act with their roles."
    )
    role_credentials: str = knob(
        "local", "Where functions' execution-role credentials come from: 'local' (minted by this server under "
        "--auth iam, for its own APIs; under --auth open functions get the server's own credentials) or "
        "'upstream' (sts:AssumeRole of the function's role on the STS the server's boto3 reaches, "
        "AWS_ENDPOINT_URL_STS or AWS itself, with the server's credentials: for AWS services elsewhere; "
        "destinations, dead-letter queues and event source mappings then act with the role too)."
    )
    accounts_file: str = knob(
        "", "TOML file naming accounts and their root access keys ([[account]] id, root_access_key_id, "
        "root_secret_access_key); only with --auth iam. It must list --account-id, whose Lambda resources "
        "the server keeps; the others have IAM of their own and reach those across accounts."
    )
    region: str = knob("us-east-1", "AWS region used in ARNs and given to functions as AWS_REGION.")
    hot_reload_bucket: str = knob(
        "hot-reload", "Code given as this S3Bucket, with an absolute directory as S3Key, is read live from that "
        "directory (hot reload, as LocalStack's magic bucket); edits retire the function's environments."
    )
    registry_config: str = knob(
        "", "Registry logins for container images (PackageType Image), as a Docker config.json (`auths`); "
        "empty means $DOCKER_CONFIG/config.json, else ~/.docker/config.json. ECR registries without an "
        "entry log in with ecr:GetAuthorizationToken (the server's AWS credentials)."
    )
    signing_profiles: str = knob(
        "", "A TOML file of the signing profiles code signing trusts: each profile version ARN's Ed25519 or "
        "ECDSA public key, optional expiry and revocation (docs/code-signing.md). Empty: none, so a code "
        "signing config with Enforce refuses every upload."
    )
    insecure_registries: str = knob(
        "", "Comma-separated registries (host:port) pulled from over plain HTTP; every other registry "
        "must serve verified TLS, except those on loopback addresses (always plain HTTP)."
    )
    sandbox: str = knob(
        "auto",
        "Execution-environment backend: 'linux' (namespaces, cgroups, private root; needs root), "
        "'process' (plain child processes, no isolation) or 'auto' (linux where the host allows it).",
    )
    sandbox_uid: int = knob(993, "Unprivileged uid (and gid) functions run as under the linux backend.")
    sandbox_network: str = knob(
        "host", "Default network of linux-backend environments: 'host' (shared with the server) or 'isolated' "
        "(a network namespace of their own with only loopback); a function's lambdalet:sandbox-network "
        "tag overrides it."
    )
    sandbox_api_access: str = knob(
        "invoke", "What function code may call on this server's API (reachable under the host network): "
        "'invoke' (Invoke and function URLs; everything else answers AccessDeniedException) or 'full' "
        "(every operation, as if the function's role allowed lambda:*). Enforced under the linux backend."
    )
    sandbox_mb_per_vcpu: int = knob(
        1769, "CPU share of linux-backend environments: this much MemorySize buys one vCPU (AWS: 1,769)."
    )
    http_idle_timeout: float = knob(
        60.0, "Seconds an API connection may go without a complete request head: idle between requests, or "
        "sending its headers slowly (slowloris); then the server closes it."
    )
    http_body_timeout: float = knob(
        60.0, "Seconds a client may take to send a request body once its headers are in; past it the request "
        "is answered 408 and its connection closed."
    )
    stream_response_limit_mb: int = knob(
        20, "Largest streamed response (InvokeWithResponseStream, RESPONSE_STREAM URLs) in MiB, 1-200: "
        "AWS's default is 20, raised to 200 where AWS allows it; past it the stream ends with "
        "Function.ResponseSizeTooLarge."
    )
    stream_bandwidth_mib_per_s: float = knob(
        2.0, "Bandwidth of a streamed response past its first 6 MiB, in MiB/s, as AWS caps it; 0 for no cap."
    )
    max_parallel_starts: int = knob(8, "How many execution environments may be starting at once.")
    snapstart_latest: bool = knob(
        False, "Apply SnapStart ({ApplyOn: PublishedVersions}) to $LATEST as well as to published versions."
    )
    keep_alive: float = knob(300.0, "Seconds an idle warm environment is kept before it is reaped.")
    init_timeout: float = knob(
        10.0, "Seconds an environment's init may take before the function's own timeout also runs."
    )
    max_timeout: int = knob(900, "Largest function Timeout accepted, in seconds (AWS: 900).")
    async_workers: int = knob(16, "How many asynchronous (Event) invocations run at once.")
    async_backoff_scale: float = knob(
        1.0, "Multiplies every asynchronous retry delay (Lambda's: 1 and 2 minutes after a function error; "
        "1 s to 5 min after a throttle); e.g. 0.01 makes retries take seconds."
    )
    account_concurrency: int = knob(1000, "The account's concurrent-execution limit (AWS's default: 1,000).")
    unreserved_concurrency_min: int = knob(
        100, "Concurrency reservations must leave at least this much unreserved (AWS: 100)."
    )
    memory_budget_mb: int = knob(
        0, "Most MemorySize all execution environments together may have; 0 means the host's RAM less "
        "a margin (the larger of 1 GB and 10 %)."
    )
    python_interpreter: tuple[str, ...] = knob(
        (),
        "Interpreter for a Python runtime, as RUNTIME=PATH (e.g. python3.12=/usr/bin/python3.12); "
        "repeatable. Others are found as pythonX.Y on PATH, in pyenv's versions, /usr/local/bin and "
        "/usr/bin; only real binaries count (shell shims are skipped).",
        multiple=True,
    )
    node_binary: tuple[str, ...] = knob(
        (),
        "node binary for a Node.js runtime, as RUNTIME=PATH (e.g. nodejs22.x=/opt/node22/bin/node); "
        "repeatable. Others are found by major version as node/nodejs on PATH, in /usr/local/bin, "
        "/usr/bin and nvm's versions; only real binaries count.",
        multiple=True,
    )
    runtime_api_host: str = knob(
        "127.0.0.1", "Address each environment's Runtime API listens on (AWS_LAMBDA_RUNTIME_API)."
    )
    log_retention_sweep_interval: float = knob(
        600.0, "Seconds between sweeps that delete function log events older than their log group's "
        "retention (PutRetentionPolicy). Reads never return such events, swept or not."
    )
    max_log_group_mb: int = knob(
        512, "Most disk space one log group's events may take, in MB. Past it the group's oldest streams "
        "that no environment writes any more are deleted, then new lines are dropped (each stream says "
        "so once). 0: no limit."
    )
    schedule_poll_interval: float = knob(
        5.0, "Seconds between the schedules' firing loop's reads of the soonest due schedule in the database "
        "(schedules written through this server wake it at once; the poll finds those other servers sharing "
        "the database wrote)."
    )
    changes_poll_interval: float = knob(
        0.5, "Seconds between this server's reads of the change log that the other servers sharing its "
        "database write (functions, versions, aliases, policies...). On PostgreSQL each change also "
        "NOTIFYs the others, which read it at once; the poll then only catches a missed notification."
    )
    log_level: str = knob("info", "Server log level: debug, info, warning or error.")
    node_name: str = knob(
        "", "This server's name among the servers sharing its database (`lambdalet nodes`, the leases it "
        "holds); empty: <hostname>:<port>. Each node's must be its own."
    )
    drain_timeout: float = knob(
        30.0, "Seconds a server stopped by SIGTERM or SIGINT waits for the requests and asynchronous "
        "invocations it is running to finish before it stops them; it takes no new work meanwhile and "
        "hands every lease it holds back to the database."
    )
    advertise_url: str = knob(
        "", "The URL other nodes and `lambdalet nodes` give for this server; empty: http://<host>:<port>, "
        "with 127.0.0.1 for a server that listens on every address."
    )

    @property
    def _reachable_host(self) -> str:
        """--host, or 127.0.0.1 for a server that listens on every address."""
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host

    @property
    def advertised_url_host(self) -> str:
        return self.function_url_host or self._reachable_host

    @property
    def resolved_node_name(self) -> str:
        import socket

        return self.node_name or f"{socket.gethostname()}:{self.port}"

    @property
    def resolved_advertise_url(self) -> str:
        return self.advertise_url or f"http://{self._reachable_host}:{self.port}"

    @property
    def auth_mode(self) -> str:
        return self.auth or "open"

    def __post_init__(self) -> None:
        if self.auth not in ("", *AUTH_MODES):
            raise ValueError(f"--auth must be one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        if not self.auth and self.host not in LOOPBACK_HOSTS:
            raise ValueError(f"--host {self.host or '(every address)'} reaches beyond this machine and the API "
                             "would not authenticate anyone: say --auth iam, or --auth open to serve it "
                             "unauthenticated on purpose")
        if self.accounts_file and self.auth_mode != "iam":
            raise ValueError("--accounts-file names root access keys, which only --auth iam checks: "
                             "add --auth iam, or leave the file out")
        if self.role_credentials not in ROLE_CREDENTIALS:
            raise ValueError(f"--role-credentials must be one of {', '.join(ROLE_CREDENTIALS)}, not "
                             f"{self.role_credentials!r}")
        if self.unreserved_concurrency_min > self.account_concurrency:
            raise ValueError("--unreserved-concurrency-min cannot exceed --account-concurrency")
        if self.sandbox_api_access not in API_ACCESS:
            raise ValueError(f"--sandbox-api-access must be one of {', '.join(API_ACCESS)}, not "
                             f"{self.sandbox_api_access!r}")
        if self.max_log_group_mb < 0:
            raise ValueError("--max-log-group-mb cannot be negative (0 means no limit)")
        parse_port_range(self.function_url_ports)  # raises ValueError, saying what is wrong
        if self.http_idle_timeout <= 0 or self.http_body_timeout <= 0:
            raise ValueError("--http-idle-timeout and --http-body-timeout must be positive")
        if not 1 <= self.stream_response_limit_mb <= 200:
            raise ValueError("--stream-response-limit-mb must be between 1 and 200")
        if self.stream_bandwidth_mib_per_s < 0:
            raise ValueError("--stream-bandwidth-mib-per-s cannot be negative (0 means no cap)")
        if self.drain_timeout < 0:
            raise ValueError("--drain-timeout cannot be negative")
        if self.schedule_poll_interval <= 0 or self.changes_poll_interval <= 0:
            raise ValueError("--schedule-poll-interval and --changes-poll-interval must be positive")
        if self.account_concurrency < 1 or self.max_parallel_starts < 1 or self.async_workers < 1:
            raise ValueError("--account-concurrency, --max-parallel-starts and --async-workers must be at least 1")

    @property
    def insecure_registry_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.insecure_registries.split(",") if r.strip())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'lambdalet.db'}"

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def env_name(cls, name: str) -> str:
        return "LAMBDALET_" + name.upper()

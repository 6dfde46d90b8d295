"""A client of the OCI distribution API (registry v2): pulling, and pushing what `lambdalet
push-image` builds.

Pulling is three kinds of GET — a manifest (maybe an image index, whose entry for this host's
architecture is then fetched), the image config and the layer blobs — plus the registries'
authentication handshake: a 401 names a Bearer token service (Docker Hub, GHCR, Harbor, GitLab,
distribution with token auth) or asks for Basic credentials. Written on urllib3 (botocore's own
HTTP library, so no new dependency): the Python registry libraries we looked at (oras-py) validate
every manifest against OCI's image-manifest schema and so refuse image indexes and Docker manifest
lists, and skopeo or crane would be programs outside `pip install`.

Credentials come from a Docker `config.json` (`auths`: `auth` as base64 `user:password`, or
`username`/`password`); for ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com`) without
an entry there, from `ecr:GetAuthorizationToken` through boto3. Registries on loopback addresses
and those listed as insecure are reached over plain HTTP; every other one over verified TLS.
Every manifest and blob is checked against its digest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import urllib3

from lambdalet.images.reference import DIGEST, ImageReference

log = logging.getLogger(__name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's own limit on a manifest
CHUNK = 1024 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """A pull that cannot succeed; the message says why, in words for the function's owner."""


class ManifestUnknown(RegistryError):
    """The registry has no such repository, tag or digest (a 404 for a manifest)."""


@dataclass
class Credentials:
    """Registry logins by host (`host[:port]`), as in a Docker config.json."""

    logins: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def from_docker_config(cls, path: Path | None) -> "Credentials":
        if path is None or not path.is_file():
            return cls()
        try:
            auths = json.loads(path.read_text()).get("auths", {})
        except (OSError, ValueError) as exc:
            raise ValueError(f"registry credentials {path}: {exc}") from exc
        logins = {}
        for host, entry in auths.items():
            host = re.sub(r"^https?://", "", host).split("/", 1)[0]
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            else:
                user, password = entry.get("username", ""), entry.get("password", "")
            if user:
                logins[host] = (user, password)
        return cls(logins)

    def for_registry(self, image: ImageReference, region: str) -> tuple[str, str] | None:
        login = self.logins.get(image.registry)
        if login is None and image.ecr_region is not None:
            login = ecr_login(image.ecr_region or region)
        return login


def default_docker_config() -> Path:
    """Where Docker's own clients keep logins: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def ecr_login(region: str) -> tuple[str, str]:
    import boto3
    import botocore.exceptions

    try:
        data = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, KeyError, IndexError) as exc:
        raise RegistryError(f"ecr:GetAuthorizationToken failed: {exc}") from exc
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password


class RegistrySession:
    """One repository's conversation: the connection pool, the login and the bearer token it got."""

    def __init__(self, image: ImageReference, login: tuple[str, str] | None, *, insecure: bool,
                 http: urllib3.PoolManager, scope: str = "pull") -> None:
        self.image = image
        self.login = login
        self.scope = scope  # what a token is asked for: "pull", or "pull,push" to push
        self.base = f"{'http' if insecure or image.is_loopback else 'https'}://{image.registry}/v2/{image.repository}"
        self._http = http
        self._authorization: str | None = None

    def manifest(self, reference: str) -> tuple[str, bytes, str]:
        """(media type, the exact bytes, their digest) of a manifest or index, digest-checked."""
        response = self._get(f"{self.base}/manifests/{reference}", accept=", ".join(MANIFESTS + INDEXES))
        try:
            body = response.read(MAX_MANIFEST_BYTES + 1)
        finally:
            response.release_conn()
        if len(body) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"the manifest of {self.image.repository}:{reference} is larger than 4 MB")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if DIGEST.match(reference) and digest != reference:
            raise RegistryError(f"the registry answered a manifest whose digest is {digest}, not {reference}")
        try:
            document = json.loads(body)
        except ValueError:
            raise RegistryError(f"the manifest of {self.image.repository}:{reference} is not JSON") from None
        media_type = document.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        return media_type, body, digest

    def blob_json(self, digest: str, limit: int = MAX_MANIFEST_BYTES) -> Any:
        """A small blob (the image config), digest-checked and parsed."""
        response = self._get(f"{self.base}/blobs/{digest}")
        try:
            body = response.read(limit + 1)
        finally:
            response.release_conn()
        if len(body) > limit or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"blob {digest} does not match its digest")
        try:
            return json.loads(body)
        except ValueError:
            raise RegistryError(f"blob {digest} is not JSON") from None

    def blob_to(self, digest: str, size: int, out: IO[bytes]) -> None:
        """Stream a layer blob into `out`, checking its size and digest as it comes."""
        response = self._get(f"{self.base}/blobs/{digest}")
        hasher, received = hashlib.sha256(), 0
        try:
            for chunk in response.stream(CHUNK):
                received += len(chunk)
                if received > size:
                    raise RegistryError(f"layer {digest} is larger than its manifest says ({size} bytes)")
                hasher.update(chunk)
                out.write(chunk)
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryError(f"layer {digest}: the download broke off: {exc}") from exc
        finally:
            response.release_conn()
        if "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"layer {digest} does not match its digest (received {received} of {size} bytes)")

    def push_blob(self, data: bytes) -> str:
        """Upload a blob (monolithic: one POST, one PUT) unless the repository has it; its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self._send("HEAD", f"{self.base}/blobs/{digest}", ok=(200, 404)).status == 200:
            return digest
        started = self._send("POST", f"{self.base}/blobs/uploads/", ok=(202,))
        location = started.headers.get("Location", "")
        if location.startswith("/"):
            location = self.base.split("/v2/", 1)[0] + location
        separator = "&" if "?" in location else "?"
        self._send("PUT", f"{location}{separator}digest={digest}", body=data, ok=(201,),
                   headers={"Content-Type": "application/octet-stream"})
        return digest

    def push_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        self._send("PUT", f"{self.base}/manifests/{tag}", body=body, ok=(201,), headers={"Content-Type": media_type})
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def _get(self, url: str, accept: str | None = None) -> urllib3.BaseHTTPResponse:
        return self._send("GET", url, headers={"Accept": accept} if accept else {})

    def _send(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
              ok: tuple[int, ...] = (200,)) -> urllib3.BaseHTTPResponse:
        """One request, authenticated as the registry's 401 challenge asks (once per session)."""
        headers = headers or {}
        response = self._request(method, url, headers, body)
        if response.status == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            response.drain_conn()
            self._authorization = self._authorize(challenge)
            response = self._request(method, url, headers, body)
        if response.status in ok:
            if method != "GET":
                response.drain_conn()
            return response
        answer = response.read(4096)
        response.release_conn()
        if response.status == 404 and "/manifests/" in url:
            raise ManifestUnknown(self._explain(response.status, answer))
        raise RegistryError(self._explain(response.status, answer))

    def _request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> urllib3.BaseHTTPResponse:
        if self._authorization:
            headers = {**headers, "Authorization": self._authorization}
        try:  # redirects (to a blob store) are followed; urllib3 drops Authorization across hosts
            return self._http.request(method, url, headers=headers, body=body, preload_content=False,
                                      redirect=method == "GET",
                                      retries=urllib3.Retry(total=3, connect=2, read=2, redirect=5))
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryError(f"cannot reach registry {self.image.registry}: {_reason(exc)}") from exc

    def _authorize(self, challenge: str) -> str:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if scheme.lower() == "basic":
            if self.login is None:
                raise RegistryError(f"registry {self.image.registry} needs credentials and none are configured for it "
                                    "(see --registry-config)")
            return "Basic " + base64.b64encode(":".join(self.login).encode()).decode()
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryError(f"registry {self.image.registry} asks for an unsupported authentication: {challenge!r}")
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        query.setdefault("scope", f"repository:{self.image.repository}:{self.scope}")
        headers = {}
        if self.login is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.login).encode()).decode()
        try:
            response = self._http.request("GET", params["realm"], fields=query, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryError(f"cannot reach the token service of {self.image.registry}: {_reason(exc)}") from exc
        if response.status != 200:
            raise RegistryError(f"registry {self.image.registry} refused a pull token "
                                f"({'credentials rejected' if self.login else 'no credentials configured'}, "
                                f"HTTP {response.status})")
        try:
            answer = response.json()
            return "Bearer " + (answer.get("token") or answer["access_token"])
        except (ValueError, KeyError):
            raise RegistryError(f"the token service of {self.image.registry} answered no token") from None

    def _explain(self, status: int, body: bytes) -> str:
        try:
            errors = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            detail = ""
        if status == 401:
            return (f"registry {self.image.registry} refused the credentials" if self.login else
                    f"registry {self.image.registry} needs credentials and none are configured for it "
                    "(see --registry-config)")
        if status == 403:
            return f"registry {self.image.registry} denied access to {self.image.repository}" + (f" ({detail})" if detail else "")
        return f"registry {self.image.registry} answered HTTP {status}" + (f" ({detail})" if detail else "")


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def new_pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(num_pools=8, timeout=urllib3.Timeout(connect=10, read=60))

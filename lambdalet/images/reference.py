"""Container image references (`ImageUri`): `host[:port]/repository[:tag][@sha256:digest]`.

Lambda takes ECR URIs only; Lambdalet takes a reference to any registry, parsed by Docker's
rules: the first component is the registry when it holds a `.` or a `:` or is `localhost`,
otherwise the image is on Docker Hub (`library/` for one-component names). A reference without a
tag or digest means `latest`.
"""

from __future__ import annotations

import ipaddress
import platform
import re
from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: `<account>.dkr.ecr.<region>.amazonaws.com`: registries whose password is an ECR authorization token.
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
#: This host's architecture as OCI and Docker name it (what an image index entry must say).
HOST_ARCHITECTURE = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine().lower())


class BadReference(ValueError):
    """Not an image reference."""


@dataclass(frozen=True)
class ImageReference:
    registry: str  # host[:port]
    repository: str
    tag: str | None = None
    digest: str | None = None  # "sha256:<hex>"

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def host(self) -> str:
        """The registry's host name, without the port (for loopback and ECR checks)."""
        host = self.registry
        if host.startswith("["):
            return host[1:host.index("]")]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def ecr_region(self) -> str | None:
        match = ECR_HOST.match(self.host)
        return match.group("region") if match else None

    def by_digest(self, digest: str) -> str:
        """This image pinned to `digest` (Lambda's ResolvedImageUri)."""
        return f"{self.registry}/{self.repository}@{digest}"


def parse(uri: str) -> ImageReference:
    rest, digest = uri, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST.match(digest):
            raise BadReference(f"{digest!r} is not a sha256 digest")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest if "/" in rest else f"library/{rest}"
    tag = None
    if ":" in path:
        path, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise BadReference(f"{tag!r} is not a valid tag")
    if not _REPOSITORY.match(path) or len(path) > 255:
        raise BadReference(f"{path!r} is not a valid repository name")
    return ImageReference(registry, path, tag, digest)

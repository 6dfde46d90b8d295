"""OCI images for the tests, without Docker: a real registry (Debian's `docker-registry`, i.e.
distribution v2.8) run on a free loopback port, layers built as deterministic tar.gz in memory,
image configs, OCI and Docker manifests and indexes, and a small registry v2 client (urllib, plain
HTTP) that pushes them and pulls them back.

Nothing here imports `lambdalet`: the images are made the way any other tool would make them, so
the server's pulling and unpacking is tested against independent bytes.

What distribution 2.8 refuses on push (found by pushing, see test_oci_support.py):
- a blob whose bytes do not match the `digest=` of the upload's PUT (400 DIGEST_INVALID), so a
  layer whose content differs from its digest can never be stored under that digest;
- a schema 2 / OCI manifest naming a layer or config blob the repository does not have
  (400 MANIFEST_BLOB_UNKNOWN), so a manifest pointing at a missing layer cannot be pushed either;
- an index / manifest list naming a manifest the repository does not have (400 MANIFEST_BLOB_UNKNOWN).
It does NOT check that a layer blob is a valid gzip or tar, that a descriptor's `size` is the
blob's size, nor that the config's `diff_ids` match the layers: those are the hostile images the
tests can actually serve (a truncated gzip is a perfectly valid blob to the registry).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
#: media types by manifest format: (manifest, index, config, layer)
FORMATS = {
    "oci": (OCI_MANIFEST, OCI_INDEX, OCI_CONFIG, OCI_LAYER),
    "docker": (DOCKER_MANIFEST, DOCKER_LIST, DOCKER_CONFIG, DOCKER_LAYER),
}
REGISTRY_BINARY = "/usr/bin/docker-registry"
BUSYBOX = "/bin/busybox"
INSTALL_HINT = ("run scripts/ensure-test-packages (as root it installs it), or "
                "apt-get install docker-registry busybox-static apache2-utils")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The registry process


def registry_binary() -> str:
    """The docker-registry binary, or an AssertionError naming the missing package and its install."""
    path = shutil.which("docker-registry") or (REGISTRY_BINARY if os.access(REGISTRY_BINARY, os.X_OK) else None)
    if not path:
        raise AssertionError("the container-image tests need an OCI registry: Debian's `docker-registry` package "
                             f"(/usr/bin/docker-registry) is not installed; {INSTALL_HINT}")
    return path


def htpasswd_line(user: str, password: str) -> str:
    """`user:<bcrypt hash>`, the only htpasswd format distribution accepts: from the `bcrypt` module,
    else the C library's crypt(3) (Python < 3.13), else `htpasswd -nbB` (apache2-utils)."""
    try:
        import bcrypt  # type: ignore[import-not-found]

        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
    except ImportError:
        pass
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # type: ignore[import-not-found]
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32))
        if hashed and hashed.startswith("$2"):
            return f"{user}:{hashed}"
    except (ImportError, AttributeError, OSError):
        pass
    htpasswd = shutil.which("htpasswd")
    if not htpasswd:
        raise AssertionError("a bcrypt htpasswd line is needed for the registry with a login and neither Python's "
                             "bcrypt/crypt nor `htpasswd` is available: apt-get install apache2-utils "
                             "(scripts/ensure-test-packages does)")
    out = subprocess.run([htpasswd, "-nbB", "-C", "5", user, password], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Registry:
    """`docker-registry serve` on a free port of 127.0.0.1, filesystem storage under `root`; with
    `login=(user, password)` every request needs HTTP Basic auth (htpasswd, bcrypt)."""

    def __init__(self, root: Path, login: tuple[str, str] | None = None) -> None:
        self.root = root
        self.login = login
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.log_path = root / "registry.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Registry":
        binary = registry_binary()
        self.root.mkdir(parents=True, exist_ok=True)
        config = [
            "version: 0.1",
            "log: {level: info, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'storage'}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: '{self.host}'}}",
        ]
        if self.login:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(htpasswd_line(*self.login) + "\n")
            config.append(f"auth: {{htpasswd: {{realm: lambdalet-tests, path: {htpasswd}}}}}")
        config_path = self.root / "config.yml"
        config_path.write_text("\n".join(config) + "\n")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"docker-registry exited with {self.proc.returncode}:\n{self.log_text()}")
            try:  # /v2/ answers 200, or 401 when a login is needed: either means it is serving
                status = urllib.request.urlopen(self.url + "/v2/", timeout=1).status
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError:
                status = None
            if status in (200, 401):
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"docker-registry did not answer GET /v2/ within {timeout} s:\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem storage keeps a blob's bytes."""
        algorithm, hexdigest = digest.split(":", 1)
        return self.root / "storage" / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"

    def corrupt_blob(self, digest: str, data: bytes) -> None:
        """Replace a stored blob's bytes behind the registry's back: it then serves `data` under
        `digest` (distribution does not re-check digests when serving), as a compromised registry
        or a man in the middle would."""
        path = self.blob_path(digest)
        assert path.is_file(), f"the registry has no blob {digest}"
        path.write_bytes(data)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, login: tuple[str, str] | None | bool = True) -> "RegistryClient":
        """A client of this registry: with its login (default), or `login=None` for an anonymous one."""
        return RegistryClient(self.host, self.login if login is True else (login or None))

    def docker_config_entry(self) -> dict:
        """This registry's entry for a Docker config.json's `auths`."""
        assert self.login, "this registry needs no login"
        return {self.host: {"auth": base64.b64encode(":".join(self.login).encode()).decode()}}


class RegistryHTTPError(Exception):
    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:500].decode(errors='replace')}")
        self.status = status
        self.body = body

    @property
    def codes(self) -> list[str]:
        """The distribution error codes of the answer (e.g. ['MANIFEST_BLOB_UNKNOWN'])."""
        try:
            return [e.get("code") for e in json.loads(self.body).get("errors", [])]
        except ValueError:
            return []


class RegistryClient:
    """The registry v2 API over plain HTTP, with urllib: monolithic blob uploads, manifests, pulls."""

    def __init__(self, host: str, login: tuple[str, str] | None = None) -> None:
        self.host = host
        self.base = f"http://{host}"
        self.login = login

    def request(self, method: str, path_or_url: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); raises RegistryHTTPError for any status >= 400."""
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        headers = dict(headers or {})
        if self.login:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.login).encode()).decode()
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            raise RegistryHTTPError(method, url, err.code, err.read()) from None

    def push_blob(self, repository: str, data: bytes, digest: str | None = None) -> str:
        """POST /v2/<name>/blobs/uploads/ then PUT <Location>&digest=...; the blob's digest.
        `digest` claims another digest than the data's (the registry refuses that: DIGEST_INVALID)."""
        digest = digest or sha256_digest(data)
        _, headers, _ = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        location = headers["Location"]
        separator = "&" if "?" in location else "?"
        status, _, _ = self.request("PUT", f"{location}{separator}digest={digest}", data=data,
                                    headers={"Content-Type": "application/octet-stream"})
        assert status == 201, status
        return digest

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT /v2/<name>/manifests/<tag or digest>; the manifest's digest (checked against the registry's)."""
        status, headers, _ = self.request("PUT", f"/v2/{repository}/manifests/{reference}", data=body,
                                          headers={"Content-Type": media_type})
        assert status == 201, status
        digest = sha256_digest(body)
        assert headers.get("Docker-Content-Digest") == digest, (headers, digest)
        return digest

    def manifest(self, repository: str, reference: str) -> tuple[str, bytes, str]:
        """(Content-Type, exact bytes, Docker-Content-Digest) of a manifest or index."""
        accept = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
        _, headers, body = self.request("GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": accept})
        return headers.get("Content-Type", ""), body, headers.get("Docker-Content-Digest", "")

    def blob(self, repository: str, digest: str) -> bytes:
        return self.request("GET", f"/v2/{repository}/blobs/{digest}")[2]

    def delete_blob(self, repository: str, digest: str) -> None:
        """DELETE a blob (the registry runs with storage.delete enabled): manifests naming it stay."""
        self.request("DELETE", f"/v2/{repository}/blobs/{digest}")

    def tags(self, repository: str) -> list[str]:
        return json.loads(self.request("GET", f"/v2/{repository}/tags/list")[2]).get("tags") or []


# --------------------------------------------------------------------------------------------
# Layers


@dataclass(frozen=True)
class Member:
    """One tar member of a layer. kind: file, dir, symlink, hardlink, char, block, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""  # link target for symlink/hardlink
    uid: int = 0
    gid: int = 0
    devmajor: int = 0
    devminor: int = 0


def file(name: str, data: bytes | str, mode: int = 0o644) -> Member:
    return Member(name, "file", data.encode() if isinstance(data, str) else data, mode)


def directory(name: str, mode: int = 0o755) -> Member:
    return Member(name, "dir", mode=mode)


def symlink(name: str, target: str) -> Member:
    return Member(name, "symlink", mode=0o777, target=target)


def hardlink(name: str, target: str) -> Member:
    return Member(name, "hardlink", target=target)


def device(name: str, kind: str = "char", major: int = 1, minor: int = 3, mode: int = 0o666) -> Member:
    return Member(name, kind, mode=mode, devmajor=major, devminor=minor)


def whiteout(path: str) -> Member:
    """An OCI whiteout: `dir/.wh.name` deletes `dir/name` of the layers below."""
    parent, _, name = path.strip("/").rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"")


def opaque_whiteout(dir_path: str) -> Member:
    """`dir/.wh..wh..opq`: `dir` shows none of the lower layers' entries (only this layer's)."""
    return file(f"{dir_path.strip('/')}/.wh..wh..opq", b"")


_KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
          "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}


def tar_bytes(members: Iterable[Member]) -> bytes:
    """An uncompressed tar of `members`, in the given order, byte-for-byte reproducible
    (mtime 0, no user/group names, PAX format). Names are written as given: `../x` stays `../x`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = _KINDS[member.kind]
            info.mode, info.uid, info.gid, info.mtime = member.mode, member.uid, member.gid, 0
            info.uname = info.gname = ""
            info.linkname = member.target
            info.devmajor, info.devminor = member.devmajor, member.devminor
            if member.kind == "file":
                info.size = len(member.data)
                archive.addfile(info, io.BytesIO(member.data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


@dataclass(frozen=True)
class Layer:
    """A layer blob as pushed (`blob`, usually tar.gz) and its image-config diff_id (sha256 of the tar)."""

    blob: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.blob)

    @property
    def size(self) -> int:
        return len(self.blob)


def layer(members: Iterable[Member], compresslevel: int = 6) -> Layer:
    """A deterministic tar.gz layer of `members` (gzip mtime 0, no file name in the header)."""
    raw = tar_bytes(members)
    return Layer(gzip.compress(raw, compresslevel=compresslevel, mtime=0), sha256_digest(raw))


def tree_members(root: Path, at: str, *, skip: Iterable[str] = ()) -> list[Member]:
    """The files, directories and symlinks under host directory `root`, placed under `at` in the
    image (parents of `at` included), sorted; names whose path parts match `skip` are left out."""
    skip = set(skip)
    prefix = at.strip("/")
    members = [directory("/".join(Path(prefix).parts[:i])) for i in range(1, len(Path(prefix).parts) + 1)]
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(dirs) + sorted(f for f in files if f not in skip):
            path = Path(dirpath) / name
            inside = "/".join(p for p in (prefix, path.relative_to(root).as_posix()) if p)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                members.append(symlink(inside, os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                members.append(directory(inside, st.st_mode & 0o755))
            elif stat.S_ISREG(st.st_mode):
                members.append(file(inside, path.read_bytes(), st.st_mode & 0o755))
    return members


# --------------------------------------------------------------------------------------------
# Image config, manifests, indexes


@dataclass
class ImageSpec:
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    architecture: str = "amd64"
    os: str = "linux"


def image_config(layers: list[Layer], spec: ImageSpec) -> bytes:
    """The image config JSON: architecture, os, config (Entrypoint/Cmd/Env/WorkingDir), rootfs.diff_ids."""
    run: dict = {"Env": [f"{k}={v}" for k, v in spec.env.items()]}
    if spec.entrypoint is not None:
        run["Entrypoint"] = spec.entrypoint
    if spec.cmd is not None:
        run["Cmd"] = spec.cmd
    if spec.working_dir:
        run["WorkingDir"] = spec.working_dir
    return json.dumps({"architecture": spec.architecture, "os": spec.os, "config": run,
                       "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]}},
                      sort_keys=True).encode()


def manifest_document(config: bytes, layers: list[Layer], fmt: str = "oci", *,
                      layer_descriptors: list[dict] | None = None) -> bytes:
    """An OCI image manifest or a Docker v2 schema 2 manifest (`fmt` "oci"/"docker") of `config` and
    `layers`; `layer_descriptors` replaces the layers' descriptors (to lie about digests or sizes)."""
    manifest_type, _, config_type, layer_type = FORMATS[fmt]
    descriptors = layer_descriptors if layer_descriptors is not None else [
        {"mediaType": layer_type, "digest": lay.digest, "size": lay.size} for lay in layers]
    return json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                       "config": {"mediaType": config_type, "digest": sha256_digest(config), "size": len(config)},
                       "layers": descriptors}, indent=2).encode()


def push_image(client: RegistryClient, repository: str, tag: str, layers: list[Layer], spec: ImageSpec | None = None,
               fmt: str = "oci", *, layer_descriptors: list[dict] | None = None) -> str:
    """Push the layers, the config and a manifest (OCI or Docker schema 2) tagged `tag` (a tag or
    "sha256:..." to push by digest only); the manifest's digest."""
    spec = spec or ImageSpec()
    for lay in layers:
        client.push_blob(repository, lay.blob)
    config = image_config(layers, spec)
    client.push_blob(repository, config)
    body = manifest_document(config, layers, fmt, layer_descriptors=layer_descriptors)
    return client.push_manifest(repository, tag, body, FORMATS[fmt][0])


def push_index(client: RegistryClient, repository: str, tag: str, platforms: list[tuple[str, list[Layer], ImageSpec]],
               fmt: str = "oci") -> tuple[str, dict[str, str]]:
    """One image per (architecture, layers, spec), pushed by digest, then an OCI image index or a
    Docker manifest list of them tagged `tag`; (the index's digest, {architecture: manifest digest})."""
    manifest_type, index_type, _, _ = FORMATS[fmt]
    entries, digests = [], {}
    for architecture, layers, spec in platforms:
        spec = ImageSpec(**{**spec.__dict__, "architecture": architecture})
        for lay in layers:
            client.push_blob(repository, lay.blob)
        config = image_config(layers, spec)
        client.push_blob(repository, config)
        body = manifest_document(config, layers, fmt)
        digest = client.push_manifest(repository, sha256_digest(body), body, manifest_type)
        digests[architecture] = digest
        entries.append({"mediaType": manifest_type, "digest": digest, "size": len(body),
                        "platform": {"architecture": architecture, "os": spec.os}})
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}, indent=2).encode()
    return client.push_manifest(repository, tag, index, index_type), digests


# --------------------------------------------------------------------------------------------
# The busybox image


#: busybox applets linked into /bin of the busybox image
BUSYBOX_TOOLS = ("sh", "ash", "wget", "cat", "sed", "grep", "tr", "ls", "stat", "id", "env", "base64", "echo",
                 "printf", "touch", "test", "[", "mkdir", "rm", "head", "pwd", "sleep", "true", "false", "awk",
                 "dd", "mknod", "cut", "readlink", "wc", "uname")

#: A Runtime API loop in busybox sh. Each invocation answers JSON whose string values are base64
#: (so any output survives): `out` is the output of the shell command in the event's "sh" member
#: (base64 too), plus where and how it runs: cwd, uid, argv, _HANDLER, the environment, whether
#: the host's /usr/bin/python3 is visible. An event without "sh" just runs nothing.
BUSYBOX_BOOTSTRAP = r"""#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
b64() { base64 -w 0; }
ARGV=$(printf '%s\n' "$0" "$@" | b64)
while true; do
  wget -q -S -O /tmp/event "$API/invocation/next" 2>/tmp/headers || continue
  ID=$(grep -i 'Lambda-Runtime-Aws-Request-Id' /tmp/headers | sed 's/.*: *//' | tr -d '\r ')
  [ -n "$ID" ] || continue
  CMD=$(sed -n 's/.*"sh": *"\([A-Za-z0-9+\/=]*\)".*/\1/p' /tmp/event | base64 -d)
  OUT=$(sh -c "$CMD" 2>&1 | b64)
  if [ -e /usr/bin/python3 ]; then PY=yes; else PY=no; fi
  printf '{"event": "%s", "out": "%s", "pwd": "%s", "uid": "%s", "argv": "%s", "handler": "%s", "env": "%s", "host_python": "%s"}' \
    "$(b64 < /tmp/event)" "$OUT" "$(pwd | b64)" "$(id -u)" "$ARGV" "$(printf '%s' "$_HANDLER" | b64)" \
    "$(env | b64)" "$PY" > /tmp/response
  wget -q -O /dev/null --post-file /tmp/response "$API/invocation/$ID/response"
done
"""


def busybox_members() -> list[Member]:
    """/bin/busybox (Debian's static busybox) and its applets as symlinks in /bin, an empty /tmp."""
    if not os.path.isfile(BUSYBOX) or b"wget" not in subprocess.run([BUSYBOX, "--list"], capture_output=True).stdout:
        raise AssertionError(f"the container-image tests need Debian's static busybox at {BUSYBOX} (package "
                             f"`busybox-static`) and it is not installed; {INSTALL_HINT}")
    data = Path(BUSYBOX).read_bytes()
    members = [directory("bin"), file("bin/busybox", data, 0o755)]
    members += [symlink(f"bin/{tool}", "busybox") for tool in BUSYBOX_TOOLS]
    members += [directory("tmp", 0o1777)]
    return members


def busybox_layer() -> Layer:
    return layer(busybox_members())


def bootstrap_layer(script: str = BUSYBOX_BOOTSTRAP, path: str = "var/task/bootstrap", extra: Iterable[Member] = ()) -> Layer:
    """The bootstrap at `path` (and its parents), plus `extra` members."""
    parts = path.strip("/").split("/")
    members = [directory("/".join(parts[:i])) for i in range(1, len(parts))]
    members.append(file(path.strip("/"), script, 0o755))
    return layer([*members, *extra])


def decode_busybox_result(result: dict) -> dict:
    """The busybox bootstrap's answer with its base64 members decoded; env as a dict, argv as a list."""
    decoded = dict(result)
    for key in ("event", "out", "pwd", "argv", "handler", "env"):
        decoded[key] = base64.b64decode(result[key]).decode(errors="replace")
    decoded["pwd"] = decoded["pwd"].strip()
    decoded["argv"] = decoded["argv"].splitlines()
    decoded["env"] = dict(line.split("=", 1) for line in decoded["env"].splitlines() if "=" in line)
    return decoded


def sh_event(command: str, **extra) -> dict:
    """An event asking the busybox bootstrap to run `command`."""
    return {"sh": base64.b64encode(command.encode()).decode(), **extra}


# --------------------------------------------------------------------------------------------
# A Python image laid out like AWS's base images


LAMBDA_ENTRYPOINT = """#!/bin/sh
# The image's ENTRYPOINT: the handler (CMD) comes as the one argument, like AWS's base images.
if [ $# -ne 1 ]; then
  echo "lambda-entrypoint.sh: expected the handler as the only argument, got $#" >&2
  exit 142
fi
export _HANDLER="$1"
exec /var/runtime/bootstrap
"""

PYTHON_APP = """\
import os
import sys


def handler(event, context):
    return {"event": event, "python": sys.version.split()[0], "executable": sys.executable,
            "cwd": os.getcwd(), "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
            "uid": os.getuid(), "request_id": context.aws_request_id,
            "function_name": context.function_name, "host_site_packages": any("site-packages" in p and
            os.path.isdir(p) and os.listdir(p) for p in sys.path)}
"""

#: lib/pythonX.Y parts left out of the image (size)
STDLIB_SKIP = ("test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__",
               "site-packages", "dist-packages", "pydoc_data")


def _needed_libraries(binaries: Iterable[Path]) -> set[Path]:
    """Every shared library `ldd` resolves for `binaries`, plus the dynamic loader."""
    libraries: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts:
                target = parts[parts.index("=>") + 1]
                if target.startswith("/"):
                    libraries.add(Path(target))
            elif parts and parts[0].startswith("/"):
                libraries.add(Path(parts[0]))  # the loader: /lib64/ld-linux-x86-64.so.2
    return libraries


def _file_at(path: Path) -> list[Member]:
    """`path` of the host at the same path in the image; a symlink also brings what it points to."""
    members = []
    parts = path.parts[1:]
    members += [directory("/".join(parts[:i])) for i in range(1, len(parts))]
    name = "/".join(parts)
    if path.is_symlink():
        target = os.readlink(path)
        members.append(symlink(name, target))
        members += _file_at(Path(os.path.normpath(path.parent / target)))
    else:
        members.append(file(name, path.read_bytes(), path.stat().st_mode & 0o755))
    return members


def awslambdaric_dir(cache_root: Path, python_version: str) -> Path:
    """awslambdaric (binary wheels for CPython `python_version`) pip-installed into a cached folder."""
    cache = cache_root / f"awslambdaric-{python_version}"
    if not (cache / "awslambdaric").is_dir():
        staging = cache.with_name(cache.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--only-binary", ":all:", "--python-version", python_version, "--implementation", "cp",
                        "--target", str(staging), "awslambdaric"], check=True, timeout=600)
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
    return cache


def python_runtime_layer(cache_root: Path, compresslevel: int = 1) -> tuple[Layer, str]:
    """The interpreter running the tests (its base installation: the binary, libpython, the standard
    library minus STDLIB_SKIP, lib-dynload) at its own paths, every shared library its binaries need
    (`ldd`), busybox as /bin/sh, awslambdaric in /var/runtime, /lambda-entrypoint.sh and
    /var/runtime/bootstrap; (the layer, the interpreter's path in the image)."""
    version = "%d.%d" % sys.version_info[:2]
    executable = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if stdlib.is_relative_to(Path(sys.prefix)) and sys.prefix != sys.base_prefix:
        stdlib = Path(sys.base_prefix) / stdlib.relative_to(sys.prefix)
    stdlib = Path(os.path.realpath(stdlib))
    ric = awslambdaric_dir(cache_root, version)

    members: list[Member] = []
    members += _file_at(executable)
    members += tree_members(stdlib, str(stdlib), skip=STDLIB_SKIP)
    members.append(directory(f"{str(stdlib).strip('/')}/site-packages"))
    native = [executable, *stdlib.glob("lib-dynload/*.so"), *ric.rglob("*.so")]
    native = [p for p in native if "_tkinter" not in p.name]
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    ldlibrary = sysconfig.get_config_var("LDLIBRARY") or ""
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and (libdir / ldlibrary).exists():
        members += _file_at(libdir / ldlibrary)
        native.append(libdir / ldlibrary)
    for library in sorted(_needed_libraries(native)):
        if not str(library).startswith(str(stdlib)):
            members += _file_at(library)
    members += busybox_members()
    members += tree_members(ric, "/var/runtime", skip=("__pycache__",))
    members.append(file("lambda-entrypoint.sh", LAMBDA_ENTRYPOINT, 0o755))
    members.append(file("var/runtime/bootstrap",
                        "#!/bin/sh\n# Run the handler in $_HANDLER with awslambdaric (python -m awslambdaric HANDLER).\n"
                        'cd "${LAMBDA_TASK_ROOT:-/var/task}"\n'
                        'export PYTHONPATH="${LAMBDA_TASK_ROOT:-/var/task}:/var/runtime"\n'
                        f'exec {executable} -m awslambdaric "$_HANDLER"\n', 0o755))
    # one entry per path, the first kept (directories reached twice, shared libraries named twice)
    seen, unique = set(), []
    for member in members:
        if member.name not in seen:
            seen.add(member.name)
            unique.append(member)
    return layer(unique, compresslevel=compresslevel), str(executable)


def python_app_layer(code: str = PYTHON_APP) -> Layer:
    return layer([directory("var"), directory("var/task"), file("var/task/app.py", code)])


def python_image_spec() -> ImageSpec:
    return ImageSpec(entrypoint=["/lambda-entrypoint.sh"], cmd=["app.handler"], working_dir="/var/task",
                     env={"LAMBDA_TASK_ROOT": "/var/task", "LANG": "C.UTF-8",
                          "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin"})

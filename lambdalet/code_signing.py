"""Signed code packages: the signature format, the signing profiles the server trusts, and the
check every code upload of a function with a code signing config goes through.

AWS Signer does not exist here, so a signature is this server's own (docs/code-signing.md): the
zip's end-of-central-directory comment holds

    LAMBDALET-SIG1 <base64 of JSON {"profile": <profile version ARN>, "job": <job id>, "sig": <base64>}>

and `sig` is the profile's Ed25519 or ECDSA (SHA-256) signature over
`MESSAGE_PREFIX + profile + "\\n" + job + "\\n" + sha256(the zip with an empty comment)`. Any
zip tool keeps working on a signed zip (a comment is ignored), and stripping or changing the
comment, or any byte before it, breaks the signature. Public keys come from --signing-profiles.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import struct
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

MARKER = b"LAMBDALET-SIG1 "
MESSAGE_PREFIX = b"lambdalet-code-signature-v1\n"
_EOCD = b"PK\x05\x06"


class SignatureFormatError(ValueError):
    """The zip carries a signature comment that cannot be read."""


@dataclass(frozen=True)
class Signature:
    profile_version_arn: str
    job_id: str
    signature: bytes
    #: sha256 of the zip with its comment emptied: what was signed.
    digest: bytes


def _eocd(data: bytes) -> int | None:
    """Offset of the end-of-central-directory record whose comment ends the file."""
    start = max(0, len(data) - 22 - 0xFFFF)
    at = data.rfind(_EOCD, start)
    while at >= 0:
        if at + 22 <= len(data) and at + 22 + struct.unpack_from("<H", data, at + 20)[0] == len(data):
            return at
        at = data.rfind(_EOCD, start, at)
    return None


def unsigned(data: bytes) -> bytes:
    """The zip with its comment emptied."""
    at = _eocd(data)
    return data if at is None else data[:at + 20] + b"\x00\x00"


def _message(profile: str, job: str, digest: bytes) -> bytes:
    return MESSAGE_PREFIX + profile.encode() + b"\n" + job.encode() + b"\n" + digest


def read_signature(data: bytes) -> Signature | None:
    """The signature a zip carries; None when it carries none (unsigned)."""
    at = _eocd(data)
    if at is None:
        return None
    comment = data[at + 22:]
    if not comment.startswith(MARKER):
        return None
    try:
        fields = json.loads(base64.b64decode(comment[len(MARKER):], validate=True))
        profile, job, sig = fields["profile"], fields["job"], base64.b64decode(fields["sig"], validate=True)
        if not (isinstance(profile, str) and isinstance(job, str)):
            raise TypeError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SignatureFormatError("the zip's signature comment is malformed") from None
    return Signature(profile, job, sig, hashlib.sha256(unsigned(data)).digest())


def sign(data: bytes, profile_version_arn: str, private_key_pem: bytes) -> bytes:
    """The zip, signed (any signature it had is replaced)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    job = str(uuid.uuid4())
    body = unsigned(data)
    if _eocd(body) is None:
        raise ValueError("not a zip file (no end-of-central-directory record)")
    message = _message(profile_version_arn, job, hashlib.sha256(body).digest())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(message)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError("the signing key must be Ed25519 or ECDSA")
    comment = MARKER + base64.b64encode(json.dumps(
        {"profile": profile_version_arn, "job": job, "sig": base64.b64encode(sig).decode()}).encode())
    if len(comment) > 0xFFFF:
        raise ValueError("signature too long for a zip comment")
    return body[:-2] + struct.pack("<H", len(comment)) + comment


@dataclass(frozen=True)
class Profile:
    arn: str
    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    expires: datetime.datetime | None = None
    revoked: bool = False

    def verifies(self, signature: Signature) -> bool:
        message = _message(signature.profile_version_arn, signature.job_id, signature.digest)
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature.signature, message)
            else:
                self.public_key.verify(signature.signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def load_profiles(path: str) -> dict[str, Profile]:
    """--signing-profiles: a TOML file of `[profiles."<profile version ARN>"]` tables, each with
    `public_key` (PEM) or `public_key_file`, and optional `expires` (a TOML datetime) and `revoked`."""
    if not path:
        return {}
    source = Path(path)
    try:
        document = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"--signing-profiles {path}: {exc}") from None
    profiles = {}
    for arn, table in document.get("profiles", {}).items():
        if not arn.startswith("arn:aws:signer:") or "/signing-profiles/" not in arn:
            raise ValueError(f"--signing-profiles {path}: {arn!r} is not a signing profile version ARN")
        pem = table.get("public_key")
        if pem is None and "public_key_file" in table:
            pem = (source.parent / table["public_key_file"]).read_text()
        if pem is None:
            raise ValueError(f"--signing-profiles {path}: profile {arn!r} has no public_key or public_key_file")
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            raise ValueError(f"--signing-profiles {path}: profile {arn!r}: the key must be Ed25519 or ECDSA")
        expires = table.get("expires")
        if expires is not None and not isinstance(expires, datetime.datetime):
            raise ValueError(f"--signing-profiles {path}: profile {arn!r}: expires must be a TOML datetime")
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.timezone.utc)
        profiles[arn] = Profile(arn, key, expires, bool(table.get("revoked", False)))
    return profiles


@dataclass(frozen=True)
class Verdict:
    """What a check found: `signature` when the code is signed and intact; `problem` when it must
    not be trusted (and why); `broken` when its signature fails the integrity check."""

    signature: Signature | None
    problem: str | None
    broken: bool = False


def verify(data: bytes, allowed: list[str], profiles: dict[str, Profile],
           now: datetime.datetime | None = None) -> Verdict:
    """Check a code package against a config's allowed publishers and the known profiles."""
    try:
        signature = read_signature(data)
    except SignatureFormatError as exc:
        return Verdict(None, str(exc), broken=True)
    if signature is None:
        return Verdict(None, "the code package is not signed")
    profile = profiles.get(signature.profile_version_arn)
    if profile is None:
        return Verdict(signature, f"signing profile {signature.profile_version_arn} is not known to this server "
                                  "(--signing-profiles), so its signature cannot be verified")
    if not profile.verifies(signature):
        return Verdict(signature, "the signature does not match the code package", broken=True)
    if signature.profile_version_arn not in allowed:
        return Verdict(signature, f"signing profile {signature.profile_version_arn} is not one of the code "
                                  "signing config's allowed publishers")
    if profile.revoked:
        return Verdict(signature, f"signing profile {profile.arn} is revoked")
    if profile.expires is not None and (now or datetime.datetime.now(datetime.timezone.utc)) >= profile.expires:
        return Verdict(signature, f"signing profile {profile.arn} expired at {profile.expires.isoformat()}")
    return Verdict(signature, None)

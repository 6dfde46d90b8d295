"""Verifying AWS Signature Version 4 on requests the server receives (issue 18's groundwork).

The canonical request and string to sign are botocore's own (`botocore.auth.SigV4Auth`): the
server rebuilds the request as the client's SDK held it and lets botocore canonicalise it, with
the headers the client says it signed, so the two sides cannot drift apart as a hand copy of the
algorithm would. What botocore does not do — reading a signature off a request, the clock-skew
and expiry rules, session tokens, payload-hash checks — is here, with AWS's answers for each way
a signature fails (403 unless said otherwise, in the API's own error shape, which the caller
renders):

- no signature: `MissingAuthenticationTokenException`, "Missing Authentication Token";
- an `Authorization` header that is not a whole SigV4 one: `IncompleteSignatureException` (400);
- an unknown access key or a wrong session token: `UnrecognizedClientException`;
- an expired session: `ExpiredTokenException`;
- a signature that does not match, a timestamp more than 5 minutes off, a presigned URL past its
  expiry, a body whose hash is not the signed one: `InvalidSignatureException`.

Signing keys are derived once per (secret, day, region, service) and cached, and botocore's
canonical request once per request shape: remembered with a hole where the X-Amz-Date value goes
(the one signed part that changes between a client's repeated calls), filled in per request.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Callable, Mapping, Protocol
from urllib.parse import quote, unquote

from botocore.auth import EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 300  # a signed request's timestamp may be 5 minutes off the server's clock, as on AWS
MAX_PRESIGN_EXPIRES_S = 604_800  # 7 days
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class SignatureRefused(Exception):
    """A request whose signature does not authenticate it, with AWS's error type and message."""

    def __init__(self, error_type: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SecretKey:
    """What the server knows of an access key: its secret and, for temporary credentials, the
    session token that must come with it and when it expires (epoch seconds)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True)
class Signature:
    """A verified signature: who signed, for which region and service, and when."""

    access_key_id: str
    region: str
    service: str
    signed_at: float
    key: SecretKey


@dataclass(frozen=True)
class _Parsed:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    session_token: str | None
    expires: int | None  # presigned URLs only
    presigned: bool


def is_signed(headers: Mapping[str, str], raw_query: str) -> bool:
    """Whether a request carries a SigV4 signature of either kind (cheap: no parsing)."""
    return "Authorization" in headers or "X-Amz-Signature=" in raw_query


def credential_of(headers: "HeaderSource", raw_query: str) -> tuple[str | None, str | None]:
    """The access key id and session token a request names, before anything is verified (so
    that the caller can find the key's secret: for temporary credentials, from the token)."""
    authorization = headers.get("Authorization")
    if authorization is not None:
        credential = authorization.partition("Credential=")[2].partition("/")[0]
        return credential.strip() or None, headers.get("X-Amz-Security-Token")
    if "X-Amz-Credential=" not in raw_query:
        return None, None
    query = dict(_query_pairs(raw_query))
    return query.get("X-Amz-Credential", "").partition("/")[0] or None, query.get("X-Amz-Security-Token")


def verify(method: str, raw_path: str, raw_query: str, headers: "HeaderSource", body: bytes,
           lookup: Callable[[str], SecretKey | None], *, now: float | None = None,
           service: str | tuple[str, ...] | None = None) -> Signature:
    """Authenticate one request as it came off the wire: `raw_path` and `raw_query` exactly as sent
    (percent-encoded), `headers` with every value of repeated headers, `body` the whole body.
    `service`, when given, is the signing name (or one of the names) the credential scope must
    name. Raises SignatureRefused."""
    now = time.time() if now is None else now
    pairs = _query_pairs(raw_query)
    parsed = _parse(headers, pairs)
    services = (service,) if isinstance(service, str) else service
    if services is not None and parsed.service not in services:
        raise SignatureRefused("InvalidSignatureException",
                               f"Credential should be scoped to correct service: '{services[0]}'. ")
    signed_at = _check_time(parsed, now)
    key = lookup(parsed.access_key_id)
    if key is None:
        raise SignatureRefused("UnrecognizedClientException", "The security token included in the request is invalid.")
    if key.session_token is not None or parsed.session_token is not None:
        if key.session_token is None or parsed.session_token is None or not hmac.compare_digest(
                key.session_token, parsed.session_token):
            raise SignatureRefused("UnrecognizedClientException",
                                   "The security token included in the request is invalid.")
        if key.expires_at is not None and now >= key.expires_at:
            raise SignatureRefused("ExpiredTokenException", "The security token included in the request is expired")
    payload_hash = _payload_hash(headers, body)
    canonical, string_to_sign = _canonical(method, raw_path, pairs, headers, parsed, payload_hash)
    expected = hmac.new(_signing_key(key.secret_access_key, parsed.date, parsed.region, parsed.service),
                        string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parsed.signature):
        raise SignatureRefused(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.\n\n"
            f"The Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{string_to_sign}'\n")
    return Signature(parsed.access_key_id, parsed.region, parsed.service, signed_at, key)


class HeaderSource(Protocol):
    """What `verify` needs of a request's headers (aiohttp's CIMultiDictProxy fits): a
    case-insensitive `get` and every value of a repeated header."""

    def get(self, name: str, default: None = None, /) -> str | None: ...

    def getall(self, name: str, default: list[str], /) -> list[str]: ...


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The query's (key, value) pairs, percent-decoded (a `+` stays a `+`, as SigV4 reads it)."""
    if not raw_query:
        return []
    return [(unquote(key), unquote(value)) for key, _, value in
            (pair.partition("=") for pair in raw_query.split("&") if pair)]


def _parse(headers: HeaderSource, pairs: list[tuple[str, str]]) -> _Parsed:
    authorization = headers.get("Authorization")
    if authorization is not None:
        return _parse_header(authorization, headers)
    query = dict(pairs)
    if "X-Amz-Signature" in query or "X-Amz-Algorithm" in query:
        return _parse_query(query)
    raise SignatureRefused("MissingAuthenticationTokenException", "Missing Authentication Token")


def _parse_header(authorization: str, headers: HeaderSource) -> _Parsed:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureRefused("IncompleteSignatureException", f"Unsupported AWS 'algorithm': '{algorithm}'",
                               status=400)
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value.strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    timestamp = headers.get("X-Amz-Date") or _from_http_date(headers.get("Date"))
    if timestamp is None:
        missing.append("X-Amz-Date")
    if missing:
        raise SignatureRefused("IncompleteSignatureException", " ".join(
            f"Authorization header requires '{name}' parameter." if name != "X-Amz-Date" else
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
            for name in missing) + f" Authorization={authorization}", status=400)
    assert timestamp is not None
    key, date, region, service = _scope(fields["Credential"])
    return _Parsed(key, date, region, service, _signed_headers(fields["SignedHeaders"]), fields["Signature"],
                   timestamp, headers.get("X-Amz-Security-Token"), None, False)


def _parse_query(query: dict[str, str]) -> _Parsed:
    missing = [name for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
                                 "X-Amz-Signature") if not query.get(name)]
    if missing:
        raise SignatureRefused("IncompleteSignatureException", " ".join(
            f"AWS query-string parameters must include '{name}'." for name in missing), status=400)
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise SignatureRefused("IncompleteSignatureException",
                               f"Unsupported AWS 'algorithm': '{query['X-Amz-Algorithm']}'", status=400)
    try:
        expires = int(query.get("X-Amz-Expires", "900"))
    except ValueError:
        expires = -1
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES_S:
        raise SignatureRefused("IncompleteSignatureException",
                               f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES_S} seconds", status=400)
    key, date, region, service = _scope(query["X-Amz-Credential"])
    return _Parsed(key, date, region, service, _signed_headers(query["X-Amz-SignedHeaders"]),
                   query["X-Amz-Signature"], query["X-Amz-Date"], query.get("X-Amz-Security-Token"), expires, True)


@lru_cache(maxsize=1024)  # a client signs with one credential scope a day: parsed once
def _scope(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SignatureRefused("IncompleteSignatureException",
                               "Credential must have exactly 5 slash-delimited elements, e.g. "
                               f"keyid/date/region/service/term, got '{credential}'", status=400)
    return parts[0], parts[1], parts[2], parts[3]


@lru_cache(maxsize=1024)  # and the same signed headers each time
def _signed_headers(value: str) -> tuple[str, ...]:
    return tuple(name for name in value.lower().split(";") if name)


def _from_http_date(value: str | None) -> str | None:
    """An RFC 7231 `Date` header as SigV4's timestamp (some SDKs sign `Date` instead of X-Amz-Date)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).strftime(TIMESTAMP_FORMAT)
    except (TypeError, ValueError):
        return None


def _format(epoch: float) -> str:
    return time.strftime(TIMESTAMP_FORMAT, time.gmtime(epoch))


@lru_cache(maxsize=256)  # every request of one second carries the same timestamp
def _parse_timestamp(value: str) -> float:
    """`YYYYMMDDTHHMMSSZ` as epoch seconds; by slicing, which costs a tenth of strptime (per request)."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not (value[:8] + value[9:15]).isdigit():
        raise ValueError(value)
    fields = (int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
              int(value[13:15]))
    if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] <= 23 and fields[4] <= 59
            and fields[5] <= 60):
        raise ValueError(value)
    return float(calendar.timegm(fields))


def _check_time(parsed: _Parsed, now: float) -> float:
    try:
        signed_at = _parse_timestamp(parsed.timestamp)
    except ValueError:
        raise SignatureRefused("IncompleteSignatureException",
                               f"Date must be in ISO-8601 'basic format'. Got '{parsed.timestamp}'. See "
                               "http://en.wikipedia.org/wiki/ISO_8601", status=400) from None
    if parsed.timestamp[:8] != parsed.date:
        raise SignatureRefused(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{parsed.date}' != '{parsed.timestamp[:8]}', from '{parsed.timestamp}'.")
    if parsed.presigned:  # valid for X-Amz-Expires seconds after signing
        assert parsed.expires is not None
        oldest, allowance = now - parsed.expires, f"{parsed.expires} sec."
    else:  # within 5 minutes of the server's clock
        oldest, allowance = now - MAX_SKEW_S, "5 min."
    if signed_at < oldest:
        raise SignatureRefused("InvalidSignatureException",
                               f"Signature expired: {parsed.timestamp} is now earlier than "
                               f"{_format(oldest)} ({_format(now)} - {allowance})")
    if signed_at > now + MAX_SKEW_S:
        raise SignatureRefused("InvalidSignatureException",
                               f"Signature not yet current: {parsed.timestamp} is still later than "
                               f"{_format(now + MAX_SKEW_S)} ({_format(now)} + 5 min.)")
    return signed_at


def _payload_hash(headers: HeaderSource, body: bytes) -> str:
    """The payload hash the signature covers: the client's `X-Amz-Content-SHA256` when it sent one
    (which must then be the body's, unless it is UNSIGNED-PAYLOAD), else the body's."""
    actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
    claimed = headers.get("X-Amz-Content-SHA256")
    if claimed is None:
        return actual
    if claimed != UNSIGNED_PAYLOAD and claimed != actual:
        raise SignatureRefused("InvalidSignatureException",
                               "The provided 'x-amz-content-sha256' header does not match what was computed.")
    return claimed


class _SignedHeaders(dict):
    """The headers the client signed, by lower-case name: what botocore's canonicalisation reads of
    an `HTTPHeaders` (iteration over the names, `get_all`), without its email-parser machinery,
    which costs a verification more than everything else together."""

    def get_all(self, name: str) -> list[str]:
        return self[name]


class _WireRequest:
    """What botocore's `canonical_request` and `string_to_sign` read of an AWSRequest."""

    __slots__ = ("method", "url", "headers", "context", "params")

    def __init__(self, method: str, url: str, payload_hash: str, timestamp: str) -> None:
        self.method, self.url = method, url
        self.headers = {"X-Amz-Content-SHA256": payload_hash}
        self.context = {"timestamp": timestamp}
        self.params: dict[str, str] = {}


class _Canonicaliser(SigV4Auth):
    """botocore's SigV4 signer, told which headers the client signed and which query string it
    saw (without a presigned URL's own signature), instead of choosing them itself."""

    def __init__(self, parsed: _Parsed, headers: _SignedHeaders, pairs: list[tuple[str, str]]) -> None:
        super().__init__(_NO_CREDENTIALS, parsed.service, parsed.region)
        self._headers = headers
        self._pairs = [(key, value) for key, value in pairs if not (parsed.presigned and key == "X-Amz-Signature")]

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._headers  # type: ignore[return-value]

    def _normalize_url_path(self, path: str) -> str:
        return _normalized_path(path)

    def canonical_query_string(self, request: AWSRequest) -> str:
        return "&".join(f"{key}={value}" for key, value in sorted(
            (quote(key, safe="-_.~"), quote(value, safe="-_.~")) for key, value in self._pairs))


@lru_cache(maxsize=4096)  # the same few paths again and again (one per function and operation)
def _normalized_path(path: str) -> str:
    """botocore's own normalisation of a canonical request's path, remembered."""
    return SigV4Auth._normalize_url_path(_PATH_SIGNER, path)  # type: ignore[arg-type]


#: The signer's own credentials are never used: it canonicalises, the server computes the HMAC.
_NO_CREDENTIALS = Credentials("", "")
_PATH_SIGNER = SigV4Auth(_NO_CREDENTIALS, "lambda", "us-east-1")


#: botocore's canonical requests, with a hole where the X-Amz-Date line's value goes: a client
#: sends the same request again and again with only the date changed (every Invoke of a function).
_CANONICAL_TEMPLATES: dict[tuple, tuple[str, str]] = {}
MAX_CANONICAL_TEMPLATES = 4096
_DATE_HOLE = "LAMBDALET-DATE-HOLE"
_DATE_LINE = f"\nx-amz-date:{_DATE_HOLE}\n"  # a line of its own: no other line of a canonical request can be it


def _canonical(method: str, raw_path: str, pairs: list[tuple[str, str]], headers: HeaderSource, parsed: _Parsed,
               payload_hash: str) -> tuple[str, str]:
    """botocore's canonical request and string to sign for the request. The canonical request is
    botocore's, remembered by everything it is made from but the X-Amz-Date header's value, which
    is put back into its line: the same text botocore makes, without making it again."""
    signed = _SignedHeaders()
    for name in parsed.signed_headers:
        # signed but not sent: canonicalised as empty, so the signature cannot match
        signed[name] = headers.getall(name, []) or [""]
    # The path as the client's SDK held it (already percent-encoded once): botocore encodes it again
    # for the canonical request, as SigV4 does for every service but S3.
    request = _WireRequest(method, "http://signed.invalid" + (raw_path or "/"), payload_hash, parsed.timestamp)
    dates = signed.get("x-amz-date")
    key = None
    if not parsed.presigned and dates is not None and len(dates) == 1 and dates[0].strip() == parsed.timestamp:
        key = (method, raw_path, tuple(pairs), payload_hash,
               tuple((name, tuple(values)) for name, values in signed.items() if name != "x-amz-date"))
        template = _CANONICAL_TEMPLATES.get(key)
        if template is not None:
            canonical = template[0] + parsed.timestamp + template[1]
            return canonical, _scope_signer(parsed.service, parsed.region).string_to_sign(
                request, canonical)  # type: ignore[arg-type]
        signed["x-amz-date"] = [_DATE_HOLE]
    signer = _Canonicaliser(parsed, signed, pairs)
    canonical = signer.canonical_request(request)  # type: ignore[arg-type]
    if key is not None:
        at = canonical.index(_DATE_LINE)
        template = (canonical[:at + len(_DATE_LINE) - len(_DATE_HOLE) - 1], canonical[at + len(_DATE_LINE) - 1:])
        if len(_CANONICAL_TEMPLATES) >= MAX_CANONICAL_TEMPLATES:
            _CANONICAL_TEMPLATES.clear()
        _CANONICAL_TEMPLATES[key] = template
        canonical = template[0] + parsed.timestamp + template[1]
    return canonical, signer.string_to_sign(request, canonical)  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def _scope_signer(service: str, region: str) -> SigV4Auth:
    """botocore's signer for one credential scope: its string to sign needs nothing of the request
    but the timestamp."""
    return SigV4Auth(_NO_CREDENTIALS, service, region)


@lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


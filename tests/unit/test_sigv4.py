"""SigV4 verification (lambdalet/auth/sigv4.py) against requests signed by botocore itself, as
boto3 and the AWS CLI sign them, header and presigned, with and without session tokens."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from lambdalet.auth.sigv4 import SecretKey, SignatureRefused, verify

KEY = SecretKey("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SESSION = SecretKey("ASIAEXAMPLE", "sessionsecret", session_token="token/with+chars==", expires_at=time.time() + 3600)
KEYS = {key.access_key_id: key for key in (KEY, SESSION)}
ARN_PATH = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"


def signed(method: str = "POST", url: str = "http://127.0.0.1:9001" + ARN_PATH + "?Qualifier=%24LATEST",
           body: bytes = b'{"a": 1}', key: SecretKey = KEY, region: str = "us-east-1", service: str = "lambda",
           headers: dict[str, str] | None = None, presign: int | None = None, at: float | None = None):
    """A request as botocore signs it: (method, raw path, raw query, headers, body)."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {"Content-Type": "application/json"})
    credentials = Credentials(key.access_key_id, key.secret_access_key, key.session_token)
    signer = SigV4QueryAuth(credentials, service, region, expires=presign) if presign else \
        SigV4Auth(credentials, service, region)
    if at is not None:  # botocore reads the clock itself: sign "at" another time by moving it
        import botocore.auth
        real = botocore.auth.datetime.datetime

        class Clock(real):
            @classmethod
            def utcnow(cls):
                return real.utcfromtimestamp(at)

            @classmethod
            def now(cls, tz=None):
                return real.fromtimestamp(at, tz)

        botocore.auth.datetime.datetime = Clock
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = real
    else:
        signer.add_auth(request)
    parts = urlsplit(request.url)
    wire = CIMultiDict(request.headers.items())
    wire.setdefault("Host", parts.netloc)
    return method, parts.path, parts.query, wire, body


def check(request, **kwargs):
    method, path, query, headers, body = request
    return verify(method, path, query, headers, body, KEYS.get, **kwargs)


def refused(request, **kwargs) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as info:
        check(request, **kwargs)
    return info.value


def test_header_signatures_from_botocore_verify():
    result = check(signed())
    assert (result.access_key_id, result.region, result.service) == ("AKIDEXAMPLE", "us-east-1", "lambda")
    # A GET with no body, a path with characters that are encoded twice, repeated query keys.
    check(signed("GET", "http://127.0.0.1:9001/2015-03-31/functions/?MaxItems=5&Marker=a%2Fb%3D&Marker=z", b""))
    check(signed("GET", "http://127.0.0.1:9001/2021-10-31/functions/my-fn/url?Qualifier=live", b""))


def test_session_tokens_must_match_and_be_current():
    check(signed(key=SESSION))
    without = signed(key=SESSION)
    del without[3]["X-Amz-Security-Token"]
    assert refused(without).error_type == "UnrecognizedClientException"
    stale = SecretKey(SESSION.access_key_id, SESSION.secret_access_key, SESSION.session_token, time.time() - 1)
    method, path, query, headers, body = signed(key=SESSION)
    with pytest.raises(SignatureRefused) as info:
        verify(method, path, query, headers, body, {stale.access_key_id: stale}.get)
    assert info.value.error_type == "ExpiredTokenException"
    assert info.value.message == "The security token included in the request is expired"


def test_each_failure_gets_aws_error():
    assert refused(("GET", "/2015-03-31/functions/", "", CIMultiDict(), b"")).error_type == \
        "MissingAuthenticationTokenException"
    unknown = refused(signed(key=SecretKey("AKIDUNKNOWN", "x")))
    assert (unknown.error_type, unknown.status) == ("UnrecognizedClientException", 403)
    assert unknown.message == "The security token included in the request is invalid."
    wrong_secret = refused(signed(key=SecretKey("AKIDEXAMPLE", "not-the-secret")))
    assert wrong_secret.error_type == "InvalidSignatureException"
    assert wrong_secret.message.startswith("The request signature we calculated does not match the signature you "
                                           "provided. Check your AWS Secret Access Key and signing method.")
    assert "The Canonical String for this request should have been\n'POST\n" in wrong_secret.message
    incomplete = refused(("GET", "/", "", CIMultiDict({"Authorization": "AWS4-HMAC-SHA256 Credential=x"}), b""))
    assert (incomplete.error_type, incomplete.status) == ("IncompleteSignatureException", 400)
    assert refused(signed(), service="logs").error_type == "InvalidSignatureException"


def test_tampering_with_anything_signed_is_refused():
    method, path, query, headers, body = signed()
    for changed in [(method, path, query, headers, b'{"a": 2}'),  # the body
                    ("PUT", path, query, headers, body),  # the method
                    (method, path.replace("function%3Af", "function%3Ag"), query, headers, body),  # the path
                    (method, path, "Qualifier=1", headers, body)]:  # the query
        assert refused(changed).error_type == "InvalidSignatureException"
    headers = CIMultiDict(headers)
    headers["X-Amz-Date"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 1))
    assert refused((method, path, query, headers, body)).error_type == "InvalidSignatureException"


def test_payload_hash_header_must_be_the_body_hash_or_unsigned():
    check(signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}))
    method, path, query, headers, _body = signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    check((method, path, query, headers, b"anything"))  # unsigned: the body is not covered
    lying = signed(headers={"X-Amz-Content-SHA256": "0" * 64})
    assert "x-amz-content-sha256" in refused(lying).message


def test_clock_skew_of_five_minutes():
    check(signed(at=time.time() - 240))
    late = refused(signed(at=time.time() - 400))
    assert late.error_type == "InvalidSignatureException" and late.message.startswith("Signature expired: ")
    assert late.message.endswith(" - 5 min.)")
    early = refused(signed(at=time.time() + 400))
    assert early.message.startswith("Signature not yet current: ")


def test_presigned_urls_verify_until_they_expire():
    url = "http://127.0.0.1:9001/2015-03-31/functions/f/configuration?Qualifier=live"
    result = check(signed("GET", url, b"", presign=60))
    assert result.access_key_id == "AKIDEXAMPLE"
    check(signed("GET", url, b"", key=SESSION, presign=60))
    expired = refused(signed("GET", url, b"", presign=60, at=time.time() - 120))
    assert expired.error_type == "InvalidSignatureException" and expired.message.startswith("Signature expired")
    method, path, query, headers, body = signed("GET", url, b"", presign=60)
    assert refused((method, path, query.replace("Qualifier=live", "Qualifier=prod"), headers, body)).error_type \
        == "InvalidSignatureException"


def test_a_remembered_canonical_request_serves_only_the_same_request_at_another_time():
    """`_canonical` remembers botocore's canonical request with a hole for the X-Amz-Date value:
    the same request signed a second later verifies from it, and anything else signed differs."""
    now = time.time()
    first, later = signed(at=now - 2), signed(at=now - 1)
    assert first[3]["X-Amz-Date"] != later[3]["X-Amz-Date"]
    assert check(first).access_key_id == check(later).access_key_id == KEY.access_key_id
    method, path, query, headers, body = later
    other_body = (method, path, query, CIMultiDict(headers), b'{"a": 2}')
    with pytest.raises(SignatureRefused) as refused:  # the body's hash differs from the signed one
        check(other_body)
    assert refused.value.error_type == "InvalidSignatureException"
    tampered = CIMultiDict(headers)
    tampered["Content-Type"] = "text/plain"  # a signed header's value changed after signing
    with pytest.raises(SignatureRefused) as refused:
        check((method, path, query, tampered, body))
    assert "Content-Type".lower() + ":text/plain" in refused.value.message  # the canonical request shown is this one's
    moved = CIMultiDict(headers)
    moved["X-Amz-Date"] = signed(at=now)[3]["X-Amz-Date"]  # the date moved, the signature did not
    with pytest.raises(SignatureRefused):
        check((method, path, query, moved, body))

"""Deployment packages from S3: `S3Bucket`/`S3Key`/`S3ObjectVersion` on CreateFunction's `Code`,
UpdateFunctionCode and PublishLayerVersion's `Content`.

The object is read once with boto3, configured the standard way (`AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL`, credentials from the server's environment: AWS itself, moto, MinIO, ...), in
the server's region (`--region`), streamed to a file in the blob store and then stored exactly like
an uploaded zip (`BlobStore.put_zip`: content-addressed, the 250 MB unzipped limit, the same
extraction). Only the inline `ZipFile` is held to 50 MB (by the request size, `server.py`).

S3's refusals become Lambda's (`Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error
Message: ...`). As on AWS, the bucket must be in the server's region: botocore would follow S3's
redirect to another region by itself, so that is turned off and the redirect answered as Lambda
answers it. Nothing is stored until the whole object has arrived and passed as a zip.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from lambdalet import service_model
from lambdalet.errors import InvalidParameterValueException, ValidationException
from lambdalet.store.blobs import MAX_UNZIPPED_BYTES, Blob, BlobStore
from lambdalet.validation import Body

MEMBERS = ("S3Bucket", "S3Key", "S3ObjectVersion")
#: Bytes read from an object at most: a zip with more cannot unzip to 250 MB plus its headers,
#: so a bigger object is refused before it fills the disk.
MAX_OBJECT_BYTES = MAX_UNZIPPED_BYTES + 64 * 1024 * 1024
CHUNK_BYTES = 1 << 20
#: S3's answers that mean "this bucket lives in another region".
REDIRECT_CODES = ("PermanentRedirect", "301", "AuthorizationHeaderMalformed")


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version: str | None = None


def requested(body: Body, what: str) -> S3Object | None:
    """The S3 object a request's code members name (`what`: Lambda's name for the structure,
    "FunctionCode" or "LayerContent"), or None when it names none; checked as Lambda checks it."""
    if not any(body.has(member) for member in MEMBERS):
        return None
    if body.has("ZipFile"):
        raise InvalidParameterValueException(f"Please do not provide other {what} parameters when providing a ZipFile.")
    body.refuse_unless_default("S3ObjectStorageMode", "COPY", issue="packages are always copied (COPY)")
    found = [problem for member in MEMBERS if body.has(member)
             for problem in service_model.string_problems(service_model.service_model("lambda").shape_for(member),
                                                          body.string(member), body.path(member))]
    if found:
        raise ValidationException(service_model.message(found))
    bucket, key = body.string("S3Bucket"), body.string("S3Key")
    if not bucket or not key:
        raise InvalidParameterValueException(f"Both S3Bucket and S3Key are required for a {what} from S3.")
    return S3Object(bucket, key, body.string("S3ObjectVersion"))


def get_object_error(error: dict[str, Any], headers: dict[str, str]) -> str:
    """Lambda's message for S3's refusal of GetObject (`error`: the parsed S3 error, `headers` of the answer)."""
    code = error.get("Code", "")
    if code in REDIRECT_CODES and (code != "AuthorizationHeaderMalformed" or "Region" in error):
        region = headers.get("x-amz-bucket-region") or error.get("Region") or "null"
        return ("Error occurred while GetObject. S3 Error Code: PermanentRedirect. S3 Error Message: "
                f"The bucket is in this region: {region}. Please use this region to retry the request")
    return f"Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {error.get('Message', '')}"


class S3CodeSource:
    """Reads deployment packages from S3 into the blob store; one boto3 client, made on first use."""

    def __init__(self, region: str, blobs: BlobStore) -> None:
        self.region = region
        self.blobs = blobs
        self._client: Any = None
        self._lock = threading.Lock()

    async def fetch(self, obj: S3Object) -> Blob:
        """The object, stored as a blob (off the event loop: it may be 250 MB); refused with
        Lambda's error, storing nothing, when S3 refuses it or it is not a usable zip."""
        return await asyncio.to_thread(self._fetch, obj)

    def _fetch(self, obj: S3Object) -> Blob:
        from botocore.exceptions import BotoCoreError, ClientError

        params = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version:
            params["VersionId"] = obj.version
        with self.blobs.spool() as path:
            try:
                response = self.client().get_object(**params)
                try:
                    with path.open("wb") as out:
                        if response.get("ContentLength", 0) > MAX_OBJECT_BYTES or not _copy(response["Body"], out):
                            raise InvalidParameterValueException(
                                f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
                finally:
                    response["Body"].close()
            except ClientError as exc:
                raise InvalidParameterValueException(get_object_error(
                    exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}))
                ) from None
            except (BotoCoreError, OSError) as exc:  # unreachable, no credentials, cut off mid-object
                raise InvalidParameterValueException(
                    f"Error occurred while GetObject of s3://{obj.bucket}/{obj.key}: {exc}") from None
            return self.blobs.put_zip(path)

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3  # only servers given code from S3 pay for importing it
                from botocore.config import Config

                client = boto3.session.Session().client("s3", region_name=self.region, config=Config(
                    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60))
                client.meta.events.register("before-call.s3", _no_region_redirect)
                self._client = client
            return self._client


def _copy(stream: Any, out: Any) -> bool:
    """Copy an object's body to a file; False once it passes MAX_OBJECT_BYTES."""
    copied = 0
    for chunk in stream.iter_chunks(CHUNK_BYTES):
        copied += len(chunk)
        if copied > MAX_OBJECT_BYTES:
            return False
        out.write(chunk)
    return True


def _no_region_redirect(context: dict, **_kwargs: Any) -> None:
    """Mark a request as already redirected, so botocore's S3 region redirector leaves S3's
    answer for a bucket in another region to us (Lambda refuses such a bucket)."""
    redirect = context.get("s3_redirect")
    if isinstance(redirect, dict):
        redirect["redirected"] = True


"""Which S3 object a request names, and S3's refusals in Lambda's words (lambdalet.s3_code)."""

import pytest

from lambdalet.errors import InvalidParameterValueException, ValidationException
from lambdalet.s3_code import S3Object, get_object_error, requested
from lambdalet.validation import Body


def test_a_request_without_s3_members_names_no_object():
    assert requested(Body({"ZipFile": "UEsFBg=="}, prefix="code."), "FunctionCode") is None


def test_bucket_key_and_version_are_read_and_checked_against_botocores_model():
    body = Body({"S3Bucket": "my-bucket", "S3Key": "a/b.zip", "S3ObjectVersion": "v1"}, prefix="code.")
    assert requested(body, "FunctionCode") == S3Object("my-bucket", "a/b.zip", "v1")
    with pytest.raises(ValidationException, match=r"Value 'x\.' at 'code.s3Bucket' failed to satisfy constraint"):
        requested(Body({"S3Bucket": "x.", "S3Key": "k"}, prefix="code."), "FunctionCode")


@pytest.mark.parametrize("members", [{"S3Bucket": "bucket"}, {"S3Key": "key"}, {"S3ObjectVersion": "v"}])
def test_bucket_and_key_come_together(members):
    with pytest.raises(InvalidParameterValueException, match="Both S3Bucket and S3Key are required for a LayerContent"):
        requested(Body(members, prefix="content."), "LayerContent")


def test_a_zip_file_excludes_s3_members():
    with pytest.raises(InvalidParameterValueException,
                       match="Please do not provide other FunctionCode parameters when providing a ZipFile."):
        requested(Body({"ZipFile": "UEsFBg==", "S3Bucket": "bucket", "S3Key": "k"}), "FunctionCode")


def test_only_the_copy_storage_mode_is_accepted():
    assert requested(Body({"S3Bucket": "bucket", "S3Key": "k", "S3ObjectStorageMode": "COPY"}), "FunctionCode")
    with pytest.raises(InvalidParameterValueException, match="S3ObjectStorageMode is not supported"):
        requested(Body({"S3Bucket": "bucket", "S3Key": "k", "S3ObjectStorageMode": "REFERENCE"}), "FunctionCode")


def test_s3_errors_are_worded_as_lambda_words_them():
    assert get_object_error({"Code": "NoSuchKey", "Message": "The specified key does not exist."}, {}) == (
        "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist.")
    redirect = ("Error occurred while GetObject. S3 Error Code: PermanentRedirect. S3 Error Message: "
                "The bucket is in this region: {}. Please use this region to retry the request")
    assert get_object_error({"Code": "PermanentRedirect", "Message": "..."},
                            {"x-amz-bucket-region": "ap-south-1"}) == redirect.format("ap-south-1")
    assert get_object_error({"Code": "AuthorizationHeaderMalformed", "Region": "eu-west-1"}, {}) == (
        redirect.format("eu-west-1"))
    assert get_object_error({"Code": "301"}, {}) == redirect.format("null")  # as AWS says when it cannot tell
    assert get_object_error({"Code": "AuthorizationHeaderMalformed", "Message": "bad"}, {}).endswith(
        "S3 Error Code: AuthorizationHeaderMalformed. S3 Error Message: bad")

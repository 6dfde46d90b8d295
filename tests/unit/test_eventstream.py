"""The event-stream encoder round-trips through botocore's own decoder (which checks both CRCs)."""

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from lambdalet import eventstream


def _decode(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_payload_chunks_and_completion_decode_in_botocore() -> None:
    data = eventstream.payload_chunk(b"hello ") + eventstream.payload_chunk(b"\x00\xffworld" * 1000) \
        + eventstream.invoke_complete(log_result="U1RBUlQ=")
    messages = _decode(data)
    assert [m.headers[":event-type"] for m in messages] == ["PayloadChunk", "PayloadChunk", "InvokeComplete"]
    assert messages[0].payload == b"hello "
    assert messages[1].payload == b"\x00\xffworld" * 1000
    assert messages[0].headers[":content-type"] == "application/octet-stream"
    assert messages[2].headers[":message-type"] == "event"
    assert json.loads(messages[2].payload) == {"LogResult": "U1RBUlQ="}


def test_empty_chunk_and_error_completion() -> None:
    messages = _decode(eventstream.payload_chunk(b"") + eventstream.invoke_complete("Sandbox.Timedout", "timed out"))
    assert messages[0].payload == b""
    assert json.loads(messages[1].payload) == {"ErrorCode": "Sandbox.Timedout", "ErrorDetails": "timed out"}


def test_general_message_matches_the_chunk_fast_path() -> None:
    headers = {":event-type": "PayloadChunk", ":content-type": "application/octet-stream", ":message-type": "event"}
    assert eventstream.message(headers, b"abc") == eventstream.payload_chunk(b"abc")


def test_a_corrupted_byte_fails_botocore_crc_check() -> None:
    data = bytearray(eventstream.payload_chunk(b"hello"))
    data[-6] ^= 1
    with pytest.raises(ChecksumMismatch):
        _decode(bytes(data))

"""AWS's event-stream framing, the body of an InvokeWithResponseStream answer.

    message = u32 total length | u32 headers length | u32 CRC32 of the first 8 bytes
              | headers | payload | u32 CRC32 of everything before it
    header  = u8 name length | name | u8 type (7: string) | u16 value length | value

botocore (`botocore.eventstream`) and the JS SDK check both CRCs; only string headers are needed
here, so only those are written.
"""

from __future__ import annotations

import json
import struct
import zlib

PRELUDE = struct.Struct(">II")
STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += bytes([len(raw_name)]) + raw_name + bytes([STRING]) + struct.pack(">H", len(raw_value)) + raw_value
    return bytes(out)


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    raw_headers = _headers(headers)
    prelude = PRELUDE.pack(12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + payload + struct.pack(">I", crc)


#: The headers of every PayloadChunk, encoded once (the hot path writes one per chunk).
_CHUNK_HEADERS = _headers({":event-type": "PayloadChunk", ":content-type": "application/octet-stream",
                           ":message-type": "event"})


def payload_chunk(data: bytes) -> bytes:
    """A PayloadChunk event carrying `data` as it is."""
    prelude = PRELUDE.pack(12 + len(_CHUNK_HEADERS) + len(data) + 4, len(_CHUNK_HEADERS))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + _CHUNK_HEADERS
    return head + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(head)))


def invoke_complete(error_code: str | None = None, error_details: str | None = None,
                    log_result: str | None = None) -> bytes:
    """The InvokeComplete event that ends every stream: `{}` on a clean success."""
    body: dict[str, str] = {}
    if error_code is not None:
        body["ErrorCode"] = error_code
    if error_details is not None:
        body["ErrorDetails"] = error_details
    if log_result is not None:
        body["LogResult"] = log_result
    return message({":event-type": "InvokeComplete", ":content-type": "application/json", ":message-type": "event"},
                   json.dumps(body).encode())

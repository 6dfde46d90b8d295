"""Lambdalet's frame protocol for its own runtimes (lambdalet.invoke.frames)."""

import asyncio
import json

from lambdalet.invoke.frames import MAGIC, FrameProtocol, ProtocolSniffer, encode


class RecordingEnvironment:
    """Stands in for an Environment's Runtime API callbacks and records them."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_response(self, request_id, body, content_type):
        self.calls.append(("response", request_id, body, content_type))

    def on_error(self, request_id, body):
        self.calls.append(("error", request_id, body))

    def on_init_error(self, body, error_type):
        self.calls.append(("init_error", body, error_type))


class RecordingProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


def test_frames_are_parsed_whatever_the_chunking():
    env = RecordingEnvironment()
    protocol = FrameProtocol(env)  # type: ignore[arg-type]
    stream = (encode(b"R", {"id": "a", "content_type": "application/json"}, b'{"ok": 1}')
              + encode(b"E", {"id": "b"}, b'{"errorType": "X"}')
              + encode(b"I", {"error_type": "Runtime.ImportModuleError"}, b"{}"))
    for i in range(0, len(stream), 3):  # three bytes at a time
        protocol.data_received(stream[i:i + 3])
    assert env.calls == [("response", "a", b'{"ok": 1}', "application/json"),
                         ("error", "b", b'{"errorType": "X"}'),
                         ("init_error", b"{}", "Runtime.ImportModuleError")]


def test_encode_layout():
    frame = encode(b"V", {"k": "v"}, b"body")
    meta = json.dumps({"k": "v"}).encode()
    assert int.from_bytes(frame[:4], "big") == 1 + 4 + len(meta) + 4
    assert frame[4:5] == b"V" and int.from_bytes(frame[5:9], "big") == len(meta)
    assert frame[9:9 + len(meta)] == meta and frame.endswith(b"body")


def test_the_sniffer_hands_http_to_http_even_when_the_first_bytes_arrive_alone():
    http = RecordingProtocol()
    sniffer = ProtocolSniffer(RecordingEnvironment(), lambda: http)  # type: ignore[arg-type]
    sniffer.connection_made(None)  # type: ignore[arg-type]
    sniffer.data_received(b"GE")
    sniffer.data_received(b"T /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
    assert http.data == b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"


def test_the_sniffer_speaks_frames_after_the_magic():
    env = RecordingEnvironment()
    sniffer = ProtocolSniffer(env, RecordingProtocol)  # type: ignore[arg-type]
    sniffer.connection_made(None)  # type: ignore[arg-type]
    sniffer.data_received(MAGIC[:2])
    sniffer.data_received(MAGIC[2:] + encode(b"E", {"id": "r"}, b"{}"))
    assert env.calls == [("error", "r", b"{}")]

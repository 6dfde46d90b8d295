"""Clients that never finish a request cannot hold connections (and descriptors) for ever: past
--http-idle-timeout without a complete request head, and past --http-body-timeout without the
whole body, the server closes the connection (answering 408 for a body)."""

from __future__ import annotations

import select
import socket
import time

import pytest

from conftest import Server

DEADLINE_S = 30  # how long the test waits for a close before it fails; the server's limits are 1 s


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("slow") / "data", args=["--http-idle-timeout", "1", "--http-body-timeout", "1"])
    server.start()
    yield server
    server.stop()


def answer_then_close(sock: socket.socket, trickle: bytes = b"") -> bytes:
    """What the server sends before it closes the connection, while the client trickles `trickle`
    a byte at a time (as a slowloris client does); fails if it stays open DEADLINE_S."""
    received, deadline, sent = b"", time.monotonic() + DEADLINE_S, 0
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not data:
                return received
            received += data
        elif sent < len(trickle):
            try:
                sock.send(trickle[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return received
            sent += 1
    pytest.fail(f"the connection was still open after {DEADLINE_S} s (received {received[:200]!r})")


def test_idle_and_slow_header_connections_are_closed(strict_server):
    silent = socket.create_connection(("127.0.0.1", strict_server.port))
    slow_headers = socket.create_connection(("127.0.0.1", strict_server.port))
    slow_headers.sendall(b"GET /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n")
    assert answer_then_close(silent) == b""
    assert answer_then_close(slow_headers, trickle=b"X-Slow: " + b"a" * 500) == b""


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(strict_server):
    sock = socket.create_connection(("127.0.0.1", strict_server.port))
    sock.sendall(b"GET /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer_then_close(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("path, headers, status", [
    ("/2015-03-31/functions", b"", b"408"),
    ("/", b"X-Amz-Target: Logs_20140328.DescribeLogGroups\r\n", b"408"),
])
def test_a_body_sent_too_slowly_is_answered_408_and_closed(strict_server, path, headers, status):
    sock = socket.create_connection(("127.0.0.1", strict_server.port))
    sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n" + headers + b"\r\n{")
    answer = answer_then_close(sock, trickle=b'"a' * 200)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == status, answer[:300]


def test_a_normal_request_still_works(strict_server):
    assert strict_server.client().list_functions()["Functions"] == []

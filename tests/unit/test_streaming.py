"""The streamed response's buffer, limit and bandwidth cap, and the trailer tap, on their own."""

import asyncio

from lambdalet.invoke.streaming import BURST_BYTES, ResponseStream
from lambdalet.invoke.trailers import TrailerTap


def run(coro):
    return asyncio.run(coro)


def test_a_writer_waits_while_the_buffer_is_full_and_goes_on_as_it_is_read():
    async def scenario():
        stream = ResponseStream(buffer_bytes=10)
        assert await stream.write(b"x" * 10)
        blocked = asyncio.ensure_future(stream.write(b"y"))
        await asyncio.sleep(0)
        assert not blocked.done()  # 10 bytes wait unread: the writer waits
        assert await stream.read() == b"x" * 10
        assert await blocked
        stream.close()
        assert await stream.read() == b"y"  # what was written before the end is still read
        assert await stream.read() is None
        assert not await stream.write(b"late")
    run(scenario())


def test_past_the_limit_the_stream_closes():
    async def scenario():
        stream = ResponseStream(limit=5)
        assert await stream.write(b"12345")
        assert not await stream.write(b"6")
        assert stream.too_large and stream.closed
    run(scenario())


def test_the_bandwidth_cap_starts_after_the_burst():
    async def scenario():
        stream = ResponseStream(limit=BURST_BYTES * 4, bandwidth=1024 * 1024)
        stream.total = BURST_BYTES + 2 * 1024 * 1024  # 2 MiB past the burst at 1 MiB/s: 2 s from its end
        assert stream.throttle_delay(100.0) == 2.0
        assert stream.throttle_delay(101.5) == 0.5
    run(scenario())


def test_the_tap_keeps_a_streamed_requests_trailers():
    tap = TrailerTap()
    data = (b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /r HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /s HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nabcde\r\n3\r\nfgh\r\n0\r\n"
            b"Lambda-Runtime-Function-Error-Type: Oops\r\nLambda-Runtime-Function-Error-Body: e30=\r\n\r\n")
    for index in range(len(data)):  # byte by byte: any split of the stream gives the same answer
        tap.feed(data[index:index + 1])
    assert tap.trailers == {"lambda-runtime-function-error-type": "Oops", "lambda-runtime-function-error-body": "e30="}
    tap.feed(b"POST /s HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert tap.trailers == {}  # the next streamed response ended cleanly

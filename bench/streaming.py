"""Response streaming benchmark: time to first byte of InvokeWithResponseStream against a warm
buffered Invoke of the same function, in the same server process.

    .venv/bin/python bench/streaming.py [--requests 1000] [--rounds 4]

Two warm functions, each reached both ways over keep-alive ``http.client`` connections, in
alternating blocks of `requests / rounds` so that every path sees the same machine:

- **python**: ``return event`` (a buffered function: the streaming API sends its one PayloadChunk);
- **node**: ``awslambda.streamifyResponse`` writing ``"ok"`` then ending (the runtime streams a
  chunked /response); its buffered Invoke gets the stream whole.

For each: *Invoke* is the whole buffered response; *TTFB* is the streaming API up to the first
bytes of the body (the first PayloadChunk's frame); *stream* is the streaming API to its end.
Times are wall-clock at the client in milliseconds, nearest-rank percentiles. The target: TTFB
p50 at most 2 ms over the buffered Invoke's p50.
"""

from __future__ import annotations

import argparse
import http.client
import io
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and statistics of the invoke benchmark)

PYTHON = 'def handler(event, context):\n    return event\n'
NODE = ("exports.handler = awslambda.streamifyResponse(async (event, stream) => {\n"
        "  stream.write('ok');\n  stream.end();\n});\n")


def package(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def stream_path(name: str) -> str:
    return f"/2021-11-15/functions/{name}/response-streaming-invocations"


def buffered(conn: http.client.HTTPConnection, name: str) -> float:
    started = time.perf_counter()
    conn.request("POST", base.invoke_path(name), body=b"{}", headers=base.INVOKE_HEADERS)
    response = conn.getresponse()
    data = response.read()
    elapsed = base.ms_since(started)
    if response.status != 200 or response.getheader("X-Amz-Function-Error"):
        raise RuntimeError(f"Invoke {name}: {response.status} {data[:200]!r}")
    return elapsed


def streamed(conn: http.client.HTTPConnection, name: str) -> tuple[float, float]:
    """(time to the first body bytes, time to the end of the stream)."""
    started = time.perf_counter()
    conn.request("POST", stream_path(name), body=b"{}", headers=base.INVOKE_HEADERS)
    response = conn.getresponse()
    first = response.read1(65536)
    ttfb = base.ms_since(started)
    rest = response.read()
    total = base.ms_since(started)
    if response.status != 200 or not first or b"ErrorCode" in first + rest:
        raise RuntimeError(f"InvokeWithResponseStream {name}: {response.status} {(first + rest)[:300]!r}")
    return ttfb, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per path")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    node_runtime = _node_runtime()
    server = base.ManagedServer()
    server.start()
    try:
        lam = base.lambda_client(server.port)
        lam.create_function(FunctionName="stream-py", Runtime="python3.11", Role=base.ROLE, Handler="app.handler",
                            Code={"ZipFile": package("app.py", PYTHON)}, MemorySize=1769)
        lam.create_function(FunctionName="stream-node", Runtime=node_runtime, Role=base.ROLE,
                            Handler="index.handler", Code={"ZipFile": package("index.js", NODE)}, MemorySize=1769)
        samples: dict[str, list[float]] = {}
        conns = {key: http.client.HTTPConnection(base.HOST, server.port) for key in ("invoke", "stream")}

        def once(function: str) -> None:
            samples.setdefault(f"{function} Invoke", []).append(buffered(conns["invoke"], function))
            ttfb, total = streamed(conns["stream"], function)
            samples.setdefault(f"{function} TTFB", []).append(ttfb)
            samples.setdefault(f"{function} stream", []).append(total)

        for function in ("stream-py", "stream-node"):  # warm-up: one environment each, connections open
            for _ in range(50):
                once(function)
        samples.clear()
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for function in ("stream-py", "stream-node"):
                for _ in range(per_round):
                    once(function)
        print(f"{per_round * args.rounds} sequential requests per path, warm, one keep-alive connection per API")
        base.print_latency_table("path", samples, width=20)
        for function in ("stream-py", "stream-node"):
            gap = base.Stats.of(samples[f"{function} TTFB"]).p50 - base.Stats.of(samples[f"{function} Invoke"]).p50
            verdict = "within" if gap <= 2.0 else "OVER"
            print(f"{function}: TTFB p50 - Invoke p50 = {gap:+.3f} ms ({verdict} the 2 ms target)")
        return 0
    finally:
        server.stop(keep_log=False)


def _node_runtime() -> str:
    import shutil
    import subprocess
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench/streaming.py needs node on PATH (apt-get install nodejs)")
    major = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return f"nodejs{major.lstrip('v').split('.')[0]}.x"


if __name__ == "__main__":
    sys.exit(main())

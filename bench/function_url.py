"""Function URL benchmark: request latency through a URL against a direct Invoke of the same function.

    .venv/bin/python bench/function_url.py [--requests 2000] [--rounds 4]

One warm function (``return {"statusCode": 200, "body": "ok"}``) gets a function URL. One client
with a keep-alive ``http.client`` connection per path sends requests back to back, alternating
blocks of `requests / rounds` between the two paths so that both see the same machine:

- **Invoke**: ``POST /2015-03-31/functions/<name>/invocations`` with ``{}``;
- **URL**: ``GET /?a=1`` at ``FunctionUrl`` (the URL's own port), i.e. building the 2.0 event,
  running it, and mapping the response;
- **URL-host**: the same on the API port with ``Host: <url-id>.lambda-url.us-east-1.localhost``
  (what a browser sends for the host-name form).

Times are wall-clock at the client, in milliseconds, nearest-rank percentiles. The difference is
the URL front end's own cost.
"""

from __future__ import annotations

import argparse
import http.client
import io
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and statistics of the invoke benchmark)

HANDLER = """def handler(event, context):
    if (event.get("queryStringParameters") or {}).get("id"):  # the URL's id, for the host-name form
        return {"statusCode": 200, "body": event["requestContext"]["apiId"]}
    return {"statusCode": 200, "body": "ok"}
"""


def handler_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return buffer.getvalue()


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict[str, str],
          expected: bytes) -> float:
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = base.ms_since(started)
    if response.status != 200 or data != expected:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return elapsed


def host_form(conn: http.client.HTTPConnection, netloc: str, api_port: int) -> str:
    """The URL's host name on the API port, from the id the function sees (`?id`)."""
    conn.request("GET", "/?id=1", headers={"Host": netloc})
    url_id = conn.getresponse().read().decode()
    return f"{url_id}.lambda-url.us-east-1.localhost:{api_port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per path")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    server = base.ManagedServer()
    server.start()
    try:
        lam = base.lambda_client(server.port)
        lam.create_function(FunctionName="url-bench", Runtime="python3.11", Role=base.ROLE, Handler="app.handler",
                            Code={"ZipFile": handler_zip()}, MemorySize=1769)
        url = lam.create_function_url_config(FunctionName="url-bench", AuthType="NONE")["FunctionUrl"]
        parts = urlsplit(url)
        invoke = http.client.HTTPConnection(base.HOST, server.port)
        direct = http.client.HTTPConnection(base.HOST, parts.port)
        by_host = http.client.HTTPConnection(base.HOST, server.port)
        event_host = host_form(direct, parts.netloc, server.port)
        paths = {
            "Invoke": lambda: timed(invoke, "POST", base.invoke_path("url-bench"), b"{}", base.INVOKE_HEADERS,
                                    b'{"statusCode": 200, "body": "ok"}'),
            "URL": lambda: timed(direct, "GET", "/?a=1", None, {"Host": parts.netloc}, b"ok"),
            "URL-host": lambda: timed(by_host, "GET", "/?a=1", None, {"Host": event_host}, b"ok"),
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for measure in paths.values():  # warm-up: one environment, both connections open
            for _ in range(50):
                measure()
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for name, measure in paths.items():
                samples[name].extend(measure() for _ in range(per_round))
        print(f"{per_round * args.rounds} sequential requests per path, warm, one keep-alive connection each")
        base.print_latency_table("path", samples)
        return 0
    finally:
        server.stop(keep_log=False)


if __name__ == "__main__":
    sys.exit(main())

"""Authentication benchmark: a warm Invoke under `--auth iam` beside the same under `--auth open`.

    .venv/bin/python bench/auth.py [--requests 2000] [--rounds 4]      # make bench-auth

Two servers run side by side on this machine, one `--auth open` (the default) and one `--auth iam`
with a root key from the environment; each has the same warm function
(`def handler(event, context): return event`). One client with a keep-alive `http.client`
connection to each sends `POST /2015-03-31/functions/<name>/invocations` with `{"n": 1}` back to
back, alternating blocks of `requests / rounds` between the two servers so that both see the same
machine. Every request is signed with botocore's SigV4Auth *before* its timer starts, for both
servers (open accepts any signature), so the client's work is identical and the difference is the
server's verification: parsing the Authorization header, hashing the body, botocore's
canonicalisation and one HMAC chain (signing keys are cached per day).

Times are wall-clock at the client, in milliseconds, nearest-rank percentiles.
"""

from __future__ import annotations

import argparse
import time
import http.client
import sys
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and statistics of the invoke benchmark)

KEY, SECRET = "LKIABENCHROOTKEY0001", "bench-root-secret-0123456789"
PAYLOAD = b'{"n": 1}'


def signed_headers(port: int, name: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=f"http://{base.HOST}:{port}{base.invoke_path(name)}", data=PAYLOAD,
                         headers=dict(base.INVOKE_HEADERS))
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def timed(conn: http.client.HTTPConnection, port: int, name: str) -> float:
    headers = signed_headers(port, name)
    started = time.perf_counter()
    conn.request("POST", base.invoke_path(name), body=PAYLOAD, headers=headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = base.ms_since(started)
    if response.status != 200 or data != PAYLOAD:
        raise RuntimeError(f"invoke on port {port}: {response.status} {data[:200]!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per mode")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    root = {"LAMBDALET_ROOT_ACCESS_KEY_ID": KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": SECRET}
    servers = {"open": base.ManagedServer(), "iam": base.ManagedServer(extra_env=root, args=["--auth", "iam"])}
    try:
        connections = {}
        for mode, server in servers.items():
            server.start()
            lam = boto3.client("lambda", endpoint_url=f"http://{base.HOST}:{server.port}",
                                    region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
            base.create_function(lam, "auth-bench", 1769, "python3.11")
            connections[mode] = http.client.HTTPConnection(base.HOST, server.port)
        samples: dict[str, list[float]] = {mode: [] for mode in servers}
        for mode, conn in connections.items():  # warm-up: one environment each, connections open
            for _ in range(50):
                timed(conn, servers[mode].port, "auth-bench")
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for mode, conn in connections.items():
                samples[mode].extend(timed(conn, servers[mode].port, "auth-bench") for _ in range(per_round))
        print(f"{per_round * args.rounds} sequential signed invokes per mode, warm, one keep-alive connection each")
        stats = base.print_latency_table("--auth", samples)
        print(f"iam over open: p50 {100 * (stats['iam'].p50 / stats['open'].p50 - 1):+.1f} %, "
              f"p99 {100 * (stats['iam'].p99 / stats['open'].p99 - 1):+.1f} %")
        return 0
    finally:
        for server in servers.values():
            server.stop(keep_log=False)


if __name__ == "__main__":
    sys.exit(main())

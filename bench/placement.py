#!/usr/bin/env python3
"""Warm invoke latency through a function's home node vs through another node that forwards to it.

    .venv/bin/python bench/placement.py [-n 500] [--database-url postgresql://...]

Starts two `lambdalet server` nodes on 127.0.0.1 sharing one database (a temporary SQLite file by
default), creates an echo function, finds its home (the node whose /_lambdalet/status shows its
environment), then times N sequential warm invokes over one keep-alive http.client connection to
each node, alternating so that both see the same machine load. The difference of the two is what
one forward costs (placement.py). p50 and p99 in milliseconds, nearest rank.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import boto3

from local_nodes import free_port, percentile, status, wait_ready

ROLE = "arn:aws:iam::000000000000:role/bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lambdalet-bench-placement-"))
    database = args.database_url or f"sqlite:///{tmp / 'shared.db'}"
    ports = [free_port(), free_port()]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "LAMBDALET_KEEP_ALIVE": "600"}
    procs = [subprocess.Popen([sys.executable, "-m", "lambdalet", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--data-dir", str(tmp / str(port)), "--database-url", database],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{port}.log", "wb"))
             for port in ports]
    try:
        for port in ports:
            wait_ready(port)
        while not all(len(status(port)["nodes"]) == 2 for port in ports):
            time.sleep(0.2)
        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{ports[0]}", region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        name = f"bench-placement-{uuid.uuid4().hex[:8]}"
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        client.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": code.getvalue()})
        while not all(name in status(port)["functions"] for port in ports):
            time.sleep(0.1)
        path = f"/2015-03-31/functions/{name}/invocations"
        conns = {port: http.client.HTTPConnection("127.0.0.1", port, timeout=60) for port in ports}

        def invoke(port: int) -> float:
            started = time.perf_counter()
            conns[port].request("POST", path, body=b'{"n": 1}', headers={"Content-Type": "application/json"})
            answer = conns[port].getresponse()
            assert answer.status == 200 and answer.read() == b'{"n": 1}', answer.status
            return (time.perf_counter() - started) * 1000

        for _ in range(50):  # warm-up: the environment, both connections, the forwarding session
            for port in ports:
                invoke(port)
        home = next(port for port in ports if sum(status(port)["functions"][name]["environments"].values()))
        samples: dict[int, list[float]] = {port: [] for port in ports}
        for _ in range(args.n):
            for port in ports:
                samples[port].append(invoke(port))
        results = {("home" if port == home else "forwarded"): {
            "p50_ms": round(percentile(s, 50), 3), "p99_ms": round(percentile(s, 99), 3), "n": len(s)}
            for port, s in samples.items()}
        results["database"] = database.split(":", 1)[0]
        for key, value in results.items():
            print(f"{key:10} {value}")
        print(json.dumps(results))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Throughput of trivial invokes through HAProxy in front of 1, 2 and 3 nodes on one PostgreSQL.

    scripts/with-postgres .venv/bin/python bench/cluster.py [-n 3000] [--workers 8] [--functions 6]

For each cluster size N it starts N `lambdalet server` nodes on 127.0.0.1 (a fresh database on
the PostgreSQL of $LAMBDALET_TEST_POSTGRES, as scripts/with-postgres sets it) and HAProxy
(Debian's package; `apt-get install haproxy`) balancing them round-robin, as docs/cluster.md
shows. It creates `--functions` echo functions (their homes spread over the nodes: placement.py),
warms them, then `--workers` threads, each with a keep-alive connection to HAProxy, send `-n`
synchronous invokes in all, round-robin over the functions. Printed per N: invokes per second
and the p50/p99 latency in ms (nearest rank); and, as the baseline in the same run, the same load
sent straight to a one-node server without HAProxy. Also per N: GetFunction's p50/p99 straight
to one node, 500 calls in a row (with peers a control-plane request first reads the change log,
so that a client reads its own writes through any node).

What a 2-core machine can show: the nodes, HAProxy, PostgreSQL and the load generator share the
same two cores, so more nodes cannot add CPU; the numbers show what the balancer and the
node-to-node forwarding (an invoke that lands on a non-home node is sent on to the home) cost,
not how a cluster of machines scales.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import boto3
import sqlalchemy

from local_nodes import free_port, percentile, status, wait_ready

ROLE = "arn:aws:iam::000000000000:role/bench"
HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option http-server-close
frontend lambda
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    http-reuse always
{servers}
"""


def fresh_database(base_url: str) -> str:
    name = f"lambdalet_bench_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


def start_nodes(count: int, database: str, tmp: Path) -> tuple[list[int], list[subprocess.Popen]]:
    ports = [free_port() for _ in range(count)]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "LAMBDALET_KEEP_ALIVE": "600"}
    procs = [subprocess.Popen([sys.executable, "-m", "lambdalet", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--data-dir", str(tmp / f"node-{port}"), "--database-url", database,
                               "--node-name", f"node-{i}", "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"node-{port}.log", "wb"))
             for i, port in enumerate(ports)]
    for port in ports:
        wait_ready(port)
    while not all(len(status(port)["nodes"]) == count for port in ports):
        time.sleep(0.2)
    return ports, procs


def start_haproxy(ports: list[int], tmp: Path) -> tuple[int, subprocess.Popen]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(haproxy):
        raise SystemExit("bench/cluster.py needs HAProxy: apt-get install haproxy")
    port = free_port()
    servers = "\n".join(f"    server n{i} 127.0.0.1:{node}" for i, node in enumerate(ports))
    config = tmp / f"haproxy-{port}.cfg"
    config.write_text(HAPROXY.format(port=port, servers=servers))
    proc = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"haproxy-{port}.log", "wb"))
    wait_ready(port)
    return port, proc


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_functions(port: int, node_ports: list[int], count: int) -> list[str]:
    client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    names = [f"bench-cluster-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    for name in names:
        client.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": code.getvalue()})
    while not all(name in status(node)["functions"] for node in node_ports for name in names):
        time.sleep(0.1)
    return names


def load(port: int, names: list[str], total: int, workers: int) -> dict:
    """`total` invokes from `workers` threads: invokes/s and latency percentiles."""
    samples: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for i in counter:
            path = f"/2015-03-31/functions/{names[i % len(names)]}/invocations"
            started = time.perf_counter()
            conn.request("POST", path, body=b'{"n": 1}', headers={"Content-Type": "application/json"})
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200 or body != b'{"n": 1}':
                raise SystemExit(f"invoke answered {answer.status}: {body[:200]!r}")
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"invokes_per_s": round(len(samples) / elapsed, 1), "p50_ms": round(percentile(samples, 50), 3),
            "p99_ms": round(percentile(samples, 99), 3), "n": len(samples)}


def reads(port: int, name: str, total: int) -> dict:
    """`total` GetFunction calls straight to one node, one after another: latency percentiles. A
    node with live peers reads the change log before each (api/consistency.py); alone it does not."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples = []
    for _ in range(total):
        started = time.perf_counter()
        conn.request("GET", f"/2015-03-31/functions/{name}")
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise SystemExit(f"GetFunction answered {answer.status}: {body[:200]!r}")
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(samples, 50), 3), "p99_ms": round(percentile(samples, 99), 3), "n": total}


def run(count: int, base_url: str, tmp: Path, args: argparse.Namespace, balanced: bool) -> dict:
    ports, procs = start_nodes(count, fresh_database(base_url), tmp)
    try:
        port = ports[0]
        if balanced:
            port, proxy = start_haproxy(ports, tmp)
            procs.append(proxy)
        names = make_functions(port, ports, args.functions)
        load(port, names, max(200, args.functions * 20), args.workers)  # warm-up: environments, connections
        result = load(port, names, args.n, args.workers)
        result["get_function_on_one_node"] = reads(ports[0], names[0], 500)
        result["homes"] = sorted(sum(1 for name in names if sum(status(node)["functions"][name]["environments"]
                                                                 .values())) for node in ports)
        return result
    finally:
        stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--functions", type=int, default=6)
    args = parser.parse_args()
    base_url = os.environ.get("LAMBDALET_TEST_POSTGRES")
    if not base_url:
        raise SystemExit("run under scripts/with-postgres (it sets LAMBDALET_TEST_POSTGRES)")
    tmp = Path(tempfile.mkdtemp(prefix="lambdalet-bench-cluster-"))
    results = {"baseline_1_node_direct": run(1, base_url, tmp, args, balanced=False)}
    for count in (1, 2, 3):
        results[f"haproxy_{count}_nodes"] = run(count, base_url, tmp, args, balanced=True)
    for key, value in results.items():
        print(f"{key:24} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

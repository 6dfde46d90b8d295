"""Asynchronous invocation benchmark: how fast events are accepted (durably) and delivered.

    .venv/bin/python bench/async_queue.py [--events 5000] [--clients 8]

1. **Accepted events/s**: C clients (threads, each with its own keep-alive `http.client`
   connection) send N `InvocationType: Event` invokes of a trivial function as fast as the server
   answers 202. Each 202 means the event is committed to the database (SQLite here).
2. **Delivered events/s**: from the first 202 until the queue is empty again (the status
   endpoint's `async_queue.depth`), i.e. every event has run.
3. **Server CPU per event**: the server process's CPU time (all its threads: the event loop and the
   queue's database thread; not the runtimes) from the first request until the queue is empty,
   divided by the events: accepting plus delivering one event costs the server this much.

Issue 5's target: ≥ 2,000 events/s accepted on a 2-core machine with SQLite.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and HTTP client of the invoke benchmark)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    server = base.ManagedServer()
    server.start()
    try:
        lam = base.lambda_client(server.port)
        lam.create_function(FunctionName="async-bench", Runtime="python3.11", Role=base.ROLE, Handler="app.handler",
                            Code={"ZipFile": base.handler_zip("python3.11")}, MemorySize=1769)
        per_client = args.events // args.clients
        accepted = [0] * args.clients
        errors = [0] * args.clients

        def client(index: int) -> None:
            conn = base.Connection(server.port)
            for n in range(per_client):
                reply = conn.post(base.invoke_path("async-bench"), json.dumps({"n": n}).encode(),
                                  {"X-Amz-Invocation-Type": "Event"})
                if reply.status == 202:
                    accepted[index] += 1
                else:
                    errors[index] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        cpu_before = base.cpu_seconds(server.pid) if server.pid else None
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accept_s = time.perf_counter() - started
        while True:
            _status, status = base.get_json(server.port, "/_lambdalet/status")
            if status["functions"]["async-bench"]["async_queue"]["depth"] == 0:
                break
            time.sleep(0.05)
        deliver_s = time.perf_counter() - started
        cpu_after = base.cpu_seconds(server.pid) if server.pid else None
        total = sum(accepted)
        print(f"{total} events accepted by {args.clients} clients in {accept_s:.2f} s: "
              f"{total / accept_s:,.0f} accepted events/s (errors {sum(errors)})")
        print(f"all delivered {deliver_s:.2f} s after the first: {total / deliver_s:,.0f} delivered events/s")
        if cpu_before is not None and cpu_after is not None and total:
            print(f"server CPU: {(cpu_after - cpu_before) / total * 1e6:,.0f} µs per event accepted and delivered "
                  f"({100 * (cpu_after - cpu_before) / deliver_s:.0f} % of one core)")
        return 0 if not sum(errors) else 1
    finally:
        server.stop(keep_log=False)


if __name__ == "__main__":
    sys.exit(main())

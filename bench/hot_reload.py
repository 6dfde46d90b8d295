"""Hot reload benchmark: from saving a file to the first invoke that runs the new code.

    .venv/bin/python bench/hot_reload.py [--edits 20]

A function takes its code live from a temporary directory (S3Bucket "hot-reload"). Each round
rewrites `app.py` with a new version number, then invokes back to back (one keep-alive connection)
until the answer carries that number. The time from the write to that answer is the number that
matters to someone editing code; it includes the watcher noticing (inotify, then 50 ms of quiet),
retiring the warm environment, and a cold start with the new code. Issue 7's target: ≤ 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and statistics of the invoke benchmark)

CODE = "VERSION = {n}\n\ndef handler(event, context):\n    return VERSION\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    server = base.ManagedServer()
    server.start()
    directory = Path(tempfile.mkdtemp(prefix="lambdalet-hot-reload-"))
    directory.chmod(0o755)
    try:
        (directory / "app.py").write_text(CODE.format(n=0))
        (directory / "app.py").chmod(0o644)
        lam = base.lambda_client(server.port)
        lam.create_function(FunctionName="hot", Runtime="python3.11", Role=base.ROLE, Handler="app.handler",
                            Code={"S3Bucket": "hot-reload", "S3Key": str(directory)})
        conn = http.client.HTTPConnection(base.HOST, server.port)
        path = base.invoke_path("hot")

        def version() -> int:
            conn.request("POST", path, body=b"{}", headers=base.INVOKE_HEADERS)
            return json.loads(conn.getresponse().read())

        version()
        samples, polls = [], []
        for n in range(1, args.edits + 1):
            started = time.perf_counter()
            (directory / "app.py").write_text(CODE.format(n=n))
            count = 1
            while version() != n:
                count += 1
            samples.append(base.ms_since(started))
            polls.append(count)
        stats = base.Stats.of(samples)
        print(f"{args.edits} edits: file written -> first invoke running the new code")
        print(f"p50 {stats.p50:.0f} ms, p90 {stats.p90:.0f} ms, max {stats.max:.0f} ms "
              f"(invokes per edit until then: median {sorted(polls)[len(polls) // 2]})")
        return 0
    finally:
        server.stop(keep_log=False)
        for file in directory.iterdir():
            file.unlink()
        directory.rmdir()


if __name__ == "__main__":
    sys.exit(main())

"""Console benchmark: how long the functions page takes to load in a real browser, with one
function (the baseline) and with 1,000.

    .venv/bin/python bench/console.py [--functions 1000] [--loads 30]      # make bench-console

A server is started as bench/invoke.py starts one; headless Chromium (Debian's, through
Playwright) opens `/console/` in a fresh page for every load and the clock runs from the
navigation until the list shows its first page of functions (50 rows, or all of them when there
are fewer): the HTML, the script and the style sheet, ListFunctions with MaxItems=50, and the
rows drawn. The baseline runs in the same process on the same server before the other functions
are created. Times are wall-clock at the client, in milliseconds, nearest-rank percentiles.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and statistics of the invoke benchmark)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROLE = "arn:aws:iam::000000000000:role/lambda-role"


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def create(lam, names: list[str]) -> None:
    code = package()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                                                       Handler="app.handler", Code={"ZipFile": code}), names))


def loads(browser, url: str, count: int, rows: int) -> list[float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    times = []
    for _ in range(count + 3):  # 3 to warm the browser's own caches and the server's code paths
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url + "/console/")
        page.locator("tbody tr").nth(rows - 1).wait_for()
        times.append(base.ms_since(started))
        page.close()
    context.close()
    return times[3:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=30)
    args = parser.parse_args()
    server = base.ManagedServer()
    try:
        server.start()
        url = f"http://{base.HOST}:{server.port}"
        lam = base.lambda_client(server.port)
        create(lam, ["console-bench-0000"])
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            baseline = loads(browser, url, args.loads, 1)
            started = time.perf_counter()
            create(lam, [f"console-bench-{n:04d}" for n in range(1, args.functions)])
            print(f"created {args.functions - 1} more functions in {time.perf_counter() - started:.1f} s")
            many = loads(browser, url, args.loads, min(50, args.functions))
            browser.close()
        print(f"{args.loads} loads of /console/ each, until the first page of functions is drawn")
        base.print_latency_table("functions", {"1": baseline, str(args.functions): many}, width=10, digits=1,
                                 align=">")
        return 0
    finally:
        server.stop(keep_log=False)


if __name__ == "__main__":
    sys.exit(main())

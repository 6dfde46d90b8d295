#!/usr/bin/env python3
"""Cold starts of a container-image function beside a zip function running the same bootstrap.

    .venv/bin/python bench/images.py [--rounds 50]        # make bench-images

Needs Debian's `docker-registry` (an OCI registry, started here on a free loopback port) and
`busybox-static` (the image's shell); the linux sandbox backend (run as root).

Two functions run the same shell `bootstrap` (a Runtime API loop with busybox's wget):
- **image**: an image pushed by `lambdalet push-image` — busybox at /bin, the bootstrap at
  /var/task — whose root becomes the environment's whole root file system;
- **zip**: `provided.al2023` with the same bootstrap and busybox in its zip, on the host's root.

Each round retires both functions' environments (UpdateFunctionConfiguration with a new
environment variable) and invokes each once, in alternating order, after one unmeasured cold start
of each (the first also starts the zygote); the image was unpacked at CreateFunction, so no round
pays a pull. Reported per function: the REPORT line's Init Duration
(from starting the process until the runtime asked for its first event) and the invoke end to end
(client → response), p50 and p99 in ms. Issue 14's target: the image's p50 Init Duration at most
1.5 × the zip's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke as base  # noqa: E402  (the server handling and statistics of the invoke benchmark)

from lambdalet.images import build, reference  # noqa: E402
from lambdalet.images.registry import RegistrySession, new_pool  # noqa: E402

BUSYBOX = Path("/bin/busybox")
TOOLS = ("sh", "wget", "grep", "sed", "tr", "cat")
BOOTSTRAP = """#!{shell}
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  {bb}wget -q -S -O /tmp/event "$API/invocation/next" 2>/tmp/headers
  ID=$({bb}grep -i Lambda-Runtime-Aws-Request-Id /tmp/headers | {bb}sed 's/.*: *//' | {bb}tr -d '\\r ')
  {bb}wget -q -O /dev/null --post-file /tmp/event "$API/invocation/$ID/response"
done
"""
INIT = re.compile(r"Init Duration: ([\d.]+) ms")


def start_registry(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("docker-registry")
    if binary is None:
        sys.exit("bench/images.py needs an OCI registry: apt-get install docker-registry")
    port = base.free_port()
    config = workdir / "registry.yml"
    config.write_text(f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {workdir / 'registry'}}}}}\n"
                      f"http: {{addr: 127.0.0.1:{port}}}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("the registry did not answer within 10 s")


def push_image(workdir: Path, uri: str) -> None:
    root, task = workdir / "root", workdir / "task"
    (root / "bin").mkdir(parents=True)
    task.mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for tool in TOOLS:
        (root / "bin" / tool).symlink_to("busybox")
    (task / "bootstrap").write_text(BOOTSTRAP.format(shell="/bin/sh", bb=""))
    (task / "bootstrap").chmod(0o755)
    image = reference.parse(uri)
    session = RegistrySession(image, None, insecure=True, http=new_pool(), scope="pull,push")
    build.push(session, image, [build.folder_layer(root), build.folder_layer(task, "/var/task")],
               build.ImageSpec(entrypoint=["/var/task/bootstrap"], env={"PATH": "/bin"}))


def zip_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (("bootstrap", BOOTSTRAP.format(shell="/var/task/busybox sh", bb="/var/task/busybox ").encode()),
                           ("busybox", BUSYBOX.read_bytes())):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def cold_start(lam, name: str, round_no: int) -> tuple[float, float]:
    config = lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"BENCH_N": str(round_no)}})
    # as on AWS, the next update is refused until this one is done
    base.wait_until(lam, name, "LastUpdateStatus", "Successful", config.get("LastUpdateStatus"))
    started = time.perf_counter()
    response = lam.invoke(FunctionName=name, Payload=b'{"n": 1}', LogType="Tail")
    elapsed = base.ms_since(started)
    body, log = response["Payload"].read(), base64.b64decode(response["LogResult"]).decode()
    match = INIT.search(log)
    if response.get("FunctionError") or json.loads(body) != {"n": 1} or match is None:
        raise RuntimeError(f"{name}: unexpected answer {body[:200]!r}, log {log[-400:]!r}")
    return float(match.group(1)), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    if not BUSYBOX.is_file():
        sys.exit("bench/images.py needs a static busybox at /bin/busybox: apt-get install busybox-static")
    workdir = Path(tempfile.mkdtemp(prefix="lambdalet-bench-images-"))
    registry, port = start_registry(workdir)
    server = base.ManagedServer()
    ok = False
    try:
        uri = f"127.0.0.1:{port}/bench:v1"
        push_image(workdir, uri)
        server.start()
        lam = base.lambda_client(server.port)
        lam.create_function(FunctionName="image", PackageType="Image", Code={"ImageUri": uri}, Role=base.ROLE)
        lam.create_function(FunctionName="zip", Runtime="provided.al2023", Handler="bootstrap", Role=base.ROLE,
                            Code={"ZipFile": zip_package()})
        for name in ("image", "zip"):  # the first start of each also starts the exec zygote: not counted
            cold_start(lam, name, -1)
        samples: dict[str, tuple[list[float], list[float]]] = {"image": ([], []), "zip": ([], [])}
        for round_no in range(args.rounds):
            order = ("image", "zip") if round_no % 2 == 0 else ("zip", "image")
            for name in order:
                init, end_to_end = cold_start(lam, name, round_no)
                samples[name][0].append(init)
                samples[name][1].append(end_to_end)
        result = {}
        for name, (inits, totals) in samples.items():
            init, total = base.Stats.of(inits), base.Stats.of(totals)
            result[name] = {"init_p50": init.p50, "init_p99": init.p99, "e2e_p50": total.p50, "e2e_p99": total.p99}
            print(f"{name:6} cold start ({args.rounds}): Init Duration p50 {init.p50:.2f} ms  p99 {init.p99:.2f} ms   "
                  f"end to end p50 {total.p50:.2f} ms  p99 {total.p99:.2f} ms")
        ratio = result["image"]["init_p50"] / result["zip"]["init_p50"]
        print(f"image / zip Init Duration p50: {ratio:.2f} (target <= 1.5)")
        print(json.dumps({"rounds": args.rounds, **result, "init_p50_ratio": round(ratio, 3)}))
        ok = True
        return 0
    finally:
        server.stop(keep_log=not ok)
        registry.kill()
        registry.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

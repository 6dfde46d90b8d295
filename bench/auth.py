"""Authentication and authorisation benchmark: a warm Invoke under `--auth iam` beside `--auth open`.

    .venv/bin/python bench/auth.py [--requests 2000] [--rounds 10]      # make bench-auth

Two servers run side by side on this machine, one `--auth open` (the default) and one `--auth iam`
with a root key from the environment; each has the same warm function
(`def handler(event, context): return event`). One client with a keep-alive `http.client`
connection to each sends `POST /2015-03-31/functions/<name>/invocations` with `{"n": 1}` back to
back, alternating blocks of `requests / rounds` between the two servers so that both see the same
machine. Every request is signed with botocore's SigV4Auth *before* its timer starts, for both
servers (open accepts any signature), so the client's work is identical and the difference is the
server's verification: parsing the Authorization header, hashing the body, botocore's
canonicalisation and one HMAC chain (signing keys are cached per day).

Two callers are timed against the iam server: its root key (`iam`: authentication, and the
resource-policy-only evaluation of a root), and an IAM user (`iam-user`) whose five attached
policies of ten statements each allow the invoke only in the last statement, so authorisation
evaluates every compiled statement (AWS's evaluation, `iam/evaluation.py`) on each request.

Times are wall-clock at the client, in milliseconds, nearest-rank percentiles.
"""

from __future__ import annotations

import argparse
import json
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


ROLE_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def user_policies(count: int = 5, statements: int = 10) -> list[str]:
    """`count` policies of `statements` statements, none granting the invoke but the very last."""
    documents = []
    for number in range(count):
        body = [{"Effect": "Allow", "Action": [f"lambda:Get{kind}" for kind in ("Function", "Alias", "Policy")],
                 "Resource": f"arn:aws:lambda:us-east-1:000000000000:function:other-{number}-{index}*"}
                for index in range(statements)]
        documents.append(json.dumps({"Version": "2012-10-17", "Statement": body}))
    last = json.loads(documents[-1])
    last["Statement"][-1] = {"Effect": "Allow", "Action": "lambda:InvokeFunction",
                             "Resource": "arn:aws:lambda:us-east-1:000000000000:function:auth-bench"}
    documents[-1] = json.dumps(last)
    return documents


def signed_headers(port: int, name: str, credentials: Credentials) -> dict[str, str]:
    request = AWSRequest(method="POST", url=f"http://{base.HOST}:{port}{base.invoke_path(name)}", data=PAYLOAD,
                         headers=dict(base.INVOKE_HEADERS))
    SigV4Auth(credentials, "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def timed(conn: http.client.HTTPConnection, port: int, name: str, credentials: Credentials) -> float:
    headers = signed_headers(port, name, credentials)
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
    parser.add_argument("--rounds", type=int, default=10, help="alternations between the callers (drift averages out)")
    args = parser.parse_args()
    root = {"LAMBDALET_ROOT_ACCESS_KEY_ID": KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": SECRET}
    servers = {"open": base.ManagedServer(), "iam": base.ManagedServer(extra_env=root, args=["--auth", "iam"])}
    root_credentials = Credentials(KEY, SECRET)
    try:
        for server in servers.values():
            server.start()
        endpoint = f"http://{base.HOST}:{servers['iam'].port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY,
                           aws_secret_access_key=SECRET)
        iam.create_role(RoleName="r", AssumeRolePolicyDocument=ROLE_TRUST)  # the benchmark's base.ROLE
        iam.create_user(UserName="bench")
        for number, document in enumerate(user_policies()):  # managed: inline ones share 2,048 characters
            arn = iam.create_policy(PolicyName=f"p{number}", PolicyDocument=document)["Policy"]["Arn"]
            iam.attach_user_policy(UserName="bench", PolicyArn=arn)
        key = iam.create_access_key(UserName="bench")["AccessKey"]
        callers = {"open": ("open", root_credentials), "iam": ("iam", root_credentials),
                   "iam-user": ("iam", Credentials(key["AccessKeyId"], key["SecretAccessKey"]))}
        for server in servers.values():
            lam = boto3.client("lambda", endpoint_url=f"http://{base.HOST}:{server.port}",
                               region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
            base.create_function(lam, "auth-bench", 1769, "python3.11")
        connections = {mode: http.client.HTTPConnection(base.HOST, servers[server].port)
                       for mode, (server, _) in callers.items()}

        def run(mode: str) -> float:
            server, credentials = callers[mode]
            return timed(connections[mode], servers[server].port, "auth-bench", credentials)

        samples: dict[str, list[float]] = {mode: [] for mode in callers}
        for mode in callers:  # warm-up: one environment each, connections open
            for _ in range(50):
                run(mode)
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for mode in callers:
                samples[mode].extend(run(mode) for _ in range(per_round))
        print(f"{per_round * args.rounds} sequential signed invokes per caller, warm, one keep-alive connection each")
        stats = base.print_latency_table("--auth", samples)
        for mode in ("iam", "iam-user"):
            print(f"{mode} over open: p50 {100 * (stats[mode].p50 / stats['open'].p50 - 1):+.1f} %, "
                  f"p99 {100 * (stats[mode].p99 / stats['open'].p99 - 1):+.1f} %")
        return 0
    finally:
        for server in servers.values():
            server.stop(keep_log=False)


if __name__ == "__main__":
    sys.exit(main())

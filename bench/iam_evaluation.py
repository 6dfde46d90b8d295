"""IAM policy evaluation benchmark: `authorize` for realistic policies beside trivial baselines.

    python bench/iam_evaluation.py [--calls 20000]

One process, no server. A user in account A holds 5 identity policies of 10 statements each
(wildcard actions and resources, NotAction, a Deny, conditions on aws:SourceIp, aws:CurrentTime
and aws:username, a `${aws:username}` resource); the function has a resource policy of 20
statements (accounts, role and user ARNs, a service principal with aws:SourceArn/aws:SourceAccount
conditions, a Deny with NotPrincipal). Policies are compiled once, as callers do (compile time is
printed too). Each timed call gets a fresh AuthorizationRequest built beforehand, so the lazily
derived condition context is rebuilt every call, as it would be per request.

Rows: `dict lookup` (one dict get, the floor of what a cached answer costs), `allow-all` (one
`Action: *, Resource: *` identity policy), then the realistic cases. Times are per call, measured
with perf_counter_ns around each call, in microseconds, nearest-rank percentiles.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lambdalet.iam.documents import PolicyKind, compile_policy  # noqa: E402
from lambdalet.iam.evaluation import AuthorizationRequest, Principal, authorize, request_context  # noqa: E402

A, B = "111122223333", "444455556666"
FUNCTION = f"arn:aws:lambda:us-east-1:{A}:function:orders"
USER = Principal(f"arn:aws:iam::{A}:user/team/alice", A, "AIDAALICE", username="alice")
OTHER = Principal(f"arn:aws:sts::{B}:assumed-role/deployer/s", B, "AROADEPLOYER:s", role_arn=f"arn:aws:iam::{B}:role/deployer")
S3 = Principal("", "", service="s3.amazonaws.com")


def identity_policy(n: int) -> dict:
    """Ten statements, most about other services or functions; the last policy grants the Invoke
    (under a condition) and denies the Delete, so both are found only after all five are read."""
    statements = [
        {"Effect": "Allow", "Action": [f"s3:Get{n}*", "s3:List*"], "Resource": f"arn:aws:s3:::bucket-{n}/*"},
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": f"arn:aws:dynamodb:us-east-1:{A}:table/t{n}"},
        {"Effect": "Allow", "Action": ["lambda:GetFunction", "lambda:ListFunctions"], "Resource": "*"},
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": f"arn:aws:lambda:us-east-1:{A}:function:batch-{n}-*"},
        {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "lambda:*"], "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}},
        {"Effect": "Allow", "Action": "lambda:Update*", "Resource": f"arn:aws:lambda:*:{A}:function:${{aws:username}}-*"},
        {"Effect": "Allow", "Action": "logs:*", "Resource": f"arn:aws:logs:us-east-1:{A}:log-group:/aws/lambda/*"},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": f"arn:aws:sqs:us-east-1:{A}:q{n}",
         "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
        {"Effect": "Deny", "Action": "lambda:DeleteFunction",
         "Resource": f"arn:aws:lambda:*:{A}:function:" + ("orders*" if n == 4 else "prod-*")},
        {"Effect": "Allow", "Action": "lambda:Invoke*", "Resource": f"arn:aws:lambda:us-east-1:{A}:function:orders*",
         "Condition": {"StringEquals": {"aws:username": "alice"}}} if n == 4 else
        {"Effect": "Allow", "Action": "kinesis:Put*", "Resource": f"arn:aws:kinesis:us-east-1:{A}:stream/s{n}"},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def resource_policy() -> dict:
    statements = []
    for i in range(16):
        statements.append({"Sid": f"account{i}", "Effect": "Allow", "Principal": {"AWS": f"9999000000{i:02d}"},
                           "Action": "lambda:InvokeFunction", "Resource": FUNCTION})
    statements.append({"Sid": "role", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:role/deployer"},
                       "Action": ["lambda:InvokeFunction", "lambda:GetFunction"], "Resource": FUNCTION})
    statements.append({"Sid": "s3", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                       "Action": "lambda:InvokeFunction", "Resource": FUNCTION,
                       "Condition": {"StringEquals": {"AWS:SourceAccount": A},
                                     "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::uploads-*"}}})
    statements.append({"Sid": "user", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:user/team/bob"},
                       "Action": "lambda:*", "Resource": FUNCTION})
    statements.append({"Sid": "deny", "Effect": "Deny", "NotPrincipal": {"AWS": [A, B], "Service": "s3.amazonaws.com"},
                       "Action": "lambda:DeleteFunction", "Resource": FUNCTION})
    return {"Version": "2012-10-17", "Id": "default", "Statement": statements}


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))]


def timed(calls: int, make: Callable[[], object], run: Callable[[object], object]) -> list[float]:
    arguments = [make() for _ in range(calls)]
    samples = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for argument in arguments:
            start = clock()
            run(argument)
            samples.append((clock() - start) / 1000)
    finally:
        gc.enable()
    return sorted(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls

    documents = [json.dumps(identity_policy(n)) for n in range(5)]
    started = time.perf_counter()
    identities = [compile_policy(d, PolicyKind.IDENTITY) for d in documents]
    resource = compile_policy(json.dumps(resource_policy()), PolicyKind.RESOURCE)
    compile_us = (time.perf_counter() - started) * 1e6 / 6
    allow_all = [compile_policy({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}},
                                PolicyKind.IDENTITY)]
    context = request_context(source_ip="203.0.113.5", secure_transport=True)
    s3_context = {**context, "aws:sourceaccount": A, "aws:sourcearn": "arn:aws:s3:::uploads-7"}
    answers = {("u", "lambda:InvokeFunction"): True}

    def request(principal: Principal, action: str = "lambda:InvokeFunction", ctx: dict = context) -> Callable[[], object]:
        account = A
        return lambda: AuthorizationRequest(principal, action, FUNCTION, account, ctx)

    cases: dict[str, tuple[Callable[[], object], Callable[[object], object]]] = {
        "dict lookup": (lambda: ("u", "lambda:InvokeFunction"), answers.get),
        "allow-all": (request(USER), lambda r: authorize(r, allow_all, None)),
        "user, allowed (5x10 + 20)": (request(USER), lambda r: authorize(r, identities, resource)),
        "user, implicit deny": (request(USER, "lambda:PublishVersion"), lambda r: authorize(r, identities, resource)),
        "user, explicit deny": (request(USER, "lambda:DeleteFunction"), lambda r: authorize(r, identities, resource)),
        "other account session": (request(OTHER, "lambda:GetFunction"), lambda r: authorize(r, identities, resource)),
        "s3 service + conditions": (request(S3, ctx=s3_context), lambda r: authorize(r, [], resource)),
    }
    expected = {"allow-all": "ALLOW", "user, allowed (5x10 + 20)": "ALLOW", "user, implicit deny": "IMPLICIT_DENY",
                "user, explicit deny": "EXPLICIT_DENY", "other account session": "ALLOW", "s3 service + conditions": "ALLOW"}
    for label, want in expected.items():
        make, run = cases[label]
        assert run(make()).outcome.name == want, label  # type: ignore[attr-defined]

    print("Lambdalet IAM policy evaluation benchmark")
    print(f"  python    {platform.python_version()} ({sys.executable}) on {platform.machine()}, {platform.system()}")
    print(f"  policies  5 identity x 10 statements + resource policy of 20; compile {compile_us:.0f} us per document")
    print(f"  calls     {calls} per row (+{calls // 10} warm-up)")
    print()
    print(f"{'case':<28} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'max us':>9}")
    for label, (make, run) in cases.items():
        timed(calls // 10, make, run)
        samples = timed(calls, make, run)
        p50, p90, p99 = (percentile(samples, f) for f in (0.5, 0.9, 0.99))
        print(f"{label:<28} {p50:8.2f} {p90:8.2f} {p99:8.2f} {samples[-1]:9.1f}")


if __name__ == "__main__":
    main()

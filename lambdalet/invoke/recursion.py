"""Recursive loop detection: the `Lineage` of a trace header, counted per function, and the stop at 16.

AWS tracks how many times one chain of events has invoked each function in the X-Ray trace header
it hands the function (`_X_AMZN_TRACE_ID`): `Root=…;Parent=…;Sampled=0;Lineage=<hash>:<count>`,
one `<hash>:<count>` entry per function, `|`-separated. The function's AWS SDK copies that header
into what it sends (`X-Amzn-Trace-Id`; SQS keeps it as the message's `AWSTraceHeader`), so the next
invocation that event causes arrives with the count. Past 16, a function whose recursion config is
`Terminate` (the default) is not invoked: `RecursiveInvocationException` (docs/deviations.md says
which paths this server can see). As on AWS, a chain's first invocation of a function runs with
count 0 (`Lineage=<hash>:0`) and each later one with one more, so the 16th runs with 15 and the
17th, which would have 16, is stopped.

The check is on the invoke path, so it is a substring test and, only when a lineage is there, one
split; a function's hash is computed once.
"""

from __future__ import annotations

import hashlib

from lambdalet.errors import RecursiveInvocationException

#: Invocations of a function one chain of events may cause before the next is stopped (AWS: "after 16").
MAX_DEPTH = 16
RECURSIVE_LOOPS = ("Allow", "Terminate")
DEFAULT_RECURSIVE_LOOP = "Terminate"
#: The destination record's `condition` and the metric's label when a loop is stopped.
CONDITION = "RecursiveInvocationDetected"


def lineage_count(trace: str, key: str) -> int | None:
    """The count of the function `key` names in this trace's lineage (how many invocations of it
    the chain had before the one that sent it); None when it has none."""
    start = trace.find("Lineage=")
    if start < 0:
        return None
    value = trace[start + 8:].split(";", 1)[0]
    for entry in value.split("|"):
        parts = entry.split(":")  # hash:count (and the versioned form version:hash:count)
        if len(parts) >= 2 and parts[-2] == key:
            try:
                return int(parts[-1])
            except ValueError:
                return None
    return None


def with_lineage(trace: str, key: str, count: int) -> str:
    """The trace with this function's lineage entry set to `count` (others kept)."""
    start = trace.find("Lineage=")
    entry = f"{key}:{count}"
    if start < 0:
        return f"{trace};Lineage={entry}"
    end = trace.find(";", start)
    value = trace[start + 8:] if end < 0 else trace[start + 8:end]
    kept = [e for e in value.split("|") if e and e.split(":")[-2:-1] != [key]]
    rest = "" if end < 0 else trace[end:]
    return f"{trace[:start]}Lineage={'|'.join([*kept, entry])}{rest}"


class RecursionGuard:
    """Which functions allow recursion (`PutFunctionRecursionConfig`, kept by the registry from the
    database) and the check every invocation passes through."""

    def __init__(self) -> None:
        self.allowed: set[str] = set()
        self._keys: dict[str, str] = {}

    def key(self, name: str) -> str:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = hashlib.sha256(name.encode()).hexdigest()[:8]
        return key

    def enter(self, name: str, trace: str) -> str:
        """The trace the invocation runs with (its count for `name`: 0 for the chain's first, one
        more than the trace's otherwise); raises RecursiveInvocationException when the chain has
        invoked `name` MAX_DEPTH times already and the function does not allow recursion."""
        key = self.key(name)
        previous = lineage_count(trace, key)
        count = 0 if previous is None else previous + 1
        if count >= MAX_DEPTH and name not in self.allowed:
            raise RecursiveInvocationException(
                "Lambda detected that your function is being invoked in a recursive loop with other AWS "
                "resources and stopped your function's invocation.")
        return with_lineage(trace, key, count)

    def set(self, name: str, recursive_loop: str) -> None:
        if recursive_loop == "Allow":
            self.allowed.add(name)
        else:
            self.allowed.discard(name)

    def recursive_loop(self, name: str) -> str:
        return "Allow" if name in self.allowed else DEFAULT_RECURSIVE_LOOP

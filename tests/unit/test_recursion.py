"""invoke/recursion.py: the Lineage of a trace header, counted and stopped at 16."""

import pytest

from lambdalet.errors import RecursiveInvocationException
from lambdalet.invoke.recursion import MAX_DEPTH, RecursionGuard, lineage_count, with_lineage

ROOT = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=0"


def test_lineage_count_reads_this_functions_entry_in_either_form():
    assert lineage_count(ROOT, "a87bd80c") is None
    assert lineage_count(f"{ROOT};Lineage=68fd508a:5", "a87bd80c") is None
    assert lineage_count(f"{ROOT};Lineage=a87bd80c:3", "a87bd80c") == 3
    assert lineage_count(f"{ROOT};Lineage=68fd508a:5|a87bd80c:2", "a87bd80c") == 2
    assert lineage_count(f"{ROOT};Lineage=1:a87bd80c:7;Self=1-x", "a87bd80c") == 7
    assert lineage_count(f"{ROOT};Lineage=a87bd80c:x", "a87bd80c") is None


def test_with_lineage_sets_one_entry_and_keeps_the_rest():
    assert with_lineage(ROOT, "k", 1) == f"{ROOT};Lineage=k:1"
    assert with_lineage(f"{ROOT};Lineage=o:5|k:2", "k", 3) == f"{ROOT};Lineage=o:5|k:3"
    assert with_lineage(f"Root=1-a;Lineage=k:2;Sampled=1", "k", 3) == "Root=1-a;Lineage=k:3;Sampled=1"


def test_the_guard_counts_up_and_stops_after_16_unless_allowed():
    guard = RecursionGuard()
    trace = ROOT
    for invocation in range(MAX_DEPTH):  # 16 invocations run, with counts 0 to 15
        trace = guard.enter("fn", trace)
        assert lineage_count(trace, guard.key("fn")) == invocation
    with pytest.raises(RecursiveInvocationException):  # the 17th is stopped
        guard.enter("fn", trace)
    assert lineage_count(guard.enter("other", trace), guard.key("other")) == 0  # another function's own count
    guard.set("fn", "Allow")
    assert guard.recursive_loop("fn") == "Allow"
    assert lineage_count(guard.enter("fn", trace), guard.key("fn")) == MAX_DEPTH
    guard.set("fn", "Terminate")
    assert guard.recursive_loop("fn") == "Terminate"

"""PollerContext.invoke: what every event source mapping's batch goes through before the invoker."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from lambdalet.errors import ResourceConflictException
from lambdalet.events.sources.base import PollerContext
from lambdalet.model import FunctionConfig

from .test_stream_poller import _mapping


class OneFunction:
    """The registry's `config`, answering one configuration."""

    def __init__(self, config: FunctionConfig) -> None:
        self.config_ = config

    def config(self, name: str, qualifier: str | None = None, draw: float | None = None) -> FunctionConfig:
        return self.config_


class NoInvoker:
    async def invoke(self, config, invocation):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a version being created was invoked")


def test_a_batch_for_a_version_being_created_is_refused_before_the_invoker():
    """As Invoke refuses a Pending function (AWS's ResourceConflictException): the batch waits."""
    config = dataclasses.replace(FunctionConfig("f", "python3.12", "app.handler", "arn:aws:iam::0:role/r", "0", 1),
                                 state="Pending")
    context = PollerContext(OneFunction(config), NoInvoker(), store=None, metrics=None, report=None)
    with pytest.raises(ResourceConflictException) as refused:
        asyncio.run(context.invoke(_mapping(), b'{"Records": []}'))
    assert refused.value.message == ("The operation cannot be performed at this time. The function is currently in "
                                     "the following state: Pending")

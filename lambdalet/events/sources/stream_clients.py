"""The calls a stream poller makes to Kinesis or DynamoDB Streams: shard listings, iterators, reads.

Each kind of stream answers the same questions with its own operations and parameter names
(`StreamARN` vs `StreamArn`, `ListShards` vs `DescribeStream`); the poller sees one interface.
Every call goes through `PollerContext.aws`, on a thread, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdalet.events.mappings import EventSourceMapping
from lambdalet.events.sources.base import PollerContext, SourceGone, client_error_code
from lambdalet.events.sources.stream_events import StreamRecord, dynamodb_record, kinesis_record

#: Error codes that say the stream is not there for us: the mapping stops.
GONE_CODES = ("ResourceNotFoundException", "AccessDeniedException", "AccessDenied", "UnauthorizedOperation")


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parents: tuple[str, ...]
    #: Closed by a reshard (Kinesis) or a rotation (DynamoDB): it has an end.
    closed: bool


def _shard(description: dict[str, Any]) -> Shard:
    parents = tuple(p for p in (description.get("ParentShardId"), description.get("AdjacentParentShardId")) if p)
    closed = bool(description.get("SequenceNumberRange", {}).get("EndingSequenceNumber"))
    return Shard(description["ShardId"], parents, closed)


class StreamClient:
    """The calls one kind of stream answers, through `PollerContext.aws` (never on the event loop)."""

    service = ""
    #: GetRecords' own cap on Limit.
    read_limit = 10_000

    def __init__(self, mapping: EventSourceMapping, ctx: PollerContext) -> None:
        self.mapping, self.ctx = mapping, ctx
        self.arn = mapping.source_arn
        self.region = self.arn.split(":")[3]

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.ctx.aws(self.service, self.region, operation, function_name=self.mapping.function_name,
                                  **params)

    async def shards(self) -> list[Shard]:
        raise NotImplementedError

    async def listing(self) -> list[Shard]:
        """The stream's shards; SourceGone when the stream is not there for us (other errors pass)."""
        try:
            return await self.shards()
        except Exception as exc:
            code = client_error_code(exc)
            if code == "ResourceNotFoundException":
                raise SourceGone(f"The stream {self.arn} does not exist.") from exc
            if code in GONE_CODES:
                raise SourceGone(f"Lambdalet is not allowed to read the stream {self.arn} ({code}).") from exc
            raise

    async def iterator(self, shard_id: str, kind: str, *, after: str | None = None,
                       timestamp: float | None = None) -> str | None:
        raise NotImplementedError

    async def read(self, iterator: str, limit: int) -> dict[str, Any]:
        return await self.call("get_records", ShardIterator=iterator, Limit=min(limit, self.read_limit))

    def record(self, raw: dict[str, Any], shard_id: str) -> StreamRecord:
        raise NotImplementedError


class KinesisClient(StreamClient):
    service = "kinesis"

    def __init__(self, mapping: EventSourceMapping, ctx: PollerContext) -> None:
        super().__init__(mapping, ctx)
        self.role = ctx.role(mapping)

    async def shards(self) -> list[Shard]:
        found: list[Shard] = []
        answer = await self.call("list_shards", StreamARN=self.arn)
        while True:
            found.extend(_shard(s) for s in answer.get("Shards", []))
            token = answer.get("NextToken")
            if not token:
                return found
            answer = await self.call("list_shards", NextToken=token)

    async def iterator(self, shard_id: str, kind: str, *, after: str | None = None,
                       timestamp: float | None = None) -> str | None:
        params: dict[str, Any] = {"StreamARN": self.arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if after is not None:
            params["StartingSequenceNumber"] = after
        if timestamp is not None:
            params["Timestamp"] = timestamp
        return (await self.call("get_shard_iterator", **params)).get("ShardIterator")

    async def read(self, iterator: str, limit: int) -> dict[str, Any]:
        # StreamARN is optional on AWS (the iterator names the stream) but moto needs it.
        return await self.call("get_records", ShardIterator=iterator, Limit=min(limit, self.read_limit),
                               StreamARN=self.arn)

    def record(self, raw: dict[str, Any], shard_id: str) -> StreamRecord:
        return kinesis_record(raw, shard_id=shard_id, stream_arn=self.arn, region=self.region, role=self.role)


class DynamoDBClient(StreamClient):
    service = "dynamodbstreams"
    read_limit = 1_000

    async def shards(self) -> list[Shard]:
        found: list[Shard] = []
        params: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = (await self.call("describe_stream", **params))["StreamDescription"]
            found.extend(_shard(s) for s in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return found
            params["ExclusiveStartShardId"] = last

    async def iterator(self, shard_id: str, kind: str, *, after: str | None = None,
                       timestamp: float | None = None) -> str | None:
        params: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if after is not None:
            params["SequenceNumber"] = after
        return (await self.call("get_shard_iterator", **params)).get("ShardIterator")

    def record(self, raw: dict[str, Any], shard_id: str) -> StreamRecord:
        return dynamodb_record(raw, stream_arn=self.arn)

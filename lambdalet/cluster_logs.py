"""Every node's logs, whichever node is asked: CloudWatch Logs' reads over a cluster.

Each node writes the streams of the environments it runs to its own disk (`logs.py`), so an
invoke pays nothing for being in a cluster. A read through any node is answered from all of
them: `ClusterLogReader` has `LogReader`'s methods, reads this node's files directly and asks
each live peer for its own at PEER_PATH (signed with the nodes' shared key, `node_auth.py`).
Group and stream lists are unions; a stream lives on the one node that wrote it (its name
carries its environment's id), so its byte-offset tokens mean the same through every node; a
filter merges each node's first `limit` events in (timestamp, stream, offset) order. A group's
retention and deletion are applied on every node that has the group. A peer that does not
answer within PEER_TIMEOUT_S is left out of that answer, and logged.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from typing import Any

from lambdalet import node_auth
from lambdalet.log_groups import Event, Group, GroupNotFound, LogReader, Stream, StreamNotFound

log = logging.getLogger(__name__)
PEER_PATH = "/_lambdalet/peer/logs"
PEER_TIMEOUT_S = 10.0
NOT_FOUND = {"GroupNotFound": GroupNotFound, "StreamNotFound": StreamNotFound}


class PeerUnavailable(Exception):
    """The peer did not answer (stopping, dead, unreachable)."""


class PeerLogs:
    """One other node's logs, over HTTP."""

    def __init__(self, name: str, url: str, key: bytes) -> None:
        self.name, self._url, self._key = name, url, key

    def call(self, op: str, **args: Any) -> Any:
        try:
            reply = node_auth.post(self._key, self._url, PEER_PATH, {"op": op, "args": args}, PEER_TIMEOUT_S)
        except (OSError, ValueError) as exc:
            log.warning("logs of node %s left out: %s", self.name, exc)
            raise PeerUnavailable(self.name) from exc
        if "error" in reply:
            raise NOT_FOUND[reply["error"]](args.get("name") or args.get("stream") or "")
        return reply["result"]


def answer(reader: LogReader, op: str, args: dict[str, Any]) -> Any:
    """What a peer's `call` gets: one `LogReader` method on this node's files, as JSON."""
    if op == "group_names":
        return reader.group_names()
    if op == "group":
        return dataclasses.asdict(reader.group(args["name"]))
    if op == "set_retention":
        return reader.set_retention(args["name"], args["days"])
    if op == "delete_group":
        return reader.delete_group(args["name"])
    if op == "stream_names":
        return reader.stream_names(args["group"])
    if op == "streams":
        return [dataclasses.asdict(stream) for stream in reader.streams(args["group"], args["names"])]
    if op == "events":
        return [dataclasses.astuple(event) for event in reader.events(args["group"], args["stream"], args["start"],
                                                                      args["until"])]
    if op == "size":
        return reader.size(args["group"], args["stream"])
    if op == "filter":
        found, more = reader.filter(args["group"], args["streams"], args["start_time"], args["end_time"],
                                    args["pattern"], tuple(args["after"]) if args["after"] else None, args["limit"])
        return [[stream, dataclasses.astuple(event)] for stream, event in found], more
    raise ValueError(f"no such logs operation: {op}")


class ClusterLogReader:
    """`LogReader`'s reads and group changes, over this node's files and every live peer's."""

    def __init__(self, local: LogReader, peers: list[PeerLogs]) -> None:
        self.local, self.peers = local, peers
        self._owners: dict[tuple[str, str], PeerLogs] = {}  # (group, stream) → the peer that has it

    def _each(self, op: str, **args: Any) -> list[tuple[PeerLogs | None, Any]]:
        """`op` on this node (None) and each peer that has what it names (not-found and silent
        peers left out)."""
        results: list[tuple[PeerLogs | None, Any]] = []
        try:
            results.append((None, getattr(self.local, op)(**args)))
        except (GroupNotFound, StreamNotFound):
            pass
        for peer in self.peers:
            try:
                results.append((peer, peer.call(op, **args)))
            except (GroupNotFound, StreamNotFound, PeerUnavailable):
                continue
        return results

    # -- groups -----------------------------------------------------------------------------------

    def group_names(self) -> list[str]:
        return sorted({name for _node, names in self._each("group_names") for name in names})

    def has_group(self, name: str) -> bool:
        return bool(self._each("group", name=name))

    def group(self, name: str) -> Group:
        found = [found if node is None else Group(**found) for node, found in self._each("group", name=name)]
        if not found:
            raise GroupNotFound(name)
        retention = next((group.retention_days for group in found if group.retention_days), None)
        return Group(name, min(group.creation_time for group in found), retention,
                     sum(group.stored_bytes for group in found))

    def set_retention(self, name: str, days: int | None) -> None:
        if not self._each("set_retention", name=name, days=days):
            raise GroupNotFound(name)

    def delete_group(self, name: str) -> None:
        if not self._each("delete_group", name=name):
            raise GroupNotFound(name)

    # -- streams ----------------------------------------------------------------------------------

    def stream_names(self, group: str) -> list[str]:
        listed = self._each("stream_names", group=group)
        if not listed:
            raise GroupNotFound(group)
        for node, names in listed:
            if node is not None:
                self._owners.update({(group, name): node for name in names})
        return sorted({name for _node, names in listed for name in names})

    def _owner(self, group: str, stream: str) -> PeerLogs | None:
        """The peer that has the stream; None: this node."""
        if (group, stream) not in self._owners and not self.local.stream_path(group, stream).exists():
            self.stream_names(group)
        if (group, stream) in self._owners:
            return self._owners[(group, stream)]
        return None  # here, or nowhere: this node's reader says which

    def streams(self, group: str, names: list[str]) -> list[Stream]:
        by_owner: dict[PeerLogs | None, list[str]] = {}
        for name in names:
            by_owner.setdefault(self._owner(group, name), []).append(name)
        found: dict[str, Stream] = {}
        for owner, owned in by_owner.items():
            try:
                streams = (self.local.streams(group, owned) if owner is None
                           else [Stream(**stream) for stream in owner.call("streams", group=group, names=owned)])
            except (GroupNotFound, PeerUnavailable):
                continue
            found.update((stream.name, stream) for stream in streams)
        return [found[name] for name in names if name in found]

    def stream(self, group: str, name: str) -> Stream:
        found = self.streams(group, [name])
        if not found:
            raise StreamNotFound(name)
        return found[0]

    def events(self, group: str, stream: str, start: int = 0, until: int | None = None) -> list[Event]:
        owner = self._owner(group, stream)
        if owner is None:
            return self.local.events(group, stream, start, until)
        return [Event(*event) for event in self._from(owner, "events", group=group, stream=stream,
                                                      start=start, until=until)]

    def size(self, group: str, stream: str) -> int:
        owner = self._owner(group, stream)
        if owner is None:
            return self.local.size(group, stream)
        return self._from(owner, "size", group=group, stream=stream)

    @staticmethod
    def _from(owner: PeerLogs, op: str, **args: Any) -> Any:
        try:
            return owner.call(op, **args)
        except PeerUnavailable:  # its node went: as if the stream had
            raise StreamNotFound(args["stream"]) from None

    def filter(self, group: str, streams: list[str], start_time: int | None, end_time: int | None,
               pattern: str | None, after: tuple[int, str, int] | None, limit: int
               ) -> tuple[list[tuple[str, Event]], bool]:
        """LogReader.filter over every node: each node's first `limit` of its own streams, merged."""
        by_owner: dict[PeerLogs | None, list[str]] = {}
        for stream in streams:
            by_owner.setdefault(self._owner(group, stream), []).append(stream)
        found: list[tuple[str, Event]] = []
        more = False
        for owner, owned in by_owner.items():
            if owner is None:
                part, part_more = self.local.filter(group, owned, start_time, end_time, pattern, after, limit)
            else:
                try:
                    listed, part_more = owner.call("filter", group=group, streams=owned, start_time=start_time,
                                                   end_time=end_time, pattern=pattern, after=after, limit=limit)
                except (GroupNotFound, PeerUnavailable):
                    continue
                part = [(stream, Event(*event)) for stream, event in listed]
            found.extend(part)
            more = more or part_more
        chosen = heapq.nsmallest(limit + 1, found, key=lambda item: (item[1].timestamp, item[0], item[1].offset))
        return chosen[:limit], more or len(chosen) > limit

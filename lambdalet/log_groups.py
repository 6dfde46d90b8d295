"""Reading the logs back as CloudWatch Logs shows them: groups, streams, events, filters, retention.

Works on the files `logs.py` writes (see there for the layout). Everything here is plain blocking
file I/O, meant to run off the event loop (`asyncio.to_thread`) after the caller has flushed the
live streams (`LogStore.flush_all`, on the loop). A trailing line without its newline is a write in
progress and is not read yet.

Events older than a group's retention are never returned; `sweep` removes them from disk (whole
files when every event is too old, rewriting the others), except from streams still being written,
which are swept once their environment ends.
"""

from __future__ import annotations

import heapq
import os
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from lambdalet.logs import GROUP_META, STREAM_SUFFIX, LogStore, decode_name, now_ms, read_meta, record_text, write_meta

DAY_MS = 86_400_000
#: CloudWatch Logs' allowed retentionInDays values.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)


@dataclass(frozen=True)
class Event:
    offset: int  # byte offset of the line in its stream file: the position tokens name
    end: int  # byte offset just past the line
    timestamp: int
    message: str


@dataclass(frozen=True)
class Group:
    name: str
    creation_time: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True)
class Stream:
    name: str
    creation_time: int
    first_event: int | None
    last_event: int | None
    last_ingestion: int | None
    stored_bytes: int


class GroupNotFound(Exception):
    pass


class StreamNotFound(Exception):
    pass


def cloudwatch_message(stored: str) -> str:
    """An event's message as Lambda puts it in CloudWatch, ending with a newline: a printed line as
    printed (a carriage return kept), a runtime's multi-line record (`logs.RECORD_MARK`) with its
    lines and carriage returns (`logs.record_text`)."""
    return record_text(stored) + "\n"


def parse_lines(data: bytes, base: int = 0) -> Iterator[Event]:
    position = 0
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            return
        line = data[position:newline]
        stamp, _, message = line.partition(b" ")
        try:
            timestamp = int(stamp)
        except ValueError:
            timestamp = 0
        yield Event(base + position, base + newline + 1, timestamp, message.decode("utf-8", errors="replace"))
        position = newline + 1


def compile_pattern(pattern: str | None) -> Callable[[str], bool]:
    """CloudWatch's term patterns: every plain term or "quoted phrase" must occur, no -term may, and
    with ?terms at least one of them must (case-sensitive). JSON and space-delimited patterns are not
    supported."""
    if not pattern or not pattern.strip():
        return lambda message: True
    text = pattern.strip()
    if text[0] in "{[" or text.startswith("%"):
        raise ValueError("Only term filter patterns (terms, \"phrases\", ?any, -none) are supported by this "
                         "Lambdalet server.")
    required, optional, excluded = [], [], []
    for match in re.finditer(r'([?\-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))', text):
        sign, phrase, word = match.group(1), match.group(2), match.group(3)
        term = phrase.replace('\\"', '"') if phrase is not None else word
        if not term:
            continue
        (optional if sign == "?" else excluded if sign == "-" else required).append(term)

    def matches(message: str) -> bool:
        return (all(t in message for t in required) and not any(t in message for t in excluded)
                and (not optional or any(t in message for t in optional)))

    return matches


class LogReader:
    def __init__(self, store: LogStore) -> None:
        self.store = store

    # -- groups -----------------------------------------------------------------------------------

    def _group_dir(self, group: str) -> Path:
        directory = self.store.group_dir(group)
        if not (directory / GROUP_META).is_file():
            raise GroupNotFound(group)
        return directory

    def group_names(self) -> list[str]:
        try:
            entries = os.listdir(self.store.root)
        except FileNotFoundError:
            return []
        names = (self._decoded_group(entry) for entry in entries
                 if os.path.isfile(os.path.join(self.store.root, entry, GROUP_META)))
        return sorted(name for name in names if name is not None)

    def _decoded_group(self, entry: str) -> str | None:
        name = decode_name(entry)
        if name is None:  # a long name, spelled as its digest: the meta has it
            name = (read_meta(self.store.root / entry) or {}).get("logGroupName")
        return name

    def has_group(self, name: str) -> bool:
        return (self.store.group_dir(name) / GROUP_META).is_file()

    def group(self, name: str) -> Group:
        directory = self._group_dir(name)
        meta = read_meta(directory) or {}
        size = sum(entry.stat().st_size for entry in os.scandir(directory) if entry.name.endswith(STREAM_SUFFIX))
        return Group(name, int(meta.get("creationTime", 0)), meta.get("retentionInDays"), size)

    def set_retention(self, name: str, days: int | None) -> None:
        directory = self._group_dir(name)
        meta = read_meta(directory) or {"creationTime": now_ms()}
        if days is None:
            meta.pop("retentionInDays", None)
        else:
            meta["retentionInDays"] = days
        write_meta(directory, meta)

    def delete_group(self, name: str) -> None:
        directory = self._group_dir(name)
        shutil.rmtree(directory, ignore_errors=True)

    def cutoff(self, name: str) -> int:
        """Events before this epoch millisecond are past the group's retention (0: kept forever)."""
        days = (read_meta(self.store.group_dir(name)) or {}).get("retentionInDays")
        return now_ms() - days * DAY_MS if days else 0

    # -- streams ----------------------------------------------------------------------------------

    def stream_names(self, group: str) -> list[str]:
        directory = self._group_dir(group)
        # (streams are named by environments, never long: a digest is not a stream this server wrote)
        names = (decode_name(entry.name[: -len(STREAM_SUFFIX)]) for entry in os.scandir(directory)
                 if entry.name.endswith(STREAM_SUFFIX))
        return sorted(name for name in names if name is not None)

    def streams(self, group: str, names: list[str]) -> list[Stream]:
        """`stream` of each of `names` that exists, in that order."""
        found = []
        for name in names:
            try:
                found.append(self.stream(group, name))
            except StreamNotFound:  # gone meanwhile
                continue
        return found

    def stream_path(self, group: str, stream: str) -> Path:
        from lambdalet.logs import encode_name

        return self._group_dir(group) / (encode_name(stream) + STREAM_SUFFIX)

    def stream(self, group: str, name: str) -> Stream:
        path = self.stream_path(group, name)
        try:
            stat = path.stat()
            with open(path, "rb") as file:
                head = file.read(64)
                file.seek(max(0, stat.st_size - 65536))
                tail = file.read()
        except FileNotFoundError:
            raise StreamNotFound(name) from None
        cutoff = self.cutoff(group)
        first = next(parse_lines(head + b"\n"), None) if head else None
        lines = list(parse_lines(tail))
        last = lines[-1].timestamp if lines else None
        first_ts = first.timestamp if first else None
        if first_ts is not None and first_ts < cutoff:  # the head is past retention: find the first kept one
            kept = [e.timestamp for e in self.events(group, name) if e.timestamp >= cutoff]
            first_ts = kept[0] if kept else None
            last = kept[-1] if kept else None
        created = first_ts if first_ts is not None else int(stat.st_mtime * 1000)
        return Stream(name, created, first_ts, last, last, stat.st_size)

    def events(self, group: str, stream: str, start: int = 0, until: int | None = None) -> list[Event]:
        """The stream's complete lines from byte offset `start` (to `until`), past retention left out."""
        path = self.stream_path(group, stream)
        try:
            with open(path, "rb") as file:
                file.seek(start)
                data = file.read() if until is None else file.read(max(0, until - start))
        except FileNotFoundError:
            raise StreamNotFound(stream) from None
        cutoff = self.cutoff(group)
        return [event for event in parse_lines(data, start) if event.timestamp >= cutoff]

    def size(self, group: str, stream: str) -> int:
        """Offset just past the last complete line."""
        path = self.stream_path(group, stream)
        try:
            with open(path, "rb") as file:
                file.seek(0, os.SEEK_END)
                end = file.tell()
                file.seek(max(0, end - 65536))
                tail = file.read()
        except FileNotFoundError:
            raise StreamNotFound(stream) from None
        return end - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else end - len(tail)

    # -- filter across streams ----------------------------------------------------------------------

    def filter(self, group: str, streams: list[str], start_time: int | None, end_time: int | None,
               pattern: str | None, after: tuple[int, str, int] | None, limit: int
               ) -> tuple[list[tuple[str, Event]], bool]:
        """Events of `streams` in (timestamp, stream, offset) order, strictly after `after`, that
        match `pattern` (`compile_pattern`); at most `limit`, and whether there are more."""
        matches = compile_pattern(pattern)

        def candidates() -> Iterator[tuple[int, str, int, Event]]:
            for stream in streams:
                try:
                    events = self.events(group, stream)
                except StreamNotFound:
                    continue
                for event in events:
                    if start_time is not None and event.timestamp < start_time:
                        continue
                    if end_time is not None and event.timestamp > end_time:
                        continue
                    key = (event.timestamp, stream, event.offset)
                    if after is not None and key <= after:
                        continue
                    if matches(event.message):
                        yield (event.timestamp, stream, event.offset, event)

        chosen = heapq.nsmallest(limit + 1, candidates(), key=lambda item: item[:3])
        return [(stream, event) for _ts, stream, _offset, event in chosen[:limit]], len(chosen) > limit

    # -- retention --------------------------------------------------------------------------------

    def sweep(self, live: set[Path]) -> int:
        """Remove events past each group's retention from disk; returns how many files changed."""
        changed = 0
        for group in self.group_names():
            directory = self.store.group_dir(group)
            days = (read_meta(directory) or {}).get("retentionInDays")
            if not days:
                continue
            cutoff = now_ms() - days * DAY_MS
            for entry in os.scandir(directory):
                path = Path(entry.path)
                if not entry.name.endswith(STREAM_SUFFIX) or path in live:
                    continue
                changed += _sweep_file(path, cutoff)
        return changed


def _sweep_file(path: Path, cutoff: int) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    events = list(parse_lines(data))
    kept = [event for event in events if event.timestamp >= cutoff]
    if len(kept) == len(events):
        return 0
    if not kept:
        path.unlink(missing_ok=True)
        return 1
    tmp = path.with_name(path.name + ".sweep")
    tmp.write_bytes(b"".join(data[event.offset:event.end] for event in kept))
    os.replace(tmp, path)
    return 1


def event_id(stream: str, event: Event) -> str:
    """Stable and unique in the group, digits only like CloudWatch's."""
    return f"{event.timestamp:015d}{zlib.crc32(stream.encode()):010d}{event.offset:015d}"

"""Hot reload: functions whose code is a directory of the host, read live.

One watcher (`watchfiles`: inotify, off the event loop) per directory in use. When files under it
change, every environment of the functions using it is retired: an environment in the middle of an
invocation finishes it first, and the next invoke starts a fresh one that imports the new code.
Without a change nothing happens, so warm state (connections, caches) survives between invokes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

import watchfiles

log = logging.getLogger(__name__)
#: Changes are gathered until the directory has been quiet this long (an editor's save is several
#: events), then acted on; `MAX_GROUP_MS` caps the wait during a long burst.
QUIET_MS = 50
MAX_GROUP_MS = 300


class HotReloader:
    def __init__(self, users: Callable[[], Iterable[tuple[str, str]]], retire: Callable[[str], None]) -> None:
        """`users()` lists (function name, directory) for every hot-reload function version;
        `retire(name)` retires all of a function's environments."""
        self._users = users
        self._retire = retire
        self._watchers: dict[str, asyncio.Task[None]] = {}

    def sync(self) -> None:
        """Watch exactly the directories in use now (call after any function changed)."""
        wanted = {directory for _name, directory in self._users()}
        for directory in wanted - self._watchers.keys():
            self._watchers[directory] = asyncio.get_running_loop().create_task(self._watch(directory))
        for directory in self._watchers.keys() - wanted:
            self._watchers.pop(directory).cancel()

    async def _watch(self, directory: str) -> None:
        try:
            # No shared stop event: cancelling one watcher sets the event it was given.
            async for changes in watchfiles.awatch(directory, step=QUIET_MS, debounce=MAX_GROUP_MS, recursive=True):
                names = sorted({name for name, used in self._users() if used == directory})
                log.info("hot reload: %d change(s) under %s; retiring the environments of %s", len(changes),
                         directory, ", ".join(names))
                for name in names:
                    self._retire(name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the directory went away, too many inotify watches, ...
            log.warning("hot reload: cannot watch %s any more (%s); edits there are not picked up", directory, exc)

    async def close(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        self._watchers.clear()

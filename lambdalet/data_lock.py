"""One server per data directory: an exclusive lock held for the server's whole life.

Two servers on one data directory would share its SQLite database, code blobs and log files, and
each would take the other's in-flight asynchronous events for its own crashed leftovers at start-up
(re-running them). Servers that share state do so through PostgreSQL, each with a data directory of
its own. The lock is `flock` on `<data-dir>/lambdalet.lock`: the kernel releases it when the process
ends, however it ends, so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "lambdalet.lock"


class DataDirInUse(Exception):
    """Another live process holds the data directory."""


def lock_data_dir(data_dir: Path) -> int:
    """Take the data directory's lock; returns its descriptor (keep it open: closing releases it)."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(f"the data directory {data_dir} is in use by another Lambdalet server (pid {holder}); "
                           "give this one its own --data-dir (servers share state through --database-url "
                           "postgresql://...)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd

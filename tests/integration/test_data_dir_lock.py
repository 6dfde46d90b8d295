"""A second server on a data directory already in use is refused at start-up, with a message
saying why, and never touches the first one's state (its in-flight events among it)."""

from __future__ import annotations

import signal
import subprocess
import sys

from conftest import REPO_ROOT, free_port


def test_a_second_server_on_the_same_data_dir_is_refused(fresh_server):
    fresh_server.start()
    second = subprocess.run(
        [sys.executable, "-m", "lambdalet", "server", "--port", str(free_port()), "--data-dir", str(fresh_server.data_dir)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert second.returncode != 0
    assert "is in use by another Lambdalet server" in second.stderr and str(fresh_server.proc.pid) in second.stderr, second.stderr
    assert fresh_server.client().list_functions()["Functions"] == []  # the first one is unharmed


def test_the_lock_goes_with_a_killed_server(fresh_server):
    fresh_server.start()
    fresh_server.stop(signal.SIGKILL)
    fresh_server.start()  # no stale lock: the kernel released it with the process
    assert fresh_server.client().list_functions()["Functions"] == []

"""Changes pushed between nodes (issue 20): on PostgreSQL a change made through one node reaches
the others by LISTEN/NOTIFY (change_signals.py), not by their poll of the change log — here the
poll is set to 10 minutes, so only a notification can deliver it — and still after the database
dropped the listening connection.

PostgreSQL only: `make test` runs this file in its PostgreSQL pass (`scripts/with-postgres`).
"""

from __future__ import annotations

import uuid

import pytest

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip

from .helpers import wait_until
from .test_database_outage import drop_connections


def test_changes_reach_the_other_node_by_notification(tmp_path):
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does)")
    database = fresh_postgres_database(POSTGRES["url"])
    args = ["--database-url", database, "--changes-poll-interval", "600"]
    nodes = [Server(tmp_path / name, args=[*args, "--node-name", name]) for name in ("a", "b")]
    name = f"pushed-{uuid.uuid4().hex[:8]}"
    try:
        for node in nodes:
            node.start()
        a, b = (node.client() for node in nodes)

        def described() -> str | None:
            found = [f for f in b.list_functions()["Functions"] if f["FunctionName"] == name]
            return found[0].get("Description") if found else None

        a.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
                          Description="first")
        wait_until(lambda: described() == "first", timeout=20, what="node b to see the new function")
        a.get_waiter("function_active_v2").wait(FunctionName=name)

        drop_connections(database)  # every session, the listening ones too: they listen again
        for round_ in range(3):  # until a change lands after node b listens again (it wakes once on reconnecting)
            a.update_function_configuration(FunctionName=name, Description=f"after the outage {round_}")
            a.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
        wait_until(lambda: described() == "after the outage 2", timeout=20,
                   what="node b to see the change made after the outage")
    finally:
        for node in nodes:
            node.stop()

"""A server holding more than 1,024 file descriptors still starts environments: nothing between the
server and its zygotes or templates uses select(), which cannot watch a descriptor numbered 1,024
or more, and the zygote takes the lowest free number for the control socket it inherits."""

from __future__ import annotations

import resource
import socket

from conftest import invoke_json, make_zip

CONNECTIONS = 1100
NEEDED = 4 * CONNECTIONS


def test_cold_start_with_1100_client_connections_open(fresh_server, unique_name):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= NEEDED, (
        f"this test needs an open-file limit of {NEEDED}; the host's hard limit is {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, NEEDED), hard))  # inherited by the server
    connections = []
    try:
        fresh_server.start()
        for _ in range(CONNECTIONS):  # client connections that never send a byte
            connections.append(socket.create_connection(("127.0.0.1", fresh_server.port)))
        lam = fresh_server.client()
        lam.create_function(FunctionName=unique_name, Runtime="python3.11", Handler="app.handler",
                            Role="arn:aws:iam::000000000000:role/r",
                            Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return event\n"})})
        response, payload = invoke_json(lam, unique_name, {"n": 1})  # the first cold start: a new zygote
        assert response["StatusCode"] == 200 and payload == {"n": 1}
    finally:
        for conn in connections:
            conn.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

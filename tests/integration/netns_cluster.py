"""Three Lambdalet nodes as three hosts on this machine, behind a real HAProxy (issue 20).

Each node runs in a network namespace of its own (`ip netns`), joined to the test host by a veth
pair on a bridge: 10.77.K.1 is the host, 10.77.K.11-13 the nodes, so a node reaches the others
and the host only over that network, as separate machines would. The services the nodes use
(PostgreSQL, moto) listen on the host's loopback; a relay on 10.77.K.1 forwards each one's port
there. HAProxy (Debian's package, installed when missing) listens on the host's loopback and
balances the nodes as docs/cluster.md configures it. Needs root (namespaces, links).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT, free_port

NODE_PORT = 9001
HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client  120s
    timeout server  120s
    retries 2
    option redispatch
    option http-server-close
frontend lambda
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    default-server inter 1s fall 2 rise 2
{servers}
frontend function_urls
    bind 127.0.0.1:{first_url_port}-{last_url_port}
    default_backend url_nodes
backend url_nodes
    balance roundrobin
    default-server inter 1s fall 2 rise 2
{url_servers}
"""
#: Function URLs' own ports: each node listens on them, HAProxy on the host's loopback forwards each
#: to the same port of a node.
URL_PORTS = 4


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if not os.path.exists("/usr/sbin/haproxy"):
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], capture_output=True, timeout=600,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    if found is None:
        pytest.fail("this test needs HAProxy: apt-get install haproxy (as root it is installed by the test)")
    return found


def free_port_range(count: int) -> int:
    """The first of `count` consecutive ports free on the host's loopback now."""
    for _ in range(100):
        first = random.randrange(20000, 30000)
        sockets = []
        try:
            for port in range(first, first + count):
                sockets.append(socket.create_server(("127.0.0.1", port)))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


class Relay:
    """Forward TCP connections to `listen` on to 127.0.0.1:`port` (threads: a test's few)."""

    def __init__(self, host: str, port: int) -> None:
        self._server = socket.create_server((host, port))
        self._port = port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._port))
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


class Node:
    def __init__(self, cluster: "NetnsCluster", index: int) -> None:
        self.name = f"node-{index}"
        self.netns = f"{cluster.prefix}n{index}"
        self.ip = f"{cluster.net}.{10 + index}"
        self.url = f"http://{self.ip}:{NODE_PORT}"
        self.data_dir = cluster.tmp / self.name
        self.log_path = cluster.tmp / f"{self.name}.log"
        self._cluster = cluster
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cluster = self._cluster
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "LAMBDALET_KEEP_ALIVE": "60", "LAMBDALET_DRAIN_TIMEOUT": "5", **cluster.env}
        cmd = ["ip", "netns", "exec", self.netns, sys.executable, "-m", "lambdalet", "server",
               "--host", self.ip, "--port", str(NODE_PORT), "--data-dir", str(self.data_dir),
               "--database-url", cluster.database, "--node-name", self.name, "--advertise-url", self.url,
               "--auth", "open", "--function-url-ports", f"{cluster.url_ports[0]}-{cluster.url_ports[1]}",
               "--function-url-host", "127.0.0.1", *cluster.args]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_lambdalet/status", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within 60 s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class NetnsCluster:
    """Three nodes in namespaces on one bridge, PostgreSQL and moto relayed, HAProxy in front."""

    def __init__(self, tmp: Path, database_url: str, relayed_ports: list[int], args: list[str],
                 env: dict[str, str], count: int = 3) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            pytest.fail("this test needs root and iproute2's `ip` (network namespaces for its three nodes)")
        self.tmp = tmp
        self.prefix = f"ll{random.randrange(16**4):04x}"
        self.net = f"10.77.{random.randrange(1, 250)}"
        self.host_ip = f"{self.net}.1"
        self.bridge = f"{self.prefix}br"
        self.args, self.env = args, env
        self.database = database_url.replace("127.0.0.1", self.host_ip)
        self.nodes = [Node(self, i) for i in range(1, count + 1)]
        self._relays: list[Relay] = []
        self._haproxy: subprocess.Popen | None = None
        self.lb_url = ""
        self._ports = relayed_ports
        first_url_port = free_port_range(URL_PORTS)
        self.url_ports = (first_url_port, first_url_port + URL_PORTS - 1)

    def host_url(self, url: str) -> str:
        """A host service's loopback URL as the nodes reach it, through the relay."""
        return url.replace("127.0.0.1", self.host_ip)

    def start(self) -> None:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for i, node in enumerate(self.nodes, 1):
            veth = f"{self.prefix}v{i}"
            run("ip", "netns", "add", node.netns)
            run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
            run("ip", "link", "set", veth, "master", self.bridge)
            run("ip", "link", "set", veth, "up")
            run("ip", "-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
            run("ip", "-n", node.netns, "link", "set", "eth0", "up")
            run("ip", "-n", node.netns, "link", "set", "lo", "up")
        self._relays = [Relay(self.host_ip, port) for port in self._ports]
        for node in self.nodes:
            node.start()
        port = free_port()
        servers = "\n".join(f"    server {node.name} {node.ip}:{NODE_PORT} check" for node in self.nodes)
        url_servers = "\n".join(f"    server {node.name} {node.ip} check port {NODE_PORT}" for node in self.nodes)
        config = self.tmp / "haproxy.cfg"
        config.write_text(HAPROXY.format(port=port, servers=servers, first_url_port=self.url_ports[0],
                                         last_url_port=self.url_ports[1], url_servers=url_servers))
        self._haproxy = subprocess.Popen([haproxy_binary(), "-db", "-f", str(config)],
                                         stdout=open(self.tmp / "haproxy.log", "ab"), stderr=subprocess.STDOUT)
        self.lb_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.lb_url + "/_lambdalet/status", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"HAProxy did not answer: {(self.tmp / 'haproxy.log').read_text()[-2000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._haproxy is not None:
            self._haproxy.terminate()
            self._haproxy.wait(timeout=10)
        for relay in self._relays:
            relay.close()
        for node in self.nodes:
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)

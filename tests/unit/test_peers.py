"""Who made a loopback TCP connection (lambdalet/sandbox/peers.py), on real sockets of this process."""

from __future__ import annotations

import os
import socket

import pytest

from lambdalet.sandbox import peers


@pytest.fixture
def connection():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    yield listener, client
    for sock in (accepted, client, listener):
        sock.close()


def test_the_connecting_socket_is_found_by_its_addresses(connection):
    listener, client = connection
    inode = peers.tcp_socket_inode(local=client.getsockname(), remote=listener.getsockname())
    assert inode == os.fstat(client.fileno()).st_ino
    assert peers.holds_socket(os.getpid(), inode)


def test_a_connection_counts_only_for_the_process_tree_that_holds_it(connection):
    listener, client = connection
    here, peer = listener.getsockname(), client.getsockname()
    assert peers.connected_from_tree(here, peer, [os.getpid()], root=os.getpid())
    assert peers.connected_from_tree(here, peer, [os.getpid()], root=os.getppid())  # a descendant of it
    child = os.fork()
    if child == 0:
        os.pause()  # shares the socket with us, but the tree we ask about is its own
        os._exit(0)
    try:
        assert not peers.connected_from_tree(here, peer, [os.getpid()], root=child)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def test_unknown_addresses_and_processes_are_nobody(connection):
    listener, client = connection
    assert peers.tcp_socket_inode(local=("127.0.0.1", 1), remote=listener.getsockname()) is None
    assert not peers.connected_from_tree(listener.getsockname(), ("127.0.0.1", 1), [os.getpid()], root=os.getpid())
    assert not peers.holds_socket(2 ** 22 + 1, 1)


def test_ipv6_connections_are_found_in_their_own_table():
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("this host has no IPv6 loopback")
    client = socket.create_connection(listener.getsockname()[:2])
    accepted, _ = listener.accept()
    try:
        inode = peers.tcp_socket_inode(local=client.getsockname(), remote=listener.getsockname())
        assert inode == os.fstat(client.fileno()).st_ino
    finally:
        for sock in (accepted, client, listener):
            sock.close()


def test_the_owner_of_a_socket_is_the_uid_that_made_it(connection):
    listener, client = connection
    assert peers.tcp_socket_owner(local=client.getsockname(), remote=listener.getsockname()) == (
        os.getuid(), os.fstat(client.fileno()).st_ino)


def test_the_proc_net_tcp_fallback_agrees_with_sock_diag(connection):
    listener, client = connection
    local, remote = client.getsockname(), listener.getsockname()
    assert peers.proc_net_tcp_owner(local, remote) == peers.tcp_socket_owner(local, remote) is not None
    assert peers.proc_net_tcp_owner(("127.0.0.1", 1), remote) is None

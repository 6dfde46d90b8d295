"""Who is on the other end of a loopback TCP connection: the guard of the Runtime API.

Under the host network, an environment's Runtime API listens on the host's loopback, and every
process on the host can connect to it: another function's too. Without a guard, a function
could ask for another environment's next event (and read its payload) or answer its invocations.
A listener therefore serves a connection only when the connecting socket is held by a process of
its own environment: the kernel gives the socket's inode (sock_diag netlink), the file
descriptors of the environment's processes tell who holds it (the server runs as root and may
read them).

This runs once per accepted connection, never per request: runtimes keep their connection open,
and Lambdalet's own Python runtime does not connect at all (it gets a channel at start).
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Iterable

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
#: inet_diag_req_v2: family, protocol, extensions, padding, states, then the socket id: ports
#: (big-endian), source and destination addresses (16 bytes each), interface, cookie (2 × u32).
DIAG_REQUEST = struct.Struct("=BBBxI2s2s16s16sIII")
NO_COOKIE = 0xFFFFFFFF
#: inet_diag_msg: 4 bytes, the socket id (48 bytes), expires, queues, then the owner's uid and the inode.
UID_INODE = struct.Struct("=II")
UID_INODE_OFFSET = NLMSG_HEADER.size + 64


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _packed(host: str) -> tuple[int, bytes]:
    """The address family and sock_diag's 16-byte form of an address."""
    family = _family(host)
    return family, socket.inet_pton(family, host).ljust(16, b"\0")


def tcp_socket_owner(local: tuple, remote: tuple) -> tuple[int, int] | None:
    """(uid, inode) of the TCP socket bound to `local` and connected to `remote`, if it exists.

    Asked of the kernel through sock_diag, which looks the one socket up: reading /proc/net/tcp
    instead walks the whole connection table (4 ms on an idle 24 GB host, on the event loop), so
    that is only the fallback where sock_diag is not allowed."""
    try:
        family, source = _packed(local[0])
        _family, destination = _packed(remote[0])
    except (OSError, ValueError):
        return None  # not an IP address
    request = DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF, local[1].to_bytes(2, "big"),
                                remote[1].to_bytes(2, "big"), source, destination, 0, NO_COOKIE, NO_COOKIE)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(1.0)
            sock.send(NLMSG_HEADER.pack(NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
                      + request)
            reply = sock.recv(65536)
    except OSError:
        return proc_net_tcp_owner(local, remote)
    if len(reply) < UID_INODE_OFFSET + UID_INODE.size or NLMSG_HEADER.unpack_from(reply)[1] == NLMSG_ERROR:
        return None  # no such socket (ENOENT)
    uid, inode = UID_INODE.unpack_from(reply, UID_INODE_OFFSET)
    return (uid, inode) if inode else None  # inode 0: a socket in TIME_WAIT, held by nobody


def _hex_address(address: tuple) -> str:
    """An (address, port) as /proc/net/tcp{,6} print it: 32-bit words in host byte order."""
    packed = socket.inet_pton(_family(address[0]), address[0])
    words = (int.from_bytes(packed[i:i + 4], "little") for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words) + f":{address[1]:04X}"


def proc_net_tcp_owner(local: tuple, remote: tuple) -> tuple[int, int] | None:
    """`tcp_socket_owner` read from /proc/net/tcp{,6}: slow, for hosts that refuse sock_diag."""
    table = Path("/proc/net/tcp6" if _family(local[0]) == socket.AF_INET6 else "/proc/net/tcp")
    wanted = (_hex_address(local), _hex_address(remote))
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and (fields[1], fields[2]) == wanted:
            return (int(fields[7]), int(fields[9])) if int(fields[9]) else None
    return None


def tcp_socket_inode(local: tuple, remote: tuple) -> int | None:
    """The inode of the TCP socket bound to `local` and connected to `remote`, if it exists."""
    owner = tcp_socket_owner(local, remote)
    return owner[1] if owner else None


def holds_socket(pid: int, inode: int) -> bool:
    """Whether process `pid` has the socket with this inode among its file descriptors."""
    target = f"socket:[{inode}]"
    try:
        with os.scandir(f"/proc/{pid}/fd") as entries:
            for entry in entries:
                try:
                    if os.readlink(entry.path) == target:
                        return True
                except OSError:
                    continue
    except OSError:
        pass
    return False


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # the name may hold spaces and parentheses


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `pid` is `ancestor` or one of its descendants (following parent pids)."""
    for _ in range(64):  # deeper process trees than this are not a runtime's
        if pid == ancestor:
            return True
        parent = parent_of(pid)
        if parent is None or parent <= 1:
            return False
        pid = parent
    return False


def connected_from_tree(listener: tuple, peer: tuple, candidates: Iterable[int],
                        root: int) -> bool:
    """Whether the connection `peer` made to `listener` comes from process `root` or a descendant.

    `candidates` are the pids that may hold the socket (an environment's cgroup): scanning them
    is cheaper than scanning every process, and the descent check keeps out the other
    environments a cgroup may hold (a SnapStart template's children share its group)."""
    inode = tcp_socket_inode(local=peer, remote=listener)
    if inode is None:
        return False
    return any(descends_from(pid, root) and holds_socket(pid, inode) for pid in candidates)

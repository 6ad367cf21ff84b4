"""Small helpers many test modules share, whatever they test: a free loopback port, stopping a
server subprocess, and a dump of a server's tree to compare with another server's (or the same
server's after a restart).

Import by name: `from support import free_port, dump_tree`.
"""

from __future__ import annotations

import socket
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kazoo.client import KazooClient


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it; a race with another
    process taking it before us is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(proc: subprocess.Popen, timeout_s: float = 10.0) -> int | None:
    """Stop `proc` with SIGTERM (a clean shutdown) and wait at most `timeout_s`; a process that
    ignores it is killed. Returns the exit status after SIGTERM (or the one it already had),
    None if it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)
        return None


def dump_tree(zk: KazooClient, root: str = "/", *, acls: bool = False) -> dict[str, tuple]:
    """Every node of the subtree at `root` as the server serves it: path -> (data, stat) — the
    stat is kazoo's ZnodeStat, a named tuple — plus the sorted (perms, scheme, id) of its ACL
    with `acls`."""
    out: dict[str, tuple] = {}
    stack = [root]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        entry: tuple = (data, stat)
        if acls:
            acl, _ = zk.get_acls(path)
            entry += (sorted((a.perms, a.id.scheme, a.id.id) for a in acl),)
        out[path] = entry
        stack.extend(f"{'' if path == '/' else path}/{child}" for child in zk.get_children(path))
    return out


def dump_server(hosts: str, root: str = "/", *, acls: bool = False,
                **client_options: object) -> dict[str, tuple]:
    """`dump_tree` on a kazoo client of its own (`client_options`: KazooClient's, e.g.
    auth_data to read nodes only the super user may)."""
    from kazoo.client import KazooClient  # not at import time: oracle.py imports this module

    zk = KazooClient(hosts=hosts, **client_options)
    zk.start(timeout=30)
    try:
        return dump_tree(zk, root, acls=acls)
    finally:
        zk.stop()
        zk.close()

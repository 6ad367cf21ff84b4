"""Helpers of the recipe tests (test_recipes_*.py): groups of client sessions, kazoo clients,
sessions the test expires at will, a proxy that swallows replies, the server's view of who
watches what, and worker processes (recipes_coord_worker.py).

The server fixtures (`zk_server`: zookapter and Apache ZooKeeper; `fast_server`, `proxy_for`)
come from tests/conftest.py; the plain helpers every recipe test uses are re-exported here,
so a test module imports from this one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from kazoo.client import KazooClient
from test_client_support import SRC, TcpProxy, aiotest, unique_path
from test_client_support import eventually as _eventually

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.client.errors import NoNodeError
from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import ConnectRequest

from oracle import four_letter_word

__all__ = [
    "SRC", "aiotest", "eventually", "unique_path", "slow", "sessions", "sync_client",
    "kazoo_client", "ExpirableSession", "eventually_async", "child_count", "has_children",
    "assert_disjoint", "watches_by_session", "ReplyDroppingProxy", "start_proxy", "spawn",
    "result_of",
]

WORKER = Path(__file__).resolve().parent / "recipes_coord_worker.py"
SLOW_TEST_TIMEOUT_S = 90.0


def slow(fn):
    """`aiotest` for scenarios with worker processes or several session expiries."""
    return aiotest(fn, SLOW_TEST_TIMEOUT_S)


# -- clients ----------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def sessions(hosts: str, n: int, timeout: float = 10.0
                   ) -> AsyncIterator[list[AsyncZooKeeper]]:
    """`n` started clients, one session each."""
    clients = [AsyncZooKeeper(hosts, timeout=timeout) for _ in range(n)]
    try:
        await asyncio.gather(*(c.start() for c in clients))
        yield clients
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


@contextlib.contextmanager
def sync_client(hosts: str, timeout: float = 10.0) -> Iterator[ZooKeeperClient]:
    client = ZooKeeperClient(hosts, timeout=timeout)
    client.start()
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def kazoo_client(hosts: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


# -- session expiry -----------------------------------------------------------------------------

def _close_session(hosts: str, session_id: int, passwd: bytes) -> None:
    """Take the session over on a second connection and close it there. Both frames leave in
    one write, so the server handles them back to back."""
    host, port = hosts.split(",")[0].split(":")
    w = Writer()
    ConnectRequest(0, 0, 10000, session_id, passwd, False, True).write(w)
    connect = bytes(w.buf)
    close = struct.pack(">ii", 1, Op.CLOSE_SESSION)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(connect)) + connect
                  + struct.pack(">i", len(close)) + close)
        with contextlib.suppress(OSError):
            while s.recv(4096):  # the server closes the connection after the reply
                pass


class ExpirableSession:
    """A client whose session the test can end on the server at will, deterministically.

    The client talks through its own proxy: `expire()` cuts the proxy, closes the session on a
    direct connection (kazoo's test-harness way) and heals the proxy, so the client cannot win
    the session back by reconnecting in between (closing it while the client may reconnect
    makes the close fail now and then: the session moved); the client then finds the session
    expired (LOST) and starts a new one."""

    def __init__(self, server, timeout: float = 10.0) -> None:
        self.server_hosts = server.hosts
        self.proxy = start_proxy(server)
        self.zk = AsyncZooKeeper(self.proxy.hosts, timeout=timeout)

    async def __aenter__(self) -> ExpirableSession:
        await self.zk.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.zk.stop()
        self.proxy.stop()

    async def expire(self) -> None:
        """End the session now; return once the client runs on a new one."""
        zk, old = self.zk, self.zk.session_id
        self.proxy.cut()
        await asyncio.to_thread(_close_session, self.server_hosts, old, zk.session_passwd)
        self.proxy.heal()
        await eventually(lambda: zk.connected and zk.session_id not in (0, old), timeout=20)


# -- waiting and looking ---------------------------------------------------------------------

async def eventually(predicate: Callable[[], object], timeout: float = 15.0,
                     interval: float = 0.02):
    """test_client_support's `eventually`, with the longer patience of the recipe tests
    (several sessions, processes and servers share two cores)."""
    return await _eventually(predicate, timeout, interval)


async def eventually_async(fn: Callable[[], Awaitable[object]], timeout: float = 15.0,
                           interval: float = 0.05):
    """Like `eventually`, for a coroutine function returning the value to test."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in time (last value {value!r})")
        await asyncio.sleep(interval)


async def child_count(zk: AsyncZooKeeper, path: str) -> int:
    try:
        return len(await zk.get_children(path))
    except NoNodeError:
        return 0


async def has_children(zk: AsyncZooKeeper, path: str, n: int) -> bool:
    return await child_count(zk, path) == n


def assert_disjoint(intervals: list[tuple[float, float, str]]) -> None:
    """No two (start, end, who) intervals overlap: one leader at a time."""
    ordered = sorted(intervals)
    for (_, e1, a), (s2, _, b) in zip(ordered, ordered[1:], strict=False):
        if s2 < e1:
            raise AssertionError(f"{a} led until {e1:.4f} but {b} from {s2:.4f}")


def watches_by_session(hosts: str) -> dict[int, set[str]]:
    """The server's watch table by session (`wchc`): {session id: watched paths}."""
    host, port = hosts.split(",")[0].split(":")
    table: dict[int, set[str]] = {}
    current: set[str] | None = None
    for line in four_letter_word(host, int(port), "wchc", timeout_s=10).splitlines():
        if line.startswith("0x"):
            current = table.setdefault(int(line, 16), set())
        elif line.startswith("\t") and current is not None:
            current.add(line.strip())
    return table


# -- proxies ----------------------------------------------------------------------------------

class ReplyDroppingProxy(TcpProxy):
    """A TcpProxy that, with `drop_replies`, still forwards requests but swallows what the
    server sends back: the server applies a write and the client never hears of it. Setting
    `drop_from_op` to an opcode turns `drop_replies` on as soon as a request with that opcode
    passes (so the replies to the requests before it still arrive)."""

    drop_replies = False
    drop_from_op: int | None = None

    def _inspect(self, pending: bytearray, data: bytes, first: list[bool]) -> None:
        """Scan the client's frames (the first one is the ConnectRequest, without header)."""
        pending += data
        while len(pending) >= 4:
            size = struct.unpack_from(">i", pending)[0]
            if len(pending) < 4 + size:
                return
            if first[0]:
                first[0] = False
            elif size >= 8 and struct.unpack_from(">i", pending, 8)[0] == self.drop_from_op:
                self.drop_replies = True
            del pending[:4 + size]

    def _forwarding(self) -> Callable[[bytes, bool], bool]:
        pending, first = bytearray(), [True]

        def forward(data: bytes, replies: bool) -> bool:
            if not replies and self.drop_from_op is not None:
                self._inspect(pending, data, first)
            return not self.stalled and not (replies and self.drop_replies)
        return forward


def start_proxy(server, cls: type[TcpProxy] = TcpProxy) -> TcpProxy:
    """A started proxy of `cls` in front of `server`; the caller stops it."""
    host, port = server.hosts.split(":")
    return cls(host, int(port)).start()


# -- worker processes -----------------------------------------------------------------------

async def spawn(*args: object) -> asyncio.subprocess.Process:
    """Start recipes_coord_worker.py with `args`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), *map(str, args), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def result_of(proc: asyncio.subprocess.Process, timeout: float = 45.0) -> object:
    """The JSON a worker printed last; fails the test if it failed."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("worker process timed out") from None
    if proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}): {err.decode()[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])

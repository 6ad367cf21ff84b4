"""Helpers of the coordination recipe tests (test_recipes_election.py, _barrier.py, _queue.py,
_misc.py): groups of client sessions, kazoo clients, forced session expiry, a proxy that
swallows replies, and worker processes (recipes_coord_worker.py).
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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from kazoo.client import KazooClient
from test_client_support import SRC, TcpProxy

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import ConnectRequest

WORKER = Path(__file__).resolve().parent / "recipes_coord_worker.py"


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


def _close_session(hosts: str, session_id: int, passwd: bytes) -> None:
    """Take the session over on a second connection and close it there. Both frames leave in
    one write, so the owner cannot reconnect in between and keep the session."""
    host, port = hosts.split(",")[0].split(":")
    w = Writer()
    ConnectRequest(0, 0, 10000, session_id, passwd, False, True).write(w)
    connect = bytes(w.buf)
    close = struct.pack(">ii", 1, Op.CLOSE_SESSION)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(connect)) + connect
                  + struct.pack(">i", len(close)) + close)
        with contextlib.suppress(OSError):
            while s.recv(4096):
                pass


class ExpirableSession:
    """A client whose session the test can end on the server at will. The client talks
    through its own proxy: `expire()` cuts the proxy, closes the session on a direct
    connection (kazoo's test-harness way) and heals the proxy, so the client cannot win the
    session back by reconnecting in between; it then finds the session expired (LOST) and
    starts a new one."""

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


async def eventually(predicate, timeout: float = 15.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def eventually_async(fn, timeout: float = 15.0, interval: float = 0.05):
    """Like `eventually`, for a coroutine function returning the value to test."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in time (last value {value!r})")
        await asyncio.sleep(interval)


def assert_disjoint(intervals: list[tuple[float, float, str]]) -> None:
    """No two (start, end, who) intervals overlap: one leader at a time."""
    ordered = sorted(intervals)
    for (_, e1, a), (s2, _, b) in zip(ordered, ordered[1:], strict=False):
        if s2 < e1:
            raise AssertionError(f"{a} led until {e1:.4f} but {b} from {s2:.4f}")


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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        pending, first = bytearray(), [True]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       replies: bool) -> None:
            try:
                while data := await src.read(65536):
                    if not replies and self.drop_from_op is not None:
                        self._inspect(pending, data, first)
                    if not self.stalled and not (replies and self.drop_replies):
                        dst.write(data)
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


def start_proxy(server, cls: type[TcpProxy] = TcpProxy) -> TcpProxy:
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

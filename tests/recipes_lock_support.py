"""Helpers of the lock recipe tests (test_recipes_lock.py, _rwlock.py, _semaphore.py): many
client sessions at once, kazoo clients, forced session expiry, and the server's view of who
watches what (the `wchc` four-letter word).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from kazoo.client import KazooClient
from test_client_support import TcpProxy

from zookapter.client import AsyncZooKeeper
from zookapter.client.errors import NoNodeError
from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import ConnectRequest


@contextlib.asynccontextmanager
async def sessions(hosts: str, n: int, timeout: float = 10.0
                   ) -> AsyncIterator[list[AsyncZooKeeper]]:
    """`n` started clients, each with its own session."""
    clients = [AsyncZooKeeper(hosts, timeout=timeout) for _ in range(n)]
    try:
        await asyncio.gather(*(c.start() for c in clients))
        yield clients
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


@contextlib.contextmanager
def kazoo_client(hosts: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def _expire(hosts: str, session_id: int, passwd: bytes) -> None:
    """Join the session on a second connection and close it there. Connect and closeSession
    go out in one write: the owner's reconnect cannot take the session back in between."""
    host, port = hosts.split(",")[0].split(":")
    w = Writer()
    ConnectRequest(0, 0, 10000, session_id, passwd, False, True).write(w)
    connect = bytes(w.buf)
    close = struct.pack(">ii", 1, Op.CLOSE_SESSION)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(connect)) + connect + struct.pack(">i", len(close))
                  + close)
        with contextlib.suppress(OSError):
            while s.recv(4096):  # the server closes the connection after the reply
                pass


async def expire_session(hosts: str, zk: AsyncZooKeeper) -> None:
    """Make the server end `zk`'s session now; `zk` learns it on its next reconnect.

    Blocks the event loop on purpose: `zk` (on this loop) must not reconnect while another
    connection holds its session, or the session moves back to it and the server refuses
    the close (SessionMoved)."""
    _expire(hosts, zk.session_id, zk.session_passwd)


def four_letter(hosts: str, word: str) -> str:
    host, port = hosts.split(",")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(word.encode("ascii"))
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode("utf-8")


def watches_by_session(hosts: str) -> dict[int, set[str]]:
    """The server's watch table by session (`wchc`): {session id: watched paths}."""
    table: dict[int, set[str]] = {}
    current: set[str] | None = None
    for line in four_letter(hosts, "wchc").splitlines():
        if line.startswith("0x"):
            current = table.setdefault(int(line, 16), set())
        elif line.startswith("\t") and current is not None:
            current.add(line.strip())
    return table


class ReplyDroppingProxy(TcpProxy):
    """A TcpProxy that can also forward requests while swallowing the replies
    (`drop_replies`): the server applies a create, the client never hears of it."""

    drop_replies = False

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

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       replies: bool) -> None:
            try:
                while data := await src.read(65536):
                    if not (replies and self.drop_replies):
                        dst.write(data)
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Await `check()` until it returns True (it may talk to the server)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def child_count(zk: AsyncZooKeeper, path: str) -> int:
    try:
        return len(await zk.get_children(path))
    except NoNodeError:
        return 0


async def has_children(zk: AsyncZooKeeper, path: str, n: int) -> bool:
    return await child_count(zk, path) == n

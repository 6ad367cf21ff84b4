"""Contests among ephemeral sequential nodes, in kazoo's lock layout.

A contender creates `<parent>/<uuid hex>__lock__<10-digit sequence>` (EPHEMERAL_SEQUENTIAL,
its identifier as data). Contenders are ordered by the sequence number alone (the uuid prefix
is ignored), the lowest one wins, and everyone else watches the node just before its own, so
one deletion wakes one waiter. This is exactly how kazoo's Lock and Election (and so its
NonBlockingLease) order their nodes, which is why the election and the lease share paths with
kazoo's recipes.

The uuid prefix is Curator's "protected" trick: when the reply to the create is lost with the
connection, the node may or may not exist; listing the parent and looking for the prefix
finds it again instead of creating a second contender that would queue behind the first.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import ConnectionClosedError, NoNodeError
from ._cleanup import remove_contender
from ._typed import children, create_with_stat
from ._waiting import ERROR_PAUSE_S, RETRYABLE, TRANSIENT, Deadline, Wakeup, bounded

LOCK_MARK = "__lock__"
_SEQUENCE = re.compile(r"__lock__(-?\d{10})$")


def new_prefix(mark: str = LOCK_MARK) -> str:
    """A node-name prefix no other contender uses."""
    return uuid.uuid4().hex + mark


def sequence_of(name: str) -> int | None:
    """The sequence number of a contender node name, or None if it is not one."""
    m = _SEQUENCE.search(name)
    return None if m is None else int(m.group(1))


def contender_order(children: Iterable[str]) -> list[str]:
    """The contender nodes among `children`, lowest sequence (the winner) first."""
    keyed = [(seq, name) for name in children if (seq := sequence_of(name)) is not None]
    keyed.sort()
    return [name for _, name in keyed]


async def find_own(zk: AsyncZooKeeper, parent: str, prefix: str) -> tuple[str, int] | None:
    """(name, owner session) of this session's node named `prefix...` under `parent`."""
    for name in await children(zk, parent):
        if name.startswith(prefix):
            stat = await zk.exists(f"{parent}/{name}")
            if stat is not None and stat.ephemeralOwner == zk.session_id:
                return name, stat.ephemeralOwner
    return None


async def create_protected(zk: AsyncZooKeeper, parent: str, prefix: str,
                           data: bytes) -> tuple[str, int]:
    """Create `parent/prefix<seq>` (ephemeral, sequential) exactly once; return its name and
    the session that owns it. A create whose outcome a lost connection hid is looked up by
    its prefix before it is tried again."""
    while True:
        try:
            path, stat = await create_with_stat(zk, f"{parent}/{prefix}", data,
                                                ephemeral=True, sequence=True, makepath=True)
            return path.rsplit("/", 1)[1], stat.ephemeralOwner
        except RETRYABLE:
            found = await zk.retry(find_own, zk, parent, prefix)
            if found is not None:
                return found


async def contender_identifiers(zk: AsyncZooKeeper, path: str) -> list[str]:
    """The identifiers (node data) of the contenders under `path`, winner first, as kazoo's
    Lock.contenders() lists them; contenders that leave meanwhile are skipped."""
    try:
        order = contender_order(await zk.retry(children, zk, path))
    except NoNodeError:
        return []
    replies = await asyncio.gather(*(zk.retry(zk.get, f"{path}/{name}") for name in order),
                                   return_exceptions=True)
    out = []
    for r in replies:
        if isinstance(r, NoNodeError):
            continue
        if isinstance(r, BaseException):
            raise r
        out.append(r[0].decode("utf-8", "replace"))
    return out


class SequentialMutex:
    """A short-lived mutual exclusion on `path` in kazoo's Lock layout: what kazoo's
    NonBlockingLease holds while it reads and rewrites the lease, so ours must take it too.

    It is a plain waiting loop (no fencing, no reentrance); a holder whose session expires
    loses it silently, so callers guard their writes with znode versions as well.
    """

    def __init__(self, zk: AsyncZooKeeper, path: str, identifier: str = "") -> None:
        self.zk = zk
        self.path = path
        self.data = identifier.encode("utf-8")
        self.prefix = new_prefix()
        self.node: str | None = None

    async def acquire(self, timeout: float | None = None) -> bool:
        """Wait until this contender is first; False (and withdrawn) after `timeout` s."""
        deadline = Deadline(timeout)
        wake = Wakeup()
        self.zk.add_listener(wake)
        try:
            won = await self._contend(wake, deadline)
        except BaseException:
            await self._withdraw()
            raise
        finally:
            self.zk.remove_listener(wake)
        if not won:
            await self._withdraw()
        return won

    async def release(self) -> None:
        await self._withdraw()

    async def _contend(self, wake: Wakeup, deadline: Deadline) -> bool:
        await self.zk.retry(self.zk.ensure_path, self.path)
        while not deadline.expired:
            wake.clear()
            try:
                if self.node is None:
                    self.node, _ = await create_protected(self.zk, self.path, self.prefix,
                                                          self.data)
                if await self._first_or_watch(wake):
                    return True
            except ConnectionClosedError:
                raise
            except TRANSIENT:  # after an expiry, the next pass queues again
                await wake.wait(bounded(ERROR_PAUSE_S, deadline))
                continue
            await wake.wait(deadline.remaining())
        return False

    async def _first_or_watch(self, wake: Wakeup) -> bool:
        order = contender_order(await children(self.zk, self.path))
        if self.node not in order:  # our session expired under us: queue again
            self.node = None
            wake()
            return False
        i = order.index(self.node)
        if i == 0:
            return self.zk.state == ConnectionState.CONNECTED
        if await self.zk.exists(f"{self.path}/{order[i - 1]}", watch=wake) is None:
            wake()
        return False

    async def _withdraw(self) -> None:
        node, self.node = self.node, None
        await remove_contender(self.zk, self.path, self.prefix, node)

    async def __aenter__(self) -> SequentialMutex:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

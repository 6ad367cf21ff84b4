"""A short-lived mutual exclusion in kazoo's lock layout: what kazoo's NonBlockingLease holds
while it reads and rewrites the lease, so ours (lease.py) must take the same one.

It is a plain waiting loop over the contenders of _contenders.py (no fencing, no reentrance,
no suspension rules — that is `Lock`'s job): create a protected node, wait until no contender
is in front of it, withdraw within a deadline otherwise. A holder whose session expires loses
it silently, so callers guard their writes with znode versions as well.
"""

from __future__ import annotations

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import ConnectionClosedError
from ._cleanup import remove_contender
from ._contenders import create_protected, new_prefix, predecessor
from ._typed import children
from ._waiting import ERROR_PAUSE_S, TRANSIENT, Deadline, Wakeup, bounded


class SequentialMutex:
    """`if await mutex.acquire(timeout): try: ... finally: await mutex.release()`."""

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
        names = await children(self.zk, self.path)
        if self.node is None or self.node not in names:  # our session expired: queue again
            self.node = None
            wake()
            return False
        ahead = predecessor(names, self.node)
        if ahead is None:
            return self.zk.state == ConnectionState.CONNECTED
        if await self.zk.exists(f"{self.path}/{ahead}", watch=wake) is None:
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

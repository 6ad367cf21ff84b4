"""A fair read/write lock: many readers or one writer, on kazoo's znode layout.

    rw = ReadWriteLock(zk, "/locks/catalog", identifier="worker-1")
    async with rw.read_lock:        # shared with other readers
        ...
    async with rw.write_lock as token:   # exclusive
        ...

Both sides queue in one line of ephemeral-sequential children of the lock node: readers as
`<uuid>__rlock__<seq>`, writers as `<uuid>__lock__<seq>`. A reader waits only for the nearest
writer in front of it; a writer waits for the nearest contender of either kind in front of it
(_contenders.py). So a writer that queued before a reader goes first, and readers never starve
a queued writer. Everything else — the predecessor watch, connection loss, session expiry,
the fencing token — is `Lock`'s (lock.py).

These are kazoo's `ReadLock` and `WriteLock`; their contenders and ours queue together on
the same path. A plain `Lock` (ours or kazoo's) on that path excludes writers but ignores
readers, as in kazoo.

Fencing tokens: a writer's token (czxid of its node) is larger than the token of every
reader or writer that held the lock before it, and a reader's is larger than that of every
writer before it; readers holding at the same time are not ordered among themselves.
"""

from __future__ import annotations

from ..client.aio import AsyncZooKeeper
from ..client.sync import ZooKeeperClient
from ._contenders import LOCK_MARK, READ_MARK
from ._sync import SyncRecipe
from .lock import Lock, SyncLock


class ReadLock(Lock):
    """The shared side: blocked only by writers (kazoo's ReadLock)."""
    NODE_MARK = READ_MARK
    BLOCKED_BY = frozenset({LOCK_MARK})


class WriteLock(Lock):
    """The exclusive side: blocked by readers and writers (kazoo's WriteLock)."""
    NODE_MARK = LOCK_MARK
    BLOCKED_BY = frozenset({LOCK_MARK, READ_MARK})


class ReadWriteLock:
    """A pair of locks on one path. Each side is a separate contender: one task may hold
    `read_lock` or `write_lock`, not both at once (the write side would wait for our own
    read node)."""

    def __init__(self, zk: AsyncZooKeeper, path: str, identifier: str | None = None) -> None:
        self.path = path
        self.read_lock = ReadLock(zk, path, identifier)
        self.write_lock = WriteLock(zk, path, identifier)

    async def contenders(self) -> list[str]:
        """Identifiers of all readers and writers, holders first, in queue order."""
        return await self.write_lock.contenders()


class SyncReadWriteLock(SyncRecipe[ReadWriteLock]):
    """Blocking twin of `ReadWriteLock`: `read_lock` and `write_lock` are `SyncLock`s."""

    def __init__(self, client: ZooKeeperClient, path: str, identifier: str | None = None
                 ) -> None:
        super().__init__(client, lambda zk: ReadWriteLock(zk, path, identifier))
        self.read_lock = SyncLock.wrap(client, self._inner.read_lock)
        self.write_lock = SyncLock.wrap(client, self._inner.write_lock)

    @property
    def path(self) -> str:
        return self._inner.path

    def contenders(self) -> list[str]:
        return self._run(self._inner.contenders())

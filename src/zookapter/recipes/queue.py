"""Distributed queues in kazoo's znode layouts: `Queue` (take = delete) and `LockingQueue`
(take = lock, then consume or release).

Queue: every item is a persistent sequential child `<path>/entry-<priority:03d>-<seq>` whose
data is the item. Names sort by priority (lower first) and then by sequence, i.e. FIFO within
a priority. A consumer lists the children, reads the first entry and deletes it: the delete
is the claim, so of two consumers racing for an entry exactly one gets it and the other moves
on to the next. The entry is gone before the consumer processes it (kazoo's "no reliable
consumption").

LockingQueue: items are `<path>/entries/entry-<priority:03d>-<seq>`; a consumer takes one by
creating the ephemeral `<path>/taken/<entry name>` (data = the consumer's random id) and
removes both nodes only when it calls `consume()`, in one multi guarded by the version of its
lock node. `release()` deletes the lock so others can take the item again, and so does the
end of the consumer's session (a crash): the item is never lost.

Delivery under connection loss (a request whose reply was lost may or may not have been
applied):
- `put` retries: if the first create had been applied, the item is queued twice (a sequential
  name cannot be found again), so puts are at-least-once.
- Queue.get: a delete whose reply was lost and that finds the entry gone on retry cannot tell
  whether it or another consumer removed it; it counts it as another's (at-most-once, as in
  kazoo and Curator). Use LockingQueue when an item must not be lost.
- LockingQueue: taking is idempotent (the lock node's data and owner identify it), consuming
  too (a retried multi that finds the entry gone had succeeded), so each item is processed at
  least once and, without session expiry, exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from ..client.aio import AsyncZooKeeper
from ..client.errors import BadVersionError, NodeExistsError, NoNodeError, SessionExpiredError
from ..client.sync import ZooKeeperClient
from ..protocol.records import Stat
from ._cleanup import delete_ephemeral, in_background
from ._sync import SyncRecipe
from ._typed import children, create_path, create_with_stat
from ._waiting import Deadline, Wakeup, wait_for

ENTRY_PREFIX = "entry-"
DEFAULT_PRIORITY = 100


def entry_prefix(priority: int) -> str:
    """The name prefix of an entry with `priority` (0..999, lower is served first)."""
    return f"{ENTRY_PREFIX}{priority:03d}-"


def _check_item(value: bytes, priority: int) -> None:
    if not isinstance(value, bytes):
        raise TypeError("value must be a byte string")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError("priority must be an int")
    if not 0 <= priority <= 999:
        raise ValueError("priority must be between 0 and 999")


def _entries(children: Sequence[str]) -> list[str]:
    return sorted(c for c in children if c.startswith(ENTRY_PREFIX))


class _Base:
    def __init__(self, client: AsyncZooKeeper, path: str, entries_path: str,
                 structure: tuple[str, ...]) -> None:
        self.client = client
        self.path = path
        self._entries_path = entries_path
        self._structure = structure
        self._ensured = False

    async def _ensure_paths(self) -> None:
        if not self._ensured:
            for p in self._structure:
                await self.client.retry(self.client.ensure_path, p)
            self._ensured = True

    async def put(self, value: bytes, priority: int = DEFAULT_PRIORITY) -> str:
        """Queue `value`; return the entry's path."""
        _check_item(value, priority)
        await self._ensure_paths()
        return await self.client.retry(
            create_path, self.client, f"{self._entries_path}/{entry_prefix(priority)}", value,
            sequence=True)

    async def length(self) -> int:
        """Number of entries (for LockingQueue, taken ones included)."""
        await self._ensure_paths()
        stat = await self.client.retry(self.client.exists, self._entries_path)
        return 0 if stat is None else stat.numChildren


class Queue(_Base):
    """kazoo's Queue, with an optional blocking get."""

    def __init__(self, client: AsyncZooKeeper, path: str) -> None:
        super().__init__(client, path, path, (path,))

    async def get(self, block: bool = False, timeout: float | None = None) -> bytes | None:
        """Remove and return the first item; None if the queue is empty (with `block`: once
        `timeout` seconds passed without an item; None waits forever)."""
        await self._ensure_paths()
        if not block:
            return await self._take_first(None)
        return await wait_for(self.client, self._take_first, Deadline(timeout))

    async def _take_first(self, wake: Wakeup | None) -> bytes | None:
        zk = self.client
        for name in _entries(await zk.retry(children, zk, self.path, wake)):
            item = await self._claim(f"{self.path}/{name}")
            if item is not None:
                return item
        return None

    async def _claim(self, entry: str) -> bytes | None:
        """The entry's data if this consumer's delete removed it, else None."""
        zk = self.client
        try:
            data, _ = await zk.retry(zk.get, entry)
            await zk.retry(zk.delete, entry)
        except NoNodeError:
            return None
        return data


class LockingQueue(_Base):
    """kazoo's LockingQueue: `get()` takes an item, `consume()` removes it for good,
    `release()` gives it back; a consumer whose session ends gives it back implicitly."""

    def __init__(self, client: AsyncZooKeeper, path: str) -> None:
        super().__init__(client, path, f"{path}/entries", (f"{path}/taken", f"{path}/entries"))
        self._taken_path = f"{path}/taken"
        self.id = uuid.uuid4().hex.encode()
        self.processing_element: tuple[str, bytes] | None = None
        self._lock_stat: Stat | None = None

    async def put_all(self, values: list[bytes], priority: int = DEFAULT_PRIORITY) -> None:
        """Queue all `values` atomically (in order)."""
        if not isinstance(values, list):
            raise TypeError("values must be a list of byte strings")
        for v in values:
            _check_item(v, priority)
        await self._ensure_paths()

        async def commit() -> None:
            tx = self.client.transaction()
            for v in values:
                tx.create(f"{self._entries_path}/{entry_prefix(priority)}", v, sequence=True)
            await tx.commit()

        await self.client.retry(commit)

    async def get(self, timeout: float | None = None) -> bytes | None:
        """Take the first free item and return it (the one already taken, if not consumed or
        released yet); None if none came within `timeout` seconds (None: wait forever)."""
        if self.processing_element is not None:
            return self.processing_element[1]
        await self._ensure_paths()
        return await wait_for(self.client, self._take_first, Deadline(timeout))

    async def holds_lock(self) -> bool:
        """True if this consumer still holds the item it took (asks the server)."""
        held = self._held()
        if held is None:
            return False
        lock = f"{self._taken_path}/{held[0]}"
        await self.client.retry(self.client.sync, lock)
        try:
            data, stat = await self.client.retry(self.client.get, lock)
        except NoNodeError:
            return False
        return data == self.id and stat.ephemeralOwner == self.client.session_id

    async def consume(self) -> bool:
        """Remove the taken item from the queue; False if it was no longer ours."""
        held = self._held()
        if held is None:
            self._forget()
            return False
        name, version = held
        try:
            await self.client.retry(self._commit, name, version, True)
            done = True
        except (NoNodeError, BadVersionError):
            # a retry whose first attempt had gone through finds the entry gone
            entry = f"{self._entries_path}/{name}"
            done = await self.client.retry(self.client.exists, entry) is None
        except SessionExpiredError:
            done = False
        self._forget()
        return done

    async def release(self) -> bool:
        """Give the taken item back to the queue; False if it was no longer ours."""
        held = self._held()
        if held is None:
            self._forget()
            return False
        try:
            await self.client.retry(self._commit, *held, False)
            done = True
        except (NoNodeError, BadVersionError, SessionExpiredError):
            done = False
        self._forget()
        return done

    # -- internals --------------------------------------------------------------------------

    def _held(self) -> tuple[str, int] | None:
        """(entry name, lock node version) of the item taken in the current session."""
        stat = self._lock_stat
        if (self.processing_element is None or stat is None
                or stat.ephemeralOwner != self.client.session_id):
            return None
        return self.processing_element[0], stat.version

    def _forget(self) -> None:
        self.processing_element = None
        self._lock_stat = None

    async def _commit(self, name: str, lock_version: int, consume: bool) -> None:
        lock = f"{self._taken_path}/{name}"
        tx = self.client.transaction().check(lock, lock_version)
        if consume:
            tx.delete(f"{self._entries_path}/{name}")
        await tx.delete(lock).commit()

    async def _take_first(self, wake: Wakeup) -> bytes | None:
        zk = self.client
        entries = await children(zk, self._entries_path, wake)
        taken = set(await children(zk, self._taken_path, wake))
        for name in _entries([e for e in entries if e not in taken]):
            item = await self._take(name)
            if item is not None:
                return item
        return None

    async def _take(self, name: str) -> bytes | None:
        lock = f"{self._taken_path}/{name}"
        try:
            stat = await self.client.retry(self._lock, lock)
            if stat is None:
                return None
            try:
                value, _ = await self.client.retry(self.client.get,
                                                   f"{self._entries_path}/{name}")
            except NoNodeError:  # consumed between our listing and our lock
                await delete_ephemeral(self.client, lock)
                return None
        except asyncio.CancelledError:
            # the lock may exist without anyone knowing: the item would stay taken
            in_background(self._unlock_if_ours(lock))
            raise
        self.processing_element = (name, value)
        self._lock_stat = stat
        return value

    async def _unlock_if_ours(self, lock: str) -> None:
        try:
            data, stat = await self.client.retry(self.client.get, lock)
            if data == self.id and stat.ephemeralOwner == self.client.session_id:
                await self.client.retry(self.client.delete, lock, stat.version)
        except (NoNodeError, BadVersionError, SessionExpiredError):
            pass

    async def _lock(self, lock: str) -> Stat | None:
        """Create the lock node; its Stat, or None if another consumer holds it. A retry
        after a lost reply recognises our own node by its data and owner."""
        zk = self.client
        try:
            return (await create_with_stat(zk, lock, self.id, ephemeral=True))[1]
        except NodeExistsError:
            pass
        try:
            data, stat = await zk.get(lock)
        except NoNodeError:
            return None  # released meanwhile: the next listing sees the item again
        return stat if data == self.id and stat.ephemeralOwner == zk.session_id else None


# -- blocking twins -----------------------------------------------------------------------

class SyncQueue(SyncRecipe[Queue]):
    def __init__(self, client: ZooKeeperClient, path: str) -> None:
        super().__init__(client, lambda zk: Queue(zk, path))

    def put(self, value: bytes, priority: int = DEFAULT_PRIORITY) -> str:
        return self._run(self._inner.put(value, priority))

    def get(self, block: bool = False, timeout: float | None = None) -> bytes | None:
        return self._run(self._inner.get(block, timeout))

    def __len__(self) -> int:
        return self._run(self._inner.length())


class SyncLockingQueue(SyncRecipe[LockingQueue]):
    def __init__(self, client: ZooKeeperClient, path: str) -> None:
        super().__init__(client, lambda zk: LockingQueue(zk, path))

    def put(self, value: bytes, priority: int = DEFAULT_PRIORITY) -> str:
        return self._run(self._inner.put(value, priority))

    def put_all(self, values: list[bytes], priority: int = DEFAULT_PRIORITY) -> None:
        self._run(self._inner.put_all(values, priority))

    def get(self, timeout: float | None = None) -> bytes | None:
        return self._run(self._inner.get(timeout))

    def holds_lock(self) -> bool:
        return self._run(self._inner.holds_lock())

    def consume(self) -> bool:
        return self._run(self._inner.consume())

    def release(self) -> bool:
        return self._run(self._inner.release())

    def __len__(self) -> int:
        return self._run(self._inner.length())

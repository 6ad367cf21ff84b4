"""Non-blocking leases: `Lease` (one holder at a time for a duration, kazoo's
NonBlockingLease) and `MultiLease` (one of `count` leases, kazoo's MultiNonBlockingLease).

Layout, the same as kazoo's so the two interoperate on one path: the lease is the JSON in
`<path>/lease_holder`, `{"version": 1, "holder": <identifier>, "end": "<UTC
%Y-%m-%dT%H:%M:%S>"}`, and whoever reads and rewrites it first holds a short lock on `<path>`
in kazoo's lock layout (`<uuid>__lock__<seq>` children, see _mutex.py). Acquiring succeeds
when there is no lease, when it has ended, or when its holder is our identifier (a renewal);
it then writes a new end, `now + duration`. A MultiLease tries `<path>/0`, `<path>/1`, ... in
turn. Nobody deletes an ended lease; the next acquirer overwrites it.

The times are the clients' UTC clocks with one-second resolution (kazoo's format), so leases
only work between clients whose clocks roughly agree; `utcnow` can be replaced for tests.

Besides the lock, every write is conditional (create, or set with the version read), so two
acquirers that both believe they hold the lock — one of them after its session expired — still
cannot both obtain the lease. A write whose reply was lost is recognised on retry by its
content (identifier and end).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from ..client.aio import AsyncZooKeeper
from ..client.errors import BadVersionError, NodeExistsError, NoNodeError
from ..client.sync import ZooKeeperClient
from ..protocol.records import Stat
from ._mutex import SequentialMutex
from ._sync import SyncRecipe
from ._waiting import RETRYABLE

LEASE_FORMAT_VERSION = 1
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
HOLDER_NODE = "lease_holder"
LOCK_TIMEOUT_S = 30.0
WRITE_TRIES = 10

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """Naive UTC now, as kazoo's default clock."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def encode_lease(holder: str, end: dt.datetime) -> bytes:
    """kazoo's lease JSON (same keys, order and spacing)."""
    return json.dumps({"version": LEASE_FORMAT_VERSION, "holder": holder,
                       "end": end.strftime(DATE_FORMAT)}).encode("utf-8")


def decode_lease(raw: bytes) -> tuple[str, dt.datetime] | None:
    """(holder, end) of a lease, or None if it is not in a format we understand."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if data["version"] != LEASE_FORMAT_VERSION:
            return None
        return str(data["holder"]), dt.datetime.strptime(data["end"], DATE_FORMAT)
    except (ValueError, KeyError, TypeError):
        return None


class Lease:
    """`obtained = await Lease(zk, "/leases/cleanup", 70 * 60, "host-1").acquire()`."""

    def __init__(self, client: AsyncZooKeeper, path: str, duration: dt.timedelta | float,
                 identifier: str | None = None, utcnow: Clock = utcnow, *,
                 lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.client = client
        self.path = path
        self.duration = (duration if isinstance(duration, dt.timedelta)
                         else dt.timedelta(seconds=duration))
        self.identifier = identifier or socket.gethostname()
        self.utcnow = utcnow
        self.lock_timeout = lock_timeout
        self.holder_path = f"{path}/{HOLDER_NODE}"
        self.obtained = False

    def __bool__(self) -> bool:
        return self.obtained

    async def acquire(self) -> bool:
        """Try to obtain (or renew) the lease; never waits for it to become free."""
        self.obtained = False
        await self.client.retry(self.client.ensure_path, self.path)
        mutex = SequentialMutex(self.client, self.path, self.identifier)
        if not await mutex.acquire(self.lock_timeout):
            return False
        try:
            self.obtained = await self._claim()
        finally:
            await mutex.release()
        return self.obtained

    async def release(self) -> bool:
        """Give the lease up before it ends; False if we do not hold it."""
        self.obtained = False
        mutex = SequentialMutex(self.client, self.path, self.identifier)
        if not await mutex.acquire(self.lock_timeout):
            return False
        try:
            current = await self._read()
            if current is None or not self._held_by_us(current[0]):
                return False
            try:
                await self.client.retry(self.client.delete, self.holder_path,
                                        current[1].version)
            except NoNodeError:
                pass  # our own delete, retried after a lost reply
            return True
        finally:
            await mutex.release()

    async def holder(self) -> tuple[str, dt.datetime] | None:
        """(identifier, end) of the lease as stored, whether or not it has ended."""
        current = await self._read()
        return None if current is None else decode_lease(current[0])

    # -- internals --------------------------------------------------------------------------

    async def _read(self) -> tuple[bytes, Stat] | None:
        try:
            return await self.client.retry(self.client.get, self.holder_path)
        except NoNodeError:
            return None

    def _held_by_us(self, raw: bytes) -> bool:
        lease = decode_lease(raw)
        return lease is not None and lease[0] == self.identifier

    async def _claim(self) -> bool:
        now = self.utcnow()
        current = await self._read()
        if current is not None:
            lease = decode_lease(current[0])
            if lease is None:
                return False  # another format version: leave it to clients that know it
            holder, end = lease
            if holder != self.identifier and now < end:
                return False
        wanted = encode_lease(self.identifier, now + self.duration)
        return await self._write(wanted, None if current is None else current[1])

    async def _write(self, wanted: bytes, seen: Stat | None) -> bool:
        """Replace the lease we read (`seen`: its Stat, None if absent) by `wanted`; False if
        someone else changed it first."""
        zk = self.client
        for _ in range(WRITE_TRIES):
            try:
                if seen is None:
                    await zk.create(self.holder_path, wanted)
                else:
                    await zk.set(self.holder_path, wanted, seen.version)
                return True
            except (NodeExistsError, BadVersionError, NoNodeError):
                current = await self._read()
                return current is not None and current[0] == wanted
            except RETRYABLE:
                await zk.retry(zk.sync, self.path)
                current = await self._read()
                if current is not None and current[0] == wanted:
                    return True
                if not _same_node(current, seen):
                    return False
        return False


def _same_node(current: tuple[bytes, Stat] | None, seen: Stat | None) -> bool:
    if current is None or seen is None:
        return current is None and seen is None
    return current[1].version == seen.version and current[1].czxid == seen.czxid


class MultiLease:
    """One of `count` leases: `<path>/0` ... `<path>/<count-1>`, tried in order."""

    def __init__(self, client: AsyncZooKeeper, count: int, path: str,
                 duration: dt.timedelta | float, identifier: str | None = None,
                 utcnow: Clock = utcnow, *, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self.leases = [Lease(client, f"{path}/{i}", duration, identifier, utcnow,
                             lock_timeout=lock_timeout) for i in range(count)]
        self.obtained = False
        self.lease: Lease | None = None

    def __bool__(self) -> bool:
        return self.obtained

    async def acquire(self) -> bool:
        self.obtained, self.lease = False, None
        for lease in self.leases:
            if await lease.acquire():
                self.obtained, self.lease = True, lease
                break
        return self.obtained

    async def release(self) -> bool:
        lease, self.lease, self.obtained = self.lease, None, False
        return lease is not None and await lease.release()


# kazoo's names
NonBlockingLease = Lease
MultiNonBlockingLease = MultiLease


# -- blocking twins -----------------------------------------------------------------------

L = TypeVar("L", Lease, MultiLease)


class _SyncLeases(SyncRecipe[L]):
    """What the blocking Lease and MultiLease have in common."""

    @property
    def obtained(self) -> bool:
        return self._inner.obtained

    def __bool__(self) -> bool:
        return self._inner.obtained

    def acquire(self) -> bool:
        return self._run(self._inner.acquire())

    def release(self) -> bool:
        return self._run(self._inner.release())


class SyncLease(_SyncLeases[Lease]):
    def __init__(self, client: ZooKeeperClient, path: str, duration: dt.timedelta | float,
                 identifier: str | None = None, utcnow: Clock = utcnow,
                 **options: Any) -> None:
        super().__init__(client, lambda zk: Lease(zk, path, duration, identifier, utcnow,
                                                  **options))

    def holder(self) -> tuple[str, dt.datetime] | None:
        return self._run(self._inner.holder())


class SyncMultiLease(_SyncLeases[MultiLease]):
    def __init__(self, client: ZooKeeperClient, count: int, path: str,
                 duration: dt.timedelta | float, identifier: str | None = None,
                 utcnow: Clock = utcnow, **options: Any) -> None:
        super().__init__(client, lambda zk: MultiLease(zk, count, path, duration, identifier,
                                                       utcnow, **options))

"""A distributed counting semaphore: at most `max_leases` holders at a time, on kazoo's
znode layout.

    sem = Semaphore(zk, "/sem/db", identifier="worker-1", max_leases=3)
    async with sem:
        ...

Layout (kazoo's Semaphore, so kazoo and zookapter holders share the leases):

- `<path>`: data = max_leases as decimal text, written by whoever creates the node. A
  contender whose max_leases differs from a numeric value found there refuses to run
  (ValueError): two views of the limit would break it.
- `<path>/<uuid hex>`: one ephemeral child per lease held, data = the holder's identifier.
- `<path>-__lock__`: a `Lock` (lock.py) — a sibling, not a child, so it never counts as a
  lease. It serialises the taking of leases: only its holder counts the children of `<path>`
  and creates a lease when there are fewer than max_leases, then releases it. Everyone else
  waits in the lock's queue watching only their predecessor, so the queue is FIFO and only
  one client at a time watches the lease children.

The count cannot overshoot even if the gate's holder loses its session while counting: the
lease is created in a multi together with a version check of the holder's gate node, so the
create is refused once that node is gone (and with it the exclusive right to count).

Connection loss: every step is idempotent; a lease whose create reply was lost is found by
its name; `suspended` is True meanwhile, and after a third of the session timeout the lease
is presumed lost (as for Lock, _holding.py). Session expiry: the lease died with the session,
`is_acquired` turns False at once and the holder must acquire again. A cancelled or
timed-out acquire deletes any lease it may have created, in the background.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from ..client.aio import AsyncZooKeeper
from ..client.errors import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from ..client.sync import ZooKeeperClient
from ._cleanup import delete_ephemeral, in_background
from ._holding import PERSIST_RETRYABLE, SessionGuard, acquire_within, persist, session_expired
from ._identifiers import identifiers_of
from ._sync import SyncRecipe
from ._typed import children
from ._waiting import Wakeup
from .lock import Lock, LockTimeout

log = logging.getLogger("zookapter.recipes.semaphore")

GATE_SUFFIX = "-__lock__"


class _Regate(Exception):
    """We lost the gate lock (session expired) before taking a lease: queue for it again."""


class Semaphore:
    """At most `max_leases` concurrent holders; fair (FIFO) among waiters; non-reentrant.
    Interoperates with kazoo's Semaphore on the same path."""

    def __init__(self, zk: AsyncZooKeeper, path: str, identifier: str | None = None,
                 max_leases: int = 1) -> None:
        zk._check_path(path)
        if path == "/":
            raise ValueError("the semaphore path must not be the root")
        if max_leases < 1:
            raise ValueError(f"max_leases must be >= 1, not {max_leases}")
        self.zk = zk
        self.path = path
        self.identifier = str(identifier or "")
        self.max_leases = max_leases
        self.lock_path = path + GATE_SUFFIX
        self._data = self.identifier.encode("utf-8")
        self._lease: str | None = None  # our lease's child name while acquiring or holding
        self._held = False
        self._wake = Wakeup()  # the lease children's watch and the connection state
        self._guard = SessionGuard(zk, lambda: self._held, self._lose, self._wake)
        self._mutex = asyncio.Lock()

    def __repr__(self) -> str:
        return (f"<Semaphore {self.path} id={self.identifier!r} max={self.max_leases} "
                f"held={self._held}>")

    @property
    def is_acquired(self) -> bool:
        """True while we hold a lease; False from the moment the session is LOST."""
        return self._held

    @property
    def lease(self) -> str | None:
        """Our lease's child name while acquiring or holding."""
        return self._lease

    @property
    def suspended(self) -> bool:
        """True while the connection is down during an acquire or a hold: the lease may be
        lost without our knowing yet (see Lock.suspended)."""
        return self._guard.suspended

    # -- acquire / release ----------------------------------------------------------------

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Wait for a lease; True once held. `blocking=False`: False at once when none is
        free (or another contender is taking one). LockTimeout after `timeout` seconds."""
        try:
            return await acquire_within(self._mutex, timeout,
                                        lambda: self._acquire_listening(blocking))
        except TimeoutError:
            raise LockTimeout(f"no lease on {self.path} in {timeout}s") from None

    async def release(self) -> bool:
        """Give the lease back; True if one was held."""
        was_held = self._held
        self._held = False
        self._guard.stop()
        name, self._lease = self._lease, None
        if name is not None:
            await asyncio.shield(self._delete_lease(name))
        return was_held

    async def __aenter__(self) -> Semaphore:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def lease_holders(self) -> list[str]:
        """Identifiers of the current lease holders (unordered), kazoo's included."""
        try:
            names = await persist(children, self.zk, self.path)
        except NoNodeError:
            return []
        return await identifiers_of(self.zk, self.path, names, persist)

    # -- the algorithm --------------------------------------------------------------------

    async def _acquire_listening(self, blocking: bool) -> bool:
        if self._held:
            raise RuntimeError(f"{self.path}: lease already held by this object")
        self._guard.start()
        name = self._lease = uuid.uuid4().hex
        try:
            got = await self._acquire(name, blocking)
        except BaseException:
            self._abandon(name)  # a lease may have been created: delete it
            raise
        if not got:  # returned normally without a lease: none was created
            self._guard.stop()
            self._lease = None
        return got

    async def _acquire(self, name: str, blocking: bool) -> bool:
        await self._ensure_node()
        while True:
            lost = self._guard.expiries
            gate = Lock(self.zk, self.lock_path, self.identifier)
            if await gate.acquire(blocking=blocking) is None:
                return False
            try:
                got = await self._take_lease(gate, name, blocking)
            except _Regate:
                continue
            except SessionExpiredError as e:
                if not session_expired(e):
                    raise
                continue
            finally:
                await gate.release()
            if got and self._guard.expiries != lost:
                continue  # the session expired meanwhile and took the new lease with it
            self._held = got
            return got

    async def _ensure_node(self) -> None:
        """Create `<path>` holding max_leases, or check the limit already written there."""
        try:
            await persist(self.zk.create, self.path, str(self.max_leases).encode(),
                          makepath=True)
            return
        except NodeExistsError:
            pass
        data, _ = await persist(self.zk.get, self.path)
        try:
            leases = int((data or b"").decode("utf-8"))
        except ValueError:
            return  # not a limit (the node's data serves something else): as kazoo does
        if leases != self.max_leases:
            raise ValueError(f"{self.path} allows {leases} leases, this contender "
                             f"expects {self.max_leases}")

    async def _take_lease(self, gate: Lock, name: str, blocking: bool) -> bool:
        """Holding the gate: wait until fewer than max_leases are taken, then take one."""
        while True:
            self._wake.clear()
            if not gate.is_acquired:
                raise _Regate
            names = await persist(children, self.zk, self.path, self._wake)
            if name in names:  # created by an attempt whose reply was lost
                return True
            if len(names) < self.max_leases:
                if await self._create_lease(gate, name):
                    return True
                continue
            if not blocking:
                return False
            await self._wake.wait()

    async def _create_lease(self, gate: Lock, name: str) -> bool:
        """The lease's create, valid only while our gate node exists. False when the
        outcome is unknown (look again)."""
        tx = self.zk.transaction()
        tx.check(f"{self.lock_path}/{gate.node}", 0)
        tx.create(f"{self.path}/{name}", self._data, ephemeral=True)
        try:
            await tx.commit()
        except PERSIST_RETRYABLE:
            return False
        except NodeExistsError:
            return True  # ours: an earlier attempt's reply was lost
        except (NoNodeError, BadVersionError):
            raise _Regate from None  # the gate node is gone: we no longer hold the gate
        return True

    # -- events ---------------------------------------------------------------------------

    def _lose(self, reason: str, session_may_live: bool) -> None:
        """The SessionGuard's verdict: the lease is gone (or presumed gone, and then it may
        still exist: delete it once the session answers)."""
        log.warning("%r: lease lost: %s", self, reason)
        name, self._lease = self._lease, None
        self._held = False
        self._guard.stop()
        if session_may_live and name is not None:
            self._delete_lease(name)

    # -- cleanup --------------------------------------------------------------------------

    def _abandon(self, name: str) -> None:
        self._guard.stop()
        self._lease = None
        self._delete_lease(name)

    def _delete_lease(self, name: str) -> asyncio.Task[bool]:
        """Delete our lease in the background, retried until the connection is back (False:
        never created, or gone with its session)."""
        return in_background(delete_ephemeral(self.zk, f"{self.path}/{name}", persist))



class SyncSemaphore(SyncRecipe[Semaphore]):
    """Blocking twin of `Semaphore`, on a `ZooKeeperClient`:

        with SyncSemaphore(client, "/sem/db", identifier="w1", max_leases=3):
            ...
    """

    def __init__(self, client: ZooKeeperClient, path: str, identifier: str | None = None,
                 max_leases: int = 1) -> None:
        super().__init__(client, lambda zk: Semaphore(zk, path, identifier, max_leases))

    @property
    def path(self) -> str:
        return self._inner.path

    @property
    def max_leases(self) -> int:
        return self._inner.max_leases

    @property
    def is_acquired(self) -> bool:
        return self._inner.is_acquired

    @property
    def suspended(self) -> bool:
        return self._inner.suspended

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._run(self._inner.acquire(blocking, timeout))

    def release(self) -> bool:
        return self._run(self._inner.release())

    def lease_holders(self) -> list[str]:
        return self._run(self._inner.lease_holders())

    def __enter__(self) -> SyncSemaphore:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

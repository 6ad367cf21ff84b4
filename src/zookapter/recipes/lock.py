"""A fair distributed lock with fencing tokens, on kazoo's znode layout.

    lock = Lock(zk, "/locks/orders", identifier="worker-1")
    async with lock as token:          # token: the fencing token of this acquisition
        await store.write(data, token)  # the store refuses tokens older than one it has seen

How it works (ZooKeeper's lock recipe):

- A contender creates an ephemeral-sequential child `<uuid hex>__lock__<seq>` of the lock
  node, holding its identifier as data. The sequence numbers form the queue; the lowest holds
  the lock (see _contenders.py for the ordering rules, which are kazoo's).
- A waiter sets a watch on its predecessor only (a getData watch, which a missing node does
  not leave behind), so a release wakes exactly one waiter. When woken it reads the children
  again: the predecessor may have left the queue without the lock having been released.
- The holder keeps an exists watch on its own node: if someone deletes it, it stops
  believing it holds the lock.

Fencing token: the czxid of the holder's lock node. Holding the lock means every contender
that sorts in front is gone, and every contender created later sorts behind, so holders
acquire in creation order — and the server assigns zxids in that same order. czxid is
therefore strictly increasing over the successive holders of one lock whichever client
created the node (a kazoo Lock's node too), and unlike the sequence number it stays
increasing when the lock node is deleted and created again (the sequence restarts at 0) and
cannot wrap around at 2**31. A store that remembers the highest token it accepted can refuse
writes from a holder whose session expired while it was paused (see docs/recipes/locks.md).

Failures:

- Connection loss (SUSPENDED): every step is idempotent and retried. A create whose reply was
  lost is recovered by looking for the node's unique prefix ("protected" mode). The holder
  keeps the lock — its session, and with it its node, may still be alive — but `suspended`
  tells it the lock may be lost by now. Suspended for a third of the session timeout — the
  earliest the ensemble may expire the session — it presumes the lock lost (`is_acquired`
  False) and deletes its node if the session comes back after all (see _holding.py).
- Session expiry (LOST): the node died with the session. A holder reports `is_acquired`
  False at once (the state listener runs before any later request can be sent); a waiter
  queues again with a new node in the client's new session.
- A cancelled or timed-out acquire deletes its node in a background task, retried until the
  connection returns, so an abandoned contender never blocks the queue for longer than the
  network outage.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from ..client.aio import AsyncZooKeeper
from ..client.errors import NoNodeError, NotReadOnlyError, SessionExpiredError
from ..client.sync import ZooKeeperClient
from ..client.watches import WatchedEvent
from ..protocol.consts import CreateMode, EventType
from ._cleanup import delete_contender, in_background
from ._contenders import (
    LOCK_MARK,
    LOCK_ONLY,
    contender_identifiers,
    find_own,
    new_prefix,
    predecessor,
)
from ._holding import RETRY_DELAY_MAX_S, SessionGuard, acquire_within, persist, session_expired
from ._sync import SyncRecipe
from ._typed import children, create_with_stat
from ._waiting import RETRYABLE, Wakeup

log = logging.getLogger("zookapter.recipes.lock")


class LockTimeout(TimeoutError):
    """`acquire(timeout=...)` did not obtain the lock (or lease) in time."""


class _Requeue(Exception):
    """Our node left the queue (session expired, or deleted by someone): queue again."""


class Lock:
    """An exclusive, fair (FIFO), non-reentrant lock; see the module docstring.

    Interoperates with kazoo's `Lock` and `WriteLock` on the same path (same node names and
    order). Subclasses change which nodes they create and which block them (rwlock.py)."""

    NODE_MARK: ClassVar[str] = LOCK_MARK
    BLOCKED_BY: ClassVar[frozenset[str]] = LOCK_ONLY

    def __init__(self, zk: AsyncZooKeeper, path: str, identifier: str | None = None) -> None:
        zk._check_path(path)
        if path == "/":
            raise ValueError("the lock path must not be the root")
        self.zk = zk
        self.path = path
        self.identifier = str(identifier or "")
        self._data = self.identifier.encode("utf-8")
        self._prefix = ""           # unique prefix of the current attempt's node
        self._node: str | None = None  # our child name while queued or holding
        self._token: int | None = None
        self._held = False
        self._wake = Wakeup()  # our predecessor's watch and the connection state
        self._guard = SessionGuard(zk, lambda: self._held, self._lose, self._wake)
        self._path_ensured = False
        self._mutex = asyncio.Lock()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.path} id={self.identifier!r} "
                f"held={self._held} node={self._node}>")

    # -- state ----------------------------------------------------------------------------

    @property
    def is_acquired(self) -> bool:
        """True while this object holds the lock; False from the moment the session is LOST
        or the node was deleted. See `suspended` for the uncertain state in between."""
        return self._held

    @property
    def fencing_token(self) -> int | None:
        """The token of the current hold (czxid of our node), None when not held."""
        return self._token if self._held else None

    @property
    def node(self) -> str | None:
        """Our child name (`<uuid>__lock__<seq>`) while queued or holding."""
        return self._node

    @property
    def suspended(self) -> bool:
        """True while the connection is down (or on a read-only server) during an acquire or
        a hold: we may have lost the lock without knowing yet. After a third of the session
        timeout in this state `is_acquired` turns False (see _holding.py)."""
        return self._guard.suspended

    # -- acquire / release ----------------------------------------------------------------

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> int | None:
        """Wait for the lock and return the fencing token. `blocking=False`: return None at
        once if the lock is taken. LockTimeout after `timeout` seconds (the queued node is
        removed). Not reentrant: RuntimeError if this object already holds it."""
        try:
            return await acquire_within(self._mutex, timeout,
                                        lambda: self._acquire_listening(blocking))
        except TimeoutError:
            raise LockTimeout(f"could not acquire {self.path} in {timeout}s") from None

    async def release(self) -> bool:
        """Leave the lock (or the queue); True if it was held. The node's deletion goes on in
        the background if this call is cancelled."""
        was_held = self._held
        self._held, self._token = False, None
        self._guard.stop()
        node, self._node = self._node, None
        if node is not None:
            await asyncio.shield(self._cleanup(self._prefix, node))
        return was_held

    async def __aenter__(self) -> int:
        token = await self.acquire()
        if token is None:  # pragma: no cover - blocking acquire always returns a token
            raise AssertionError("blocking acquire returned no token")
        return token

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def contenders(self) -> list[str]:
        """Identifiers of every contender this lock kind sees (holders first), in queue
        order, kazoo's contenders included. Empty identifiers appear as ''."""
        return await contender_identifiers(self.zk, self.path,
                                           self.BLOCKED_BY | {self.NODE_MARK}, persist)

    # -- the algorithm --------------------------------------------------------------------

    async def _acquire_listening(self, blocking: bool) -> int | None:
        if self._held:
            raise RuntimeError(f"{self.path}: already held by this Lock object")
        self._guard.start()
        try:
            token = await self._acquire(blocking)
        except BaseException:
            self._abandon()
            raise
        if token is None:  # not blocking: leave no trace by the time we return
            cleanup = self._abandon()
            if cleanup is not None:
                await asyncio.shield(cleanup)
        return token

    async def _acquire(self, blocking: bool) -> int | None:
        self._prefix = ""
        if not self._path_ensured:  # once: a create finding it gone makes it again
            await persist(self.zk.ensure_path, self.path)
            self._path_ensured = True
        while True:
            lost = self._guard.expiries
            try:
                node, token = await self._enqueue()
                if not await self._wait_turn(node, lost, blocking):
                    return None
            except _Requeue:
                self._abandon_node()
                continue
            except SessionExpiredError as e:
                if not session_expired(e):
                    raise
                self._abandon_node()
                continue
            self._held, self._token = True, token
            return token

    async def _enqueue(self) -> tuple[str, int]:
        """Create our node (or find it after a lost reply): (child name, czxid)."""
        self._prefix = new_prefix(self.NODE_MARK)
        self._node = None
        base = f"{self.path}/{self._prefix}"
        while True:
            try:
                created, stat = await create_with_stat(
                    self.zk, base, self._data, mode=CreateMode.EPHEMERAL_SEQUENTIAL)
            except NoNodeError:  # the lock node was deleted meanwhile
                await persist(self.zk.ensure_path, self.path)
                continue
            except RETRYABLE:
                found = await self._find_own()
                if found is None:
                    continue
                return found
            except NotReadOnlyError:  # nothing was created; wait for a read-write server
                await asyncio.sleep(RETRY_DELAY_MAX_S)
                continue
            self._node = created[len(self.path) + 1:]
            return self._node, stat.czxid

    async def _find_own(self) -> tuple[str, int] | None:
        try:
            name = find_own(await persist(children, self.zk, self.path), self._prefix)
        except NoNodeError:
            return None
        if name is None:
            return None
        stat = await persist(self.zk.exists, f"{self.path}/{name}")
        if stat is None:
            return None
        self._node = name
        return name, stat.czxid

    async def _wait_turn(self, node: str, lost: int, blocking: bool) -> bool:
        """Wait until nothing in front of `node` blocks it; False if that is not so at once
        and not `blocking`. _Requeue when the node or its session went away."""
        while True:
            self._wake.clear()
            if self._guard.expiries != lost:
                raise _Requeue
            try:
                names = await persist(children, self.zk, self.path)
            except NoNodeError:
                raise _Requeue from None
            if node not in names:
                raise _Requeue
            ahead = predecessor(names, node, self.BLOCKED_BY)
            if ahead is None:
                await self._watch_own(node)
                if self._guard.expiries != lost:
                    raise _Requeue
                return True
            if not blocking:
                return False
            try:
                await persist(self.zk.get, f"{self.path}/{ahead}", watch=self._wake)
            except NoNodeError:
                continue  # gone already: look again
            await self._wake.wait()

    async def _watch_own(self, node: str) -> None:
        if await persist(self.zk.exists, f"{self.path}/{node}", watch=self._on_own_node) is None:
            raise _Requeue

    # -- events ---------------------------------------------------------------------------

    def _on_own_node(self, event: WatchedEvent) -> None:
        node = self._node
        if not self._held or node is None or event.path != f"{self.path}/{node}":
            return  # a stale watch of an earlier hold
        if event.type == EventType.NODE_DELETED:
            self._drop("its lock node was deleted")
        else:  # a data change used up the one-shot watch: set it again
            in_background(self._rewatch_own(node))

    async def _rewatch_own(self, node: str) -> None:
        try:
            await self._watch_own(node)
        except _Requeue:
            if self._held and self._node == node:
                self._drop("its lock node was deleted")
        except SessionExpiredError:
            pass  # the state listener handles expiry

    def _lose(self, reason: str, session_may_live: bool) -> None:
        """The SessionGuard's verdict: the hold is gone (or presumed gone, and then our node
        may still exist: delete it once the session answers)."""
        node, prefix = self._node, self._prefix
        self._drop(reason)
        if session_may_live and node is not None:
            self._cleanup(prefix, node)

    def _drop(self, reason: str) -> None:
        log.warning("%r no longer held: %s", self, reason)
        self._held, self._token, self._node = False, None, None
        self._guard.stop()

    # -- cleanup --------------------------------------------------------------------------

    def _abandon(self) -> asyncio.Task[bool] | None:
        """Give up the attempt: stop listening, delete our node in the background."""
        self._guard.stop()
        return self._abandon_node()

    def _abandon_node(self) -> asyncio.Task[bool] | None:
        node, self._node = self._node, None
        if not self._prefix:
            return None  # no create was sent yet
        return self._cleanup(self._prefix, node)

    def _cleanup(self, prefix: str, node: str | None) -> asyncio.Task[bool]:
        """Delete our node in the background, retried until the connection is back; without
        its name (a create's reply was lost), find it by prefix. A node of an expired or
        closed session is already gone."""
        return in_background(delete_contender(self.zk, self.path, prefix, node, persist))


class SyncLock(SyncRecipe[Lock]):
    """Blocking twin of `Lock`, on a `ZooKeeperClient`:

        with SyncLock(client, "/locks/orders", identifier="w1") as token:
            ...
    """

    def __init__(self, client: ZooKeeperClient, path: str, identifier: str | None = None
                 ) -> None:
        super().__init__(client, lambda zk: Lock(zk, path, identifier))

    @classmethod
    def wrap(cls, client: ZooKeeperClient, lock: Lock) -> SyncLock:
        """A blocking view of an existing async lock (one built on `client`'s loop)."""
        obj = cls.__new__(cls)
        SyncRecipe.__init__(obj, client, lambda zk: lock)
        return obj

    @property
    def path(self) -> str:
        return self._inner.path

    @property
    def identifier(self) -> str:
        return self._inner.identifier

    @property
    def node(self) -> str | None:
        return self._inner.node

    @property
    def is_acquired(self) -> bool:
        return self._inner.is_acquired

    @property
    def suspended(self) -> bool:
        return self._inner.suspended

    @property
    def fencing_token(self) -> int | None:
        return self._inner.fencing_token

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> int | None:
        return self._run(self._inner.acquire(blocking, timeout))

    def release(self) -> bool:
        return self._run(self._inner.release())

    def contenders(self) -> list[str]:
        return self._run(self._inner.contenders())

    def __enter__(self) -> int:
        return self._run(self._inner.__aenter__())

    def __exit__(self, *exc: object) -> None:
        self.release()

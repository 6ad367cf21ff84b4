"""What the lock recipes (lock.py, rwlock.py, semaphore.py) share to hold something through
connection trouble: retrying idempotent steps for as long as the caller waits (`persist`), and
a `SessionGuard` that follows the client's connection state for a holder. (Clean-ups that
outlive their caller: _cleanup.py.)

When does a holder stop believing it holds? ZooKeeper only tells a client its session expired
when the client reconnects, so the guard applies two rules:

- LOST (the client heard of the expiry, or was stopped): the hold is gone, certainly — the
  ephemeral node died with the session.
- SUSPENDED (or connected to a read-only server) for a third of the negotiated session
  timeout T: the hold is presumed gone. That is the earliest moment the ensemble may expire
  the session: it does so T after it last heard from the client, and the client notices a
  dead connection at the latest 2T/3 after it last heard from the server (its read
  timeout; a connection that breaks outright is noticed sooner). Giving up then means the
  holder stops believing before anyone else can be granted the lock. If the session was in
  fact not expired (a short outage, a server restart, which renews the sessions it reloads,
  or no quorum to expire it), the node still exists, so the holder deletes it as soon as
  the session answers again; until then the lock stays taken, which is safe.

Until either happens the holder sees `suspended` True: it still holds the lock as far as it
knows, and should not start anything it could not have fenced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import ConnectionClosedError, NotReadOnlyError, SessionExpiredError
from ._waiting import RETRYABLE

T = TypeVar("T")

# Suspended for this fraction of the session timeout, a holder presumes its hold gone.
SUSPENDED_GIVE_UP_FRACTION = 1 / 3

RETRY_DELAY_MIN_S = 0.05
RETRY_DELAY_MAX_S = 1.0

# Failures that leave a step's outcome unknown or that pass: retried by `persist`. On top of
# connection trouble, NotReadOnlyError: the server lost its quorum and serves reads only, for
# now.
PERSIST_RETRYABLE: tuple[type[BaseException], ...] = (*RETRYABLE, NotReadOnlyError)


async def persist(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Await `fn` until it does not fail with a RETRYABLE error. Only for idempotent steps.
    Unbounded on purpose: a waiter waits as long as its caller lets it (timeout, cancel), and
    a disconnected client queues requests rather than spinning."""
    delay = RETRY_DELAY_MIN_S
    while True:
        try:
            return await fn(*args, **kwargs)
        except PERSIST_RETRYABLE:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_DELAY_MAX_S)


async def acquire_within(mutex: asyncio.Lock, timeout: float | None,
                         attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()` while holding `mutex` (one acquire at a time per recipe object), waiting
    for both at most `timeout` seconds (None: no limit); TimeoutError when that runs out."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    async with asyncio.timeout_at(deadline):
        async with mutex:
            return await attempt()


def session_expired(error: BaseException) -> bool:
    """True for a session expiry (the client goes on with a new session), False for a
    stopped client (ConnectionClosedError, which subclasses SessionExpiredError)."""
    return isinstance(error, SessionExpiredError) and not isinstance(error,
                                                                     ConnectionClosedError)


def hold_uncertain(state: ConnectionState) -> bool:
    """Whether a holder in this connection state may have lost its hold without knowing:
    disconnected (SUSPENDED) or on a read-only server, which has lost touch with the quorum
    that may expire the session meanwhile."""
    return state not in (ConnectionState.CONNECTED, ConnectionState.LOST)


class SessionGuard:
    """Follows the connection state for one recipe object while it acquires or holds.

    `holding()` says whether the recipe holds something now; `lost(reason, session_may_live)`
    is called when that hold is gone (session expired: False) or presumed gone (suspended
    for T/3: True — the recipe must then delete its node once the session answers);
    `wake()` on every state change, so waiting loops look again."""

    def __init__(self, zk: AsyncZooKeeper, holding: Callable[[], bool],
                 lost: Callable[[str, bool], None], wake: Callable[[], None]) -> None:
        self.zk = zk
        self._holding = holding
        self._lost = lost
        self._wake = wake
        self.suspended = False
        self.expiries = 0  # LOST states seen while started
        self._started = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if not self._started:
            self.zk.add_listener(self._on_state)
            self._started = True
            self.suspended = hold_uncertain(self.zk.state)

    def stop(self) -> None:
        if self._started:
            self.zk.remove_listener(self._on_state)
            self._started = False
        self.suspended = False
        self._cancel_timer()

    def _on_state(self, state: ConnectionState) -> None:
        self.suspended = hold_uncertain(state)
        self._cancel_timer()
        if state == ConnectionState.LOST:
            self.expiries += 1
            if self._holding():
                self._lost("its session expired", False)
        elif self.suspended and self._holding():
            timeout_s = (self.zk.negotiated_timeout_ms or self.zk.timeout * 1000) / 1000
            self._timer = asyncio.get_running_loop().call_later(
                timeout_s * SUSPENDED_GIVE_UP_FRACTION, self._suspended_too_long)
        self._wake()

    def _suspended_too_long(self) -> None:
        self._timer = None
        if self.suspended and self._holding():
            self._lost("disconnected for a third of the session timeout", True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

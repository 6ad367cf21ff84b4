"""Waiting for "something changed" in the recipes.

Every waiting recipe follows the same loop: clear a `Wakeup`, read the state it cares about
while setting watches with the `Wakeup` as their callback, decide, and if it has to wait,
wait on the `Wakeup`. The same object is registered as a connection state listener, so a
reconnect, a suspension or a session expiry also wakes the loop and makes it read again (the
watches set on an expired session are gone; the loop sets them anew on the next pass). Because
it is cleared *before* the reads, nothing that happens during them can be missed.

A `Wakeup` is one object with default hashing, so registering it as the watch callback of the
same node many times leaves one registration in the client's watch table.

`wait_for` is that loop for the recipes that wait with a timeout (barriers, queues).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..client.aio import AsyncZooKeeper
from ..client.errors import (
    ConnectionClosedError,
    ConnectionLossError,
    OperationTimeoutError,
    SessionExpiredError,
)

T = TypeVar("T")

# Errors after which a recipe re-reads once the connection is back.
RETRYABLE: tuple[type[BaseException], ...] = (ConnectionLossError, OperationTimeoutError)
# ... and, for loops that outlive a session, the expiry that a new session follows (catch
# ConnectionClosedError, a SessionExpiredError meaning the client was stopped, before these).
TRANSIENT: tuple[type[BaseException], ...] = (*RETRYABLE, SessionExpiredError)

# How long a loop that hit a connection error waits before trying again if no state change
# woke it earlier (requests made while disconnected wait in the client's queue anyway).
ERROR_PAUSE_S = 0.5


class Wakeup:
    """An asyncio event that is also a watch callback and a state listener (any call sets it).
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __call__(self, _what: object = None) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or `timeout` seconds passed (None: no limit); True if set."""
        if self._event.is_set():
            return True
        if timeout is None:
            await self._event.wait()
            return True
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self._event.is_set()


class Deadline:
    """A point in time `timeout` seconds from now (None: never)."""

    def __init__(self, timeout: float | None) -> None:
        self._at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None for no limit."""
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at


def bounded(seconds: float, deadline: Deadline) -> float:
    """`seconds`, but no longer than the deadline allows."""
    left = deadline.remaining()
    return seconds if left is None else min(seconds, left)


async def wait_for(zk: AsyncZooKeeper, look: Callable[[Wakeup], Awaitable[T | None]],
                   deadline: Deadline, wake: Wakeup | None = None) -> T | None:
    """Call `look(wake)` until it returns something other than None or False, and return
    that; None once `deadline` passed without it.

    `look` reads what it waits for, setting its watches with `wake` as callback (a new
    Wakeup unless the caller passes one its watch objects already call); `wake` also hears
    the connection state, so each change means one more look. A connection error or a session
    expiry in a look means another look once the connection is back (at the latest
    ERROR_PAUSE_S later); a stopped client (ConnectionClosedError) ends the wait."""
    wake = Wakeup() if wake is None else wake
    zk.add_listener(wake)
    try:
        while True:
            wake.clear()
            try:
                outcome = await look(wake)
                if outcome is not None and outcome is not False:
                    return outcome
                pause = deadline.remaining()
            except ConnectionClosedError:
                raise
            except TRANSIENT:
                pause = bounded(ERROR_PAUSE_S, deadline)
            if not await wake.wait(pause) and deadline.expired:
                return None
    finally:
        zk.remove_listener(wake)

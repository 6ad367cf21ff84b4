"""DataWatch and ChildrenWatch: follow one znode's data or child list for as long as you like.

    async def show(data, stat):
        print(data, stat)                  # now, and after every change
    watch = await DataWatch(zk, "/config", show)
    ...
    watch.stop()                           # or: return False from the callback

A one-shot ZooKeeper watch fires once and is then gone, and a session expiry forgets every
watch; following a node therefore means re-reading and re-arming after each event, and
reading again after the client reconnects. These helpers (kazoo's DataWatch/ChildrenWatch,
asyncio-native) do that in one task per watch:

- the callback gets the current state at once, then the state after each change. Events
  that arrive while the callback runs collapse into one re-read, so it sees the latest
  state, never a stale one (intermediate states may be skipped, as with any ZooKeeper watch);
- DataWatch: `func(data, stat)` — `(None, None)` while the node does not exist (an exists
  watch waits for its creation); ChildrenWatch: `func(children)` — `[]` while the node does
  not exist, and it follows the node when it comes back. With `send_event=True` (or a
  callback taking one more parameter) the WatchedEvent that caused the call is passed last
  (None for the first call and for re-reads after a reconnect);
- after every reconnect (same session or, after an expiry, a new one) the node is read
  again. The callback runs only if what it would be given changed — DataWatch compares the
  node's czxid and mzxid (a new version of the data, or a new node), ChildrenWatch the set
  of names — so a reconnect alone never produces a duplicate call;
- connection loss is waited out (reads queue until the client is connected again); an error
  that retrying cannot fix (NoAuthError, ...) ends the watch and is raised by `ready()`;
- the watch ends when the callback returns False, on `stop()`, when the client is stopped,
  or on session loss if `allow_session_lost=False`. Ending it removes its ZooKeeper watch.

Callbacks may be plain functions or coroutine functions; they run one at a time in the
watch's own task, so a slow callback delays only its own watch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Generator, Hashable
from typing import TYPE_CHECKING, Any, Self

from ..protocol.consts import WatcherType
from ..protocol.records import Stat
from .errors import (
    ConnectionClosedError,
    ConnectionLossError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    ZookeeperError,
)
from .watches import WatchedEvent

if TYPE_CHECKING:
    from .aio import AsyncZooKeeper

log = logging.getLogger("zookapter.client")

RETRY_DELAY_S = 0.05
RETRY_DELAY_MAX_S = 1.0
_RETRYABLE = (ConnectionLossError, OperationTimeoutError, SessionExpiredError)

Key = Hashable  # what identifies a state already delivered


def takes_event(func: Callable[..., Any], plain_args: int) -> bool:
    """True if `func` accepts one positional parameter more than `plain_args` (then it is
    given the WatchedEvent too, as kazoo decides for DataWatch)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return False
    return len(positional) > plain_args


class _NodeWatch:
    """The follow loop shared by DataWatch and ChildrenWatch; subclasses say how to read."""

    _plain_args = 1

    def __init__(self, client: AsyncZooKeeper, path: str,
                 func: Callable[..., Any] | None = None, *, send_event: bool | None = None,
                 allow_session_lost: bool = True) -> None:
        client._check_path(path)
        self.client = client
        self.path = path
        self._send_event = send_event
        self._allow_session_lost = allow_session_lost
        self._func: Callable[..., Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._event: WatchedEvent | None = None
        self._key: Key = None
        self._delivered = False
        self._stopped = False
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watcher = self._on_event  # one bound method: the watch registry's key
        if func is not None:
            self._start(func)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator form: `@DataWatch(zk, path)` starts following with the decorated
        function (which is returned unchanged)."""
        if self._func is not None:
            raise RuntimeError("this watch already has a callback")
        self._start(func)
        return func

    def _start(self, func: Callable[..., Any]) -> None:
        self._func = func
        if self._send_event is None:
            self._send_event = takes_event(func, self._plain_args)
        self.client.add_listener(self._on_state)
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- public ---------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stop following (callable from the callback too); the callback is not called
        again. The ZooKeeper watch is removed in the background."""
        self._stopped = True
        self._wake.set()

    async def close(self) -> None:
        """stop() and wait until the watch's task has finished."""
        self.stop()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.gather(task, return_exceptions=True)

    async def ready(self) -> Self:
        """Wait until the callback has been called with the initial state (or the watch
        ended before that); raise the error that ended it at the first read, if any."""
        await asyncio.shield(self._ready)
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self.ready().__await__()

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        error: BaseException | None = None
        client_gone = False
        delay = RETRY_DELAY_S
        try:
            while not self._stopped:
                self._wake.clear()
                event, self._event = self._event, None
                try:
                    value, key = await self._read()
                    if self._stopped:
                        return
                except ConnectionClosedError:
                    client_gone = True
                    return
                except _RETRYABLE:
                    delay = await self._pause(delay)
                    continue
                delay = RETRY_DELAY_S
                if not self._delivered or key != self._key:
                    self._delivered, self._key = True, key
                    if await self._deliver(value, event) is False:
                        return
                    _resolve(self._ready)
                if not self._stopped:
                    await self._wake.wait()
        except asyncio.CancelledError:
            client_gone = True  # the loop is going away: no server round trip now
            raise
        except Exception as e:  # NoAuthError and the like: retrying cannot help
            error = e
            log.warning("%s on %s ended: %r", type(self).__name__, self.path, e)
        finally:
            self._stopped = True
            if error is not None and not self._ready.done():
                self._ready.set_exception(error)
                self._ready.exception()  # raised by ready(); no "never retrieved" warning
            _resolve(self._ready)
            await self._cleanup(client_gone)

    async def _pause(self, delay: float) -> float:
        """After a retryable failure: wait for the next state change (or event) if the client
        is not connected, else back off a little; return the next delay."""
        if self.client.connected:
            await asyncio.sleep(delay)
            return min(delay * 2, RETRY_DELAY_MAX_S)
        await self._wake.wait()
        return RETRY_DELAY_S

    async def _deliver(self, value: Any, event: WatchedEvent | None) -> Any:
        assert self._func is not None
        args = (*value, event) if self._send_event else value
        try:
            result = self._func(*args)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("%s callback %r failed", type(self).__name__, self._func)
            return None
        return result

    async def _read(self) -> tuple[tuple[Any, ...], Key]:
        raise NotImplementedError

    async def _exists_or_none(self) -> Stat | None:
        """After NoNode: set an exists watch (it fires on creation); the node's Stat if it
        was created in between."""
        return await self.client.exists(self.path, watch=self._watcher)

    # -- wake-ups -------------------------------------------------------------------------

    def _on_event(self, event: WatchedEvent) -> None:
        if not self._stopped:
            self._event = event
            self._wake.set()

    def _on_state(self, state: str) -> None:
        if state == "LOST" and not self._allow_session_lost:
            self._stopped = True
        self._wake.set()

    async def _cleanup(self, client_gone: bool) -> None:
        try:
            self.client.remove_listener(self._on_state)
        except ValueError:
            pass
        if client_gone or self._func is None:
            return
        try:
            await self.client.remove_watches(self.path, WatcherType.ANY, self._watcher,
                                             local=not self.client.connected)
        except ZookeeperError:
            pass  # NoWatcherError (it fired meanwhile) or the client went away


class DataWatch(_NodeWatch):
    """Calls `func(data, stat)` now and whenever the node's data changes, it is created or
    deleted (`(None, None)` while it does not exist). See the module docstring."""

    _plain_args = 2

    async def _read(self) -> tuple[tuple[Any, ...], Key]:
        while True:
            try:
                data, stat = await self.client.get(self.path, watch=self._watcher)
                return (data, stat), (stat.czxid, stat.mzxid)
            except NoNodeError:
                if await self._exists_or_none() is None:
                    return (None, None), None


class ChildrenWatch(_NodeWatch):
    """Calls `func(children)` now and whenever the node's child list changes (`[]` while the
    node does not exist). See the module docstring."""

    _plain_args = 1

    async def _read(self) -> tuple[tuple[Any, ...], Key]:
        while True:
            try:
                children = await self.client.get_children(self.path, watch=self._watcher)
                return (children,), frozenset(children)
            except NoNodeError:
                if await self._exists_or_none() is None:
                    return ([],), frozenset()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)

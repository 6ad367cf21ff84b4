"""Leader election: `LeaderLatch` (a lasting candidacy that reports gain and loss of
leadership) and `LeaderElection` (run a function while leader, kazoo's Election).

Both put one ephemeral sequential node per candidate under the election path, in kazoo's lock
layout (`<uuid>__lock__<seq>`, data = identifier; see _contenders.py): the lowest sequence
leads. A kazoo Election (or Lock) on the same path therefore takes part in the same
election, and `contenders()` lists the same identifiers in the same order as kazoo's.

Exactly one leader at a time, as far as a client can know:
- A candidate believes it leads only after reading the children while connected and finding
  its own node first, and watches its own node so a deletion ends that belief.
- On SUSPENDED (connection lost, session maybe alive) it stops believing at once, by default
  (`suspended_is_lost=True`, Curator's conservative choice): the server may expire the session
  while we cannot hear about it, and only then would another candidate win. A client drops a
  silent connection after 2/3 of the session timeout, before the server can expire it, so the
  old leader has stepped down before a new one can be elected. When the connection comes back
  with the same session and the node is still first, leadership resumes.
- On LOST (session expired) the node is gone; the latch enters again with a new node in the
  new session, at the back of the queue.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import ConnectionClosedError, SessionExpiredError
from ..client.sync import ZooKeeperClient
from ._cleanup import remove_contender
from ._contenders import contender_identifiers, create_protected, new_prefix, predecessor
from ._sync import SyncRecipe
from ._typed import children
from ._waiting import ERROR_PAUSE_S, RETRYABLE, Wakeup

log = logging.getLogger("zookapter.recipes")

Listener = Callable[[bool], Any]


class LeadershipLost(Exception):
    """The leader's session was suspended or expired, or its node deleted, while it ran."""


class LeaderLatch:
    """A candidacy that lasts from `start()` to `close()`; `has_leadership` says whether this
    candidate leads now, listeners hear `True` on gain and `False` on loss.

        async with LeaderLatch(zk, "/app/leader", "node-1") as latch:
            await latch.await_leadership()
    """

    def __init__(self, client: AsyncZooKeeper, path: str, identifier: str = "", *,
                 suspended_is_lost: bool = True) -> None:
        self.client = client
        self.path = path
        self.identifier = identifier
        self.suspended_is_lost = suspended_is_lost
        self._data = identifier.encode("utf-8")
        self._prefix = new_prefix()
        self._node: str | None = None
        self._node_session = 0
        self._leader = False
        self._gained = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()
        self._wake = Wakeup()
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def has_leadership(self) -> bool:
        return self._leader

    @property
    def node(self) -> str | None:
        """The path of this candidate's node, if it has one now."""
        return None if self._node is None else f"{self.path}/{self._node}"

    async def start(self) -> None:
        """Enter the election: the node exists when this returns."""
        if self._task is not None:
            raise RuntimeError("latch already started")
        self.client.add_listener(self._on_state)
        try:
            await self.client.retry(self.client.ensure_path, self.path)
            await self._create_node()
        except BaseException:
            self.client.remove_listener(self._on_state)
            await self._remove_node()
            raise
        self._task = asyncio.get_running_loop().create_task(self._contend())

    async def close(self) -> None:
        """Leave the election: step down first if leading (so no two leaders overlap), then
        delete the node (in the background if the connection is down; found by its prefix
        if a cancelled create never told us its name: see _cleanup.py)."""
        task, self._task = self._task, None
        if task is None:
            return
        self.client.remove_listener(self._on_state)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._set_leader(False)
        await self._remove_node()

    async def await_leadership(self, timeout: float | None = None) -> bool:
        """Wait until this candidate leads (at most `timeout` s); True if it does."""
        if self._task is None:
            raise RuntimeError("latch not started")
        try:
            await asyncio.wait_for(self._gained.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self._leader

    async def await_loss(self) -> None:
        """Wait until this candidate does not lead (returns at once if it does not)."""
        await self._lost.wait()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(True)` when leadership is gained, `listener(False)` when lost (on the
        event loop; a coroutine's result runs as a task)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    async def contenders(self) -> list[str]:
        """Identifiers of all candidates, the leader first."""
        return await contender_identifiers(self.client, self.path)

    async def __aenter__(self) -> LeaderLatch:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the candidacy loop -----------------------------------------------------------------

    async def _contend(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._step()
                await self._wake.wait()
            except RETRYABLE:
                await self._wake.wait(ERROR_PAUSE_S)
            except ConnectionClosedError:  # client stopped: wait for it to start again
                self._set_leader(False)
                await self._wake.wait()
            except SessionExpiredError:
                self._set_leader(False)
                await self._wake.wait(ERROR_PAUSE_S)
            except Exception:
                log.exception("leader latch on %s: unexpected error", self.path)
                self._set_leader(False)
                await self._wake.wait(ERROR_PAUSE_S * 4)

    async def _step(self) -> None:
        """Read the candidates once; lead if first, else watch the one just before us."""
        zk = self.client
        if self._node is None or self._node_session != zk.session_id:
            self._set_leader(False)
            await self._create_node()
        names = await children(zk, self.path)
        if self._node is None or self._node not in names:
            self._forget_node()
            return
        ahead = predecessor(names, self._node)
        if ahead is not None:
            self._set_leader(False)
            if await zk.exists(f"{self.path}/{ahead}", watch=self._wake) is None:
                self._wake()
            return
        if await zk.exists(f"{self.path}/{self._node}", watch=self._wake) is None:
            self._forget_node()
        elif zk.state == ConnectionState.CONNECTED and zk.session_id == self._node_session:
            self._set_leader(True)

    async def _remove_node(self) -> None:
        """Delete our node; by prefix if a create may be in flight (cancelled meanwhile) or
        the name we hold is from an earlier session."""
        node, self._node = self._node, None
        if self._node_session != self.client.session_id:
            node = None
        await remove_contender(self.client, self.path, self._prefix, node)

    async def _create_node(self) -> None:
        self._node, self._node_session = await create_protected(
            self.client, self.path, self._prefix, self._data)

    def _forget_node(self) -> None:
        """Our node is gone (deleted, or its session expired): step down, enter again."""
        self._set_leader(False)
        self._node = None
        self._wake()

    def _on_state(self, state: ConnectionState) -> None:
        if state == ConnectionState.LOST:
            self._set_leader(False)
            self._node = None
        elif state == ConnectionState.SUSPENDED and self.suspended_is_lost:
            self._set_leader(False)
        self._wake()

    def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        (self._gained if leader else self._lost).set()
        (self._lost if leader else self._gained).clear()
        for listener in list(self._listeners):
            try:
                result = listener(leader)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception:
                log.exception("leader latch listener %r failed", listener)


class LeaderElection:
    """kazoo's Election: `await election.run(func)` waits to be elected, runs `func` as leader
    and steps down when it returns. If leadership is lost meanwhile, a coroutine `func` is
    cancelled and run() raises LeadershipLost; `cancel()` withdraws (run() returns None)."""

    def __init__(self, client: AsyncZooKeeper, path: str, identifier: str = "", *,
                 suspended_is_lost: bool = True) -> None:
        self.client = client
        self.path = path
        self.identifier = identifier
        self.suspended_is_lost = suspended_is_lost
        self._latch: LeaderLatch | None = None
        self._cancelled = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._latch is not None and self._latch.has_leadership

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Return `func`'s result, or None if cancelled before (or while) leading."""
        if not callable(func):
            raise ValueError("leader function is not callable")
        if not await self._campaign():
            return None
        try:
            return await self._lead(func, args, kwargs)
        finally:
            await self._resign()

    def cancel(self) -> None:
        """Stop contending; a leader's running coroutine is cancelled too."""
        self._cancelled.set()

    async def contenders(self) -> list[str]:
        return await contender_identifiers(self.client, self.path)

    async def _campaign(self) -> bool:
        """Enter and wait to win; False (having left again) if cancelled first."""
        latch = LeaderLatch(self.client, self.path, self.identifier,
                            suspended_is_lost=self.suspended_is_lost)
        self._latch = latch
        try:
            await latch.start()
            await _first_of(latch.await_leadership(), self._cancelled.wait())
        except BaseException:
            await self._resign()
            raise
        if self._cancelled.is_set():
            await self._resign()
            return False
        return True

    async def _lead(self, func: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        latch = self._latch
        if latch is None:
            raise AssertionError("leading without a latch")
        work = asyncio.ensure_future(_invoke(func, args, kwargs))
        interrupted = True
        try:
            await _first_of(asyncio.shield(work), latch.await_loss(), self._cancelled.wait())
            interrupted = not work.done()
        finally:
            if interrupted:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if not interrupted:
            return work.result()
        if self._cancelled.is_set():
            return None
        raise LeadershipLost(f"leadership of {self.path} lost")

    async def _resign(self) -> None:
        latch, self._latch = self._latch, None
        self._cancelled.clear()
        if latch is not None:
            await latch.close()


async def _invoke(func: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _first_of(*aws: Any) -> None:
    """Wait until the first of `aws` completes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


# -- blocking twins -----------------------------------------------------------------------

class SyncLeaderLatch(SyncRecipe[LeaderLatch]):
    """Blocking LeaderLatch; listeners run on the client's callback thread."""

    def __init__(self, client: ZooKeeperClient, path: str, identifier: str = "", *,
                 suspended_is_lost: bool = True) -> None:
        super().__init__(client, lambda zk: LeaderLatch(
            zk, path, identifier, suspended_is_lost=suspended_is_lost))

    @property
    def has_leadership(self) -> bool:
        return self._inner.has_leadership

    def start(self) -> None:
        self._run(self._inner.start())

    def close(self) -> None:
        self._run(self._inner.close())

    def await_leadership(self, timeout: float | None = None) -> bool:
        return self._run(self._inner.await_leadership(timeout))

    def add_listener(self, listener: Listener) -> None:
        self._inner.add_listener(self.wrap_callback(listener))  # type: ignore[arg-type]

    def remove_listener(self, listener: Listener) -> None:
        self._inner.remove_listener(self.wrap_callback(listener))  # type: ignore[arg-type]

    def contenders(self) -> list[str]:
        return self._run(self._inner.contenders())

    def __enter__(self) -> SyncLeaderLatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncLeaderElection(SyncRecipe[LeaderElection]):
    """Blocking Election: `run(func)` blocks until elected, then calls `func` in the calling
    thread. A thread cannot be interrupted, so a leader that loses its leadership is not
    stopped: long-running leader functions should check `is_leader`."""

    def __init__(self, client: ZooKeeperClient, path: str, identifier: str = "", *,
                 suspended_is_lost: bool = True) -> None:
        super().__init__(client, lambda zk: LeaderElection(
            zk, path, identifier, suspended_is_lost=suspended_is_lost))

    @property
    def is_leader(self) -> bool:
        return self._inner.is_leader

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not callable(func):
            raise ValueError("leader function is not callable")
        if not self._run(self._inner._campaign()):
            return None
        try:
            return func(*args, **kwargs)
        finally:
            self._run(self._inner._resign())

    def cancel(self) -> None:
        """Withdraw a run() waiting to be elected (from another thread)."""
        async def cancel() -> None:
            self._inner.cancel()
        self._run(cancel())

    def contenders(self) -> list[str]:
        return self._run(self._inner.contenders())

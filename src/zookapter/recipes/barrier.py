"""Barriers: `Barrier` (wait until a node is deleted) and `DoubleBarrier` (enter together,
leave together), in kazoo's znode layouts, so kazoo's recipes on the same path take part.

Barrier: the barrier is up while its node exists. Waiters set an exists watch and wait for the
deletion, so removing the node releases every waiter with the same notification.

DoubleBarrier (the ZooKeeper recipe): each participant creates an ephemeral
`<path>/<uuid hex>` (data = identifier). Entering waits until `num_clients` participants are
there; the one that sees enough creates `<path>/ready`, whose creation wakes all of them at
once. Leaving deletes `ready`, then participants go in name order: the lowest waits for the
highest to go, every other deletes itself and waits for the lowest, which goes last, so all of
them return when it does.

Connection loss: every step re-reads after a reconnect, and the client re-registers watches,
so waiters neither miss the release nor get stuck. Session expiry: a participant that is still
entering creates its node again in the new session. Known limit shared with kazoo: a
participant cut off for the whole time between `ready` appearing and the first participant
leaving cannot tell it missed the release, and waits until `timeout`. (Without a disconnection
the notification of `ready`'s creation is proof enough, even if `ready` is gone again by the
time the participant looks.)
"""

from __future__ import annotations

import os
import socket
import uuid

from ..client.aio import AsyncZooKeeper
from ..client.errors import NodeExistsError, NoNodeError
from ..client.sync import ZooKeeperClient
from ..client.watches import WatchedEvent
from ..protocol.consts import EventType
from ._cleanup import delete_ephemeral, remove_ephemeral
from ._sync import SyncRecipe
from ._typed import children, create_with_stat
from ._waiting import Deadline, Wakeup, wait_for

READY = "ready"


class Barrier:
    """kazoo's Barrier: `create()` raises it, `remove()` lowers it, `wait()` blocks while it is
    up."""

    def __init__(self, client: AsyncZooKeeper, path: str) -> None:
        self.client = client
        self.path = path

    async def create(self) -> None:
        await self.client.retry(self.client.ensure_path, self.path)

    async def remove(self) -> bool:
        """Lower the barrier; False if it was not up."""
        try:
            await self.client.retry(self.client.delete, self.path)
            return True
        except NoNodeError:
            return False

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the barrier is down; False if still up after `timeout` seconds."""
        return await wait_for(self.client, self._is_down, Deadline(timeout)) is True

    async def _is_down(self, wake: Wakeup) -> bool:
        return await self.client.exists(self.path, watch=wake) is None


class _ReadyWatch:
    """The watch on `ready`. Its creation means everybody is in, even when a fast participant
    has already deleted `ready` again (on its way out) by the time we look."""

    def __init__(self, wake: Wakeup) -> None:
        self.wake = wake
        self.seen = False

    def __call__(self, event: WatchedEvent) -> None:
        if event.type == EventType.NODE_CREATED:
            self.seen = True
        self.wake()


class DoubleBarrier:
    """kazoo's DoubleBarrier: `enter()` returns once `num_clients` participants entered,
    `leave()` once all of them left."""

    def __init__(self, client: AsyncZooKeeper, path: str, num_clients: int,
                 identifier: str | None = None) -> None:
        if num_clients < 1:
            raise ValueError("num_clients must be >= 1")
        self.client = client
        self.path = path
        self.num_clients = num_clients
        self.identifier = identifier or f"{socket.gethostname()}-{os.getpid()}"
        self.node_name = uuid.uuid4().hex
        self.create_path = f"{path}/{self.node_name}"
        self.participating = False
        self._node_session = 0

    async def enter(self, timeout: float | None = None) -> bool:
        """Join and wait for the others; False (and not joined) after `timeout` seconds."""
        deadline = Deadline(timeout)
        await self.client.retry(self.client.ensure_path, self.path)
        wake = Wakeup()
        ready = _ReadyWatch(wake)
        if await wait_for(self.client, lambda _: self._try_enter(ready), deadline, wake):
            self.participating = True
            return True
        await remove_ephemeral(self.client, self.create_path)
        return False

    async def leave(self, timeout: float | None = None) -> bool:
        """Leave and wait for the others; False if some are still in after `timeout` s."""
        deadline = Deadline(timeout)
        try:
            await self.client.retry(self.client.delete, f"{self.path}/{READY}")
        except NoNodeError:
            pass
        if await wait_for(self.client, self._try_leave, deadline):
            self.participating = False
            return True
        return False

    async def __aenter__(self) -> DoubleBarrier:
        await self.enter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

    async def _try_enter(self, ready: _ReadyWatch) -> bool:
        """One look: True once everybody is in, else watches are set for the next change."""
        zk = self.client
        if ready.seen:
            return True
        await self._ensure_node()
        if await zk.exists(f"{self.path}/{READY}", watch=ready) is not None:
            return True
        members = [c for c in await children(zk, self.path) if c != READY]
        if len(members) >= self.num_clients:
            await zk.retry(zk.ensure_path, f"{self.path}/{READY}")
            return True
        return False

    async def _ensure_node(self) -> None:
        """Our participant node, (re)created if this session does not own it yet."""
        zk = self.client
        if self._node_session == zk.session_id:
            return
        try:
            _, created = await create_with_stat(zk, self.create_path,
                                                self.identifier.encode("utf-8"), ephemeral=True)
            self._node_session = created.ephemeralOwner
        except NodeExistsError:  # our own create, whose reply a lost connection hid
            stat = await zk.exists(self.create_path)
            if stat is not None and stat.ephemeralOwner == zk.session_id:
                self._node_session = stat.ephemeralOwner

    async def _try_leave(self, wake: Wakeup) -> bool:
        """One look: True once everybody left, else watches are set for the next change."""
        zk = self.client
        members = sorted(c for c in await children(zk, self.path) if c != READY)
        if not members:
            return True
        if members == [self.node_name]:
            await delete_ephemeral(zk, self.create_path)
            return True
        if self.node_name == members[0]:
            target = members[-1]  # the lowest goes last: wait for the highest
        else:
            if self.node_name in members:
                await delete_ephemeral(zk, self.create_path)
            target = members[0]
        if await zk.exists(f"{self.path}/{target}", watch=wake) is None:
            wake()
        return False


# -- blocking twins -----------------------------------------------------------------------

class SyncBarrier(SyncRecipe[Barrier]):
    def __init__(self, client: ZooKeeperClient, path: str) -> None:
        super().__init__(client, lambda zk: Barrier(zk, path))

    def create(self) -> None:
        self._run(self._inner.create())

    def remove(self) -> bool:
        return self._run(self._inner.remove())

    def wait(self, timeout: float | None = None) -> bool:
        return self._run(self._inner.wait(timeout))


class SyncDoubleBarrier(SyncRecipe[DoubleBarrier]):
    def __init__(self, client: ZooKeeperClient, path: str, num_clients: int,
                 identifier: str | None = None) -> None:
        super().__init__(client, lambda zk: DoubleBarrier(zk, path, num_clients, identifier))

    @property
    def participating(self) -> bool:
        return self._inner.participating

    def enter(self, timeout: float | None = None) -> bool:
        return self._run(self._inner.enter(timeout))

    def leave(self, timeout: float | None = None) -> bool:
        return self._run(self._inner.leave(timeout))

    def __enter__(self) -> SyncDoubleBarrier:
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()

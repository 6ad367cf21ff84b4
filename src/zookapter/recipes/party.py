"""Party: a set of live members under one path, in kazoo's layouts.

`Party`: each member is an ephemeral `<path>/<uuid hex>__party__` whose data is its
identifier; `members()` lists the identifiers. `ShallowParty` puts the identifier in the name
instead (`<uuid hex>-<identifier>`), so listing needs one request but the identifier must be a
valid node name. kazoo's Party and ShallowParty on the same path see our members and we see
theirs.

Membership lasts from `join()` to `leave()`. The node is ephemeral, so a member whose process
dies leaves by itself once its session expires. A member whose session expires while the
process lives joins again with a new node in the new session (the identifier drops out of the
list for that moment), and so does one whose node somebody deleted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import ConnectionClosedError, NodeExistsError, NoNodeError
from ..client.sync import ZooKeeperClient
from ..client.watches import WatchedEvent
from ..protocol.consts import EventType
from ._cleanup import remove_ephemeral
from ._identifiers import identifiers_of
from ._sync import SyncRecipe
from ._typed import children, create_with_stat
from ._waiting import ERROR_PAUSE_S

log = logging.getLogger("zookapter.recipes")

PARTY_MARK = "__party__"


class _BaseParty:
    node: str

    def __init__(self, client: AsyncZooKeeper, path: str, identifier: str | None = None
                 ) -> None:
        self.client = client
        self.path = path
        self.identifier = str(identifier or "")
        self.data = self.identifier.encode("utf-8")
        self.participating = False
        self._node_session = 0
        self._rejoin: asyncio.Task[None] | None = None

    @property
    def create_path(self) -> str:
        return f"{self.path}/{self.node}"

    async def join(self) -> None:
        """Become a member (the node exists when this returns)."""
        if not self.participating:
            self.participating = True
            self.client.add_listener(self._on_state)
        try:
            await self.client.retry(self._create)
        except BaseException:
            await self.leave()
            raise

    async def leave(self) -> bool:
        """Stop being a member; False if the node was already gone. While disconnected the
        node is deleted in the background (or goes with the session)."""
        if self.participating:
            self.participating = False
            self.client.remove_listener(self._on_state)
        task, self._rejoin = self._rejoin, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._node_session = 0
        return await remove_ephemeral(self.client, self.create_path) is not False

    async def members(self) -> list[str]:
        """The identifiers of the current members (unordered)."""
        raise NotImplementedError

    async def count(self) -> int:
        return len(await self._member_nodes())

    async def __aenter__(self) -> _BaseParty:
        await self.join()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

    # -- internals --------------------------------------------------------------------------

    async def _member_nodes(self) -> list[str]:
        try:
            names = await self.client.retry(children, self.client, self.path)
        except NoNodeError:
            return []
        return [c for c in names if self._is_member(c)]

    def _is_member(self, name: str) -> bool:
        return True

    async def _create(self) -> None:
        """Create our node in the current session (a lost reply's node is recognised)."""
        zk = self.client
        try:
            _, created = await create_with_stat(zk, self.create_path, self.data,
                                                ephemeral=True, makepath=True)
            self._node_session = created.ephemeralOwner
        except NodeExistsError:
            stat = await zk.exists(self.create_path)
            if stat is None or stat.ephemeralOwner != zk.session_id:
                raise  # a previous session's node not yet removed: try again shortly
            self._node_session = stat.ephemeralOwner
        if await zk.exists(self.create_path, watch=self._on_node_event) is None:
            self._start_rejoin()

    def _on_state(self, state: ConnectionState) -> None:
        if state == ConnectionState.LOST:
            self._node_session = 0
            self._start_rejoin()

    def _on_node_event(self, event: WatchedEvent) -> None:
        if event.type == EventType.NODE_DELETED:
            self._start_rejoin()

    def _start_rejoin(self) -> None:
        if self.participating and (self._rejoin is None or self._rejoin.done()):
            self._rejoin = asyncio.ensure_future(self._rejoin_loop())

    async def _rejoin_loop(self) -> None:
        while self.participating:
            try:
                if await self.client.exists(self.create_path) is None \
                        or self._node_session != self.client.session_id:
                    await self._create()
                return
            except ConnectionClosedError:
                return
            except Exception as e:  # connection trouble or a stale node: try again
                log.debug("party %s: rejoin failed (%s), retrying", self.path, e)
                await asyncio.sleep(ERROR_PAUSE_S)


class Party(_BaseParty):
    """kazoo's Party: identifiers live in the nodes' data."""

    def __init__(self, client: AsyncZooKeeper, path: str, identifier: str | None = None
                 ) -> None:
        super().__init__(client, path, identifier)
        self.node = uuid.uuid4().hex + PARTY_MARK

    def _is_member(self, name: str) -> bool:
        return PARTY_MARK in name

    async def members(self) -> list[str]:
        nodes = await self._member_nodes()
        return await identifiers_of(self.client, self.path, nodes, self.client.retry)


class ShallowParty(_BaseParty):
    """kazoo's ShallowParty: identifiers live in the node names."""

    def __init__(self, client: AsyncZooKeeper, path: str, identifier: str | None = None
                 ) -> None:
        super().__init__(client, path, identifier)
        self.node = f"{uuid.uuid4().hex}-{self.identifier}"

    async def members(self) -> list[str]:
        return [n[n.find("-") + 1:] for n in await self._member_nodes()]


# -- blocking twins -----------------------------------------------------------------------

class _SyncParty(SyncRecipe[_BaseParty]):
    @property
    def participating(self) -> bool:
        return self._inner.participating

    def join(self) -> None:
        self._run(self._inner.join())

    def leave(self) -> bool:
        return self._run(self._inner.leave())

    def members(self) -> list[str]:
        return self._run(self._inner.members())

    def __iter__(self) -> Iterator[str]:
        return iter(self.members())

    def __len__(self) -> int:
        return self._run(self._inner.count())

    def __enter__(self) -> _SyncParty:
        self.join()
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()


class SyncParty(_SyncParty):
    def __init__(self, client: ZooKeeperClient, path: str, identifier: str | None = None
                 ) -> None:
        super().__init__(client, lambda zk: Party(zk, path, identifier))


class SyncShallowParty(_SyncParty):
    def __init__(self, client: ZooKeeperClient, path: str, identifier: str | None = None
                 ) -> None:
        super().__init__(client, lambda zk: ShallowParty(zk, path, identifier))

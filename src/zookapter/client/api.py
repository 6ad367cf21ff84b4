"""The operations: one coroutine per ZooKeeper request.

Each method validates its arguments, builds the request record and awaits `self._call(op,
record, watch)`, which the session layer (`aio.AsyncZooKeeper`) implements: it sends the
request on the current connection, registers the watch when the reply says the server did,
and resolves to the decoded response body or raises the error registered for the reply's
code (errors.py). Names and defaults follow kazoo's KazooClient, so code written for kazoo
reads the same:

    data, stat = await zk.get("/a", watch=on_change)
    await zk.create("/a/b", b"v", mode=CreateMode.EPHEMERAL)

Paths are client paths; the chroot is applied by the connection core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ..protocol.consts import CONFIG_PATH, AddWatchMode, CreateMode, Op, WatcherType
from ..protocol.paths import BadPath, validate_path
from ..protocol.records import (
    ACL,
    DeleteRequest,
    PathRequest,
    PathTypeRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
    Stat,
)
from .connection import ClientInfo
from .errors import (
    InvalidPathError,
    MarshallingError,
    NodeExistsError,
    NoNodeError,
    NoWatcherError,
)
from .readtransaction import ReadTransaction
from .reconfig import ConfigRequest, ReconfigRequest, server_list
from .retry import retry
from .transaction import Transaction, _check_bytes, _combine_mode, create_op
from .watchers import ChildrenWatch, DataWatch
from .watches import Callback, WatchKind

if TYPE_CHECKING:
    from .aio import WatchStream

T = TypeVar("T")


class ZooKeeperApi:
    """Mixin of the request coroutines; the session layer provides `_call` and friends."""

    def _call(self, op: int, record: Any, watch: tuple[WatchKind, Callback] | None = None
              ) -> Awaitable[Any]:
        """Send one request; the awaitable resolves to its decoded reply."""
        raise NotImplementedError

    def _new_watch_stream(self, path: str, kind: WatchKind) -> WatchStream:
        raise NotImplementedError

    def _remove_local_watches(self, path: str, watcher_type: int,
                              callback: Callback | None) -> bool:
        raise NotImplementedError

    def _has_local_watches(self, path: str, watcher_type: int) -> bool:
        raise NotImplementedError

    def _has_other_local_watches(self, path: str, watcher_type: int) -> bool:
        raise NotImplementedError

    @staticmethod
    def _check_path(path: str, sequential: bool = False) -> None:
        if not isinstance(path, str):
            raise TypeError(f"path must be str, not {type(path).__name__}")
        try:
            validate_path(path, sequential)
        except BadPath as e:
            raise InvalidPathError(f"invalid path {path!r}: {e}", path) from None

    async def retry(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, retried on connection loss (see retry.py)."""
        return await retry(fn, *args, **kwargs)

    # -- writes -----------------------------------------------------------------------------

    async def create(self, path: str, value: bytes = b"", acl: list[ACL] | None = None,
                     mode: CreateMode = CreateMode.PERSISTENT, ttl: int | None = None,
                     makepath: bool = False, include_stat: bool = False, *,
                     ephemeral: bool = False, sequence: bool = False
                     ) -> str | tuple[str, Stat]:
        """Create a znode; return its actual path (with the sequence suffix), or (path, stat)
        with `include_stat`. `makepath` creates missing parents (persistent, same acl). TTL
        modes need `ttl` (ms); a ttl with PERSISTENT[_SEQUENTIAL] picks the TTL variant."""
        mode = _combine_mode(mode, ephemeral, sequence)
        self._check_path(path, mode.sequential)
        _check_bytes(value)
        op, rec = create_op(path, None if value is None else bytes(value), acl, mode, ttl)
        if op == Op.CREATE:
            op = Op.CREATE2  # always ask for the stat: one opcode, one response shape
        try:
            created, stat = await self._call(op, rec)
        except NoNodeError:
            if not makepath:
                raise
            parent = path.rsplit("/", 1)[0] or "/"
            if parent != "/":
                await self.ensure_path(parent, acl)
            created, stat = await self._call(op, rec)
        return (created, stat) if include_stat else created

    async def ensure_path(self, path: str, acl: list[ACL] | None = None) -> bool:
        """Create `path` and its missing ancestors as empty persistent nodes (no error if they
        exist). The creates are pipelined: replies come in order, so one round trip."""
        self._check_path(path)
        if path == "/" or await self.exists(path) is not None:
            return True
        parts = path.split("/")[1:]
        prefixes = ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        results = await asyncio.gather(
            *(self.create(p, b"", acl) for p in prefixes), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, NodeExistsError):
                raise r
        return True

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        """Delete a znode (if `version` matches, -1 = any). `recursive` deletes the subtree
        first (children in parallel); nodes vanishing meanwhile are not an error."""
        self._check_path(path)
        if recursive:
            await self._delete_children(path)
        await self._call(Op.DELETE, DeleteRequest(path, version))
        return True

    async def _delete_children(self, path: str) -> None:
        try:
            children = await self.get_children(path)
        except NoNodeError:
            return
        base = "" if path == "/" else path
        await asyncio.gather(*(self._delete_tree(f"{base}/{c}") for c in children))

    async def _delete_tree(self, path: str) -> None:
        await self._delete_children(path)
        try:
            await self._call(Op.DELETE, DeleteRequest(path, -1))
        except NoNodeError:
            pass

    async def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        """Set a znode's data if `version` matches (-1 = any); return the new Stat."""
        self._check_path(path)
        _check_bytes(value)
        return await self._call(Op.SET_DATA, SetDataRequest(
            path, None if value is None else bytes(value), version))

    set_data = set

    async def set_acl(self, path: str, acls: list[ACL], version: int = -1) -> Stat:
        self._check_path(path)
        return await self._call(Op.SET_ACL, SetACLRequest(path, tuple(acls), version))

    def transaction(self) -> Transaction:
        """A multi builder; see transaction.py for results and failure semantics."""
        return Transaction(self)

    async def reconfig(self, joining: str | Iterable[str] | None = None,
                       leaving: str | Iterable[str] | None = None,
                       new_members: str | Iterable[str] | None = None,
                       from_config: int = -1) -> tuple[bytes, Stat]:
        """Change the ensemble membership: add `joining` server specs and remove `leaving`
        server ids (incremental), or replace it with `new_members` (bulk); only if the
        current config version is `from_config` (-1: any). Returns the new config as
        get_config does. Standalone servers refuse (ReconfigDisabledError or
        UnimplementedError); see reconfig.py."""
        rec = ReconfigRequest(server_list(joining), server_list(leaving),
                              server_list(new_members), from_config)
        return await self._call(Op.RECONFIG, rec)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, path: str, watch: Callback | None = None) -> tuple[bytes, Stat]:
        """(data, stat). `watch` is called once with a WatchedEvent on the next change or
        deletion of the node."""
        self._check_path(path)
        return await self._call(Op.GET_DATA, PathWatchRequest(path, watch is not None),
                                None if watch is None else (WatchKind.DATA, watch))

    async def exists(self, path: str, watch: Callback | None = None) -> Stat | None:
        """The node's Stat, or None. `watch` fires on creation, change or deletion."""
        self._check_path(path)
        try:
            return await self._call(Op.EXISTS, PathWatchRequest(path, watch is not None),
                                    None if watch is None else (WatchKind.DATA, watch))
        except NoNodeError:
            return None

    async def get_children(self, path: str, watch: Callback | None = None,
                           include_stat: bool = False) -> list[str] | tuple[list[str], Stat]:
        """Child names (unordered), or (children, stat of the node) with `include_stat`.
        `watch` fires on a change of the child list or deletion of the node."""
        self._check_path(path)
        rec = PathWatchRequest(path, watch is not None)
        w = None if watch is None else (WatchKind.CHILD, watch)
        if include_stat:
            return await self._call(Op.GET_CHILDREN2, rec, w)
        return await self._call(Op.GET_CHILDREN, rec, w)

    async def get_config(self, watch: Callback | None = None) -> tuple[bytes, Stat]:
        """The ensemble's dynamic configuration (the data of /zookeeper/config, read outside
        any chroot) and its Stat; `watch` fires once when it changes."""
        return await self._call(Op.GET_DATA, ConfigRequest(CONFIG_PATH, watch is not None),
                                None if watch is None else (WatchKind.DATA, watch))

    def read_transaction(self) -> ReadTransaction:
        """A multiRead builder: several getData/getChildren answered from one snapshot, each
        with its own result or error; see readtransaction.py."""
        return ReadTransaction(self)

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        self._check_path(path)
        return await self._call(Op.GET_ACL, PathRequest(path))

    async def get_all_children_number(self, path: str = "/") -> int:
        """Number of descendants of `path` (the node itself excluded)."""
        self._check_path(path)
        return await self._call(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(path))

    async def get_ephemerals(self, prefix: str = "/") -> list[str]:
        """Paths of this session's ephemeral nodes starting with `prefix`."""
        self._check_path(prefix)
        return await self._call(Op.GET_EPHEMERALS, PathRequest(prefix))

    async def sync(self, path: str = "/") -> str:
        """Wait until the server we are connected to has caught up with the leader."""
        self._check_path(path)
        return await self._call(Op.SYNC, PathRequest(path))

    async def who_am_i(self) -> list[ClientInfo]:
        """The identities this connection is authenticated as: [(scheme, user)]."""
        return await self._call(Op.WHO_AM_I, None)

    # -- watches ----------------------------------------------------------------------------

    async def add_watch(self, path: str, callback: Callback | None = None,
                        recursive: bool = False) -> WatchStream | None:
        """A persistent watch on `path` (and all descendants if `recursive`; those never get
        NodeChildrenChanged). The node need not exist. Without `callback`, return an async
        iterator of WatchedEvents whose `close()` removes the watch."""
        self._check_path(path)
        kind = WatchKind.PERSISTENT_RECURSIVE if recursive else WatchKind.PERSISTENT
        mode = AddWatchMode.PERSISTENT_RECURSIVE if recursive else AddWatchMode.PERSISTENT
        stream = None
        if callback is None:
            stream = self._new_watch_stream(path, kind)
            callback = stream._push
        try:
            await self._call(Op.ADD_WATCH, PathTypeRequest(path, int(mode)), (kind, callback))
        except BaseException:
            if stream is not None:
                stream._end(None)
            raise
        return stream

    async def check_watches(self, path: str,
                            watcher_type: WatcherType = WatcherType.ANY) -> bool:
        """Whether the server holds a watch of `watcher_type` on `path` for this session
        (opcode checkWatches; nothing is removed). Servers before 3.9 know only types 1-3
        and answer the persistent ones with MarshallingError."""
        self._check_path(path)
        try:
            await self._call(Op.CHECK_WATCHES, PathTypeRequest(path, int(WatcherType(
                watcher_type))))
        except NoWatcherError:
            return False
        return True

    def data_watch(self, path: str, func: Callable[..., Any] | None = None, *,
                   send_event: bool | None = None, allow_session_lost: bool = True
                   ) -> DataWatch:
        """Follow `path`'s data: `func(data, stat)` now and after every change, across
        reconnects and session expiry (watchers.py). Without `func`, a decorator."""
        return DataWatch(self, path, func, send_event=send_event,  # type: ignore[arg-type]
                         allow_session_lost=allow_session_lost)

    def children_watch(self, path: str, func: Callable[..., Any] | None = None, *,
                       send_event: bool | None = None, allow_session_lost: bool = True
                       ) -> ChildrenWatch:
        """Follow `path`'s child list: `func(children)` now and after every change, across
        reconnects and session expiry (watchers.py). Without `func`, a decorator."""
        return ChildrenWatch(self, path, func, send_event=send_event,  # type: ignore[arg-type]
                             allow_session_lost=allow_session_lost)

    async def remove_watches(self, path: str, watcher_type: WatcherType = WatcherType.ANY,
                             callback: Callback | None = None, local: bool = False) -> None:
        """Remove watches of `watcher_type` on `path`. With `callback`, only that callback's
        registrations go; the server is asked only once no other callback needs its watch.
        Removed callbacks receive a Data/Child/PersistentWatchRemoved event. `local` skips
        the server (useful while disconnected). NoWatcherError if there was nothing to remove.
        """
        self._check_path(path)
        wtype = WatcherType(watcher_type)
        if callback is not None or local:
            if not self._remove_local_watches(path, wtype, callback):
                raise NoWatcherError(path=path)
            if local or self._has_local_watches(path, wtype):
                return
            try:
                await self._remove_on_server(path, wtype)
            except NoWatcherError:
                pass  # a one-shot watch fired meanwhile
            return
        await self._remove_on_server(path, wtype)
        self._remove_local_watches(path, wtype, None)

    async def _remove_on_server(self, path: str, wtype: WatcherType) -> None:
        try:
            await self._call(Op.REMOVE_WATCHES, PathTypeRequest(path, int(wtype)))
        except MarshallingError:
            # Servers before 3.9 know only types 1-3 and remove persistent watches with ANY,
            # which also drops standard watches: only use it when there are none.
            if wtype not in _PERSISTENT_TYPES or self._has_other_local_watches(path, wtype):
                raise
            await self._call(Op.REMOVE_WATCHES, PathTypeRequest(path, int(WatcherType.ANY)))


_PERSISTENT_TYPES = (WatcherType.PERSISTENT, WatcherType.PERSISTENT_RECURSIVE)

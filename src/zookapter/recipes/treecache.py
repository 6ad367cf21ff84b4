"""TreeCache: an in-memory copy of a znode subtree, kept in sync by one persistent recursive
watch (ZooKeeper 3.6+ addWatch PERSISTENT_RECURSIVE), like Curator's CuratorCache.

    async with TreeCache(zk, "/app") as cache:        # returns once the subtree is loaded
        cache.listen(lambda ev: print(ev.type.name, ev.path))
        node = cache.get_data("/app/a")               # NodeData(path, data, stat) or None
        names = cache.get_children("/app")            # sorted child names or None

How it stays right:

- The watch is registered *before* the subtree is read, so every change after the read is
  reported. A notification only names a path; the cache re-reads that path (get) and applies
  what it finds, so stale or duplicate notifications are harmless. All work runs in one task,
  in notification order; notifications that queue up meanwhile are read in one pipelined
  batch. A node whose parent is not cached (yet) gets its parent read first, so the cache
  is always a tree.
- A recursive watch has no catch-up: the notifications of a change made while the
  connection was down are never sent. So after every reconnect (SUSPENDED -> CONNECTED: the
  client re-registered the watch before going live) the whole subtree is read again and the
  differences are emitted as NODE_ADDED / NODE_UPDATED / NODE_REMOVED. After session expiry
  (LOST) the watch is gone with the session: it is added again, then the same reload runs.
  A request failing with connection loss also leads to a reload once connected again.
- Listeners get TreeEvents in order, from their own task, so a slow listener delays other
  listeners but not the cache.

Unlike kazoo's TreeCache (a data and a child watch per node), the cache never writes: it does
not create its root, which may be missing (the cache is then empty until it appears).
Cached stats are those of the last data read: recursive watches do not report child-list
changes, so a parent's numChildren/cversion/pzxid are not refreshed when a child comes or
goes (get_children is; it comes from the cached children).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import (
    ConnectionLossError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    ZookeeperError,
)
from ..client.sync import ZooKeeperClient
from ..client.watches import WatchedEvent
from ..protocol.consts import EventType, WatcherType
from ..protocol.records import Stat
from ._sync import SyncRecipe

log = logging.getLogger("zookapter.recipes.treecache")

BATCH_MAX = 500  # notifications read in one pipelined batch
RESYNC_RETRY_S = 1.0  # while a reload is owed and the client is connected, retry this often
CLOSE_TIMEOUT_S = 5.0  # how long close() tries to remove the watch on the server
_TRANSIENT = (ConnectionLossError, OperationTimeoutError, SessionExpiredError)


class TreeEventType(IntEnum):
    """What happened; the numbers are kazoo's TreeEvent constants."""
    NODE_ADDED = 0
    NODE_UPDATED = 1
    NODE_REMOVED = 2
    CONNECTION_SUSPENDED = 3
    CONNECTION_RECONNECTED = 4
    CONNECTION_LOST = 5
    INITIALIZED = 6


@dataclass(frozen=True, slots=True)
class NodeData:
    """One cached znode."""
    path: str
    data: bytes
    stat: Stat


@dataclass(frozen=True, slots=True)
class TreeEvent:
    """A listener's argument: `node` is the node added/updated/removed (for NODE_REMOVED its
    last cached state), None for connection events and INITIALIZED."""
    type: TreeEventType
    node: NodeData | None = None

    @property
    def path(self) -> str | None:
        return None if self.node is None else self.node.path

    # kazoo's names, for code written against kazoo's TreeEvent
    @property
    def event_type(self) -> int:
        return int(self.type)

    @property
    def event_data(self) -> NodeData | None:
        return self.node


Listener = Callable[[TreeEvent], Any]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _join(parent: str, child: str) -> str:
    return f"{parent.rstrip('/')}/{child}"


class _Notifier:
    """Calls listeners with events in order, from one task (coroutine results awaited)."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self._queue: asyncio.Queue[TreeEvent | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def emit(self, event: TreeEvent) -> None:
        if self.listeners:
            self._queue.put_nowait(event)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)  # deliver what is queued, then end
        if task is not asyncio.current_task():
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while (event := await self._queue.get()) is not None:
            for listener in list(self.listeners):
                try:
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("tree cache listener %r failed", listener)


class TreeCache:
    """A live copy of the subtree at `path` (see the module docstring). `max_depth` limits
    what is cached: 0 = the root node only, 1 = the root and its children, None = all."""

    def __init__(self, zk: AsyncZooKeeper, path: str, *, max_depth: int | None = None) -> None:
        zk._check_path(path)
        if max_depth is not None and max_depth < 0:
            raise ValueError("max_depth must be >= 0")
        self.zk = zk
        self.path = path
        self.max_depth = max_depth
        self._base_depth = 0 if path == "/" else path.count("/")
        self._nodes: dict[str, NodeData] = {}
        self._kids: dict[str, set[str]] = {}
        self._notifier = _Notifier()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._initialized = asyncio.Event()
        self._watching = False  # our watch is registered in the current session
        self._resync_owed = True
        self._closed = False

    # -- public -----------------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Begin caching; return once the subtree has been loaded (raise TimeoutError after
        `timeout` s, the cache still starting in the background)."""
        if self._closed:
            raise RuntimeError("tree cache is closed")
        if self._worker is None:
            self.zk.add_listener(self._on_state)
            self._notifier.start()
            self._worker = asyncio.get_running_loop().create_task(self._run())
            self._inbox.put_nowait(("kick", None))
        await asyncio.wait_for(self._initialized.wait(), timeout)

    async def close(self) -> None:
        """Stop caching: remove the watch and the connection listener; queued events are
        still delivered to the listeners."""
        if self._closed:
            return
        self._closed = True
        if self._worker is None:
            return
        self.zk.remove_listener(self._on_state)
        self._inbox.put_nowait(("stop", None))
        if self._worker is not asyncio.current_task():
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._watching:
            self._watching = False
            try:
                await asyncio.wait_for(self.zk.remove_watches(
                    self.path, WatcherType.PERSISTENT_RECURSIVE, self._on_watch,
                    local=not self.zk.connected), CLOSE_TIMEOUT_S)
            except (ZookeeperError, asyncio.TimeoutError):
                pass
        await self._notifier.stop()

    async def __aenter__(self) -> TreeCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def listen(self, listener: Listener) -> None:
        """Call `listener(TreeEvent)` for every change (coroutine functions are awaited)."""
        self._notifier.listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        self._notifier.listeners.remove(listener)

    @property
    def initialized(self) -> bool:
        return self._initialized.is_set()

    def get_data(self, path: str) -> NodeData | None:
        """The cached node at `path`, or None."""
        return self._nodes.get(path)

    def get_children(self, path: str) -> list[str] | None:
        """Sorted names of the cached children of `path`, or None if it is not cached."""
        kids = self._kids.get(path)
        return None if kids is None else sorted(kids)

    def snapshot(self) -> dict[str, NodeData]:
        """Every cached node by path (a copy)."""
        return dict(self._nodes)

    def __contains__(self, path: object) -> bool:
        return path in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    # -- inputs (called by the client, never block) -----------------------------------------

    def _on_watch(self, event: WatchedEvent) -> None:
        if event.type == EventType.PERSISTENT_WATCH_REMOVED:
            self._inbox.put_nowait(("unwatched", None))
        elif event.path is not None:
            self._inbox.put_nowait(("path", event.path))

    def _on_state(self, state: ConnectionState) -> None:
        self._inbox.put_nowait(("state", state))

    # -- the worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            paths: list[str] = []
            for kind, value in batch:
                if kind == "stop":
                    return
                if kind == "path":
                    paths.append(value)
                else:
                    self._on_control(kind, value)
            try:
                if self._resync_owed:
                    if self.zk.connected:
                        await self._resync()
                elif paths:
                    await self._refresh(paths)
            except _TRANSIENT as e:
                log.debug("tree cache %s: %r; reloading once connected", self.path, e)
                self._resync_owed = True
            except Exception:
                log.exception("tree cache %s: unexpected error; reloading", self.path)
                self._resync_owed = True

    async def _next_batch(self) -> list[tuple[str, Any]]:
        """Wait for input (at most RESYNC_RETRY_S while a reload is owed), then take all
        that is queued, up to BATCH_MAX items."""
        try:
            first = await asyncio.wait_for(
                self._inbox.get(), RESYNC_RETRY_S if self._resync_owed else None)
        except asyncio.TimeoutError:
            return []
        batch = [first]
        while len(batch) < BATCH_MAX and not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        return batch

    def _on_control(self, kind: str, value: Any) -> None:
        if kind == "unwatched":
            self._watching = False
            self._resync_owed = True
        elif kind == "state":
            self._on_connection_state(value)

    def _on_connection_state(self, state: ConnectionState) -> None:
        if state == ConnectionState.SUSPENDED:
            self._notifier.emit(TreeEvent(TreeEventType.CONNECTION_SUSPENDED))
        elif state == ConnectionState.LOST:
            self._watching = False  # the client forgot every watch of the expired session
            self._resync_owed = True
            self._notifier.emit(TreeEvent(TreeEventType.CONNECTION_LOST))
        elif state == ConnectionState.CONNECTED:
            self._resync_owed = True  # changes made while away were never notified
            if self._initialized.is_set():
                self._notifier.emit(TreeEvent(TreeEventType.CONNECTION_RECONNECTED))

    async def _resync(self) -> None:
        """(Re-)register the watch, read the whole subtree and emit the differences."""
        if not self._watching:
            await self.zk.add_watch(self.path, self._on_watch, recursive=True)
            self._watching = True
        fresh = await self._load()
        self._resync_owed = False
        self._apply_snapshot(fresh)
        if not self._initialized.is_set():
            self._initialized.set()
            self._notifier.emit(TreeEvent(TreeEventType.INITIALIZED))

    # -- reading ----------------------------------------------------------------------------

    def _depth(self, path: str) -> int:
        return (0 if path == "/" else path.count("/")) - self._base_depth

    def _wanted(self, path: str) -> bool:
        if path != self.path and not path.startswith(self.path.rstrip("/") + "/"):
            return False
        return self.max_depth is None or self._depth(path) <= self.max_depth

    async def _read(self, path: str, with_children: bool
                    ) -> tuple[NodeData, list[str]] | None:
        """The node and (if asked) its child names, or None if it does not exist."""
        try:
            if with_children:
                (data, stat), kids = await asyncio.gather(
                    self.zk.get(path), self.zk.get_children(path))
            else:
                (data, stat), kids = await self.zk.get(path), []
        except NoNodeError:
            return None
        return NodeData(path, data, stat), kids  # type: ignore[return-value]

    async def _read_many(self, paths: list[str], with_children: bool
                         ) -> list[tuple[NodeData, list[str]] | None]:
        out: list[tuple[NodeData, list[str]] | None] = []
        for i in range(0, len(paths), BATCH_MAX):
            chunk = paths[i:i + BATCH_MAX]
            out.extend(await asyncio.gather(*(self._read(p, with_children) for p in chunk)))
        return out

    async def _load(self) -> dict[str, NodeData]:
        """Read the subtree level by level, each level in one pipelined batch."""
        fresh: dict[str, NodeData] = {}
        level, depth = [self.path], 0
        while level:
            deeper = self.max_depth is None or depth < self.max_depth
            next_level: list[str] = []
            for path, found in zip(level, await self._read_many(level, deeper), strict=True):
                if found is not None:
                    node, kids = found
                    fresh[path] = node
                    next_level.extend(_join(path, k) for k in kids)
            level, depth = next_level, depth + 1
        return fresh

    async def _refresh(self, paths: Iterable[str]) -> None:
        """Re-read the notified paths (each once, in notification order) and apply what is
        there now."""
        todo = [p for p in dict.fromkeys(paths) if self._wanted(p)]
        found = await self._read_many(todo, False)
        for path, res in zip(todo, found, strict=True):
            await self._apply(path, None if res is None else res[0])

    async def _apply(self, path: str, node: NodeData | None) -> None:
        if node is None:
            self._remove_subtree(path)
            return
        parent = _parent(path)
        if path != self.path and parent not in self._nodes:
            # The parent's own notification is still to come or was read as missing: read it
            # now so the cache stays a tree. If it is gone, so is this node by now.
            res = await self._read(parent, False)
            await self._apply(parent, None if res is None else res[0])
            if parent not in self._nodes:
                return
        self._upsert(node)

    # -- the cached tree --------------------------------------------------------------------

    def _upsert(self, node: NodeData) -> None:
        old = self._nodes.get(node.path)
        if old is not None and old.stat.czxid != node.stat.czxid:
            self._remove_subtree(node.path)  # deleted and created again: a new node
            old = None
        self._nodes[node.path] = node
        self._kids.setdefault(node.path, set())
        if node.path != self.path:
            self._kids.setdefault(_parent(node.path), set()).add(node.path.rsplit("/", 1)[1])
        if old is None:
            self._notifier.emit(TreeEvent(TreeEventType.NODE_ADDED, node))
        elif old.stat.mzxid != node.stat.mzxid or old.data != node.data:
            self._notifier.emit(TreeEvent(TreeEventType.NODE_UPDATED, node))

    def _remove_subtree(self, path: str) -> None:
        """Drop `path` and its cached descendants, deepest first."""
        if path not in self._nodes:
            return
        for kid in sorted(self._kids.get(path, ())):
            self._remove_subtree(_join(path, kid))
        node = self._nodes.pop(path)
        self._kids.pop(path, None)
        if path != self.path:
            siblings = self._kids.get(_parent(path))
            if siblings is not None:
                siblings.discard(path.rsplit("/", 1)[1])
        self._notifier.emit(TreeEvent(TreeEventType.NODE_REMOVED, node))

    def _apply_snapshot(self, fresh: dict[str, NodeData]) -> None:
        """Make the cache equal `fresh`, emitting the differences (removals first)."""
        gone = [p for p in self._nodes if p not in fresh]
        for path in sorted(gone, key=self._depth, reverse=True):
            self._remove_subtree(path)
        for path in sorted(fresh, key=self._depth):
            if path == self.path or _parent(path) in self._nodes:
                self._upsert(fresh[path])


class SyncTreeCache(SyncRecipe[TreeCache]):
    """Blocking TreeCache on a `ZooKeeperClient`; listeners run on the client's callback
    thread."""

    def __init__(self, client: ZooKeeperClient, path: str, *,
                 max_depth: int | None = None) -> None:
        super().__init__(client, lambda zk: TreeCache(zk, path, max_depth=max_depth))

    def start(self, timeout: float | None = None) -> None:
        self._run(self._inner.start(timeout))

    def close(self) -> None:
        self._run(self._inner.close())

    def __enter__(self) -> SyncTreeCache:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def listen(self, listener: Listener) -> None:
        """`listener(TreeEvent)` runs on the client's callback thread."""
        self._inner.listen(self.wrap_callback(listener))  # type: ignore[arg-type]

    def unlisten(self, listener: Listener) -> None:
        self._inner.unlisten(self.wrap_callback(listener))  # type: ignore[arg-type]

    @property
    def initialized(self) -> bool:
        return self._inner.initialized

    def get_data(self, path: str) -> NodeData | None:
        return self._inner.get_data(path)

    def get_children(self, path: str) -> list[str] | None:
        return self._run(_on_loop(self._inner.get_children, path))

    def snapshot(self) -> dict[str, NodeData]:
        return self._run(_on_loop(self._inner.snapshot))

    def __contains__(self, path: object) -> bool:
        return path in self._inner

    def __len__(self) -> int:
        return len(self._inner)


async def _on_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn` on the loop thread, where the cache's sets are changed (reading a set while
    another thread changes it can fail)."""
    return fn(*args)

"""Client-side watch bookkeeping, as the Java client's ZKWatchManager: which callbacks wait on
which path, which of them an incoming notification triggers, and what to re-register after a
reconnect.

Five tables, keyed by client path (the chroot is the connection core's business):

- DATA   — set by a successful getData or exists; one-shot;
- EXIST  — set by exists on a missing node (the server keeps it as a data watch); one-shot;
- CHILD  — set by a successful getChildren; one-shot;
- PERSISTENT / PERSISTENT_RECURSIVE — set by addWatch; they stay until removed.

`materialize(type, path)` pops the one-shot callbacks an event triggers and adds the persistent
ones (recursive ones of the path and of every ancestor, except for NodeChildrenChanged, which
recursive watches never receive). A callback registered twice for one trigger (say by getData
and getChildren before a delete) is called once, as in Java, where watchers form a set.

Pure: no asyncio here. Callbacks must be hashable (functions, bound methods, objects).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..protocol.consts import EventType, KeeperState, WatcherType

Callback = Callable[[Any], Any]


class WatchKind(IntEnum):
    DATA = 0
    EXIST = 1
    CHILD = 2
    PERSISTENT = 3
    PERSISTENT_RECURSIVE = 4


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """What a watch callback receives: the event type, the connection state (SyncConnected for
    every server notification) and the client path."""
    type: EventType
    state: KeeperState
    path: str | None


# Which tables an event type consumes (one-shot) — ZKWatchManager.materialize.
_ONE_SHOT_FOR: dict[int, tuple[WatchKind, ...]] = {
    EventType.NODE_CREATED: (WatchKind.DATA, WatchKind.EXIST),
    EventType.NODE_DATA_CHANGED: (WatchKind.DATA, WatchKind.EXIST),
    EventType.NODE_DELETED: (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD),
    EventType.NODE_CHILDREN_CHANGED: (WatchKind.CHILD,),
}

# Which tables a removeWatches type clears, and the event the removed callbacks receive.
_REMOVED_BY: dict[int, tuple[WatchKind, ...]] = {
    WatcherType.CHILDREN: (WatchKind.CHILD,),
    WatcherType.DATA: (WatchKind.DATA, WatchKind.EXIST),
    WatcherType.ANY: tuple(WatchKind),
    WatcherType.PERSISTENT: (WatchKind.PERSISTENT,),
    WatcherType.PERSISTENT_RECURSIVE: (WatchKind.PERSISTENT_RECURSIVE,),
}
REMOVED_EVENT: dict[WatchKind, EventType] = {
    WatchKind.DATA: EventType.DATA_WATCH_REMOVED,
    WatchKind.EXIST: EventType.DATA_WATCH_REMOVED,
    WatchKind.CHILD: EventType.CHILD_WATCH_REMOVED,
    WatchKind.PERSISTENT: EventType.PERSISTENT_WATCH_REMOVED,
    WatchKind.PERSISTENT_RECURSIVE: EventType.PERSISTENT_WATCH_REMOVED,
}


def ancestors_and_self(path: str) -> list[str]:
    """"/a/b/c" -> ["/a/b/c", "/a/b", "/a", "/"]."""
    out = [path]
    while path != "/":
        cut = path.rfind("/")
        path = path[:cut] or "/"
        out.append(path)
    return out


class WatchRegistry:
    def __init__(self) -> None:
        # dict[cb, None] is an insertion-ordered set
        self._tables: dict[WatchKind, dict[str, dict[Callback, None]]] = {
            k: {} for k in WatchKind}

    def add(self, kind: WatchKind, path: str, callback: Callback) -> None:
        self._tables[kind].setdefault(path, {})[callback] = None

    def has(self, kind: WatchKind, path: str) -> bool:
        return path in self._tables[kind]

    def callbacks(self, kind: WatchKind, path: str) -> list[Callback]:
        return list(self._tables[kind].get(path, ()))

    def materialize(self, event_type: int, path: str) -> list[Callback]:
        """The callbacks an event triggers, in registration order, each once; one-shot
        registrations are consumed."""
        found: dict[Callback, None] = {}
        for kind in _ONE_SHOT_FOR.get(event_type, ()):
            found.update(self._tables[kind].pop(path, {}))
        found.update(self._tables[WatchKind.PERSISTENT].get(path, {}))
        if event_type != EventType.NODE_CHILDREN_CHANGED:
            recursive = self._tables[WatchKind.PERSISTENT_RECURSIVE]
            if recursive:
                for p in ancestors_and_self(path):
                    found.update(recursive.get(p, {}))
        return list(found)

    def remove(self, path: str, watcher_type: int,
               callback: Callback | None = None) -> list[tuple[Callback, EventType]]:
        """Drop registrations of `watcher_type` on `path` (only `callback`'s, if given);
        return each removed callback with the *WatchRemoved event it is owed."""
        removed: list[tuple[Callback, EventType]] = []
        for kind in _REMOVED_BY[watcher_type]:
            table = self._tables[kind]
            cbs = table.get(path)
            if not cbs:
                continue
            if callback is None:
                gone = list(cbs)
                del table[path]
            elif callback in cbs:
                gone = [callback]
                del cbs[callback]
                if not cbs:
                    del table[path]
            else:
                continue
            removed.extend((cb, REMOVED_EVENT[kind]) for cb in gone)
        return removed

    def remaining(self, path: str, watcher_type: int) -> bool:
        """True if any registration of `watcher_type` is left on `path`."""
        return any(path in self._tables[k] for k in _REMOVED_BY[watcher_type])

    def remaining_except(self, path: str, watcher_type: int) -> bool:
        """True if a registration of a kind *not* covered by `watcher_type` is on `path`."""
        covered = _REMOVED_BY[watcher_type]
        return any(path in self._tables[k] for k in WatchKind if k not in covered)

    def paths(self, kind: WatchKind) -> list[str]:
        return list(self._tables[kind])

    def clear(self) -> list[Callback]:
        """Forget everything (session lost); return every callback that was registered."""
        out: dict[Callback, None] = {}
        for table in self._tables.values():
            for cbs in table.values():
                out.update(cbs)
            table.clear()
        return list(out)

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

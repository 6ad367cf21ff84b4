"""Server-side watch tables, mirroring ZooKeeper 3.9's WatchManager.

Two tables map a path to the watchers (connections) on it and a bitmask of modes: the data
table (getData/exists watches, persistent and persistent-recursive watches) and the child
table (getChildren watches, persistent watches). Standard watches are one-shot; persistent
ones stay. A watcher may hold a standard and a persistent watch on the same path; firing
clears only the standard bit (ZOOKEEPER-4466 behaviour of 3.9).

Triggering walks up the parents only while recursive watches exist, so the common case is
one dict lookup. Each watcher gets at most one event per trigger (the delete case fires the
data and child tables of the same path with one suppression set, as DataTree.deleteNode).
Before delivery the watcher's READ permission on the node's ACL is checked (3.9.2+).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ..protocol.consts import EventType, WatcherType
from ..protocol.records import ACL

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4


class Watcher(Protocol):
    """A connection that can receive notifications."""

    def notify(self, event_type: int, path: str, zxid: int) -> None: ...

    def can_read(self, acl: tuple[ACL, ...]) -> bool: ...


Table = dict[str, dict[Watcher, int]]


class WatchManager:
    def __init__(self) -> None:
        self.data: Table = {}
        self.child: Table = {}
        self.recursive_count = 0
        # watcher -> set of (is_child_table, path) for cleanup on disconnect
        self.by_watcher: dict[Watcher, set[tuple[bool, str]]] = {}
        self.acl_lookup: Callable[[str], tuple[ACL, ...] | None] = lambda p: None

    # --- registration ----------------------------------------------------------------------

    def _add(self, table: Table, is_child: bool, path: str, w: Watcher, mode: int) -> None:
        entry = table.get(path)
        if entry is None:
            entry = table[path] = {}
        old = entry.get(w, 0)
        if mode == RECURSIVE and not old & RECURSIVE:
            self.recursive_count += 1
        entry[w] = old | mode
        self.by_watcher.setdefault(w, set()).add((is_child, path))

    def add_data_watch(self, path: str, w: Watcher) -> None:
        self._add(self.data, False, path, w, STANDARD)

    def add_child_watch(self, path: str, w: Watcher) -> None:
        self._add(self.child, True, path, w, STANDARD)

    def add_persistent(self, path: str, w: Watcher, recursive: bool) -> None:
        if recursive:
            self._add(self.data, False, path, w, RECURSIVE)
        else:
            self._add(self.data, False, path, w, PERSISTENT)
            self._add(self.child, True, path, w, PERSISTENT)

    def _remove_bits(self, table: Table, is_child: bool, path: str, w: Watcher,
                     bits: int) -> bool:
        entry = table.get(path)
        if entry is None:
            return False
        old = entry.get(w, 0)
        if not old & bits:
            return False
        new = old & ~bits
        if old & RECURSIVE and not new & RECURSIVE:
            self.recursive_count -= 1
        if new:
            entry[w] = new
        else:
            del entry[w]
            if not entry:
                del table[path]
            paths = self.by_watcher.get(w)
            if paths is not None:
                paths.discard((is_child, path))
        return True

    def remove_watcher(self, w: Watcher) -> None:
        """Drop every watch of a closed connection."""
        for is_child, path in self.by_watcher.pop(w, ()):
            table = self.child if is_child else self.data
            entry = table.get(path)
            if entry is None:
                continue
            mode = entry.pop(w, 0)
            if mode & RECURSIVE:
                self.recursive_count -= 1
            if not entry:
                del table[path]

    # --- checkWatches / removeWatches ------------------------------------------------------

    def _has(self, table: Table, path: str, w: Watcher, bits: int) -> bool:
        entry = table.get(path)
        return entry is not None and bool(entry.get(w, 0) & bits)

    def contains(self, path: str, wtype: int, w: Watcher) -> bool:
        if wtype == WatcherType.CHILDREN:
            return self._has(self.child, path, w, STANDARD)
        if wtype == WatcherType.DATA:
            return self._has(self.data, path, w, STANDARD)
        if wtype == WatcherType.ANY:
            return self._has(self.child, path, w, 7) or self._has(self.data, path, w, 7)
        if wtype == WatcherType.PERSISTENT:
            return self._has(self.data, path, w, PERSISTENT)
        if wtype == WatcherType.PERSISTENT_RECURSIVE:
            return self._has(self.data, path, w, RECURSIVE)
        return False

    def remove(self, path: str, wtype: int, w: Watcher) -> bool:
        if wtype == WatcherType.CHILDREN:
            return self._remove_bits(self.child, True, path, w, STANDARD)
        if wtype == WatcherType.DATA:
            return self._remove_bits(self.data, False, path, w, STANDARD)
        if wtype == WatcherType.ANY:
            a = self._remove_bits(self.child, True, path, w, 7)
            b = self._remove_bits(self.data, False, path, w, 7)
            return a or b
        if wtype == WatcherType.PERSISTENT:
            a = self._remove_bits(self.child, True, path, w, PERSISTENT)
            b = self._remove_bits(self.data, False, path, w, PERSISTENT)
            return a or b
        if wtype == WatcherType.PERSISTENT_RECURSIVE:
            return self._remove_bits(self.data, False, path, w, RECURSIVE)
        return False

    # --- triggering ------------------------------------------------------------------------

    def trigger(self, path: str, event: int, zxid: int, acl: tuple[ACL, ...] | None = None
                ) -> None:
        """Fire the watches a committed change of `path` triggers (called by the DataTree)."""
        if event == EventType.NODE_CHILDREN_CHANGED:
            fired = self._collect(self.child, path, event, None)
        elif event == EventType.NODE_DELETED:
            fired = self._collect(self.data, path, event, None)
            fired = self._collect(self.child, path, event, fired)
        else:
            fired = self._collect(self.data, path, event, None)
        if not fired:
            return
        if acl is None:
            acl = self.acl_lookup(path)
        for w in fired:
            if acl is None or w.can_read(acl):
                w.notify(event, path, zxid)

    def _collect(self, table: Table, path: str, event: int,
                 fired: dict[Watcher, None] | None) -> dict[Watcher, None] | None:
        entry = table.get(path)
        if entry:
            for w, mode in list(entry.items()):
                if fired is None:
                    fired = {}
                fired[w] = None
                if mode & STANDARD:
                    self._remove_bits(table, table is self.child, path, w, STANDARD)
        if self.recursive_count and event != EventType.NODE_CHILDREN_CHANGED \
                and table is self.data:
            p = path
            while p != "/":
                i = p.rfind("/")
                p = "/" if i == 0 else p[:i]
                entry = table.get(p)
                if entry:
                    for w, mode in entry.items():
                        if mode & RECURSIVE:
                            if fired is None:
                                fired = {}
                            fired[w] = None
        return fired

    # --- introspection (4lw wchs/wchc/wchp, mntr) --------------------------------------------

    def watch_count(self) -> int:
        return sum(len(e) for e in self.data.values()) + sum(len(e) for e in self.child.values())

    def paths_by_watcher(self) -> dict[Watcher, set[str]]:
        out: dict[Watcher, set[str]] = {}
        for w, entries in self.by_watcher.items():
            out[w] = {p for _, p in entries}
        return out

    def watchers_by_path(self) -> dict[str, set[Watcher]]:
        out: dict[str, set[Watcher]] = {}
        for table in (self.data, self.child):
            for p, e in table.items():
                out.setdefault(p, set()).update(e)
        return out

    def watched_paths(self) -> Iterable[str]:
        return set(self.data) | set(self.child)

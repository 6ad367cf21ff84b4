"""The data tree: znodes by path, and the deterministic application of committed txns.

Mirrors Apache ZooKeeper's DataTree. Nodes live in one dict keyed by full path (O(1) lookups
for reads); each node keeps its child names. Applying a txn mutates the tree, fires the
watches it triggers through the attached watch manager, and returns the result. Replay is
tolerant the way ZooKeeper's is: a create of an existing node or a delete of a missing one
(possible after a fuzzy snapshot) fails but still moves the parent's cversion/pzxid.

Two stat subtleties kept exactly as ZooKeeper:
- the stored `cversion` counts child creations only; clients see `2*cversion - numChildren`;
- `ephemeralOwner` is reported as 0 for container and TTL nodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from ..protocol.consts import (
    CONFIG_PATH,
    CONTAINER_EPHEMERAL_OWNER,
    QUOTA_PATH,
    ZOOKEEPER_PATH,
    Err,
    EventType,
    Op,
)
from ..protocol.records import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Stat
from ..protocol.txns import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
)
from .quotas import LIMIT_NODE, STAT_NODE, format_stats, parse_stats, quota_target

STAT = struct.Struct(">qqqqiiiqiiq")
NO_CHILDREN: frozenset[str] = frozenset()


def is_ttl_owner(owner: int) -> bool:
    """True for 0xFF00_0000_xxxx_xxxx style owners (EphemeralType.TTL)."""
    return (owner >> 56) == -1 and ((owner >> 40) & 0xFFFF) == 0


class Node:
    """One znode. `stat_bytes` caches the 68-byte client Stat; any change clears it."""

    __slots__ = (
        "_stat_bytes",
        "acl",
        "aversion",
        "children",
        "ctime",
        "cversion",
        "czxid",
        "data",
        "ephemeral_owner",
        "mtime",
        "mzxid",
        "pzxid",
        "version",
    )

    def __init__(self, data: bytes | None, acl: tuple[ACL, ...], zxid: int, time: int,
                 ephemeral_owner: int) -> None:
        self.data = data
        self.acl = acl
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time
        self.version = self.cversion = self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        # Leaves (most nodes) share one empty frozenset: an empty set() costs 216 bytes.
        self.children: set[str] | frozenset[str] = NO_CHILDREN
        self._stat_bytes: bytes | None = None

    def add_child(self, name: str) -> None:
        c = self.children
        if c is NO_CHILDREN:
            self.children = {name}
        else:
            c.add(name)  # type: ignore[union-attr]

    def remove_child(self, name: str) -> None:
        c = self.children
        if name in c:
            if len(c) == 1:
                self.children = NO_CHILDREN
            else:
                c.discard(name)  # type: ignore[union-attr]

    def visible_owner(self) -> int:
        """ephemeralOwner as clients see it: 0 for container and TTL nodes."""
        owner = self.ephemeral_owner
        if owner >= 0:
            return owner
        if owner == CONTAINER_EPHEMERAL_OWNER or is_ttl_owner(owner):
            return 0
        return owner

    def stat_bytes(self) -> bytes:
        b = self._stat_bytes
        if b is None:
            n = len(self.children)
            b = self._stat_bytes = STAT.pack(
                self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                self.cversion * 2 - n, self.aversion, self.visible_owner(),
                len(self.data) if self.data is not None else 0, n, self.pzxid)
        return b

    def stat(self) -> Stat:
        return Stat(*STAT.unpack(self.stat_bytes()))




@dataclass(slots=True)
class ApplyResult:
    """Result of applying one txn: error code, result path, node and (multi) sub-results.
    Watches are fired during apply, not returned."""
    err: int = 0
    path: str | None = None
    node: Node | None = None
    multi: list[ApplyResult] | None = None
    op: int = 0
    stat: bytes | None = None  # captured right after a multi sub-op (later sub-ops move on)


def split_path(path: str) -> tuple[str, str]:
    i = path.rfind("/")
    return ("/" if i == 0 else path[:i]), path[i + 1:]


class Watches(Protocol):
    """What the tree needs from the watch manager (see watches.WatchManager)."""

    def trigger(self, path: str, event: int, zxid: int,
                acl: tuple[ACL, ...] | None = None) -> None: ...


class DataTree:
    """All znodes, the ephemerals index, and txn application."""

    def __init__(self, config_data: bytes = b"") -> None:
        self.nodes: dict[str, Node] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.last_processed_zxid = 0
        self.watches: Watches | None = None
        self.quota_paths: set[str] = set()
        root = Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        self.nodes["/"] = root
        self._add_system_node(ZOOKEEPER_PATH, b"", OPEN_ACL_UNSAFE)
        self._add_system_node(QUOTA_PATH, b"", OPEN_ACL_UNSAFE)
        self._add_system_node(CONFIG_PATH, config_data, READ_ACL_UNSAFE)
        # ZooKeeper sets the config node's ACL with setACL(..., -1), leaving aversion -1.
        self.nodes[CONFIG_PATH].aversion = -1

    def _add_system_node(self, path: str, data: bytes, acl: tuple[ACL, ...]) -> None:
        parent, name = split_path(path)
        self.nodes[path] = Node(data, acl, 0, 0, 0)
        self.nodes[parent].add_child(name)

    # --- queries ---------------------------------------------------------------------------

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def node_count(self) -> int:
        return len(self.nodes)

    def approximate_data_size(self) -> int:
        return sum(len(p) + (len(n.data) if n.data else 0) for p, n in self.nodes.items())

    def all_children_number(self, path: str) -> int:
        if path == "/":
            return len(self.nodes) - 1
        prefix = path + "/"
        return sum(1 for p in self.nodes if p.startswith(prefix))

    def session_ephemerals(self, session_id: int) -> set[str]:
        return self.ephemerals.get(session_id, set())

    # --- quotas (see quotas.py) --------------------------------------------------------------

    def max_quota_prefix(self, path: str) -> str | None:
        """The deepest quota'd path that is `path` or an ancestor of it ("/" never counts)."""
        qp = self.quota_paths
        if not qp:
            return None
        p = path
        while p != "/" and p:
            if p in qp:
                return p
            i = p.rfind("/")
            p = "/" if i == 0 else p[:i]
        return None

    def _quota_node_created(self, path: str) -> None:
        target = quota_target(path)
        if target is None or target[0] == "/":
            return
        if target[1] == LIMIT_NODE:
            self.quota_paths.add(target[0])
        else:
            self.recompute_quota(target[0])

    def recompute_quota(self, target: str) -> None:
        """Rewrite the stats node of `target` from the subtree (updateQuotaForPath)."""
        stat_node = self.nodes.get(f"{QUOTA_PATH}{target}/{STAT_NODE}")
        if stat_node is None:
            return
        count = nbytes = 0
        prefix = target + "/"
        for p, n in self.nodes.items():
            if p == target or p.startswith(prefix):
                count += 1
                nbytes += len(n.data) if n.data else 0
        stats = parse_stats(stat_node.data)
        stats["count"], stats["bytes"] = count, nbytes
        stat_node.data = format_stats({"count": count, "bytes": nbytes})
        stat_node._stat_bytes = None

    def _quota_update(self, path: str, bytes_diff: int, count_diff: int) -> None:
        prefix = self.max_quota_prefix(path)
        if prefix is None:
            return
        stat_node = self.nodes.get(f"{QUOTA_PATH}{prefix}/{STAT_NODE}")
        if stat_node is None:
            return
        stats = parse_stats(stat_node.data)
        stats["count"] = stats.get("count", -1) + count_diff
        stats["bytes"] = stats.get("bytes", -1) + bytes_diff
        stat_node.data = format_stats(stats)
        stat_node._stat_bytes = None

    # --- apply -----------------------------------------------------------------------------

    def apply(self, txn: Txn) -> ApplyResult:
        """Apply one committed txn. Called exactly once per zxid, in zxid order."""
        res = self._apply_record(txn.type, txn.record, txn)
        self.last_processed_zxid = max(self.last_processed_zxid, txn.zxid)
        return res

    def _apply_record(self, typ: int, rec: object, txn: Txn) -> ApplyResult:
        if typ in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            assert isinstance(rec, CreateTxn)
            return self._create(typ, rec, txn)
        if typ in (Op.DELETE, Op.DELETE_CONTAINER):
            assert isinstance(rec, DeleteTxn)
            return self._delete(typ, rec.path, txn.zxid)
        if typ == Op.SET_DATA or typ == Op.RECONFIG:
            assert isinstance(rec, SetDataTxn)
            return self._set_data(typ, rec, txn)
        if typ == Op.SET_ACL:
            assert isinstance(rec, SetACLTxn)
            return self._set_acl(rec)
        if typ == Op.CHECK:
            assert isinstance(rec, CheckVersionTxn)
            return ApplyResult(0, rec.path, self.nodes.get(rec.path), op=Op.CHECK)
        if typ == Op.MULTI:
            assert isinstance(rec, MultiTxn)
            return self._multi(rec, txn)
        if typ == Op.CREATE_SESSION:
            assert isinstance(rec, CreateSessionTxn)
            return ApplyResult(op=typ)
        if typ == Op.CLOSE_SESSION:
            return self._close_session(txn.session_id, rec, txn.zxid)
        if typ == Op.ERROR:
            assert isinstance(rec, ErrorTxn)
            return ApplyResult(rec.err, op=typ)
        raise AssertionError(f"cannot apply txn type {typ}")

    def _create(self, typ: int, rec: CreateTxn, txn: Txn) -> ApplyResult:
        path = rec.path
        parent_path, name = split_path(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            return ApplyResult(Err.NO_NODE, op=typ)
        if path in self.nodes:
            # Only during replay: a fuzzy snapshot may hold the child but a parent serialized
            # before it was created, so the parent's cversion/pzxid still move forward.
            pcv = rec.parentCVersion if rec.parentCVersion != -1 else parent.cversion + 1
            if pcv > parent.cversion:
                parent.cversion = pcv
                parent.pzxid = txn.zxid
                parent._stat_bytes = None
            return ApplyResult(Err.NODE_EXISTS, op=typ)
        if rec.container:
            owner = CONTAINER_EPHEMERAL_OWNER
        elif rec.ttl >= 0:
            owner = (0xFF00000000000000 | rec.ttl) - (1 << 64)
        else:
            owner = txn.session_id if rec.ephemeral else 0
        pcv = rec.parentCVersion
        if pcv == -1:
            pcv = parent.cversion + 1
        node = Node(rec.data, rec.acl, txn.zxid, txn.time, owner)
        self.nodes[path] = node
        parent.add_child(name)
        if pcv > parent.cversion:
            parent.cversion = pcv
            parent.pzxid = txn.zxid
        parent._stat_bytes = None
        if rec.container:
            self.containers.add(path)
        elif rec.ttl >= 0:
            self.ttls.add(path)
        elif rec.ephemeral:
            self.ephemerals.setdefault(txn.session_id, set()).add(path)
        if path.startswith(QUOTA_PATH):
            self._quota_node_created(path)
        if self.quota_paths:
            self._quota_update(path, len(rec.data) if rec.data else 0, 1)
        w = self.watches
        if w is not None:
            w.trigger(path, EventType.NODE_CREATED, txn.zxid, node.acl)
            w.trigger(parent_path, EventType.NODE_CHILDREN_CHANGED, txn.zxid, parent.acl)
        return ApplyResult(0, path, node, op=typ)

    def _delete(self, typ: int, path: str, zxid: int) -> ApplyResult:
        node = self.nodes.get(path)
        parent_path, name = split_path(path)
        if node is None:
            # ZooKeeper's deleteNode moves the parent's pzxid before it finds the node gone;
            # replaying a fuzzy snapshot depends on it.
            parent = self.nodes.get(parent_path)
            if parent is not None and zxid > parent.pzxid:
                parent.pzxid = zxid
                parent._stat_bytes = None
            return ApplyResult(Err.NO_NODE, op=typ)
        del self.nodes[path]
        parent = self.nodes.get(parent_path)
        if parent is not None:
            parent.remove_child(name)
            parent.pzxid = max(parent.pzxid, zxid)
            parent._stat_bytes = None
        owner = node.ephemeral_owner
        if owner == CONTAINER_EPHEMERAL_OWNER:
            self.containers.discard(path)
        elif owner < 0:
            self.ttls.discard(path)
        elif owner != 0:
            eph = self.ephemerals.get(owner)
            if eph is not None:
                eph.discard(path)
                if not eph:
                    del self.ephemerals[owner]
        if path.startswith(QUOTA_PATH):
            target = quota_target(path)
            if target is not None and target[1] == LIMIT_NODE:
                self.quota_paths.discard(target[0])
        if self.quota_paths:
            self._quota_update(path, -(len(node.data) if node.data else 0), -1)
        w = self.watches
        if w is not None:
            w.trigger(path, EventType.NODE_DELETED, zxid, node.acl)
            w.trigger(parent_path, EventType.NODE_CHILDREN_CHANGED, zxid,
                      parent.acl if parent is not None else None)
        return ApplyResult(0, path, op=typ)

    def _set_data(self, typ: int, rec: SetDataTxn, txn: Txn) -> ApplyResult:
        node = self.nodes.get(rec.path)
        if node is None:
            return ApplyResult(Err.NO_NODE, op=typ)
        if self.quota_paths:
            old = len(node.data) if node.data else 0
            self._quota_update(rec.path, (len(rec.data) if rec.data else 0) - old, 0)
        node.data = rec.data
        node.version = rec.version
        node.mzxid = txn.zxid
        node.mtime = txn.time
        node._stat_bytes = None
        if self.watches is not None:
            self.watches.trigger(rec.path, EventType.NODE_DATA_CHANGED, txn.zxid, node.acl)
        return ApplyResult(0, rec.path, node, op=typ)

    def _set_acl(self, rec: SetACLTxn) -> ApplyResult:
        node = self.nodes.get(rec.path)
        if node is None:
            return ApplyResult(Err.NO_NODE, op=Op.SET_ACL)
        node.acl = rec.acl
        node.aversion = rec.version
        node._stat_bytes = None
        return ApplyResult(0, rec.path, node, op=Op.SET_ACL)

    def _multi(self, rec: MultiTxn, txn: Txn) -> ApplyResult:
        """All sub-txns or, if any is an error txn, none (results as ZooKeeper reports)."""
        failed = any(t == Op.ERROR for t, _ in rec.txns)
        results: list[ApplyResult] = []
        if failed:
            seen_error = False
            for t, sub in rec.txns:
                if t == Op.ERROR and not seen_error:
                    assert isinstance(sub, ErrorTxn)
                    seen_error = True
                    results.append(ApplyResult(sub.err, op=Op.ERROR))
                elif seen_error:
                    results.append(ApplyResult(Err.RUNTIME_INCONSISTENCY, op=Op.ERROR))
                else:
                    results.append(ApplyResult(0, op=Op.ERROR))
            return ApplyResult(0, multi=results, op=Op.MULTI)
        for t, sub in rec.txns:
            res = self._apply_record(t, sub, txn)
            if res.node is not None:
                res.stat = res.node.stat_bytes()
            results.append(res)
        return ApplyResult(0, multi=results, op=Op.MULTI)

    def _close_session(self, session_id: int, rec: object, zxid: int) -> ApplyResult:
        paths = self.ephemerals.get(session_id)
        if isinstance(rec, CloseSessionTxn) and rec.paths2Delete is not None:
            to_delete = list(rec.paths2Delete)
        else:
            to_delete = sorted(paths) if paths else []
        for p in to_delete:
            self._delete(Op.DELETE, p, zxid)
        self.ephemerals.pop(session_id, None)
        return ApplyResult(op=Op.CLOSE_SESSION)

"""The data-tree digest (ZooKeeper's digest version 2).

Every txn record in a 3.6+ log carries the digest of the whole tree *after* the txn was
applied, and a snapshot ends with the digest at some zxid; Java servers compare them on replay
and between peers (a mismatch only logs). The algorithm:

- node digest = CRC-32 (zlib's, unsigned 32-bit) over the path's UTF-8 bytes, then the data
  (nothing when null), then a 60-byte big-endian block of the *persisted* stat in the order
  czxid, mzxid, pzxid, ctime, mtime (longs), version, cversion, aversion (ints),
  ephemeralOwner (long). The root is hashed with the path "" (not "/"); cversion is the stored
  one (child creations), not the 2*cversion-numChildren clients see.
- nodes whose path starts with "/zookeeper/" count as 0 ("/zookeeper" itself does count);
- tree digest = the sum of all node digests, wrapping at 64 bits (a signed Java long).

Because it is a plain sum, the digest is maintained incrementally: subtract a node's digest
before it changes, add it back afterwards. `TreeDigest.apply()` does that around
`DataTree.apply` by recomputing just the nodes a txn can touch (the target paths and their
parents).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from ..protocol.consts import CONTAINER_EPHEMERAL_OWNER, Op
from ..protocol.jute import encode_java_utf8
from ..protocol.txns import (
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
)
from ..server.datatree import ApplyResult, DataTree, Node

DIGEST_VERSION = 2
EXCLUDED_PREFIX = "/zookeeper/"

_STAT_BLOCK = struct.Struct(">qqqqqiiiq")  # 60 bytes
_MASK64 = (1 << 64) - 1


def to_signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >= (1 << 63) else v


def node_digest(path: str, node: Node) -> int:
    """The digest of one node (0 for nodes under /zookeeper/)."""
    if path.startswith(EXCLUDED_PREFIX):
        return 0
    crc = zlib.crc32(b"" if path == "/" else encode_java_utf8(path))
    if node.data is not None:
        crc = zlib.crc32(node.data, crc)
    return zlib.crc32(_STAT_BLOCK.pack(
        node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime,
        node.version, node.cversion, node.aversion, node.ephemeral_owner), crc)


def tree_digest(tree: DataTree) -> int:
    """The digest of a whole tree, from scratch (signed 64-bit)."""
    total = 0
    for path, node in tree.nodes.items():
        total += node_digest(path, node)
    return to_signed64(total)


def _parent(path: str) -> str:
    i = path.rfind("/")
    return "/" if i <= 0 else path[:i]


def txn_touched_paths(tree: DataTree, txn: Txn) -> set[str]:
    """Every path whose node (or its existence) the txn can change: targets and parents."""
    out: set[str] = set()

    def add_record(typ: int, rec: object) -> None:
        if isinstance(rec, (CreateTxn, DeleteTxn)):
            out.add(rec.path)
            out.add(_parent(rec.path))
        elif isinstance(rec, (SetDataTxn, SetACLTxn)):
            out.add(rec.path)
        elif isinstance(rec, MultiTxn):
            for sub_typ, sub in rec.txns:
                add_record(sub_typ, sub)
        elif typ == Op.CLOSE_SESSION:
            if isinstance(rec, CloseSessionTxn) and rec.paths2Delete is not None:
                paths: Iterable[str] = rec.paths2Delete
            else:
                paths = tree.ephemerals.get(txn.session_id, ())
            for p in paths:
                out.add(p)
                out.add(_parent(p))

    add_record(txn.type, txn.record)
    return out


class TreeDigest:
    """A tree digest kept up to date as txns are applied.

    Use `apply(tree, txn)` instead of `tree.apply(txn)`, or bracket any other change of a node
    with `remove(path, node)` before and `add(path, node)` after. `value` is the signed 64-bit
    digest, as stored in logs and snapshots."""

    __slots__ = ("_sum",)

    def __init__(self, tree: DataTree | None = None) -> None:
        self._sum = 0
        if tree is not None:
            self.reset(tree)

    @property
    def value(self) -> int:
        return to_signed64(self._sum)

    def reset(self, tree: DataTree) -> None:
        self._sum = tree_digest(tree) & _MASK64

    def add(self, path: str, node: Node) -> None:
        self._sum = (self._sum + node_digest(path, node)) & _MASK64

    def remove(self, path: str, node: Node) -> None:
        self._sum = (self._sum - node_digest(path, node)) & _MASK64

    def apply(self, tree: DataTree, txn: Txn) -> ApplyResult:
        """`tree.apply(txn)`, keeping the digest in step. Returns the apply result."""
        paths = [p for p in txn_touched_paths(tree, txn) if not p.startswith(EXCLUDED_PREFIX)]
        nodes = tree.nodes
        for p in paths:
            node = nodes.get(p)
            if node is not None:
                self.remove(p, node)
        result = tree.apply(txn)
        for p in paths:
            node = nodes.get(p)
            if node is not None:
                self.add(p, node)
        return result


# --- the digest of txns not applied yet ------------------------------------------------------

# A node's digest-relevant state: (data, czxid, mzxid, pzxid, ctime, mtime, version, cversion,
# aversion, ephemeral_owner); None for "does not exist".
_NodeState = tuple
_CREATE_TYPES = (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL)


def _state_of(n: Node) -> _NodeState:
    return (n.data, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion,
            n.aversion, n.ephemeral_owner)


def _state_digest(path_crc: int, s: _NodeState) -> int:
    data = s[0]
    crc = path_crc if data is None else zlib.crc32(data, path_crc)
    return zlib.crc32(_STAT_BLOCK.pack(s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9]),
                      crc)


class DigestShadow:
    """The tree digest each txn will leave behind, known before the txn is applied.

    A 3.6+ log stores with every txn the tree digest *after* it, but the server logs a txn
    (and fsyncs it) before applying it. This keeps the digest of the tree as it will be once
    every txn handed to `txn()` so far is applied: the data tree overlaid with the
    digest-relevant state of the nodes those outstanding txns change, derived with exactly
    `DataTree.apply`'s rules. Call `txn()` for every txn in zxid order as it is created (it
    returns the digest to log with it), and `applied(zxid)` once the tree applied the txns up
    to `zxid` (their overlay entries are then dropped: the tree holds the same state)."""

    __slots__ = ("tree", "_sum", "_overlay")

    def __init__(self, tree: DataTree, value: int | None = None) -> None:
        self.tree = tree
        self._sum = (tree_digest(tree) if value is None else value) & _MASK64
        # path -> (zxid of the last txn changing it, its state then or None if deleted)
        self._overlay: dict[str, tuple[int, _NodeState | None]] = {}

    @property
    def value(self) -> int:
        return to_signed64(self._sum)

    def txn(self, txn: Txn) -> int:
        """Account for `txn` (the next one in zxid order); the digest after it (signed)."""
        self._record(txn.type, txn.record, txn)
        return to_signed64(self._sum)

    def applied(self, zxid: int) -> None:
        """Forget the overlay entries of txns up to `zxid`; `_set` keeps the overlay in zxid
        order, so only those are visited."""
        ov = self._overlay
        while ov:
            path = next(iter(ov))
            if ov[path][0] > zxid:
                return
            del ov[path]

    def _get(self, path: str) -> _NodeState | None:
        e = self._overlay.get(path)
        if e is not None:
            return e[1]
        n = self.tree.nodes.get(path)
        return None if n is None else _state_of(n)

    def _exists(self, path: str) -> bool:
        e = self._overlay.get(path)
        if e is not None:
            return e[1] is not None
        return path in self.tree.nodes

    def _set(self, path: str, zxid: int, old: _NodeState | None,
             new: _NodeState | None) -> None:
        if not path.startswith(EXCLUDED_PREFIX):
            pcrc = zlib.crc32(b"" if path == "/" else encode_java_utf8(path))
            d = 0
            if old is not None:
                d -= _state_digest(pcrc, old)
            if new is not None:
                d += _state_digest(pcrc, new)
            self._sum = (self._sum + d) & _MASK64
        ov = self._overlay
        ov.pop(path, None)  # re-inserted at the end: the overlay stays in zxid order
        ov[path] = (zxid, new)

    def _record(self, typ: int, rec: object, txn: Txn) -> None:
        # Mirrors DataTree._apply_record (failures included); quota bookkeeping only touches
        # /zookeeper/quota/..., which the digest leaves out.
        if typ in _CREATE_TYPES:
            assert isinstance(rec, CreateTxn)
            self._create(rec, txn)
        elif typ == Op.SET_DATA or typ == Op.RECONFIG:
            assert isinstance(rec, SetDataTxn)
            old = self._get(rec.path)
            if old is not None:
                self._set(rec.path, txn.zxid, old,
                          (rec.data, old[1], txn.zxid, old[3], old[4], txn.time, rec.version,
                           old[7], old[8], old[9]))
        elif typ == Op.DELETE or typ == Op.DELETE_CONTAINER:
            assert isinstance(rec, DeleteTxn)
            self._delete(rec.path, txn.zxid)
        elif typ == Op.SET_ACL:
            assert isinstance(rec, SetACLTxn)
            old = self._get(rec.path)
            if old is not None:
                self._set(rec.path, txn.zxid, old, old[:8] + (rec.version, old[9]))
        elif typ == Op.MULTI:
            assert isinstance(rec, MultiTxn)
            if any(t == Op.ERROR for t, _ in rec.txns):
                return  # a failed multi changes nothing
            for t, sub in rec.txns:
                self._record(t, sub, txn)
        elif typ == Op.CLOSE_SESSION:
            if isinstance(rec, CloseSessionTxn) and rec.paths2Delete is not None:
                paths: Iterable[str] = rec.paths2Delete
            else:  # not written by this server (Prep always lists the paths)
                paths = sorted(self.tree.ephemerals.get(txn.session_id, ()))
            for p in paths:
                self._delete(p, txn.zxid)
        # createSession, check, error: no node changes

    def _create(self, rec: CreateTxn, txn: Txn) -> None:
        path, zxid = rec.path, txn.zxid
        parent_path = _parent(path)
        parent = self._get(parent_path)
        if parent is None:
            return
        pcv = rec.parentCVersion
        if pcv == -1:
            pcv = parent[7] + 1
        if not self._exists(path):
            if rec.container:
                owner = CONTAINER_EPHEMERAL_OWNER
            elif rec.ttl >= 0:
                owner = (0xFF00000000000000 | rec.ttl) - (1 << 64)
            else:
                owner = txn.session_id if rec.ephemeral else 0
            t = txn.time
            self._set(path, zxid, None, (rec.data, zxid, zxid, zxid, t, t, 0, 0, 0, owner))
        if pcv > parent[7]:
            self._set(parent_path, zxid, parent,
                      parent[:3] + (zxid, parent[4], parent[5], parent[6], pcv) + parent[8:])

    def _delete(self, path: str, zxid: int) -> None:
        node = self._get(path)
        parent_path = _parent(path)
        parent = self._get(parent_path)
        if node is not None:
            self._set(path, zxid, node, None)
        if parent is not None and zxid > parent[3]:
            self._set(parent_path, zxid, parent, parent[:3] + (zxid,) + parent[4:])

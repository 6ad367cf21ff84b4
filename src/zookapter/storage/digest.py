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

from ..protocol.consts import Op
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

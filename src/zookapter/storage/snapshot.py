"""Snapshots: `snapshot.<zxid>` files, byte-compatible with ZooKeeper's FileSnap (3.5-3.9).

Layout (all jute, big-endian)::

    FileHeader          int magic "ZKSN", int version 2, long dbid -1
    int count           sessions: count x (long sessionId, int timeoutMs)
    int count           ACL map:  count x (long index, vector<ACL>)
    nodes, pre-order    ustring path ("" for the root), buffer data, long aclIndex,
                        StatPersisted (czxid, mzxid, ctime, mtime: long; version, cversion,
                        aversion: int; ephemeralOwner, pzxid: long) = 60 bytes
    ustring "/"         end of nodes
    long checksum       Adler-32 of every byte before it; then ustring "/" (the seal)
  optional (3.6+, digest enabled):
    long zxid, int digestVersion (2), long digest    [version < 2: digest is a hex ustring]
    long checksum (of everything before it), ustring "/"
  optional (3.9+):
    long lastProcessedZxid, long checksum, ustring "/"

ACL indexes: -1 stands for OPEN_ACL_UNSAFE and is used only by nodes the server creates with it
(root, /zookeeper, /zookeeper/quota); every other ACL list (including a client's
OPEN_ACL_UNSAFE) gets an index from a counter starting at 1, in the order lists were first
used, and keeps it as long as some node uses it. `AclCache` reproduces that: load it from a
snapshot (`read_snapshot(...).info.acl_cache`) and pass it back to `write_snapshot` to keep the
indexes stable; without one, indexes are assigned in node order.

Snapshots are written straight to their final name, like ZooKeeper; the trailing seal is what
makes a file count as complete (`find_snapshots` checks that the last 5 bytes are
00 00 00 01 '/').
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..protocol.consts import CONTAINER_EPHEMERAL_OWNER, QUOTA_PATH, ZOOKEEPER_PATH
from ..protocol.jute import JuteError, Reader, Writer, encode_java_utf8
from ..protocol.records import ACL, OPEN_ACL_UNSAFE, read_acls, write_acls
from ..server.datatree import DataTree, Node
from ..server.quotas import LIMIT_NODE, quota_target
from .digest import DIGEST_VERSION
from .files import (
    FILE_HEADER,
    FORMAT_VERSION,
    SNAP_DBID,
    SNAP_MAGIC,
    SNAPSHOT_PREFIX,
    fsync_dir,
    sorted_files,
    zxid_from_name,
)
from .javaorder import children_order, long_keys_order

OPEN_UNSAFE_INDEX = -1
STAT_PERSISTED = struct.Struct(">qqqqiiiqq")  # 60 bytes
_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")
_IDX_AND_STAT = struct.Struct(">q" + STAT_PERSISTED.format[1:])  # ACL index + stat
_SESSION = struct.Struct(">qi")
SEAL_TAIL = b"\x00\x00\x00\x01/"  # ustring "/"
ZXID_DIGEST = struct.Struct(">qiq")
# Nodes the server itself creates with ACL index -1.
_SYSTEM_OPEN_PATHS = frozenset(("/", ZOOKEEPER_PATH, QUOTA_PATH))
_MAX_LEN = 1 << 31
WIRE_SIGNATURE = "BenWasHere"  # ends a SNAP sync on the quorum wire
WIRE_SIGNATURE_BYTES = struct.pack(">i", len(WIRE_SIGNATURE)) + WIRE_SIGNATURE.encode()


class SnapshotError(IOError):
    """A snapshot that cannot be loaded (bad magic, CRC mismatch, truncation, bad tree)."""


@dataclass(slots=True)
class ZxidDigest:
    """The digest section: the tree digest as of `zxid` (zxid 0 = "no digest known")."""
    zxid: int
    version: int
    digest: int


class AclCache:
    """ACL list <-> long index, as ZooKeeper's ReferenceCountedACLCache numbers them."""

    def __init__(self) -> None:
        self._by_index: dict[int, tuple[ACL, ...]] = {}
        self._by_acl: dict[tuple[ACL, ...], int] = {}
        self.max_index = 0

    def __len__(self) -> int:
        return len(self._by_index)

    def items(self) -> list[tuple[int, tuple[ACL, ...]]]:
        return list(self._by_index.items())

    def put(self, index: int, acls: Iterable[ACL]) -> None:
        acls = tuple(acls)
        self._by_index[index] = acls
        self._by_acl[acls] = index
        self.max_index = max(self.max_index, index)

    def lookup(self, index: int) -> tuple[ACL, ...]:
        if index == OPEN_UNSAFE_INDEX:
            return OPEN_ACL_UNSAFE
        try:
            return self._by_index[index]
        except KeyError:
            raise SnapshotError(f"ACL index {index} not in the snapshot's ACL map") from None

    def index_of(self, acls: tuple[ACL, ...]) -> int:
        """The index of `acls`, allocating the next one for a list not seen before."""
        idx = self._by_acl.get(acls)
        if idx is None:
            self.max_index += 1
            idx = self.max_index
            self.put(idx, acls)
        return idx

    def retain(self, used: set[int]) -> None:
        """Forget indexes no node uses any more (the counter is not reset)."""
        for idx in [i for i in self._by_index if i not in used]:
            acls = self._by_index.pop(idx)
            if self._by_acl.get(acls) == idx:
                del self._by_acl[acls]


@dataclass(slots=True)
class SnapshotInfo:
    zxid: int | None  # from the file name (None if the name is not snapshot.<hex>)
    digest: ZxidDigest | None  # None when the file has no digest section
    last_processed_zxid: int | None  # the 3.9 trailer, when present
    acl_cache: AclCache = field(default_factory=AclCache)
    dbid: int = SNAP_DBID


class Snapshot(NamedTuple):
    tree: DataTree
    sessions: dict[int, int]  # session id -> timeout ms
    info: SnapshotInfo


# --- writing ---------------------------------------------------------------------------------

def _dfs(tree: DataTree, child_order: str) -> list[tuple[str, Node]]:
    """Nodes in pre-order, children in the requested order."""
    nodes = tree.nodes
    out: list[tuple[str, Node]] = []
    stack = ["/"]
    while stack:
        path = stack.pop()
        node = nodes.get(path)
        if node is None:
            continue
        out.append((path, node))
        if not node.children:
            continue
        prefix = "/" if path == "/" else path + "/"
        if child_order == "java":
            def czxid_of(name: str, p: str = prefix) -> int:
                return _czxid(nodes.get(p + name))
            names = children_order(node.children, czxid_of)
        elif child_order == "sorted":
            names = sorted(node.children)
        else:
            names = list(node.children)
        stack.extend(prefix + n for n in reversed(names))
    return out


def _czxid(node: Node | None) -> int:
    return 0 if node is None else node.czxid


def _acl_index(path: str, node: Node, cache: AclCache) -> int:
    if path in _SYSTEM_OPEN_PATHS and node.aversion == 0 and node.acl == OPEN_ACL_UNSAFE:
        return OPEN_UNSAFE_INDEX
    return cache.index_of(tuple(node.acl))


def _seal(out: bytearray) -> None:
    out += _LONG.pack(zlib.adler32(out))
    out += SEAL_TAIL


def serialize_snapshot(tree: DataTree, sessions: dict[int, int],
                       digest: ZxidDigest | None = None, *,
                       acl_cache: AclCache | None = None, digest_section: bool = True,
                       last_processed_zxid: int | None = None,
                       child_order: str = "java") -> bytes:
    """The bytes of a snapshot of `tree`.

    `digest` goes into the digest section (None writes ZooKeeper's "empty" digest, zxid 0);
    `digest_section=False` leaves the section out (as with digests disabled);
    `last_processed_zxid` adds the 3.9 trailer. `child_order` is "java" (Java HashSet order,
    see javaorder), "sorted" or "any". `acl_cache` is updated: new lists get indexes, unused
    ones are dropped."""
    out = bytearray(FILE_HEADER.pack(SNAP_MAGIC, FORMAT_VERSION, SNAP_DBID))
    _write_body(out, tree, sessions, acl_cache if acl_cache is not None else AclCache(),
                child_order)
    _seal(out)
    if digest_section:
        d = digest if digest is not None else ZxidDigest(0, DIGEST_VERSION, 0)
        if d.version < 2:
            raise ValueError("only digest version >= 2 can be written")
        out += ZXID_DIGEST.pack(d.zxid, d.version, d.digest)
        _seal(out)
    if last_processed_zxid is not None:
        out += _LONG.pack(last_processed_zxid)
        _seal(out)
    return bytes(out)


def _write_body(out: bytearray, tree: DataTree, sessions: dict[int, int], cache: AclCache,
                child_order: str) -> None:
    """Sessions, ACL map and nodes up to the "/" end marker: SerializeUtils.serializeSnapshot,
    shared by snapshot files and the SNAP sync on the quorum wire."""
    order = _dfs(tree, child_order)
    indexes = [_acl_index(p, n, cache) for p, n in order]
    used = set(indexes)
    used.discard(OPEN_UNSAFE_INDEX)
    cache.retain(used)
    out += _INT.pack(len(sessions))
    for sid in long_keys_order(sessions):
        out += _SESSION.pack(sid, sessions[sid])
    out += _INT.pack(len(used))
    w = Writer()
    w.buf = out
    for idx in long_keys_order(used):
        out += _LONG.pack(idx)
        write_acls(w, cache.lookup(idx))
    for (path, node), idx in zip(order, indexes, strict=True):
        w.ustring("" if path == "/" else path)
        w.buffer(node.data)
        out += _LONG.pack(idx)
        out += STAT_PERSISTED.pack(node.czxid, node.mzxid, node.ctime, node.mtime, node.version,
                                   node.cversion, node.aversion, node.ephemeral_owner,
                                   node.pzxid)
    w.ustring("/")


def serialize_wire_snapshot(tree: DataTree, sessions: dict[int, int],
                            child_order: str = "java") -> bytes:
    """What a leader streams after the SNAP packet (ZKDatabase.serializeSnapshot): the
    snapshot body without file header, checksums or digest, then the "BenWasHere"
    signature string LearnerHandler appends."""
    out = bytearray()
    _write_body(out, tree, sessions, AclCache(), child_order)
    w = Writer()
    w.buf = out
    w.ustring(WIRE_SIGNATURE)
    return bytes(out)


def write_snapshot_bytes(path: str | os.PathLike[str], data: bytes, fsync: bool = True) -> None:
    """Write serialized snapshot bytes to `path` (blocking; fine to run in an executor)."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if fsync:
        fsync_dir(p.parent)


def write_snapshot(path: str | os.PathLike[str], tree: DataTree, sessions: dict[int, int],
                   zxid: int, digest: int | None, *, acl_cache: AclCache | None = None,
                   digest_section: bool = True, last_processed_zxid: int | None = None,
                   child_order: str = "java", fsync: bool = True) -> None:
    """Write a snapshot whose digest section says the tree digest at `zxid` is `digest`
    (None: the empty digest). `path` is normally `<dir>/snapshot.<hex zxid>`."""
    d = None if digest is None else ZxidDigest(zxid, DIGEST_VERSION, digest)
    data = serialize_snapshot(tree, sessions, d, acl_cache=acl_cache,
                              digest_section=digest_section,
                              last_processed_zxid=last_processed_zxid, child_order=child_order)
    write_snapshot_bytes(path, data, fsync=fsync)


# --- reading ---------------------------------------------------------------------------------

def _check_seal(buf: bytes, r: Reader, what: str) -> None:
    expected = zlib.adler32(memoryview(buf)[:r.pos])
    stored = r.long()
    r.ustring()
    if stored != expected:
        raise SnapshotError(f"CRC corruption in {what} (stored {stored:#x}, "
                            f"computed {expected:#x})")


def parse_snapshot(buf: bytes, name_zxid: int | None = None) -> Snapshot:
    """Decode the (uncompressed) bytes of a snapshot."""
    try:
        return _parse(buf, name_zxid)
    except JuteError as e:
        raise SnapshotError(f"truncated or malformed snapshot: {e}") from e


def _parse(buf: bytes, name_zxid: int | None) -> Snapshot:
    r = Reader(buf, max_len=_MAX_LEN)
    if len(buf) < FILE_HEADER.size:
        raise SnapshotError("snapshot shorter than its header")
    magic, _version, dbid = FILE_HEADER.unpack_from(buf, 0)
    r.pos = FILE_HEADER.size
    if magic != SNAP_MAGIC:
        raise SnapshotError(f"mismatching magic header {magic:#x} != {SNAP_MAGIC:#x}")

    sessions, tree, cache, used = _read_body(buf, r)
    _check_seal(buf, r, "snapshot")

    digest = None
    lpz = None
    rest = len(buf) - r.pos
    trailer = _LONG.size + _LONG.size + len(SEAL_TAIL)
    if rest > 0 and rest != trailer:
        zxid, dversion = r.long(), r.int()
        if dversion < 2:
            text = r.ustring()
            value = int(text, 16) if text else 0
            value = value - (1 << 64) if value >= (1 << 63) else value
        else:
            value = r.long()
        digest = ZxidDigest(zxid, dversion, value)
        _check_seal(buf, r, "digest section")
        rest = len(buf) - r.pos
    if rest > 0:
        lpz = r.long()
        _check_seal(buf, r, "lastProcessedZxid section")

    cache.retain(used)
    _setup_quotas(tree)
    if name_zxid is not None:
        tree.last_processed_zxid = name_zxid
    elif lpz is not None:
        tree.last_processed_zxid = lpz
    return Snapshot(tree, sessions, SnapshotInfo(name_zxid, digest, lpz, cache, dbid))


def _read_body(buf: bytes, r: Reader) -> tuple[dict[int, int], DataTree, AclCache, set[int]]:
    """Sessions, ACL map and nodes up to the "/" end marker (see _write_body)."""
    sessions: dict[int, int] = {}
    for _ in range(r.int()):
        sid = r.long()
        sessions[sid] = r.int()

    cache = AclCache()
    for _ in range(r.int()):
        idx = r.long()
        acls = read_acls(r)
        if acls is None:
            raise SnapshotError("missing ACL vector in the ACL map")
        cache.put(idx, acls)

    tree = DataTree()
    nodes = tree.nodes
    nodes.clear()
    tree.ephemerals.clear()
    tree.containers.clear()
    tree.ttls.clear()
    tree.quota_paths.clear()
    ephemerals = tree.ephemerals
    used: set[int] = set()
    stat_size = STAT_PERSISTED.size
    while True:
        path = r.ustring()
        if path == "/":
            break
        if path is None:
            raise SnapshotError("null path in snapshot")
        data = r.buffer()
        acl_idx = r.long()
        r._need(stat_size)
        (czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
         pzxid) = STAT_PERSISTED.unpack_from(buf, r.pos)
        r.pos += stat_size
        node = Node(data, cache.lookup(acl_idx), czxid, ctime, owner)
        node.mzxid, node.mtime, node.pzxid = mzxid, mtime, pzxid
        node.version, node.cversion, node.aversion = version, cversion, aversion
        used.add(acl_idx)
        slash = path.rfind("/")
        if slash == -1:
            if path != "":
                raise SnapshotError(f"invalid path {path!r} in snapshot")
            nodes["/"] = node
            continue
        parent_path = path[:slash] or "/"
        parent = nodes.get(parent_path)
        if parent is None:
            raise SnapshotError(f"Invalid Datatree, unable to find parent {parent_path} "
                                f"of path {path}")
        nodes[path] = node
        parent.add_child(path[slash + 1:])
        if owner == 0:
            continue
        if owner == CONTAINER_EPHEMERAL_OWNER:
            tree.containers.add(path)
        elif (owner >> 56) == -1:
            tree.ttls.add(path)
        else:
            eph = ephemerals.get(owner)
            if eph is None:
                ephemerals[owner] = {path}
            else:
                eph.add(path)
    if "/" not in nodes:
        raise SnapshotError("snapshot has no root node")
    return sessions, tree, cache, used


def parse_wire_snapshot(buf: bytes | bytearray | memoryview, pos: int = 0, *,
                        signed: bool = True) -> tuple[DataTree, dict[int, int], int]:
    """Read a SNAP sync's snapshot body (and, if `signed`, the signature after it) starting
    at `pos`: (tree, sessions, position after what was read). Raises JuteError while `buf`
    is still incomplete and SnapshotError if the stream is not a snapshot. The caller sets
    the tree's lastProcessedZxid from the SNAP packet's zxid."""
    r = Reader(buf, pos, max_len=_MAX_LEN)
    sessions, tree, cache, used = _read_body(buf, r)  # type: ignore[arg-type]
    if signed:
        signature = r.ustring()
        if signature != WIRE_SIGNATURE:
            raise SnapshotError(f"missing signature after the snapshot: {signature!r}")
    cache.retain(used)
    _setup_quotas(tree)
    return tree, sessions, r.pos


def _setup_quotas(tree: DataTree) -> None:
    """Register every quota'd path (leaf `zookeeper_limits` nodes under /zookeeper/quota) and
    recompute its usage node, as ZooKeeper does after loading."""
    prefix = QUOTA_PATH + "/"
    for path, node in list(tree.nodes.items()):
        if not path.startswith(prefix) or node.children:
            continue
        target = quota_target(path)
        if target is None or target[1] != LIMIT_NODE or target[0] == "/":
            continue
        tree.quota_paths.add(target[0])
        tree.recompute_quota(target[0])


def read_snapshot_bytes(path: str | os.PathLike[str]) -> bytes:
    """The uncompressed bytes of a snapshot file (`.gz` is decompressed; snappy unsupported)."""
    p = Path(path)
    raw = p.read_bytes()
    if p.name.endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise SnapshotError(f"{p}: bad gzip stream: {e}") from e
    if p.name.endswith(".snappy"):
        raise SnapshotError(f"{p}: snappy-compressed snapshots are not supported")
    return raw


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Load a snapshot file: (tree, sessions, info). The tree's last_processed_zxid is the
    zxid in the file name (as ZooKeeper does), else the 3.9 trailer's."""
    p = Path(path)
    name_zxid = zxid_from_name(p.name, SNAPSHOT_PREFIX)
    try:
        return parse_snapshot(read_snapshot_bytes(p), name_zxid)
    except SnapshotError as e:
        raise SnapshotError(f"{p}: {e}") from e


def is_valid_snapshot(path: str | os.PathLike[str]) -> bool:
    """ZooKeeper's quick check: a plain file >= 10 bytes ending in ustring "/" (a .gz file:
    the gzip magic). Does not verify checksums."""
    p = Path(path)
    if zxid_from_name(p.name, SNAPSHOT_PREFIX) is None:
        return False
    try:
        with open(p, "rb") as fh:
            if p.name.endswith(".gz"):
                return fh.read(2) == b"\x1f\x8b"
            if p.name.endswith(".snappy"):
                return False
            size = os.fstat(fh.fileno()).st_size
            if size < 10:
                return False
            fh.seek(size - len(SEAL_TAIL))
            return fh.read(len(SEAL_TAIL)) == SEAL_TAIL
    except OSError:
        return False


def find_snapshots(directory: str | os.PathLike[str], limit: int = 100) -> list[Path]:
    """Up to `limit` snapshots that pass the quick validity check, newest first."""
    out = []
    for _zxid, p in sorted_files(directory, SNAPSHOT_PREFIX, newest_first=True):
        if is_valid_snapshot(p):
            out.append(p)
            if len(out) >= limit:
                break
    return out


def load_newest_snapshot(directory: str | os.PathLike[str]) -> tuple[Path, Snapshot] | None:
    """The newest snapshot that loads without error (trying up to 100, as ZooKeeper), or None
    when the directory has no snapshot. Raises SnapshotError if none of them loads."""
    candidates = find_snapshots(directory)
    if not candidates:
        return None
    errors = []
    for p in candidates:
        try:
            return p, read_snapshot(p)
        except (SnapshotError, OSError) as e:
            errors.append(str(e))
    raise SnapshotError("no valid snapshot in " + str(directory) + ": " + "; ".join(errors))



# --- fuzzy snapshots while serving ---------------------------------------------------------

def serialize_fuzzy(tree: DataTree, sessions: dict[int, int], acl_cache: AclCache,
                    chunk: int = 5000,
                    digest: Callable[[], tuple[int, int] | None] | None = None
                    ) -> Iterator[bytes | None]:
    """Serialize `tree` a chunk of nodes at a time, as ZooKeeper's fuzzy snapshot does.

    A generator: it yields None after every `chunk` nodes so the caller can let the event loop
    apply more txns, and finally yields the complete file bytes. Nodes are visited in
    pre-order from the live tree; a node deleted meanwhile is skipped and one created
    meanwhile may or may not appear, so the result is "fuzzy": replaying the log from the
    zxid current when serialization started (the file's name) repairs it, which is why replay
    tolerates NodeExists/NoNode. The ACL map is written before the nodes but can only be known
    after them, so the nodes are encoded into their own buffer first; the Adler-32 checksum
    runs over header and nodes in file order.

    `digest()`, called right after the last node was read, gives (zxid, tree digest after
    it) for the newest txn applied: the digest section, as ZooKeeper's lastProcessedZxidDigest.
    Replaying the log up to that zxid makes the fuzzy tree exact, so a loader compares it
    there and checks txn digests only after it (without one, zxid 0: "no digest known",
    a loader would compare the still-fuzzy tree with the first txns' digests)."""
    nodes = tree.nodes
    body = bytearray()
    w = Writer()
    w.buf = body
    used: set[int] = set()
    stack = ["/"]
    done = 0
    # The hot loop (several µs per znode, all on the event loop): locals, one pack for the
    # ACL index and the stat, and ACL indexes looked up by list identity (nodes share their
    # ACL tuples; hashing a tuple of ACL records per node cost a fifth of the time). The
    # cache holds each list it saw, so an id cannot be reused while it is in there.
    by_identity: dict[int, tuple[object, int]] = {}
    pack_len = _INT.pack
    pack_tail = _IDX_AND_STAT.pack
    pop, push = stack.pop, stack.extend
    while stack:
        path = pop()
        node = nodes.get(path)
        if node is None:
            continue
        acl = node.acl
        hit = by_identity.get(id(acl))
        if hit is not None and hit[0] is acl and path not in _SYSTEM_OPEN_PATHS:
            idx = hit[1]
        else:
            idx = _acl_index(path, node, acl_cache)
            if path not in _SYSTEM_OPEN_PATHS:
                by_identity[id(acl)] = (acl, idx)
        if idx != OPEN_UNSAFE_INDEX:
            used.add(idx)
        if path == "/":
            body += b"\x00\x00\x00\x00"
        else:
            raw = encode_java_utf8(path)
            body += pack_len(len(raw))
            body += raw
        data = node.data
        if data is None:
            body += b"\xff\xff\xff\xff"
        else:
            body += pack_len(len(data))
            body += data
        body += pack_tail(idx, node.czxid, node.mzxid, node.ctime, node.mtime, node.version,
                          node.cversion, node.aversion, node.ephemeral_owner, node.pzxid)
        children = node.children
        if children:
            prefix = "/" if path == "/" else path + "/"
            push([prefix + name for name in children])
        done += 1
        if done % chunk == 0:
            yield None
    w.ustring("/")
    last = digest() if digest is not None else None
    head = bytearray(FILE_HEADER.pack(SNAP_MAGIC, FORMAT_VERSION, SNAP_DBID))
    head += _INT.pack(len(sessions))
    for sid, timeout in sessions.items():
        head += _SESSION.pack(sid, timeout)
    acl_cache.retain(used)
    head += _INT.pack(len(used))
    hw = Writer()
    hw.buf = head
    for idx in sorted(used):
        head += _LONG.pack(idx)
        write_acls(hw, acl_cache.lookup(idx))
    checksum = zlib.adler32(body, zlib.adler32(head))
    out = head + body
    out += _LONG.pack(checksum)
    out += SEAL_TAIL
    if last is not None and last[0] > 0:
        out += ZXID_DIGEST.pack(last[0], DIGEST_VERSION, last[1])
    else:  # zxid 0: "no digest known"
        out += ZXID_DIGEST.pack(0, DIGEST_VERSION, 0)
    _seal(out)
    yield bytes(out)

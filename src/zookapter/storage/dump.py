"""Human-readable and JSON views of txn logs and snapshots (`zookapter txnlog` / `snapshot`).

Modelled on ZooKeeper's TxnLogToolkit and SnapshotFormatter, with a format of our own:

txn log, human: one line per txn, as TxnLogToolkit prints them::

    <time ISO-8601 UTC> session 0x<sid> cxid 0x<cxid> zxid 0x<zxid> <type> <field>=<value> ...

txn log, JSON (one object per line)::

    {"time": "2024-05-01T10:00:00.123Z", "timeMs": 1714557600123, "session": "0x...",
     "cxid": "0x...", "zxid": "0x...", "type": "create", "typeCode": 1, "path": "/a",
     "data": "hello", "dataEncoding": "utf-8", "acl": [{"perms": 31, "permsText": "cdrwa",
     "scheme": "world", "id": "anyone"}], "ephemeral": false, "parentCVersion": 1,
     "digest": {"version": 2, "value": "0x..."}, "file": "log.1", "offset": 16}

Record fields appear only for the txn types that have them: `timeout` (createSession),
`paths2Delete` (closeSession), `path`, `data`, `acl`, `ephemeral`, `parentCVersion`, `ttl`
(createTtl), `version` (setData, setACL, check), `err` (error), `txns` (the sub-txns of a
multi, each an object with `type`, `typeCode` and its fields). Session ids, cxids, zxids and
digests are hex strings (64-bit values do not survive JSON parsers that use doubles). `data`
is the UTF-8 text when it decodes and is printable (`dataEncoding` "utf-8"), else base64
(`dataEncoding` "base64"; the human form prints hex as `#<hex>`), null for null data.

Snapshot, human: the header, every znode in file order (path, stat fields, ACL index and
list, data length and with `--data` the data), the sessions with their ephemeral counts, the
ACL cache, the digest section (and the digest recomputed from the tree) and the 3.9
lastProcessedZxid trailer.

Snapshot, JSON: one document::

    {"format": "zookapter-snapshot", "formatVersion": 1, "file": "...",
     "header": {"magic": "ZKSN", "version": 2, "dbid": -1}, "zxid": "0x..",
     "nodes": [{"path": "/", "czxid": "0x0", "mzxid": "0x0", "pzxid": "0x..",
                "ctime": 0, "mtime": 0, "version": 0, "cversion": 1, "aversion": 0,
                "ephemeralOwner": "0x0", "aclIndex": -1, "dataLength": 0,
                ["data": ..., "dataEncoding": ...]}, ...],
     "sessions": [{"id": "0x..", "timeout": 30000, "ephemeralCount": 1}, ...],
     "acls": [{"index": 1, "acl": [{"perms": 31, ...}]}, ...],
     "digest": {"zxid": "0x..", "version": 2, "value": "0x..", "computed": "0x..",
                "verified": true, "empty": false} | null,
     "lastProcessedZxid": "0x.." | null}

`ctime`/`mtime` are epoch milliseconds; `data` is only present with `--data`. `verified` is
true/false when the digest's zxid is the snapshot's own (exact snapshot), null otherwise: for
the empty digest (zxid 0, digest 0: none recorded; `empty` is true) and for a fuzzy snapshot,
whose digest is for a later zxid and can only be checked while replaying the log.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..protocol.consts import CONTAINER_EPHEMERAL_OWNER, Err, Op
from ..protocol.jute import JuteError, Reader
from ..protocol.records import ACL, read_acls
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
    TxnRecord,
)
from ..server.datatree import is_ttl_owner
from .digest import DIGEST_VERSION, tree_digest
from .files import FILE_HEADER, SNAPSHOT_PREFIX, zxid_from_name
from .snapshot import STAT_PERSISTED, Snapshot, parse_snapshot, read_snapshot_bytes
from .txnlog import Digest, LogEntry

# ZooKeeper's names for txn types (Request.op2String).
OP_NAMES: dict[int, str] = {
    Op.NOTIFICATION: "notification", Op.CREATE: "create", Op.DELETE: "delete",
    Op.EXISTS: "exists", Op.GET_DATA: "getData", Op.SET_DATA: "setData",
    Op.GET_ACL: "getACL", Op.SET_ACL: "setACL", Op.GET_CHILDREN: "getChildren",
    Op.SYNC: "sync", Op.PING: "ping", Op.GET_CHILDREN2: "getChildren2", Op.CHECK: "check",
    Op.MULTI: "multi", Op.CREATE2: "create2", Op.RECONFIG: "reconfig",
    Op.CHECK_WATCHES: "checkWatches", Op.REMOVE_WATCHES: "removeWatches",
    Op.CREATE_CONTAINER: "createContainer", Op.DELETE_CONTAINER: "deleteContainer",
    Op.CREATE_TTL: "createTtl", Op.MULTI_READ: "multiRead", Op.AUTH: "auth",
    Op.SET_WATCHES: "setWatches", Op.SET_WATCHES2: "setWatches2", Op.SASL: "sasl",
    Op.GET_EPHEMERALS: "getEphemerals", Op.GET_ALL_CHILDREN_NUMBER: "getAllChildrenNumber",
    Op.CREATE_SESSION: "createSession", Op.CLOSE_SESSION: "closeSession", Op.ERROR: "error",
    Op.WHO_AM_I: "whoAmI",
}
_PERM_LETTERS = ((4, "c"), (8, "d"), (1, "r"), (2, "w"), (16, "a"))  # zkCli's order
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


def op_name(typ: int) -> str:
    return OP_NAMES.get(typ, f"unknown({typ})")


def hex64(v: int) -> str:
    return f"0x{v & _MASK64:x}"


def hex32(v: int) -> str:
    return f"0x{v & _MASK32:x}"


def iso_time(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (`...T10:00:00.123Z`)."""
    try:
        t = _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{ms}"
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def perms_text(perms: int) -> str:
    return "".join(ch for bit, ch in _PERM_LETTERS if perms & bit)


def acl_json(acls: tuple[ACL, ...] | list[ACL] | None) -> list[dict[str, Any]] | None:
    if acls is None:
        return None
    return [{"perms": a.perms, "permsText": perms_text(a.perms), "scheme": a.id.scheme,
             "id": a.id.id} for a in acls]


def acl_text(acls: tuple[ACL, ...] | list[ACL] | None) -> str:
    if acls is None:
        return "null"
    return "[" + ",".join(f"{a.id.scheme}:{a.id.id}:{perms_text(a.perms)}" for a in acls) + "]"


def _printable_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\n\r\t" for c in text):
        return text
    return None


def data_json(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {"data": None}
    text = _printable_text(data)
    if text is not None:
        return {"data": text, "dataEncoding": "utf-8"}
    return {"data": base64.b64encode(data).decode("ascii"), "dataEncoding": "base64"}


def data_text(data: bytes | None) -> str:
    """Printable UTF-8 as a JSON-quoted string, anything else as `#<hex>`."""
    if data is None:
        return "null"
    text = _printable_text(data)
    if text is not None:
        return json.dumps(text, ensure_ascii=False)
    return "#" + data.hex()


def _owner_note(owner: int) -> str:
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return " (container)"
    if is_ttl_owner(owner):
        return f" (ttl {owner & 0xFFFFFFFFFF} ms)"
    return ""


# --- txn logs --------------------------------------------------------------------------------

def record_fields(typ: int, rec: TxnRecord) -> dict[str, Any]:
    """A txn record's fields as JSON-ready values (see the module docstring)."""
    out: dict[str, Any] = {}
    if isinstance(rec, CreateSessionTxn):
        out["timeout"] = rec.timeOut
    elif isinstance(rec, CloseSessionTxn):
        if rec.paths2Delete is not None:
            out["paths2Delete"] = list(rec.paths2Delete)
    elif isinstance(rec, CreateTxn):
        out["path"] = rec.path
        out.update(data_json(rec.data))
        out["acl"] = acl_json(rec.acl)
        if typ in (Op.CREATE, Op.CREATE2):
            out["ephemeral"] = rec.ephemeral
        out["parentCVersion"] = rec.parentCVersion
        if typ == Op.CREATE_TTL:
            out["ttl"] = rec.ttl
    elif isinstance(rec, DeleteTxn):
        out["path"] = rec.path
    elif isinstance(rec, SetDataTxn):
        out["path"] = rec.path
        out.update(data_json(rec.data))
        out["version"] = rec.version
    elif isinstance(rec, SetACLTxn):
        out["path"] = rec.path
        out["acl"] = acl_json(rec.acl)
        out["version"] = rec.version
    elif isinstance(rec, CheckVersionTxn):
        out["path"] = rec.path
        out["version"] = rec.version
    elif isinstance(rec, ErrorTxn):
        out["err"] = rec.err
        try:
            out["errName"] = Err(rec.err).name
        except ValueError:
            pass
    elif isinstance(rec, MultiTxn):
        out["txns"] = [{"type": op_name(t), "typeCode": t, **record_fields(t, r)}
                       for t, r in rec.txns]
    return out


def txn_json(txn: Txn, digest: Digest | None = None, file: Path | None = None,
             offset: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "time": iso_time(txn.time), "timeMs": txn.time, "session": hex64(txn.session_id),
        "cxid": hex32(txn.cxid), "zxid": hex64(txn.zxid), "type": op_name(txn.type),
        "typeCode": txn.type,
    }
    out.update(record_fields(txn.type, txn.record))
    if digest is not None:
        out["digest"] = {"version": digest[0], "value": hex64(digest[1])}
    if file is not None:
        out["file"] = file.name
    if offset is not None:
        out["offset"] = offset
    return out


def _fields_text(typ: int, rec: TxnRecord) -> str:
    parts = []
    fields = record_fields(typ, rec)
    for key, value in fields.items():
        if key in ("dataEncoding", "errName"):
            continue
        if key == "data":
            value = data_text(getattr(rec, "data", None))
        elif key == "acl":
            value = acl_text(getattr(rec, "acl", None))
        elif key == "err":
            name = fields.get("errName")
            value = f"{value}({name})" if name else str(value)
        elif key == "txns":
            assert isinstance(rec, MultiTxn)
            value = "[" + "; ".join(
                f"{op_name(t)} {_fields_text(t, r)}".rstrip() for t, r in rec.txns) + "]"
        elif key == "paths2Delete":
            value = "[" + ",".join(value) + "]"
        elif isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def txn_text(txn: Txn, digest: Digest | None = None) -> str:
    """One TxnLogToolkit-style line."""
    line = (f"{iso_time(txn.time)} session {hex64(txn.session_id)} cxid {hex32(txn.cxid)} "
            f"zxid {hex64(txn.zxid)} {op_name(txn.type)}")
    fields = _fields_text(txn.type, txn.record)
    if fields:
        line += " " + fields
    if digest is not None:
        line += f" digest={hex64(digest[1])}"
        if digest[0] != DIGEST_VERSION:
            line += f"(v{digest[0]})"
    return line


def entry_json(entry: LogEntry) -> dict[str, Any]:
    return txn_json(entry.txn, entry.digest, entry.file, entry.offset)


def log_file_header(path: Path) -> tuple[int, int, int] | None:
    """(magic, version, dbid) of a log file, None when shorter than a header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(FILE_HEADER.size)
    except OSError:
        return None
    if len(head) < FILE_HEADER.size:
        return None
    magic, version, dbid = FILE_HEADER.unpack(head)
    return magic, version, dbid


# --- snapshots -------------------------------------------------------------------------------

class RawNode(NamedTuple):
    """A znode exactly as stored in a snapshot."""
    path: str
    data: bytes | None
    acl_index: int
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    pzxid: int


def scan_snapshot_nodes(buf: bytes) -> Iterator[RawNode]:
    """The node records of (uncompressed) snapshot bytes in file order, with their stored ACL
    index and unmodified data. No checksum is verified: `parse_snapshot` does that."""
    r = Reader(buf, max_len=1 << 31)
    r.pos = FILE_HEADER.size
    for _ in range(r.int()):
        r.long()
        r.int()
    for _ in range(r.int()):
        r.long()
        read_acls(r)
    size = STAT_PERSISTED.size
    while True:
        path = r.ustring()
        if path == "/" or path is None:
            return
        data = r.buffer()
        idx = r.long()
        r._need(size)
        stat = STAT_PERSISTED.unpack_from(buf, r.pos)
        r.pos += size
        yield RawNode(path or "/", data, idx, *stat)


class SnapshotView(NamedTuple):
    path: Path
    header: tuple[int, int, int]
    snapshot: Snapshot
    nodes: list[RawNode]


def load_snapshot_view(path: str | os.PathLike[str]) -> SnapshotView:
    """Parse and verify a snapshot file (raises SnapshotError) and keep its raw nodes."""
    p = Path(path)
    buf = read_snapshot_bytes(p)
    snap = parse_snapshot(buf, zxid_from_name(p.name, SNAPSHOT_PREFIX))
    header = FILE_HEADER.unpack_from(buf, 0)
    try:
        nodes = list(scan_snapshot_nodes(buf))
    except JuteError as e:  # parse_snapshot has already accepted the bytes
        raise ValueError(f"{p}: {e}") from e
    return SnapshotView(p, header, snap, nodes)


def _ephemeral_counts(view: SnapshotView) -> dict[int, int]:
    counts: dict[int, int] = {}
    for n in view.nodes:
        if n.ephemeral_owner in view.snapshot.sessions:
            counts[n.ephemeral_owner] = counts.get(n.ephemeral_owner, 0) + 1
    return counts


def _digest_info(view: SnapshotView) -> dict[str, Any] | None:
    d = view.snapshot.info.digest
    if d is None:
        return None
    computed = tree_digest(view.snapshot.tree)
    empty = d.zxid == 0 and d.digest == 0  # ZooKeeper's "no digest recorded"
    exact = not empty and d.zxid == view.snapshot.info.zxid and d.version == DIGEST_VERSION
    return {"zxid": hex64(d.zxid), "version": d.version, "value": hex64(d.digest),
            "computed": hex64(computed), "verified": (computed == d.digest) if exact else None,
            "empty": empty}


def _magic_text(magic: int) -> str:
    raw = magic.to_bytes(4, "big", signed=True)
    return raw.decode("latin-1") if all(32 <= b < 127 for b in raw) else hex32(magic)


def snapshot_json(view: SnapshotView, with_data: bool = False) -> dict[str, Any]:
    snap, info = view.snapshot, view.snapshot.info
    magic, version, dbid = view.header
    nodes = []
    for n in view.nodes:
        item: dict[str, Any] = {
            "path": n.path, "czxid": hex64(n.czxid), "mzxid": hex64(n.mzxid),
            "pzxid": hex64(n.pzxid), "ctime": n.ctime, "mtime": n.mtime,
            "version": n.version, "cversion": n.cversion, "aversion": n.aversion,
            "ephemeralOwner": hex64(n.ephemeral_owner), "aclIndex": n.acl_index,
            "dataLength": 0 if n.data is None else len(n.data)}
        if with_data:
            item.update(data_json(n.data))
        nodes.append(item)
    eph = _ephemeral_counts(view)
    return {
        "format": "zookapter-snapshot", "formatVersion": 1, "file": str(view.path),
        "header": {"magic": _magic_text(magic), "version": version, "dbid": dbid},
        "zxid": None if info.zxid is None else hex64(info.zxid),
        "nodes": nodes,
        "sessions": [{"id": hex64(sid), "timeout": t, "ephemeralCount": eph.get(sid, 0)}
                     for sid, t in snap.sessions.items()],
        "acls": [{"index": idx, "acl": acl_json(acls)}
                 for idx, acls in sorted(info.acl_cache.items())],
        "digest": _digest_info(view),
        "lastProcessedZxid": (None if info.last_processed_zxid is None
                              else hex64(info.last_processed_zxid)),
    }


def snapshot_text(view: SnapshotView, with_data: bool = False) -> Iterator[str]:
    """SnapshotFormatter-style report, line by line."""
    snap, info = view.snapshot, view.snapshot.info
    magic, version, dbid = view.header
    cache = info.acl_cache
    zxid = "unknown" if info.zxid is None else hex64(info.zxid)
    yield (f"ZooKeeper snapshot {view.path.name} (magic {_magic_text(magic)}, format version "
           f"{version}, dbid {dbid}), zxid {zxid}")
    yield f"ZNode Details (count={len(view.nodes)}):"
    for n in view.nodes:
        yield "----"
        yield n.path
        yield f"  cZxid = {hex64(n.czxid)}"
        yield f"  ctime = {iso_time(n.ctime)}"
        yield f"  mZxid = {hex64(n.mzxid)}"
        yield f"  mtime = {iso_time(n.mtime)}"
        yield f"  pZxid = {hex64(n.pzxid)}"
        yield f"  cversion = {n.cversion}"
        yield f"  dataVersion = {n.version}"
        yield f"  aclVersion = {n.aversion}"
        yield f"  ephemeralOwner = {hex64(n.ephemeral_owner)}{_owner_note(n.ephemeral_owner)}"
        try:
            acl = acl_text(cache.lookup(n.acl_index))
        except OSError:
            acl = "(missing from the ACL cache)"
        yield f"  acl = {n.acl_index} {acl}"
        yield f"  dataLength = {0 if n.data is None else len(n.data)}"
        if with_data:
            yield f"  data = {data_text(n.data)}"
    yield "----"
    eph = _ephemeral_counts(view)
    yield "Session Details (sid, timeout, ephemeralCount):"
    for sid, timeout in snap.sessions.items():
        yield f"{hex64(sid)}, {timeout}, {eph.get(sid, 0)}"
    yield "----"
    yield f"ACL cache (count={len(cache)}; index -1 is OPEN_ACL_UNSAFE of the system nodes):"
    for idx, acls in sorted(cache.items()):
        yield f"{idx}: {acl_text(acls)}"
    yield "----"
    d = _digest_info(view)
    if d is None:
        yield "Digest: none (no digest section)"
    else:
        if d["empty"]:
            check = "the empty digest (none recorded)"
        else:
            check = {True: "verified", False: "MISMATCH",
                     None: "not checkable here (a fuzzy snapshot's digest is checked during "
                           "log replay)"}[d["verified"]]
        yield (f"Digest: zxid {d['zxid']}, version {d['version']}, digest {d['value']}; "
               f"computed {d['computed']}: {check}")
    lpz = info.last_processed_zxid
    yield f"Last processed zxid: {'none' if lpz is None else hex64(lpz)}"

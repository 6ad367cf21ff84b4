"""Startup recovery: newest loadable snapshot + replay of the txn logs after it.

What ZooKeeper's FileTxnSnapLog.restore does:

- load the newest snapshot that parses (up to 100 tried); its zxid is the one in its name;
- replay every logged txn with zxid > that, in order; createSession adds the session (with
  its timeout), closeSession removes it; failures (NoNode/NodeExists, possible because a
  snapshot is fuzzy) are ignored, which `DataTree.apply` already does -- with one partial
  effect kept (`replay_txn`): a delete whose node is already gone still raises the parent's
  pzxid to the txn's zxid, as ZooKeeper's deleteNode does before it finds the node missing
  (the snapshot may hold the parent as it was before the delete but not the deleted child);
- digests: the snapshot's digest section names a zxid; once replay reaches it the tree digest
  must equal it (earlier, the tree is still "fuzzy" and nothing is compared); after that every
  txn's logged digest must equal the tree digest after applying it. Mismatches are reported,
  not fatal (as in ZooKeeper).

With no snapshot at all, replay starts from an empty tree (ZooKeeper then refuses to start
only if logs exist without any snapshot *and* zookeeper.snapshot.trust.empty is false; that
policy is the caller's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..protocol.consts import Op
from ..protocol.txns import CloseSessionTxn, CreateSessionTxn, DeleteTxn, MultiTxn, Txn
from ..server.datatree import ApplyResult, DataTree
from .digest import DIGEST_VERSION, TreeDigest
from .snapshot import AclCache, load_newest_snapshot
from .txnlog import iter_log


def _deleted_paths(tree: DataTree, txn: Txn) -> list[str]:
    typ, rec = txn.type, txn.record
    if typ in (Op.DELETE, Op.DELETE_CONTAINER) and isinstance(rec, DeleteTxn):
        return [rec.path]
    if typ == Op.CLOSE_SESSION:
        if isinstance(rec, CloseSessionTxn) and rec.paths2Delete is not None:
            return list(rec.paths2Delete)
        return []
    if typ == Op.MULTI and isinstance(rec, MultiTxn):
        if any(t == Op.ERROR for t, _ in rec.txns):
            return []  # a failed multi changes nothing
        return [sub.path for t, sub in rec.txns
                if t in (Op.DELETE, Op.DELETE_CONTAINER) and isinstance(sub, DeleteTxn)]
    return []


def replay_txn(tree: DataTree, txn: Txn, digest: TreeDigest | None = None) -> ApplyResult:
    """Apply a txn read back from the log, with ZooKeeper's replay semantics (see above),
    keeping `digest` (if given) in step."""
    for path in _deleted_paths(tree, txn):
        if path in tree.nodes:
            continue
        i = path.rfind("/")
        parent_path = "/" if i <= 0 else path[:i]
        parent = tree.nodes.get(parent_path)
        if parent is None or txn.zxid <= parent.pzxid:
            continue
        if digest is not None:
            digest.remove(parent_path, parent)
        parent.pzxid = txn.zxid
        parent._stat_bytes = None
        if digest is not None:
            digest.add(parent_path, parent)
    return digest.apply(tree, txn) if digest is not None else tree.apply(txn)


@dataclass
class LoadedDatabase:
    tree: DataTree
    sessions: dict[int, int]  # session id -> timeout ms
    last_zxid: int  # highest zxid applied (snapshot's if no txn followed)
    digest: TreeDigest  # kept in step with `tree`
    acl_cache: AclCache
    snapshot: Path | None  # the snapshot loaded
    snapshot_zxid: int  # its zxid (0 with no snapshot)
    txns_replayed: int = 0
    torn: tuple[Path, int] | None = None  # torn tail of the last log (truncate before appending)
    last_log: tuple[Path, int] | None = None  # (file, end offset) of the last log read
    digest_mismatches: list[int] = field(default_factory=list)  # zxids


def load_database(snap_dir: str | os.PathLike[str],
                  log_dir: str | os.PathLike[str] | None = None) -> LoadedDatabase:
    """Rebuild the database from `snap_dir` (snapshots) and `log_dir` (logs; default the same
    directory). Both are the `version-2` directories."""
    log_dir = snap_dir if log_dir is None else log_dir
    loaded = load_newest_snapshot(snap_dir)
    if loaded is None:
        tree, sessions, cache, snap_path, snap_zxid, pending = (
            DataTree(), {}, AclCache(), None, 0, None)
    else:
        snap_path, snap = loaded
        tree, sessions, cache = snap.tree, dict(snap.sessions), snap.info.acl_cache
        snap_zxid = tree.last_processed_zxid
        d = snap.info.digest
        # A digest for a zxid before the snapshot's cannot be checked (ZooKeeper drops it).
        pending = d if d is not None and d.zxid > 0 and d.zxid >= snap_zxid else None
    digest = TreeDigest(tree)
    db = LoadedDatabase(tree, sessions, snap_zxid, digest, cache, snap_path, snap_zxid)

    def check_snapshot_digest(zxid: int) -> None:
        nonlocal pending
        if pending is not None and zxid == pending.zxid:
            if pending.version == DIGEST_VERSION and digest.value != pending.digest:
                db.digest_mismatches.append(zxid)
            pending = None

    check_snapshot_digest(snap_zxid)
    it = iter_log(log_dir, snap_zxid + 1)
    for entry in it:
        txn = entry.txn
        if txn.type == Op.CREATE_SESSION and isinstance(txn.record, CreateSessionTxn):
            sessions[txn.session_id] = txn.record.timeOut
        elif txn.type == Op.CLOSE_SESSION:
            sessions.pop(txn.session_id, None)
        replay_txn(tree, txn, digest)
        db.txns_replayed += 1
        db.last_zxid = max(db.last_zxid, txn.zxid)
        if pending is not None:
            check_snapshot_digest(txn.zxid)
        if (pending is None and entry.digest is not None
                and entry.digest[0] == DIGEST_VERSION and entry.digest[1] != digest.value
                and txn.zxid not in db.digest_mismatches[-1:]):
            db.digest_mismatches.append(txn.zxid)
    db.torn = it.torn
    db.last_log = it.end
    return db

"""The server's durable database: recovery at start, the txn log, and snapshots.

Mirrors ZooKeeper's ZKDatabase + FileTxnSnapLog: at start the newest valid snapshot is loaded
and the logs after it replayed (a torn last record is cut off with a warning; corruption
elsewhere stops the start naming file and offset), then a snapshot of the recovered state is
taken, as ZooKeeper does. Afterwards every `snapCount/2 + random(snapCount/2)` logged txns the
log is rolled and a fuzzy snapshot written: serialized on the event loop (the tree is not
thread-safe) a few hundred nodes at a time (a few ms of loop time: 5,000 at a time stalled an
ensemble's writes for ~30 ms, its p99), while writes go on, then written and fsynced in a
worker thread; replay from its zxid repairs what changed during serialization.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path

from ..server.datatree import DataTree
from .digest import DIGEST_VERSION, tree_digest
from .files import snapshot_name
from .persister import TxnLogPersister
from .recovery import LoadedDatabase, load_database
from .snapshot import (
    AclCache,
    ZxidDigest,
    serialize_fuzzy,
    serialize_snapshot,
    write_snapshot_bytes,
)
from .txnlog import truncate_torn_tail

log = logging.getLogger("zookapter.storage")

VERSION_DIR = "version-2"


class Database:
    def __init__(self, data_dir: str, data_log_dir: str | None, snap_count: int = 100000,
                 force_sync: bool = True, prealloc_size_kb: int = 65536,
                 rng: random.Random | None = None, snapshot_chunk: int = 500) -> None:
        self.snap_dir = os.path.join(data_dir, VERSION_DIR)
        self.log_dir = os.path.join(data_log_dir or data_dir, VERSION_DIR)
        self.snap_count = max(snap_count, 2)
        self.force_sync = force_sync
        self.prealloc_size = prealloc_size_kb * 1024
        self.rng = rng or random.Random()
        self.persister: TxnLogPersister | None = None
        self.loaded: LoadedDatabase | None = None
        self._since_snapshot = 0
        self._next_snapshot_at = self._roll_point()
        self._snapshot_running = False
        self.snapshot_chunk = snapshot_chunk

    def _roll_point(self) -> int:
        half = self.snap_count // 2
        return half + self.rng.randrange(max(half, 1))

    def load(self) -> LoadedDatabase:
        os.makedirs(self.snap_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        db = load_database(self.snap_dir, self.log_dir)
        if db.torn is not None:
            path, offset = db.torn
            log.warning("truncating a torn last record of %s at offset %d", path, offset)
            truncate_torn_tail(path, offset)
        if db.digest_mismatches:
            log.warning("tree digest mismatch after txns %s",
                        ", ".join(f"0x{z:x}" for z in db.digest_mismatches[:5]))
        log.info("loaded %s (zxid 0x%x) and replayed %d txns: last zxid 0x%x, %d sessions",
                 db.snapshot or "no snapshot", db.snapshot_zxid, db.txns_replayed, db.last_zxid,
                 len(db.sessions))
        self.loaded = db
        return db

    def open_log(self, loop: asyncio.AbstractEventLoop,
                 on_fatal: Callable[[BaseException], None] | None = None) -> TxnLogPersister:
        self.persister = TxnLogPersister(self.log_dir, loop, self.force_sync, self.prealloc_size,
                                         on_fatal)
        return self.persister

    def snapshot_sync(self, tree: DataTree, sessions: dict[int, int]) -> Path:
        """Write a snapshot of the current state now (blocking; used at start)."""
        data = self._serialize(tree, sessions)
        path = Path(self.snap_dir) / snapshot_name(tree.last_processed_zxid)
        write_snapshot_bytes(path, data, fsync=self.force_sync)
        log.info("Snapshotting: 0x%x to %s", tree.last_processed_zxid, path)
        return path

    def _serialize(self, tree: DataTree, sessions: dict[int, int]) -> bytes:
        acl_cache = self.loaded.acl_cache if self.loaded is not None else None
        # The snapshot is exact (taken between applies), so its digest section can name its
        # own zxid and Java servers loading it verify the tree.
        digest = ZxidDigest(tree.last_processed_zxid, DIGEST_VERSION, tree_digest(tree))
        return serialize_snapshot(tree, sessions, digest, acl_cache=acl_cache)

    def logged(self, n: int, tree: DataTree, sessions: Callable[[], dict[int, int]],
               loop: asyncio.AbstractEventLoop,
               digest: Callable[[], tuple[int, int] | None] | None = None) -> None:
        """Count logged txns; past the randomised snapCount, roll the log and snapshot.
        `digest()`: (zxid, tree digest after it) of the newest applied txn, for the fuzzy
        snapshot's digest section."""
        self._since_snapshot += n
        if self._since_snapshot < self._next_snapshot_at or self._snapshot_running:
            return
        self._since_snapshot = 0
        self._next_snapshot_at = self._roll_point()
        if self.persister is not None:
            self.persister.roll()
        zxid = tree.last_processed_zxid
        path = Path(self.snap_dir) / snapshot_name(zxid)
        self._snapshot_running = True
        task = loop.create_task(self._fuzzy_snapshot(tree, sessions(), zxid, path, loop,
                                                     digest))
        task.add_done_callback(self._snapshot_done)

    async def _fuzzy_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int,
                              path: Path, loop: asyncio.AbstractEventLoop,
                              digest: Callable[[], tuple[int, int] | None] | None = None
                              ) -> None:
        """Serialize in chunks between which the loop keeps applying txns (ZooKeeper's fuzzy
        snapshot), then write and fsync the file in a worker thread."""
        acl_cache = self.loaded.acl_cache if self.loaded is not None else AclCache()
        data = b""
        for item in serialize_fuzzy(tree, sessions, acl_cache, self.snapshot_chunk, digest):
            if item is None:
                await asyncio.sleep(0)
            else:
                data = item
        await loop.run_in_executor(None, write_snapshot_bytes, path, data, self.force_sync)
        log.info("Snapshotting: 0x%x to %s", zxid, path)

    def _snapshot_done(self, task: asyncio.Task) -> None:
        self._snapshot_running = False
        if not task.cancelled() and task.exception() is not None:
            log.error("snapshot failed: %s", task.exception())

    def close(self) -> None:
        if self.persister is not None:
            self.persister.close()
            self.persister = None

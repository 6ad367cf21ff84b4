"""The quorum shell's disk side (shell.py's `QuorumServer` inherits it): what the core's
disk actions do to the data directory -- PersistEpoch, Truncate (TRUNC), LoadSnapshot (SNAP)
-- and the ZabHost queries answered from it (the recent txns and a txn-log range for DIFF
syncs, the snapshot size that decides between DIFF and SNAP)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path

from ..server.datatree import DataTree
from ..storage.database import Database
from ..storage.epochs import ACCEPTED_EPOCH, CURRENT_EPOCH, write_epoch
from ..storage.files import LOG_PREFIX, SNAPSHOT_PREFIX, zxid_from_name
from ..storage.persister import TxnLogPersister
from ..storage.recovery import LoadedDatabase
from ..storage.snapshot import find_snapshots, parse_wire_snapshot
from ..storage.txnlog import iter_log, log_files, truncate_log
from .zab_events import LoadSnapshot, PersistEpoch, Proposal

log = logging.getLogger("zookapter.quorum")

RECENT_TXNS = 500  # committed txns handed to the core for DIFF syncs (commitLogCount)


class DiskActions:
    """Mixed into QuorumServer, whose state these read and replace."""

    database: Database | None
    persister: TxnLogPersister | None
    tree: DataTree
    sessions: dict[int, int]
    stopped: asyncio.Event
    _loop: asyncio.AbstractEventLoop | None
    _log_holds_from: int

    def _fatal(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _state_replaced(self) -> None:
        raise NotImplementedError

    def _recent_proposals(self, snapshot_zxid: int) -> list[Proposal]:
        """The last committed txns from the log, for DIFF syncs without reading the disk."""
        assert self.database is not None
        recent: deque[Proposal] = deque(maxlen=RECENT_TXNS)
        for entry in iter_log(self.database.log_dir, snapshot_zxid + 1):
            if entry.digest is not None:
                entry.txn.digest = entry.digest[1]
            recent.append(Proposal.of(entry.txn))
        return list(recent)

    def snapshot_size(self) -> int:
        assert self.database is not None
        snaps = find_snapshots(self.database.snap_dir, 1)
        return snaps[0].stat().st_size if snaps else 0

    def _note_log_hole(self, loaded: LoadedDatabase) -> None:
        """A leader applies what its followers acknowledged before its own log write is
        durable, so a snapshot can hold txns a crash took from the log: when the log has
        nothing from the snapshot's zxid on, it may have a hole before it, and a txn-log
        DIFF must not read across it (found by the simulator; sim/zab_node.py does the
        same)."""
        self._log_holds_from = 0
        if loaded.snapshot is not None and self.database is not None:
            if next(iter(iter_log(self.database.log_dir, loaded.snapshot_zxid)), None) is None:
                self._log_holds_from = loaded.snapshot_zxid

    def read_log(self, start_zxid: int, end_zxid: int, size_limit: int) -> list[Proposal]:
        assert self.database is not None
        if start_zxid < self._log_holds_from:
            return []
        files = log_files(self.database.log_dir, start_zxid)
        if size_limit > 0 and sum(f.stat().st_size for f in files) > size_limit:
            return []
        out: list[Proposal] = []
        for entry in iter_log(self.database.log_dir, start_zxid):
            if not out and entry.txn.zxid != start_zxid:
                return []
            if entry.txn.zxid > end_zxid:
                break
            if entry.digest is not None:
                entry.txn.digest = entry.digest[1]
            out.append(Proposal.of(entry.txn))
        return out

    def _persist_epoch(self, a: PersistEpoch) -> None:
        assert self.database is not None
        d = self.database.snap_dir
        if a.accepted is not None:
            write_epoch(d, ACCEPTED_EPOCH, a.accepted)
        if a.current is not None:
            write_epoch(d, CURRENT_EPOCH, a.current)

    def _reopen_log(self) -> None:
        assert self.database is not None and self._loop is not None
        if self.persister is not None:
            self.persister.close()
        self.persister = self.database.open_log(self._loop, self._fatal)
        self.persister.coalesce = True

    def _truncate(self, zxid: int) -> None:
        """TRUNC: drop the txns after `zxid` and reload the state from disk."""
        assert self.database is not None
        if self.persister is not None:
            self.persister.close()
            self.persister = None
        # Snapshots stay (see zab_events.Truncate): one labelled with an epoch start above
        # `zxid` holds exactly the history up to it.
        if not truncate_log(self.database.log_dir, zxid):
            snaps = find_snapshots(self.database.snap_dir, 1)
            if not snaps or _snapshot_zxid(snaps[0]) < zxid:
                log.critical("cannot truncate to 0x%x: neither log nor snapshot reaches it",
                             zxid)
                self.stopped.set()
                return
            for f in log_files(self.database.log_dir, -(1 << 63)):
                if _log_zxid(f) > zxid:
                    f.unlink()
        loaded = self.database.load()
        self._note_log_hole(loaded)
        self.tree, self.sessions = loaded.tree, dict(loaded.sessions)
        self._state_replaced()

    def _load_snapshot(self, a: LoadSnapshot) -> None:
        """SNAP: the leader's state replaces ours; our later history is dropped."""
        assert self.database is not None
        tree, sessions, _ = parse_wire_snapshot(a.body, signed=False)
        tree.last_processed_zxid = a.zxid
        self.tree, self.sessions = tree, sessions
        if self.persister is not None:
            self.persister.close()
            self.persister = None
        for snap in find_snapshots(self.database.snap_dir):
            if _snapshot_zxid(snap) > a.zxid:
                snap.unlink()
        # The new state is on disk before the old log goes, so no crash leaves neither.
        self.database.snapshot_sync(tree, dict(sessions))
        # The whole log goes (zab_events.LoadSnapshot): its txns are in the snapshot or from
        # a history the leader does not have, and read_log must only find the leader's.
        for f in log_files(self.database.log_dir, -(1 << 63)):
            f.unlink()
        self._log_holds_from = 0
        self._state_replaced()
        log.info("loaded the leader's snapshot at zxid 0x%x", a.zxid)


def _log_zxid(path: Path) -> int:
    return _zxid_or_minus_one(path, LOG_PREFIX)


def _snapshot_zxid(path: Path) -> int:
    return _zxid_or_minus_one(path, SNAPSHOT_PREFIX)


def _zxid_or_minus_one(path: Path, prefix: str) -> int:
    zxid = zxid_from_name(path.name, prefix)
    return -1 if zxid is None else zxid

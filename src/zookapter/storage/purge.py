"""Purging old snapshots and txn logs: ZooKeeper's PurgeTxnLog (zkCleanup.sh, autopurge).

The rule, as in ZooKeeper:

- take the `retain` newest snapshots that pass the quick validity check (`retain` >= 3);
  the oldest of them, snapshot.X, is the oldest state that must stay recoverable;
- a snapshot or log file whose name zxid is < X is deleted, except the log files needed to
  replay from snapshot.X: the newest log whose start zxid is <= X (it may hold txns after X)
  and every newer log;
- files with a zxid >= X are never touched (nor are other files in the directories); with no
  valid snapshot at all nothing is deleted.

Snapshots live in `<dataDir>/version-2`, logs in `<dataLogDir>/version-2` (the same directory
when there is no separate dataLogDir). `plan_purge` only reads the directory listings;
`purge` deletes what the plan names. Both are synchronous (the server runs them in a worker
thread). A snapshot being written while the purge runs is newer than anything deleted, and
so is the log being appended to.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .files import LOG_PREFIX, SNAPSHOT_PREFIX, fsync_dir, sorted_files, version_dir
from .snapshot import is_valid_snapshot

log = logging.getLogger("zookapter.storage")

MIN_SNAP_RETAIN_COUNT = 3


@dataclass
class PurgePlan:
    snap_dir: Path
    log_dir: Path
    retained_snapshots: list[Path]  # the valid snapshots kept, newest first
    oldest_retained_zxid: int | None  # None: no valid snapshot, nothing is deleted
    delete_snapshots: list[Path] = field(default_factory=list)  # oldest first
    delete_logs: list[Path] = field(default_factory=list)  # oldest first
    kept_logs: list[Path] = field(default_factory=list)  # oldest first


@dataclass
class PurgeResult:
    plan: PurgePlan
    deleted_snapshots: list[Path] = field(default_factory=list)
    deleted_logs: list[Path] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)  # files that could not go

    @property
    def deleted(self) -> list[Path]:
        return self.deleted_snapshots + self.deleted_logs


def select_for_purge(snapshots: list[tuple[int, Path, bool]], logs: list[tuple[int, Path]],
                     retain: int) -> tuple[list[Path], int | None, list[Path], list[Path]]:
    """The pure part of the rule. `snapshots` is (zxid, path, valid), `logs` (zxid, path).
    Returns (retained valid snapshots newest first, oldest retained zxid or None,
    snapshots to delete, logs to delete), the deletions oldest first."""
    if retain < MIN_SNAP_RETAIN_COUNT:
        raise ValueError(f"count should be greater than or equal to {MIN_SNAP_RETAIN_COUNT}")
    newest_first = sorted(snapshots, key=lambda t: (t[0], t[1].name), reverse=True)
    retained = [(z, p) for z, p, valid in newest_first if valid][:retain]
    if not retained:
        return [], None, [], []
    least = retained[-1][0]
    logs_sorted = sorted(logs, key=lambda t: (t[0], t[1].name))
    # The newest log starting at or before `least` may hold txns after it: keep it.
    needed_from = None
    for z, p in logs_sorted:
        if z <= least:
            needed_from = p
    needed_seen = needed_from is None
    drop_logs = []
    for z, p in logs_sorted:
        if p == needed_from:
            needed_seen = True
        if not needed_seen and z < least:
            drop_logs.append(p)
    drop_snaps = [p for z, p, _valid in reversed(newest_first) if z < least]
    return [p for _z, p in retained], least, drop_snaps, drop_logs


def plan_purge(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None,
               retain: int = MIN_SNAP_RETAIN_COUNT) -> PurgePlan:
    """What `purge` would delete (reads the directory listings, changes nothing).
    `data_dir`/`data_log_dir` are zoo.cfg's dataDir/dataLogDir (or their version-2)."""
    snap_dir = version_dir(data_dir)
    log_dir = version_dir(data_log_dir) if data_log_dir is not None else snap_dir
    snaps = [(z, p, is_valid_snapshot(p)) for z, p in sorted_files(snap_dir, SNAPSHOT_PREFIX)]
    logs = sorted_files(log_dir, LOG_PREFIX)
    retained, least, drop_snaps, drop_logs = select_for_purge(snaps, logs, retain)
    dropped = set(drop_logs)
    return PurgePlan(snap_dir, log_dir, retained, least, drop_snaps, drop_logs,
                     [p for _z, p in logs if p not in dropped])


def purge(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None = None,
          retain: int = MIN_SNAP_RETAIN_COUNT, dry_run: bool = False) -> PurgeResult:
    """Keep the `retain` newest snapshots and the logs needed to replay from the oldest of
    them; delete older snapshots and logs. Returns what was deleted (with `dry_run`, what
    would be). A file that cannot be removed is reported in `errors`, not raised."""
    plan = plan_purge(data_dir, data_log_dir, retain)
    result = PurgeResult(plan)
    for paths, done in ((plan.delete_snapshots, result.deleted_snapshots),
                        (plan.delete_logs, result.deleted_logs)):
        for p in paths:
            if dry_run:
                done.append(p)
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                continue  # somebody else purged it
            except OSError as e:
                result.errors.append((p, str(e)))
                log.warning("failed to remove %s: %s", p, e)
                continue
            log.debug("Removing file: %s", p)
            done.append(p)
    if not dry_run and result.deleted:
        fsync_dir(plan.snap_dir)
        if plan.log_dir != plan.snap_dir:
            fsync_dir(plan.log_dir)
    return result

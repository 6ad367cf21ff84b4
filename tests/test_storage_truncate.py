"""truncate_log: what a follower does with its log on TRUNC from the leader."""

from __future__ import annotations

from pathlib import Path

from zookapter.protocol.consts import Op
from zookapter.protocol.txns import SetDataTxn, Txn
from zookapter.storage.txnlog import TxnLogWriter, iter_log, truncate_log


def _write(directory: Path, first: int, last: int) -> None:
    with TxnLogWriter(directory, first) as w:
        for z in range(first, last + 1):
            w.append(Txn(1, z, z, 1000 + z, Op.SET_DATA, SetDataTxn("/a", b"v%d" % z, z)))
        w.flush()


def _zxids(directory: Path) -> list[int]:
    return [e.txn.zxid for e in iter_log(directory)]


def test_truncate_inside_a_file_and_drop_later_files(tmp_path: Path) -> None:
    _write(tmp_path, 1, 10)
    _write(tmp_path, 11, 20)
    assert truncate_log(tmp_path, 7)
    assert _zxids(tmp_path) == list(range(1, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.1"]
    # the log can be appended to again after the cut (a new file, as after any roll)
    _write(tmp_path, 8, 9)
    assert _zxids(tmp_path) == list(range(1, 10))


def test_truncate_at_a_file_boundary_keeps_that_file_whole(tmp_path: Path) -> None:
    _write(tmp_path, 1, 10)
    _write(tmp_path, 11, 20)
    assert truncate_log(tmp_path, 10)
    assert _zxids(tmp_path) == list(range(1, 11))
    assert truncate_log(tmp_path, 10), "truncating again changes nothing"
    assert _zxids(tmp_path) == list(range(1, 11))


def test_nothing_to_keep_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, 5, 9)
    assert not truncate_log(tmp_path, 4)
    assert _zxids(tmp_path) == list(range(5, 10))

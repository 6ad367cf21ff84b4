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


def test_wire_snapshot_round_trip_and_incomplete_input() -> None:
    import pytest

    from zookapter.protocol.jute import JuteError
    from zookapter.protocol.records import ACL, Id
    from zookapter.protocol.txns import CreateTxn
    from zookapter.server.datatree import DataTree
    from zookapter.storage.snapshot import (
        SnapshotError,
        parse_wire_snapshot,
        serialize_wire_snapshot,
    )

    tree = DataTree()
    acl = (ACL(31, Id("world", "anyone")),)
    for z, path in enumerate(["/a", "/a/b", "/c"], start=1):
        tree.apply(Txn(7, z, z, 1000, Op.CREATE, CreateTxn(path, path.encode(), acl, False, 0)))
    wire = serialize_wire_snapshot(tree, {7: 4000})
    got, sessions, end = parse_wire_snapshot(b"head" + wire + b"NEXT", 4)
    assert end == 4 + len(wire) and sessions == {7: 4000}
    assert sorted(got.nodes) == sorted(tree.nodes)
    assert got.get("/a/b").data == b"/a/b" and got.get("/a").children == {"b"}
    for cut in (1, len(wire) // 2, len(wire) - 1):
        with pytest.raises(JuteError):
            parse_wire_snapshot(wire[:cut])
    with pytest.raises(SnapshotError):
        parse_wire_snapshot(wire[:-14] + b"\x00\x00\x00\x0aBenWasHerX")


def test_snapshot_scanner_finds_the_end_whatever_the_chunking() -> None:
    import random

    from zookapter.protocol.records import ACL, Id
    from zookapter.protocol.txns import CreateTxn
    from zookapter.quorum.snapstream import SnapshotScanner
    from zookapter.server.datatree import DataTree
    from zookapter.storage.snapshot import serialize_wire_snapshot

    tree = DataTree()
    acls = [(ACL(31, Id("world", "anyone")),), (ACL(1, Id("digest", "u:x")), ACL(31, Id("ip", "1.2.3.4")))]
    for z in range(1, 200):
        tree.apply(Txn(7, z, z, 1000, Op.CREATE,
                       CreateTxn(f"/n{z}", b"x" * (z % 17), acls[z % 2], False, 0)))
    wire = serialize_wire_snapshot(tree, {7: 4000, 8: 5000})
    stream = wire + b"\x00\x00\x00\x0aNEXTPACKET"
    rng = random.Random(5)
    for _ in range(20):
        scanner, i, end = SnapshotScanner(), 0, None
        while end is None:
            step = rng.choice([1, 3, 64, 1000])
            end = scanner.feed(stream[i:i + step])
            i += step
        assert end == len(wire)

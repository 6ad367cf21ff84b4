"""The leader's sync decision (syncplan.plan_sync), on the cases of Apache ZooKeeper 3.8's
LearnerHandlerTest: same committed logs, txn logs, peer zxids and expected first packet,
proposals queued and sync point (startForwarding's zxid)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from zookapter.protocol.consts import Op
from zookapter.protocol.txns import SetDataTxn, Txn
from zookapter.quorum.packets import PacketType, make_zxid
from zookapter.quorum.syncplan import SyncPlan, plan_sync
from zookapter.quorum.zab_events import Proposal

DIFF, TRUNC = PacketType.DIFF, PacketType.TRUNC


def prop(zxid: int) -> Proposal:
    return Proposal.of(Txn(1, 1, zxid, 0, Op.SET_DATA, SetDataTxn("/a", b"x", 1)))


def props(*zxids: int) -> list[Proposal]:
    return [prop(z) for z in zxids]


def mock_log(log: Sequence[Proposal]):
    """LearnerHandlerTest's MockZKDatabase.getProposalsFromTxnLog: the whole txn log if the
    peer's zxid is not older than its first entry, else nothing."""
    def read(start: int, end: int) -> list[Proposal]:
        return list(log) if log and start >= log[0].zxid else []
    return read


def check(plan: SyncPlan, op: PacketType, zxid: int, current: int,
          proposals: list[int], size: int | None = None) -> None:
    assert not plan.snap
    assert plan.packets[0].type == op and plan.packets[0].zxid == zxid
    assert plan.current_zxid == current
    assert [p.zxid for p in plan.packets if p.type == PacketType.PROPOSAL] == proposals
    # every proposal is followed by its COMMIT
    for i, p in enumerate(plan.packets):
        if p.type == PacketType.PROPOSAL:
            assert plan.packets[i + 1].type == PacketType.COMMIT
            assert plan.packets[i + 1].zxid == p.zxid
    if size is not None:
        assert len(plan.packets) == size


def test_empty_committed_log() -> None:
    check(plan_sync(3, 1, []), TRUNC, 1, 1, [])
    plan = plan_sync(1, 1, [])
    check(plan, DIFF, 1, 1, [], size=1)
    assert plan_sync(0, 1, [], read_log=None).snap


def test_committed_log() -> None:
    committed = props(2, 3, 5)
    plan = plan_sync(4, 6, committed, read_log=None)
    check(plan, TRUNC, 3, 5, [5], size=3)
    assert plan.mode == "TRUNC+DIFF"
    plan = plan_sync(2, 6, committed, read_log=None)
    check(plan, DIFF, 5, 5, [3, 5], size=5)
    assert plan.mode == "DIFF"
    plan = plan_sync(1, 6, committed, read_log=None)
    assert plan.snap and plan.packets == [] and plan.mode == "SNAP"


def test_txn_log_then_committed_log() -> None:
    log = props(2, 3, 5, 6, 7, 8, 9)
    committed = props(6, 7, 8)
    check(plan_sync(4, 9, committed, read_log=mock_log(log)), TRUNC, 3, 8, [5, 6, 7, 8], 9)
    check(plan_sync(3, 9, committed, read_log=mock_log(log)), DIFF, 8, 8, [5, 6, 7, 8], 9)


def test_txn_log_unavailable_means_snapshot() -> None:
    assert plan_sync(4, 7, [], read_log=lambda s, e: []).snap


def test_txn_log_only() -> None:
    log = props(2, 3, 5, 6, 7, 8)
    check(plan_sync(4, 7, [], read_log=mock_log(log)), TRUNC, 3, 7, [5, 6, 7], 7)
    check(plan_sync(2, 7, [], read_log=mock_log(log)), DIFF, 7, 7, [3, 5, 6, 7], 9)
    assert plan_sync(1, 7, [], read_log=mock_log(log)).snap


def test_txn_log_with_negative_zxid() -> None:
    z = lambda c: make_zxid(0xF, c)  # noqa: E731
    log = props(*(z(c) for c in (2, 3, 5, 6, 7, 8, 9)))
    committed = props(z(6), z(7), z(8))
    check(plan_sync(z(4), z(9), committed, read_log=mock_log(log)), TRUNC, z(3), z(8),
          [z(5), z(6), z(7), z(8)], 9)
    check(plan_sync(z(3), z(9), committed, read_log=mock_log(log)), DIFF, z(8), z(8),
          [z(5), z(6), z(7), z(8)], 9)


def test_new_epoch_zxid() -> None:
    z = make_zxid
    log = props(z(0, 1), z(1, 1), z(1, 2))
    committed = props(z(1, 1), z(1, 2))
    assert plan_sync(z(0, 0), z(2, 0), committed, read_log=mock_log(log)).snap
    check(plan_sync(z(1, 0), z(2, 0), committed, read_log=mock_log(log)), DIFF, z(1, 2),
          z(1, 2), [z(1, 1), z(1, 2)], 5)
    check(plan_sync(z(2, 0), z(2, 0), committed, read_log=mock_log(log)), DIFF, z(2, 0),
          z(2, 0), [], 1)


def test_duplicated_txn() -> None:
    z = make_zxid
    log = props(z(0, 1), z(1, 1), z(1, 2), z(1, 1), z(1, 2))
    committed = props(z(1, 1), z(1, 2), z(1, 1), z(1, 2))
    check(plan_sync(z(1, 0), z(2, 0), committed, read_log=mock_log(log)), DIFF, z(1, 2),
          z(1, 2), [z(1, 1), z(1, 2)], 5)


def test_cross_epoch_trunc_is_a_snapshot() -> None:
    z = make_zxid
    log = props(z(1, 1), z(2, 1), z(2, 2), z(4, 1))
    assert plan_sync(z(3, 1), z(6, 0), [], read_log=mock_log(log)).snap


def test_txn_log_gap() -> None:
    log = props(2, 3, 4)
    assert plan_sync(3, 8, props(7, 8), read_log=mock_log(log)).snap


def test_force_snapshot_and_epoch_start_peer_past_history() -> None:
    committed = props(2, 3)
    assert plan_sync(3, 3, committed, force_snap=True).snap
    # an epoch-start zxid beyond the leader's history cannot be truncated: snapshot
    assert plan_sync(make_zxid(5, 0), 3, committed, read_log=None).snap


def test_divergent_peer_in_an_older_epoch() -> None:
    z = make_zxid
    committed = props(z(1, 1), z(1, 2), z(2, 1))
    # the peer has 1:3, the leader went on with 2:1 -> no TRUNC across epochs -> SNAP
    assert plan_sync(z(1, 3), z(2, 1), committed).snap
    # the peer has 1:3, the leader never went past 1:2 -> TRUNC to it
    plan = plan_sync(z(1, 3), z(2, 0), props(z(1, 1), z(1, 2)))
    check(plan, TRUNC, z(1, 2), z(1, 2), [], 1)


@pytest.mark.parametrize("peer", [1, 5, 9])
def test_plan_packets_are_consecutive(peer: int) -> None:
    committed = props(*range(1, 10))
    assert plan_sync(0, 9, committed).snap  # older than the committed log, no txn log
    plan = plan_sync(peer, 9, committed)
    zs = [p.zxid for p in plan.packets if p.type == PacketType.PROPOSAL]
    assert zs == list(range(peer + 1, 10))

"""Replication invariant checks (zookapter.sim.checks) on hand-made observation logs."""

from __future__ import annotations

from typing import Any

from zookapter.sim import (
    Applied,
    Observed,
    Restored,
    Role,
    check_acked_applied,
    check_applied_sequences,
    check_one_leader_per_epoch,
)


def z(epoch: int, counter: int) -> int:
    return epoch << 32 | counter


class Log:
    """Observations in order; time advances by one per fact."""

    def __init__(self) -> None:
        self.items: list[Observed] = []

    def add(self, node: int, fact: Any, incarnation: int = 0) -> Log:
        self.items.append(Observed(len(self.items), node, incarnation, fact))
        return self

    def applied(self, node: int, *zxids: int, incarnation: int = 0) -> Log:
        for zxid in zxids:
            self.add(node, Applied(zxid, f"txn{zxid:x}"), incarnation)
        return self


def test_identical_sequences_pass() -> None:
    log = Log().applied(1, z(1, 1), z(1, 2), z(2, 1)).applied(2, z(1, 1), z(1, 2), z(2, 1))
    assert check_applied_sequences(log.items) == []


def test_lagging_prefix_passes() -> None:
    log = Log().applied(1, z(1, 1), z(1, 2), z(2, 1)).applied(2, z(1, 1))
    assert check_applied_sequences(log.items) == []


def test_different_txn_under_one_zxid_fails() -> None:
    log = Log().applied(1, z(1, 1)).add(2, Applied(z(1, 1), "other"))
    problems = check_applied_sequences(log.items)
    assert len(problems) == 1 and "0x100000001" in problems[0] and "other" in problems[0]


def test_out_of_order_apply_fails() -> None:
    log = Log().applied(1, z(1, 2), z(1, 1))
    problems = check_applied_sequences(log.items)
    assert any("applied 0x100000001 after 0x100000002" in p for p in problems)


def test_applying_twice_fails() -> None:
    log = Log().applied(1, z(1, 1), z(1, 1))
    assert check_applied_sequences(log.items)


def test_skipped_zxid_fails() -> None:
    log = Log().applied(1, z(1, 1), z(1, 2), z(1, 3)).applied(2, z(1, 1), z(1, 3))
    problems = check_applied_sequences(log.items)
    assert problems == ["node 2 (incarnation 0) skipped 0x100000002, which other servers "
                        "applied"]


def test_divergent_epochs_are_gaps() -> None:
    # node 1 applied a txn of epoch 1 that node 2 never has, although node 2 moved past it
    log = Log().applied(1, z(1, 1), z(1, 2)).applied(2, z(1, 1), z(2, 1))
    problems = check_applied_sequences(log.items)
    assert any("node 2" in p and "0x100000002" in p for p in problems)


def test_restart_may_start_from_restored_state() -> None:
    log = (Log().applied(1, z(1, 1), z(1, 2), z(1, 3))
           .add(1, Restored(z(1, 2)), incarnation=1).applied(1, z(1, 3), incarnation=1))
    assert check_applied_sequences(log.items) == []


def test_restored_state_must_connect_to_what_follows() -> None:
    log = (Log().applied(2, z(1, 1), z(1, 2), z(1, 3))
           .add(1, Restored(z(1, 1)), incarnation=1).applied(1, z(1, 3), incarnation=1))
    problems = check_applied_sequences(log.items)
    assert problems and "restored up to 0x100000001" in problems[0]


def test_acked_writes_applied_everywhere_pass() -> None:
    log = Log().applied(1, z(1, 1), z(1, 2)).applied(2, z(1, 1), z(1, 2))
    assert check_acked_applied([z(1, 2)], log.items, [1, 2]) == []


def test_acked_write_lost_is_reported() -> None:
    log = Log().applied(1, z(1, 1)).applied(2, z(1, 1))
    problems = check_acked_applied([z(1, 1), z(1, 2)], log.items, [1, 2])
    assert problems[0] == "1 acknowledged zxids were never applied anywhere: 0x100000002"
    assert any(p.startswith("node 1 has not applied 1 acknowledged") for p in problems)


def test_acked_check_uses_latest_incarnation() -> None:
    log = (Log().applied(1, z(1, 1), z(1, 2)).applied(2, z(1, 1), z(1, 2))
           .applied(1, z(1, 1), incarnation=1))  # restarted and has not caught up
    problems = check_acked_applied([z(1, 2)], log.items, [1, 2])
    assert problems == ["node 1 has not applied 1 acknowledged zxids (0x100000002); "
                        "it reached 0x100000001"]
    caught_up = Log()
    caught_up.items = log.items[:]
    caught_up.add(1, Restored(z(1, 2)), incarnation=2)
    assert check_acked_applied([z(1, 2)], caught_up.items, [1, 2]) == []


def test_one_leader_per_epoch() -> None:
    log = (Log().add(1, Role("leading", 1)).add(2, Role("following", 1))
           .add(2, Role("leading", 2)).add(2, Role("leading", 2), incarnation=1))
    assert check_one_leader_per_epoch(log.items) == []
    log.add(3, Role("leading", 2))
    assert check_one_leader_per_epoch(log.items) == ["epoch 2 had leaders [2, 3]"]

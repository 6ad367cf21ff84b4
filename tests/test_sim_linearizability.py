"""The linearizability checker (zookapter.sim.linearizability) against the znode model.

Hand-written histories pin down the semantics (real-time order, unknown outcomes, versions,
P-compositionality, the step cap); hypothesis compares the checker with a brute-force
search on small random histories, and checks that histories produced by running the
sequential model concurrently are always accepted, quickly even when long.
"""

from __future__ import annotations

import time
from random import Random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zookapter.sim import ZNODE_MODEL, ZnodeOp, check_linearizability, znode_model
from zookapter.sim.history import INFO, OK, Operation
from zookapter.sim.linearizability import check_key

NO_NODE, NODE_EXISTS, BAD_VERSION = (znode_model.NO_NODE, znode_model.NODE_EXISTS,
                                     znode_model.BAD_VERSION)


class H:
    """A tiny builder: ops are given as (call, ret) positions; ret None = unknown outcome."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def op(self, call: int, ret: int | None, f: str, path: str = "/a", data: bytes | None = None,
           version: int = -1, out: Any = None, process: int | None = None) -> H:
        op = Operation(len(self.ops), len(self.ops) if process is None else process,
                       ZnodeOp(f, path, data, version), call, ret,
                       output=out, status=OK if ret is not None else INFO,
                       call_ms=call, ret_ms=ret)
        self.ops.append(op)
        return self

    def check(self, **kw: Any) -> bool | None:
        return check_linearizability(self.ops, **kw).ok


# -- hand-written histories --------------------------------------------------------------------

def test_sequential_history_is_linearizable() -> None:
    h = (H().op(1, 2, "create", data=b"x", out=(0,))
         .op(3, 4, "get", out=(0, b"x", 0))
         .op(5, 6, "set", data=b"y", version=0, out=(0, 1))
         .op(7, 8, "get", out=(0, b"y", 1))
         .op(9, 10, "delete", version=1, out=(0,))
         .op(11, 12, "get", out=(NO_NODE,)))
    assert h.check() is True


def test_empty_history() -> None:
    assert check_linearizability([]).ok is True


def test_stale_read_after_write_returned_is_rejected() -> None:
    h = (H().op(1, 2, "create", data=b"x", out=(0,))
         .op(3, 4, "set", data=b"y", out=(0, 1))
         .op(5, 6, "get", out=(0, b"x", 0)))
    result = check_linearizability(h.ops)
    assert result.ok is False
    text = result.explain()
    assert "NOT linearizable" in text and "get(/a)" in text


def test_read_concurrent_with_write_may_see_either_value() -> None:
    base = H().op(1, 2, "create", data=b"x", out=(0,)).op(3, 10, "set", data=b"y", out=(0, 1))
    old = H()
    old.ops = list(base.ops)
    old.op(4, 5, "get", out=(0, b"x", 0))
    new = H()
    new.ops = list(base.ops)
    new.op(4, 5, "get", out=(0, b"y", 1))
    assert old.check() is True and new.check() is True


def test_reads_must_not_go_back_in_time() -> None:
    # Both reads overlap the write, but the second starts after the first returned the new
    # value, so it cannot see the old one.
    h = (H().op(1, 2, "create", data=b"x", out=(0,))
         .op(3, 20, "set", data=b"y", out=(0, 1))
         .op(4, 5, "get", out=(0, b"y", 1))
         .op(6, 7, "get", out=(0, b"x", 0)))
    assert h.check() is False


def test_two_successful_creates_are_rejected() -> None:
    h = (H().op(1, 4, "create", data=b"x", out=(0,))
         .op(2, 3, "create", data=b"y", out=(0,)))
    assert h.check() is False


def test_create_create_with_node_exists_either_order() -> None:
    h = (H().op(1, 4, "create", data=b"x", out=(NODE_EXISTS,))
         .op(2, 3, "create", data=b"y", out=(0,))
         .op(5, 6, "get", out=(0, b"y", 0)))
    assert h.check() is True


def test_versions_are_compared() -> None:
    wrong_version = (H().op(1, 2, "create", data=b"x", out=(0,))
                     .op(3, 4, "set", data=b"y", out=(0, 2)))
    assert wrong_version.check() is False
    bad_version = (H().op(1, 2, "create", data=b"x", out=(0,))
                   .op(3, 4, "set", data=b"y", version=5, out=(BAD_VERSION,))
                   .op(5, 6, "delete", version=1, out=(BAD_VERSION,))
                   .op(7, 8, "delete", version=0, out=(0,)))
    assert bad_version.check() is True


def test_version_restarts_after_delete_and_create() -> None:
    h = (H().op(1, 2, "create", data=b"x", out=(0,))
         .op(3, 4, "set", data=b"y", out=(0, 1))
         .op(5, 6, "delete", out=(0,))
         .op(7, 8, "create", data=b"z", out=(0,))
         .op(9, 10, "get", out=(0, b"z", 0)))
    assert h.check() is True


def test_unknown_write_may_take_effect_late() -> None:
    h = (H().op(1, None, "create", data=b"x")
         .op(5, 6, "get", out=(NO_NODE,))
         .op(7, 8, "get", out=(0, b"x", 0)))
    assert h.check() is True


def test_unknown_write_may_never_take_effect() -> None:
    h = (H().op(1, 2, "create", data=b"x", out=(0,))
         .op(3, None, "set", data=b"y")
         .op(5, 6, "get", out=(0, b"x", 0)))
    assert h.check() is True


def test_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    h = (H().op(1, 2, "get", out=(0, b"x", 0))
         .op(3, None, "create", data=b"x"))
    assert h.check() is False


def test_unknown_write_takes_effect_at_most_once() -> None:
    h = (H().op(1, 2, "create", data=b"x", out=(0,))
         .op(3, None, "set", data=b"y")
         .op(5, 6, "get", out=(0, b"y", 1))
         .op(7, 8, "set", data=b"z", out=(0, 2))
         .op(9, 10, "get", out=(0, b"y", 3)))
    assert h.check() is False


def test_failed_operations_are_ignored() -> None:
    h = H().op(1, 2, "create", data=b"x", out=(0,))
    h.ops.append(Operation(1, 9, ZnodeOp("delete", "/a"), 3, 4, None, "fail"))
    h.op(5, 6, "get", out=(0, b"x", 0))
    assert h.check() is True


def test_keys_are_checked_independently() -> None:
    h = (H().op(1, 2, "create", "/a", b"x", out=(0,))
         .op(3, 4, "create", "/b", b"y", out=(0,))
         .op(5, 6, "get", "/b", out=(0, b"y", 0))
         .op(7, 8, "get", "/a", out=(NO_NODE,)))
    result = check_linearizability(h.ops)
    assert result.ok is False
    assert [k.key for k in result.failures] == ["/a"]
    assert [k.ok for k in result.keys] == [False, True]


def test_step_cap_gives_unknown_not_pass() -> None:
    h = H().op(1, 2, "create", data=b"x", out=(0,))
    for i in range(8):
        h.op(3 + i, None, "set", data=b"%d" % i)
    h.op(20, 21, "get", out=(0, b"never", 99))
    result = check_linearizability(h.ops, steps_max=20)
    assert result.ok is None
    assert "gave up" in result.explain()
    assert check_linearizability(h.ops).ok is False


# -- generated histories -----------------------------------------------------------------------

def concurrent_history(rng: Random, ops: int, processes: int, paths: list[str],
                       info_p: float = 0.05) -> list[Operation]:
    """Run the sequential model with `processes` overlapping clients: every operation takes
    effect at a random point between its call and return, so the history is linearizable
    by construction. With probability `info_p` an operation loses its reply (INFO), having
    taken effect or not."""
    state: dict[str, Any] = {}
    history: list[Operation] = []
    pending: dict[int, Operation] = {}  # process -> invoked, not yet taken effect
    effected: dict[int, Operation] = {}  # process -> taken effect, reply not yet seen
    procs = list(range(processes))
    clock = 0

    def lose(p: int, op: Operation) -> None:
        op.status, op.output = INFO, None
        procs[procs.index(p)] = max(procs) + 1  # the next call comes from a new process

    while len(history) < ops or pending or effected:
        clock += 1
        idle = [p for p in procs if p not in pending and p not in effected]
        x = rng.random()
        if idle and len(history) < ops and x < 0.4:
            p = rng.choice(idle)
            op = Operation(len(history), p, random_op(rng, paths, len(history)), clock,
                           call_ms=clock)
            history.append(op)
            pending[p] = op
        elif pending and x < 0.7:
            p = rng.choice(sorted(pending))
            op = pending.pop(p)
            if rng.random() < info_p / 2:
                lose(p, op)  # never takes effect
                continue
            op.output, state[op.input.path] = znode_model.apply(state.get(op.input.path),
                                                                op.input)
            effected[p] = op
        elif effected:
            p = rng.choice(sorted(effected))
            op = effected.pop(p)
            if rng.random() < info_p / 2:
                lose(p, op)  # took effect, but the reply is lost
            else:
                op.status, op.ret, op.ret_ms = OK, clock, clock
    return history


def random_op(rng: Random, paths: list[str], serial: int) -> ZnodeOp:
    path = rng.choice(paths)
    f = rng.choice(["create", "set", "set", "get", "get", "delete"])
    data = b"%d" % serial if f in ("create", "set") else None
    version = -1 if f in ("create", "get") or rng.random() < 0.4 else rng.randrange(3)
    return ZnodeOp(f, path, data, version)


def brute_force(ops: list[Operation]) -> bool:
    """Try every order that respects real time (and every subset of INFO operations)."""
    live = [op for op in ops if op.status == OK or (op.status == INFO and op.input.f != "get")]

    def search(remaining: list[Operation], states: dict[str, Any]) -> bool:
        if all(op.status != OK for op in remaining):
            return True
        deadline = min(op.ret for op in remaining if op.status == OK)
        for op in remaining:
            if op.call > deadline:
                continue  # some OK operation returned before this one was invoked
            out, new = znode_model.apply(states.get(op.input.path), op.input)
            if op.status == OK and out != op.output:
                continue
            rest = [o for o in remaining if o is not op]
            if search(rest, {**states, op.input.path: new}):
                return True
        return False

    return search(live, {})


OUTPUTS = [(0,), (NO_NODE,), (NODE_EXISTS,), (BAD_VERSION,), (0, 1), (0, 2),
           (0, b"0", 0), (0, b"1", 0), (0, b"1", 1), (0, b"2", 1), (0, b"3", 2)]


@st.composite
def small_random_histories(draw: st.DrawFn) -> list[Operation]:
    """Arbitrary small histories (mostly not linearizable), outputs from a small pool."""
    count = draw(st.integers(1, 6))
    times = draw(st.permutations(list(range(1, 2 * count + 1))))
    ops = []
    for i in range(count):
        a, b = sorted(times[2 * i:2 * i + 2])
        f = draw(st.sampled_from(["create", "set", "get", "delete"]))
        version = draw(st.sampled_from([-1, 0, 1]))
        op = ZnodeOp(f, "/a", b"%d" % i if f in ("create", "set") else None,
                     version if f in ("set", "delete") else -1)
        if draw(st.integers(0, 5)) == 0:
            ops.append(Operation(i, i, op, a, None, None, INFO, a))
        else:
            ops.append(Operation(i, i, op, a, b, draw(st.sampled_from(OUTPUTS)), OK, a, b))
    return ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_random_histories())
def test_matches_brute_force_on_small_random_histories(ops: list[Operation]) -> None:
    assert check_key("/a", ops, ZNODE_MODEL).ok is brute_force(ops)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 7))
def test_matches_brute_force_on_mutated_model_histories(seed: int, which: int) -> None:
    rng = Random(seed)
    ops = concurrent_history(rng, 7, 3, ["/a"], info_p=0.2)
    assert check_key("/a", ops, ZNODE_MODEL).ok is True
    oks = [op for op in ops if op.status == OK]
    if oks:
        victim = oks[which % len(oks)]
        victim.output = rng.choice([o for o in OUTPUTS if o != victim.output])
    assert check_key("/a", ops, ZNODE_MODEL).ok is brute_force(ops)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 6))
def test_model_run_concurrently_is_always_linearizable(seed: int, processes: int) -> None:
    ops = concurrent_history(Random(seed), 120, processes, ["/a", "/b", "/c"])
    result = check_linearizability(ops)
    assert result.ok is True, result.explain()


def test_long_concurrent_histories_are_fast() -> None:
    """Three keys with ~300 operations each and 8 clients, a few unknown outcomes."""
    rng = Random(7)
    ops = concurrent_history(rng, 900, 8, ["/a", "/b", "/c"], info_p=0.03)
    started = time.perf_counter()
    result = check_linearizability(ops)
    elapsed = time.perf_counter() - started
    assert result.ok is True, result.explain()
    assert all(len(k.ops) > 250 for k in result.keys)
    assert elapsed < 10, f"checking took {elapsed:.1f} s"


def test_long_history_with_a_lost_write_is_rejected() -> None:
    """A final read contradicting ~300 earlier operations (some with unknown outcome) is
    found, which means backtracking through the whole key's history."""
    ops = concurrent_history(Random(11), 600, 6, ["/a", "/b"], info_p=0.05)
    last = max(op.ret or op.call for op in ops)
    ops.append(Operation(len(ops), 99, ZnodeOp("get", "/a"), last + 1, last + 2,
                         (0, b"lost", 7), OK))
    started = time.perf_counter()
    result = check_linearizability(ops)
    elapsed = time.perf_counter() - started
    assert result.ok is False
    assert [k.key for k in result.failures] == ["/a"]
    text = result.explain()
    assert "cannot linearize: #600" in text, text
    assert elapsed < 10, f"checking took {elapsed:.1f} s"

"""Replication invariants checked over what nodes reported during a simulated run.

Nodes report facts through their binding (`NodeContext.observe`), and the simulation stamps
each with time, node and incarnation (`Observed`). The fact types here are what the checks
understand; a binding translates its node's own actions into them (a ZAB peer's Apply and
RoleChanged, say):
- `Applied(zxid, digest)`: the node applied this txn to its state; digest identifies the
  txn's content so two servers applying different txns under one zxid are caught.
- `Restored(last_zxid)`: a (re)started node's state already covers every txn up to
  last_zxid (it loaded a snapshot and replayed its log without reporting each txn).
- `Role(role, epoch)`: the node took a role ("leading", "following", "looking") in an epoch.

Checks return a list of human-readable violations; empty means fine. They mirror the
invariants in the design notes: every server applies the same zxid sequence (each in
strictly increasing order, each once, without gaps), no acknowledged write is lost, and at
most one leader per epoch.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

LEADING = "leading"
VIOLATIONS_MAX = 10  # per check: the first few say enough


@dataclass(frozen=True, slots=True)
class Observed:
    time_ms: int
    node: int
    incarnation: int
    fact: Any


@dataclass(frozen=True, slots=True)
class Applied:
    zxid: int
    digest: Any = None


@dataclass(frozen=True, slots=True)
class Restored:
    last_zxid: int


@dataclass(frozen=True, slots=True)
class Role:
    role: str
    epoch: int


def _hex(zxid: int) -> str:
    return f"0x{zxid:x}"


@dataclass
class _Run:
    """What one node incarnation applied, in order."""
    node: int
    incarnation: int
    base: int | None  # Restored.last_zxid, if reported before the first Applied
    zxids: list[int]


def _runs(observed: Iterable[Observed]) -> list[_Run]:
    runs: dict[tuple[int, int], _Run] = {}
    for o in observed:
        fact = o.fact
        if isinstance(fact, (Applied, Restored)):
            run = runs.get((o.node, o.incarnation))
            if run is None:
                run = runs[(o.node, o.incarnation)] = _Run(o.node, o.incarnation, None, [])
            if isinstance(fact, Applied):
                run.zxids.append(fact.zxid)
            elif not run.zxids:
                run.base = fact.last_zxid
    return list(runs.values())


def check_applied_sequences(observed: Sequence[Observed]) -> list[str]:
    """Same txn per zxid everywhere; per incarnation strictly increasing; and no
    incarnation skips a zxid that some server applied inside the range it covers."""
    problems: list[str] = []
    digests: dict[int, tuple[Any, int]] = {}
    for o in observed:
        if isinstance(o.fact, Applied):
            seen = digests.setdefault(o.fact.zxid, (o.fact.digest, o.node))
            if seen[0] != o.fact.digest:
                problems.append(f"zxid {_hex(o.fact.zxid)}: node {seen[1]} applied "
                                f"{seen[0]!r}, node {o.node} applied {o.fact.digest!r}")
    runs = _runs(observed)
    for run in runs:
        for a, b in zip(run.zxids, run.zxids[1:], strict=False):
            if b <= a:
                problems.append(f"node {run.node} (incarnation {run.incarnation}) applied "
                                f"{_hex(b)} after {_hex(a)}")
                break
    everything = sorted(digests)
    for run in runs:
        problems += _gaps(run, everything)
    return problems[:VIOLATIONS_MAX]


def _gaps(run: _Run, everything: list[int]) -> list[str]:
    if not run.zxids:
        return []
    first, last = run.zxids[0], run.zxids[-1]
    if run.base is not None:
        at = bisect_right(everything, run.base)
        expected_first = everything[at] if at < len(everything) else None
        if expected_first != first:
            return [f"node {run.node} (incarnation {run.incarnation}) restored up to "
                    f"{_hex(run.base)} and then applied {_hex(first)}, not "
                    f"{_hex(expected_first) if expected_first is not None else 'nothing'}"]
    covered = everything[bisect_left(everything, first):bisect_right(everything, last)]
    if len(covered) != len(run.zxids):
        missing = sorted(set(covered) - set(run.zxids))
        return [f"node {run.node} (incarnation {run.incarnation}) skipped "
                f"{_some(missing)}, which other servers applied"]
    return []


def check_acked_applied(acked: Iterable[int], observed: Sequence[Observed],
                        nodes: Iterable[int]) -> list[str]:
    """At the end of a healed, settled run: every acknowledged zxid is applied by, or covered
    by the restored state of, the latest incarnation of every node in `nodes`."""
    problems: list[str] = []
    applied_anywhere = {o.fact.zxid for o in observed if isinstance(o.fact, Applied)}
    latest: dict[int, _Run] = {}
    for run in _runs(observed):
        if run.node not in latest or run.incarnation > latest[run.node].incarnation:
            latest[run.node] = run
    acked_sorted = sorted(set(acked))
    never = [z for z in acked_sorted if z not in applied_anywhere]
    if never:
        problems.append(f"{len(never)} acknowledged zxids were never applied anywhere: "
                        f"{_some(never)}")
    for node in nodes:
        last_run = latest.get(node)
        reach = -1
        if last_run is not None and last_run.zxids:
            reach = last_run.zxids[-1]
        elif last_run is not None and last_run.base is not None:
            reach = last_run.base
        lost = [z for z in acked_sorted if z > reach]
        if lost:
            problems.append(f"node {node} has not applied {len(lost)} acknowledged zxids "
                            f"({_some(lost)}); it reached "
                            f"{_hex(reach) if reach >= 0 else 'nothing'}")
    return problems[:VIOLATIONS_MAX]


def _some(zxids: list[int], count: int = 5) -> str:
    return ", ".join(map(_hex, zxids[:count])) + (" ..." if len(zxids) > count else "")


def check_one_leader_per_epoch(observed: Iterable[Observed]) -> list[str]:
    leaders: dict[int, set[int]] = defaultdict(set)
    for o in observed:
        if isinstance(o.fact, Role) and o.fact.role == LEADING:
            leaders[o.fact.epoch].add(o.node)
    return [f"epoch {epoch} had leaders {sorted(nodes)}"
            for epoch, nodes in sorted(leaders.items()) if len(nodes) > 1][:VIOLATIONS_MAX]

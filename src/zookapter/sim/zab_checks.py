"""What the ZAB simulation checks, over a verification-only record of each server's state.

A real server's data tree does not say which txns built it, so every simulated member keeps a
*ghost history* next to its tree: the (zxid, txn digest) of every txn applied to the state,
in order, with a running hash of the prefix so far. The ghost follows the state everywhere
the state goes: into snapshots on the simulated disk, back out on recovery (snapshot ghost +
replayed log), and across the network with a SNAP sync. It is never read by the code under
test; it only lets the checks compare histories exactly.

Facts a member reports (see zab_node.py):
- `Applied(zxid, digest)` (from checks.py) for every txn its state applies, committed or
  recovered: one digest per zxid everywhere, since each zxid is proposed once by the one
  leader of its epoch;
- `Committed(length, prefix_hash, zxid)` after applying a txn as committed, and
  `Serving(role, epoch, length, prefix_hash)` when it starts serving: its whole state history
  at that moment, which must be a prefix of the final history;
- `Anomaly(text)`: a broken contract noticed by the binding (an unexpected reply code, a TRUNC
  that could not reload exactly the history up to its zxid, a node that had to stop).

Why prefixes rather than per-incarnation zxid runs (checks.check_applied_sequences): a ZAB
server also applies *uncommitted* txns, when a role ends and its log is fast-forwarded into
the tree (Java's fastForwardDataBase), and drops them again on a TRUNC or SNAP sync; a
run-based check would either miss those or report them as gaps. Committed applies and
serving states must never be undone, and that is exactly "a prefix of the final history".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from .checks import VIOLATIONS_MAX, Applied, Observed

if TYPE_CHECKING:
    from .runner import RunResult

_EMPTY = b""


def txn_digest(data: bytes) -> bytes:
    """Identity of a txn's content (the PROPOSAL payload bytes: txn + tree digest)."""
    return blake2b(data, digest_size=8).digest()


def _chain(prefix: bytes, zxid: int, digest: bytes) -> bytes:
    return blake2b(prefix + zxid.to_bytes(8, "big", signed=True) + digest,
                   digest_size=12).digest()


@dataclass(frozen=True, slots=True)
class FrozenGhost:
    """An immutable copy of a ghost history (in a snapshot file or a SNAP message)."""
    zxids: tuple[int, ...] = ()
    digests: tuple[bytes, ...] = ()
    prefixes: tuple[bytes, ...] = ()


class Ghost:
    """The txns whose application produced a server's current state, in order."""
    __slots__ = ("zxids", "digests", "prefixes")

    def __init__(self, frozen: FrozenGhost = FrozenGhost()) -> None:
        self.zxids = list(frozen.zxids)
        self.digests = list(frozen.digests)
        self.prefixes = list(frozen.prefixes)

    def __len__(self) -> int:
        return len(self.zxids)

    @property
    def last_zxid(self) -> int:
        return self.zxids[-1] if self.zxids else 0

    @property
    def prefix(self) -> bytes:
        """The running hash of the whole history."""
        return self.prefixes[-1] if self.prefixes else _EMPTY

    def applied(self, zxid: int, digest: bytes) -> None:
        self.zxids.append(zxid)
        self.digests.append(digest)
        self.prefixes.append(_chain(self.prefix, zxid, digest))

    def frozen(self) -> FrozenGhost:
        return FrozenGhost(tuple(self.zxids), tuple(self.digests), tuple(self.prefixes))

    def upto(self, zxid: int) -> FrozenGhost:
        """The history cut after `zxid` (what a TRUNC to `zxid` must leave)."""
        n = 0
        while n < len(self.zxids) and self.zxids[n] <= zxid:
            n += 1
        return FrozenGhost(tuple(self.zxids[:n]), tuple(self.digests[:n]),
                           tuple(self.prefixes[:n]))

    def describe(self, tail: int = 4) -> str:
        items = [f"0x{z:x}" for z in self.zxids[-tail:]]
        more = "... " if len(self.zxids) > tail else ""
        return f"{len(self.zxids)} txns [{more}{', '.join(items)}]"


@dataclass(frozen=True, slots=True)
class Committed:
    length: int
    prefix: bytes
    zxid: int


@dataclass(frozen=True, slots=True)
class Serving:
    role: str
    epoch: int
    length: int
    prefix: bytes


@dataclass(frozen=True, slots=True)
class Anomaly:
    text: str


# --- checks --------------------------------------------------------------------------------

def check_txn_agreement(observed: Iterable[Observed]) -> list[str]:
    """One content per zxid across every server and every apply (committed or not)."""
    seen: dict[int, tuple[Any, int]] = {}
    problems: list[str] = []
    for o in observed:
        fact = o.fact
        if isinstance(fact, Applied):
            first = seen.setdefault(fact.zxid, (fact.digest, o.node))
            if first[0] != fact.digest:
                problems.append(f"zxid 0x{fact.zxid:x}: node {first[1]} and node {o.node} "
                                f"applied different txns")
    return problems[:VIOLATIONS_MAX]


def check_anomalies(observed: Iterable[Observed]) -> list[str]:
    return [f"node {o.node} at {o.time_ms} ms: {o.fact.text}" for o in observed
            if isinstance(o.fact, Anomaly)][:VIOLATIONS_MAX]


def final_history(ghosts: dict[int, Ghost], leaders: Iterable[int] = ()
                  ) -> tuple[int, Ghost] | None:
    """The serving leader's final history (else the longest; ties: lowest node id). A server
    still looking may hold a longer one, with uncommitted txns it fast-forwarded."""
    candidates = [n for n in sorted(leaders) if n in ghosts] or sorted(ghosts)
    if not candidates:
        return None
    node = max(candidates, key=lambda n: len(ghosts[n]))
    return node, ghosts[node]


def check_prefixes(observed: Sequence[Observed], final: Ghost, final_node: int) -> list[str]:
    """Every committed apply and every serving state is a prefix of the final history."""
    problems: list[str] = []
    for o in observed:
        fact = o.fact
        if isinstance(fact, Committed):
            what = f"committed 0x{fact.zxid:x}"
        elif isinstance(fact, Serving):
            what = f"started {fact.role} in epoch {fact.epoch}"
        else:
            continue
        n = fact.length
        if n == 0:
            continue
        if n > len(final) or final.prefixes[n - 1] != fact.prefix:
            problems.append(
                f"node {o.node} {what} at {o.time_ms} ms with a history of {n} txns that is "
                f"not a prefix of the final one (node {final_node}: {final.describe()}): "
                f"{_divergence(final, n)}")
            if len(problems) >= VIOLATIONS_MAX:
                break
    return problems


def _divergence(final: Ghost, n: int) -> str:
    if n > len(final):
        return f"the final history has only {len(final)} txns (committed txns lost)"
    return f"they differ at or before txn #{n} (final has 0x{final.zxids[n - 1]:x} there)"


def check_final_states(ghosts: dict[int, Ghost], serving: set[int], final: Ghost,
                       final_node: int) -> list[str]:
    """After healing and settling, every server that serves holds the final history. One
    still electing or syncing may lag, or hold uncommitted txns it fast-forwarded (a TRUNC
    or SNAP will drop them), but never a txn of the final history after a gap."""
    problems = []
    in_final = set(final.zxids)
    for node, ghost in sorted(ghosts.items()):
        if node in serving:
            if ghost.prefix != final.prefix:
                problems.append(f"node {node} serves with a history ({ghost.describe()}) "
                                f"other than node {final_node}'s ({final.describe()})")
            continue
        common = _common_prefix(ghost, final)
        later = [z for z in ghost.zxids[common:] if z in in_final]
        if later:
            problems.append(f"node {node} ends with txns of the final history after a gap: "
                            f"0x{later[0]:x} follows txn #{common} of {ghost.describe()}")
    return problems


def _common_prefix(a: Ghost, b: Ghost) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n  # prefixes match up to lo; find the last matching length by bisection
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.prefixes[mid - 1] == b.prefixes[mid - 1]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_acked_in(acked: Iterable[int], final: Ghost) -> list[str]:
    present = set(final.zxids)
    lost = sorted(z for z in set(acked) if z not in present)
    if not lost:
        return []
    some = ", ".join(f"0x{z:x}" for z in lost[:5])
    return [f"{len(lost)} acknowledged writes are not in the final history: {some}"]


def check_zab(result: RunResult) -> list[str]:
    """The runner check: agreement, anomalies, prefixes, final states, acknowledged writes."""
    observed = result.observations
    problems = check_txn_agreement(observed) + check_anomalies(observed)
    ghosts: dict[int, Ghost] = {}
    digests: dict[int, int] = {}
    serving: set[int] = set()
    leaders: set[int] = set()
    for n in result.scenario.sim.nodes:
        node = result.sim.node(n)
        if node is not None and not node.stopped:
            ghosts[n] = node.ghost
            digests[n] = node.tree_digest()
            if node.core is not None:
                serving.add(n)
                if node.leading:
                    leaders.add(n)
    found = final_history(ghosts, leaders)
    if found is None:
        return problems + ["no server is up at the end"]
    final_node, final = found
    problems += check_prefixes(observed, final, final_node)
    problems += check_final_states(ghosts, serving, final, final_node)
    problems += check_acked_in(result.history.acked_zxids(), final)
    same = [n for n in ghosts if ghosts[n].prefix == final.prefix]
    if len({digests[n] for n in same}) > 1:
        problems.append("servers with the same history have different data trees: "
                        + ", ".join(f"node {n}: {digests[n]:x}" for n in same))
    return problems

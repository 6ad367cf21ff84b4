"""The differential checks of tests/test_differential.py, run against mixed ensembles.

The target is a 3-member ensemble of Apache ZooKeeper 3.8 and zookapter members; the clients
of one op sequence are spread over its members (client i talks to member i % 3 + 1), so
writes are forwarded between kinds, notifications come from members of either kind, and
zookapter serves as leader and as follower next to Java ones. Two layouts run:

- "zjz": a zookapter leader (sid 3 normally wins the first election), a Java and a
  zookapter follower;
- "jzj": a Java leader, a zookapter and a Java follower.

The oracle is a standalone Apache ZooKeeper (the same one test_differential.py uses): the
traces normalise zxids to their rank and session ids to client labels, and every step ends
with a sync on each client, so a correct ensemble gives the very same trace. With
ENSEMBLE_DIFF_ORACLE=ensemble the oracle is an all-Apache ensemble with the clients spread
the same way instead (slower; it checks that a standalone oracle is a fair one).

What runs: every fixed scenario of test_differential.py, two about replication (writes
from every member, read back on every member), and a few generated sequences
(ENSEMBLE_DIFF_EXAMPLES, default 4 per layout).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import pytest
import test_differential as td
from hypothesis import given, settings

from ensemble import Ensemble, JavaPeer, ZookapterPeer
from oracle import SUPER_DIGEST, ApacheZooKeeper, apache_zookeeper_available

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available(),
                                 reason="Apache ZooKeeper (java + jars) not available")]

EXAMPLES = int(os.environ.get("ENSEMBLE_DIFF_EXAMPLES", "4"))
ORACLE = os.environ.get("ENSEMBLE_DIFF_ORACLE", "standalone")
START_S = 60.0
# What tests/oracle.py gives the standalone oracle, for every member of either kind.
CONFIG = {"extendedTypesEnabled": "true",
          "DigestAuthenticationProvider.superDigest": SUPER_DIGEST}
SYSTEM_PROPERTIES = {"znode.container.checkIntervalMs": "86400000"}  # reaper out of the way
_roots = itertools.count()


class DiffEnsemble(Ensemble):
    """An Ensemble configured like the differential oracle (extended types, super digest,
    no container reaper during a test)."""

    def __init__(self, kinds: str) -> None:
        super().__init__(3, kinds=kinds, extra_config=CONFIG)

    def prepare(self) -> None:
        super().prepare()
        flags = [f"-D{k}={v}" for k, v in SYSTEM_PROPERTIES.items()]
        for peer in self.peers.values():
            if isinstance(peer, ZookapterPeer):
                peer.argv += flags
            elif isinstance(peer, JavaPeer):
                cp = peer.argv.index("-cp")
                peer.argv[cp:cp] = flags

    def member_hosts(self) -> list[str]:
        return [self.hosts([sid]) for sid in sorted(self.peers)]


class SpreadRunner(td.Runner):
    """td.Runner with client i connected to member i % len(members) only."""

    def __init__(self, members: list[str], root: str) -> None:
        super().__init__(members[0], root)
        self.members = members

    def open_client(self, i: int) -> None:
        self.hosts = self.members[i % len(self.members)]
        super().open_client(i)


@dataclass
class Side:
    """One side of the comparison: td's admin connection plus where clients go."""
    server: td._Server
    members: list[str] | None  # None: every client on server.hosts

    def trace(self, root: str, ops: list) -> list:
        self.server.check_alive()
        self.server.create_root(root)
        try:
            runner = SpreadRunner(self.members, root) if self.members else \
                td.Runner(self.server.hosts, root)
            return runner.run(ops)
        finally:
            # the admin's member may not have applied the sessions' closes yet
            self.server.admin.sync(root)
            self.server.delete_tree(root)


def _ensemble_side(kinds: str) -> tuple[DiffEnsemble, Side]:
    e = DiffEnsemble(kinds)
    e.start(START_S)
    try:
        return e, Side(td._Server(f"ensemble {kinds} (leader {e.leader()})", e.hosts()),
                       e.member_hosts())
    except BaseException:
        e.stop()
        raise


@pytest.fixture(scope="module")
def oracle_side():
    if ORACLE == "ensemble":
        e, side = _ensemble_side("jjj")
        try:
            yield side
        finally:
            side.server.close()
            e.stop()
        return
    apache = ApacheZooKeeper().start()
    side = Side(td._Server("apache", apache.hosts, apache.process), None)
    try:
        yield side
    finally:
        side.server.close()
        apache.stop()


@pytest.fixture(scope="module", params=["zjz", "jzj"])
def target_side(request):
    e, side = _ensemble_side(request.param)
    try:
        yield side
    finally:
        side.server.close()
        e.stop()


def compare(oracle: Side, target: Side, ops: list) -> None:
    root = f"/ediff{next(_roots)}"
    expected = oracle.trace(root, ops)
    actual = target.trace(root, ops)
    if expected == actual:
        return
    i = next((i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
             min(len(expected), len(actual)))
    ended = ("(trace ended early)", None, {})
    lines = [f"mismatch at step {i} (root {root}):",
             *(f"  [{j}] {op!r}" for j, op in enumerate(ops)),
             f"{oracle.server.label}:",
             td._format_step(i, expected[i] if i < len(expected) else ended),
             f"{target.server.label}:",
             td._format_step(i, actual[i] if i < len(actual) else ended)]
    raise AssertionError("\n".join(lines))


# Sequences about replication itself: each client reads, on its own member, what another
# member's client wrote.
ENSEMBLE_SCENARIOS = {
    # a create2 inside a multi is logged and proposed as a create, the only type a 3.8
    # learner accepts there (it used to skip the whole multi: its tree diverged)
    "create2_in_multi_on_every_member": [
        td.RawMultiOp(0, (("create2", "x", 0), ("create2", "x/s", 2))),
        td.RawMultiOp(1, (("create2", "y", 0), ("container", "c", 4))),
        td.RawMultiOp(2, (("create2", "z", 0),)),
        *(td.ChildrenOp(c, "", include_data=True) for c in range(3)),
    ],
    "writes_from_every_member_in_order": [
        *(td.CreateOp(c, "a/", mode="sequential", makepath=True) for c in (0, 1, 2, 0)),
        td.SetOp(1, "a", b"v1"), td.SetOp(2, "a", b"v2", version=1),
        *(td.ChildrenOp(c, "a", include_data=True) for c in range(3)),
        *(td.GetOp(c, "a") for c in range(3)),
    ],
}
SCENARIOS = {**td.SCENARIOS, **ENSEMBLE_SCENARIOS}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(oracle_side, target_side, name):
    compare(oracle_side, target_side, list(SCENARIOS[name]))


@settings(td.DIFF_SETTINGS, max_examples=EXAMPLES)
@given(ops=td.sequences(td.any_chunks, 3, 12))
def test_random_sequences(oracle_side, target_side, ops):
    compare(oracle_side, target_side, [*td.PRELUDE, *ops])

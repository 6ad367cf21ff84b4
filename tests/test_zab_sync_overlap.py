"""Two ways a learner's sync went wrong against a live Apache ZooKeeper 3.8 leader (a CI run of
test_ensemble_faults' zzj scenario lost acknowledged creates on one zookapter member):

- Java's leader picks the proposals to forward before it reads the SNAP's zxid, so a txn
  committed in between arrives both inside the snapshot and again as PROPOSAL/COMMIT after
  it. The learner must take it as already applied, not apply it twice.
- The learner core raised on that second apply, after it had recorded the snapshot as loaded
  but before the shell ran the LoadSnapshot; the shell then dropped the step's actions and
  the next sync started from a zxid the state did not have. A bug inside a role must end
  only the role, with what it did so far carried out, so history and state never disagree.

Both run over the deterministic router of tests/zabnet.py, with the overlap injected where
Java's leader puts it.
"""

from __future__ import annotations

from test_zab_core import check_consistent, rejoin_after_writes, sync_modes
from zabnet import Net

from zookapter.quorum import packets as P
from zookapter.quorum.packets import PacketType as T
from zookapter.quorum.zab_events import SendSnapshot


class JavaLikeSnapNet(Net):
    """A leader whose SNAP is followed by PROPOSAL and COMMIT of the snapshot's own last
    txn (the COMMIT held back until `release_commit` when `late_commit`)."""

    def __init__(self, *, late_commit: bool = False, **kw: object) -> None:
        super().__init__(3, commit_log_count=3, snapshot_size_factor=-1.0,
                         **kw)  # type: ignore[arg-type]
        self.late_commit = late_commit
        self.held_commit: tuple | None = None
        self.overlaps = 0

    def _action(self, node, a):  # type: ignore[no-untyped-def]
        super()._action(node, a)
        if isinstance(a, SendSnapshot):
            cid = self._link(node.sid, a.to)
            last = node.state[-1]
            assert last.zxid == a.zxid
            self.queue.append(("pkt", node.sid, a.to,
                               P.QuorumPacket(T.PROPOSAL, last.zxid, last.data).encode(), cid))
            commit = ("pkt", node.sid, a.to, P.simple(T.COMMIT, last.zxid).encode(), cid)
            if self.late_commit:
                self.held_commit = commit
            else:
                self.queue.append(commit)
            self.overlaps += 1

    def release_commit(self) -> None:
        assert self.held_commit is not None
        self.queue.append(self.held_commit)
        self.held_commit = None


def _far_behind_follower_syncs(net: Net) -> None:
    net.start()
    net.run_until(net.stable)
    rejoin_after_writes(net, 1, 10)
    assert sync_modes(net, 1) == ["SNAP"]


def test_txn_inside_the_snapshot_and_after_it_is_applied_once() -> None:
    net = JavaLikeSnapNet()
    _far_behind_follower_syncs(net)
    assert net.overlaps == 1
    for i in range(3):
        net.write(b"after%d" % i)
    net.run(200)
    check_consistent(net)  # Net asserts every Apply is past the state's zxid
    assert net.nodes[1].role is not None and net.nodes[1].serving is not None


def test_commit_of_the_overlap_after_uptodate_is_ignored() -> None:
    net = JavaLikeSnapNet(late_commit=True)
    _far_behind_follower_syncs(net)
    net.release_commit()
    for i in range(3):
        net.write(b"after%d" % i)
    net.run(200)
    check_consistent(net)
    assert net.nodes[1].serving is not None


def test_a_bug_inside_a_role_ends_only_the_role() -> None:
    """With strict=False (what a server runs), a txn the learner cannot log (here: a
    PROPOSAL repeating one it already logged) abandons the role; the follower re-syncs and
    ends up with the same history as everyone else."""
    net = Net(3, strict=False)
    net.start()
    net.run_until(net.stable)
    for i in range(3):
        net.write(b"v%d" % i)
    net.run(100)
    lead = net.leader()
    assert lead is not None
    follower = next(n for n in net.nodes.values() if n is not lead)
    last = lead.state[-1]
    net.trace.clear()
    net.queue.append(("pkt", lead.sid, follower.sid,
                      P.QuorumPacket(T.PROPOSAL, last.zxid + 0, last.data).encode(),
                      net._link(lead.sid, follower.sid)))
    # the learner logged `last` already: logging it again trips History's check
    net.run(50)
    net.run_until(net.stable)
    for i in range(3):
        net.write(b"w%d" % i)
    net.run(200)
    check_consistent(net)
    assert sync_modes(net, follower.sid)  # it left the role and synced again

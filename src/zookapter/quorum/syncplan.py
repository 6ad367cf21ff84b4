"""How a leader brings one learner up to date: DIFF, TRUNC, TRUNC+DIFF or SNAP.

This is ZooKeeper 3.8's LearnerHandler.syncFollower / queueCommittedProposals decision, from
the learner's last zxid (its ACKEPOCH zxid) against the leader's state:

- `force_snap` (zookeeper.forceSnapshotSync) -> SNAP.
- peer == lastProcessedZxid -> empty DIFF{peer}.
- peer > maxCommittedLog, and peer is not an epoch-start zxid (counter 0; the learner got it
  from a DIFF/SNAP of an empty epoch and has no txn with it) -> TRUNC{maxCommittedLog}.
- minCommittedLog <= peer <= maxCommittedLog -> walk the committed log: the first proposal
  at or past the peer decides the op packet:
    * == peer: DIFF{maxCommittedLog};
    * peer is an epoch-start zxid: DIFF{maxCommittedLog};
    * > peer in the same epoch: the peer has txns the leader never had, TRUNC to the
      leader's preceding proposal;
    * > peer in another epoch: TRUNC cannot cross epochs, give up (-> SNAP);
  then every committed proposal past the peer as PROPOSAL + COMMIT.
- peer < minCommittedLog and txn-log sync enabled (snapshotSizeFactor >= 0): the same walk
  over the on-disk log from the peer's zxid up to minCommittedLog (if the log has it and
  is small enough), then over the committed log; a gap between the two -> SNAP.
- anything else (e.g. an epoch-start zxid past the leader's history) -> SNAP.
An empty committed log counts as min = max = lastProcessedZxid.

`current_zxid` is what the learner will have once it processed the plan; the leader then
forwards every proposal past it (startForwarding) and queues NEWLEADER.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .packets import PacketType, QuorumPacket, counter_of, epoch_of, simple
from .zab_events import Proposal

# read_log(start_zxid, end_zxid) -> logged proposals from start_zxid (see ZabHost.read_log)
LogReader = Callable[[int, int], Sequence[Proposal]]


@dataclass
class SyncPlan:
    """The packets to queue for the learner before NEWLEADER (empty when `snap`)."""
    packets: list[QuorumPacket] = field(default_factory=list)
    snap: bool = True
    current_zxid: int = 0

    @property
    def mode(self) -> str:
        """SNAP, DIFF, TRUNC or TRUNC+DIFF (for logs and tests)."""
        if self.snap:
            return "SNAP"
        head = PacketType(self.packets[0].type).name
        if head == "TRUNC" and len(self.packets) > 1:
            return "TRUNC+DIFF"
        return head


class _Queue:
    """The learner handler's queue while planning: packets plus the needOpPacket flag."""

    def __init__(self) -> None:
        self.packets: list[QuorumPacket] = []
        self.need_op = True

    def op(self, typ: PacketType, zxid: int) -> None:
        self.packets.append(simple(typ, zxid))
        self.need_op = False

    def committed(self, itr: Iterable[Proposal], peer_last: int, max_zxid: int | None,
                  last_committed: int) -> int:
        """queueCommittedProposals: returns the last zxid queued (peer_last if none)."""
        new_epoch_peer = counter_of(peer_last) == 0
        queued = peer_last
        prev = -1
        for p in itr:
            z = p.zxid
            if max_zxid is not None and z > max_zxid:
                break
            if z < peer_last:
                prev = z
                continue
            if self.need_op:
                if z == peer_last:
                    self.op(PacketType.DIFF, last_committed)
                    continue
                if new_epoch_peer:
                    self.op(PacketType.DIFF, last_committed)
                elif z > peer_last:
                    if epoch_of(z) != epoch_of(peer_last):
                        return queued  # no TRUNC across epochs: the caller falls back to SNAP
                    self.op(PacketType.TRUNC, prev)
            if z <= queued:
                continue
            self.packets.append(p.packet())
            self.packets.append(simple(PacketType.COMMIT, z))
            queued = z
        if self.need_op and new_epoch_peer:
            self.op(PacketType.DIFF, last_committed)
        return queued


def plan_sync(peer_last: int, last_processed: int, committed: Sequence[Proposal], *,
              read_log: LogReader | None = None, force_snap: bool = False) -> SyncPlan:
    """syncFollower. `committed` is the leader's committed log (zxid order); `read_log` is
    None when txn-log sync is disabled (or impossible)."""
    q = _Queue()
    if committed:
        min_c, max_c = committed[0].zxid, committed[-1].zxid
    else:
        min_c = max_c = last_processed
    new_epoch_peer = counter_of(peer_last) == 0
    current = peer_last
    need_snap = True
    if force_snap:
        pass
    elif last_processed == peer_last:
        q.op(PacketType.DIFF, peer_last)
        need_snap = False
    elif peer_last > max_c and not new_epoch_peer:
        q.op(PacketType.TRUNC, max_c)
        current = max_c
        need_snap = False
    elif min_c <= peer_last <= max_c:
        current = q.committed(committed, peer_last, None, max_c)
        need_snap = False
    elif peer_last < min_c and read_log is not None:
        from_log = read_log(peer_last, min_c)
        if from_log:
            current = q.committed(from_log, peer_last, min_c, max_c)
            if current < min_c:  # the disk log ends before the committed log starts
                current = peer_last
                q.packets.clear()
                q.need_op = True
            else:
                current = q.committed(committed, current, None, max_c)
                need_snap = False
    if need_snap:
        current = last_processed
    if q.need_op and not need_snap:  # Java: "should never happen", fall back to a snapshot
        need_snap = True
        current = last_processed
    if need_snap:
        return SyncPlan([], True, current)
    return SyncPlan(q.packets, False, current)

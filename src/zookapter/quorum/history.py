"""A peer's view of its own txn history, kept by the Zab core across roles.

ZooKeeper's ZKDatabase remembers the last `commitLogCount` (default 500) applied proposals in
memory, the *committed log*, so a leader can bring a learner up to date with a DIFF without
reading the disk; its min/max zxids drive the sync decision (syncplan.py). Besides that the
core needs to know how far the txn log and the state machine have got:

- `last_logged`: newest zxid handed to the txn log (or made durable by a snapshot);
- `last_applied`: the state machine's lastProcessedZxid (Apply actions so far). A leader
  sets it to `epoch << 32` when it starts serving, as Java's startZkServer does, so it may
  name no txn;
- `unapplied`: txns logged but not applied yet (a follower's uncommitted proposals, a
  leader's outstanding ones). When a role ends they are applied anyway, as Java's
  fastForwardDataBase replays the log into the tree, so in LOOKING the state is exactly the
  log and `last_applied` is the zxid this peer votes with.

The checks here are the core's ordering invariants: zxids are logged and applied in strictly
increasing order, each once.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from .zab_events import Proposal

DEFAULT_COMMIT_LOG_COUNT = 500


class History:
    """See the module docstring. `recent` are the txns the shell replayed from the log when it
    loaded the database (Java fills the committed log from that replay)."""

    def __init__(self, last_zxid: int, recent: Iterable[Proposal] = (),
                 commit_log_count: int = DEFAULT_COMMIT_LOG_COUNT) -> None:
        self.commit_log_count = commit_log_count
        self.last_logged = last_zxid
        self.last_applied = last_zxid
        self.committed: deque[Proposal] = deque()
        self.unapplied: OrderedDict[int, Proposal] = OrderedDict()
        for p in recent:
            if p.zxid > last_zxid:
                raise ValueError(f"recent txn 0x{p.zxid:x} is past the last zxid")
            self._remember(p)

    # -- committed log ---------------------------------------------------------------------

    @property
    def min_committed(self) -> int:
        return self.committed[0].zxid if self.committed else 0

    @property
    def max_committed(self) -> int:
        return self.committed[-1].zxid if self.committed else 0

    def _remember(self, p: Proposal) -> None:
        """addCommittedProposal: evict one first when already over the count (so the log
        holds up to count + 1 entries, like Java's)."""
        if self.committed and p.zxid <= self.committed[-1].zxid:
            raise AssertionError(f"committed log out of order at 0x{p.zxid:x}")
        if len(self.committed) > self.commit_log_count:
            self.committed.popleft()
        self.committed.append(p)

    # -- log and state machine --------------------------------------------------------------

    def logged(self, proposals: Iterable[Proposal]) -> None:
        """The proposals go to the txn log now (Persist). Checked before anything changes:
        a refused batch leaves the history as it was."""
        proposals = list(proposals)
        _check_increasing(proposals, self.last_logged, "logging")
        for p in proposals:
            self.last_logged = p.zxid
            if p.zxid > self.last_applied:
                self.unapplied[p.zxid] = p

    def applied(self, proposals: Iterable[Proposal]) -> None:
        """The proposals are applied now (Apply): strictly increasing, each once. Checked
        before anything changes, as `logged`."""
        proposals = list(proposals)
        _check_increasing(proposals, self.last_applied, "applying")
        for p in proposals:
            self.last_applied = p.zxid
            self.unapplied.pop(p.zxid, None)
            self._remember(p)

    def take_unapplied(self) -> list[Proposal]:
        """What a fast-forward applies: the logged txns past the state, in zxid order."""
        out = [p for z, p in self.unapplied.items() if z > self.last_applied]
        self.unapplied.clear()
        return out

    def set_processed(self, zxid: int) -> None:
        """The leader's startZkServer: lastProcessedZxid = epoch << 32."""
        if zxid < self.last_applied:
            raise AssertionError(f"processed zxid going back to 0x{zxid:x}")
        self.last_applied = zxid

    def snapshot_taken(self) -> None:
        """A snapshot made everything applied durable, logged or not."""
        self.last_logged = max(self.last_logged, self.last_applied)

    def truncated(self, zxid: int) -> None:
        """TRUNC: log and state reloaded up to `zxid` (Java rebuilds the committed log from
        the replay; keeping the entries up to `zxid` is the same history)."""
        self.last_logged = self.last_applied = zxid
        while self.committed and self.committed[-1].zxid > zxid:
            self.committed.pop()
        self.unapplied.clear()

    def snapshot_loaded(self, zxid: int) -> None:
        """SNAP: the state is the leader's snapshot at `zxid`; the committed log is cleared,
        as ZKDatabase.clear does."""
        self.last_logged = self.last_applied = zxid
        self.committed.clear()
        self.unapplied.clear()


def _check_increasing(proposals: list[Proposal], after: int, doing: str) -> None:
    last = after
    for p in proposals:
        if p.zxid <= last:
            raise AssertionError(f"{doing} 0x{p.zxid:x} after 0x{last:x}")
        last = p.zxid

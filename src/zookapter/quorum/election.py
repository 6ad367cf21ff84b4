"""FastLeaderElection as a sans-I/O state machine.

`Election` is one server's election: `start(now_ms)` begins a round, `step(sender,
notification, now_ms)` feeds one received notification, `tick(now_ms)` lets time pass. Each
returns a list of actions for the shell: `Send(to, notification)` (the shell frames it and
writes it on the election connection to that peer, connecting first if needed; like Java's
one-slot send queues, only the newest message per peer matters), `Elected(state, vote)` and
`NewerConfig(sender, config)`. Messages to ourselves never leave the core: they go through an
internal loopback queue, as QuorumCnxManager does, and are processed right after the event
that produced them. Notifications that arrive while we are LOOKING but no round runs yet are
kept, like in Java's receive queue, and processed when `start` begins the round.

What it mirrors, from ZooKeeper's FastLeaderElection and its WorkerReceiver:
- A round starts by bumping the logical clock and proposing ourselves (lastLoggedZxid,
  currentEpoch); observers propose nobody (Long.MIN_VALUE).
- A vote beats another by (peerEpoch, zxid, sid), and never if its server weighs 0.
- LOOKING notifications: a higher round resets the received votes and re-proposes the better
  of (sender's vote, our initial vote); a lower round is answered with our proposal and
  otherwise ignored; the same round adopts a better vote. Every change is broadcast.
- Once the received votes equal to our proposal (round included) form a quorum, we wait
  `finalize_wait_ms` (200 ms). A better vote arriving then resumes the election; any other
  message is dropped and restarts the wait. When the wait runs out the leader is decided.
- FOLLOWING/LEADING notifications let a late server join an established leader: a quorum of
  matching votes from that round (or from any round, "out of election") plus the leader itself
  reporting LEADING (or being us, in the same round).
- Without messages for `not_timeout` we re-send our notifications; the timeout starts at
  200 ms and doubles up to 60 s.
- Messages from non-voters (observers, unknown ids) are answered with our current vote at
  once; after the election, LOOKING voters are answered with the elected vote.

Differences: Java re-sends only when its queues are drained and otherwise just reconnects; here
the re-send is always emitted (the shell's per-peer queue keeps one message anyway). Java's
oracle-quorum (QuorumOracleMaj) hooks are not modelled.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .config import LONG_MIN, LearnerType, QuorumVerifier, verifier_from_text
from .election_wire import NOTIFICATION_VERSION, Notification, ServerState

FINALIZE_WAIT_MS = 200
MIN_NOTIFICATION_INTERVAL_MS = FINALIZE_WAIT_MS
MAX_NOTIFICATION_INTERVAL_MS = 60_000
PENDING_MAX = 1024  # notifications kept while no round is running (bounded, oldest dropped)
_STATES = frozenset(int(s) for s in ServerState)


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposal: `leader` with its last zxid and epoch, made in round `election_epoch`.
    `state` and `version` only matter for comparing votes of servers outside an election."""
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: ServerState = ServerState.LOOKING
    version: int = 0

    def same_as(self, other: Vote) -> bool:
        """Vote.equals: all four numbers while either side is LOOKING; otherwise the leader,
        plus its epoch unless exactly one side is a pre-reconfig (version 0) vote."""
        if self.state == ServerState.LOOKING or other.state == ServerState.LOOKING:
            return (self.leader, self.zxid, self.election_epoch, self.peer_epoch) == \
                (other.leader, other.zxid, other.election_epoch, other.peer_epoch)
        if (self.version > 0) != (other.version > 0):
            return self.leader == other.leader
        return self.leader == other.leader and self.peer_epoch == other.peer_epoch

    def __str__(self) -> str:
        return (f"({self.leader}, zxid=0x{self.zxid & (2**64 - 1):x}, "
                f"round=0x{self.election_epoch & (2**64 - 1):x}, "
                f"peerEpoch=0x{self.peer_epoch & (2**64 - 1):x})")


@dataclass(frozen=True, slots=True)
class Send:
    to: int
    notification: Notification


@dataclass(frozen=True, slots=True)
class Elected:
    state: ServerState
    vote: Vote


@dataclass(frozen=True, slots=True)
class NewerConfig:
    """A peer runs a newer config version: the shell should adopt it (processReconfig) and,
    if membership changed, restart the election with it."""
    sender: int
    verifier: QuorumVerifier


Action = Send | Elected | NewerConfig


def total_order_beats(qv: QuorumVerifier, new: tuple[int, int, int],
                      cur: tuple[int, int, int]) -> bool:
    """totalOrderPredicate over (sid, zxid, peerEpoch) triples."""
    (new_id, new_zxid, new_epoch), (cur_id, cur_zxid, cur_epoch) = new, cur
    if qv.weight(new_id) == 0:
        return False
    return (new_epoch, new_zxid, new_id) > (cur_epoch, cur_zxid, cur_id)


class Election:
    """One server's FastLeaderElection; see the module docstring."""

    def __init__(self, my_id: int, verifier: QuorumVerifier, last_zxid: int,
                 current_epoch: int, *, next_verifier: QuorumVerifier | None = None,
                 learner_type: LearnerType | None = None,
                 finalize_wait_ms: int = FINALIZE_WAIT_MS,
                 min_notification_interval_ms: int = MIN_NOTIFICATION_INTERVAL_MS,
                 max_notification_interval_ms: int = MAX_NOTIFICATION_INTERVAL_MS) -> None:
        if learner_type is None:
            learner_type = LearnerType.OBSERVER if my_id in verifier.observing_members \
                else LearnerType.PARTICIPANT
        self.my_id = my_id
        self.verifier = verifier
        self.next_verifier = next_verifier  # QuorumPeer's lastSeenQuorumVerifier
        self.learner_type = learner_type
        self.last_zxid = last_zxid
        self.current_epoch = current_epoch
        self.finalize_wait_ms = finalize_wait_ms
        self.min_interval_ms = min_notification_interval_ms
        self.max_interval_ms = max_notification_interval_ms
        self.state = ServerState.LOOKING  # QuorumPeer's peer state
        self.logical_clock = 0
        self.proposal = Vote(LONG_MIN, -1, 0, -1)
        # What non-voters are told: QuorumPeer.currentVote (the last result, or ourselves).
        self.current_vote = Vote(my_id, last_zxid, -1, current_epoch)
        self.running = False  # inside lookForLeader
        self.recv_set: dict[int, Vote] = {}
        self.out_of_election: dict[int, Vote] = {}
        self._not_timeout_ms = min_notification_interval_ms
        self._resend_at_ms: int | None = None
        self._finalize_at_ms: int | None = None
        self._loopback: deque[Notification] = deque()
        self._pending: deque[tuple[int, Notification]] = deque()

    # -- public API ----------------------------------------------------------------------------

    @property
    def leader(self) -> int | None:
        """The elected leader, None while looking."""
        return None if self.state == ServerState.LOOKING else self.current_vote.leader

    @property
    def finalizing(self) -> bool:
        return self._finalize_at_ms is not None

    @property
    def next_deadline_ms(self) -> int | None:
        """When tick() has something to do next (for the shell's timer)."""
        if not self.running:
            return None
        return self._finalize_at_ms if self._finalize_at_ms is not None else self._resend_at_ms

    def voters(self) -> list[int]:
        ids = set(self.verifier.voting_members)
        if self.next_verifier is not None:
            ids |= set(self.next_verifier.voting_members)
        return sorted(ids)

    def start(self, now_ms: int, *, last_zxid: int | None = None,
              current_epoch: int | None = None) -> list[Action]:
        """Begin a round (lookForLeader). Also used to look again after losing the leader;
        pass the zxid/epoch we have reached since."""
        if self.running:
            raise AssertionError("election already running")
        if last_zxid is not None:
            self.last_zxid = last_zxid
        if current_epoch is not None:
            self.current_epoch = current_epoch
        self.state = ServerState.LOOKING
        self.running = True
        self.recv_set, self.out_of_election = {}, {}
        self._not_timeout_ms = self.min_interval_ms
        self._finalize_at_ms = None
        self.logical_clock += 1
        self.proposal = self._initial_vote()
        out: list[Action] = []
        self._broadcast(out)
        self._resend_at_ms = now_ms + self._not_timeout_ms
        while self._pending and self.running:
            sender, n = self._pending.popleft()
            self._process(sender, n, now_ms, out)
        self._drain_loopback(out, now_ms)
        return out

    def step(self, sender: int, n: Notification, now_ms: int) -> list[Action]:
        """One notification received from `sender` (WorkerReceiver + one lookForLeader turn)."""
        if sender == self.my_id:
            raise AssertionError("own notifications never come from the network")
        out: list[Action] = []
        if not self._valid_voter(sender):
            out.append(Send(sender, self._notification(self.state, self.current_vote,
                                                       self.logical_clock)))
            return out
        if n.state not in _STATES:
            return out
        if self._check_config(sender, n, out):
            return out
        if self.state == ServerState.LOOKING:
            if n.state == ServerState.LOOKING and n.election_epoch < self.logical_clock:
                out.append(Send(sender, self._notification(self.state, self.proposal,
                                                           self.logical_clock)))
            if not self.running:  # queued until the round starts, as in Java's recvqueue
                if len(self._pending) >= PENDING_MAX:
                    self._pending.popleft()
                self._pending.append((sender, n))
                return out
            self._process(sender, n, now_ms, out)
            self._drain_loopback(out, now_ms)
        elif n.state == ServerState.LOOKING:
            cv = self.current_vote
            out.append(Send(sender, self._notification(self.state, cv, cv.election_epoch)))
        return out

    def tick(self, now_ms: int) -> list[Action]:
        """Time passes: end the finalize wait, or re-send after `not_timeout` of silence."""
        out: list[Action] = []
        if not self.running:
            return out
        if self._finalize_at_ms is not None:
            if now_ms >= self._finalize_at_ms:
                self._finalize_at_ms = None
                self._decide(self.proposal.leader, self._end_vote(), out)
            return out
        if self._resend_at_ms is not None and now_ms >= self._resend_at_ms:
            self._broadcast(out)
            self._not_timeout_ms = min(self._not_timeout_ms * 2, self.max_interval_ms)
            self._resend_at_ms = now_ms + self._not_timeout_ms
            self._drain_loopback(out, now_ms)
        return out

    def update_election_vote(self, new_epoch: int) -> None:
        """After syncing with the leader, report its new epoch to late servers (ZK-1732)."""
        cv = self.current_vote
        self.current_vote = Vote(cv.leader, cv.zxid, cv.election_epoch, new_epoch, cv.state)

    # -- lookForLeader -------------------------------------------------------------------------

    def _process(self, sender: int, n: Notification, now_ms: int, out: list[Action]) -> None:
        if not self.running:
            return  # decided earlier in this batch; Java clears its queue on leaving
        self._resend_at_ms = now_ms + self._not_timeout_ms
        if self._finalize_at_ms is not None:
            if not self._beats(n.leader, n.zxid, n.peer_epoch):
                self._finalize_at_ms = now_ms + self.finalize_wait_ms
                return
            self._finalize_at_ms = None
        if not (self._valid_voter(sender) and self._valid_voter(n.leader)):
            return
        if n.state == ServerState.LOOKING:
            self._on_looking(sender, n, now_ms, out)
        elif n.state in (ServerState.FOLLOWING, ServerState.LEADING):
            self._on_established(sender, n, out)

    def _on_looking(self, sender: int, n: Notification, now_ms: int, out: list[Action]) -> None:
        if self._init_zxid() == -1 or n.zxid == -1:
            return
        if n.election_epoch > self.logical_clock:
            self.logical_clock = n.election_epoch
            self.recv_set.clear()
            init = self._initial_vote()
            if total_order_beats(self.verifier, (n.leader, n.zxid, n.peer_epoch),
                                 (init.leader, init.zxid, init.peer_epoch)):
                self.proposal = Vote(n.leader, n.zxid, 0, n.peer_epoch)
            else:
                self.proposal = init
            self._broadcast(out)
        elif n.election_epoch < self.logical_clock:
            return
        elif self._beats(n.leader, n.zxid, n.peer_epoch):
            self.proposal = Vote(n.leader, n.zxid, 0, n.peer_epoch)
            self._broadcast(out)
        self.recv_set[sender] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        if self._has_quorums(self.recv_set, self._end_vote()):
            self._finalize_at_ms = now_ms + self.finalize_wait_ms

    def _on_established(self, sender: int, n: Notification, out: list[Action]) -> None:
        """receivedFollowingNotification (LEADING senders take the same path)."""
        state = ServerState(n.state)
        target = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state, n.version)
        end = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        if n.election_epoch == self.logical_clock:
            self.recv_set[sender] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch,
                                         state)
            if self._has_quorums(self.recv_set, target) and \
                    self._check_leader(self.recv_set, n.leader, n.election_epoch):
                self._decide(n.leader, end, out)
                return
        self.out_of_election[sender] = target
        if self._has_quorums(self.out_of_election, target) and \
                self._check_leader(self.out_of_election, n.leader, n.election_epoch):
            self.logical_clock = n.election_epoch
            self._decide(n.leader, end, out)

    def _check_leader(self, votes: dict[int, Vote], leader: int, election_epoch: int) -> bool:
        """The leader must have told us it leads, or be us in this very round."""
        if leader != self.my_id:
            v = votes.get(leader)
            return v is not None and v.state == ServerState.LEADING
        return self.logical_clock == election_epoch

    def _decide(self, leader: int, end: Vote, out: list[Action]) -> None:
        if not self.running:
            raise AssertionError("deciding outside an election")
        if leader == self.my_id:
            self.state = ServerState.LEADING
        elif self.learner_type is LearnerType.PARTICIPANT:
            self.state = ServerState.FOLLOWING
        else:
            self.state = ServerState.OBSERVING
        self.running = False
        self.current_vote = end
        self._finalize_at_ms = self._resend_at_ms = None
        self._loopback.clear()
        self._pending.clear()
        if self.state == ServerState.LEADING and not self._valid_voter(self.my_id):
            raise AssertionError("a non-voter cannot lead")
        out.append(Elected(self.state, end))

    # -- helpers -------------------------------------------------------------------------------

    def _initial_vote(self) -> Vote:
        sid = self.my_id if self.my_id in self.verifier.voting_members else LONG_MIN
        return Vote(sid, self._init_zxid(), 0, self._init_epoch())

    def _init_zxid(self) -> int:
        return self.last_zxid if self.learner_type is LearnerType.PARTICIPANT else LONG_MIN

    def _init_epoch(self) -> int:
        return self.current_epoch if self.learner_type is LearnerType.PARTICIPANT else LONG_MIN

    def _end_vote(self) -> Vote:
        p = self.proposal
        return Vote(p.leader, p.zxid, self.logical_clock, p.peer_epoch)

    def _beats(self, leader: int, zxid: int, peer_epoch: int) -> bool:
        p = self.proposal
        return total_order_beats(self.verifier, (leader, zxid, peer_epoch),
                                 (p.leader, p.zxid, p.peer_epoch))

    def _valid_voter(self, sid: int) -> bool:
        return self.verifier.is_voter(sid) or \
            (self.next_verifier is not None and self.next_verifier.is_voter(sid))

    def _has_quorums(self, votes: dict[int, Vote], target: Vote) -> bool:
        """SyncedLearnerTracker: a quorum in the current config, and in the next one if we
        have seen a newer config."""
        acks = [sid for sid, v in votes.items() if v.same_as(target)]
        qvs = [self.verifier]
        if self.next_verifier is not None and self.next_verifier.version > self.verifier.version:
            qvs.append(self.next_verifier)
        return all(qv.contains_quorum(acks) for qv in qvs)

    def _notification(self, state: ServerState, vote: Vote, election_epoch: int
                      ) -> Notification:
        return Notification(int(state), vote.leader, vote.zxid, election_epoch,
                            vote.peer_epoch, NOTIFICATION_VERSION, self.verifier.to_bytes())

    def _broadcast(self, out: list[Action]) -> None:
        """sendNotifications: our proposal to every voter; our own copy loops back."""
        n = self._notification(ServerState.LOOKING, self.proposal, self.logical_clock)
        for sid in self.voters():
            if sid == self.my_id:
                self._loopback.append(n)
            else:
                out.append(Send(sid, n))

    def _drain_loopback(self, out: list[Action], now_ms: int) -> None:
        while self._loopback and self.running:
            self._process(self.my_id, self._loopback.popleft(), now_ms, out)
        self._loopback.clear()

    def _check_config(self, sender: int, n: Notification, out: list[Action]) -> bool:
        """A newer config in a notification: report it. While looking, a change of
        membership ends this election (the message is not processed): returns True."""
        if n.version <= 1 or not n.config:
            return False
        try:
            qv = verifier_from_text(n.config_text)
        except ValueError:
            return False  # Java logs and goes on
        if qv.version <= self.verifier.version or not self.running:
            return False
        out.append(NewerConfig(sender, qv))
        return not qv.equivalent(self.verifier)

"""The Zab core: one ZooKeeper 3.8 quorum peer (QuorumPeer) without I/O.

    peer = QuorumPeer(my_id, ZabConfig(verifier, tick_time_ms=..., init_limit=...,
                                       sync_limit=...),
                      last_zxid=..., accepted_epoch=..., current_epoch=...,
                      recent=[...], host=...)
    actions = peer.start(now_ms)           # LOOKING: the first election round
    actions = peer.step(event, now_ms)     # an event (zab_events.Event); now_ms optional
    actions = peer.tick(now_ms)            # time passes; call by peer.next_deadline_ms

Construct it from what the shell loaded from disk: `last_zxid` is the state's
lastProcessedZxid after loading snapshot + log (everything logged is applied, as in Java);
`recent` are the txns replayed from the log (the committed log, see history.py);
`accepted_epoch`/`current_epoch` come from their files (default: the epoch of last_zxid).
`host` answers read-only queries (zab_events.ZabHost): the txn log for txn-log syncs and the
sessions touched for PING replies.

States: LOOKING runs FastLeaderElection (election.py; `VoteIn` events in, `SendVote` actions
out). When it decides, `RoleChanged` is emitted and the peer leads (leader.py) or follows /
observes (learner.py); `StartServing` says when clients may be served. Any failure of a role
(quorum lost, timeouts, the leader gone, a protocol violation) emits `Disconnect`s and
`RoleChanged(LOOKING)`, waits until every `Persist` in flight has completed, applies the
logged-but-uncommitted txns (`Apply(recovered=True)`, Java's fastForwardDataBase) and starts
a new election round with the resulting zxid.

Events and actions are listed in zab_events.py with the shell's obligations (actions are
executed in order; Persist completions come back in order; Apply/Truncate/LoadSnapshot/
TakeSnapshot/PersistEpoch are synchronous). The core never reads a clock, a socket or a file
and has no randomness: the same events at the same times give the same actions.

Invariants asserted (AssertionError = a bug here or in the shell): zxids logged, proposed
and applied strictly increase, each applied once; a proposal commits only with a quorum of
ACKs and in zxid order; this peer acknowledges at most one leader per epoch.

What the state machine (ServerCore) does under Zab:
- leader: after `StartServing(LEADING, epoch, zxid)`, set the tree's lastProcessedZxid to
  `zxid`, prep local and forwarded (`LearnerRequest`) writes into txns numbered from
  `zxid + 1` and hand them over as `Propose`; reply when the txn comes back in `Apply`;
  a forwarded sync becomes `LearnerSync` once it reaches the head of the pipeline;
  `TouchSessions`/`Revalidate` feed the session tracker (answer `RevalidateReply`).
- learner: serve reads locally; forward writes/sync/session ops with `Forward`, revalidate
  reconnecting sessions with `RevalidateSession`; apply `Apply`, replying to the local
  client whose (session, cxid) the txn carries; `SyncReply` releases the oldest local sync.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .activation import is_newer, learner_type_in
from .config import LearnerType, QuorumPeerConfig, QuorumVerifier
from .election import (
    FINALIZE_WAIT_MS,
    MAX_NOTIFICATION_INTERVAL_MS,
    MIN_NOTIFICATION_INTERVAL_MS,
    Elected,
    Election,
    NewerConfig,
)
from .election import Action as ElectionAction
from .election_wire import ServerState
from .history import DEFAULT_COMMIT_LOG_COUNT, History
from .leader import LeaderRole
from .learner import LearnerRole
from .packets import epoch_of
from .zab_events import (
    Action,
    Apply,
    Event,
    LeaveRole,
    NullHost,
    Persist,
    Persisted,
    PersistEpoch,
    Proposal,
    RoleChanged,
    VoteIn,
    ZabHost,
)

log = logging.getLogger("zookapter.quorum")

DEFAULT_SNAPSHOT_SIZE_FACTOR = 0.33


@dataclass(frozen=True)
class ZabConfig:
    """The settings the core uses (zoo.cfg + the Java system properties named)."""
    verifier: QuorumVerifier
    tick_time_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    commit_log_count: int = DEFAULT_COMMIT_LOG_COUNT  # zookeeper.commitLogCount
    snapshot_size_factor: float = DEFAULT_SNAPSHOT_SIZE_FACTOR  # < 0: no txn-log sync
    force_snap_sync: bool = False  # zookeeper.forceSnapshotSync
    reconfig_enabled: bool = False
    learner_type: LearnerType | None = None  # None: from the verifier
    finalize_wait_ms: int = FINALIZE_WAIT_MS
    min_notification_interval_ms: int = MIN_NOTIFICATION_INTERVAL_MS
    max_notification_interval_ms: int = MAX_NOTIFICATION_INTERVAL_MS
    # True: a bug inside a role raises out of step/tick (tests, the simulator). False (a
    # server): the role is abandoned with what it did so far, as Java's followLeader/lead
    # catch blocks do, and the peer looks again -- never a state the disk does not match.
    strict: bool = True

    @property
    def init_ms(self) -> int:
        return self.tick_time_ms * self.init_limit

    @property
    def sync_ms(self) -> int:
        return self.tick_time_ms * self.sync_limit

    @staticmethod
    def from_peer_config(cfg: QuorumPeerConfig, **overrides: object) -> ZabConfig:
        values: dict[str, object] = dict(
            verifier=cfg.verifier, tick_time_ms=cfg.tick_time_ms, init_limit=cfg.init_limit,
            sync_limit=cfg.sync_limit, reconfig_enabled=cfg.reconfig_enabled,
            learner_type=cfg.peer_type)
        values.update(overrides)
        return ZabConfig(**values)  # type: ignore[arg-type]


Role = LeaderRole | LearnerRole


class QuorumPeer:
    """See the module docstring."""

    def __init__(self, my_id: int, config: ZabConfig, *, last_zxid: int = 0,
                 accepted_epoch: int | None = None, current_epoch: int | None = None,
                 recent: Iterable[Proposal] = (), host: ZabHost | None = None) -> None:
        self.my_id = my_id
        self.config = config
        self.host: ZabHost = host if host is not None else NullHost()
        self.history = History(last_zxid, recent, config.commit_log_count)
        self.current_epoch = epoch_of(last_zxid) if current_epoch is None else current_epoch
        self.accepted_epoch = epoch_of(last_zxid) if accepted_epoch is None \
            else accepted_epoch
        self.election = Election(
            my_id, config.verifier, last_zxid, self.current_epoch,
            learner_type=config.learner_type, finalize_wait_ms=config.finalize_wait_ms,
            min_notification_interval_ms=config.min_notification_interval_ms,
            max_notification_interval_ms=config.max_notification_interval_ms)
        self.now_ms = 0
        self.role: Role | None = None
        self.leaders: dict[int, int] = {}  # epoch -> the leader we acked NEWLEADER for
        self._out: list[Action] = []
        self._next_token = 1
        self._inflight: OrderedDict[int, int] = OrderedDict()
        self._draining = False
        self._started = False

    # -- driving the core -------------------------------------------------------------------

    def start(self, now_ms: int) -> list[Action]:
        """Begin: look for a leader."""
        if self._started:
            raise AssertionError("peer already started")
        self._started = True
        self.now_ms = now_ms
        self._out = []
        self._election_actions(self.election.start(now_ms, last_zxid=self.history.last_applied,
                                                   current_epoch=self.current_epoch))
        return self._take()

    def step(self, event: Event, now_ms: int | None = None) -> list[Action]:
        if now_ms is not None:
            self.now_ms = now_ms
        self._out = []
        try:
            if isinstance(event, VoteIn):
                self._election_actions(self.election.step(event.sid, event.notification,
                                                          self.now_ms))
            elif isinstance(event, Persisted):
                self._persisted(event.token)
            elif self.role is not None:
                self.role.handle(event)
        except LeaveRole as e:
            self._leave(str(e))
        except Exception as e:
            self._internal_error(e)
        return self._take()

    def tick(self, now_ms: int) -> list[Action]:
        self.now_ms = now_ms
        self._out = []
        try:
            if self.election.running:
                self._election_actions(self.election.tick(now_ms))
            if self.role is not None:
                self.role.tick(now_ms)
        except LeaveRole as e:
            self._leave(str(e))
        except Exception as e:
            self._internal_error(e)
        return self._take()

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        if self.role is None:
            return ServerState.LOOKING
        return ServerState.LEADING if isinstance(self.role, LeaderRole) else self.role.state

    @property
    def leader(self) -> int | None:
        if isinstance(self.role, LeaderRole):
            return self.my_id
        return None if self.role is None else self.role.leader

    @property
    def serving(self) -> bool:
        return self.role is not None and self.role.serving

    @property
    def last_zxid(self) -> int:
        """The state machine's last processed zxid."""
        return self.history.last_applied

    @property
    def next_deadline_ms(self) -> int | None:
        """When `tick` has work to do next."""
        times = [self.election.next_deadline_ms if self.election.running else None,
                 None if self.role is None else self.role.next_deadline_ms]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    # -- used by the roles ----------------------------------------------------------------

    def emit(self, action: Action) -> None:
        self._out.append(action)

    def log(self, message: str) -> None:
        log.debug("[%d] %s", self.my_id, message)

    def persist(self, proposals: list[Proposal]) -> int:
        """Hand proposals to the txn log; returns the token `Persisted` will carry."""
        token = self._next_token
        self._next_token += 1
        self.history.logged(proposals)
        self._inflight[token] = len(proposals)
        self.emit(Persist(token, tuple(proposals)))
        return token

    def apply(self, proposals: list[Proposal], recovered: bool = False) -> None:
        """Committed proposals to the state machine (adjacent Applies are merged)."""
        self.history.applied(proposals)
        last = self._out[-1] if self._out else None
        if isinstance(last, Apply) and last.recovered == recovered:
            self._out[-1] = Apply(last.proposals + tuple(proposals), recovered)
        else:
            self.emit(Apply(tuple(proposals), recovered))

    def set_accepted_epoch(self, epoch: int) -> None:
        self.accepted_epoch = epoch
        self.emit(PersistEpoch(accepted=epoch))

    def set_current_epoch(self, epoch: int, leader: int) -> None:
        """currentEpoch: we acknowledge `leader` as the one leader of `epoch`."""
        known = self.leaders.get(epoch)
        if known is not None and known != leader:
            raise AssertionError(f"two leaders for epoch {epoch}: {known} and {leader}")
        self.leaders[epoch] = leader
        self.current_epoch = epoch
        self.emit(PersistEpoch(current=epoch))

    def activate(self, verifier: QuorumVerifier) -> bool:
        """A newer configuration takes effect (QuorumPeer.processReconfig): quorums, votes
        and the current role use it from now on. Ignored without reconfigEnabled or when
        it is not newer than the active one. True if our own kind (participant/observer)
        changed with it: the role must end."""
        old = self.config.verifier
        if not self.config.reconfig_enabled or verifier.version <= old.version:
            return False
        was = self.config.learner_type or learner_type_in(old, self.my_id)
        kind = learner_type_in(verifier, self.my_id)
        self.config = replace(self.config, verifier=verifier, learner_type=kind)
        self.election.verifier = verifier
        self.election.learner_type = kind
        if self.role is not None:
            self.role.cfg = self.config
            if isinstance(self.role, LeaderRole):
                self.role.verifier = verifier
        self.log(f"activated config version 0x{verifier.version:x}")
        return is_newer(verifier, old) and kind is not was

    # -- internals ----------------------------------------------------------------------------

    def _take(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _election_actions(self, actions: list[ElectionAction]) -> None:
        for a in actions:
            if isinstance(a, Elected):
                self._become(a)
            else:
                if isinstance(a, NewerConfig):  # a vote carried a newer config: adopt it
                    self.activate(a.verifier)
                self.emit(a)

    def _become(self, elected: Elected) -> None:
        state, leader = elected.state, elected.vote.leader
        self.log(f"{state.name}, leader {leader}")
        self.emit(RoleChanged(state, leader))
        if state == ServerState.LEADING:
            self.role = LeaderRole(self)
        else:
            self.role = LearnerRole(self, leader, state == ServerState.OBSERVING)

    def _persisted(self, token: int) -> None:
        if not self._inflight or next(iter(self._inflight)) != token:
            raise AssertionError(f"Persisted({token}) out of order; in flight: "
                                 f"{list(self._inflight)}")
        del self._inflight[token]
        if self.role is not None:
            self.role.persisted(token)
        elif self._draining and not self._inflight:
            self._look_again()

    def _internal_error(self, e: Exception) -> None:
        """A bug surfaced inside a role. The actions emitted before it still run: each
        History change is made together with the action that carries it out (and refused
        batches change nothing), so dropping them would leave the history claiming a state
        the server does not have -- the next sync would then skip txns."""
        if self.config.strict or self.role is None:
            raise e
        log.error("server %d: internal error in %s, looking for a leader again",
                  self.my_id, self.state.name, exc_info=e)
        self._leave(f"internal error: {e!r}")

    def _leave(self, reason: str) -> None:
        self.log(f"leaving {self.state.name}: {reason}")
        role, self.role = self.role, None
        if role is not None:
            role.shutdown()
        self.emit(RoleChanged(ServerState.LOOKING, None))
        self.election.state = ServerState.LOOKING  # notifications queue until the round
        if self._inflight:
            self._draining = True  # the log must be complete before we vote with it
        else:
            self._look_again()

    def _look_again(self) -> None:
        self._draining = False
        recovered = self.history.take_unapplied()
        if recovered:
            self.apply(recovered, recovered=True)
        self._election_actions(self.election.start(
            self.now_ms, last_zxid=self.history.last_applied, current_epoch=self.current_epoch))

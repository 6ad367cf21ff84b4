"""The follower and observer roles of the Zab core (Java's Learner, Follower, Observer),
without I/O.

Registration (registerWithLeader): connect to the leader (up to 5 attempts, 100 ms apart, within
initLimit ticks), send FOLLOWERINFO/OBSERVERINFO{acceptedEpoch << 32, LearnerInfo}; on
LEADERINFO{newEpoch << 32} persist acceptedEpoch = newEpoch first if it is newer and answer
ACKEPOCH{lastZxid, currentEpoch}, or ACKEPOCH{lastZxid, -1} if we had accepted it already;
an older epoch is an error.

Synchronization (syncWithLeader), on the first packet:
- DIFF: proposals and commits are collected and logged at NEWLEADER (no snapshot);
- SNAP: the state is replaced by the leader's snapshot; TRUNC: the log is cut back and the
  state reloaded. In both cases the PROPOSAL/COMMIT pairs that follow are not logged: they
  are applied at NEWLEADER, right before the snapshot written then (synchronously after a
  SNAP), and so is the SNAP itself, so that a sync cut short leaves the state its disk has.
On NEWLEADER a follower logs (and fsyncs) every proposal received so far, then persists
currentEpoch = newEpoch and answers ACK{newEpoch << 32}; an observer just persists the epoch
and acks. On UPTODATE: ACK{newEpoch << 32}, start serving, ACK the proposals logged at
NEWLEADER, log those that came after it and commit what the leader committed meanwhile.

Broadcast: a follower logs each PROPOSAL and ACKs it when the Persist completes (in order),
applies on COMMIT (which must name its oldest pending proposal); an observer logs and
applies each INFORM. PINGs are echoed with the host's touched sessions; REVALIDATE and
SYNC answers go to the state machine. Silence from the leader for initLimit ticks (before
NEWLEADER) or syncLimit ticks (after) ends the role, as Java's socket read timeout does.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TYPE_CHECKING

from . import packets as P
from .activation import is_newer, proposal_config
from .config import verifier_from_text
from .election_wire import ServerState
from .packets import PacketError, PacketType, QuorumPacket, make_zxid
from .zab_events import (
    Connect,
    ConnectionDown,
    ConnectionUp,
    Disconnect,
    Event,
    Forward,
    LeaveRole,
    LoadSnapshot,
    PacketIn,
    Proposal,
    RevalidateResult,
    RevalidateSession,
    Send,
    StartServing,
    SyncReply,
    TakeSnapshot,
    Truncate,
    ZabError,
)

if TYPE_CHECKING:
    from .peer import QuorumPeer

# PROPOSAL, COMMIT, INFORM: what `_stale` drops when the synced state already has it
_TXN_PACKETS = (PacketType.PROPOSAL, PacketType.COMMIT, PacketType.INFORM)
CONNECT_ATTEMPTS = 5
CONNECT_RETRY_MS = 100  # zookeeper.leaderConnectDelayDuringRetryMs (3.8 default)


class Stage(Enum):
    CONNECTING = auto()
    REGISTERING = auto()  # FOLLOWERINFO sent, waiting for LEADERINFO
    WAIT_SYNC = auto()  # ACKEPOCH sent, waiting for DIFF / TRUNC / SNAP
    SYNCING = auto()  # until UPTODATE
    BROADCAST = auto()


class LearnerRole:
    def __init__(self, peer: QuorumPeer, leader: int, observer: bool) -> None:
        self.peer = peer
        self.cfg = peer.config
        self.leader = leader
        self.observer = observer
        self.state = ServerState.OBSERVING if observer else ServerState.FOLLOWING
        self.stage = Stage.CONNECTING
        now = peer.now_ms
        self.connect_deadline_ms = now + self.cfg.init_ms
        self.attempts = 1
        self.retry_at_ms: int | None = None
        self.read_deadline_ms = self.connect_deadline_ms
        self.new_epoch = -1
        self.newleader_config: str | None = None
        # syncWithLeader state
        self.write_to_log = True
        self.snapshot_needed = True
        self.sync_snapshot = False
        self.last_queued = 0
        # The zxid our state has once the sync's first packet took effect: a proposal or
        # commit at or below it is already in that state (see _stale)
        self.sync_base = 0
        self.not_committed: list[Proposal] = []
        self.committed_zxids: list[int] = []
        self.to_ack: list[Proposal] = []
        self.newleader_token: int | None = None
        self.newleader_acked = False
        # SNAP/TRUNC sync: the SNAP and the committed txns that follow wait for NEWLEADER,
        # where they are applied and snapshotted together (see _apply_at_newleader)
        self.pending_snap: tuple[int, bytes] | None = None
        self.deferred: list[Proposal] = []
        # broadcast state
        self.pending: list[Proposal] = []  # logged (or being logged), not committed yet
        self.tokens: dict[int, list[Proposal]] = {}
        peer.emit(Connect(leader))

    # -- public ---------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self.stage is Stage.BROADCAST

    @property
    def next_deadline_ms(self) -> int | None:
        if self.retry_at_ms is not None:
            return self.retry_at_ms
        return self.read_deadline_ms

    def handle(self, ev: Event) -> None:
        if isinstance(ev, PacketIn):
            if ev.sid == self.leader and self.stage is not Stage.CONNECTING:
                self.read_deadline_ms = self.peer.now_ms + self._read_limit_ms()
                try:
                    self._packet(ev.packet, ev.snapshot)
                except PacketError as e:
                    raise ZabError(f"bad {ev.packet.name} from the leader: {e}") from e
        elif isinstance(ev, ConnectionUp):
            if ev.sid == self.leader and self.stage is Stage.CONNECTING:
                self._register()
        elif isinstance(ev, ConnectionDown):
            if ev.sid == self.leader:
                self._connection_down()
        elif isinstance(ev, Forward):
            if self.serving:
                self._send(QuorumPacket(PacketType.REQUEST, -1, ev.request.encode(),
                                        ev.authinfo))
        elif isinstance(ev, RevalidateSession):
            if self.serving:
                self._send(QuorumPacket(PacketType.REVALIDATE, -1,
                                        P.encode_revalidate_request(ev.session_id,
                                                                    ev.timeout_ms)))

    def persisted(self, token: int) -> None:
        batch = self.tokens.pop(token, None)
        if batch is None:
            return
        if token == self.newleader_token:
            self.newleader_token = None
            self._ack_newleader()
        elif not self.observer:
            for p in batch:  # SendAckRequestProcessor
                self._send(P.simple(PacketType.ACK, p.zxid))

    def tick(self, now_ms: int) -> None:
        if self.retry_at_ms is not None:
            if now_ms >= self.retry_at_ms:
                self.retry_at_ms = None
                self.attempts += 1
                self.read_deadline_ms = self.connect_deadline_ms
                self.peer.emit(Connect(self.leader))
            return
        if now_ms >= self.read_deadline_ms:
            raise LeaveRole(f"no word from leader {self.leader} ({self.stage.name})")

    def shutdown(self) -> None:
        self.peer.emit(Disconnect(self.leader))

    # -- helpers --------------------------------------------------------------------------

    def _send(self, pkt: QuorumPacket) -> None:
        self.peer.emit(Send(self.leader, pkt))

    def _read_limit_ms(self) -> int:
        return self.cfg.sync_ms if self.newleader_acked or self.serving else self.cfg.init_ms

    def _connection_down(self) -> None:
        now = self.peer.now_ms
        if self.stage is Stage.CONNECTING and self.attempts < CONNECT_ATTEMPTS and \
                now + CONNECT_RETRY_MS < self.connect_deadline_ms:
            self.retry_at_ms = now + CONNECT_RETRY_MS
            return
        raise LeaveRole(f"lost the connection to leader {self.leader}")

    def _register(self) -> None:
        info = P.LearnerInfo(self.peer.my_id, P.ZAB_PROTOCOL_VERSION,
                             self.cfg.verifier.version)
        self._send(P.follower_info(self.peer.accepted_epoch, info, self.observer))
        self.stage = Stage.REGISTERING
        self.read_deadline_ms = self.peer.now_ms + self.cfg.init_ms

    def _packet(self, pkt: QuorumPacket, snapshot: bytes | None) -> None:
        if self.stage is Stage.REGISTERING:
            self._leader_info(pkt)
        elif self.stage is Stage.WAIT_SYNC:
            self._sync_start(pkt, snapshot)
        elif pkt.type in _TXN_PACKETS and self._stale(pkt):
            return  # (a COMMIT of the sync's overlap may even come after UPTODATE)
        elif self.stage is Stage.SYNCING:
            self._sync_packet(pkt)
        elif self.observer:
            self._observer_packet(pkt)
        else:
            self._follower_packet(pkt)

    # -- registration ---------------------------------------------------------------------

    def _leader_info(self, pkt: QuorumPacket) -> None:
        if pkt.type != PacketType.LEADERINFO:
            raise ZabError(f"expected LEADERINFO, got {pkt.name}")  # pre-Zab-1.0 leader
        P.decode_int(pkt.data)  # the leader's protocol version
        new_epoch = P.epoch_of(pkt.zxid)
        accepted = self.peer.accepted_epoch
        if new_epoch > accepted:
            current = self.peer.current_epoch
            self.peer.set_accepted_epoch(new_epoch)
        elif new_epoch == accepted:
            current = -1  # already acked this epoch: this must not count as an ack again
        else:
            raise ZabError(f"Leaders epoch, {new_epoch} is less than accepted epoch, "
                           f"{accepted}")
        self.new_epoch = new_epoch
        self._send(P.ack_epoch(self.peer.history.last_applied, current))
        self.stage = Stage.WAIT_SYNC

    # -- synchronization ------------------------------------------------------------------

    def _sync_start(self, pkt: QuorumPacket, snapshot: bytes | None) -> None:
        hist = self.peer.history
        self.sync_base = pkt.zxid if pkt.type != PacketType.DIFF else hist.last_applied
        if pkt.type == PacketType.DIFF:
            self.snapshot_needed = False
            self.write_to_log = True
        elif pkt.type == PacketType.SNAP:
            if snapshot is None:
                raise ZabError("SNAP without a snapshot")
            self.pending_snap = (pkt.zxid, snapshot)
            self.sync_snapshot = True
            self.write_to_log = False
        elif pkt.type == PacketType.TRUNC:
            self.peer.emit(Truncate(pkt.zxid))
            hist.truncated(pkt.zxid)
            self.write_to_log = False
        else:
            raise ZabError(f"Got unexpected packet from leader: {pkt.name}")
        self.peer.log(f"sync from leader {self.leader}: {pkt.name} 0x{pkt.zxid:x}")
        self.stage = Stage.SYNCING

    def _sync_packet(self, pkt: QuorumPacket) -> None:
        typ = pkt.type
        if typ == PacketType.PROPOSAL:
            self.not_committed.append(self._queued(Proposal.decode(pkt.data or b"")))
        elif typ == PacketType.COMMIT:
            self._sync_commit(pkt.zxid)
        elif typ == PacketType.COMMITANDACTIVATE:
            head = self.not_committed[0] if self.not_committed else None
            if head is not None and head.zxid == pkt.zxid:
                self._activate(head, P.decode_activate(pkt.data or b"")[0])
            self._sync_commit(pkt.zxid)
        elif typ in (PacketType.INFORM, PacketType.INFORMANDACTIVATE):
            if typ == PacketType.INFORM:
                p = self._queued(Proposal.decode(pkt.data or b""))
            else:
                designated, data = P.decode_activate(pkt.data or b"")
                p = Proposal.decode(data)
                self._activate(p, designated)
            if not self.write_to_log:
                self.deferred.append(p)
            else:
                self.not_committed.append(p)
                self.committed_zxids.append(pkt.zxid)
        elif typ == PacketType.NEWLEADER:
            self._newleader(pkt)
        elif typ == PacketType.UPTODATE:
            self._uptodate()
        # anything else (PING included) is not read during sync, as in Java

    def _stale(self, pkt: QuorumPacket) -> bool:
        """A txn the sync's starting state already holds. Java's leader reads the SNAP's
        zxid only when it starts streaming the snapshot, after it chose which proposals to
        forward, so a txn committed in between arrives both inside the (fuzzy) snapshot and
        as PROPOSAL/COMMIT after it. Java's learner re-applies it (replay is idempotent);
        we drop it, which leaves the same state, and keep zxids strictly increasing."""
        if pkt.zxid > self.sync_base:
            return False
        self.peer.log(f"{pkt.name} 0x{pkt.zxid:x} is already in the synced state "
                      f"(0x{self.sync_base:x})")
        return True

    def _queued(self, p: Proposal) -> Proposal:
        if p.zxid != self.last_queued + 1:
            self.peer.log(f"Got zxid 0x{p.zxid:x} expected 0x{self.last_queued + 1:x}")
        self.last_queued = p.zxid
        return p

    def _sync_commit(self, zxid: int) -> None:
        if self.write_to_log:  # matched against the pending proposals at UPTODATE
            self.committed_zxids.append(zxid)
            return
        if not self.not_committed:
            raise ZabError(f"COMMIT 0x{zxid:x} without a proposal")
        head = self.not_committed[0]
        if head.zxid != zxid:
            self.peer.log(f"Committing 0x{zxid:x}, but next proposal is 0x{head.zxid:x}")
            return
        self.not_committed.pop(0)
        self.deferred.append(head)

    def _apply_at_newleader(self) -> None:
        """A SNAP/TRUNC sync takes effect only now, with the snapshot that makes it durable:
        LoadSnapshot drops the whole log, and txns applied without logging are on no disk,
        so a role ending before NEWLEADER must leave the state as its disk has it (Java gets
        there by shutting its ZooKeeperServer down fully after an unfinished SNAP sync)."""
        if self.pending_snap is not None:
            zxid, body = self.pending_snap
            self.pending_snap = None
            self.peer.emit(LoadSnapshot(zxid, body))
            self.peer.history.snapshot_loaded(zxid)
        if self.deferred:
            self.peer.apply(self.deferred)
            self.deferred = []

    def _newleader(self, pkt: QuorumPacket) -> None:
        if pkt.data is not None and len(pkt.data) > 1:
            self.newleader_config = pkt.data.decode("utf-8", "replace")
        self._apply_at_newleader()
        if self.snapshot_needed:
            self.peer.emit(TakeSnapshot(self.sync_snapshot))
            self.peer.history.snapshot_taken()
        self.write_to_log = True
        self.newleader_acked = True  # from now on the read timeout is syncLimit
        if not self.observer and self.not_committed:
            self.to_ack = self.not_committed
            self.not_committed = []
            token = self.peer.persist(self.to_ack)
            self.tokens[token] = self.to_ack
            self.newleader_token = token  # ACK only once they are on disk (ZOOKEEPER-3911)
        else:
            self._ack_newleader()

    def _ack_newleader(self) -> None:
        self.peer.set_current_epoch(self.new_epoch, self.leader)
        self._send(P.simple(PacketType.ACK, make_zxid(self.new_epoch, 0)))

    def _uptodate(self) -> None:
        if self.newleader_token is not None:
            raise ZabError("UPTODATE before our NEWLEADER ACK")
        self._send(P.simple(PacketType.ACK, make_zxid(self.new_epoch, 0)))
        if self.newleader_config is not None:
            self._activate_newleader_config(self.newleader_config)
        self.stage = Stage.BROADCAST
        self.peer.emit(StartServing(self.state, self.new_epoch, self.peer.history.last_applied))
        self.peer.election.update_election_vote(self.new_epoch)  # ZOOKEEPER-1732
        if self.observer:
            self._observer_catch_up()
            return
        for p in self.to_ack:
            self._send(P.simple(PacketType.ACK, p.zxid))
        self.pending = self.to_ack
        self.to_ack = []
        if self.not_committed:
            self._log(self.not_committed)
        for zxid in self.committed_zxids:
            self._commit(zxid)
        self.not_committed, self.committed_zxids = [], []

    def _observer_catch_up(self) -> None:
        committed = list(self.committed_zxids)
        for p in self.not_committed:
            if not committed or committed[0] != p.zxid:
                self.peer.log(f"no commit for 0x{p.zxid:x} from the sync")
                continue
            committed.pop(0)
            self._log([p])
            self.peer.apply([p])
        self.not_committed, self.committed_zxids = [], []

    # -- broadcast ------------------------------------------------------------------------

    def _log(self, proposals: list[Proposal]) -> None:
        if not self.observer:
            self.pending.extend(proposals)
        token = self.peer.persist(proposals)
        self.tokens[token] = list(proposals)

    def _commit(self, zxid: int) -> None:
        """FollowerZooKeeperServer.commit: the oldest pending proposal must be this one."""
        if not self.pending:
            self.peer.log(f"Committing 0x{zxid:x} without seeing txn")
            return
        head = self.pending[0]
        if head.zxid != zxid:
            raise ZabError(f"Committing zxid 0x{zxid:x} but next pending txn 0x{head.zxid:x}")
        self.pending.pop(0)
        self.peer.apply([head])

    def _common_packet(self, pkt: QuorumPacket) -> bool:
        typ = pkt.type
        if typ == PacketType.PING:
            self._send(P.ping_reply(pkt, self.peer.host.touched_sessions()))
        elif typ == PacketType.REVALIDATE:
            session_id, valid = P.decode_revalidate_reply(pkt.data or b"")
            self.peer.emit(RevalidateResult(session_id, valid))
        elif typ == PacketType.SYNC:
            self.peer.emit(SyncReply())
        else:
            return False
        return True

    def _follower_packet(self, pkt: QuorumPacket) -> None:
        if self._common_packet(pkt):
            return
        if pkt.type == PacketType.PROPOSAL:
            self._log([self._queued(Proposal.decode(pkt.data or b""))])
        elif pkt.type == PacketType.COMMIT:
            self._commit(pkt.zxid)
        elif pkt.type == PacketType.COMMITANDACTIVATE:
            designated = P.decode_activate(pkt.data or b"")[0]
            change = bool(self.pending) and self._activate(self.pending[0], designated,
                                                            leave=False)
            self._commit(pkt.zxid)
            if change:
                raise LeaveRole("changes proposed in reconfig")
        else:
            self.peer.log(f"unexpected {pkt.name} from the leader")

    def _observer_packet(self, pkt: QuorumPacket) -> None:
        if self._common_packet(pkt):
            return
        if pkt.type == PacketType.INFORM:
            p = self._queued(Proposal.decode(pkt.data or b""))
            self._log([p])
            self.peer.apply([p])
        elif pkt.type == PacketType.INFORMANDACTIVATE:
            designated, data = P.decode_activate(pkt.data or b"")
            p = Proposal.decode(data)
            change = self._activate(p, designated, leave=False)
            self._log([p])
            self.peer.apply([p])
            if change:
                raise LeaveRole("changes proposed in reconfig")
        else:
            self.peer.log(f"ignoring {pkt.name} from the leader")

    # -- reconfiguration --------------------------------------------------------------------

    def _activate(self, p: Proposal, designated: int, leave: bool = True) -> bool:
        """COMMITANDACTIVATE / INFORMANDACTIVATE of the reconfig `p`: its configuration
        takes effect. A change of our kind or of the leader ends the role (at once, or,
        with `leave=False`, once the caller has applied `p`): returns whether it must."""
        qv = proposal_config(p)
        if qv is None:
            raise ZabError(f"activation of 0x{p.zxid:x}, which is not a reconfig")
        role_changed = self.peer.activate(qv)
        self.cfg = self.peer.config
        change = role_changed or designated != self.leader
        if change and leave:
            raise LeaveRole("changes proposed in reconfig")
        return change

    def _activate_newleader_config(self, text: str) -> None:
        """UPTODATE: the configuration the leader sent in NEWLEADER takes effect; without a
        designated leader, ours must still be a voter of it at the same address."""
        try:
            qv = verifier_from_text(text)
        except ValueError:
            return
        old = self.cfg.verifier
        role_changed = self.peer.activate(qv)
        self.cfg = self.peer.config
        if self.cfg.verifier is not qv or not is_newer(qv, old):
            return
        before, after = old.voting_members.get(self.leader), qv.voting_members.get(self.leader)
        moved = before is None or after is None or before.quorum_addrs != after.quorum_addrs
        if role_changed or moved:
            raise LeaveRole("changes proposed in reconfig")

"""The leader role of the Zab core (Java's Leader + LearnerHandler), without I/O.

Phases, as Leader.lead() goes through them:

1. EPOCH (getEpochToPropose): learners send FOLLOWERINFO/OBSERVERINFO with their accepted
   epoch; once the leader and a quorum of participants are connected, the new epoch is
   max(accepted epochs seen, observers' included) + 1, persisted as our acceptedEpoch, and
   LEADERINFO{epoch << 32} goes to every waiting learner.
2. EPOCH_ACK (waitForEpochAck): learners answer ACKEPOCH{lastZxid, currentEpoch or -1}. One
   whose (currentEpoch, lastZxid) is newer than ours is dropped (it should lead). A quorum
   (us included) of fresh acks establishes the epoch: currentEpoch persisted, then every
   waiting learner is synced (syncplan.py) and sent NEWLEADER{epoch << 32, config text}.
3. NEWLEADER_ACK (waitForNewLeaderAck): a quorum of participants' ACK{epoch << 32} (us
   included) and we start serving (startZkServer: lastProcessedZxid = epoch << 32); every
   learner that acked gets UPTODATE, later ones right after their ACK.
4. BROADCAST: `Propose` -> PROPOSAL to forwarding followers + our own Persist; ACKs (ours
   when the Persist completes) -> COMMIT in zxid order to followers, INFORM to observers,
   Apply locally; pending learner syncs answered with SYNC. Every tickTime/2 each learner is
   pinged with the last proposed zxid; every tickTime we step down unless a quorum of
   participants is still synced (heard from within syncLimit ticks).

Each phase times out after initLimit ticks (LeaveRole -> the peer goes back to LOOKING).
A learner connecting later goes through the same steps without waiting for quorums.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING

from . import packets as P
from .activation import designated_leader, proposal_config
from .config import QuorumVerifier, verifier_from_text
from .election_wire import ServerState
from .learner_handle import LearnerHandle, Stage
from .packets import PacketError, PacketType, QuorumPacket, make_zxid
from .syncplan import LogReader, plan_sync
from .zab_events import (
    ConnectionDown,
    Disconnect,
    Event,
    LearnerRequest,
    LearnerSync,
    LeaveRole,
    PacketIn,
    Proposal,
    Propose,
    Revalidate,
    RevalidateReply,
    Send,
    SendSnapshot,
    StartServing,
    TouchSessions,
)

if TYPE_CHECKING:
    from .peer import QuorumPeer

COUNTER_MAX = 0xFFFFFFFF


class Phase(Enum):
    EPOCH = auto()
    EPOCH_ACK = auto()
    NEWLEADER_ACK = auto()
    BROADCAST = auto()


@dataclass
class Outstanding:
    """A proposal waiting for a quorum of ACKs (voters only count). While a reconfig is in
    flight, proposals need a quorum of its new configuration too (`next_qv`)."""
    proposal: Proposal
    acks: set[int] = field(default_factory=set)
    next_qv: QuorumVerifier | None = None


class LeaderRole:
    def __init__(self, peer: QuorumPeer) -> None:
        self.peer = peer
        self.cfg = peer.config
        self.verifier = peer.config.verifier
        self.my_id = peer.my_id
        self.handles: dict[int, LearnerHandle] = {}
        self.phase = Phase.EPOCH
        self.phase_deadline_ms = peer.now_ms + self.cfg.init_ms
        # leaderStateSummary: what a learner must not be ahead of
        self.summary = (peer.current_epoch, peer.history.last_applied)
        self.epoch = -1
        self.connecting: set[int] = set()
        self.electing: set[int] = set()
        self.newleader_acks: set[int] = set()
        self.config_text = ""
        self.last_proposed = 0
        self.last_committed = 0
        self.outstanding: OrderedDict[int, Outstanding] = OrderedDict()
        self.next_qv: QuorumVerifier | None = None  # proposed by a reconfig, not yet active
        self.pending_syncs: dict[int, list[LearnerHandle]] = {}
        self.tokens: dict[int, list[int]] = {}
        self.tick_count = 0
        self.tick_skip = True
        self.next_half_tick_ms: int | None = None
        # Java's loadData() snapshots here, before the epoch is established; not done: the
        # state may hold txns fast-forwarded from our log that a TRUNC will have to remove.
        self._epoch_to_propose(self.my_id, peer.accepted_epoch)

    # -- public ---------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self.phase is Phase.BROADCAST

    @property
    def next_deadline_ms(self) -> int | None:
        own = self.next_half_tick_ms if self.serving else self.phase_deadline_ms
        times = [h.read_deadline_ms for h in self.handles.values() if not self._blocked(h)]
        return min(times + [own]) if own is not None else min(times, default=None)

    def handle(self, ev: Event) -> None:
        if isinstance(ev, PacketIn):
            self._packet(ev.sid, ev.packet)
        elif isinstance(ev, ConnectionDown):
            self.handles.pop(ev.sid, None)
        elif isinstance(ev, Propose):
            self._propose(ev)
        elif isinstance(ev, LearnerSync):
            self._learner_sync(ev.sid)
        elif isinstance(ev, RevalidateReply):
            h = self.handles.get(ev.sid)
            if h is not None:
                self._send(h, QuorumPacket(PacketType.REVALIDATE, -1,
                                           P.encode_revalidate_reply(ev.session_id, ev.valid)))

    def persisted(self, token: int) -> None:
        """Our own log write is durable: that is our ACK (AckRequestProcessor)."""
        for zxid in self.tokens.pop(token, ()):
            self._process_ack(self.my_id, zxid)

    def tick(self, now_ms: int) -> None:
        for h in list(self.handles.values()):
            if now_ms >= h.read_deadline_ms and not self._blocked(h):
                self._drop(h, "read timeout")
        if not self.serving:
            if now_ms >= self.phase_deadline_ms:
                raise LeaveRole(f"timeout waiting for a quorum in phase {self.phase.name}")
            return
        assert self.next_half_tick_ms is not None
        while now_ms >= self.next_half_tick_ms:
            self.next_half_tick_ms += max(1, self.cfg.tick_time_ms // 2)
            self._half_tick(now_ms)

    def shutdown(self) -> None:
        for sid in list(self.handles):
            self.peer.emit(Disconnect(sid))
        self.handles.clear()

    # -- read-only views for mntr and the AdminServer (Leader.getLearners & co.) ---------

    @property
    def learner_count(self) -> int:
        """Connected learners, synced or not."""
        return len(self.handles)

    def synced_learners(self, observers: bool) -> list[int]:
        """Learners receiving the broadcast: followers (forwardingFollowers) or observers."""
        return [sid for sid, h in self.handles.items()
                if h.forwarding and h.observer == observers]

    def synced_non_voting_followers(self) -> list[int]:
        return [sid for sid in self.synced_learners(False) if not self._participant(sid)]

    def quorum_synced(self, qv: QuorumVerifier) -> bool:
        """Leader.isQuorumSynced: do we and our synced followers hold a quorum of `qv`?
        (A reconfig is refused unless its new configuration has one.)"""
        ids = {self.my_id} if qv.is_voter(self.my_id) else set()
        ids |= {h.sid for h in self.handles.values()
                if h.forwarding and not h.observer and h.synced(self.tick_count)
                and qv.is_voter(h.sid)}
        return qv.contains_quorum(ids)

    @property
    def pending_sync_count(self) -> int:
        """Zxids that learners' sync requests wait on (pendingSyncs.size())."""
        return len(self.pending_syncs)

    # -- helpers --------------------------------------------------------------------------

    def _participant(self, sid: int) -> bool:
        return self.verifier.is_voter(sid)

    def _send(self, h: LearnerHandle, pkt: QuorumPacket) -> None:
        if pkt.type == PacketType.PROPOSAL:
            h.check.proposal_sent(pkt.zxid, self.peer.now_ms)
        self.peer.emit(Send(h.sid, pkt))

    def _drop(self, h: LearnerHandle, reason: str) -> None:
        self.peer.log(f"dropping learner {h.sid}: {reason}")
        if self.handles.get(h.sid) is h:
            del self.handles[h.sid]
            self.peer.emit(Disconnect(h.sid))

    def _blocked(self, h: LearnerHandle) -> bool:
        """Java's handler thread is waiting for a quorum, not reading its socket: only the
        leader's own wait (the phase deadline) can time it out."""
        return h.stage in (Stage.INFO, Stage.EPOCH_ACKED) or \
            h.stage is Stage.NEWLEADER_ACKED and not self.serving

    def _read_limit_ms(self, h: LearnerHandle) -> int:
        return self.cfg.sync_ms if h.acked_newleader else self.cfg.init_ms

    # -- packets from learners ----------------------------------------------------------

    def _packet(self, sid: int, pkt: QuorumPacket) -> None:
        if pkt.type in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
            self._learner_info(sid, pkt)
            return
        h = self.handles.get(sid)
        if h is None:
            return
        h.read_deadline_ms = self.peer.now_ms + self._read_limit_ms(h)
        try:
            if h.stage is Stage.EPOCH_SENT:
                self._ack_epoch(h, pkt)
            elif h.stage is Stage.NEWLEADER_SENT:
                self._newleader_ack_packet(h, pkt)
            elif h.stage in (Stage.NEWLEADER_ACKED, Stage.UPTODATE_SENT):
                self._broadcast_packet(h, pkt)
            else:
                self._drop(h, f"unexpected {pkt.name} while {h.stage.name}")
        except PacketError as e:
            self._drop(h, f"bad {pkt.name}: {e}")

    def _learner_info(self, sid: int, pkt: QuorumPacket) -> None:
        now = self.peer.now_ms
        try:
            info = P.LearnerInfo.decode(pkt.data or b"")
        except PacketError:
            self.peer.emit(Disconnect(sid))  # Java would invent a negative sid
            return
        if info.config_version > self.verifier.version or \
                info.protocol_version < P.ZAB_PROTOCOL_VERSION:
            self.peer.emit(Disconnect(sid))  # ahead of our config / pre-Zab-1.0 learner
            return
        h = LearnerHandle(sid, pkt.type == PacketType.OBSERVERINFO, info.protocol_version,
                          P.epoch_of(pkt.zxid), now + self.cfg.init_ms,
                          self.tick_count + self.cfg.init_limit + self.cfg.sync_limit)
        self.handles[sid] = h
        self._epoch_to_propose(sid, h.accepted_epoch)
        if self.phase is not Phase.EPOCH and h.stage is Stage.INFO:
            self._send_leader_info(h)

    def _ack_epoch(self, h: LearnerHandle, pkt: QuorumPacket) -> None:
        if pkt.type != PacketType.ACKEPOCH:
            self._drop(h, f"{pkt.name} is not ACKEPOCH")
            return
        current_epoch = P.decode_int(pkt.data)
        h.peer_last_zxid = pkt.zxid
        h.stage = Stage.EPOCH_ACKED
        if not self._epoch_ack(h.sid, current_epoch, pkt.zxid):
            self._drop(h, "follower is ahead of the leader")
            return
        if self.phase in (Phase.NEWLEADER_ACK, Phase.BROADCAST) and h.stage is Stage.EPOCH_ACKED:
            self._sync(h)

    def _newleader_ack_packet(self, h: LearnerHandle, pkt: QuorumPacket) -> None:
        if pkt.type != PacketType.ACK:
            self._drop(h, f"{pkt.name} instead of the NEWLEADER ACK")
            return
        h.stage = Stage.NEWLEADER_ACKED
        h.check.start()
        h.read_deadline_ms = self.peer.now_ms + self.cfg.sync_ms
        self._newleader_ack(h.sid, pkt.zxid)
        if self.serving and h.stage is Stage.NEWLEADER_ACKED:
            self._uptodate(h)

    def _broadcast_packet(self, h: LearnerHandle, pkt: QuorumPacket) -> None:
        h.tick_deadline = self.tick_count + self.cfg.sync_limit
        typ = pkt.type
        if typ == PacketType.ACK:
            h.check.acked(pkt.zxid)
            self._process_ack(h.sid, pkt.zxid)
        elif typ == PacketType.PING:
            touches = P.decode_touches(pkt.data)
            if touches:
                self.peer.emit(TouchSessions(h.sid, tuple(touches)))
        elif typ == PacketType.REVALIDATE:
            session_id, timeout = P.decode_revalidate_request(pkt.data or b"")
            self.peer.emit(Revalidate(h.sid, session_id, timeout))
        elif typ == PacketType.REQUEST:
            req = P.ForwardedRequest.decode(pkt.data or b"")
            self.peer.emit(LearnerRequest(h.sid, req, pkt.authinfo))
        else:
            self.peer.log(f"unexpected {pkt.name} from learner {h.sid}")

    # -- discovery ------------------------------------------------------------------------

    def _epoch_to_propose(self, sid: int, last_accepted: int) -> None:
        if self.phase is not Phase.EPOCH:
            return
        if last_accepted >= self.epoch:
            self.epoch = last_accepted + 1
        if self._participant(sid):
            self.connecting.add(sid)
        if self.my_id in self.connecting and self.verifier.contains_quorum(self.connecting):
            self._epoch_decided()

    def _epoch_decided(self) -> None:
        self.peer.set_accepted_epoch(self.epoch)
        self.last_proposed = make_zxid(self.epoch, 0)
        self.phase = Phase.EPOCH_ACK
        self.phase_deadline_ms = self.peer.now_ms + self.cfg.init_ms
        for h in list(self.handles.values()):
            if h.stage is Stage.INFO:
                self._send_leader_info(h)
        self._epoch_ack(self.my_id, *self.summary)

    def _send_leader_info(self, h: LearnerHandle) -> None:
        self._send(h, P.leader_info(self.epoch))
        h.stage = Stage.EPOCH_SENT
        h.read_deadline_ms = self.peer.now_ms + self.cfg.init_ms

    def _epoch_ack(self, sid: int, current_epoch: int, last_zxid: int) -> bool:
        """waitForEpochAck; False if the learner is more recent than us."""
        if self.phase is not Phase.EPOCH_ACK:
            return True
        if current_epoch != -1:
            if (current_epoch, last_zxid) > self.summary:
                return False
            if last_zxid != -1 and self._participant(sid):
                self.electing.add(sid)
        if self.my_id in self.electing and self.verifier.contains_quorum(self.electing):
            self._epoch_established()
        return True

    def _epoch_established(self) -> None:
        self.peer.set_current_epoch(self.epoch, self.my_id)
        self.phase = Phase.NEWLEADER_ACK
        self.phase_deadline_ms = self.peer.now_ms + self.cfg.init_ms
        qv = self.verifier
        if self.cfg.reconfig_enabled and qv.version == 0:
            qv = qv.with_version(make_zxid(self.epoch, 0))  # ZOOKEEPER-1783's first version
        self.config_text = qv.to_string()
        for h in list(self.handles.values()):
            if h.stage is Stage.EPOCH_ACKED:
                self._sync(h)
        self._newleader_ack(self.my_id, make_zxid(self.epoch, 0))

    # -- synchronization ------------------------------------------------------------------

    def _log_reader(self) -> LogReader | None:
        factor = self.cfg.snapshot_size_factor
        if factor < 0:
            return None
        host = self.peer.host
        limit = int(host.snapshot_size() * factor)
        return lambda start, end: host.read_log(start, end, limit)

    def _sync(self, h: LearnerHandle) -> None:
        """syncFollower + startForwarding + NEWLEADER."""
        hist = self.peer.history
        plan = plan_sync(h.peer_last_zxid, hist.last_applied, hist.committed,
                         read_log=self._log_reader(), force_snap=self.cfg.force_snap_sync)
        self.peer.log(f"sync learner {h.sid} peerLastZxid=0x{h.peer_last_zxid:x}: {plan.mode}")
        if plan.snap:
            self.peer.emit(SendSnapshot(h.sid, hist.last_applied))
        for pkt in plan.packets:
            self._send(h, pkt)
        self._start_forwarding(h, plan.current_zxid)
        self._send(h, P.new_leader(self.epoch, self.config_text))
        h.sending = True
        h.stage = Stage.NEWLEADER_SENT
        h.read_deadline_ms = self.peer.now_ms + self.cfg.init_ms

    def _start_forwarding(self, h: LearnerHandle, last_seen: int) -> None:
        """Proposals past the sync point. Committed ones are already in the plan: this core
        applies a txn as soon as it commits, so Java's toBeApplied list is always empty."""
        if self.last_proposed > last_seen and not h.observer:
            for zxid, op in self.outstanding.items():
                if zxid > last_seen:
                    self._send(h, op.proposal.packet())
        h.forwarding = True

    def _newleader_ack(self, sid: int, zxid: int) -> None:
        if self.phase is not Phase.NEWLEADER_ACK:
            return
        if zxid != make_zxid(self.epoch, 0):
            self.peer.log(f"NEWLEADER ACK from {sid} for another epoch: 0x{zxid:x}")
            return
        if self._participant(sid):
            self.newleader_acks.add(sid)
        if self.verifier.contains_quorum(self.newleader_acks):
            self._start_serving()

    def _start_serving(self) -> None:
        """startZkServer."""
        self.phase = Phase.BROADCAST
        zxid = make_zxid(self.epoch, 0)
        self.last_committed = zxid
        self.peer.history.set_processed(zxid)
        if self.cfg.reconfig_enabled and self.config_text:
            self.peer.activate(verifier_from_text(self.config_text))  # processReconfig
        self.peer.election.update_election_vote(self.epoch)
        self.peer.emit(StartServing(ServerState.LEADING, self.epoch, zxid))
        self.tick_count, self.tick_skip = 0, True
        self.next_half_tick_ms = self.peer.now_ms + max(1, self.cfg.tick_time_ms // 2)
        for h in list(self.handles.values()):
            if h.stage is Stage.NEWLEADER_ACKED:
                self._uptodate(h)

    def _uptodate(self, h: LearnerHandle) -> None:
        self._send(h, P.simple(PacketType.UPTODATE, -1))
        h.stage = Stage.UPTODATE_SENT
        h.read_deadline_ms = self.peer.now_ms + self.cfg.sync_ms

    # -- broadcast ------------------------------------------------------------------------

    def _propose(self, ev: Propose) -> None:
        if not self.serving:
            self.peer.log(f"dropping {len(ev.txns)} txns: not serving")
            return
        batch: list[Proposal] = []
        for txn in ev.txns:
            if txn.zxid != self.last_proposed + 1:
                raise AssertionError(f"proposal 0x{txn.zxid:x} does not follow "
                                     f"0x{self.last_proposed:x}")
            if P.counter_of(txn.zxid) == COUNTER_MAX:
                raise LeaveRole("zxid lower 32 bits have rolled over, forcing re-election")
            p = Proposal.of(txn)
            qv = proposal_config(p)
            if qv is not None:
                self.next_qv = qv  # setLastSeenQuorumVerifier
            self.outstanding[p.zxid] = Outstanding(p, next_qv=self.next_qv)
            self.last_proposed = p.zxid
            pkt = p.packet()
            for h in self.handles.values():
                if h.forwarding and not h.observer:
                    self._send(h, pkt)
            batch.append(p)
        if batch:
            token = self.peer.persist(batch)
            self.tokens[token] = [p.zxid for p in batch]

    def _process_ack(self, sid: int, zxid: int) -> None:
        if P.counter_of(zxid) == 0 or not self.outstanding or zxid <= self.last_committed:
            return  # NEWLEADER/UPTODATE acks, or already committed
        op = self.outstanding.get(zxid)
        if op is None:
            self.peer.log(f"ACK from {sid} for unknown proposal 0x{zxid:x}")
            return
        if self._participant(sid) or op.next_qv is not None and op.next_qv.is_voter(sid):
            op.acks.add(sid)
        while zxid in self.outstanding and self._try_to_commit(zxid):
            zxid += 1

    def _try_to_commit(self, zxid: int) -> bool:
        if zxid - 1 in self.outstanding:
            return False  # commit in order
        op = self.outstanding[zxid]
        if not self.verifier.contains_quorum(op.acks) or \
                op.next_qv is not None and not op.next_qv.contains_quorum(op.acks):
            return False
        if zxid <= self.last_committed:
            raise AssertionError(f"committing 0x{zxid:x} after 0x{self.last_committed:x}")
        del self.outstanding[zxid]
        self.last_committed = zxid
        new_qv = proposal_config(op.proposal)
        designated = self.my_id
        if new_qv is None:
            commit = P.simple(PacketType.COMMIT, zxid)
            inform = op.proposal.packet(PacketType.INFORM)
        else:
            designated = designated_leader(new_qv, self.verifier, self.my_id,
                                           [op.acks, *self._ackers(zxid + 1)])
            commit = QuorumPacket(PacketType.COMMITANDACTIVATE, zxid,
                                  P.encode_activate(designated))
            inform = QuorumPacket(PacketType.INFORMANDACTIVATE, zxid,
                                  P.encode_activate(designated, op.proposal.data))
        for h in self.handles.values():
            if h.forwarding:
                self._send(h, inform if h.observer else commit)
        self.peer.apply([op.proposal])
        for h in self.pending_syncs.pop(zxid, ()):
            self._answer_sync(h)
        if new_qv is not None:
            self._activated(new_qv, designated)
        return True

    def _ackers(self, zxid: int) -> list[set[int]]:
        """Who acked each outstanding proposal from `zxid` on, in order."""
        out = []
        while zxid in self.outstanding:
            out.append(self.outstanding[zxid].acks)
            zxid += 1
        return out

    def _activated(self, qv: QuorumVerifier, designated: int) -> None:
        """The reconfig committed: switch to its configuration. If another server is to
        lead it, stop leading (the followers elect it; Java stops committing instead and
        loses its quorum soon after)."""
        if self.next_qv is not None and self.next_qv.version <= qv.version:
            self.next_qv = None
        role_changed = self.peer.activate(qv)
        self.config_text = self.verifier.to_string()  # what later learners get in NEWLEADER
        if designated != self.my_id or role_changed:
            raise LeaveRole(f"reconfig 0x{qv.version:x} designates leader {designated}")

    def _learner_sync(self, sid: int) -> None:
        """processSync: answer now, or once the last proposal so far is committed. The
        answer belongs to the learner's connection of now (Java keeps its LearnerHandler):
        after a reconnect it must not release a newer sync early."""
        h = self.handles.get(sid)
        if h is None:
            return
        if not self.outstanding:
            self._answer_sync(h)
        else:
            self.pending_syncs.setdefault(self.last_proposed, []).append(h)

    def _answer_sync(self, h: LearnerHandle) -> None:
        if self.handles.get(h.sid) is h:
            self._send(h, P.simple(PacketType.SYNC, 0))

    def _half_tick(self, now_ms: int) -> None:
        """One turn of lead()'s loop: tick, check the synced quorum, ping everyone."""
        if not self.tick_skip:
            self.tick_count += 1
        synced = {self.my_id} | {h.sid for h in self.handles.values()
                                 if self._participant(h.sid) and h.synced(self.tick_count)}
        if not self.tick_skip and not self.verifier.contains_quorum(synced):
            raise LeaveRole(f"Not sufficient followers synced, only synced with sids: "
                            f"{sorted(synced)}")
        self.tick_skip = not self.tick_skip
        ping = P.simple(PacketType.PING, self.last_proposed)
        for h in list(self.handles.values()):
            if not h.sending:
                continue
            if h.check.ok(now_ms, self.cfg.sync_ms):
                self._send(h, ping)
            else:
                self._drop(h, "transaction timeout")

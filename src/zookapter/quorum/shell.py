"""A zookapter server in an ensemble: the asyncio shell around the Zab core (`QuorumPeer`).

`QuorumServer` owns everything with side effects, and nothing else:

- disk: the dataDir (snapshots, txn log with group commit, acceptedEpoch/currentEpoch);
- the election port (`ElectionConnections`), the quorum port while leading (learners'
  `QuorumChannel`s), the connection to the leader while following or observing;
- the client port, served by a `LeaderCore` or `LearnerCore` (server/roles.py) while the
  peer is serving, and refused (4lw still answered) while it is not;
- the wall clock and one timer that calls `peer.tick` at the core's next deadline.

Events go into the core one at a time (`_step`); the actions it returns are carried out in
order, which is the contract zab_events.py spells out: sends keep their order per peer,
`Persist` completions come back in order, and Apply/Truncate/LoadSnapshot/TakeSnapshot/
PersistEpoch are done before the next action runs. Actions that produce events (a leader
answering REVALIDATE) queue them behind the current batch.

Client connections are closed whenever the role changes, as ZooKeeper shuts its
ZooKeeperServer down and builds a new one for the next role over the same database. With
readonlymode.enabled a peer that stays LOOKING serves read-only clients (readonly.py).
The AdminServer runs as for a standalone server; what mntr, srvr, conf and the AdminServer
report about the quorum comes from `quorum_view` (opsview.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..ops import fourletter
from ..ops.adminserver import AdminServer
from ..ops.endpoints import start_endpoints, stop_endpoints
from ..protocol.txns import Txn
from ..server.acl import AuthProviders
from ..server.cnxlimit import ConnectionLimiter
from ..server.config import ServerConfig, parse_properties
from ..server.connection import ClientConnection
from ..server.core import CoreConfig, ServerCore
from ..server.readonly import ReadOnlyCore
from ..server.roles import LeaderCore, LearnerCore
from ..server.sasl import SaslServerFactory
from ..server.standalone import wall_clock_ms
from ..storage.database import Database
from ..storage.epochs import ACCEPTED_EPOCH, CURRENT_EPOCH, read_epoch
from ..storage.persister import TxnLogPersister
from ..storage.snapshot import serialize_wire_snapshot
from .channel import QuorumChannel
from .cnxmanager import ElectionConnections
from .config import QuorumPeerConfig, parse_quorum_peer_config
from .dynconfig import (
    backup_static_config,
    election_peers,
    planner_for,
    show_config,
    with_verifier,
    write_config,
)
from .election_wire import ServerState
from .opsview import ProposalStats, QuorumView
from .packets import LearnerInfo, PacketType, QuorumPacket
from .peer import QuorumPeer, ZabConfig
from .readonly import ReadOnlyMode
from .shell_disk import DiskActions
from .zab_events import (
    Apply,
    Connect,
    ConnectionDown,
    ConnectionUp,
    Disconnect,
    Event,
    Forward,
    LearnerRequest,
    LearnerSync,
    LoadSnapshot,
    NewerConfig,
    PacketIn,
    Persist,
    Persisted,
    PersistEpoch,
    Propose,
    Revalidate,
    RevalidateReply,
    RevalidateResult,
    RevalidateSession,
    RoleChanged,
    Send,
    SendSnapshot,
    SendVote,
    StartServing,
    SyncReply,
    TakeSnapshot,
    TouchSessions,
    Truncate,
    VoteIn,
)

if TYPE_CHECKING:
    from ..ops.prometheus import PrometheusEndpoint

log = logging.getLogger("zookapter.quorum")

CONNECT_TIMEOUT_S = 5.0


_MODE_NAMES = {ServerState.LEADING: "leader", ServerState.FOLLOWING: "follower",
               ServerState.OBSERVING: "observer"}


class _NotServing(ServerCore):
    """The core behind client connections while the peer is not serving: ZooKeeper closes
    them ("ZooKeeperServer not running") but still answers four-letter words."""

    def connect(self, conn, req) -> bool:  # type: ignore[no-untyped-def]
        log.info("refusing a client session: this server is not serving (no quorum)")
        return False


class QuorumServer(DiskActions):
    """One ensemble member; see the module docstring."""

    def __init__(self, config: ServerConfig, qcfg: QuorumPeerConfig,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        assert qcfg.my_id is not None and qcfg.me is not None
        self.config = config
        self.qcfg = qcfg
        self.my_id = qcfg.my_id
        config.server_id = qcfg.my_id  # conf / AdminServer report the peer's id
        self.clock = clock
        self.database: Database | None = None
        self.persister: TxnLogPersister | None = None
        self.tree = None  # type: ignore[assignment]
        self.sessions: dict[int, int] = {}
        self.peer: QuorumPeer | None = None
        self.election: ElectionConnections | None = None
        self.core: LeaderCore | LearnerCore | ReadOnlyCore | None = None
        self.idle_core: ServerCore | None = None
        self.state = ServerState.LOOKING
        self.leader_id: int | None = None
        self.port: int | None = None
        self.secure_port: int | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self.limiter = ConnectionLimiter(config.max_client_cnxns)
        self.stopped = asyncio.Event()
        self._learners: dict[int, QuorumChannel] = {}
        self._leader_channel: QuorumChannel | None = None
        self._quorum_server: asyncio.base_events.Server | None = None
        self._events: deque[Event] = deque()
        self._stepping = False
        self._revalidating: dict[int, deque[Callable[[bool], None]]] = {}
        self._tasks: list[asyncio.Task] = []
        self._wakeup = asyncio.Event()
        self._tick_at_ms = 0  # when the ticker plans to wake up next (clock ms)
        self._deadline_check_due = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log_holds_from = 0  # read_log serves nothing before this zxid
        self.started_at = time.time()
        self.read_only = ReadOnlyMode(self)
        self.quorum_view = QuorumView(self)  # what the ops modules ask about the quorum
        self.proposal_stats = ProposalStats()
        self._leading_since_ms: int | None = None
        self.admin: AdminServer | None = None
        self.metrics_endpoint: PrometheusEndpoint | None = None

    @property
    def server_state(self) -> str:
        """The role as `srvr`/`mntr` print it."""
        if self.read_only.active:
            return "read-only"
        return _MODE_NAMES.get(self.state, "looking")

    def leader_uptime_ms(self) -> int:
        return 0 if self._leading_since_ms is None else self.clock() - self._leading_since_ms

    def learner_info(self, sid: int) -> dict[str, object]:
        """One synced observer for the AdminServer (LearnerHandler.getLearnerHandlerInfo);
        per-learner packet statistics are not kept."""
        ch = self._learners.get(sid)
        transport = getattr(ch, "transport", None)
        peer = transport.get_extra_info("peername") if transport is not None else None
        return {"remote_socket_address": f"{peer[0]}:{peer[1]}" if peer else "", "sid": sid,
                "established": None, "queued_packets": 0, "queued_packets_size": 0,
                "packets_received": 0, "packets_sent": 0, "requests": 0, "last_zxid": -1}

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = time.time()
        self._loop = loop = asyncio.get_running_loop()
        cfg = self.config
        self.database = database = Database(cfg.data_dir, cfg.data_log_dir,
                                            snap_count=cfg.snap_count,
                                            force_sync=cfg.force_sync,
                                            prealloc_size_kb=cfg.prealloc_size_kb)
        loaded = database.load()
        self._note_log_hole(loaded)
        self.tree, self.sessions = loaded.tree, dict(loaded.sessions)
        self.persister = database.open_log(loop, self._fatal)
        self.persister.coalesce = True  # a follower's burst of PROPOSALs: one fsync
        version_dir = database.snap_dir
        last = self.tree.last_processed_zxid
        self.peer = QuorumPeer(
            self.my_id, ZabConfig.from_peer_config(self.qcfg, strict=False), last_zxid=last,
            accepted_epoch=read_epoch(version_dir, ACCEPTED_EPOCH),
            current_epoch=read_epoch(version_dir, CURRENT_EPOCH),
            recent=self._recent_proposals(loaded.snapshot_zxid), host=self)
        self.idle_core = _NotServing(self.core_config(), self.clock, tree=self.tree)
        self._active_qv = self.peer.config.verifier
        show_config(self.tree, self._active_qv, self.clock())
        if self.qcfg.reconfig_enabled and self.qcfg.dynamic_config_file is None:
            backup_static_config(cfg.config_path)  # zoo.cfg still lists the members
        await self._listen_clients()
        await self._start_admin()  # before the election, as QuorumPeer.start
        me = self.qcfg.me
        assert me is not None
        peers = {sid: m.election_addrs[0] for sid, m in self.qcfg.verifier.members.items()
                 if sid != self.my_id}
        self.election = ElectionConnections(self.my_id, me.election_addrs[0], peers,
                                            lambda sid, n: self._step(VoteIn(sid, n)))
        await self.election.start("0.0.0.0" if self.qcfg.quorum_listen_on_all_ips else None)
        self._run(self.peer.start(self.clock()))
        self.read_only.looking()
        self._tasks.append(loop.create_task(self._ticker()))
        self._tasks.append(loop.create_task(self._session_ticker()))

    async def _start_admin(self) -> None:
        """The Prometheus endpoint and the AdminServer (ops/endpoints.py)."""
        await start_endpoints(self)

    async def stop(self) -> None:
        self._close_clients()
        self.read_only.leave()
        await stop_endpoints(self)
        await self._stop_quorum()

    async def _stop_quorum(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._close_clients()
        for srv in self.servers:
            srv.close()
        if self._quorum_server is not None:
            self._quorum_server.close()
        for ch in list(self._learners.values()):
            ch.close()
        if self._leader_channel is not None:
            self._leader_channel.close()
        if self.election is not None:
            await self.election.stop()
        if self.database is not None:
            self.database.close()
            self.database = None
        self.stopped.set()

    def _fatal(self, exc: BaseException) -> None:
        log.critical("stopping: the txn log cannot be written (%s)", exc)
        self.stopped.set()

    def core_config(self) -> CoreConfig:
        cfg = self.config
        return CoreConfig(tick_time=cfg.tick_time, min_session_timeout=cfg.min_timeout,
                          max_session_timeout=cfg.max_timeout,
                          extended_types=cfg.extended_types, skip_acl=cfg.skip_acl,
                          enforce_quota=cfg.enforce_quota, server_id=self.my_id,
                          jute_maxbuffer=cfg.jute_maxbuffer)

    # --- the core ------------------------------------------------------------------------

    def _step(self, event: Event) -> None:
        """Feed one event; events raised while carrying out actions wait their turn."""
        self._events.append(event)
        if self._stepping or self.peer is None:
            return
        self._stepping = True
        try:
            while self._events:
                self._run(self.peer.step(self._events.popleft(), self.clock()))
        finally:
            self._stepping = False
        if not self._deadline_check_due and self._loop is not None:
            self._deadline_check_due = True
            self._loop.call_soon(self._check_deadline)

    def _step_and_flush(self, event: Event) -> None:
        self._step(event)
        self._flush_quorum()

    def _flush_quorum(self) -> None:
        """Send what the quorum connections buffered now rather than at the end of the loop
        turn: PROPOSALs, ACKs and COMMITs are on every write's path, and the rest of a busy
        turn (client replies, applying, other reads) would hold them back for as long as it
        runs. Called when a read from a quorum connection was handled, after a proposal
        batch and after a log write completed; still one write per connection per batch."""
        if self.state == ServerState.LEADING:
            for ch in self._learners.values():
                ch.flush()
        elif self._leader_channel is not None:
            self._leader_channel.flush()

    def _check_deadline(self) -> None:
        """Once per loop turn with events: wake the ticker only if the core now needs it
        sooner than it planned to wake up (waking it for every event costs a wait_for task
        and a deadline computation per packet under load)."""
        self._deadline_check_due = False
        deadline = None if self.peer is None else self.peer.next_deadline_ms
        if deadline is not None and deadline < self._tick_at_ms:
            self._wakeup.set()

    def _run(self, actions: list) -> None:
        for action in actions:
            try:
                self._do(action)
            except Exception:
                log.exception("carrying out %s failed", type(action).__name__)
                raise
        if self.peer is not None and self.peer.config.verifier is not self._active_qv:
            self._config_activated()

    def _config_activated(self) -> None:
        """The core switched to another configuration (a reconfig committed, a new leader's
        NEWLEADER config, a newer one seen in a vote): see dynconfig.py."""
        assert self.peer is not None
        qv = self._active_qv = self.peer.config.verifier
        log.info("server %d: configuration version 0x%x active", self.my_id, qv.version)
        self.qcfg = with_verifier(self.qcfg, qv)
        if self.election is not None:
            self.election.peers = election_peers(qv, self.my_id, self.election.peers)
        show_config(self.tree, qv, self.clock())
        if self.qcfg.reconfig_enabled:
            try:
                write_config(self.config.config_path, qv, self.my_id)
            except OSError as e:
                log.error("cannot write the configuration next to %s: %s",
                          self.config.config_path, e)

    def _do(self, a: object) -> None:  # noqa: C901 - one dispatch table, flat on purpose
        if isinstance(a, SendVote):
            assert self.election is not None
            self.election.send(a.to, a.notification)
        elif isinstance(a, Send):
            ch = self._channel(a.to)
            if ch is not None:
                ch.send(a.packet)
        elif isinstance(a, SendSnapshot):
            self._send_snapshot(a)
        elif isinstance(a, Persist):
            assert self.persister is not None
            token = a.token
            if self.state == ServerState.LEADING:  # the leader logs what it proposes
                for p in a.proposals:
                    self.proposal_stats.record(len(p.data))
            self.persister.persist_encoded([(p.zxid, p.data) for p in a.proposals],
                                           lambda: self._step_and_flush(Persisted(token)))
        elif isinstance(a, Apply):
            self._apply(a)
        elif isinstance(a, Connect):
            assert self._loop is not None
            self._loop.create_task(self._connect_leader(a.sid))
        elif isinstance(a, Disconnect):
            ch = self._channel(a.sid)
            if ch is not None:
                ch.peer = None  # no ConnectionDown for a close the core asked for
                ch.close()
        elif isinstance(a, RoleChanged):
            self._role_changed(a)
        elif isinstance(a, StartServing):
            self._start_serving(a)
        elif isinstance(a, PersistEpoch):
            self._persist_epoch(a)
        elif isinstance(a, Truncate):
            self._truncate(a.zxid)
        elif isinstance(a, LoadSnapshot):
            self._load_snapshot(a)
        elif isinstance(a, TakeSnapshot):
            assert self.database is not None
            self.database.snapshot_sync(self.tree, self._session_table())
        elif isinstance(a, LearnerRequest):
            self._learner_request(a)
        elif isinstance(a, TouchSessions):
            if isinstance(self.core, LeaderCore):
                self.core.touch_remote(list(a.touches))
        elif isinstance(a, Revalidate):
            valid = isinstance(self.core, LeaderCore) and \
                self.core.revalidate(a.session_id, a.timeout_ms)
            self._events.append(RevalidateReply(a.sid, a.session_id, valid))
        elif isinstance(a, RevalidateResult):
            waiting = self._revalidating.get(a.session_id)
            if waiting:
                waiting.popleft()(a.valid)
        elif isinstance(a, SyncReply):
            if isinstance(self.core, LearnerCore):
                self.core.sync_done()
        elif isinstance(a, NewerConfig):
            log.info("peer %d runs a newer config (version 0x%x)", a.sender, a.verifier.version)
        else:
            raise AssertionError(f"unknown action {a!r}")

    # --- ZabHost: queries from the core -----------------------------------------------------

    def touched_sessions(self) -> list[tuple[int, int]]:
        if isinstance(self.core, LearnerCore):
            return self.core.take_touches()
        return []

    # --- applying --------------------------------------------------------------------------

    def _apply(self, a: Apply) -> None:
        core = self.core
        if isinstance(core, LeaderCore) and not a.recovered:
            core.commit_upto(a.proposals[-1].zxid)
        elif isinstance(core, LearnerCore) and not a.recovered:
            for p in a.proposals:
                core.apply_committed(p.txn)
        else:
            for p in a.proposals:
                self._apply_quietly(p.txn)
        assert self.database is not None
        self.database.logged(len(a.proposals), self.tree, self._session_table,
                             self._loop, self._applied_digest)  # type: ignore[arg-type]

    def _apply_quietly(self, txn: Txn) -> None:
        """A txn applied with no server core (recovery between roles): tree and sessions."""
        if txn.zxid <= self.tree.last_processed_zxid:
            return
        self.tree.apply(txn)
        from ..protocol.consts import Op
        if txn.type == Op.CREATE_SESSION:
            self.sessions[txn.session_id] = txn.record.timeOut  # type: ignore[union-attr]
        elif txn.type == Op.CLOSE_SESSION:
            self.sessions.pop(txn.session_id, None)

    def _applied_digest(self) -> tuple[int, int] | None:
        return None if self.core is None else self.core.applied_digest()

    def _session_table(self) -> dict[int, int]:
        """The global sessions (a read-only server's local ones are not in the database)."""
        if self.core is not None and not self.read_only.active:
            return {sid: s.timeout_ms for sid, s in self.core.sessions.sessions.items()}
        return dict(self.sessions)

    # --- roles -------------------------------------------------------------------------------

    def _role_changed(self, a: RoleChanged) -> None:
        log.info("server %d: %s (leader %s)", self.my_id, a.state.name, a.leader)
        self._close_clients()  # while self.core still names the server they belong to
        # REVALIDATEs sent to the old leader are never answered; a waiter left behind would
        # take the next answer for its session and leave that client's handshake hanging.
        self._revalidating.clear()
        self.read_only.leave()
        if self.core is not None:
            self.sessions = self._session_table()
            self.core = None
        if a.state == ServerState.LOOKING:
            self.read_only.looking()
        elif a.state == ServerState.LEADING:
            self.proposal_stats = ProposalStats()  # a new Leader, new statistics
        if self.state == ServerState.LEADING and a.state != ServerState.LEADING:
            self._stop_leading()
        if a.state == ServerState.LOOKING and self._leader_channel is not None:
            ch, self._leader_channel = self._leader_channel, None
            ch.peer = None
            ch.close()
        self.state, self.leader_id = a.state, a.leader
        if a.state == ServerState.LEADING:
            assert self._loop is not None
            self._loop.create_task(self._start_leading())

    def _start_serving(self, a: StartServing) -> None:
        now = self.clock()
        self._leading_since_ms = now if a.state == ServerState.LEADING else None
        if a.state == ServerState.LEADING:
            self.tree.last_processed_zxid = a.zxid
            core: LeaderCore | LearnerCore = LeaderCore(
                self.core_config(), self.clock, schedule=self._loop.call_soon,  # type: ignore[union-attr]
                tree=self.tree)
            core.propose = lambda txns: self._step_and_flush(Propose(tuple(txns)))
            core.reconfig = planner_for(self.peer, self.qcfg)  # type: ignore[arg-type,union-attr]
        else:
            core = LearnerCore(self.core_config(), self.clock,
                               schedule=self._loop.call_soon,  # type: ignore[union-attr]
                               tree=self.tree, forwarder=self)
        core.next_zxid = a.zxid + 1
        for sid, timeout in self.sessions.items():
            core.sessions.add(sid, timeout, now)
        self.equip(core)
        self.core = core
        log.info("server %d serving clients as %s at zxid 0x%x", self.my_id, a.state.name,
                 a.zxid)

    def equip(self, core: ServerCore) -> None:
        """What every server core of this peer gets from the configuration."""
        cfg = self.config
        core.auth_providers = AuthProviders(
            cfg.super_digest, cfg.prop("zookeeper.DigestAuthenticationProvider.digestAlg",
                                       "SHA1") or "SHA1",
            (cfg.prop("zookeeper.DigestAuthenticationProvider.enabled", "true") or "true")
            .lower() != "false")
        core.sasl = SaslServerFactory(cfg.props)
        core.config_super_x509 = cfg.prop("zookeeper.X509AuthenticationProvider.superUser")
        core.server = self  # type: ignore[attr-defined]

    def _learner_request(self, a: LearnerRequest) -> None:
        if not isinstance(self.core, LeaderCore):
            return
        from ..protocol.consts import Op
        if a.request.type == Op.SYNC:
            self.core.flush()  # the sync follows every write prepped before it
            self._events.append(LearnerSync(a.sid))
        else:
            self.core.submit_forwarded(a.request, list(a.authinfo or ()))

    # Forwarder (LearnerCore -> the core)
    def forward(self, req, auth_ids) -> None:  # type: ignore[no-untyped-def]
        self._step(Forward(req, tuple(auth_ids)))

    def revalidate(self, session_id: int, timeout_ms: int,
                   done: Callable[[bool], None]) -> None:
        self._revalidating.setdefault(session_id, deque()).append(done)
        self._step(RevalidateSession(session_id, timeout_ms))

    def _state_replaced(self) -> None:
        """The tree was replaced from disk (TRUNC) or by the leader's (SNAP): a new idle
        core over it, /zookeeper/config shown again, a new txn log writer."""
        self.idle_core = _NotServing(self.core_config(), self.clock, tree=self.tree)
        show_config(self.tree, self._active_qv, self.clock())
        self._reopen_log()

    # --- quorum connections --------------------------------------------------------------

    def _channel(self, sid: int) -> QuorumChannel | None:
        if self.state == ServerState.LEADING:
            return self._learners.get(sid)
        ch = self._leader_channel
        return ch if ch is not None and ch.peer == sid else None

    def _send_snapshot(self, a: SendSnapshot) -> None:
        ch = self._learners.get(a.to)
        if ch is None:
            return
        assert self.tree.last_processed_zxid == a.zxid, "SNAP of a state not at its zxid"
        ch.send(QuorumPacket(PacketType.SNAP, a.zxid))
        ch.send_raw(serialize_wire_snapshot(self.tree, self._session_table()))

    async def _start_leading(self) -> None:
        me = self.qcfg.me
        assert me is not None and self._loop is not None
        host, port = me.quorum_addrs[0]
        if self.qcfg.quorum_listen_on_all_ips:
            host = "0.0.0.0"
        try:
            self._quorum_server = await self._loop.create_server(
                self._learner_channel, host, port, reuse_address=True)
        except OSError as e:
            log.error("cannot listen on the quorum port %s:%d: %s", host, port, e)

    def _stop_leading(self) -> None:
        if self._quorum_server is not None:
            self._quorum_server.close()
            self._quorum_server = None
        for ch in list(self._learners.values()):
            ch.peer = None
            ch.close()
        self._learners.clear()

    def _learner_channel(self) -> QuorumChannel:
        ch = QuorumChannel(self._from_learner, lambda ch, body: None, self._learner_closed)
        ch.on_batch_end = self._flush_quorum
        return ch

    def _from_learner(self, ch: QuorumChannel, pkt: QuorumPacket) -> None:
        if ch.peer is None:
            if pkt.type not in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
                log.warning("first packet from a learner is %s; closing", pkt.name)
                ch.close()
                return
            sid = LearnerInfo.decode(pkt.data or b"").sid
            old = self._learners.get(sid)
            if old is not None:
                old.peer = None
                old.close()
                self._events.append(ConnectionDown(sid))
            ch.peer = sid
            self._learners[sid] = ch
        self._step(PacketIn(ch.peer, pkt))

    def _learner_closed(self, ch: QuorumChannel) -> None:
        sid = ch.peer
        if sid is not None and self._learners.get(sid) is ch:
            del self._learners[sid]
            self._step(ConnectionDown(sid))

    async def _connect_leader(self, sid: int) -> None:
        assert self._loop is not None
        member = self.qcfg.verifier.members.get(sid)
        snap_body: list[bytes] = []

        def on_packet(ch: QuorumChannel, pkt: QuorumPacket) -> None:
            if pkt.type == PacketType.SNAP:
                snap_body.clear()
                ch.pending_snap = pkt  # type: ignore[attr-defined]
                return
            self._step(PacketIn(sid, pkt))

        def on_snapshot(ch: QuorumChannel, body: bytes) -> None:
            snap = getattr(ch, "pending_snap", None)
            ch.pending_snap = None  # type: ignore[attr-defined]
            if snap is not None:
                self._step(PacketIn(sid, snap, body))

        def on_closed(ch: QuorumChannel) -> None:
            if self._leader_channel is ch:
                self._leader_channel = None
            if ch.peer is not None:
                self._step(ConnectionDown(sid))

        if member is None:
            self._step(ConnectionDown(sid))
            return
        host, port = member.quorum_addrs[0]
        try:
            _, ch = await asyncio.wait_for(self._loop.create_connection(
                lambda: QuorumChannel(on_packet, on_snapshot, on_closed), host, port),
                CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            log.info("cannot connect to leader %d at %s:%d: %s", sid, host, port, e)
            self._step(ConnectionDown(sid))
            return
        ch.peer = sid
        ch.on_batch_end = self._flush_quorum
        if self._leader_channel is not None:
            old, self._leader_channel = self._leader_channel, None
            old.peer = None
            old.close()
        self._leader_channel = ch
        self._step(ConnectionUp(sid))

    # --- timers ------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Call peer.tick at its next deadline (at least every 50 ms)."""
        assert self.peer is not None
        while True:
            self._wakeup.clear()
            deadline = self.peer.next_deadline_ms
            now = self.clock()
            wait = 0.05 if deadline is None else min(0.05, max(0.0, (deadline - now) / 1000.0))
            self._tick_at_ms = now + int(wait * 1000)
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait)
                continue
            except TimeoutError:
                pass
            if not self._stepping:
                self._stepping = True
                try:
                    self._run(self.peer.tick(self.clock()))
                    while self._events:
                        self._run(self.peer.step(self._events.popleft(), self.clock()))
                finally:
                    self._stepping = False

    async def _session_ticker(self) -> None:
        """The leader expires sessions on tickTime boundaries (learners never do)."""
        tick = self.config.tick_time
        while True:
            now = self.clock()
            await asyncio.sleep(max(0.001, (tick - now % tick) / 1000.0))
            if isinstance(self.core, (LeaderCore, ReadOnlyCore)):
                try:
                    self.core.expire_sessions()
                except Exception:
                    log.exception("session expiry failed")

    # --- clients -------------------------------------------------------------------------------

    async def _listen_clients(self) -> None:
        assert self._loop is not None
        cfg = self.config
        addr = self.qcfg.client_port_address
        host, port = (addr if addr is not None else (cfg.client_port_address, cfg.client_port))
        if port is None:
            return
        srv = await self._loop.create_server(self._client_protocol, host, port,
                                             reuse_address=True)
        self.servers.append(srv)
        self.port = srv.sockets[0].getsockname()[1]
        log.info("binding to port %s:%d", host, self.port)
        if cfg.secure_client_port is not None:  # secureClientPort, as a standalone server
            from ..server.tls import build_server_context
            ctx = build_server_context(cfg.ssl_props)
            shost = cfg.secure_client_port_address or host
            srv = await self._loop.create_server(lambda: self._client_protocol(True), shost,
                                                 cfg.secure_client_port, ssl=ctx,
                                                 reuse_address=True)
            self.servers.append(srv)
            self.secure_port = srv.sockets[0].getsockname()[1]
            log.info("binding to secure port %s:%d", shost, self.secure_port)

    def _client_protocol(self, secure: bool = False) -> ClientConnection:
        core = self.core if self.core is not None else self.idle_core
        assert core is not None
        return ClientConnection(core, self, self._four_letter, secure)

    def _close_clients(self) -> None:
        for core in (self.core, self.idle_core):
            if core is not None:
                for conn in list(core.connections):
                    conn.close()

    def accept(self, conn: ClientConnection) -> bool:
        # asyncio builds the protocol when it accepts the socket but makes the connection a
        # loop turn later; if the role changed in between (a paused leader resuming finds its
        # backlog and its lost learners in one turn), the connection would join a retired
        # core that nobody closes and that never answers. Join the current one instead.
        current = self.core if self.core is not None else self.idle_core
        if current is not None and conn.core is not current:
            conn.core = current
        return self.limiter.admit(conn)

    def released(self, conn: ClientConnection) -> None:
        self.limiter.release(conn)

    def _four_letter(self, word: str, conn: ClientConnection) -> str:
        """While no server core runs only ruok, envi and isro ("null") answer, as in Java."""
        if self.core is None and word not in ("ruok", "envi", "isro") and \
                fourletter.allowed(word, self):  # type: ignore[arg-type]
            return "This ZooKeeper instance is not currently serving requests\n"
        return fourletter.run(word, self, conn)  # type: ignore[arg-type]


def quorum_config_for(cfg: ServerConfig) -> QuorumPeerConfig | None:
    """The ensemble settings of a loaded zoo.cfg (with dataDir/myid and the dynamic config
    file), or None when the config describes a standalone server (as ZooKeeper's QuorumPeerMain
    falls back to ZooKeeperServerMain)."""
    if not any(k.startswith("server.") for k in cfg.raw) and "dynamicConfigFile" not in cfg.raw:
        return None
    myid_path = Path(cfg.data_dir) / "myid"
    myid = myid_path.read_text(encoding="utf-8") if myid_path.exists() else None
    dynamic = None
    dyn_file = cfg.raw.get("dynamicConfigFile")
    if dyn_file is not None:
        with open(dyn_file, encoding="utf-8") as f:
            dynamic = parse_properties(f.read())
    qcfg = parse_quorum_peer_config(cfg.raw, myid, dynamic_props=dynamic)
    return qcfg if qcfg.is_distributed else None


async def serve_quorum(config: ServerConfig, qcfg: QuorumPeerConfig) -> None:
    """Run an ensemble member until cancelled."""
    server = QuorumServer(config, qcfg)
    await server.start()
    try:
        await server.stopped.wait()
    finally:
        await server.stop()


__all__ = ["QuorumServer", "quorum_config_for", "serve_quorum"]

"""A zookapter ensemble member inside the simulator: the real Zab core (`QuorumPeer`) and the
real server role cores (`LeaderCore` / `LearnerCore` over a `DataTree`), with the simulated
disk, network and clock where the asyncio shell (quorum/shell.py) has files, sockets and
timers.

`ZabNode` plays the shell's part and nothing more. It feeds events to the core one at a
time and carries out the returned actions in order, the contract of zab_events.py: events
raised while doing so (a leader's `Propose` from its core, a learner's `Forward`, a
`RevalidateReply`) queue behind the current batch, as in the shell. `_ACTIONS` maps every
action to its simulated effect:

- `Send`/`SendSnapshot` -> the quorum connection "to leader L's quorum port" (channel
  ("zab", L)), `SendVote` -> the election connection (a new one first carries the last
  notification sent to that peer, as cnxmanager.py does); `Connect` opens the quorum
  connection with a `Hello` that a leading member answers `Welcome` (the TCP handshake: the
  learner steps `ConnectionUp` on it) and anyone else refuses by closing; `Disconnect`
  closes it.
- `Persist` -> append to the txn log, group-committed fsync, `Persisted` in order when it
  completes; `PersistEpoch` -> durable at once (the shell writes and fsyncs the epoch files
  before going on); `Truncate` -> the log cut after the zxid (durably), every snapshot
  kept, the state reloaded from disk; `LoadSnapshot` -> the whole log and newer snapshots
  dropped; `TakeSnapshot` -> a durable snapshot file (zab_events.py's contract).
- `Apply` -> the role core (`commit_upto` on a leader, `apply_committed` on a learner, the
  tree directly for a fast-forward or while not serving), `StartServing` -> a new role core
  and a client `Gateway`, `RoleChanged` -> the core and the client connection dropped.
- `LearnerRequest`/`TouchSessions`/`Revalidate`/`RevalidateResult`/`SyncReply` -> the role
  core, as the shell does.

The member recovers from its `DiskImage` alone: the newest snapshot, then the logged txns
after it (a torn last record is cut off at boot), plus the epoch files. Snapshots are taken
on `TakeSnapshot`, and every `snap_count` applied txns while serving (never of the state a
restart recovered, which may hold txns a TRUNC must remove). Only what this module keeps is
simulated; the core and the role cores are the production code, unchanged.

Besides the facts zab_checks.py describes, the member reports broken contracts as
`Anomaly`: a TRUNC whose reload is not exactly the old history cut at its zxid, a TRUNC
neither the snapshots nor the log can serve (the member then stops, as the shell does), a
SYNC answer for a sync this role never forwarded, a reply the client did not expect.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.consts import Op
from ..protocol.records import Id
from ..quorum import packets as P
from ..quorum.election_wire import Notification, ServerState
from ..quorum.packets import ForwardedRequest, PacketType
from ..quorum.peer import QuorumPeer, ZabConfig
from ..quorum.shell_disk import RECENT_TXNS  # as many as the shell hands its core
from ..quorum.zab_events import (
    Apply,
    Connect,
    ConnectionDown,
    ConnectionUp,
    Disconnect,
    Forward,
    LearnerRequest,
    LearnerSync,
    LoadSnapshot,
    NewerConfig,
    PacketIn,
    Persist,
    Persisted,
    PersistEpoch,
    Proposal,
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
from ..server.core import CoreConfig
from ..server.datatree import DataTree
from ..server.roles import LeaderCore, LearnerCore
from ..storage.digest import tree_digest
from ..storage.snapshot import parse_wire_snapshot, serialize_wire_snapshot
from .checks import Applied, Role
from .disk import DiskImage, Torn
from .history import FAIL, Outcome, Redirect
from .zab_checks import Anomaly, Committed, FrozenGhost, Ghost, Serving, txn_digest
from .zab_gateway import Gateway
from .zab_messages import (
    ACCEPTED_EPOCH,
    CURRENT_EPOCH,
    LOG,
    SNAP_PREFIX,
    VOTES,
    WAIT_FOR_SERVING_MS,
    Call,
    ClientRequest,
    Down,
    FsyncDone,
    GiveUp,
    Hello,
    NodeSettings,
    Received,
    SnapFile,
    SnapMsg,
    Tick,
    Up,
    VoteMsg,
    Welcome,
    ZabMsg,
    newest_snapshot,
    quorum_channel,
)
from .znode_model import ZnodeOp

if TYPE_CHECKING:
    from .cluster import NodeContext


class ZabNode:
    """One member; see the module docstring. `ctx` is attached by the binding's boot."""

    def __init__(self, node_id: int, peer_factory: Callable[..., QuorumPeer],
                 config: ZabConfig, settings: NodeSettings, image: DiskImage) -> None:
        self.id = node_id
        self.settings = settings
        self.ctx: NodeContext | None = None
        self.stopped = False
        self.role_state = ServerState.LOOKING
        self.leader_id: int | None = None
        self.core: LeaderCore | LearnerCore | None = None
        self.gateway: Gateway | None = None
        self.session: tuple[int, bytes] | None = None  # the gateway's, kept across roles
        self.last_zxid_seen = 0
        self._events: deque[Any] = deque()
        self._stepping = False
        self._waiting: dict[int, ZnodeOp] = {}  # requests waiting for this member to serve
        self._revalidating: dict[int, deque[Callable[[bool], None]]] = {}
        self._last_votes: dict[int, Notification] = {}  # the last one sent to each peer
        self._incoming_ghost: tuple[int, FrozenGhost] | None = None  # of the last SNAP
        self._since_snapshot = 0
        self._syncs_forwarded = 0  # syncs this role forwarded and the leader has not answered
        self._unsynced: list[int] = []  # Persist tokens appended, waiting for an fsync
        self._syncing: list[int] = []  # tokens the running fsync covers
        self._torn_at: int | None = None
        self._log_holds_from = 0  # read_log serves no range starting before this zxid
        self._files = dict(image.files)  # what this incarnation sees of its small files
        recent = self._recover(image)
        self.peer = peer_factory(
            node_id, config, last_zxid=self.tree.last_processed_zxid,
            accepted_epoch=image.file(ACCEPTED_EPOCH), current_epoch=image.file(CURRENT_EPOCH),
            recent=recent[-RECENT_TXNS:], host=self)

    # --- recovery ---------------------------------------------------------------------------

    def _recover(self, image: DiskImage) -> list[Proposal]:
        """Newest snapshot + the log after it; returns the replayed txns."""
        snap = newest_snapshot(image.files)
        self._load_state(snap)
        records = image.log(LOG)
        for i, rec in enumerate(records):
            if isinstance(rec, Torn):
                self._torn_at = i
                records = records[:i]
                break
        if snap is not None and (not records or records[-1].zxid < snap.zxid):
            # A leader applies what its followers acknowledged before its own log write is
            # durable, so a snapshot may hold txns the log lost in the crash: before the
            # snapshot's zxid the log has a hole, and a txn-log DIFF must not read across it.
            self._log_holds_from = snap.zxid
        replay = [p for p in records if p.zxid > self.tree.last_processed_zxid]
        for p in replay:
            self._apply_quietly(p)
        return replay

    def _load_state(self, snap: SnapFile | None) -> None:
        if snap is None:
            self.tree, self.sessions = DataTree(), {}
            self.ghost = Ghost()
            return
        tree, sessions, _ = parse_wire_snapshot(snap.body, signed=False)
        tree.last_processed_zxid = snap.zxid
        self.tree, self.sessions = tree, dict(sessions)
        self.ghost = Ghost(snap.ghost)

    def boot(self, ctx: NodeContext) -> None:
        """Attach the simulator context, cut a torn log tail, start the election."""
        self.ctx = ctx
        if self._torn_at is not None:
            ctx.truncate(LOG, self._torn_at)
            ctx.sync_now(LOG)
        self._run(self.peer.start(ctx.now_ms))
        self._drain()

    # --- driving ---------------------------------------------------------------------------

    def step(self, event: Any, now_ms: int) -> list[Any]:
        if not self.stopped:
            self._events.append(event)
            self._drain()
        return []

    def tick(self, now_ms: int) -> list[Any]:
        return self.step(Tick(now_ms), now_ms)

    def _drain(self) -> None:
        if self._stepping:
            return
        self._stepping = True
        try:
            while self._events and not self.stopped:
                event = self._events.popleft()
                _EVENTS.get(type(event), ZabNode._zab)(self, event)
        finally:
            self._stepping = False

    def _zab(self, event: Any) -> None:
        assert self.ctx is not None
        self._run(self.peer.step(event, self.ctx.now_ms))

    def _tick(self, event: Tick) -> None:
        self._run(self.peer.tick(event.now_ms))

    def _run(self, actions: list[Any]) -> None:
        for action in actions:
            if self.stopped:
                return
            _ACTIONS[type(action)](self, action)

    def _call(self, event: Call) -> None:
        event.fn()

    def _schedule(self, fn: Callable[[], None]) -> None:
        assert self.ctx is not None
        self.ctx.later(0, Call(fn))

    def complain(self, text: str) -> None:
        assert self.ctx is not None
        self.ctx.observe(Anomaly(text))

    def _stop(self, reason: str) -> None:
        """The shell stops the server (e.g. a TRUNC it cannot do): the process exits."""
        self.complain(f"stopped: {reason}")
        self.stopped = True
        self._close_gateway()

    # --- network in ------------------------------------------------------------------------

    def _received(self, event: Received) -> None:
        src, msg = event.src, event.payload
        if isinstance(msg, VoteMsg):
            self._zab(VoteIn(src, msg.notification))
        elif isinstance(msg, ZabMsg):
            if self._owns(src, msg.port):
                self._zab(PacketIn(src, msg.packet))
        elif isinstance(msg, SnapMsg):
            if self._owns(src, msg.port):
                self._incoming_ghost = (msg.zxid, msg.ghost)  # LoadSnapshot may come later
                self._zab(PacketIn(src, P.simple(PacketType.SNAP, msg.zxid), msg.body))
        elif isinstance(msg, Hello):
            assert self.ctx is not None
            if msg.port == self.id and self.role_state is ServerState.LEADING:
                self.ctx.send(src, Welcome(self.id), channel=quorum_channel(self.id))
            else:  # not listening on the quorum port: connection refused
                self.ctx.close(src, quorum_channel(msg.port))
        elif isinstance(msg, Welcome):
            if self._is_learner_of(src) and msg.port == src:
                self._zab(ConnectionUp(src))

    def _owns(self, src: int, port: int) -> bool:
        """Is this quorum connection the current role's?"""
        if port == self.id:
            return self.role_state is ServerState.LEADING
        return port == src and self._is_learner_of(src)

    def _is_learner_of(self, leader: int) -> bool:
        return self.leader_id == leader and self.role_state in (ServerState.FOLLOWING,
                                                                ServerState.OBSERVING)

    def _up(self, event: Up) -> None:
        """A new election connection first carries the last notification sent to that
        peer, which it may have missed (QuorumCnxManager's SendWorker, cnxmanager.py)."""
        last = self._last_votes.get(event.peer)
        if event.channel == VOTES and last is not None:
            assert self.ctx is not None
            self.ctx.send(event.peer, VoteMsg(last), channel=VOTES)

    def _down(self, event: Down) -> None:
        channel = event.channel
        if not (isinstance(channel, tuple) and channel[0] == "zab"):
            return  # election connections reconnect on the next send
        if self._owns(event.peer, channel[1]):
            self._zab(ConnectionDown(event.peer))

    # --- clients ---------------------------------------------------------------------------

    def _client_request(self, event: ClientRequest) -> None:
        if self.gateway is not None:
            self.gateway.request(event.request_id, event.op)
            return
        assert self.ctx is not None
        self._waiting[event.request_id] = event.op  # as a client retrying its connection
        self.ctx.later(WAIT_FOR_SERVING_MS, GiveUp(event.request_id))

    def _give_up(self, event: GiveUp) -> None:
        if self._waiting.pop(event.request_id, None) is not None:
            self._refuse(event.request_id)
        elif self.gateway is not None:
            self.gateway.abandon(event.request_id)

    def _refuse(self, request_id: int) -> None:
        assert self.ctx is not None
        hint = self.leader_id if self.leader_id not in (None, self.id) else None
        self.ctx.reply(request_id, Outcome(FAIL, Redirect(hint) if hint else "not serving"))

    def _reply(self, request_id: int, outcome: Outcome) -> None:
        assert self.ctx is not None
        self.ctx.reply(request_id, outcome)

    def _open_gateway(self) -> None:
        assert self.core is not None
        gw = Gateway(self.core, self._reply, self.complain, self.last_zxid_seen)
        self.gateway = gw
        gw.open(self.session)
        waiting, self._waiting = self._waiting, {}
        for request_id, op in waiting.items():
            gw.request(request_id, op)

    def _close_gateway(self) -> None:
        gw, self.gateway = self.gateway, None
        if gw is not None:
            if gw.session is not None:
                self.session = gw.session
            self.last_zxid_seen = max(self.last_zxid_seen, gw.last_zxid)
            gw.close()

    # --- ZabHost ---------------------------------------------------------------------------

    def snapshot_size(self) -> int:
        assert self.ctx is not None
        snap = newest_snapshot(self._files)
        return 0 if snap is None else len(snap.body)

    def read_log(self, start_zxid: int, end_zxid: int, size_limit: int) -> list[Proposal]:
        assert self.ctx is not None
        if start_zxid < self._log_holds_from:
            return []
        records = self.ctx.records(LOG)
        for i, p in enumerate(records):
            if p.zxid == start_zxid:
                tail = records[i:]
                break
        else:
            return []
        if size_limit > 0 and sum(len(p.data) for p in tail) > size_limit:
            return []
        return [p for p in tail if p.zxid <= end_zxid]

    def touched_sessions(self) -> list[tuple[int, int]]:
        if isinstance(self.core, LearnerCore):
            return self.core.take_touches()
        return []

    # --- Forwarder (LearnerCore -> the core) -----------------------------------------------

    def forward(self, req: ForwardedRequest, auth_ids: list[Id]) -> None:
        if req.type == Op.SYNC:
            self._syncs_forwarded += 1
        self._events.append(Forward(req, tuple(auth_ids)))

    def revalidate(self, session_id: int, timeout_ms: int,
                   done: Callable[[bool], None]) -> None:
        self._revalidating.setdefault(session_id, deque()).append(done)
        self._events.append(RevalidateSession(session_id, timeout_ms))

    # --- the state -------------------------------------------------------------------------

    def tree_digest(self) -> int:
        return tree_digest(self.tree)

    @property
    def leading(self) -> bool:
        """Serving as the leader."""
        return isinstance(self.core, LeaderCore)

    def _session_table(self) -> dict[int, int]:
        if self.core is not None:
            return {sid: s.timeout_ms for sid, s in self.core.sessions.sessions.items()}
        return dict(self.sessions)

    def _apply_quietly(self, p: Proposal) -> None:
        """A txn applied with no server core (recovery, sync, fast-forward)."""
        txn = p.txn
        if txn.zxid <= self.tree.last_processed_zxid:
            raise AssertionError(f"node {self.id}: applying 0x{txn.zxid:x} after "
                                 f"0x{self.tree.last_processed_zxid:x}")
        self.tree.apply(txn)
        if txn.type == Op.CREATE_SESSION:
            self.sessions[txn.session_id] = txn.record.timeOut  # type: ignore[union-attr]
        elif txn.type == Op.CLOSE_SESSION:
            self.sessions.pop(txn.session_id, None)
        self.ghost.applied(p.zxid, txn_digest(p.data))

    def _snapshot(self) -> None:
        assert self.ctx is not None
        zxid = self.tree.last_processed_zxid
        body = serialize_wire_snapshot(self.tree, self._session_table())
        self._put(f"{SNAP_PREFIX}{zxid:016x}", SnapFile(zxid, body, self.ghost.frozen()))
        self._since_snapshot = 0

    def _put(self, name: str, value: Any) -> None:
        """Write a small file durably at once (None deletes it)."""
        assert self.ctx is not None
        self.ctx.put_now(name, value)
        self._files[name] = value

    def _reload(self) -> None:
        """The state from disk: newest snapshot + the log after it (ZKDatabase.loadDataBase)."""
        assert self.ctx is not None
        self._load_state(newest_snapshot(self._files))
        for p in self.ctx.records(LOG):
            if p.zxid > self.tree.last_processed_zxid:
                self._apply_quietly(p)

    def _drop_log_after(self, zxid: int) -> int:
        """Cut the log after `zxid`, durably; returns the records kept."""
        assert self.ctx is not None
        records = self.ctx.records(LOG)
        keep = 0
        while keep < len(records) and records[keep].zxid <= zxid:
            keep += 1
        if keep < len(records):
            self.ctx.truncate(LOG, keep)
            self.ctx.sync_now(LOG)
        return keep

    # --- actions ---------------------------------------------------------------------------

    def _send(self, a: Send) -> None:
        assert self.ctx is not None
        port = self.id if self.role_state is ServerState.LEADING else a.to
        self.ctx.send(a.to, ZabMsg(port, a.packet), channel=quorum_channel(port))

    def _send_snapshot(self, a: SendSnapshot) -> None:
        assert self.ctx is not None
        if self.tree.last_processed_zxid != a.zxid:
            raise AssertionError(f"node {self.id}: SNAP at 0x{a.zxid:x} of a state at "
                                 f"0x{self.tree.last_processed_zxid:x}")
        body = serialize_wire_snapshot(self.tree, self._session_table())
        self.ctx.send(a.to, SnapMsg(self.id, a.zxid, body, self.ghost.frozen()),
                      channel=quorum_channel(self.id))

    def _send_vote(self, a: SendVote) -> None:
        assert self.ctx is not None
        self._last_votes[a.to] = a.notification
        self.ctx.send(a.to, VoteMsg(a.notification), open_=True, channel=VOTES)

    def _connect(self, a: Connect) -> None:
        assert self.ctx is not None
        self.ctx.send(a.sid, Hello(a.sid), open_=True, channel=quorum_channel(a.sid))

    def _disconnect(self, a: Disconnect) -> None:
        assert self.ctx is not None
        port = self.id if self.role_state is ServerState.LEADING else a.sid
        self.ctx.close(a.sid, quorum_channel(port))

    def _persist(self, a: Persist) -> None:
        """Append, and group-commit as the shell's persister does: batches that arrive while
        an fsync runs wait for the next one, which covers them all."""
        assert self.ctx is not None
        self.ctx.append(LOG, a.proposals)
        if self.settings.ack_before_persist and self.role_state is ServerState.FOLLOWING:
            self.ctx.fsync(LOG)
            self._events.append(Persisted(a.token))  # the flaw: durable before the fsync
            return
        self._unsynced.append(a.token)
        if not self._syncing:
            self._start_fsync()

    def _start_fsync(self) -> None:
        assert self.ctx is not None
        self._syncing, self._unsynced = self._unsynced, []
        self.ctx.fsync(LOG, FsyncDone())

    def _fsync_done(self, event: FsyncDone) -> None:
        done, self._syncing = self._syncing, []
        self._events.extend(Persisted(token) for token in done)
        if self._unsynced:
            self._start_fsync()

    def _persist_epoch(self, a: PersistEpoch) -> None:
        assert self.ctx is not None
        if a.accepted is not None:
            self._put(ACCEPTED_EPOCH, a.accepted)
        if a.current is not None:
            self._put(CURRENT_EPOCH, a.current)
            if self.role_state is ServerState.LEADING:
                self.ctx.observe(Role("leading", a.current))  # the epoch is established

    def _apply(self, a: Apply) -> None:
        assert self.ctx is not None
        core, last = self.core, a.proposals[-1].zxid
        if isinstance(core, LeaderCore) and not a.recovered:
            core.commit_upto(last)
            for p in a.proposals:
                self.ghost.applied(p.zxid, txn_digest(p.data))
        elif isinstance(core, LearnerCore) and not a.recovered:
            for p in a.proposals:
                core.apply_committed(p.txn)
                self.ghost.applied(p.zxid, txn_digest(p.data))
        else:
            for p in a.proposals:
                self._apply_quietly(p)
        if self.tree.last_processed_zxid != last:
            raise AssertionError(f"node {self.id}: Apply up to 0x{last:x} left the tree at "
                                 f"0x{self.tree.last_processed_zxid:x}")
        ghost, count = self.ghost, len(a.proposals)
        for zxid, digest in zip(ghost.zxids[-count:], ghost.digests[-count:], strict=True):
            self.ctx.observe(Applied(zxid, digest))
        if not a.recovered:
            self.ctx.observe(Committed(len(ghost), ghost.prefix, last))
        self._since_snapshot += count
        if self.core is not None and self._since_snapshot >= self.settings.snap_count:
            self._snapshot()

    def _truncate(self, a: Truncate) -> None:
        """TRUNC: the log after `zxid` goes, every snapshot stays, the state is reloaded from
        disk. The reloaded history must be exactly the old one cut after `zxid`."""
        assert self.ctx is not None
        records = self.ctx.records(LOG)
        snap = newest_snapshot(self._files)
        reach = max(snap.zxid if snap is not None else 0,
                    records[-1].zxid if records else 0)
        if reach < a.zxid:
            self._stop(f"cannot truncate to 0x{a.zxid:x}: neither the newest snapshot nor "
                       f"the log reaches it (they end at 0x{reach:x})")
            return
        expected = self.ghost.upto(a.zxid)
        self._drop_log_after(a.zxid)
        self._reload()
        if self.ghost.frozen().prefixes != expected.prefixes:
            self.complain(f"TRUNC to 0x{a.zxid:x} reloaded {self.ghost.describe()}, not the "
                          f"history before it cut there ({Ghost(expected).describe()})")

    def _load_snapshot(self, a: LoadSnapshot) -> None:
        """SNAP: the leader's state replaces ours; the whole log and any newer snapshot go."""
        assert self.ctx is not None
        tree, sessions, _ = parse_wire_snapshot(a.body, signed=False)
        tree.last_processed_zxid = a.zxid
        self.tree, self.sessions = tree, dict(sessions)
        if self._incoming_ghost is None or self._incoming_ghost[0] != a.zxid:
            raise AssertionError(f"node {self.id}: LoadSnapshot 0x{a.zxid:x} of no SNAP")
        self.ghost = Ghost(self._incoming_ghost[1])
        if self.ctx.log_length(LOG):
            self.ctx.truncate(LOG, 0)
            self.ctx.sync_now(LOG)
        for name, snap in list(self._files.items()):
            if name.startswith(SNAP_PREFIX) and snap is not None and snap.zxid > a.zxid:
                self._put(name, None)

    def _take_snapshot(self, a: TakeSnapshot) -> None:
        self._snapshot()

    def _role_changed(self, a: RoleChanged) -> None:
        assert self.ctx is not None
        if self.core is not None:
            self.sessions = self._session_table()
            self.core = None
        self._close_gateway()
        if self.role_state is ServerState.LEADING and a.state is not ServerState.LEADING:
            for peer in self.ctx.peers:  # the quorum port closes with every connection on it
                self.ctx.close(peer, quorum_channel(self.id))
        self.role_state, self.leader_id = a.state, a.leader

    def _start_serving(self, a: StartServing) -> None:
        assert self.ctx is not None
        ctx = self.ctx
        config = CoreConfig(tick_time=self.settings.tick_time_ms, server_id=self.id)
        core: LeaderCore | LearnerCore
        if a.state is ServerState.LEADING:
            self.tree.last_processed_zxid = a.zxid
            core = LeaderCore(config, lambda: ctx.now_ms, schedule=self._schedule,
                              tree=self.tree)
            core.propose = lambda txns: self._events.append(Propose(tuple(txns)))
        else:
            core = LearnerCore(config, lambda: ctx.now_ms, schedule=self._schedule,
                               tree=self.tree, forwarder=self)
        core.next_zxid = a.zxid + 1
        now = ctx.now_ms
        for sid, timeout in self.sessions.items():
            core.sessions.add(sid, timeout, now)
        self.core = core
        self._syncs_forwarded = 0
        role = "leading" if a.state is ServerState.LEADING else a.state.name.lower()
        ctx.observe(Role(role, a.epoch))
        ctx.observe(Serving(role, a.epoch, len(self.ghost), self.ghost.prefix))
        self._open_gateway()

    def _learner_request(self, a: LearnerRequest) -> None:
        if not isinstance(self.core, LeaderCore):
            return
        if a.request.type == Op.SYNC:
            self.core.flush()  # the sync follows every write prepped before it
            self._events.append(LearnerSync(a.sid))
        else:
            self.core.submit_forwarded(a.request, list(a.authinfo or ()))

    def _touch_sessions(self, a: TouchSessions) -> None:
        if isinstance(self.core, LeaderCore):
            self.core.touch_remote(list(a.touches))

    def _revalidate(self, a: Revalidate) -> None:
        valid = isinstance(self.core, LeaderCore) and \
            self.core.revalidate(a.session_id, a.timeout_ms)
        self._events.append(RevalidateReply(a.sid, a.session_id, valid))

    def _revalidate_result(self, a: RevalidateResult) -> None:
        waiting = self._revalidating.get(a.session_id)
        if waiting:
            waiting.popleft()(a.valid)

    def _sync_reply(self, a: SyncReply) -> None:
        if self._syncs_forwarded <= 0:
            self.complain(f"leader {self.leader_id} answered a sync this role never sent")
        self._syncs_forwarded -= 1
        if isinstance(self.core, LearnerCore):
            self.core.sync_done()

    def _newer_config(self, a: NewerConfig) -> None:
        pass  # reconfig is not supported (nor simulated)


_EVENTS: dict[type, Callable[[ZabNode, Any], None]] = {
    Received: ZabNode._received,
    Down: ZabNode._down,
    Up: ZabNode._up,
    ClientRequest: ZabNode._client_request,
    GiveUp: ZabNode._give_up,
    Call: ZabNode._call,
    Tick: ZabNode._tick,
    FsyncDone: ZabNode._fsync_done,
}

_ACTIONS: dict[type, Callable[[ZabNode, Any], None]] = {
    Send: ZabNode._send,
    SendSnapshot: ZabNode._send_snapshot,
    SendVote: ZabNode._send_vote,
    NewerConfig: ZabNode._newer_config,
    Connect: ZabNode._connect,
    Disconnect: ZabNode._disconnect,
    Persist: ZabNode._persist,
    PersistEpoch: ZabNode._persist_epoch,
    Apply: ZabNode._apply,
    Truncate: ZabNode._truncate,
    LoadSnapshot: ZabNode._load_snapshot,
    TakeSnapshot: ZabNode._take_snapshot,
    RoleChanged: ZabNode._role_changed,
    StartServing: ZabNode._start_serving,
    LearnerRequest: ZabNode._learner_request,
    TouchSessions: ZabNode._touch_sessions,
    Revalidate: ZabNode._revalidate,
    RevalidateResult: ZabNode._revalidate_result,
    SyncReply: ZabNode._sync_reply,
}

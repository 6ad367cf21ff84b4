"""The server core: sessions, the request pipeline and the data tree, without sockets.

Request flow (as ZooKeeper's processor chain, see shared design):
  connection -> `submit()`:
    reads    -> answered at once, unless the session has writes in flight; then they queue
                behind them so a session always reads its own writes;
    writes   -> `Prep` turns them into a txn with the next zxid (failures become error txns)
                and they join `_unpersisted`;
  `flush()` hands the batch to the `Persister` (in-memory now; txn log + fsync or ZAB later),
  `committed()` applies each txn in zxid order, fires watches, then replies in order.

Connections implement `ConnectionLike` (send bytes, close, auth ids); the asyncio shell in
`standalone.py` owns sockets and timers and passes the clock in.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..ops.metrics import ServerMetrics
from ..protocol.consts import XID_SET_WATCHES, Err, EventType, Op, WatcherType
from ..protocol.jute import JuteError, Reader
from ..protocol.records import (
    CheckVersionRequest,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    DeleteRequest,
    Id,
    SetACLRequest,
    SetDataRequest,
    UnknownMultiOp,
    read_multi,
)
from ..protocol.txns import CreateSessionTxn, ErrorTxn, Txn
from ..storage.digest import DigestShadow
from . import quotas, reads, replies
from .acl import AuthProviders
from .datatree import ApplyResult, DataTree, Node
from .prep import KeeperError, MalformedMulti, Prep, normalize_multi_ops
from .sasl import SaslServerFactory
from .sessions import Session, SessionTracker, timeout_bounds
from .watches import WatchManager

log = logging.getLogger("zookapter.server")

DIGEST_LOG_MASK = 127  # DataTree.DIGEST_LOG_INTERVAL (128) - 1
DIGEST_LOG_LIMIT = 1024
REPLY_ZXID = struct.Struct(">q")  # in a reply frame: length, xid, then the zxid at offset 8

WRITE_DECODERS: dict[int, Callable[[Reader], object]] = {
    Op.CREATE: CreateRequest.read,
    Op.CREATE2: CreateRequest.read,
    Op.CREATE_CONTAINER: CreateRequest.read,
    Op.CREATE_TTL: CreateRequest.read_ttl,
    Op.DELETE: DeleteRequest.read,
    Op.SET_DATA: SetDataRequest.read,
    Op.SET_ACL: SetACLRequest.read,
    Op.CHECK: CheckVersionRequest.read,
    # The body is read by the leader (roles.LeaderCore); elsewhere reconfig is refused unread.
    Op.RECONFIG: lambda r: None,
}


@dataclass(frozen=True, slots=True)
class _MissedWhileAway:
    """SetWatches for one kind of watch: the event a watch set before the client's last zxid
    missed, judged from the node as it is now (None: nothing, the watch is set again)."""
    if_missing: EventType | None
    if_changed: EventType
    changed: Callable[[Node, int], bool]  # (node, the client's last zxid)

    def event(self, node: Node | None, rel_zxid: int) -> EventType | None:
        if node is None:
            return self.if_missing
        return self.if_changed if self.changed(node, rel_zxid) else None


# As ZooKeeper's DataTree.setWatches: a data watch missed a change of the node's data or its
# deletion, a child watch a change of its children or its deletion, and an exist watch (set
# on a missing node) the node's creation.
_DATA_REWATCH = _MissedWhileAway(EventType.NODE_DELETED, EventType.NODE_DATA_CHANGED,
                                 lambda node, zxid: node.mzxid > zxid)
_EXIST_REWATCH = _MissedWhileAway(None, EventType.NODE_CREATED, lambda node, zxid: True)
_CHILD_REWATCH = _MissedWhileAway(EventType.NODE_DELETED, EventType.NODE_CHILDREN_CHANGED,
                                  lambda node, zxid: node.pzxid > zxid)


class ConnectionLike(Protocol):
    session_id: int
    auth_ids: list[Id]
    pending: deque

    sasl_server: object | None

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def notify(self, event_type: int, path: str, zxid: int) -> None: ...

    def can_read(self, acl: tuple) -> bool: ...

    def connect_done(self, resp: ConnectResponse) -> None: ...


class Persister(Protocol):
    """Makes a batch of txns durable, then calls back `done`. In-memory: immediately."""

    def persist(self, txns: list[Txn], done: Callable[[], None]) -> None: ...


class MemoryPersister:
    def persist(self, txns: list[Txn], done: Callable[[], None]) -> None:
        done()


@dataclass(slots=True)
class Pending:
    """One request of a connection awaiting its reply, kept in request order."""
    xid: int
    op: int
    reader: Reader | None = None  # deferred read: evaluated when it reaches the head
    reply: bytes | None = None
    close_after: bool = False
    started: float = 0.0


@dataclass
class ServerStats:
    packets_received: int = 0
    packets_sent: int = 0
    min_latency: float = 0.0
    max_latency: float = 0.0
    total_latency: float = 0.0
    count: int = 0
    auth_failed: int = 0
    # sizes of reply frames without their length prefix (ZooKeeper's BufferStats; -1 = none)
    last_response_size: int = -1
    min_response_size: int = -1
    max_response_size: int = -1
    extra: dict = field(default_factory=dict)

    def record(self, ms: float) -> None:
        if self.count == 0 or ms < self.min_latency:
            self.min_latency = ms
        self.max_latency = max(self.max_latency, ms)
        self.total_latency += ms
        self.count += 1

    def replied(self, latency_ms: int, size: int) -> None:
        """One reply: its latency and its size without the length prefix (hot path)."""
        if self.count == 0 or latency_ms < self.min_latency:
            self.min_latency = latency_ms
        if latency_ms > self.max_latency:
            self.max_latency = latency_ms
        self.total_latency += latency_ms
        self.count += 1
        self.last_response_size = size
        if self.min_response_size < 0 or size < self.min_response_size:
            self.min_response_size = size
        if size > self.max_response_size:
            self.max_response_size = size

    def reset(self) -> None:
        self.packets_received = self.packets_sent = self.count = 0
        self.min_latency = self.max_latency = self.total_latency = 0.0
        self.last_response_size = self.min_response_size = self.max_response_size = -1


@dataclass
class CoreConfig:
    tick_time: int = 3000
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    extended_types: bool = False
    skip_acl: bool = False
    enforce_quota: bool = False
    server_id: int = 0
    jute_maxbuffer: int = 0xFFFFF
    reconfig_enabled: bool = False  # reconfigEnabled: standalone then says Unimplemented



class ServerCore:
    """Standalone ZooKeeper server logic. `clock()` returns wall-clock ms (injected)."""

    def __init__(self, config: CoreConfig, clock: Callable[[], int],
                 persister: Persister | None = None,
                 schedule: Callable[[Callable[[], None]], object] | None = None,
                 tree: DataTree | None = None, tree_digest: int | None = None) -> None:
        """`tree_digest`: the digest of `tree` if already known (else it is computed)."""
        self.config = config
        self.clock = clock
        self.tree = tree or DataTree()
        self.watches = WatchManager()
        self.tree.watches = self.watches
        self.sessions = SessionTracker(config.tick_time, config.server_id, clock())
        self.prep = Prep(self.tree, config.extended_types, config.skip_acl,
                         self._check_quota if config.enforce_quota else None)
        self.persister: Persister = persister or MemoryPersister()
        self.schedule = schedule or (lambda fn: fn())
        self.next_zxid = self.tree.last_processed_zxid + 1
        # digest of the tree once every enqueued txn is applied: what each txn logs with it
        self.digest = DigestShadow(self.tree, tree_digest)
        # (zxid, tree digest after it) of the newest applied txn with a digest
        self._applied_digest = (self.tree.last_processed_zxid, self.digest.value)
        # (zxid, digest) every 128 txns, the newest 1024: ZooKeeper's digest log (`hash`)
        self.digest_log: deque[tuple[int, int]] = deque(maxlen=DIGEST_LOG_LIMIT)
        self.stats = ServerStats()
        self.metrics = ServerMetrics()
        self._read_latency = self.metrics.summaries["readlatency"]
        self._update_latency = self.metrics.summaries["updatelatency"]
        self.connections: set[ConnectionLike] = set()
        self._unpersisted: list[tuple[Txn, ConnectionLike | None, Pending | None]] = []
        self._flush_scheduled = False
        self._in_flight = 0
        # set by the shell: digest provider, SASL factory, x509 super user DN
        self.auth_providers: AuthProviders | None = None
        self.sasl: SaslServerFactory | None = None
        self.config_super_x509: str | None = None

    # A learner sends `sync` through the leader (roles.LearnerCore); standalone and the
    # leader answer it in request order like a read.
    forwards_sync = False

    def _submit_sync(self, conn: ConnectionLike, xid: int, r: Reader) -> None:
        raise NotImplementedError

    def _check_quota(self, path: str, old_len: int, new_len: int, op: int) -> None:
        try:
            quotas.check(self.tree, path, old_len, new_len, op)
        except quotas.QuotaExceeded:
            raise KeeperError(Err.QUOTA_EXCEEDED) from None

    # --- zxids and txns --------------------------------------------------------------------

    @property
    def last_zxid(self) -> int:
        return self.tree.last_processed_zxid

    def _new_txn(self, session_id: int, cxid: int, typ: int, record: object) -> Txn:
        zxid = self.next_zxid
        self.next_zxid += 1
        return Txn(session_id, cxid, zxid, self.clock(), typ, record)  # type: ignore[arg-type]

    def applied_digest(self) -> tuple[int, int] | None:
        """(zxid, tree digest after it) of the newest applied txn that has a digest."""
        return self._applied_digest

    def _enqueue(self, txn: Txn, conn: ConnectionLike | None, pending: Pending | None) -> None:
        if txn.type != Op.ERROR:  # as ZooKeeper: error txns are logged without a digest
            txn.digest = self.digest.txn(txn)
        self._unpersisted.append((txn, conn, pending))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.schedule(self.flush)

    def flush(self) -> None:
        """Hand everything prepped so far to the persister as one batch (group commit)."""
        self._flush_scheduled = False
        batch = self._unpersisted
        if not batch:
            return
        self._unpersisted = []
        self._in_flight += len(batch)
        self.persister.persist([t for t, _, _ in batch], lambda: self.committed(batch))

    def committed(self, batch: list[tuple[Txn, ConnectionLike | None, Pending | None]]) -> None:
        """Apply a durable batch in zxid order, fire watches, and release replies."""
        last = 0
        digested: Txn | None = None
        for txn, conn, pending in batch:
            if txn.zxid <= self.tree.last_processed_zxid:
                raise AssertionError(f"zxid {txn.zxid:#x} applied out of order")
            result = self.tree.apply(txn)
            last = txn.zxid
            if txn.digest is not None:
                digested = txn
                if not txn.zxid & DIGEST_LOG_MASK:
                    self.digest_log.append((txn.zxid, txn.digest))
            self._after_apply(txn, result, conn, pending)
            if conn is not None and pending is not None:
                self.drain(conn)
        if digested is not None:
            self._applied_digest = (digested.zxid, digested.digest)  # type: ignore[assignment]
        self._in_flight -= len(batch)
        self.prep.applied(last)
        self.digest.applied(last)

    def _after_apply(self, txn: Txn, result: ApplyResult, conn: ConnectionLike | None,
                     pending: Pending | None) -> None:
        typ = txn.type
        if typ == Op.CREATE_SESSION:
            self._session_created(txn, conn)
            return
        if typ == Op.CLOSE_SESSION:
            self._session_closed(txn.session_id)
        if pending is not None:
            pending.reply = reads.write_reply(pending.xid, txn.zxid, typ, pending.op, result)

    # --- sessions ---------------------------------------------------------------------------

    def negotiate_timeout(self, requested: int) -> int:
        c = self.config
        lo, hi = timeout_bounds(c.tick_time, c.min_session_timeout, c.max_session_timeout)
        return max(lo, min(hi, requested))

    def connect(self, conn: ConnectionLike, req: ConnectRequest) -> bool:
        """Handle a ConnectRequest. False means: close the connection without a reply."""
        if req.lastZxidSeen > self.last_zxid:
            log.info("refusing session 0x%x: client has seen zxid 0x%x, our last is 0x%x",
                     req.sessionId, req.lastZxidSeen, self.last_zxid)
            return False
        timeout = self.negotiate_timeout(req.timeOut)
        if req.sessionId == 0:
            self._new_session(conn, timeout)
            return True
        found = self.sessions.get(req.sessionId)
        if found is None or found.closing or found.password != req.passwd[:16] \
                or len(req.passwd) != 16:
            self._refuse_session(conn, req.has_read_only)
            return True
        self._resume_session(conn, found, timeout, req.has_read_only)
        return True

    def _new_session(self, conn: ConnectionLike, timeout: int) -> None:
        """A new session: its id is allocated here, it lives once createSession commits."""
        sid = self.sessions.allocate_id()
        session = self.sessions.add(sid, timeout, self.clock())
        session.owner = conn
        conn.session_id = sid
        txn = self._new_txn(sid, 0, Op.CREATE_SESSION, CreateSessionTxn(timeout))
        self._enqueue(txn, conn, None)

    @staticmethod
    def _refuse_session(conn: ConnectionLike, has_read_only: bool) -> None:
        """Unknown, closing or wrong-password session: timeout 0 tells the client it expired."""
        conn.connect_done(ConnectResponse(0, 0, 0, b"\x00" * 16, False, has_read_only))

    def _resume_session(self, conn: ConnectionLike, session: Session, timeout: int,
                        has_read_only: bool) -> None:
        """Bind a live session to `conn` (the previous connection, if any, is closed)."""
        old = session.owner
        if old is not None and old is not conn:
            old.session_id = 0  # detach so its close does not touch the session
            old.close()
        session.owner = conn
        session.timeout_ms = timeout
        self.sessions.touch(session.session_id, self.clock())
        conn.session_id = session.session_id
        conn.connect_done(ConnectResponse(0, timeout, session.session_id, session.password,
                                          False, has_read_only))

    def _session_created(self, txn: Txn, conn: ConnectionLike | None) -> None:
        session = self.sessions.get(txn.session_id)
        if conn is None or session is None:
            return
        conn.connect_done(ConnectResponse(0, session.timeout_ms, session.session_id,
                                          session.password, False, True))

    def _session_closed(self, session_id: int) -> None:
        session = self.sessions.remove(session_id)
        if session is not None and session.owner is not None:
            owner = session.owner
            session.owner = None
            if not owner.pending:
                owner.close()

    def expire_sessions(self) -> None:
        """Called by the shell each tick: expired sessions are closed through the pipeline."""
        for s in self.sessions.expired(self.clock()):
            log.info("Expiring session 0x%x, timeout of %dms exceeded", s.session_id,
                     s.timeout_ms)
            self._close_session(s.session_id, 0, None, None)

    def _close_session(self, sid: int, xid: int, conn: ConnectionLike | None,
                       pending: Pending | None) -> None:
        self.sessions.set_closing(sid)
        zxid = self.next_zxid
        rec = self.prep.close_session(sid, zxid)
        txn = self._new_txn(sid, xid, Op.CLOSE_SESSION, rec)
        self._enqueue(txn, conn, pending)

    def connection_lost(self, conn: ConnectionLike) -> None:
        self.watches.remove_watcher(conn)
        self.connections.discard(conn)
        s = self.sessions.get(conn.session_id) if conn.session_id else None
        if s is not None and s.owner is conn:
            s.owner = None

    # --- requests ---------------------------------------------------------------------------

    def submit(self, conn: ConnectionLike, xid: int, op: int, r: Reader) -> None:
        """One decoded request header plus its body reader, in arrival order."""
        self.stats.packets_received += 1
        now = self.clock()
        sid = conn.session_id
        session = self.sessions.get(sid)
        if session is not None:
            self.sessions.touch(sid, now)
        decoder = WRITE_DECODERS.get(op)
        if decoder is not None or op == Op.MULTI:
            self._submit_write(conn, session, xid, op, r, decoder)
        elif op == Op.CLOSE_SESSION:
            pending = Pending(xid, op, close_after=True, started=now)
            conn.pending.append(pending)
            if session is None or session.closing:
                pending.reply = replies.header_only(xid, self.last_zxid, 0)
                self.drain(conn)
            else:
                self._close_session(sid, xid, conn, pending)
        elif op == Op.AUTH:
            reads.auth(self, conn, r, xid)
        elif op == Op.SASL:
            reads.sasl(self, conn, xid, r)
        elif op == Op.SYNC and self.forwards_sync:
            self._submit_sync(conn, xid, r)
        elif conn.pending:
            conn.pending.append(Pending(xid, op, r, started=now))
        else:
            reply = reads.read_reply(self, conn, xid, op, r)
            conn.send(reply)
            self._served(conn, op, now, reply, False)

    def _submit_write(self, conn: ConnectionLike, session: Session | None, xid: int, op: int,
                      r: Reader, decoder: Callable[[Reader], object] | None) -> None:
        pending = Pending(xid, op, started=self.clock())
        conn.pending.append(pending)
        txn = self._prep_write(conn.session_id, session, xid, op, r, decoder, conn.auth_ids)
        self._enqueue(txn, conn, pending)

    def _prep_write(self, sid: int, session: Session | None, xid: int, op: int, r: Reader,
                    decoder: Callable[[Reader], object] | None, auth_ids: list[Id]) -> Txn:
        """Validate one write against the outstanding state; its txn, or an error txn."""
        if op == Op.RECONFIG:  # only an ensemble's leader reconfigures (roles.LeaderCore)
            err = Err.RECONFIG_DISABLED if not self.config.reconfig_enabled else \
                Err.SESSION_EXPIRED if session is None or session.closing else Err.UNIMPLEMENTED
            return self._new_txn(sid, xid, Op.ERROR, ErrorTxn(err))
        if session is None or session.closing:
            return self._new_txn(sid, xid, Op.ERROR, ErrorTxn(Err.SESSION_EXPIRED))
        zxid, now = self.next_zxid, self.clock()
        try:
            if op == Op.MULTI:
                ops = read_multi(r)
                if any(t in (Op.GET_DATA, Op.GET_CHILDREN) for t, _ in ops):
                    raise JuteError("mixing read and write operations in a multi")
                ops = normalize_multi_ops(ops)
                typ, rec = self.prep.prep_multi(ops, sid, zxid, now, auth_ids)
            else:
                assert decoder is not None
                req = decoder(r)
                typ, rec = self.prep.prep(op, req, sid, zxid, now, auth_ids)
        except (JuteError, UnknownMultiOp, MalformedMulti) as e:
            log.warning("malformed %s request from session 0x%x: %s", Op(op).name, sid, e)
            typ, rec = Op.ERROR, ErrorTxn(Err.MARSHALLING_ERROR)
        txn = self._new_txn(sid, xid, typ, rec)
        assert txn.zxid == zxid
        return txn

    def drain(self, conn: ConnectionLike) -> None:
        """Send every reply at the head of the connection's queue that is ready, in order;
        deferred reads run now, after the writes queued before them were applied."""
        q = conn.pending
        while q:
            head = q[0]
            if head.reply is None:
                if head.reader is None:
                    return
                head.reply = reads.read_reply(self, conn, head.xid, head.op, head.reader)
            q.popleft()
            conn.send(head.reply)
            # a deferred read keeps its reader; writes (txns) have none
            self._served(conn, head.op, head.started, head.reply, head.reader is None)
            if head.close_after:
                conn.close()
                return

    def _served(self, conn: ConnectionLike, op: int, started: float, reply: bytes,
                is_write: bool) -> None:
        """Latency and reply-size statistics of one answered request, as ZooKeeper's
        FinalRequestProcessor records them (server-wide and per connection)."""
        now = self.clock()
        latency = max(0, int(now - started)) if started else 0  # 0: start not recorded
        self.stats.replied(latency, len(reply) - 4)
        (self._update_latency if is_write else self._read_latency).add(latency)
        self.metrics.counters["response_bytes"] += len(reply)
        per_connection = getattr(conn, "response_sent", None)
        if per_connection is not None:
            zxid = REPLY_ZXID.unpack_from(reply, 8)[0] if len(reply) >= 16 else 0
            per_connection(op, zxid, latency, now)

    # --- watches on reconnect ---------------------------------------------------------------

    def set_watches(self, conn: ConnectionLike, rel_zxid: int, data: list[str],
                    exist: list[str], child: list[str], persistent: list[str],
                    recursive: list[str]) -> None:
        """SetWatches(2): re-register, firing what changed since `rel_zxid` (zxid -1)."""
        tree, w = self.tree, self.watches
        for paths, rule, add in ((data, _DATA_REWATCH, w.add_data_watch),
                                 (exist, _EXIST_REWATCH, w.add_data_watch),
                                 (child, _CHILD_REWATCH, w.add_child_watch)):
            for p in paths:
                event = rule.event(tree.get(p), rel_zxid)
                if event is None:
                    add(p, conn)
                else:
                    conn.notify(event, p, -1)
        for p in persistent:
            w.add_persistent(p, conn, False)
        for p in recursive:
            w.add_persistent(p, conn, True)

    def remove_watches(self, conn: ConnectionLike, path: str, wtype: int, check: bool) -> int:
        if wtype not in tuple(WatcherType):
            return Err.MARSHALLING_ERROR  # Java's WatcherType.fromInt throws
        if check:
            ok = self.watches.contains(path, wtype, conn)
        else:
            ok = self.watches.remove(path, wtype, conn)
        return Err.OK if ok else Err.NO_WATCHER


__all__ = ["XID_SET_WATCHES", "CoreConfig", "MemoryPersister", "Pending", "ServerCore"]

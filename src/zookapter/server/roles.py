"""The server core in an ensemble: what changes when ZAB, not a local log, orders writes.

ZooKeeper builds a new ZooKeeperServer subclass for every role a peer takes (Leader-,
Follower-, ObserverZooKeeperServer) over the same in-memory database, and drops all client
connections when the role changes. We do the same with two subclasses of `ServerCore`:

`LeaderCore` serves its own clients exactly as a standalone server, with the persister
replaced by the ZAB broadcast (the quorum shell calls `committed(batch)` once a quorum has
acknowledged the batch). It also preps the writes learners forward (`submit_forwarded`, the
REQUEST packet: session id, cxid, type, request bytes, plus the client's auth ids), owns
session expiry for the whole ensemble, is kept informed of sessions touched on learners
(`touch_remote`, from PING replies) and answers REVALIDATE (`revalidate`).

`LearnerCore` (follower or observer) answers reads from its own tree but prepares nothing:
writes, createSession, closeSession and sync go to the leader through a `Forwarder`, and the
client's reply waits until the leader's txn is committed and applied here
(`apply_committed`), matched by (session id, cxid) as Java's CommitProcessor does. A client
resuming a session here is revalidated by the leader first. The learner never expires
sessions; it records which sessions its clients touched (`take_touches`) for its next PING
reply. A leader's SYNC packet answers the oldest sync this learner forwarded (`sync_done`).
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..protocol.consts import Err, Op
from ..protocol.jute import JuteError, Reader
from ..protocol.records import Id, PathRequest
from ..protocol.txns import CreateSessionTxn, ErrorTxn, Txn
from ..quorum.packets import ForwardedRequest
from ..quorum.reconfig import ReconfigPlanner, ReconfigRequest
from . import replies
from .core import WRITE_DECODERS, ConnectionLike, Pending, ServerCore
from .prep import KeeperError
from .sessions import Session, SessionTracker

log = logging.getLogger("zookapter.server")

_TIMEOUT = struct.Struct(">i")  # a forwarded createSession's body: the negotiated timeout


class LeaderCore(ServerCore):
    """The leader's server core: local clients as standalone, plus the learners' requests.

    Batches of prepped txns go to `propose` (set by the quorum shell: the ZAB broadcast)
    instead of a persister, and `commit_upto(zxid)` applies them as the quorum commits them,
    possibly part of a batch at a time."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.propose: Callable[[list[Txn]], None] = _no_quorum
        self._proposed: deque[tuple[Txn, ConnectionLike | None, Pending | None]] = deque()
        # set by the quorum shell when reconfigEnabled=true (else reconfig stays disabled)
        self.reconfig: ReconfigPlanner | None = None

    def _prep_write(self, sid: int, session: Session | None, xid: int, op: int, r: Reader,
                    decoder: Callable[[Reader], object] | None, auth_ids: list[Id]) -> Txn:
        if op != Op.RECONFIG or self.reconfig is None:
            return super()._prep_write(sid, session, xid, op, r, decoder, auth_ids)
        return self._prep_reconfig(sid, session, xid, r, auth_ids)

    def _prep_reconfig(self, sid: int, session: Session | None, xid: int, r: Reader,
                       auth_ids: list[Id]) -> Txn:
        """A reconfig (only the leader preps them): the new configuration's text as a
        SetDataTxn of /zookeeper/config, or the error txn of the first check that fails."""
        assert self.reconfig is not None
        if session is None or session.closing:
            return self._new_txn(sid, xid, Op.ERROR, ErrorTxn(Err.SESSION_EXPIRED))
        zxid = self.next_zxid
        try:
            qv = self.reconfig.plan(ReconfigRequest.read(r), zxid)
            rec = self.prep.reconfig(qv.to_bytes(), zxid, auth_ids)
        except KeeperError as e:
            return self._new_txn(sid, xid, Op.ERROR, ErrorTxn(e.code))
        except JuteError:
            return self._new_txn(sid, xid, Op.ERROR, ErrorTxn(Err.MARSHALLING_ERROR))
        self.reconfig.proposed(qv)
        return self._new_txn(sid, xid, Op.RECONFIG, rec)

    def flush(self) -> None:
        self._flush_scheduled = False
        batch = self._unpersisted
        if not batch:
            return
        self._unpersisted = []
        self._in_flight += len(batch)
        self._proposed.extend(batch)
        self.propose([t for t, _, _ in batch])

    def commit_upto(self, zxid: int) -> None:
        """Apply (and answer) every proposed txn up to `zxid`, which the quorum committed."""
        done = []
        while self._proposed and self._proposed[0][0].zxid <= zxid:
            done.append(self._proposed.popleft())
        if done:
            self.committed(done)

    def submit_forwarded(self, req: ForwardedRequest, auth_ids: list[Id]) -> None:
        """Prep one request a learner forwarded (sync is the quorum layer's business)."""
        sid, cxid, op = req.session_id, req.cxid, req.type
        if op == Op.CREATE_SESSION:
            (timeout,) = _TIMEOUT.unpack_from(req.body, 0)
            self.sessions.add(sid, timeout, self.clock())
            self._enqueue(self._new_txn(sid, cxid, Op.CREATE_SESSION,
                                        CreateSessionTxn(timeout)), None, None)
        elif op == Op.CLOSE_SESSION:
            # As Java's prep: no session check, the learner waits for this txn whatever.
            self._close_session(sid, cxid, None, None)
        elif op in WRITE_DECODERS or op == Op.MULTI:
            txn = self._prep_write(sid, self.sessions.get(sid), cxid, op,
                                   Reader(req.body, 0, self.config.jute_maxbuffer * 2),
                                   WRITE_DECODERS.get(op), auth_ids)
            self._enqueue(txn, None, None)
        else:
            log.warning("learner forwarded opcode %d for session 0x%x", op, sid)
            self._enqueue(self._new_txn(sid, cxid, Op.ERROR,
                                        ErrorTxn(Err.MARSHALLING_ERROR)), None, None)

    def touch_remote(self, touches: list[tuple[int, int]]) -> None:
        """Sessions a learner's clients used since its last PING reply stay alive."""
        now = self.clock()
        for sid, _timeout in touches:
            self.sessions.touch(sid, now)

    def revalidate(self, session_id: int, timeout_ms: int) -> bool:
        """REVALIDATE from a learner whose client resumes `session_id`: alive (and touched)?"""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        s.timeout_ms = timeout_ms
        return self.sessions.touch(session_id, self.clock())


def _no_quorum(txns: list[Txn]) -> None:
    raise AssertionError("LeaderCore.propose was not connected to the quorum")


class Forwarder(Protocol):
    """How a learner's core reaches the leader (implemented by the quorum layer)."""

    def forward(self, req: ForwardedRequest, auth_ids: list[Id]) -> None:
        """Send REQUEST to the leader."""

    def revalidate(self, session_id: int, timeout_ms: int,
                   done: Callable[[bool], None]) -> None:
        """Send REVALIDATE; call `done(valid)` when the leader answers."""


class TouchRecorder(SessionTracker):
    """A learner's session table: every touch is also remembered for the next PING reply."""

    def __init__(self, tick_ms: int, server_id: int = 0, now_ms: int = 0) -> None:
        super().__init__(tick_ms, server_id, now_ms)
        self.touched: dict[int, int] = {}

    def touch(self, session_id: int, now_ms: int) -> bool:
        s = self.sessions.get(session_id)
        if s is not None and not s.closing:
            self.touched[session_id] = s.timeout_ms
        return super().touch(session_id, now_ms)


_Awaiting = tuple[ConnectionLike, Pending | None]


class LearnerCore(ServerCore):
    """A follower's or observer's server core: reads here, every change through the leader."""

    forwards_sync = True

    def __init__(self, *args: object, forwarder: Forwarder, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        old = self.sessions
        self.sessions = TouchRecorder(old.tick_ms, self.config.server_id, self.clock())
        self.sessions.sessions = old.sessions
        self.forwarder = forwarder
        # client requests forwarded to the leader, by (session id, cxid), until committed
        self._awaiting: dict[tuple[int, int], _Awaiting] = {}
        self._syncs: deque[tuple[ConnectionLike, Pending, str]] = deque()

    # --- what the shell feeds in ----------------------------------------------------------

    def apply_committed(self, txn: Txn) -> None:
        """Apply one txn the leader committed (in zxid order) and answer our client if the
        request was made here."""
        if txn.zxid <= self.tree.last_processed_zxid:
            raise AssertionError(f"zxid {txn.zxid:#x} applied out of order")
        result = self.tree.apply(txn)
        if txn.digest is not None:
            self._applied_digest = (txn.zxid, txn.digest)
        self.next_zxid = txn.zxid + 1
        conn, pending = self._awaiting.pop((txn.session_id, txn.cxid), (None, None))
        if txn.type == Op.CREATE_SESSION:
            assert isinstance(txn.record, CreateSessionTxn)
            self.sessions.add(txn.session_id, txn.record.timeOut, self.clock())
        self._after_apply(txn, result, conn, pending)
        if conn is not None and pending is not None:
            self.drain(conn)
        self.prep.applied(txn.zxid)

    def take_touches(self) -> list[tuple[int, int]]:
        """(session id, timeout) of every session touched since the last call."""
        assert isinstance(self.sessions, TouchRecorder)
        touched, self.sessions.touched = self.sessions.touched, {}
        return list(touched.items())

    def sync_done(self) -> None:
        """The leader's SYNC: our oldest forwarded sync may now be answered."""
        if not self._syncs:
            log.warning("SYNC from the leader with no sync outstanding")
            return
        conn, pending, path = self._syncs.popleft()
        pending.reply = replies.with_body(pending.xid, self.last_zxid,
                                          replies.ustring_body(path))
        self.drain(conn)

    def expire_sessions(self) -> None:
        """Only the leader expires sessions; its closeSession txns reach us as commits."""

    # --- requests go to the leader --------------------------------------------------------

    def _forward(self, conn: ConnectionLike, pending: Pending | None, sid: int, cxid: int,
                 op: int, body: bytes) -> None:
        self._awaiting[(sid, cxid)] = (conn, pending)
        self.forwarder.forward(ForwardedRequest(sid, cxid, op, body), list(conn.auth_ids))

    def _new_session(self, conn: ConnectionLike, timeout: int) -> None:
        sid = self.sessions.allocate_id()
        session = self.sessions.add(sid, timeout, self.clock())
        session.owner = conn
        conn.session_id = sid
        self._forward(conn, None, sid, 0, Op.CREATE_SESSION, _TIMEOUT.pack(timeout))

    def _resume_session(self, conn: ConnectionLike, session: Session, timeout: int,
                        has_read_only: bool) -> None:
        def done(valid: bool) -> None:
            live = self.sessions.get(session.session_id)
            if valid and live is not None and not live.closing:
                ServerCore._resume_session(self, conn, live, timeout, has_read_only)
            else:
                self._refuse_session(conn, has_read_only)

        self.forwarder.revalidate(session.session_id, timeout, done)

    def _submit_write(self, conn: ConnectionLike, session: Session | None, xid: int, op: int,
                      r: Reader, decoder: Callable[[Reader], object] | None) -> None:
        pending = Pending(xid, op)
        conn.pending.append(pending)
        self._forward(conn, pending, conn.session_id, xid, op, bytes(r.buf[r.pos:]))

    def _close_session(self, sid: int, xid: int, conn: ConnectionLike | None,
                       pending: Pending | None) -> None:
        assert conn is not None, "a learner closes sessions only for its own clients"
        self.sessions.set_closing(sid)
        self._forward(conn, pending, sid, xid, Op.CLOSE_SESSION, b"")

    def _submit_sync(self, conn: ConnectionLike, xid: int, r: Reader) -> None:
        body = bytes(r.buf[r.pos:])
        path = PathRequest.read(r).path or ""
        pending = Pending(xid, Op.SYNC)
        conn.pending.append(pending)
        self._syncs.append((conn, pending, path))
        self.forwarder.forward(ForwardedRequest(conn.session_id, xid, Op.SYNC, body),
                               list(conn.auth_ids))


"""The server core of an ensemble member cut off from its quorum: read-only mode.

With `readonlymode.enabled=true`, ZooKeeper's QuorumPeer starts a ReadOnlyZooKeeperServer
over its in-memory database when it has been LOOKING for a grace period, and shuts it down
(closing its connections) as soon as the election ends. `ReadOnlyCore` is that server:

- only clients that said they accept a read-only server (ConnectRequest.readOnly) are
  served; others are disconnected without an answer, as Java does;
- sessions created here are local: nothing is logged or replicated, the ConnectResponse says
  readOnly=true, they expire here, and closing one needs no txn. A session the database knows
  as global (created through a quorum) is refused by closing the connection (Java's
  RENEW_GLOBAL_SESSION_IN_RO_MODE); an unknown one gets the usual "expired" answer;
- reads, watches, auth, ping and setWatches work as usual; every state-changing request,
  sync included, gets an error reply NotReadOnly (-119) and the connection stays up
  (ReadOnlyRequestProcessor).

Java creates local sessions here only with localSessionsEnabled=true (otherwise the
connect fails); this core always does, which is what read-only clients (ours, kazoo, the Java
client) need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..protocol.consts import Err, Op
from ..protocol.jute import Reader
from ..protocol.records import ConnectRequest, ConnectResponse
from . import replies
from .core import WRITE_DECODERS, ConnectionLike, CoreConfig, Pending, ServerCore
from .datatree import DataTree
from .sessions import Session

log = logging.getLogger("zookapter.server")

# What ReadOnlyRequestProcessor answers with NotReadOnly.
REFUSED_OPS = frozenset(WRITE_DECODERS) | {Op.MULTI, Op.SYNC, Op.DELETE_CONTAINER}


class ReadOnlyCore(ServerCore):
    """See the module docstring. `global_sessions`: the session ids of the database."""

    def __init__(self, config: CoreConfig, clock: Callable[[], int], *, tree: DataTree,
                 global_sessions: Iterable[int],
                 schedule: Callable[[Callable[[], None]], object] | None = None) -> None:
        super().__init__(config, clock, schedule=schedule, tree=tree)
        self.global_sessions = frozenset(global_sessions)

    @property
    def local_session_count(self) -> int:
        return len(self.sessions.sessions)

    @property
    def global_session_count(self) -> int:
        return len(self.global_sessions)

    # --- sessions ---------------------------------------------------------------------------

    def connect(self, conn: ConnectionLike, req: ConnectRequest) -> bool:
        if not req.readOnly:
            log.info("Refusing session request for not-read-only client")
            return False
        if req.sessionId != 0 and req.sessionId in self.global_sessions:
            log.info("Refusing global session reconnection in RO mode (session 0x%x)",
                     req.sessionId & 0xFFFFFFFFFFFFFFFF)
            return False
        return super().connect(conn, req)

    def _new_session(self, conn: ConnectionLike, timeout: int) -> None:
        """A local session: live at once, no txn."""
        sid = self.sessions.allocate_id()
        session = self.sessions.add(sid, timeout, self.clock())
        session.owner = conn
        conn.session_id = sid
        conn.connect_done(ConnectResponse(0, timeout, sid, session.password, True, True))

    def _resume_session(self, conn: ConnectionLike, session: Session, timeout: int,
                        has_read_only: bool) -> None:
        old = session.owner
        if old is not None and old is not conn:
            old.session_id = 0
            old.close()
        session.owner = conn
        session.timeout_ms = timeout
        self.sessions.touch(session.session_id, self.clock())
        conn.session_id = session.session_id
        conn.connect_done(ConnectResponse(0, timeout, session.session_id, session.password,
                                          True, has_read_only))

    def _refuse_session(self, conn: ConnectionLike,  # type: ignore[override]
                        has_read_only: bool) -> None:
        conn.connect_done(ConnectResponse(0, 0, 0, b"\x00" * 16, True, has_read_only))

    def expire_sessions(self) -> None:
        for s in self.sessions.expired(self.clock()):
            log.info("Expiring local session 0x%x, timeout of %dms exceeded",
                     s.session_id & 0xFFFFFFFFFFFFFFFF, s.timeout_ms)
            self._session_closed(s.session_id)

    # --- requests ---------------------------------------------------------------------------

    def submit(self, conn: ConnectionLike, xid: int, op: int, r: Reader) -> None:
        if op not in REFUSED_OPS and op != Op.CLOSE_SESSION:
            super().submit(conn, xid, op, r)
            return
        self.stats.packets_received += 1
        now = self.clock()
        self.sessions.touch(conn.session_id, now)
        close = op == Op.CLOSE_SESSION
        err = Err.OK if close else Err.NOT_READ_ONLY
        conn.pending.append(Pending(xid, op, reply=replies.header_only(xid, self.last_zxid, err),
                                    close_after=close, started=now))
        if close:
            session = self.sessions.remove(conn.session_id)
            if session is not None:
                session.owner = None
        self.drain(conn)


__all__ = ["REFUSED_OPS", "ReadOnlyCore"]

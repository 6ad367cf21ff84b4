"""LeaderCore and LearnerCore wired by a stand-in for ZAB that commits in order, on demand.

No sockets and no quorum protocol here: the point is the server-side contract the quorum layer
relies on — learners forward every change, answer their clients only once the leader's txn
is applied locally, serve reads from their own tree, and sessions live on the leader.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from zookapter.protocol.consts import Err, EventType, Op
from zookapter.protocol.jute import Reader, Writer
from zookapter.protocol.records import (
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    Id,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
)
from zookapter.protocol.txns import Txn
from zookapter.quorum.packets import ForwardedRequest
from zookapter.server.core import CoreConfig
from zookapter.server.roles import LeaderCore, LearnerCore
from zookapter.client.acl import OPEN_ACL_UNSAFE


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


class FakeConn:
    """A client connection as the core sees it; replies and events are decoded as they come."""

    def __init__(self) -> None:
        self.session_id = 0
        self.auth_ids: list[Id] = [Id("ip", "127.0.0.1")]
        self.pending: deque = deque()
        self.sasl_server = None
        self.sent: list[tuple[int, int, int, bytes]] = []  # xid, zxid, err, body
        self.events: list[tuple[int, str]] = []
        self.connect: ConnectResponse | None = None
        self.closed = False

    def send(self, data: bytes) -> None:
        r = Reader(data, 4)  # past the frame length
        xid, zxid, err = r.int(), r.long(), r.int()
        self.sent.append((xid, zxid, err, bytes(data[r.pos:])))

    def close(self) -> None:
        self.closed = True

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        self.events.append((event_type, path))

    def can_read(self, acl: tuple) -> bool:
        return True

    def connect_done(self, resp: ConnectResponse) -> None:
        self.connect = resp

    def reply(self, xid: int) -> tuple[int, int, int, bytes]:
        found = [s for s in self.sent if s[0] == xid]
        assert found, f"no reply to xid {xid}: {self.sent}"
        return found[-1]


class InstantZab:
    """Leader persister + forwarder: everything proposed commits when `pump()` is called."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.leader = LeaderCore(CoreConfig(tick_time=2000, server_id=1), clock)
        self.leader.propose = self.propose
        self.learners: list[LearnerCore] = []
        self.batches: list[list[Txn]] = []
        self.forwarded: list[tuple[LearnerCore, ForwardedRequest, list[Id]]] = []

    def learner(self, sid: int) -> LearnerCore:
        link = _Link(self)
        core = LearnerCore(CoreConfig(tick_time=2000, server_id=sid), self.clock,
                           forwarder=link)
        link.core = core
        self.learners.append(core)
        return core

    # The leader's broadcast: commits happen in pump()
    def propose(self, txns: list[Txn]) -> None:
        self.batches.append(txns)

    def pump(self) -> None:
        """Deliver forwarded requests to the leader, then commit everything everywhere."""
        while self.forwarded or self.batches:
            while self.forwarded:
                learner, req, ids = self.forwarded.pop(0)
                if req.type == Op.SYNC:
                    learner.sync_done()  # nothing outstanding once pumped
                else:
                    self.leader.submit_forwarded(req, ids)
            self.leader.flush()
            batches, self.batches = self.batches, []
            for txns in batches:
                # commit in two steps: part of a batch may commit first
                self.leader.commit_upto(txns[0].zxid)
                self.leader.commit_upto(txns[-1].zxid)
                for lc in self.learners:
                    for t in txns:
                        lc.apply_committed(t)


class _Link:
    def __init__(self, zab: InstantZab) -> None:
        self.zab = zab
        self.core: LearnerCore | None = None

    def forward(self, req: ForwardedRequest, auth_ids: list[Id]) -> None:
        assert self.core is not None
        self.zab.forwarded.append((self.core, req, auth_ids))

    def revalidate(self, session_id: int, timeout_ms: int, done: Callable[[bool], None]) -> None:
        done(self.zab.leader.revalidate(session_id, timeout_ms))


def _record(rec: object, **kw: object) -> Reader:
    w = Writer()
    rec.write(w, **kw)  # type: ignore[attr-defined]
    return Reader(bytes(w.buf))


def _connect(core, conn: FakeConn, sid: int = 0, passwd: bytes = b"\x00" * 16) -> None:
    assert core.connect(conn, ConnectRequest(0, 0, 10_000, sid, passwd))
    core.connections.add(conn)


def _create(core, conn: FakeConn, xid: int, path: str, data: bytes = b"", flags: int = 0):
    core.submit(conn, xid, Op.CREATE, _record(CreateRequest(path, data, tuple(OPEN_ACL_UNSAFE),
                                                            flags)))


def _session(zab: InstantZab, core) -> FakeConn:
    conn = FakeConn()
    _connect(core, conn)
    zab.pump()
    assert conn.connect is not None and conn.connect.timeOut > 0
    return conn


def test_learner_writes_go_through_the_leader_and_reply_after_apply() -> None:
    zab = InstantZab(Clock())
    f2, f3 = zab.learner(2), zab.learner(3)
    c = _session(zab, f2)
    sid = c.session_id
    assert sid >> 56 == 2, "session ids carry the id of the server that made them"
    assert all(sid in core.sessions.sessions for core in (zab.leader, f2, f3))

    _create(f2, c, 1, "/a", b"x")
    assert not c.sent, "no reply before the leader's txn is applied here"
    assert zab.forwarded and zab.forwarded[0][1].type == Op.CREATE
    zab.pump()
    xid, zxid, err, _ = c.reply(1)
    assert err == 0 and zxid == zab.leader.last_zxid == f2.last_zxid == f3.last_zxid
    for core in (zab.leader, f2, f3):
        assert core.tree.get("/a").data == b"x"


def test_errors_come_from_the_leaders_prep() -> None:
    zab = InstantZab(Clock())
    f2 = zab.learner(2)
    c = _session(zab, f2)
    _create(f2, c, 1, "/a")
    _create(f2, c, 2, "/a")
    _create(f2, c, 3, "/missing/child")
    zab.pump()
    assert [c.reply(x)[2] for x in (1, 2, 3)] == [0, Err.NODE_EXISTS, Err.NO_NODE]


def test_reads_are_local_and_wait_behind_own_writes() -> None:
    zab = InstantZab(Clock())
    f2 = zab.learner(2)
    c = _session(zab, f2)
    _create(f2, c, 1, "/a", b"v1")
    f2.submit(c, 2, Op.GET_DATA, _record(PathWatchRequest("/a", False)))
    assert not c.sent, "the read waits for the session's own write"
    zab.pump()
    assert [s[0] for s in c.sent] == [1, 2]
    assert c.reply(2)[2] == 0


def test_watches_fire_on_the_learner_that_holds_them() -> None:
    zab = InstantZab(Clock())
    f2, f3 = zab.learner(2), zab.learner(3)
    watcher, writer = _session(zab, f2), _session(zab, f3)
    _create(f3, writer, 1, "/w", b"0")
    zab.pump()
    f2.submit(watcher, 1, Op.GET_DATA, _record(PathWatchRequest("/w", True)))
    f3.submit(writer, 2, Op.SET_DATA, _record(SetDataRequest("/w", b"1", -1)))
    zab.pump()
    assert watcher.events == [(EventType.NODE_DATA_CHANGED, "/w")]
    assert writer.reply(2)[2] == 0


def test_ephemerals_and_session_close_from_a_learner() -> None:
    zab = InstantZab(Clock())
    f2, f3 = zab.learner(2), zab.learner(3)
    c = _session(zab, f2)
    _create(f2, c, 1, "/e", flags=1)
    zab.pump()
    assert f3.tree.get("/e").ephemeral_owner == c.session_id
    f2.submit(c, 2, Op.CLOSE_SESSION, Reader(b""))
    zab.pump()
    assert c.reply(2)[2] == 0 and c.closed
    for core in (zab.leader, f2, f3):
        assert core.tree.get("/e") is None
        assert c.session_id not in core.sessions.sessions


def test_only_the_leader_expires_sessions_and_touches_keep_them() -> None:
    clock = Clock()
    zab = InstantZab(clock)
    f2 = zab.learner(2)
    c = _session(zab, f2)
    _create(f2, c, 1, "/e", flags=1)
    zab.pump()
    for _ in range(5):  # client activity on the learner, reported in PING replies
        clock.now += 4000
        f2.submit(c, 100, Op.EXISTS, _record(PathWatchRequest("/e", False)))
        zab.leader.touch_remote(f2.take_touches())
        f2.expire_sessions()
        zab.leader.expire_sessions()
        zab.pump()
        assert f2.tree.get("/e") is not None
    clock.now += 30_000
    f2.expire_sessions()
    zab.pump()
    assert f2.tree.get("/e") is not None, "a learner never expires sessions itself"
    zab.leader.expire_sessions()
    zab.pump()
    assert f2.tree.get("/e") is None and zab.leader.tree.get("/e") is None


def test_moving_a_session_to_another_learner_is_revalidated() -> None:
    clock = Clock()
    zab = InstantZab(clock)
    f2, f3 = zab.learner(2), zab.learner(3)
    c = _session(zab, f2)
    moved = FakeConn()
    _connect(f3, moved, c.session_id, c.connect.passwd)
    assert moved.connect is not None and moved.connect.sessionId == c.session_id
    assert moved.connect.timeOut > 0

    clock.now += 60_000
    zab.leader.expire_sessions()
    zab.pump()
    late = FakeConn()
    _connect(f3, late, c.session_id, c.connect.passwd)
    assert late.connect is not None and late.connect.timeOut == 0, "expired: refused"


def test_sync_on_a_learner_is_answered_by_the_leaders_sync() -> None:
    zab = InstantZab(Clock())
    f2 = zab.learner(2)
    c = _session(zab, f2)
    f2.submit(c, 7, Op.SYNC, _record(PathRequest("/")))
    assert not c.sent
    zab.pump()
    xid, _zxid, err, body = c.reply(7)
    assert err == 0 and Reader(body).ustring() == "/"


def test_leader_local_clients_work_as_standalone() -> None:
    zab = InstantZab(Clock())
    f2 = zab.learner(2)
    c = _session(zab, zab.leader)
    _create(zab.leader, c, 1, "/l", b"z")
    zab.pump()
    assert c.reply(1)[2] == 0 and f2.tree.get("/l").data == b"z"

"""The simulated clients' way into a serving ensemble member: one real ZooKeeper session.

While a member serves, its `Gateway` is a client connection to the member's server core
(`LeaderCore` or `LearnerCore`), exactly as a socket connection would be, minus the socket:
it opens a session with a ConnectRequest (a new one, or the previous session of this member
resumed, which a learner must revalidate with the leader), then turns each simulated request
(`ZnodeOp`) into the ZooKeeper request bytes the core decodes, and each reply frame back into
the model's output. Several simulated clients share the session, as threads share a
ZooKeeper handle; per-session FIFO ordering then holds across them, as it would.

Reads are `sync` + `getData` on the session: the sync makes the read see every write
committed before it was issued (on a follower, the leader answers the forwarded sync once
everything outstanding has committed, and the read queues behind it), which is the
linearizable read ZooKeeper offers. Writes' results are linearizable by construction: the
leader decides them in zxid order, and the reply waits for the commit.

Outcomes: a reply is OK with the model output (and the txn's zxid for writes); a request
that never reached the core is FAIL (it certainly did not happen); a request in the core when
the connection closes (role change) is INFO, since it may still commit. An error code the
model does not expect is reported as an anomaly and answered FAIL (an error txn changes
nothing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum, auto
from typing import Any

from ..client.acl import OPEN_ACL_UNSAFE
from ..protocol.consts import Err, Op
from ..protocol.jute import Reader, Writer
from ..protocol.records import (
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    DeleteRequest,
    Id,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
    Stat,
)
from ..server.core import ServerCore
from .history import FAIL, INFO, OK, Outcome
from .znode_model import ZnodeOp

SESSION_TIMEOUT_MS = 10_000
NO_PASSWORD = b"\x00" * 16
CLIENT_ID = Id("ip", "10.0.0.100")

# error codes each operation may legitimately return (anything else is an anomaly)
EXPECTED_ERRORS: dict[str, frozenset[int]] = {
    "create": frozenset({int(Err.NODE_EXISTS)}),
    "set": frozenset({int(Err.BAD_VERSION), int(Err.NO_NODE)}),
    "delete": frozenset({int(Err.BAD_VERSION), int(Err.NO_NODE)}),
    "get": frozenset({int(Err.NO_NODE)}),
}

Reply = Callable[[int, Outcome], None]  # (request id, outcome)
Complain = Callable[[str], None]


class State(Enum):
    CONNECTING = auto()
    READY = auto()
    CLOSED = auto()


class Gateway:
    """A `ConnectionLike` for the server core; see the module docstring."""

    def __init__(self, core: ServerCore, reply: Reply, complain: Complain,
                 last_zxid: int = 0) -> None:
        self.core = core
        self._reply = reply
        self._complain = complain
        # ConnectionLike
        self.session_id = 0
        self.auth_ids: list[Id] = [CLIENT_ID]
        self.pending: deque = deque()
        self.sasl_server: object | None = None
        # client side
        self.state = State.CONNECTING
        self.password = NO_PASSWORD
        self.last_zxid = last_zxid  # highest zxid seen, as a client sends on reconnect
        self._xid = 0
        self._calls: dict[int, tuple[int, ZnodeOp] | None] = {}  # xid -> request (None: sync)
        self._waiting: list[tuple[int, ZnodeOp]] = []
        self._resumed = False

    # --- lifecycle (the member) -----------------------------------------------------------

    def open(self, session: tuple[int, bytes] | None) -> None:
        """Connect, resuming `session` (id, password) if given."""
        sid, password = session if session is not None else (0, NO_PASSWORD)
        self._resumed = session is not None
        req = ConnectRequest(0, self.last_zxid, SESSION_TIMEOUT_MS, sid, password)
        if not self.core.connect(self, req):
            # the core refuses clients that have seen more than it has: a new session
            # would be refused too, so this member waits for its next role
            self.close()
            return
        self.core.connections.add(self)

    def close(self) -> None:
        """The connection is gone: requests in the core have unknown outcomes."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        calls, self._calls = self._calls, {}
        for entry in calls.values():
            if entry is not None:
                self._reply(entry[0], Outcome(INFO, "connection loss"))
        waiting, self._waiting = self._waiting, []
        for request_id, _ in waiting:
            self._reply(request_id, Outcome(FAIL, "connection loss before sending"))
        self.core.connection_lost(self)

    @property
    def session(self) -> tuple[int, bytes] | None:
        return (self.session_id, self.password) if self.state is State.READY else None

    def request(self, request_id: int, op: ZnodeOp) -> None:
        if self.state is State.CLOSED:
            self._reply(request_id, Outcome(FAIL, "not connected"))
        elif self.state is State.CONNECTING:
            self._waiting.append((request_id, op))
        else:
            self._submit(request_id, op)

    def abandon(self, request_id: int) -> bool:
        """Give up a request still waiting for the session (FAIL); False if it was sent."""
        for i, (rid, _) in enumerate(self._waiting):
            if rid == request_id:
                del self._waiting[i]
                self._reply(request_id, Outcome(FAIL, "session not ready"))
                return True
        return False

    # --- ConnectionLike (called by the core) ------------------------------------------------

    def connect_done(self, resp: ConnectResponse) -> None:
        if self.state is State.CLOSED:
            return
        if resp.timeOut <= 0:
            if self._resumed:  # the session is gone (expired or unknown): start a new one
                self._resumed = False
                if not self.core.connect(self, ConnectRequest(
                        0, self.last_zxid, SESSION_TIMEOUT_MS, 0, NO_PASSWORD)):
                    self.close()
                return
            self._complain(f"a new session was refused: {resp}")
            self.close()
            return
        self.session_id, self.password = resp.sessionId, resp.passwd
        self.state = State.READY
        waiting, self._waiting = self._waiting, []
        for request_id, op in waiting:
            self._submit(request_id, op)

    def send(self, data: bytes) -> None:
        r = Reader(data, 4)
        xid, zxid, err = r.int(), r.long(), r.int()
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        if xid not in self._calls:
            if self.state is not State.CLOSED:
                self._complain(f"reply to unknown xid {xid} (err {err})")
            return
        entry = self._calls.pop(xid)
        if entry is None:
            if err != 0:
                self._complain(f"sync failed with error {err}")
            return
        request_id, op = entry
        if err != 0 and err not in EXPECTED_ERRORS[op.f]:
            self._complain(f"{op} answered with error {err}")
            self._reply(request_id, Outcome(FAIL, f"error {err}"))
            return
        self._reply(request_id, Outcome(OK, _output(op, err, r),
                                        None if op.f == "get" else zxid))

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        pass  # no watches are set

    def can_read(self, acl: tuple) -> bool:
        return True

    # --- requests -----------------------------------------------------------------------

    def _submit(self, request_id: int, op: ZnodeOp) -> None:
        if op.f == "get":
            self._call(Op.SYNC, PathRequest(op.path), None)
            self._call(Op.GET_DATA, PathWatchRequest(op.path, False), (request_id, op))
        elif op.f == "create":
            self._call(Op.CREATE, CreateRequest(op.path, op.data, OPEN_ACL_UNSAFE, 0),
                       (request_id, op))
        elif op.f == "set":
            self._call(Op.SET_DATA, SetDataRequest(op.path, op.data, op.version),
                       (request_id, op))
        else:
            self._call(Op.DELETE, DeleteRequest(op.path, op.version), (request_id, op))

    def _call(self, opcode: int, record: Any, entry: tuple[int, ZnodeOp] | None) -> None:
        self._xid += 1
        xid = self._xid
        w = Writer()
        record.write(w)
        self._calls[xid] = entry
        self.core.submit(self, xid, opcode, Reader(bytes(w.buf)))


def _output(op: ZnodeOp, err: int, r: Reader) -> tuple[Any, ...]:
    """The model's output for a reply (see znode_model.py)."""
    if err != 0:
        return (err,)
    if op.f == "set":
        return (0, Stat.read(r).version)
    if op.f == "get":
        data = r.buffer()
        return (0, data or b"", Stat.read(r).version)
    return (0,)

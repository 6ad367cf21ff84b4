"""Sans-I/O core of one client connection: bytes in, events out; requests in, bytes out.

`ClientProtocolCore` knows the framing (4-byte length prefix, bounded by jute.maxbuffer), the
handshake (ConnectRequest / ConnectResponse), the request and reply headers, the special xids
(-1 notification, -2 ping, -4 auth, -8 setWatches) and the response record of every opcode.
It owns no socket, no clock and no future: the asyncio layer (`aio.py`) feeds it what the
socket read (`receive_data`) and writes what it returns. This is h11's shape, applied to
ZooKeeper's ClientCnxn.

Invariants it checks, as the Java client does:
- normal replies arrive in request order, so a reply must carry the xid of the *oldest*
  outstanding request; anything else is a ProtocolError (the connection is unusable);
- a frame longer than `max_frame` (jute.maxbuffer, 0xfffff by default) or negative is a
  ProtocolError — a hostile or confused peer cannot make us buffer gigabytes;
- nothing but a ConnectResponse may arrive before the handshake completes.

Chroot: requests carry client paths; the core prefixes the chroot on every path it sends
(record `.path` fields, multi ops, setWatches lists) and strips it from every path it
receives (created paths, sync, notifications, getEphemerals), as ClientCnxn does.

One core serves one TCP connection. Session state (id, password, last zxid) outlives it and
belongs to the caller; `first_xid` lets xids keep increasing across reconnects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from ..protocol.consts import (
    XID_AUTH,
    XID_PING,
    XID_SET_WATCHES,
    XID_WATCH_EVENT,
    Op,
)
from ..protocol.jute import INT, JUTE_MAXBUFFER_DEFAULT, JuteError, Reader, Writer
from ..protocol.records import (
    ACL,
    MULTI_HEADER,
    REPLY_HEADER,
    REQUEST_HEADER,
    AuthPacket,
    ConnectRequest,
    SetWatches,
    Stat,
    WatcherEvent,
    write_multi,
)
from ..protocol.records import ConnectResponse as ConnectResponseRecord
from .errors import ProtocolError
from .fastpath import DECODERS as _FAST_DECODERS
from .fastpath import ENCODERS as _FAST_ENCODERS
from .fastpath import request_frame

XID_MAX = 0x7FFFFFFF
SET_WATCHES_CHUNK_CHARS = 128 * 1024  # Java splits setWatches at ~128 KB of path text
PASSWD_LEN = 16


# --- events returned by receive_data ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConnectResponse:
    """The handshake reply. `timeout_ms == 0` means the session is expired/invalid."""
    timeout_ms: int
    session_id: int
    passwd: bytes
    read_only: bool

    @property
    def expired(self) -> bool:
        return self.timeout_ms <= 0



@dataclass(slots=True)
class Reply:
    """The reply to request `xid` (opcode `op`). `body` is the decoded response (see
    `_DECODERS`) when `err == 0`, else None. `path` is the client path of the request.
    Not frozen: one is built per reply, and a frozen dataclass's __init__ costs four times
    as much."""
    xid: int
    zxid: int
    err: int
    op: int
    body: Any
    path: str | None = None


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: int
    state: int
    path: str | None
    zxid: int = -1


@dataclass(frozen=True, slots=True)
class PingReply:
    zxid: int


@dataclass(frozen=True, slots=True)
class AuthReply:
    err: int


@dataclass(frozen=True, slots=True)
class SetWatchesReply:
    zxid: int
    err: int


class MultiResult(NamedTuple):
    """One entry of a MultiResponse: the result `op` type (-1 for ErrorResult), its error
    code and decoded body."""
    op: int
    err: int
    body: Any


class ClientInfo(NamedTuple):
    """One entry of whoAmI's reply."""
    auth_scheme: str
    user: str


# --- the core --------------------------------------------------------------------------------

AWAIT_CONNECT, OPEN, CLOSED = "AWAIT_CONNECT", "OPEN", "CLOSED"


class ClientProtocolCore:
    """Framing, handshake and request/reply bookkeeping of one connection."""

    def __init__(self, chroot: str | None = None, *, max_frame: int = JUTE_MAXBUFFER_DEFAULT,
                 first_xid: int = 1) -> None:
        if chroot in ("", "/"):
            chroot = None
        if chroot is not None and (not chroot.startswith("/") or chroot.endswith("/")):
            raise ValueError(f"invalid chroot {chroot!r}")
        self.chroot = chroot
        self.max_frame = max_frame
        self.state = AWAIT_CONNECT
        self.last_zxid = 0
        self._next_xid = first_xid if 0 < first_xid <= XID_MAX else 1
        self._pending: deque[tuple[int, int, str | None]] = deque()  # (xid, op, path)
        self._buf = bytearray()  # the start of a frame not yet complete
        self._wanted = 0  # bytes _buf must hold before a frame can complete
        self._connect_sent = False

    # -- outbound -------------------------------------------------------------------------

    @property
    def next_xid(self) -> int:
        return self._next_xid

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending_xids(self) -> list[int]:
        return [p[0] for p in self._pending]

    def connect_request(self, timeout_ms: int, session_id: int = 0,
                        passwd: bytes | None = None, last_zxid: int = 0,
                        read_only: bool = False) -> bytes:
        if self.state != AWAIT_CONNECT or self._connect_sent:
            raise ProtocolError(f"connect_request in state {self.state}")
        self._connect_sent = True
        if last_zxid > self.last_zxid:
            self.last_zxid = last_zxid
        req = ConnectRequest(0, last_zxid, timeout_ms, session_id,
                             passwd if passwd else b"\x00" * PASSWD_LEN, read_only)
        w = Writer()
        req.write(w)
        return _frame(w.buf)

    def send_request(self, op: int, record: Any = None) -> tuple[int, bytes]:
        """Encode request `op` with body `record` (client paths); return (xid, frame)."""
        if self.state != OPEN:
            raise ProtocolError(f"send_request in state {self.state}")
        xid = self._next_xid
        self._next_xid = 1 if xid >= XID_MAX else xid + 1
        if record is None:
            frame: bytes | None = request_frame(xid, op, b"")
        else:
            fast = _FAST_ENCODERS.get(type(record)) if op not in _ENCODERS else None
            frame = fast(self, xid, op, record) if fast is not None else None
            if frame is None:
                w = Writer()
                _ENCODERS.get(op, _write_plain)(self, w, record)
                frame = request_frame(xid, op, w.buf)
        self._pending.append((xid, op, getattr(record, "path", None)))
        return xid, frame

    def ping(self) -> bytes:
        self._require_open("ping")
        return _frame(REQUEST_HEADER.pack(XID_PING, Op.PING))

    def auth_request(self, scheme: str, auth: bytes) -> bytes:
        """An AuthPacket. Valid right after connect_request too: like the Java client, auth
        packets are queued behind the handshake without waiting for its reply."""
        if not self._connect_sent or self.state == CLOSED:
            raise ProtocolError("auth_request before connect_request")
        w = Writer()
        w.raw(REQUEST_HEADER.pack(XID_AUTH, Op.AUTH))
        AuthPacket(0, scheme, auth).write(w)
        return _frame(w.buf)

    def set_watches_requests(self, relative_zxid: int, data: Iterable[str],
                             exist: Iterable[str], child: Iterable[str],
                             persistent: Iterable[str] = (),
                             recursive: Iterable[str] = ()) -> list[bytes]:
        """setWatches / setWatches2 frames re-registering the given client paths, split into
        packets of at most ~128 KB of path text. Opcode 101 is used for a packet without
        persistent watches (servers older than 3.6 know only that one), 105 otherwise."""
        if not self._connect_sent or self.state == CLOSED:
            raise ProtocolError("set_watches before connect_request")
        lists = [[self.to_server(p) for p in ps]
                 for ps in (data, exist, child, persistent, recursive)]
        frames: list[bytes] = []
        chunk: list[list[str]] = [[], [], [], [], []]
        size = 0
        for kind, paths in enumerate(lists):
            for p in paths:
                if size + len(p) > SET_WATCHES_CHUNK_CHARS and size:
                    frames.append(self._set_watches_frame(relative_zxid, chunk))
                    chunk, size = [[], [], [], [], []], 0
                chunk[kind].append(p)
                size += len(p)
        if size:
            frames.append(self._set_watches_frame(relative_zxid, chunk))
        return frames

    def _set_watches_frame(self, zxid: int, chunk: list[list[str]]) -> bytes:
        v2 = bool(chunk[3] or chunk[4])
        w = Writer()
        w.raw(REQUEST_HEADER.pack(XID_SET_WATCHES, Op.SET_WATCHES2 if v2 else Op.SET_WATCHES))
        SetWatches(zxid, *chunk).write(w, v2)
        return _frame(w.buf)

    def _require_open(self, what: str) -> None:
        if self.state != OPEN:
            raise ProtocolError(f"{what} in state {self.state}")

    # -- inbound --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Any]:
        """Feed bytes read from the socket; return the complete events they finish.

        Frames are decoded in place (offsets into `data`, no copy per frame); only the tail
        of an incomplete frame is kept, and it is joined with later data only once enough
        has arrived to complete a frame, so a large reply read in pieces is copied once."""
        if self.state == CLOSED:
            raise ProtocolError("receive_data on a closed connection")
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._wanted:
                return []
            data = bytes(buf)
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        events: list[Any] = []
        size = len(data)
        pos = 0
        try:
            while size - pos >= 4:
                (n,) = INT.unpack_from(data, pos)
                if n < 0 or n > self.max_frame:
                    raise ProtocolError(f"frame length {n} outside 0..{self.max_frame}")
                end = pos + 4 + n
                if end > size:
                    break
                events.append(self._frame_event(data, pos + 4, end))
                pos = end
        except (ProtocolError, JuteError, ValueError) as e:
            self.state = CLOSED
            message = str(e) if isinstance(e, ProtocolError) else f"malformed frame: {e}"
            raise ProtocolError(message, events) from e
        finally:
            if self.state != CLOSED and pos < size:
                buf += memoryview(data)[pos:]
                self._wanted = 4 + INT.unpack_from(data, pos)[0] if size - pos >= 4 else 4
        return events

    def connection_lost(self) -> list[int]:
        """Mark the connection dead; return the xids whose replies will never come."""
        self.state = CLOSED
        xids = [p[0] for p in self._pending]
        self._pending.clear()
        self._buf.clear()
        return xids

    def _frame_event(self, data: bytes, start: int, end: int) -> Any:
        """The event of the frame data[start:end] (its length prefix already stripped)."""
        if end - start < REPLY_HEADER.size or self.state != OPEN:
            return self._unusual_frame(data[start:end])
        xid, zxid, err = REPLY_HEADER.unpack_from(data, start)
        if xid < 0:
            return self._unusual_frame(data[start:end])
        pending = self._pending
        if not pending:
            raise ProtocolError(f"reply for xid {xid} with no request outstanding")
        head_xid, op, path = pending[0]
        if head_xid != xid:
            raise ProtocolError(f"reply xid {xid} out of order: expected {head_xid}")
        pending.popleft()
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        body = None
        if err == 0:
            fast = _FAST_DECODERS.get(op)
            if fast is not None:
                body = fast(data, start + REPLY_HEADER.size, end)
            else:
                decode = _DECODERS.get(op)
                if decode is not None:
                    body = decode(self, Reader(data[start:end], REPLY_HEADER.size,
                                               max_len=self.max_frame))
        return Reply(xid, zxid, err, op, body, path)

    def _unusual_frame(self, frame: bytes) -> Any:
        """Everything but a normal reply: the handshake, notifications, pings, auth and
        setWatches replies, and the malformed frames."""
        if self.state == AWAIT_CONNECT:
            if not self._connect_sent:
                raise ProtocolError("data received before the ConnectRequest was sent")
            resp = ConnectResponseRecord.read(Reader(frame, max_len=self.max_frame))
            self.state = OPEN
            return ConnectResponse(resp.timeOut, resp.sessionId, resp.passwd, resp.readOnly)
        if len(frame) < REPLY_HEADER.size:
            raise ProtocolError(f"reply of {len(frame)} bytes is shorter than its header")
        xid, zxid, err = REPLY_HEADER.unpack_from(frame, 0)
        r = Reader(frame, REPLY_HEADER.size, max_len=self.max_frame)
        if xid == XID_WATCH_EVENT:
            ev = WatcherEvent.read(r)
            return WatchEvent(ev.type, ev.state, self.to_client(ev.path), zxid)
        if xid == XID_PING:
            self._see_zxid(zxid)
            return PingReply(zxid)
        if xid == XID_AUTH:
            return AuthReply(err)
        if xid == XID_SET_WATCHES:
            self._see_zxid(zxid)
            return SetWatchesReply(zxid, err)
        if not self._pending:
            raise ProtocolError(f"reply for xid {xid} with no request outstanding")
        raise ProtocolError(f"reply xid {xid} out of order: expected {self._pending[0][0]}")

    def _see_zxid(self, zxid: int) -> None:
        if zxid > self.last_zxid:
            self.last_zxid = zxid

    # -- chroot ---------------------------------------------------------------------------

    def to_server(self, path: str) -> str:
        if self.chroot is None:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def to_client(self, path: str | None) -> str | None:
        root = self.chroot
        if root is None or path is None:
            return path
        if path == root:
            return "/"
        if path.startswith(root) and path[len(root)] == "/":
            return path[len(root):]
        return path  # outside the chroot: ClientCnxn leaves it as is


def _frame(payload: bytes | bytearray) -> bytes:
    return INT.pack(len(payload)) + bytes(payload)


# --- request encoders (chroot applied on the way out) ----------------------------------------

def _write_plain(core: ClientProtocolCore, w: Writer, rec: Any) -> None:
    if core.chroot is not None and getattr(rec, "path", None) is not None:
        rec = replace(rec, path=core.to_server(rec.path))
    rec.write(w)


def _write_create_ttl(core: ClientProtocolCore, w: Writer, rec: Any) -> None:
    replace(rec, path=core.to_server(rec.path)).write(w, True)


def _write_multi(core: ClientProtocolCore, w: Writer, ops: list[tuple[int, Any]]) -> None:
    if core.chroot is not None:
        ops = [(op, replace(rec, path=core.to_server(rec.path))) for op, rec in ops]
    write_multi(w, ops)


_ENCODERS: dict[int, Callable[[ClientProtocolCore, Writer, Any], None]] = {
    Op.CREATE_TTL: _write_create_ttl,
    Op.MULTI: _write_multi,
    Op.MULTI_READ: _write_multi,
}


# --- response decoders -----------------------------------------------------------------------

def _none(core: ClientProtocolCore, r: Reader) -> None:
    return None


def _path(core: ClientProtocolCore, r: Reader) -> str | None:
    return core.to_client(r.ustring())


def _path_stat(core: ClientProtocolCore, r: Reader) -> tuple[str | None, Stat]:
    return core.to_client(r.ustring()), Stat.read(r)


def _stat(core: ClientProtocolCore, r: Reader) -> Stat:
    return Stat.read(r)


def _data_stat(core: ClientProtocolCore, r: Reader) -> tuple[bytes, Stat]:
    data = r.buffer()
    return (b"" if data is None else data), Stat.read(r)


def _acl_stat(core: ClientProtocolCore, r: Reader) -> tuple[list[ACL], Stat]:
    acls = r.vector(ACL.read) or []
    return acls, Stat.read(r)


def _children(core: ClientProtocolCore, r: Reader) -> list[str]:
    return r.ustring_vector() or []


def _children_stat(core: ClientProtocolCore, r: Reader) -> tuple[list[str], Stat]:
    children = r.ustring_vector() or []
    return children, Stat.read(r)


def _int(core: ClientProtocolCore, r: Reader) -> int:
    return r.int()


def _paths(core: ClientProtocolCore, r: Reader) -> list[str]:
    return [core.to_client(p) or "" for p in (r.ustring_vector() or [])]


def _client_infos(core: ClientProtocolCore, r: Reader) -> list[ClientInfo]:
    return r.vector(lambda rr: ClientInfo(rr.ustring() or "", rr.ustring() or "")) or []


def _buffer(core: ClientProtocolCore, r: Reader) -> bytes:
    return r.buffer() or b""


_MULTI_RESULT_DECODERS: dict[int, Callable[[ClientProtocolCore, Reader], Any]] = {
    Op.CREATE: _path,
    Op.CREATE2: _path_stat,
    Op.DELETE: _none,
    Op.CHECK: _none,
    Op.SET_DATA: _stat,
    Op.GET_CHILDREN: _children,
    Op.GET_DATA: _data_stat,
    Op.ERROR: _int,
}


def _multi(core: ClientProtocolCore, r: Reader) -> list[MultiResult]:
    out: list[MultiResult] = []
    while True:
        r._need(MULTI_HEADER.size)
        typ, done, err = MULTI_HEADER.unpack_from(r.buf, r.pos)
        r.pos += MULTI_HEADER.size
        if done:
            return out
        decode = _MULTI_RESULT_DECODERS.get(typ)
        if decode is None:
            raise ProtocolError(f"unknown result type {typ} in multi response")
        body = decode(core, r)
        out.append(MultiResult(typ, body if typ == Op.ERROR else err, body))


_DECODERS: dict[int, Callable[[ClientProtocolCore, Reader], Any]] = {
    Op.CREATE: _path,
    Op.CREATE2: _path_stat,
    Op.CREATE_CONTAINER: _path_stat,
    Op.CREATE_TTL: _path_stat,
    Op.DELETE: _none,
    Op.EXISTS: _stat,
    Op.GET_DATA: _data_stat,
    Op.SET_DATA: _stat,
    Op.GET_ACL: _acl_stat,
    Op.SET_ACL: _stat,
    Op.GET_CHILDREN: _children,
    Op.GET_CHILDREN2: _children_stat,
    Op.SYNC: _path,
    Op.CHECK: _none,
    Op.MULTI: _multi,
    Op.MULTI_READ: _multi,
    Op.RECONFIG: _data_stat,
    Op.CHECK_WATCHES: _none,
    Op.REMOVE_WATCHES: _none,
    Op.GET_EPHEMERALS: _paths,
    Op.GET_ALL_CHILDREN_NUMBER: _int,
    Op.ADD_WATCH: _none,
    Op.WHO_AM_I: _client_infos,
    Op.SASL: _buffer,
    Op.CLOSE_SESSION: _none,
}

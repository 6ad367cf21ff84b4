"""Every jute record of the client protocol: data types (Id, ACL, Stat), the handshake,
request and response bodies.

Each record is a slotted dataclass with `write(w)` and `read(r)`. Field order is ZooKeeper's
(zookeeper.jute), which is the whole encoding. Records are built once per request, so they
are not `frozen` (a frozen dataclass's __init__ costs several times more); treat them as
immutable all the same. Id and ACL are NamedTuples: hashable values used in sets and caches.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from .consts import Op
from .jute import INT as _INT
from .jute import JuteError, Reader, Writer

STAT = struct.Struct(">qqqqiiiqiiq")  # 68 bytes, client-visible Stat


class Id(NamedTuple):
    scheme: str
    id: str

    def write(self, w: Writer) -> None:
        w.ustring(self.scheme).ustring(self.id)

    @staticmethod
    def read(r: Reader) -> Id:
        return Id(r.ustring() or "", r.ustring() or "")


class ACL(NamedTuple):
    perms: int
    id: Id

    def write(self, w: Writer) -> None:
        w.int(self.perms)
        self.id.write(w)

    @staticmethod
    def read(r: Reader) -> ACL:
        perms = r.int()
        return ACL(perms, Id.read(r))


ANYONE_ID = Id("world", "anyone")
AUTH_IDS = Id("auth", "")
OPEN_ACL_UNSAFE = (ACL(31, ANYONE_ID),)
CREATOR_ALL_ACL = (ACL(31, AUTH_IDS),)
READ_ACL_UNSAFE = (ACL(1, ANYONE_ID),)


def write_acls(w: Writer, acls: tuple[ACL, ...] | list[ACL] | None) -> None:
    if acls is None:
        w.int(-1)
        return
    w.int(len(acls))
    for a in acls:
        a.write(w)


_ACL_CACHE: dict[bytes, tuple[ACL, ...]] = {}
_ACL_CACHE_MAX = 4096


def read_acls(r: Reader) -> tuple[ACL, ...] | None:
    """Decode a vector<ACL>. Nearly every request carries one of a handful of ACL lists, so
    decoded lists are cached by their encoded bytes (bounded), skipping object construction."""
    start = r.pos
    n = r.int()
    if n == -1:
        return None
    if n < 0 or n > 4096:
        raise JuteError(f"unreasonable ACL count {n}")
    buf, pos, end = r.buf, r.pos, len(r.buf)
    for _ in range(n):
        pos += 4
        for _s in range(2):
            if pos + 4 > end:
                raise JuteError("truncated ACL")
            (ln,) = _INT.unpack_from(buf, pos)
            pos += 4 + (max(0, ln))
    if pos > end:
        raise JuteError("truncated ACL")
    key = bytes(buf[start:pos])
    acls = _ACL_CACHE.get(key)
    if acls is None:
        acls = tuple(ACL.read(r) for _ in range(n))
        if len(_ACL_CACHE) >= _ACL_CACHE_MAX:
            _ACL_CACHE.clear()
        _ACL_CACHE[key] = acls
    r.pos = pos
    return acls


@dataclass(slots=True)
class Stat:
    czxid: int = 0
    mzxid: int = 0
    ctime: int = 0
    mtime: int = 0
    version: int = 0
    cversion: int = 0
    aversion: int = 0
    ephemeralOwner: int = 0
    dataLength: int = 0
    numChildren: int = 0
    pzxid: int = 0

    def write(self, w: Writer) -> None:
        w.raw(STAT.pack(self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                        self.cversion, self.aversion, self.ephemeralOwner, self.dataLength,
                        self.numChildren, self.pzxid))

    @staticmethod
    def read(r: Reader) -> Stat:
        r._need(68)
        v = STAT.unpack_from(r.buf, r.pos)
        r.pos += 68
        return Stat(*v)


# --- handshake -------------------------------------------------------------------------------

CONNECT_REQ = struct.Struct(">iqiq")


@dataclass(slots=True)
class ConnectRequest:
    protocolVersion: int = 0
    lastZxidSeen: int = 0
    timeOut: int = 0
    sessionId: int = 0
    passwd: bytes = b"\x00" * 16
    readOnly: bool = False
    has_read_only: bool = True  # False for pre-3.4 clients that omit the trailing bool

    def write(self, w: Writer) -> None:
        w.raw(CONNECT_REQ.pack(self.protocolVersion, self.lastZxidSeen, self.timeOut,
                               self.sessionId))
        w.buffer(self.passwd)
        if self.has_read_only:
            w.bool(self.readOnly)

    @staticmethod
    def read(r: Reader) -> ConnectRequest:
        r._need(24)
        pv, zx, to, sid = CONNECT_REQ.unpack_from(r.buf, r.pos)
        r.pos += 24
        pw = r.buffer() or b""
        if r.remaining() >= 1:
            return ConnectRequest(pv, zx, to, sid, pw, r.bool(), True)
        return ConnectRequest(pv, zx, to, sid, pw, False, False)


@dataclass(slots=True)
class ConnectResponse:
    protocolVersion: int = 0
    timeOut: int = 0
    sessionId: int = 0
    passwd: bytes = b"\x00" * 16
    readOnly: bool = False
    has_read_only: bool = True

    def write(self, w: Writer) -> None:
        w.int(self.protocolVersion).int(self.timeOut).long(self.sessionId).buffer(self.passwd)
        if self.has_read_only:
            w.bool(self.readOnly)

    @staticmethod
    def read(r: Reader) -> ConnectResponse:
        pv, to, sid = r.int(), r.int(), r.long()
        pw = r.buffer() or b""
        if r.remaining() >= 1:
            return ConnectResponse(pv, to, sid, pw, r.bool(), True)
        return ConnectResponse(pv, to, sid, pw, False, False)


# --- requests --------------------------------------------------------------------------------

@dataclass(slots=True)
class CreateRequest:
    path: str
    data: bytes | None
    acl: tuple[ACL, ...] | None
    flags: int
    ttl: int = -1  # only CreateTTLRequest carries it on the wire

    def write(self, w: Writer, with_ttl: bool = False) -> None:
        w.ustring(self.path).buffer(self.data)
        write_acls(w, self.acl)
        w.int(self.flags)
        if with_ttl:
            w.long(self.ttl)

    @staticmethod
    def read(r: Reader) -> CreateRequest:
        return CreateRequest(r.ustring() or "", r.buffer(), read_acls(r), r.int())

    @staticmethod
    def read_ttl(r: Reader) -> CreateRequest:
        return CreateRequest(r.ustring() or "", r.buffer(), read_acls(r), r.int(), r.long())


@dataclass(slots=True)
class DeleteRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.ustring(self.path).int(self.version)

    @staticmethod
    def read(r: Reader) -> DeleteRequest:
        return DeleteRequest(r.ustring() or "", r.int())


@dataclass(slots=True)
class PathWatchRequest:
    """exists / getData / getChildren / getChildren2: `ustring path, bool watch`."""
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.ustring(self.path).bool(self.watch)

    @staticmethod
    def read(r: Reader) -> PathWatchRequest:
        return PathWatchRequest(r.ustring() or "", r.bool())


@dataclass(slots=True)
class PathRequest:
    """getACL / sync / getAllChildrenNumber / getEphemerals: a single `ustring path`."""
    path: str | None

    def write(self, w: Writer) -> None:
        w.ustring(self.path)

    @staticmethod
    def read(r: Reader) -> PathRequest:
        return PathRequest(r.ustring())


@dataclass(slots=True)
class SetDataRequest:
    path: str
    data: bytes | None
    version: int

    def write(self, w: Writer) -> None:
        w.ustring(self.path).buffer(self.data).int(self.version)

    @staticmethod
    def read(r: Reader) -> SetDataRequest:
        return SetDataRequest(r.ustring() or "", r.buffer(), r.int())


@dataclass(slots=True)
class SetACLRequest:
    path: str
    acl: tuple[ACL, ...] | None
    version: int

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        write_acls(w, self.acl)
        w.int(self.version)

    @staticmethod
    def read(r: Reader) -> SetACLRequest:
        return SetACLRequest(r.ustring() or "", read_acls(r), r.int())


@dataclass(slots=True)
class CheckVersionRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.ustring(self.path).int(self.version)

    @staticmethod
    def read(r: Reader) -> CheckVersionRequest:
        return CheckVersionRequest(r.ustring() or "", r.int())


@dataclass(slots=True)
class PathTypeRequest:
    """checkWatches / removeWatches (`type`) and addWatch (`mode`)."""
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.ustring(self.path).int(self.type)

    @staticmethod
    def read(r: Reader) -> PathTypeRequest:
        return PathTypeRequest(r.ustring() or "", r.int())


@dataclass(slots=True)
class AuthPacket:
    type: int
    scheme: str
    auth: bytes

    def write(self, w: Writer) -> None:
        w.int(self.type).ustring(self.scheme).buffer(self.auth)

    @staticmethod
    def read(r: Reader) -> AuthPacket:
        return AuthPacket(r.int(), r.ustring() or "", r.buffer() or b"")


@dataclass(slots=True)
class SetWatches:
    relativeZxid: int
    dataWatches: list[str]
    existWatches: list[str]
    childWatches: list[str]
    persistentWatches: list[str] = field(default_factory=list)
    persistentRecursiveWatches: list[str] = field(default_factory=list)

    def write(self, w: Writer, v2: bool) -> None:
        w.long(self.relativeZxid)
        w.ustring_vector(self.dataWatches).ustring_vector(self.existWatches)
        w.ustring_vector(self.childWatches)
        if v2:
            w.ustring_vector(self.persistentWatches)
            w.ustring_vector(self.persistentRecursiveWatches)

    @staticmethod
    def read(r: Reader, v2: bool) -> SetWatches:
        z = r.long()
        d = r.ustring_vector() or []
        e = r.ustring_vector() or []
        c = r.ustring_vector() or []
        if v2:
            return SetWatches(z, d, e, c, r.ustring_vector() or [], r.ustring_vector() or [])
        return SetWatches(z, d, e, c)


@dataclass(slots=True)
class WatcherEvent:
    type: int
    state: int
    path: str | None

    def write(self, w: Writer) -> None:
        w.int(self.type).int(self.state).ustring(self.path)

    @staticmethod
    def read(r: Reader) -> WatcherEvent:
        return WatcherEvent(r.int(), r.int(), r.ustring())


# --- multi -----------------------------------------------------------------------------------

MULTI_HEADER = struct.Struct(">i?i")
MULTI_DONE = MULTI_HEADER.pack(-1, True, -1)

MultiOp = tuple[int, object]  # (opcode, request record)

_MULTI_READERS = {
    Op.CREATE: CreateRequest.read,
    Op.CREATE2: CreateRequest.read,
    Op.CREATE_CONTAINER: CreateRequest.read,
    Op.CREATE_TTL: CreateRequest.read_ttl,
    Op.DELETE: DeleteRequest.read,
    Op.SET_DATA: SetDataRequest.read,
    Op.CHECK: CheckVersionRequest.read,
    Op.GET_CHILDREN: PathWatchRequest.read,
    Op.GET_DATA: PathWatchRequest.read,
}


class UnknownMultiOp(ValueError):
    pass


def read_multi(r: Reader) -> list[MultiOp]:
    """Decode a MultiOperationRecord into (opcode, record) pairs."""
    ops: list[MultiOp] = []
    while True:
        r._need(9)
        typ, done, _err = MULTI_HEADER.unpack_from(r.buf, r.pos)
        r.pos += 9
        if done:
            return ops
        reader = _MULTI_READERS.get(typ)
        if reader is None:
            raise UnknownMultiOp(f"invalid type {typ} in multi")
        ops.append((typ, reader(r)))


def write_multi(w: Writer, ops: list[MultiOp]) -> None:
    for typ, rec in ops:
        w.raw(MULTI_HEADER.pack(typ, False, -1))
        if typ == Op.CREATE_TTL:
            rec.write(w, True)  # type: ignore[attr-defined]
        else:
            rec.write(w)  # type: ignore[attr-defined]
    w.raw(MULTI_DONE)


REQUEST_HEADER = struct.Struct(">ii")
REPLY_HEADER = struct.Struct(">iqi")

"""Transaction records (zookeeper.jute's `txn` module) and the TxnHeader.

A write request is turned by the prep stage into one `Txn`: a header (session, cxid, zxid,
time, type) and a record. Txns are what the log persists, what ZAB replicates and what the
data tree applies, so they carry everything needed to apply them deterministically (the final
path with its sequence suffix, the expanded ACL, the parent's new cversion).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

from .consts import Op
from .jute import Reader, Writer
from .records import ACL, read_acls, write_acls

TXN_HEADER = struct.Struct(">qiqqi")  # clientId, cxid, zxid, time, type


@dataclass(slots=True)
class CreateSessionTxn:
    timeOut: int

    def write(self, w: Writer) -> None:
        w.int(self.timeOut)

    @staticmethod
    def read(r: Reader) -> CreateSessionTxn:
        return CreateSessionTxn(r.int())


@dataclass(slots=True)
class CloseSessionTxn:
    paths2Delete: tuple[str, ...] | None

    def write(self, w: Writer) -> None:
        w.ustring_vector(None if self.paths2Delete is None else list(self.paths2Delete))

    @staticmethod
    def read(r: Reader) -> CloseSessionTxn:
        if r.remaining() == 0:
            return CloseSessionTxn(None)
        v = r.ustring_vector()
        return CloseSessionTxn(None if v is None else tuple(v))


@dataclass(slots=True)
class CreateTxn:
    """create / create2 / createContainer / createTTL, one shape in memory.

    `ttl` is -1 unless the node is a TTL node; `container` marks createContainer. The on-disk
    record differs per type (CreateTxn, CreateContainerTxn, CreateTTLTxn): see write_for()."""
    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    ephemeral: bool
    parentCVersion: int
    ttl: int = -1
    container: bool = False

    def write(self, w: Writer) -> None:
        w.ustring(self.path).buffer(self.data)
        write_acls(w, self.acl)
        if self.container:
            w.int(self.parentCVersion)
        elif self.ttl >= 0:
            w.int(self.parentCVersion).long(self.ttl)
        else:
            w.bool(self.ephemeral).int(self.parentCVersion)

    @staticmethod
    def read(r: Reader) -> CreateTxn:
        path, data, acl = r.ustring() or "", r.buffer(), read_acls(r) or ()
        eph = r.bool()
        # CreateTxnV0 (pre-3.3 logs) ends here: parentCVersion -1 means "current + 1".
        pcv = r.int() if r.remaining() >= 4 else -1
        return CreateTxn(path, data, acl, eph, pcv)

    @staticmethod
    def read_container(r: Reader) -> CreateTxn:
        path, data, acl = r.ustring() or "", r.buffer(), read_acls(r) or ()
        return CreateTxn(path, data, acl, False, r.int(), -1, True)

    @staticmethod
    def read_ttl(r: Reader) -> CreateTxn:
        path, data, acl = r.ustring() or "", r.buffer(), read_acls(r) or ()
        pcv = r.int()
        return CreateTxn(path, data, acl, False, pcv, r.long())


@dataclass(slots=True)
class DeleteTxn:
    path: str

    def write(self, w: Writer) -> None:
        w.ustring(self.path)

    @staticmethod
    def read(r: Reader) -> DeleteTxn:
        return DeleteTxn(r.ustring() or "")


@dataclass(slots=True)
class SetDataTxn:
    path: str
    data: bytes | None
    version: int  # the NEW version

    def write(self, w: Writer) -> None:
        w.ustring(self.path).buffer(self.data).int(self.version)

    @staticmethod
    def read(r: Reader) -> SetDataTxn:
        return SetDataTxn(r.ustring() or "", r.buffer(), r.int())


@dataclass(slots=True)
class SetACLTxn:
    path: str
    acl: tuple[ACL, ...]
    version: int  # the NEW aversion

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        write_acls(w, self.acl)
        w.int(self.version)

    @staticmethod
    def read(r: Reader) -> SetACLTxn:
        return SetACLTxn(r.ustring() or "", read_acls(r) or (), r.int())


@dataclass(slots=True)
class CheckVersionTxn:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.ustring(self.path).int(self.version)

    @staticmethod
    def read(r: Reader) -> CheckVersionTxn:
        return CheckVersionTxn(r.ustring() or "", r.int())


@dataclass(slots=True)
class ErrorTxn:
    err: int

    def write(self, w: Writer) -> None:
        w.int(self.err)

    @staticmethod
    def read(r: Reader) -> ErrorTxn:
        return ErrorTxn(r.int())


TxnRecord = Union[CreateSessionTxn, CloseSessionTxn, CreateTxn, DeleteTxn, SetDataTxn,
                  SetACLTxn, CheckVersionTxn, ErrorTxn, "MultiTxn", None]


@dataclass(slots=True)
class MultiTxn:
    """Sub-txns as (type, record); all share the multi's zxid."""
    txns: tuple[tuple[int, TxnRecord], ...]

    def write(self, w: Writer) -> None:
        w.int(len(self.txns))
        for typ, rec in self.txns:
            sub = Writer()
            if rec is not None:
                rec.write(sub)
            # A create2 is written as a create, as ZooKeeper 3.8 logs and proposes it: 3.8
            # learners and log readers reject sub-txn type 15 (only 3.9 has it, ZOOKEEPER-4026)
            # and would silently skip the whole multi. In memory it stays a create2, so the
            # client that sent it still gets its Stat back.
            w.int(Op.CREATE if typ == Op.CREATE2 else typ).buffer(bytes(sub.buf))

    @staticmethod
    def read(r: Reader) -> MultiTxn:
        n = r.int()
        out = []
        for _ in range(max(n, 0)):
            typ = r.int()
            body = r.buffer() or b""
            out.append((typ, read_txn_record(typ, Reader(body))))
        return MultiTxn(tuple(out))


_TXN_READERS: dict[int, Callable[[Reader], TxnRecord]] = {
    Op.CREATE_SESSION: CreateSessionTxn.read,
    Op.CLOSE_SESSION: CloseSessionTxn.read,
    Op.CREATE: CreateTxn.read,
    Op.CREATE2: CreateTxn.read,
    Op.CREATE_CONTAINER: CreateTxn.read_container,
    Op.CREATE_TTL: CreateTxn.read_ttl,
    Op.DELETE: DeleteTxn.read,
    Op.DELETE_CONTAINER: DeleteTxn.read,
    Op.SET_DATA: SetDataTxn.read,
    Op.RECONFIG: SetDataTxn.read,
    Op.SET_ACL: SetACLTxn.read,
    Op.CHECK: CheckVersionTxn.read,
    Op.ERROR: ErrorTxn.read,
    Op.MULTI: MultiTxn.read,
}


class UnsupportedTxn(ValueError):
    pass


def read_txn_record(typ: int, r: Reader) -> TxnRecord:
    reader = _TXN_READERS.get(typ)
    if reader is None:
        raise UnsupportedTxn(f"Unsupported Txn with type={typ}")
    return reader(r)


@dataclass(slots=True)
class Txn:
    """One transaction: TxnHeader fields plus its record."""
    session_id: int
    cxid: int
    zxid: int
    time: int
    type: int
    record: TxnRecord
    # The tree digest after this txn, when known: logged after the record (TxnDigest).
    digest: int | None = field(default=None, compare=False, repr=False)

    def write(self, w: Writer) -> None:
        w.raw(TXN_HEADER.pack(self.session_id, self.cxid, self.zxid, self.time, self.type))
        if self.record is not None:
            self.record.write(w)

    @staticmethod
    def read(r: Reader) -> Txn:
        r._need(TXN_HEADER.size)
        sid, cxid, zxid, t, typ = TXN_HEADER.unpack_from(r.buf, r.pos)
        r.pos += TXN_HEADER.size
        rec = None if r.remaining() == 0 else read_txn_record(typ, r)
        return Txn(sid, cxid, zxid, t, typ, rec)

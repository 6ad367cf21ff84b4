"""The prep stage: validate a write against the *outstanding* state and turn it into a txn.

Mirrors ZooKeeper's PrepRequestProcessor. Writes that were prepped but not yet applied (they
are waiting for fsync or a quorum) are visible here as ChangeRecords overlaying the data
tree, so pipelined requests see each other: a create of /a followed at once by a create of
/a/b succeeds, and concurrent sequential creates get distinct suffixes. Every write consumes
a zxid, including failed ones (they become error txns), exactly as ZooKeeper.

The checks run in ZooKeeper's order, so the error code for a request that is wrong in several
ways is the one ZooKeeper returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.consts import (
    CONFIG_PATH,
    CONTAINER_EPHEMERAL_OWNER,
    MAX_TTL_MS,
    QUOTA_PATH,
    ZOOKEEPER_PATH,
    CreateMode,
    Err,
    Op,
    Perm,
    ttl_owner,
)
from ..protocol.paths import BadPath, validate_path
from ..protocol.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    Id,
    SetACLRequest,
    SetDataRequest,
)
from ..protocol.txns import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnRecord,
)
from .acl import ACLError, check_acl, fixup_acl
from .datatree import DataTree, is_ttl_owner, split_path

SPECIAL_PATHS = frozenset({"/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH})
INT_MIN = -(1 << 31)


class KeeperError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class ChangeRecord:
    """Outstanding view of one node: what it will look like once pending txns apply."""
    zxid: int
    path: str
    exists: bool
    version: int = 0
    cversion: int = 0
    aversion: int = 0
    ephemeral_owner: int = 0
    child_count: int = 0
    acl: tuple[ACL, ...] = ()
    data_len: int = 0

    def changed(self, zxid: int, **fields: object) -> "ChangeRecord":
        """A copy made by the write with `zxid` (dataclasses.replace is several times slower
        and this is on every write's path)."""
        rec = ChangeRecord(zxid, self.path, self.exists, self.version, self.cversion,
                           self.aversion, self.ephemeral_owner, self.child_count, self.acl,
                           self.data_len)
        for k, v in fields.items():
            setattr(rec, k, v)
        return rec


def check_and_inc_version(current: int, expected: int) -> int:
    if expected != -1 and expected != current:
        raise KeeperError(Err.BAD_VERSION)
    nxt = current + 1
    if nxt > (1 << 31) - 1:
        nxt = 1
    return nxt


CREATE_OPS = (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL)


class MalformedMulti(Exception):
    pass


def normalize_multi_ops(ops: list[tuple[int, object]]) -> list[tuple[int, object]]:
    """The op types ZooKeeper really executes for the creates of a multi.

    Java's MultiOperationRecord rebuilds each create with `Op.create(...)`, whose opcode comes
    from the flags, not from the wire: a container flag makes it createContainer, TTL flags
    createTTL (only with a ttl, i.e. sent as createTTL; otherwise the request cannot be
    processed), anything else a plain create, and a ttl sent with non-TTL flags is dropped.
    A create2 stays a create2 and gets its stat back, as in 3.9 (ZOOKEEPER-4026; 3.8 answered
    it like a create)."""
    out: list[tuple[int, object]] = []
    for typ, req in ops:
        if typ in CREATE_OPS:
            assert isinstance(req, CreateRequest)
            try:
                mode = CreateMode(req.flags)
            except ValueError:
                mode = CreateMode.PERSISTENT
            if mode.ttl:
                if typ != Op.CREATE_TTL:
                    raise MalformedMulti("TTL create without a ttl in a multi")
                typ = Op.CREATE_TTL
            elif mode.container:
                typ = Op.CREATE_CONTAINER
            else:
                typ = Op.CREATE2 if typ == Op.CREATE2 else Op.CREATE
                if req.ttl != -1:
                    req = CreateRequest(req.path, req.data, req.acl, req.flags)
        out.append((typ, req))
    return out


class Prep:
    """Outstanding changes plus the validation logic for each write opcode."""

    def __init__(self, tree: DataTree, extended_types: bool = False, skip_acl: bool = False,
                 quota_check: Callable[[str, int, int, int], None] | None = None) -> None:
        self.tree = tree
        self.extended_types = extended_types
        self.skip_acl = skip_acl
        self.outstanding: dict[str, ChangeRecord] = {}
        self.quota_check = quota_check

    # --- outstanding-change overlay ----------------------------------------------------------

    def record(self, path: str) -> ChangeRecord:
        rec = self.outstanding.get(path)
        if rec is not None:
            if not rec.exists:
                raise KeeperError(Err.NO_NODE)
            return rec
        n = self.tree.get(path)
        if n is None:
            raise KeeperError(Err.NO_NODE)
        return ChangeRecord(-1, path, True, n.version, n.cversion, n.aversion,
                            n.ephemeral_owner, len(n.children), n.acl,
                            len(n.data) if n.data else 0)

    def applied(self, zxid: int) -> None:
        """Drop outstanding records made by txns up to `zxid` (now visible in the tree).
        `_keep` keeps the dict in zxid order, so only the records dropped are visited
        (scanning all of them per applied txn cost a leader several % of its CPU)."""
        out = self.outstanding
        while out:
            path = next(iter(out))
            if out[path].zxid > zxid:
                return
            del out[path]

    def _keep(self, changes: dict[str, ChangeRecord]) -> None:
        for path, rec in changes.items():
            self.keep_one(path, rec)

    def keep_one(self, path: str, rec: ChangeRecord) -> None:
        """A newer record moves its path to the end: the dict stays ordered by zxid."""
        out = self.outstanding
        out.pop(path, None)
        out[path] = rec

    def _add(self, rec: ChangeRecord, changes: dict[str, ChangeRecord]) -> None:
        changes[rec.path] = rec

    def _check(self, acl: tuple[ACL, ...], perm: int, auth: list[Id]) -> None:
        if not check_acl(acl, perm, auth, self.skip_acl):
            raise KeeperError(Err.NO_AUTH)

    def _lookup(self, path: str, changes: dict[str, ChangeRecord]) -> ChangeRecord:
        rec = changes.get(path)
        if rec is not None:
            if not rec.exists:
                raise KeeperError(Err.NO_NODE)
            return rec
        return self.record(path)

    def _exists(self, path: str, changes: dict[str, ChangeRecord]) -> bool:
        rec = changes.get(path) or self.outstanding.get(path)
        if rec is not None:
            return rec.exists
        return path in self.tree.nodes

    # --- per-op prep -------------------------------------------------------------------------

    def prep(self, op: int, req: object, session_id: int, zxid: int, time: int,
             auth: list[Id]) -> tuple[int, TxnRecord]:
        """(txn type, record) for one write; errors become (ERROR, ErrorTxn)."""
        changes: dict[str, ChangeRecord] = {}
        try:
            typ, rec = self._prep_one(op, req, session_id, zxid, time, auth, changes)
        except KeeperError as e:
            return Op.ERROR, ErrorTxn(e.code)
        self._keep(changes)
        return typ, rec

    def prep_multi(self, ops: list[tuple[int, object]], session_id: int, zxid: int, time: int,
                   auth: list[Id]) -> tuple[int, TxnRecord]:
        changes: dict[str, ChangeRecord] = {}
        subs: list[tuple[int, TxnRecord]] = []
        failed = False
        for op, req in ops:
            if failed:
                subs.append((Op.ERROR, ErrorTxn(Err.RUNTIME_INCONSISTENCY)))
                continue
            try:
                subs.append(self._prep_one(op, req, session_id, zxid, time, auth, changes))
            except KeeperError as e:
                failed = True
                subs.append((Op.ERROR, ErrorTxn(e.code)))
        if not failed:
            self._keep(changes)
        return Op.MULTI, MultiTxn(tuple(subs))

    def _prep_one(self, op: int, req: object, session_id: int, zxid: int, time: int,
                  auth: list[Id], changes: dict[str, ChangeRecord]) -> tuple[int, TxnRecord]:
        if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            assert isinstance(req, CreateRequest)
            return self._create(op, req, session_id, zxid, auth, changes)
        if op == Op.DELETE:
            assert isinstance(req, DeleteRequest)
            return self._delete(req, zxid, auth, changes)
        if op == Op.SET_DATA:
            assert isinstance(req, SetDataRequest)
            return self._set_data(req, zxid, auth, changes)
        if op == Op.SET_ACL:
            assert isinstance(req, SetACLRequest)
            return self._set_acl(req, zxid, auth, changes)
        if op == Op.CHECK:
            assert isinstance(req, CheckVersionRequest)
            return self._check_version(req, auth, changes)
        raise KeeperError(Err.MARSHALLING_ERROR)

    def _validate(self, path: str) -> None:
        try:
            validate_path(path)
        except BadPath:
            raise KeeperError(Err.BAD_ARGUMENTS) from None

    def _create(self, op: int, req: CreateRequest, session_id: int, zxid: int, auth: list[Id],
                changes: dict[str, ChangeRecord]) -> tuple[int, TxnRecord]:
        try:
            mode = CreateMode(req.flags)
        except ValueError:
            raise KeeperError(Err.BAD_ARGUMENTS) from None
        ttl = req.ttl if op == Op.CREATE_TTL else -1
        if mode.ttl and not self.extended_types:
            raise KeeperError(Err.UNIMPLEMENTED)
        if mode.ttl:
            if ttl <= 0 or ttl > MAX_TTL_MS:
                raise KeeperError(Err.BAD_ARGUMENTS)
        elif ttl >= 0:
            raise KeeperError(Err.BAD_ARGUMENTS)
        path = req.path
        if path.rfind("/") < 0 or "\0" in path:
            raise KeeperError(Err.BAD_ARGUMENTS)
        parent_path, _ = split_path(path)
        try:
            acl = fixup_acl(path, auth, req.acl)
        except ACLError as e:
            raise KeeperError(e.code) from None
        parent = self._lookup(parent_path, changes)
        self._check(parent.acl, Perm.CREATE, auth)
        parent_cversion = parent.cversion
        if mode.sequential:
            path = f"{path}{parent_cversion:010d}"
        self._validate(path)
        if self._exists(path, changes):
            raise KeeperError(Err.NODE_EXISTS)
        owner = parent.ephemeral_owner
        if owner > 0 or (owner < 0 and owner != CONTAINER_EPHEMERAL_OWNER
                         and not (self.extended_types and is_ttl_owner(owner))):
            raise KeeperError(Err.NO_CHILDREN_FOR_EPHEMERALS)
        new_cversion = parent_cversion + 1
        data_len = len(req.data) if req.data else 0
        if self.quota_check is not None:
            self.quota_check(path, 0, data_len, Op.CREATE)
        if op == Op.CREATE_CONTAINER:
            rec = CreateTxn(path, req.data, acl, False, new_cversion, -1, True)
        elif op == Op.CREATE_TTL:
            rec = CreateTxn(path, req.data, acl, False, new_cversion, ttl)
        else:
            rec = CreateTxn(path, req.data, acl, mode.ephemeral, new_cversion)
        changes[parent_path] = ChangeRecord(
            zxid, parent_path, True, parent.version, new_cversion, parent.aversion,
            parent.ephemeral_owner, parent.child_count + 1, parent.acl, parent.data_len)
        if mode.container:
            new_owner = CONTAINER_EPHEMERAL_OWNER
        elif mode.ttl:
            new_owner = ttl_owner(ttl)
        elif mode.ephemeral:
            new_owner = session_id
        else:
            new_owner = 0
        changes[path] = ChangeRecord(zxid, path, True, 0, 0, 0, new_owner, 0, acl, data_len)
        return op, rec

    def _delete(self, req: DeleteRequest, zxid: int, auth: list[Id],
                changes: dict[str, ChangeRecord]) -> tuple[int, TxnRecord]:
        path = req.path
        if path.rfind("/") < 0 or "\0" in path or path in SPECIAL_PATHS:
            raise KeeperError(Err.BAD_ARGUMENTS)
        parent_path, _ = split_path(path)
        parent = self._lookup(parent_path, changes)
        self._check(parent.acl, Perm.DELETE, auth)
        node = self._lookup(path, changes)
        check_and_inc_version(node.version, req.version)
        if node.child_count > 0:
            raise KeeperError(Err.NOT_EMPTY)
        changes[parent_path] = parent.changed(zxid, child_count=parent.child_count - 1)
        changes[path] = ChangeRecord(zxid, path, False)
        return Op.DELETE, DeleteTxn(path)

    def _set_data(self, req: SetDataRequest, zxid: int, auth: list[Id],
                  changes: dict[str, ChangeRecord]) -> tuple[int, TxnRecord]:
        self._validate(req.path)
        node = self._lookup(req.path, changes)
        self._check(node.acl, Perm.WRITE, auth)
        data_len = len(req.data) if req.data else 0
        if self.quota_check is not None:
            self.quota_check(req.path, node.data_len, data_len, Op.SET_DATA)
        version = check_and_inc_version(node.version, req.version)
        changes[req.path] = node.changed(zxid, version=version, data_len=data_len)
        return Op.SET_DATA, SetDataTxn(req.path, req.data, version)

    def _set_acl(self, req: SetACLRequest, zxid: int, auth: list[Id],
                 changes: dict[str, ChangeRecord]) -> tuple[int, TxnRecord]:
        self._validate(req.path)
        try:
            acl = fixup_acl(req.path, auth, req.acl)
        except ACLError as e:
            raise KeeperError(e.code) from None
        node = self._lookup(req.path, changes)
        self._check(node.acl, Perm.ADMIN, auth)
        version = check_and_inc_version(node.aversion, req.version)
        changes[req.path] = node.changed(zxid, aversion=version, acl=acl)
        return Op.SET_ACL, SetACLTxn(req.path, acl, version)

    def reconfig(self, config_text: bytes, zxid: int, auth: list[Id]) -> SetDataTxn:
        """The record of a reconfig txn whose checks passed (quorum/reconfig.py): only a
        user allowed to WRITE /zookeeper/config (super, unless its ACL was changed) may.
        The node ends up at version -1, as ZooKeeper leaves it."""
        node = self.record(CONFIG_PATH)
        self._check(node.acl, Perm.WRITE, auth)
        self.keep_one(CONFIG_PATH, node.changed(zxid, version=-1,
                                                 data_len=len(config_text)))
        return SetDataTxn(CONFIG_PATH, config_text, -1)

    def _check_version(self, req: CheckVersionRequest, auth: list[Id],
                       changes: dict[str, ChangeRecord]) -> tuple[int, TxnRecord]:
        self._validate(req.path)
        node = self._lookup(req.path, changes)
        self._check(node.acl, Perm.READ, auth)
        version = check_and_inc_version(node.version, req.version)
        return Op.CHECK, CheckVersionTxn(req.path, version)

    def close_session(self, session_id: int, zxid: int) -> CloseSessionTxn:
        """Ephemerals to delete: the tree's, adjusted by outstanding creates/deletes."""
        paths = set(self.tree.session_ephemerals(session_id))
        for p, rec in self.outstanding.items():
            if rec.exists and rec.ephemeral_owner == session_id:
                paths.add(p)
            elif not rec.exists:
                paths.discard(p)
        for p in paths:
            parent_path, _ = split_path(p)
            try:
                parent = self.record(parent_path)
                self.keep_one(parent_path, parent.changed(
                    zxid, child_count=parent.child_count - 1))
            except KeeperError:
                pass
            self.keep_one(p, ChangeRecord(zxid, p, False))
        return CloseSessionTxn(tuple(sorted(paths)))

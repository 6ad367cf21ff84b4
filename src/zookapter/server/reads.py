"""Read requests and reply bodies, as ZooKeeper's FinalRequestProcessor answers them.

`read_reply` evaluates a read (or ping, sync, setWatches, watch management, whoAmI)
against the committed tree and returns the complete reply frame; `write_reply` builds the
frame for an applied write from its ApplyResult.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol.consts import XID_AUTH, XID_PING, AddWatchMode, Err, Op, Perm
from ..protocol.jute import JuteError, Reader, Writer
from ..protocol.records import (
    AuthPacket,
    Id,
    PathRequest,
    PathTypeRequest,
    PathWatchRequest,
    SetWatches,
    UnknownMultiOp,
    read_multi,
)
from . import replies
from .acl import check_acl, mask_digests
from .datatree import ApplyResult
from .sasl import SaslError, sasl_reply_frame

if TYPE_CHECKING:
    from .core import ConnectionLike, ServerCore

log = logging.getLogger("zookapter.server")


class ReadError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _node_for_read(core: ServerCore, conn: ConnectionLike, path: str, perm: int):
    # ZooKeeper's DataTree also stores the root under "" (its snapshot name), so reads of ""
    # find the root.
    node = core.tree.nodes.get(path or "/")
    if node is None:
        raise ReadError(Err.NO_NODE)
    if not check_acl(node.acl, perm, conn.auth_ids, core.config.skip_acl):
        raise ReadError(Err.NO_AUTH)
    return node


def _get_data(core, conn, xid, r):
    req = PathWatchRequest.read(r)
    node = _node_for_read(core, conn, req.path, Perm.READ)
    if req.watch:
        core.watches.add_data_watch(req.path, conn)
    return replies.get_data_reply(xid, core.tree.last_processed_zxid, node.data,
                                  node.stat_bytes())


def _exists(core, conn, xid, r):
    req = PathWatchRequest.read(r)
    if "\0" in req.path:
        raise ReadError(Err.BAD_ARGUMENTS)
    node = core.tree.nodes.get(req.path or "/")
    if node is not None and not check_acl(node.acl, Perm.READ, conn.auth_ids,
                                          core.config.skip_acl):
        raise ReadError(Err.NO_AUTH)
    if req.watch:
        core.watches.add_data_watch(req.path, conn)
    if node is None:
        raise ReadError(Err.NO_NODE)
    return replies.with_body(xid, core.tree.last_processed_zxid, node.stat_bytes())


def _children(core, conn, xid, r, with_stat: bool):
    req = PathWatchRequest.read(r)
    node = _node_for_read(core, conn, req.path, Perm.READ)
    if req.watch:
        core.watches.add_child_watch(req.path, conn)
    body = replies.children_body(list(node.children), node.stat_bytes() if with_stat else None)
    return replies.with_body(xid, core.tree.last_processed_zxid, body)


def _get_children(core, conn, xid, r):
    return _children(core, conn, xid, r, False)


def _get_children2(core, conn, xid, r):
    return _children(core, conn, xid, r, True)


def _get_acl(core, conn, xid, r):
    path = PathRequest.read(r).path or ""
    node = _node_for_read(core, conn, path, Perm.READ | Perm.ADMIN)
    acl = node.acl
    if not check_acl(acl, Perm.ADMIN, conn.auth_ids, core.config.skip_acl):
        acl = mask_digests(acl)
    return replies.with_body(xid, core.tree.last_processed_zxid,
                             replies.acl_body(acl, node.stat_bytes()))


def _all_children_number(core, conn, xid, r):
    path = PathRequest.read(r).path or ""
    _node_for_read(core, conn, path, Perm.READ)
    n = core.tree.all_children_number(path)
    return replies.with_body(xid, core.tree.last_processed_zxid, replies.INT.pack(n))


def _get_ephemerals(core, conn, xid, r):
    prefix = PathRequest.read(r).path
    paths = core.tree.session_ephemerals(conn.session_id)
    if prefix and prefix != "/":
        paths = {p for p in paths if p.startswith(prefix)}
    w = Writer()
    w.ustring_vector(sorted(paths))
    return replies.with_body(xid, core.tree.last_processed_zxid, bytes(w.buf))


def _sync(core, conn, xid, r):
    path = PathRequest.read(r).path or ""
    return replies.with_body(xid, core.tree.last_processed_zxid, replies.ustring_body(path))


def _ping(core, conn, xid, r):
    return replies.header_only(XID_PING, core.tree.last_processed_zxid, 0)


def _watch_mgmt(check: bool):
    def handler(core, conn, xid, r):
        req = PathTypeRequest.read(r)
        err = core.remove_watches(conn, req.path, req.type, check)
        if err:
            raise ReadError(err)
        return replies.header_only(xid, core.tree.last_processed_zxid, 0)
    return handler


def _add_watch(core, conn, xid, r):
    req = PathTypeRequest.read(r)
    if req.type not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
        # Java's AddWatchMode.fromValue throws; the request fails as marshalling error
        raise ReadError(Err.MARSHALLING_ERROR)
    core.watches.add_persistent(req.path, conn, req.type == AddWatchMode.PERSISTENT_RECURSIVE)
    return replies.with_body(xid, core.tree.last_processed_zxid, replies.INT.pack(0))


def _set_watches(v2: bool):
    def handler(core, conn, xid, r):
        sw = SetWatches.read(r, v2)
        core.set_watches(conn, sw.relativeZxid, sw.dataWatches, sw.existWatches,
                         sw.childWatches, sw.persistentWatches, sw.persistentRecursiveWatches)
        # ZooKeeper echoes the request's xid (clients send -8)
        return replies.header_only(xid, core.tree.last_processed_zxid, 0)
    return handler


def _user_name(i: Id) -> str:
    """AuthUtil.getUser: the provider's user name for an id (digest: the part before ':')."""
    if i.scheme == "digest":
        return i.id.split(":", 1)[0]
    return i.id


def _who_am_i(core, conn, xid, r):
    w = Writer()
    # authenticated ids first, then the connection's ip id (the order ZooKeeper 3.8 shows)
    ids = [i for i in conn.auth_ids if i.scheme != "ip"] + \
        [i for i in conn.auth_ids if i.scheme == "ip"]
    w.int(len(ids))
    for i in ids:
        w.ustring(i.scheme).ustring(_user_name(i))
    return replies.with_body(xid, core.tree.last_processed_zxid, bytes(w.buf))


def _multi_read(core, conn, xid, r):
    try:
        ops = read_multi(r)
    except UnknownMultiOp:
        raise ReadError(Err.MARSHALLING_ERROR) from None
    results = []
    for typ, req in ops:
        if typ not in (Op.GET_DATA, Op.GET_CHILDREN):
            raise ReadError(Err.MARSHALLING_ERROR)
        node = core.tree.nodes.get(req.path)
        if node is None:
            results.append(replies.error_result(Err.NO_NODE))
        elif not check_acl(node.acl, Perm.READ, conn.auth_ids, core.config.skip_acl):
            results.append(replies.error_result(Err.NO_AUTH))
        elif typ == Op.GET_DATA:
            w = Writer()
            w.buffer(node.data).raw(node.stat_bytes())
            results.append((Op.GET_DATA, 0, bytes(w.buf)))
        else:
            results.append((Op.GET_CHILDREN, 0, replies.children_body(list(node.children))))
    return replies.with_body(xid, core.tree.last_processed_zxid, replies.multi_body(results))


READS: dict[int, Callable] = {
    Op.GET_DATA: _get_data,
    Op.EXISTS: _exists,
    Op.GET_CHILDREN: _get_children,
    Op.GET_CHILDREN2: _get_children2,
    Op.GET_ACL: _get_acl,
    Op.GET_ALL_CHILDREN_NUMBER: _all_children_number,
    Op.GET_EPHEMERALS: _get_ephemerals,
    Op.SYNC: _sync,
    Op.PING: _ping,
    Op.CHECK_WATCHES: _watch_mgmt(True),
    Op.REMOVE_WATCHES: _watch_mgmt(False),
    Op.ADD_WATCH: _add_watch,
    Op.SET_WATCHES: _set_watches(False),
    Op.SET_WATCHES2: _set_watches(True),
    Op.WHO_AM_I: _who_am_i,
    Op.MULTI_READ: _multi_read,
}


def read_reply(core: ServerCore, conn: ConnectionLike, xid: int, op: int, r: Reader
               ) -> bytes:
    handler = READS.get(op)
    if handler is None:
        log.warning("unknown opcode %d from session 0x%x", op, conn.session_id)
        return replies.header_only(xid, core.tree.last_processed_zxid, Err.UNIMPLEMENTED)
    try:
        return handler(core, conn, xid, r)
    except ReadError as e:
        return replies.header_only(xid, core.tree.last_processed_zxid, e.code)
    except JuteError as e:
        log.warning("malformed opcode %d request from session 0x%x: %s", op,
                    conn.session_id, e)
        return replies.header_only(xid, core.tree.last_processed_zxid, Err.MARSHALLING_ERROR)


def sasl(core: ServerCore, conn: ConnectionLike, xid: int, r: Reader) -> None:
    """One SASL token exchange (opcode 102), answered at once as ZooKeeper does; on failure
    the reply is followed by closing the connection (the session stays)."""
    try:
        token = r.buffer()
    except JuteError:
        token = None
    if token is None:
        conn.close()
        return
    factory = getattr(core, "sasl", None)
    if factory is None or not factory.enabled:
        conn.send(sasl_reply_frame(xid, 0, None))
        return
    server = getattr(conn, "sasl_server", None)
    if server is None:
        server = conn.sasl_server = factory.create()
    try:
        done, out = server.step(token)
    except SaslError as e:
        core.stats.auth_failed += 1
        log.warning("SASL authentication failed for session 0x%x: %s", conn.session_id, e)
        if not e.reply:
            conn.close()
        elif factory.keep_failed_clients:
            conn.send(sasl_reply_frame(xid, 0, None))
        else:
            conn.send(sasl_reply_frame(xid, factory.failure_error, None))
            conn.close()
        return
    if done:
        for i in factory.auth_ids(server.authorization_id):
            if i not in conn.auth_ids:
                conn.auth_ids.append(i)
    conn.send(sasl_reply_frame(xid, 0, out))


def auth(core: ServerCore, conn: ConnectionLike, r: Reader, xid: int = XID_AUTH) -> None:
    """AuthPacket: add ids, or reply AuthFailed and close the connection."""
    try:
        pkt = AuthPacket.read(r)
    except JuteError:
        pkt = None
    ids = None
    if pkt is not None and core.auth_providers is not None:
        ids = core.auth_providers.authenticate(pkt.scheme, pkt.auth)
    if ids is None:
        core.stats.auth_failed += 1
        log.warning("Authentication failed for scheme: %s", pkt.scheme if pkt else "?")
        conn.send(replies.header_only(xid, 0, Err.AUTH_FAILED))
        conn.close()
        return
    for i in ids:
        if i not in conn.auth_ids:
            conn.auth_ids.append(i)
    conn.send(replies.header_only(xid, 0, 0))


# --- write replies ---------------------------------------------------------------------------

def _sub_result(res: ApplyResult) -> tuple[int, int, bytes]:
    op = res.op
    if op == Op.ERROR or res.err:
        return replies.error_result(res.err)
    if op == Op.CREATE:
        return (Op.CREATE, 0, replies.ustring_body(res.path or ""))
    if op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        assert res.stat is not None
        return (Op.CREATE2, 0, replies.ustring_body(res.path or "") + res.stat)
    if op == Op.SET_DATA:
        assert res.stat is not None
        return (Op.SET_DATA, 0, res.stat)
    if op in (Op.DELETE, Op.DELETE_CONTAINER):
        return (Op.DELETE, 0, b"")
    if op == Op.CHECK:
        return (Op.CHECK, 0, b"")
    raise AssertionError(f"unexpected multi sub-result {op}")


def write_reply(xid: int, zxid: int, txn_type: int, op: int, res: ApplyResult) -> bytes:
    if txn_type == Op.ERROR or res.err:
        return replies.header_only(xid, zxid, res.err)
    if txn_type == Op.MULTI:
        assert res.multi is not None
        body = replies.multi_body([_sub_result(s) for s in res.multi])
        return replies.with_body(xid, zxid, body)
    if op == Op.CREATE:
        return replies.with_body(xid, zxid, replies.ustring_body(res.path or ""))
    if op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        assert res.node is not None
        return replies.with_body(xid, zxid,
                                 replies.ustring_body(res.path or "") + res.node.stat_bytes())
    if op == Op.RECONFIG and res.node is not None:
        # GetDataResponse: the configuration now active (the txn's data) and the node's stat
        return replies.get_data_reply(xid, zxid, res.node.data, res.node.stat_bytes())
    if op in (Op.SET_DATA, Op.SET_ACL, Op.CHECK):
        if res.node is None:
            return replies.header_only(xid, zxid, 0)
        return replies.with_body(xid, zxid, res.node.stat_bytes())
    return replies.header_only(xid, zxid, 0)


__all__ = ["XID_AUTH", "auth", "read_reply", "write_reply"]

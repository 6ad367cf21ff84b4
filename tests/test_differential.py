"""Differential tests: the same generated call sequence against Apache ZooKeeper and a target.

The oracle is a real Apache ZooKeeper 3.8 (tests/oracle.py, fixture `apache_zk`); the target is
selected with ZK_DIFF_TARGET:

* ``zookapter`` (default) - zookapter's in-process server, ``zookapter.testing.ZookapterServer``;
  the tests skip with a reason when that module cannot be imported;
* ``apache`` - a second Apache ZooKeeper, which checks the harness itself (must be green).

How a run works. Hypothesis generates a list of operations (dataclasses below whose repr reads
like the call). For each example both servers get a fresh root ``/diff<n>`` created by a
long-lived *super* client; the sequence runs on each server in turn with fresh kazoo clients
(c0 authenticated as digest alice:pw, c1 anonymous), then the root is deleted recursively.
Every step records a normalised result plus the watch notifications each client got:

* results: exceptions by class name; children sorted; Stat fields exact except czxid/mzxid/
  pzxid, which become their rank among all zxids seen in that example on that server, and
  ctime/mtime, of which only relations are kept (mtime >= ctime, mzxid==czxid => mtime==ctime,
  ctime is a plausible epoch-milliseconds value); ephemeralOwner becomes 0 / "c<i>.<gen>" (the
  session of client i, generation gen) / "other";
* events: each client's raw server notifications (type, path), recorded on kazoo's connection
  thread, plus the events seen by kazoo watch callbacks. A step ends with a barrier: one
  round-trip (sync) per client, which orders every earlier notification before its reply, then
  a marker through kazoo's callback queue so all callbacks have run. Within one step events are
  compared as a sorted list: the protocol orders notifications by zxid, not within one txn.

kazoo normalises paths client-side (collapses "//" and trailing "/", refuses "." and ".."),
lacks container/TTL creates, multiRead, addWatch and friends; those go through small request
classes of our own (``_Raw*``) submitted with kazoo's internal ``_call``, so the server sees
exactly the bytes we mean.

Knobs: DIFF_EXAMPLES (default 60) scales the number of examples; ZK_DIFF_TARGET as above.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.protocol.serialization import (
    CheckVersion,
    Create,
    Create2,
    Delete,
    Exists,
    GetACL,
    GetChildren,
    GetChildren2,
    GetData,
    SetACL,
    SetData,
    Sync,
    Watch,
    int_struct,
    long_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, Id, make_digest_acl

from oracle import SUPER_DIGEST, ApacheZooKeeper, apache_zookeeper_available

pytestmark = pytest.mark.oracle

OP_TIMEOUT_S = 10.0
EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", "60"))
TARGET = os.environ.get("ZK_DIFF_TARGET", "zookapter")

# --------------------------------------------------------------------------------------------
# Raw requests kazoo does not offer (or would normalise). Each has `type`, `serialize()` and
# `deserialize(buf, offset)` returning the response object, as kazoo's connection expects.
# --------------------------------------------------------------------------------------------


def _acl_bytes(acls) -> bytes:
    out = bytearray(int_struct.pack(len(acls)))
    for acl in acls:
        out += int_struct.pack(acl.perms) + write_string(acl.id.scheme) + write_string(acl.id.id)
    return bytes(out)


def _read_stat(buf, offset):
    return ZnodeStat._make(stat_struct.unpack_from(buf, offset)), offset + stat_struct.size


def _read_string_vector(buf, offset):
    count = int_struct.unpack_from(buf, offset)[0]
    offset += 4
    items = []
    for _ in range(max(count, 0)):
        item, offset = read_string(buf, offset)
        items.append(item)
    return items, offset


def _encode_create(path, data, acl, flags, ttl=None) -> bytes:
    body = write_string(path) + write_buffer(data) + _acl_bytes(acl) + int_struct.pack(flags)
    return bytes(body) + (long_struct.pack(ttl) if ttl is not None else b"")


class _RawCreate:
    """create (1), create2 (15), createContainer (19) or createTTL (21) with any flags/ttl."""

    def __init__(self, opcode, path, data, acl, flags, ttl):
        self.type, self.path, self.data, self.acl, self.flags, self.ttl = (
            opcode, path, data, acl, flags, ttl)

    def serialize(self):
        return _encode_create(self.path, self.data, self.acl, self.flags,
                              self.ttl if self.type == 21 else None)

    def deserialize(self, buf, offset):
        path, offset = read_string(buf, offset)
        if self.type == 1:
            return path
        return path, _read_stat(buf, offset)[0]


class _RawMulti:
    """multi (14) / multiRead (22) with ops given as (opcode, encoded request body)."""

    def __init__(self, opcode, ops):
        self.type, self.ops = opcode, ops

    def serialize(self):
        out = bytearray()
        for opcode, body in self.ops:
            out += multiheader_struct.pack(opcode, False, -1) + body
        return bytes(out + multiheader_struct.pack(-1, True, -1))

    def deserialize(self, buf, offset):
        results = []
        while True:
            op, done, err = multiheader_struct.unpack_from(buf, offset)
            offset += multiheader_struct.size
            if done:
                return results
            if op == -1:
                results.append(("err", int_struct.unpack_from(buf, offset)[0]))
                offset += 4
            elif op == 1:
                path, offset = read_string(buf, offset)
                results.append(("create", path))
            elif op == 15:
                path, offset = read_string(buf, offset)
                stat, offset = _read_stat(buf, offset)
                results.append(("create2", path, stat))
            elif op == 5:
                stat, offset = _read_stat(buf, offset)
                results.append(("setData", stat))
            elif op in (2, 13):
                results.append(({2: "delete", 13: "check"}[op],))
            elif op == 8:
                children, offset = _read_string_vector(buf, offset)
                results.append(("getChildren", sorted(children)))
            elif op == 4:
                data, offset = read_buffer(buf, offset)
                stat, offset = _read_stat(buf, offset)
                results.append(("getData", data, stat))
            else:
                raise ValueError(f"unknown multi result type {op}")


class _RawSimple:
    """Requests whose body is a path (+ optional int) and whose reply is decoded by `decode`."""

    def __init__(self, opcode, path, extra_int=None, decode=None):
        self.type, self.path, self.extra_int, self.decode = opcode, path, extra_int, decode

    def serialize(self):
        body = write_string(self.path) if self.path is not None else b""
        if self.extra_int is not None:
            body += int_struct.pack(self.extra_int)
        return bytes(body)

    def deserialize(self, buf, offset):
        return self.decode(buf, offset) if self.decode else True


def _decode_who_am_i(buf, offset):
    count = int_struct.unpack_from(buf, offset)[0]
    offset += 4
    ids = []
    for _ in range(max(count, 0)):
        scheme, offset = read_string(buf, offset)
        user, offset = read_string(buf, offset)
        ids.append((scheme, user))
    return sorted(ids)


OP_GET_EPHEMERALS, OP_ALL_CHILDREN, OP_ADD_WATCH, OP_WHO_AM_I = 103, 104, 106, 107
OP_CHECK_WATCHES, OP_REMOVE_WATCHES = 17, 18

# --------------------------------------------------------------------------------------------
# The operation vocabulary. Paths are relative to the example root; `Ref(k)` is the k-th path
# returned by a successful create on that server (so sequential names can be reused).
# --------------------------------------------------------------------------------------------

NAMES = ("a", "b", "a/c", "a/d", "b/c", "a/c/e", "z/y")
SEQ_NAMES = ("a/s", "s", "a/", "b/c/")  # sequential prefixes; "a/" gives "/a/0000000000"


@dataclass(frozen=True)
class Ref:
    k: int

    def __repr__(self):
        return f"Ref({self.k})"


def _acls() -> dict[str, list]:
    world = Id("world", "anyone")
    alice = make_digest_acl("alice", "pw", all=True)
    return {
        "open": [ACL(31, world)],
        "read": [ACL(1, world)],
        "alice": [alice],
        "alice+world_read": [alice, ACL(1, world)],
        "bob": [make_digest_acl("bob", "pw", all=True)],
        "no_delete": [ACL(31 & ~8, world)],
        "no_create": [ACL(31 & ~4, world)],
        "no_admin": [ACL(15, world)],
        "write_only": [ACL(2, world)],
        "ip_local": [ACL(31, Id("ip", "127.0.0.1"))],
        "ip_net8": [ACL(31, Id("ip", "127.0.0.0/8"))],
        "ip_other": [ACL(31, Id("ip", "10.0.0.0/8"))],
        "auth": [ACL(31, Id("auth", ""))],
        "auth+read": [ACL(31, Id("auth", "")), ACL(1, world)],
        "dup": [ACL(31, world), ACL(31, world)],
        "zero_perms": [ACL(0, world)],
        "bad_scheme": [ACL(31, Id("foo", "bar"))],
        "bad_digest": [ACL(31, Id("digest", "nocolon"))],
        "bad_ip": [ACL(31, Id("ip", "300.1.2.3"))],
        "bad_ip_bits": [ACL(31, Id("ip", "10.0.0.0/40"))],
        "super_scheme": [ACL(31, Id("super", ""))],
        "empty": [],
    }


ACLS = _acls()
ACL_NAMES = tuple(ACLS)
VALID_ACL_NAMES = ("open", "read", "alice", "alice+world_read", "no_delete", "no_create",
                   "ip_local", "auth+read")


def _op(cls):
    """Dataclass whose repr is `Name(field=value, ...)` without defaults noise."""
    return dataclass(frozen=True)(cls)


@_op
class CreateOp:
    c: int
    path: Any
    data: bytes | None = b""
    mode: str = "persistent"  # persistent | ephemeral | sequential | ephemeral_sequential
    acl: str = "open"
    makepath: bool = False
    include_data: bool = False


@_op
class RawCreateOp:
    c: int
    opcode: int  # 1 create, 15 create2, 19 createContainer, 21 createTTL
    path: Any
    flags: int
    ttl: int = 0
    acl: str = "open"
    data: bytes | None = b""


@_op
class SetOp:
    c: int
    path: Any
    data: bytes | None
    version: int = -1


@_op
class DeleteOp:
    c: int
    path: Any
    version: int = -1


@_op
class ExistsOp:
    c: int
    path: Any
    watch: bool = False


@_op
class GetOp:
    c: int
    path: Any
    watch: bool = False


@_op
class ChildrenOp:
    c: int
    path: Any
    watch: bool = False
    include_data: bool = False


@_op
class GetAclsOp:
    c: int
    path: Any


@_op
class SetAclsOp:
    c: int
    path: Any
    acl: str
    version: int = -1


@_op
class TxnOp:
    """kazoo transaction(); ops are ("create", path, mode) ("delete", path, version)
    ("set", path, version) ("check", path, version)."""

    c: int
    ops: tuple


@_op
class RawMultiOp:
    """multi with create2/container/TTL ops too: ("create2"|"container", path, flags) or
    ("ttl", path, flags, ttl) or the TxnOp kinds."""

    c: int
    ops: tuple


@_op
class MultiReadOp:
    c: int
    ops: tuple  # ("get"|"children", path)


@_op
class BadPathOp:
    c: int
    kind: str
    path: str  # template: "{R}" is the root


@_op
class RestartOp:
    """Close client c's session (its ephemerals go) and open a new one."""

    c: int


@_op
class SyncOp:
    c: int
    path: Any


@_op
class EphemeralsOp:
    c: int
    prefix: str  # template


@_op
class AllChildrenOp:
    c: int
    path: Any


@_op
class AddWatchOp:
    c: int
    path: Any
    mode: int  # 0 persistent, 1 persistent recursive


@_op
class RemoveWatchesOp:
    c: int
    path: Any
    wtype: int  # 1 children, 2 data, 3 any, 4 persistent, 5 persistent recursive
    check_only: bool = False


@_op
class WhoAmIOp:
    c: int


@_op
class AddAuthOp:
    c: int
    scheme: str
    credential: str


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


class Zxid(NamedTuple):
    """A raw zxid, replaced by its rank when the trace is finished."""

    value: int


class NStat(NamedTuple):
    czxid: Any
    mzxid: Any
    pzxid: Any
    version: int
    cversion: int
    aversion: int
    owner: Any
    dataLength: int
    numChildren: int
    times: str


def _times(stat: ZnodeStat) -> str:
    now_ms = time.time() * 1000
    flags = []
    if not abs(stat.ctime - now_ms) < 86_400_000:
        flags.append("ctime-implausible")
    if stat.mtime < stat.ctime:
        flags.append("mtime<ctime")
    if stat.mzxid == stat.czxid and stat.mtime != stat.ctime:
        flags.append("unmodified-but-mtime!=ctime")
    return ",".join(flags) or "ok"


_EVENT_NAMES = {1: "created", 2: "deleted", 3: "changed", 4: "child", -1: "none"}


def _rank_zxids(obj, ranks):
    if isinstance(obj, Zxid):
        return f"z{ranks[obj.value]}"
    if isinstance(obj, NStat):
        return NStat(*(_rank_zxids(v, ranks) for v in obj))
    if isinstance(obj, tuple):
        return tuple(_rank_zxids(v, ranks) for v in obj)
    if isinstance(obj, list):
        return [_rank_zxids(v, ranks) for v in obj]
    if isinstance(obj, dict):
        return {k: _rank_zxids(v, ranks) for k, v in obj.items()}
    return obj


def _collect_zxids(obj, out):
    if isinstance(obj, Zxid):
        out.add(obj.value)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            _collect_zxids(v, out)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_zxids(v, out)


# --------------------------------------------------------------------------------------------
# Running a sequence on one server
# --------------------------------------------------------------------------------------------

_root_counter = itertools.count(1)


class Runner:
    """Runs one op sequence on one server under `root` and produces a normalised trace."""

    N_CLIENTS = 2
    AUTH = {0: [("digest", "alice:pw")], 1: []}

    def __init__(self, hosts: str, root: str):
        self.hosts, self.root = hosts, root
        self.clients: dict[int, KazooClient] = {}
        self.generation = {i: -1 for i in range(self.N_CLIENTS)}
        self.owner_labels: dict[int, str] = {}
        self.created: list[str] = []
        self.lock = threading.Lock()
        self.raw_events: dict[int, list] = {i: [] for i in range(self.N_CLIENTS)}
        self.cb_events: dict[int, list] = {i: [] for i in range(self.N_CLIENTS)}

    # -- clients ---------------------------------------------------------------------------

    def _rel(self, path):
        if isinstance(path, str) and path.startswith(self.root):
            return "~" + path[len(self.root):]
        return path

    def open_client(self, i: int) -> None:
        client = KazooClient(hosts=self.hosts, timeout=10.0, auth_data=list(self.AUTH[i]))
        conn = client._connection
        original = conn._read_watch_event
        sink = self.raw_events[i]

        def recording_read_watch_event(buf, offset, _orig=original):
            watch, _ = Watch.deserialize(buf, offset)
            with self.lock:
                sink.append((_EVENT_NAMES.get(watch.type, watch.type), self._rel(watch.path)))
            return _orig(buf, offset)

        conn._read_watch_event = recording_read_watch_event
        client.start(timeout=OP_TIMEOUT_S)
        self.clients[i] = client
        self.generation[i] += 1
        self.owner_labels[client.client_id[0]] = f"c{i}.{self.generation[i]}"

    def close_client(self, i: int) -> None:
        client = self.clients.pop(i, None)
        if client is not None:
            try:
                client.stop()
            finally:
                client.close()

    def close_all(self) -> None:
        for i in list(self.clients):
            self.close_client(i)

    def watcher(self, i: int, kind: str) -> Callable:
        # One function object per (client, kind): kazoo keeps watchers in a set per path.
        key = (i, kind)
        cache = self.__dict__.setdefault("_watchers", {})
        if key not in cache:
            sink = self.cb_events[i]

            def on_event(event, _kind=kind):
                with self.lock:
                    sink.append((_kind, event.type, self._rel(event.path)))

            cache[key] = on_event
        return cache[key]

    def barrier(self) -> dict:
        """Make sure every notification caused so far has been recorded; return and reset."""
        for i, client in self.clients.items():
            if not client.connected:
                continue
            try:
                client.sync_async("/").get(timeout=OP_TIMEOUT_S)
            except Exception:
                pass
            done = threading.Event()
            client.handler.callback_queue.put(done.set)
            done.wait(OP_TIMEOUT_S)
        with self.lock:
            out = {}
            for i in range(self.N_CLIENTS):
                if self.raw_events[i] or self.cb_events[i]:
                    out[f"c{i}"] = (sorted(self.raw_events[i], key=repr),
                                    sorted(self.cb_events[i], key=repr))
                self.raw_events[i].clear()
                self.cb_events[i].clear()
        return out

    # -- normalisation ---------------------------------------------------------------------

    def norm(self, value):
        if isinstance(value, BaseException):
            return "!" + type(value).__name__
        if isinstance(value, ZnodeStat):
            return NStat(Zxid(value.czxid), Zxid(value.mzxid), Zxid(value.pzxid), value.version,
                         value.cversion, value.aversion, self.owner(value.ephemeralOwner),
                         value.dataLength, value.numChildren, _times(value))
        if isinstance(value, ACL):
            return ("ACL", value.perms, value.id.scheme, value.id.id)
        if isinstance(value, list):
            return [self.norm(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.norm(v) for v in value)
        if isinstance(value, str):
            return self._rel(value)
        return value

    def owner(self, session_id: int):
        if session_id == 0:
            return 0
        return self.owner_labels.get(session_id, "other")

    # -- ops -------------------------------------------------------------------------------

    def path(self, p) -> str:
        if isinstance(p, Ref):
            if self.created:
                return self.created[p.k % len(self.created)]
            p = NAMES[p.k % len(NAMES)]
        return f"{self.root}/{p}" if p else self.root

    def remember(self, result):
        path = result[0] if isinstance(result, tuple) else result
        if isinstance(path, str) and path.startswith(self.root + "/"):
            self.created.append(path)

    def call(self, client, request):
        async_result = client.handler.async_result()
        client._call(request, async_result)
        return async_result.get(timeout=OP_TIMEOUT_S)

    def run(self, ops) -> list:
        trace = []
        for i in range(self.N_CLIENTS):
            self.open_client(i)
        try:
            for op in ops:
                try:
                    result = self.norm(self.execute(op))
                except Exception as exc:  # noqa: BLE001 - exceptions are results here
                    result = self.norm(exc)
                trace.append((op, result, self.barrier()))
        finally:
            self.close_all()
        zxids: set[int] = set()
        _collect_zxids(trace, zxids)
        ranks = {z: r for r, z in enumerate(sorted(zxids))}
        return _rank_zxids(trace, ranks)

    def execute(self, op):
        if isinstance(op, RestartOp):
            self.close_client(op.c)
            self.open_client(op.c)
            return "restarted"
        client = self.clients[op.c]
        handler = getattr(self, "do_" + type(op).__name__)
        return handler(client, op)

    def do_CreateOp(self, client, op):
        ephemeral = op.mode in ("ephemeral", "ephemeral_sequential")
        sequence = op.mode in ("sequential", "ephemeral_sequential")
        path = self.path(op.path)
        result = client.create_async(
            path, op.data, acl=ACLS[op.acl], ephemeral=ephemeral, sequence=sequence,
            makepath=op.makepath, include_data=op.include_data,
        ).get(timeout=OP_TIMEOUT_S)
        self.remember(result)
        return result

    def do_RawCreateOp(self, client, op):
        request = _RawCreate(op.opcode, self.path(op.path), op.data, ACLS[op.acl], op.flags,
                             op.ttl)
        result = self.call(client, request)
        self.remember(result)
        return result

    def do_SetOp(self, client, op):
        return client.set_async(self.path(op.path), op.data, op.version).get(
            timeout=OP_TIMEOUT_S)

    def do_DeleteOp(self, client, op):
        return client.delete_async(self.path(op.path), op.version).get(timeout=OP_TIMEOUT_S)

    def do_ExistsOp(self, client, op):
        watch = self.watcher(op.c, "exists") if op.watch else None
        return client.exists_async(self.path(op.path), watch).get(timeout=OP_TIMEOUT_S)

    def do_GetOp(self, client, op):
        watch = self.watcher(op.c, "data") if op.watch else None
        return client.get_async(self.path(op.path), watch).get(timeout=OP_TIMEOUT_S)

    def do_ChildrenOp(self, client, op):
        watch = self.watcher(op.c, "child") if op.watch else None
        result = client.get_children_async(
            self.path(op.path), watch, include_data=op.include_data).get(timeout=OP_TIMEOUT_S)
        if op.include_data:
            return sorted(result[0]), result[1]
        return sorted(result)

    def do_GetAclsOp(self, client, op):
        return client.get_acls_async(self.path(op.path)).get(timeout=OP_TIMEOUT_S)

    def do_SetAclsOp(self, client, op):
        return client.set_acls_async(self.path(op.path), ACLS[op.acl], op.version).get(
            timeout=OP_TIMEOUT_S)

    def do_TxnOp(self, client, op):
        txn = client.transaction()
        for kind, p, arg in op.ops:
            path = self.path(p)
            if kind == "create":
                txn.create(path, b"t", ephemeral=arg in ("ephemeral", "ephemeral_sequential"),
                           sequence=arg in ("sequential", "ephemeral_sequential"))
            elif kind == "delete":
                txn.delete(path, arg)
            elif kind == "set":
                txn.set_data(path, b"txn", arg)
            else:
                txn.check(path, arg)
        results = txn.commit_async().get(timeout=OP_TIMEOUT_S)
        for result in results:
            self.remember(result)
        return results

    def _multi_body(self, item):
        kind, p = item[0], item[1]
        path = self.path(p)
        if kind == "create":
            return 1, _encode_create(path, b"m", ACLS["open"], item[2])
        if kind == "create2":
            return 15, _encode_create(path, b"m", ACLS["open"], item[2])
        if kind == "container":
            return 19, _encode_create(path, b"m", ACLS["open"], item[2])
        if kind == "ttl":
            return 21, _encode_create(path, b"m", ACLS["open"], item[2], item[3])
        if kind == "delete":
            return 2, write_string(path) + int_struct.pack(item[2])
        if kind == "set":
            return 5, write_string(path) + write_buffer(b"mm") + int_struct.pack(item[2])
        if kind == "check":
            return 13, write_string(path) + int_struct.pack(item[2])
        if kind == "get":
            return 4, write_string(path) + b"\0"
        if kind == "children":
            return 8, write_string(path) + b"\0"
        raise ValueError(kind)

    def do_RawMultiOp(self, client, op):
        results = self.call(client, _RawMulti(14, [self._multi_body(i) for i in op.ops]))
        for result in results:
            if result[0] in ("create", "create2"):
                self.remember(result[1])
        return results

    def do_MultiReadOp(self, client, op):
        return self.call(client, _RawMulti(22, [self._multi_body(i) for i in op.ops]))

    def do_BadPathOp(self, client, op):
        path = op.path.replace("{R}", self.root)
        requests = {
            "create": lambda: Create(path, b"", ACLS["open"], 0),
            "create_seq": lambda: Create(path, b"", ACLS["open"], 2),
            "create2": lambda: Create2(path, b"", ACLS["open"], 0),
            "container": lambda: _RawCreate(19, path, b"", ACLS["open"], 4, 0),
            "ttl": lambda: _RawCreate(21, path, b"", ACLS["open"], 5, 1000),
            "delete": lambda: Delete(path, -1),
            "set": lambda: SetData(path, b"x", -1),
            "get": lambda: GetData(path, None),
            "exists": lambda: Exists(path, None),
            "children": lambda: GetChildren(path, None),
            "children2": lambda: GetChildren2(path, None),
            "get_acl": lambda: GetACL(path),
            "set_acl": lambda: SetACL(path, ACLS["open"], -1),
            "check": lambda: _RawMulti(14, [(13, write_string(path) + int_struct.pack(-1))]),
            "sync": lambda: Sync(path),
            "all_children": lambda: _RawSimple(OP_ALL_CHILDREN, path, None,
                                               lambda b, o: int_struct.unpack_from(b, o)[0]),
        }
        result = self.call(client, requests[op.kind]())
        if op.kind.startswith("create") or op.kind in ("container", "ttl"):
            self.remember(result)
        return result

    def do_SyncOp(self, client, op):
        return client.sync_async(self.path(op.path)).get(timeout=OP_TIMEOUT_S)

    def do_EphemeralsOp(self, client, op):
        prefix = op.prefix.replace("{R}", self.root)
        result = self.call(client, _RawSimple(
            OP_GET_EPHEMERALS, prefix, None, lambda b, o: _read_string_vector(b, o)[0]))
        # Other examples' ephemerals are gone by now, but only this root's are comparable.
        return sorted(p for p in result if p.startswith(self.root + "/") or p == self.root)

    def do_AllChildrenOp(self, client, op):
        return self.call(client, _RawSimple(
            OP_ALL_CHILDREN, self.path(op.path), None,
            lambda b, o: int_struct.unpack_from(b, o)[0]))

    def do_AddWatchOp(self, client, op):
        return self.call(client, _RawSimple(OP_ADD_WATCH, self.path(op.path), op.mode))

    def do_RemoveWatchesOp(self, client, op):
        opcode = OP_CHECK_WATCHES if op.check_only else OP_REMOVE_WATCHES
        return self.call(client, _RawSimple(opcode, self.path(op.path), op.wtype))

    def do_WhoAmIOp(self, client, op):
        return self.call(client, _RawSimple(OP_WHO_AM_I, None, None, _decode_who_am_i))

    def do_AddAuthOp(self, client, op):
        return client.add_auth_async(op.scheme, op.credential).get(timeout=OP_TIMEOUT_S)


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

clients = st.integers(0, 1)
# Short, shared names so ops collide; "a" and "b" exist from the prelude on.
paths = st.one_of(st.sampled_from(("a", "a", "b", "a/c", "a/c", "a/d", "b/c", "a/c/e", "c",
                                   "z/y")),
                  st.builds(Ref, st.integers(0, 7)))
datas = st.sampled_from([b"", b"x", b"data", None, b"\x00\xff"])
versions = st.sampled_from([-1, 0, 1, 2])
valid_acls = st.sampled_from(VALID_ACL_NAMES)
any_acls = st.sampled_from(ACL_NAMES)
modes = st.sampled_from(["persistent", "ephemeral", "sequential", "ephemeral_sequential"])

BAD_PATHS = (
    "{R}/a/", "{R}//a", "{R}/./a", "{R}/../a", "{R}/a/.", "{R}/a/..", "{R}/.", "a", "a/b",
    "{R}/a\x00b", "{R}/a\x01", "{R}/a\x7f", "{R}/a\x85", "{R}/a\ue000", "{R}/a\ufff0",
    "{R}/a b", "{R}/\u00e9t\u00e9", "{R}/..a", "{R}/.a", "/", "/zookeeper", "/zookeeper/quota",
    "/zookeeper/config",
)
BAD_PATH_KINDS = ("create", "create_seq", "create2", "container", "ttl", "delete", "set", "get",
                  "exists", "children", "children2", "get_acl", "set_acl", "check", "sync",
                  "all_children")
# Ops on these special paths would observe server-history-dependent state (e.g. "/"'s stat),
# so only the ones that must fail identically are generated there.
SPECIAL_PATH_KINDS = ("delete", "create", "create_seq", "check")


def _bad_path_op(c, kind, path):
    if path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config") and \
            kind not in SPECIAL_PATH_KINDS:
        kind = "delete"
    if path in ("/zookeeper", "/zookeeper/config", "/zookeeper/quota") and kind.startswith(
            "create"):
        kind = "delete"
    return BadPathOp(c, kind, path)


ttls = st.sampled_from([1, 1000, 0, -1, 2**40 - 1, 2**40])

create_ops = st.builds(CreateOp, clients, paths, datas, modes, valid_acls, st.booleans(),
                       st.booleans())
seq_create_ops = st.builds(CreateOp, clients, st.sampled_from(SEQ_NAMES), datas,
                           st.sampled_from(["sequential", "ephemeral_sequential"]), valid_acls,
                           st.booleans(), st.booleans())
container_ttl_ops = st.one_of(
    st.builds(RawCreateOp, clients, st.just(19), paths, st.just(4), st.just(0), valid_acls),
    st.builds(RawCreateOp, clients, st.just(21), paths, st.sampled_from([5, 6]), ttls,
              valid_acls),
)
raw_create_ops = st.builds(RawCreateOp, clients, st.sampled_from([1, 15, 19, 21]), paths,
                           st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 6, 7]), ttls, valid_acls, datas)
acl_create_ops = st.builds(CreateOp, clients, paths, datas, modes, any_acls, st.just(False),
                           st.booleans())
set_ops = st.builds(SetOp, clients, paths, datas, versions)
delete_ops = st.builds(DeleteOp, clients, paths, versions)
read_ops = st.one_of(
    st.builds(ExistsOp, clients, paths, st.booleans()),
    st.builds(GetOp, clients, paths, st.booleans()),
    st.builds(ChildrenOp, clients, paths, st.booleans(), st.booleans()),
)
acl_ops = st.one_of(
    st.builds(GetAclsOp, clients, paths),
    st.builds(SetAclsOp, clients, paths, any_acls, st.sampled_from([-1, 0, 1])),
)
txn_items = st.one_of(
    st.tuples(st.just("create"), paths, modes),
    st.tuples(st.just("delete"), paths, versions),
    st.tuples(st.just("set"), paths, versions),
    st.tuples(st.just("check"), paths, versions),
)
txn_ops = st.builds(TxnOp, clients, st.lists(txn_items, min_size=1, max_size=4).map(tuple))
raw_multi_items = st.one_of(
    txn_items.map(lambda t: t if t[0] != "create" else
                  ("create", t[1], {"persistent": 0, "ephemeral": 1, "sequential": 2,
                                    "ephemeral_sequential": 3}[t[2]])),
    st.tuples(st.just("create2"), paths, st.sampled_from([0, 1, 2])),
    st.tuples(st.just("container"), paths, st.just(4)),
    st.tuples(st.just("ttl"), paths, st.sampled_from([5, 6]), ttls),
)
raw_multi_ops = st.builds(RawMultiOp, clients,
                          st.lists(raw_multi_items, min_size=1, max_size=4).map(tuple))
multi_read_ops = st.builds(MultiReadOp, clients, st.lists(
    st.tuples(st.sampled_from(["get", "children"]), paths), min_size=1, max_size=4).map(tuple))
bad_path_ops = st.builds(_bad_path_op, clients, st.sampled_from(BAD_PATH_KINDS),
                         st.sampled_from(BAD_PATHS))
watch_ops = st.one_of(
    st.builds(AddWatchOp, clients, paths, st.sampled_from([0, 1])),
    st.builds(RemoveWatchesOp, clients, paths, st.sampled_from([1, 2, 3, 4, 5]), st.booleans()),
)
misc_ops = st.one_of(
    st.builds(RestartOp, clients),
    st.builds(SyncOp, clients, paths),
    st.builds(EphemeralsOp, clients, st.sampled_from(["{R}", "{R}/a", "{R}/", "/"])),
    st.builds(AllChildrenOp, clients, paths),
    st.builds(WhoAmIOp, clients),
    st.builds(AddAuthOp, clients, st.just("digest"),
              st.sampled_from(["bob:pw", "alice:pw", "super:test", "alice:wrong"])),
)

any_op = st.one_of(
    create_ops, create_ops, seq_create_ops, container_ttl_ops, raw_create_ops, acl_create_ops,
    set_ops, delete_ops, read_ops, read_ops, acl_ops, txn_ops, raw_multi_ops, multi_read_ops,
    bad_path_ops, watch_ops, misc_ops,
)
watch_heavy_op = st.one_of(
    create_ops, seq_create_ops, set_ops, delete_ops, txn_ops,
    st.builds(ExistsOp, clients, paths, st.just(True)),
    st.builds(GetOp, clients, paths, st.just(True)),
    st.builds(ChildrenOp, clients, paths, st.just(True), st.booleans()),
    watch_ops, st.builds(RestartOp, clients), acl_ops,
)
acl_heavy_op = st.one_of(
    create_ops, acl_create_ops, acl_ops, acl_ops, set_ops, delete_ops, read_ops,
    st.builds(AddAuthOp, clients, st.just("digest"), st.sampled_from(["bob:pw", "super:test"])),
    st.builds(WhoAmIOp, clients),
)
multi_heavy_op = st.one_of(create_ops, seq_create_ops, txn_ops, txn_ops, raw_multi_ops,
                           raw_multi_ops, multi_read_ops, read_ops, delete_ops)

# --------------------------------------------------------------------------------------------
# Fixtures and the comparison
# --------------------------------------------------------------------------------------------


class _Server:
    def __init__(self, label, hosts):
        self.label, self.hosts = label, hosts
        self.admin = KazooClient(hosts=hosts, timeout=10.0,
                                 auth_data=[("digest", "super:test")])
        self.admin.start(timeout=OP_TIMEOUT_S)

    def close(self):
        self.admin.stop()
        self.admin.close()


@pytest.fixture(scope="module")
def target_server():
    if TARGET == "apache":
        if not apache_zookeeper_available():
            pytest.skip("Apache ZooKeeper unavailable for the apache-vs-apache target")
        server = ApacheZooKeeper().start()
    elif TARGET == "zookapter":
        try:
            from zookapter.testing import ZookapterServer
        except ImportError as exc:
            pytest.skip(f"zookapter.testing.ZookapterServer not importable ({exc}); "
                        "set ZK_DIFF_TARGET=apache to check the harness itself")
        server = ZookapterServer(extended_types=True, super_digest=SUPER_DIGEST).start()
    else:
        raise pytest.UsageError(f"ZK_DIFF_TARGET must be apache or zookapter, not {TARGET!r}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pair(apache_zk, target_server):
    oracle = _Server("apache", apache_zk.hosts)
    target = _Server(TARGET, target_server.hosts)
    try:
        yield oracle, target
    finally:
        oracle.close()
        target.close()


def _run_on(server: _Server, root: str, ops) -> list:
    if server.admin.exists(root):
        server.admin.delete(root, recursive=True)
    server.admin.create(root, b"root")
    try:
        return Runner(server.hosts, root).run(ops)
    finally:
        server.admin.delete(root, recursive=True)


def _format_step(i, step) -> str:
    op, result, events = step
    return f"  [{i}] {op!r}\n      -> {result!r}\n      events {events!r}"


# Every generated sequence starts from the same small tree, so fewer ops end in NoNode.
PRELUDE = (CreateOp(0, "a", b"A"), CreateOp(1, "b", b"B"))


def run_differential(pair, ops) -> None:
    oracle, target = pair
    root = f"/diff{next(_root_counter)}"
    expected = _run_on(oracle, root, ops)
    actual = _run_on(target, root, ops)
    for op, result, events in expected:  # --hypothesis-show-statistics shows what was hit
        outcome = result if isinstance(result, str) and result.startswith("!") else "ok"
        event(f"{type(op).__name__} {outcome}")
        for kinds in events.values():
            for name, _path in kinds[0]:
                event(f"notification {name}")
    if expected == actual:
        return
    for i, (exp, act) in enumerate(zip(expected, actual)):
        if exp != act:
            break
    lines = [f"differential mismatch at step {i} (root {root}):",
             "op sequence:", *(f"  [{j}] {op!r}" for j, op in enumerate(ops)),
             "apache:", _format_step(i, exp), f"{target.label}:", _format_step(i, act)]
    note("\n".join(lines))
    raise AssertionError("\n".join(lines))


DIFF_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)


@DIFF_SETTINGS
@given(ops=st.lists(any_op, min_size=1, max_size=20))
def test_random_sequences(pair, ops):
    run_differential(pair, [*PRELUDE, *ops])


@settings(DIFF_SETTINGS, max_examples=max(EXAMPLES // 3, 5))
@given(ops=st.lists(watch_heavy_op, min_size=2, max_size=16))
def test_watch_sequences(pair, ops):
    run_differential(pair, [*PRELUDE, *ops])


@settings(DIFF_SETTINGS, max_examples=max(EXAMPLES // 3, 5))
@given(ops=st.lists(acl_heavy_op, min_size=2, max_size=14))
def test_acl_sequences(pair, ops):
    run_differential(pair, [*PRELUDE, *ops])


@settings(DIFF_SETTINGS, max_examples=max(EXAMPLES // 3, 5))
@given(ops=st.lists(multi_heavy_op, min_size=2, max_size=14))
def test_multi_sequences(pair, ops):
    run_differential(pair, [*PRELUDE, *ops])


# --------------------------------------------------------------------------------------------
# Fixed scenarios: always run, independent of what hypothesis happens to draw.
# --------------------------------------------------------------------------------------------

SCENARIOS = {
    "sequential_counters_and_cversion": [
        CreateOp(0, "a"), CreateOp(0, "a/s", mode="sequential"),
        CreateOp(1, "a/s", mode="ephemeral_sequential"), DeleteOp(0, Ref(1)),
        CreateOp(0, "a/", mode="sequential", include_data=True),
        ChildrenOp(0, "a", include_data=True), GetOp(1, "a"),
    ],
    "versions": [
        CreateOp(0, "a", b"1"), SetOp(0, "a", b"2", 0), SetOp(0, "a", b"3", 0),
        SetOp(1, "a", None, 1), GetOp(0, "a"), DeleteOp(0, "a", 0), DeleteOp(0, "a", 2),
        ExistsOp(0, "a"),
    ],
    "not_empty_and_ephemeral_parent": [
        CreateOp(0, "a"), CreateOp(0, "a/c"), DeleteOp(1, "a"),
        CreateOp(1, "b", mode="ephemeral"), CreateOp(0, "b/c"),
        CreateOp(0, "b/c", makepath=True), ExistsOp(0, "b"), RestartOp(1), ExistsOp(0, "b"),
    ],
    "watches_basic": [
        ExistsOp(0, "a", watch=True), CreateOp(1, "a"), GetOp(0, "a", watch=True),
        ChildrenOp(0, "a", watch=True), SetOp(1, "a", b"x"), CreateOp(1, "a/c"),
        GetOp(0, "a", watch=True), ChildrenOp(0, "a", watch=True), DeleteOp(1, "a/c"),
        ExistsOp(0, "a/c", watch=True), GetOp(1, "a", watch=True), DeleteOp(0, "a"),
    ],
    "ephemeral_watch_on_session_close": [
        CreateOp(1, "a", mode="ephemeral"), ExistsOp(0, "a", watch=True),
        ChildrenOp(0, "", watch=True), RestartOp(1), ExistsOp(0, "a"),
    ],
    "persistent_watches": [
        AddWatchOp(0, "a", 0), AddWatchOp(1, "a", 1), CreateOp(1, "a"), CreateOp(1, "a/c"),
        SetOp(1, "a/c", b"x"), SetOp(0, "a", b"y"), DeleteOp(1, "a/c"),
        RemoveWatchesOp(0, "a", 4), RemoveWatchesOp(0, "a", 4, check_only=True),
        SetOp(1, "a", b"z"), RemoveWatchesOp(1, "a", 2),
    ],
    "acls": [
        CreateOp(0, "a", acl="alice"), GetOp(1, "a"), GetAclsOp(1, "a"), GetAclsOp(0, "a"),
        CreateOp(0, "b", acl="read"), SetOp(0, "b", b"x"), CreateOp(0, "b/c"),
        SetAclsOp(0, "b", "bad_scheme"), SetAclsOp(0, "b", "empty"), SetAclsOp(1, "a", "open"),
        CreateOp(1, "c", acl="auth"), CreateOp(0, "c", acl="auth"), GetAclsOp(0, "c"),
        CreateOp(0, "d", acl="ip_local"), GetOp(1, "d"), SetAclsOp(0, "d", "ip_other"),
        GetOp(1, "d"), AddAuthOp(1, "digest", "super:test"), GetOp(1, "a"), WhoAmIOp(1),
        CreateOp(0, "e", acl="dup"), GetAclsOp(0, "e"), CreateOp(0, "f", acl="zero_perms"),
        GetOp(0, "f"), SetAclsOp(0, "e", "alice", 0), SetAclsOp(0, "e", "open", 0),
    ],
    "multi_failure_in_middle": [
        CreateOp(0, "a"),
        TxnOp(0, (("create", "b", "persistent"), ("set", "a", 5), ("delete", "a", -1))),
        TxnOp(0, (("create", "b", "sequential"), ("check", "a", 0), ("set", "a", 0),
                  ("delete", "b", -1))),
        RawMultiOp(0, (("container", "c", 4), ("ttl", "d", 5, 1000), ("create2", "e", 0))),
        RawMultiOp(0, (("container", "f", 4), ("ttl", "g", 5, 0))),
        MultiReadOp(0, (("get", "a"), ("children", "zz"), ("children", ""))),
        ExistsOp(0, "c"), ExistsOp(0, "d"),
    ],
    "container_and_ttl": [
        RawCreateOp(0, 19, "c", 4), RawCreateOp(0, 21, "t", 5, 1000),
        RawCreateOp(0, 21, "t2", 6, 2**40 - 1), RawCreateOp(0, 21, "t3", 5, 2**40),
        RawCreateOp(0, 21, "t4", 5, 0), RawCreateOp(0, 21, "t5", 0, 100),
        RawCreateOp(0, 1, "t6", 5, 100), RawCreateOp(0, 1, "t7", 4),
        RawCreateOp(0, 15, "t8", 7), RawCreateOp(0, 19, "t9", 0), GetOp(0, "c"),
        GetOp(0, "t"), CreateOp(0, "c/x", mode="ephemeral"), CreateOp(0, "t/x"),
    ],
    "bad_paths": [BadPathOp(0, kind, path) for kind in ("create", "get", "create_seq")
                  for path in ("{R}/a/", "{R}//a", "{R}/./a", "{R}/a\x00b", "a", "{R}/a\x01")]
    + [BadPathOp(0, "delete", p) for p in ("/", "/zookeeper", "/zookeeper/quota")],
    "ephemerals_and_counts": [
        CreateOp(0, "a/c/e", makepath=True), CreateOp(0, "a/x", mode="ephemeral"),
        CreateOp(1, "b", mode="ephemeral"), EphemeralsOp(0, "{R}"), EphemeralsOp(1, "{R}/b"),
        EphemeralsOp(0, "/"), AllChildrenOp(0, "a"), AllChildrenOp(0, ""), WhoAmIOp(0),
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(pair, name):
    run_differential(pair, SCENARIOS[name])

"""On-disk format (txn logs, snapshots, tree digest) against files of Apache ZooKeeper 3.8.

Oracle tests, both directions:
- Java writes: a varied workload runs on Apache ZooKeeper with snapCount=100 (several log
  files and snapshots), the server is restarted once (its startup snapshot is non-fuzzy) and
  stopped. We parse every file, re-encode it byte for byte, check every stored digest against
  ours, and replay snapshot + logs into the state kazoo saw.
- We write: a dataDir built from our own txns (snapshot + log with digests) is served by
  Apache ZooKeeper; kazoo must see our tree, Java must report no digest mismatch, and its own
  startup snapshot must hold the same tree and digest.
Plus oracle-free tests of torn tails, corruption and preallocation.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, CreateRequest, Id
from zookapter.protocol.txns import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
)
from zookapter.server.datatree import DataTree
from zookapter.storage.digest import TreeDigest, node_digest, tree_digest
from zookapter.storage.files import VERSION_DIR, log_name, snapshot_name, sorted_files
from zookapter.storage.recovery import load_database, replay_txn
from zookapter.storage.snapshot import (
    AclCache,
    SnapshotError,
    ZxidDigest,
    find_snapshots,
    parse_snapshot,
    read_snapshot,
    serialize_snapshot,
    write_snapshot,
)
from zookapter.storage.txnlog import (
    CorruptLogError,
    TxnLogWriter,
    decode_payload,
    encode_payload,
    encode_record,
    iter_log,
    iter_log_file,
    padded_size,
    truncate_torn_tail,
)

from oracle import ApacheZooKeeper, apache_zookeeper_available

needs_oracle = pytest.mark.skipif(not apache_zookeeper_available(),
                                  reason="Apache ZooKeeper oracle unavailable")
STAT = struct.Struct(">qqqqiiiqiiq")
TTL_MODE = 5  # CreateMode.PERSISTENT_WITH_TTL
CONTAINER_MODE = 4


# --- helpers ---------------------------------------------------------------------------------

def _kazoo(hosts: str, super_user: bool = False):
    from kazoo.client import KazooClient
    auth = [("digest", "super:test")] if super_user else None
    c = KazooClient(hosts=hosts, auth_data=auth, timeout=10)
    c.start(timeout=15)
    return c


def _snapshot_state(client) -> dict[str, tuple]:
    """path -> (data, 68-byte-stat tuple, acl tuples) of the whole tree, via kazoo."""
    out: dict[str, tuple] = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        acls, _ = client.get_acls(path)
        out[path] = (data, tuple(stat), tuple((a.perms, a.id.scheme, a.id.id) for a in acls))
        for name in client.get_children(path):
            stack.append(("/" if path == "/" else path + "/") + name)
    return out


def _tree_state(tree: DataTree) -> dict[str, tuple]:
    return {p: (n.data, STAT.unpack(n.stat_bytes()),
                tuple((a.perms, a.id.scheme, a.id.id) for a in n.acl))
            for p, n in tree.nodes.items()}


def _raw_request(sock: socket.socket, xid: int, op: int, body: bytes) -> int:
    frame = struct.pack(">ii", xid, op) + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    (n,) = struct.unpack(">i", _recv(sock, 4))
    reply = _recv(sock, n)
    return struct.unpack_from(">iqi", reply)[2]


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _raw_session(host: str, port: int, timeout_ms: int = 30000) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    body = struct.pack(">iqiqi", 0, 0, timeout_ms, 0, 16) + b"\0" * 16 + b"\0"
    sock.sendall(struct.pack(">i", len(body)) + body)
    (n,) = struct.unpack(">i", _recv(sock, 4))
    _recv(sock, n)
    return sock


def _create_body(path: str, data: bytes, mode: int, ttl: int | None = None) -> bytes:
    w = Writer()
    CreateRequest(path, data, OPEN_ACL_UNSAFE, mode, -1 if ttl is None else ttl).write(
        w, ttl is not None)
    return bytes(w.buf)


def _workload(zk: ApacheZooKeeper) -> dict[str, tuple]:
    """Drive a varied workload; return the final state as kazoo sees it."""
    from kazoo.exceptions import BadVersionError, NoNodeError
    from kazoo.security import make_acl, make_digest_acl

    su = _kazoo(zk.hosts, super_user=True)
    c = _kazoo(zk.hosts)
    c.create("/a", b"hello")
    c.create("/a/b", b"x" * 10)
    c.create("/e", b"eph", ephemeral=True)
    c.create("/s/seq-", b"", sequence=True, makepath=True)
    c.create("/dig", b"d", acl=[make_digest_acl("u", "p", all=True)])
    c.add_auth("digest", "u:p")
    c.set("/dig", b"dd")
    c.set_acls("/a", [make_acl("world", "anyone", read=True, write=True)])
    c.create("/\u00fc-\u00df", "\u00fcn\u00ef-\U0001f600".encode())
    c.create("/big", bytes(range(256)) * 300)
    t = c.transaction()
    t.create("/m1", b"1")
    t.create("/m2")
    t.set_data("/a", b"hm")
    t.check("/a/b", 0)
    t.commit()
    t = c.transaction()
    t.create("/m3", b"1")
    t.check("/a/b", 5)
    assert isinstance(t.commit()[1], BadVersionError)
    with pytest.raises(NoNodeError):
        c.delete("/nonexistent")  # logged as an error txn
    sock = _raw_session(zk.host, zk.port)
    try:
        assert _raw_request(sock, 1, Op.CREATE_CONTAINER,
                            _create_body("/cont", b"c", CONTAINER_MODE)) == 0
        assert _raw_request(sock, 2, Op.CREATE, _create_body("/cont/x", b"", 0)) == 0
        assert _raw_request(sock, 3, Op.CREATE_TTL,
                            _create_body("/ttl", b"t", TTL_MODE, 100000)) == 0
        assert _raw_request(sock, 4, Op.CREATE, _create_body("/raw-eph", b"r", 1)) == 0
    finally:
        sock.close()  # no closeSession: the session and /raw-eph outlive the connection
    su.create("/zookeeper/quota/q/zookeeper_limits", b"count=100,bytes=10000", makepath=True)
    su.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    c.create("/q", b"qq")
    c.create("/q/1", b"12345")
    for i in range(150):
        c.create(f"/s/n{i}", str(i).encode())
        if i % 3 == 0:
            c.set(f"/s/n{i}", b"z")
        if i % 5 == 0:
            c.delete(f"/s/n{i}")
    # A burst of pipelined writes, so that snapshots may be fuzzy.
    for r in [c.create_async(f"/p{i}", b"p" * i) for i in range(80)]:
        r.get(timeout=10)
    for r in [c.set_async(f"/p{i}", b"q") for i in range(0, 80, 2)]:
        r.get(timeout=10)
    c2 = _kazoo(zk.hosts)
    c2.create("/e2", b"", ephemeral=True)
    c2.stop()
    c.stop()  # deletes /e
    state = _snapshot_state(su)
    su.stop()
    return state


def _server_log(zk: ApacheZooKeeper) -> str:
    path = zk.log_path
    return "" if path is None or not path.exists() else path.read_text(errors="replace")


# --- Java writes, we read --------------------------------------------------------------------

@pytest.fixture(scope="module")
def java_data(tmp_path_factory):
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper oracle unavailable")
    data_dir = tmp_path_factory.mktemp("java-datadir")
    cfg = {"snapCount": "100"}
    with ApacheZooKeeper(extra_config=cfg, data_dir=data_dir) as zk:
        expected = _workload(zk)
    # A restart loads snapshot + logs and writes a clean (non-fuzzy) snapshot.
    with ApacheZooKeeper(extra_config=cfg, data_dir=data_dir):
        pass
    return data_dir / VERSION_DIR, expected


@pytest.mark.oracle
@needs_oracle
def test_java_files_present(java_data):
    vdir, _ = java_data
    assert len(sorted_files(vdir, "log")) >= 3
    assert len(find_snapshots(vdir)) >= 3


@pytest.mark.oracle
@needs_oracle
def test_java_logs_reencode_byte_for_byte(java_data, tmp_path):
    vdir, _ = java_data
    total = 0
    for zxid, path in sorted_files(vdir, "log"):
        it = iter_log_file(path)
        entries = list(it)
        assert it.torn is None
        assert entries and entries[0].txn.zxid == zxid
        raw = path.read_bytes()
        for e in entries:
            rec = encode_record(e.txn, e.digest)
            assert raw[e.offset:e.offset + len(rec)] == rec
        # Whole file, preallocation included, from our writer.
        with TxnLogWriter(tmp_path, zxid) as w:
            for e in entries:
                w.append(e.txn, e.digest)
        assert (tmp_path / path.name).read_bytes() == raw
        total += len(entries)
    assert total > 300
    seen_types = {e.txn.type for e in iter_log(vdir)}
    assert {Op.CREATE_SESSION, Op.CLOSE_SESSION, Op.CREATE, Op.DELETE, Op.SET_DATA, Op.SET_ACL,
            Op.MULTI, Op.ERROR, Op.CREATE_CONTAINER, Op.CREATE_TTL} <= seen_types


@pytest.mark.oracle
@needs_oracle
def test_java_snapshots_reencode_byte_for_byte(java_data):
    vdir, _ = java_data
    for path in find_snapshots(vdir):
        snap = read_snapshot(path)
        info = snap.info
        out = serialize_snapshot(snap.tree, snap.sessions, info.digest,
                                 acl_cache=info.acl_cache,
                                 digest_section=info.digest is not None)
        assert out == path.read_bytes(), path.name


@pytest.mark.oracle
@needs_oracle
def test_java_digests_match_ours(java_data):
    """Stored digests (snapshot sections, every txn) equal the ones we compute."""
    vdir, _ = java_data
    snapshots = find_snapshots(vdir)
    # snapshot.0 (empty tree: the "empty" digest, zxid 0) and the restart's snapshot, taken
    # with no txn in flight: the digest section is exactly the tree's digest.
    assert snapshots[-1].name == "snapshot.0"
    assert read_snapshot(snapshots[-1]).info.digest == ZxidDigest(0, 2, 0)
    newest = read_snapshot(snapshots[0])
    assert newest.info.digest == ZxidDigest(newest.tree.last_processed_zxid, 2,
                                            tree_digest(newest.tree))
    # Every txn, replaying everything from the empty snapshot.
    tree = read_snapshot(snapshots[-1]).tree
    digest = TreeDigest(tree)
    with_digest = 0
    for e in iter_log(vdir, 1):
        replay_txn(tree, e.txn, digest)
        if e.digest is not None:
            assert e.digest == (2, digest.value), hex(e.txn.zxid)
            with_digest += 1
        else:
            assert e.txn.type == Op.ERROR  # error txns carry no digest
    assert with_digest > 300
    assert digest.value == tree_digest(tree)
    # From each (possibly fuzzy) snapshot: replaying the logs converges, and from the
    # snapshot's digest zxid on every txn digest matches (ZooKeeper only compares from there
    # on too). The snapshot's own digest is not asserted: ZooKeeper reads it after writing
    # the tree, and a txn being applied meanwhile can be in the tree but not yet in the
    # digest (seen in practice: the digest of zxid N over a tree holding part of N+1).
    for path in snapshots[1:-1]:
        snap = read_snapshot(path)
        d = snap.info.digest
        assert d is not None and d.version == 2 and d.zxid >= snap.tree.last_processed_zxid
        tree = snap.tree
        digest = TreeDigest(tree)
        compared = 0
        for e in iter_log(vdir, tree.last_processed_zxid + 1):
            replay_txn(tree, e.txn, digest)
            if e.txn.zxid > d.zxid and e.digest is not None:
                assert e.digest == (2, digest.value), (path.name, hex(e.txn.zxid))
                compared += 1
        assert compared > 0


@pytest.mark.oracle
@needs_oracle
def test_java_replay_gives_final_state(java_data):
    vdir, expected = java_data
    newest = read_snapshot(find_snapshots(vdir)[0])  # the restart's clean snapshot
    db = load_database(vdir)
    assert db.digest_mismatches == [] and db.torn is None
    assert _tree_state(db.tree) == expected
    assert _tree_state(newest.tree) == expected
    # The surviving raw session owns /raw-eph; it is in the snapshot's session table.
    owner = db.tree.nodes["/raw-eph"].ephemeral_owner
    assert owner in newest.sessions and newest.sessions[owner] == 30000
    assert db.tree.ephemerals == {owner: {"/raw-eph"}}
    assert db.tree.containers == {"/cont"} and db.tree.ttls == {"/ttl"}
    assert db.tree.quota_paths == {"/q"}
    # Replaying from every older snapshot (fuzzy ones included) reaches the same state.
    for path in find_snapshots(vdir)[1:]:
        snap = read_snapshot(path)
        for e in iter_log(vdir, snap.tree.last_processed_zxid + 1):
            replay_txn(snap.tree, e.txn)
        assert _tree_state(snap.tree) == expected, path.name


# --- we write, Java reads --------------------------------------------------------------------

class _Builder:
    """Builds txns the way the prep stage would (parent cversions, new versions)."""

    def __init__(self, epoch: int) -> None:
        self.tree = DataTree()
        self.digest = TreeDigest(self.tree)
        self.sessions: dict[int, int] = {}
        self.zxid = epoch << 32
        self.log: list[tuple[Txn, tuple[int, int] | None]] = []

    def txn(self, sid: int, typ: int, rec) -> Txn:
        self.zxid += 1
        t = Txn(sid, 1, self.zxid, 1_700_000_000_000 + self.zxid % 100000, typ, rec)
        if typ == Op.CREATE_SESSION:
            self.sessions[sid] = rec.timeOut
        elif typ == Op.CLOSE_SESSION:
            self.sessions.pop(sid, None)
        self.digest.apply(self.tree, t)
        self.log.append((t, None if typ == Op.ERROR else (2, self.digest.value)))
        return t

    def pcv(self, path: str) -> int:
        parent = path.rsplit("/", 1)[0] or "/"
        return self.tree.nodes[parent].cversion + 1

    def create(self, path: str, data: bytes | None, acl=OPEN_ACL_UNSAFE, sid: int = 0,
               ephemeral: bool = False, ttl: int = -1, container: bool = False) -> None:
        typ = (Op.CREATE_CONTAINER if container else Op.CREATE_TTL if ttl >= 0 else Op.CREATE)
        self.txn(sid, typ, CreateTxn(path, data, tuple(acl), ephemeral, self.pcv(path), ttl,
                                     container))

    def set_data(self, path: str, data: bytes) -> None:
        self.txn(0, Op.SET_DATA, SetDataTxn(path, data, self.tree.nodes[path].version + 1))


def _build_reverse(b: _Builder) -> int:
    """Part 1 goes into the snapshot; returns its zxid. Part 2 goes to the log."""
    digest_acl = (ACL(31, Id("digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=")),)
    read_only = (ACL(1, Id("world", "anyone")),)
    sid1, sid2 = 0x100000ABC0000, 0x100000ABC0001
    b.txn(sid1, Op.CREATE_SESSION, CreateSessionTxn(30000))
    b.create("/app", b"app data")
    b.create("/app/cfg", b"secret", digest_acl)
    b.create("/app/lock", b"", sid=sid1, ephemeral=True)
    b.create("/app/seq-0000000003", None)
    b.create("/c", b"", container=True)
    b.create("/t", b"ttl", ttl=60000)
    b.create("/\u00fcnic\u00f6de", "d\u00e4t\u00e4".encode())
    for i in range(30):
        b.create(f"/app/n{i}", bytes([i]) * i)
    b.set_data("/app", b"app data 2")
    b.txn(0, Op.SET_ACL, SetACLTxn("/app/n1", read_only, 1))
    b.create("/gone", b"x")
    b.txn(0, Op.DELETE, DeleteTxn("/gone"))
    snap_zxid = b.zxid
    # -- log part --
    b.create("/later", b"L", (ACL(3, Id("ip", "127.0.0.1")),))
    b.set_data("/app", b"app data 3")
    b.txn(sid2, Op.CREATE_SESSION, CreateSessionTxn(10000))
    b.create("/e2", b"", sid=sid2, ephemeral=True)
    b.txn(sid2, Op.CLOSE_SESSION, CloseSessionTxn(("/e2",)))
    b.txn(0, Op.ERROR, ErrorTxn(-101))
    b.txn(0, Op.MULTI, MultiTxn((
        (Op.CREATE, CreateTxn("/m1", b"1", OPEN_ACL_UNSAFE, False, b.pcv("/m1"))),
        (Op.SET_DATA, SetDataTxn("/app/n2", b"two", 1)),
        (Op.CHECK, CheckVersionTxn("/app", 2)),
        (Op.DELETE, DeleteTxn("/app/n3")))))
    b.txn(0, Op.MULTI, MultiTxn((
        (Op.CREATE, CreateTxn("/m2", b"", OPEN_ACL_UNSAFE, False, b.pcv("/m2"))),
        (Op.ERROR, ErrorTxn(-110)))))
    for i in range(5):
        b.create(f"/app/n{i + 30}", b"more")
    return snap_zxid


@pytest.mark.oracle
@needs_oracle
def test_java_serves_our_datadir(tmp_path):
    b = _Builder(epoch=1)
    snap_zxid = _build_reverse(b)
    # Snapshot of the state at snap_zxid: rebuild it from the log prefix.
    snap_tree, snap_digest, sessions = DataTree(), None, {}
    d = TreeDigest(snap_tree)
    for t, _ in b.log:
        if t.zxid > snap_zxid:
            break
        d.apply(snap_tree, t)
        if t.type == Op.CREATE_SESSION:
            sessions[t.session_id] = t.record.timeOut
    snap_digest = d.value
    vdir = tmp_path / VERSION_DIR
    vdir.mkdir()
    write_snapshot(vdir / snapshot_name(snap_zxid), snap_tree, sessions, snap_zxid, snap_digest,
                   last_processed_zxid=None)
    log_entries = [(t, dg) for t, dg in b.log if t.zxid > snap_zxid]
    with TxnLogWriter(vdir, log_entries[0][0].zxid) as w:
        for t, dg in log_entries:
            w.append(t, dg)
    assert (vdir / log_name(snap_zxid + 1)).exists()

    # Our own recovery agrees with the builder.
    db = load_database(vdir)
    assert db.digest_mismatches == [] and db.last_zxid == b.zxid
    assert _tree_state(db.tree) == _tree_state(b.tree)

    with ApacheZooKeeper(data_dir=tmp_path) as zk:
        su = _kazoo(zk.hosts, super_user=True)
        try:
            seen = _snapshot_state(su)
        finally:
            su.stop()
        server_log = _server_log(zk)
        mntr = zk.four_letter_word("mntr")
    # Java replayed our log comparing every txn digest (and the snapshot's) with its own.
    assert "zk_digest_mismatches_count\t0" in mntr
    assert "digest mismatch" not in server_log.lower()
    assert "Digests are not matching" not in server_log
    assert seen == _tree_state(b.tree)

    # Java's startup snapshot (at the last zxid) holds the same tree, sessions and digest.
    java_snap = read_snapshot(vdir / snapshot_name(b.zxid))
    assert _tree_state(java_snap.tree) == _tree_state(b.tree)
    assert java_snap.info.digest == ZxidDigest(b.zxid, 2, b.digest.value)
    assert java_snap.sessions == b.sessions == {0x100000ABC0000: 30000}
    # Byte for byte, given Java's ACL numbering (new lists got indexes in replay order).
    assert serialize_snapshot(b.tree, b.sessions, java_snap.info.digest,
                              acl_cache=java_snap.info.acl_cache) == \
        (vdir / snapshot_name(b.zxid)).read_bytes()


# --- oracle-free format tests ----------------------------------------------------------------

def _sample_txns() -> list[Txn]:
    acl = (ACL(31, Id("world", "anyone")),)
    return [
        Txn(5, 0, 1, 1000, Op.CREATE_SESSION, CreateSessionTxn(4000)),
        Txn(5, 1, 2, 1001, Op.CREATE, CreateTxn("/a", b"x", acl, False, 1)),
        Txn(5, 2, 3, 1002, Op.CREATE, CreateTxn("/a/e", None, acl, True, 1)),
        Txn(5, 3, 4, 1003, Op.SET_DATA, SetDataTxn("/a", b"yy", 1)),
        Txn(5, 4, 5, 1004, Op.SET_ACL, SetACLTxn("/a", acl, 1)),
        Txn(5, 5, 6, 1005, Op.ERROR, ErrorTxn(-101)),
        Txn(5, 6, 7, 1006, Op.CREATE_CONTAINER,
            CreateTxn("/c", b"", acl, False, 2, -1, True)),
        Txn(5, 7, 8, 1007, Op.CREATE_TTL, CreateTxn("/t", b"", acl, False, 3, 500)),
        Txn(5, 8, 9, 1008, Op.MULTI, MultiTxn(((Op.DELETE, DeleteTxn("/t")),
                                               (Op.CHECK, CheckVersionTxn("/a", 1))))),
        Txn(5, 9, 10, 1009, Op.CLOSE_SESSION, CloseSessionTxn(("/a/e",))),
    ]


def _write_log(directory: Path, txns: list[Txn], first: int | None = None,
               prealloc: int = 65536) -> Path:
    tree = DataTree()
    digest = TreeDigest(tree)
    with TxnLogWriter(directory, txns[0].zxid if first is None else first,
                      prealloc_size=prealloc) as w:
        for t in txns:
            digest.apply(tree, t)
            w.append(t, None if t.type == Op.ERROR else (2, digest.value))
    return w.path


def test_payload_round_trip():
    for t in _sample_txns():
        for dg in (None, (2, -12345678901234)):
            txn, digest = decode_payload(encode_payload(t, dg))
            assert (txn, digest) == (t, dg)
    rec = encode_record(_sample_txns()[0], (2, 7))
    assert rec[-1:] == b"B" and struct.unpack(">i", rec[8:12])[0] == len(rec) - 13


def test_preallocation_rule(tmp_path):
    assert padded_size(16, 16, 1 << 20) == 16 + (1 << 20)
    assert padded_size(100, 16 + (1 << 20), 1 << 20) == 16 + (1 << 20)
    assert padded_size((1 << 20) - 100, 16 + (1 << 20), 1 << 20) == 16 + (2 << 20)
    assert padded_size(5 << 20, 16 + (1 << 20), 1 << 20) == 6 << 20
    w = TxnLogWriter(tmp_path, 1, prealloc_size=8192)
    assert os.path.getsize(w.path) == 16 + 8192
    for i in range(200):
        w.append(Txn(1, i, i + 1, 0, Op.SET_DATA, SetDataTxn("/x", b"d" * 100, i)))
        if i % 10 == 9:
            w.write_batch(w.take_batch(), fsync=False)
    w.close()
    size = os.path.getsize(w.path)
    assert size % 8192 in (0, 16) and size >= w.position
    assert [e.txn.zxid for e in iter_log(tmp_path)] == list(range(1, 201))


def test_multiple_files_from_zxid(tmp_path):
    txns = _sample_txns()
    _write_log(tmp_path, txns[:4])
    _write_log(tmp_path, txns[4:7])
    _write_log(tmp_path, txns[7:])
    assert [e.txn.zxid for e in iter_log(tmp_path)] == list(range(1, 11))
    it = iter_log(tmp_path, 6)
    assert [f.name for f in it.files] == ["log.5", "log.8"]
    assert [e.txn.zxid for e in it] == [6, 7, 8, 9, 10]
    assert it.end is not None and it.end[0] == tmp_path / "log.8" and it.last_zxid == 10
    assert [e.txn.zxid for e in iter_log(tmp_path, 8)] == [8, 9, 10]


def test_torn_tail_truncated_and_resumed(tmp_path):
    txns = _sample_txns()
    path = _write_log(tmp_path, txns)
    entries = list(iter_log_file(path))
    last = entries[-1].offset
    raw = bytearray(path.read_bytes())
    # Torn write: the last record's payload is half there (zeros from preallocation follow).
    end = entries[-1].offset + 12 + 10
    raw[end:last + 200] = bytes(len(raw[end:last + 200]))
    path.write_bytes(raw)
    it = iter_log(tmp_path)
    assert [e.txn.zxid for e in it] == list(range(1, 10))
    assert it.torn == (path, last) and it.end == (path, last)
    truncate_torn_tail(*it.torn)
    assert os.path.getsize(path) == last
    it = iter_log(tmp_path)
    assert len(list(it)) == 9 and it.torn is None
    # The next log starts after the last good zxid.
    _write_log(tmp_path, [Txn(5, 9, 10, 2000, Op.CLOSE_SESSION, CloseSessionTxn(()))])
    assert [e.txn.zxid for e in iter_log(tmp_path)] == list(range(1, 11))


def test_torn_variants(tmp_path):
    txns = _sample_txns()
    path = _write_log(tmp_path, txns)
    entries = list(iter_log_file(path))
    last = entries[-1].offset
    end = iter_log_file(path)
    list(end)
    stop = end.end[1]
    original = path.read_bytes()

    def check(mutated: bytes, torn: bool) -> None:
        path.write_bytes(mutated)
        it = iter_log_file(path)
        got = [e.txn.zxid for e in it]
        assert got == list(range(1, 10 if torn else 11))
        assert it.torn == ((path, last) if torn else None)

    raw = bytearray(original)
    raw[stop - 1] = 0  # missing 'B'
    check(bytes(raw), True)
    check(original[:stop - 1], True)  # file cut inside the record
    check(original[:last + 5], True)  # cut inside the record header
    check(original[:stop], False)  # no padding at all: clean end
    raw = bytearray(original)
    raw[last + 20] ^= 0xFF  # CRC mismatch on the last record, only zeros after it
    check(bytes(raw), True)


def test_corruption_is_fatal(tmp_path):
    txns = _sample_txns()
    path = _write_log(tmp_path, txns)
    entries = list(iter_log_file(path))
    original = path.read_bytes()
    raw = bytearray(original)
    raw[entries[3].offset + 20] ^= 0xFF  # CRC mismatch in the middle
    path.write_bytes(raw)
    with pytest.raises(CorruptLogError) as info:
        list(iter_log(tmp_path))
    assert info.value.offset == entries[3].offset and "CRC" in info.value.reason
    path.write_bytes(b"ZKXX" + original[4:])
    with pytest.raises(CorruptLogError):
        list(iter_log(tmp_path))
    # A torn tail in an earlier file is skipped (as ZooKeeper does), not fatal.
    path.write_bytes(original[:entries[-1].offset + 3])
    _write_log(tmp_path, [Txn(5, 9, 10, 2000, Op.CLOSE_SESSION, CloseSessionTxn(()))])
    it = iter_log(tmp_path)
    assert [e.txn.zxid for e in it] == list(range(1, 11))
    assert it.torn is None and it.torn_earlier == [(path, entries[-1].offset)]


def _sample_tree() -> tuple[DataTree, TreeDigest]:
    tree = DataTree()
    digest = TreeDigest(tree)
    for t in _sample_txns()[:-1]:
        digest.apply(tree, t)
    return tree, digest


def test_snapshot_round_trip_and_sections(tmp_path):
    tree, digest = _sample_tree()
    sessions = {5: 4000, -3: 10000}
    path = tmp_path / snapshot_name(9)
    write_snapshot(path, tree, sessions, 9, digest.value)
    snap = read_snapshot(path)
    assert _tree_state(snap.tree) == _tree_state(tree)
    assert snap.sessions == sessions and snap.tree.last_processed_zxid == 9
    assert snap.info.digest == ZxidDigest(9, 2, digest.value) == ZxidDigest(9, 2,
                                                                            tree_digest(tree))
    assert snap.tree.ephemerals == {5: {"/a/e"}} and snap.tree.containers == {"/c"}
    assert serialize_snapshot(snap.tree, snap.sessions, snap.info.digest,
                              acl_cache=snap.info.acl_cache) == path.read_bytes()
    # No digest section (digest disabled / pre-3.6), and the 3.9 trailer.
    bare = serialize_snapshot(tree, sessions, None, digest_section=False)
    assert parse_snapshot(bare).info.digest is None
    full = serialize_snapshot(tree, sessions, ZxidDigest(9, 2, 5), last_processed_zxid=9)
    info = parse_snapshot(full).info
    assert info.digest == ZxidDigest(9, 2, 5) and info.last_processed_zxid == 9
    only_lpz = serialize_snapshot(tree, sessions, None, digest_section=False,
                                  last_processed_zxid=11)
    info = parse_snapshot(only_lpz).info
    assert info.digest is None and info.last_processed_zxid == 11
    assert len(full) - len(bare) == 33 + 21


def test_snapshot_acl_indexes():
    tree, _ = _sample_tree()
    cache = AclCache()
    out = serialize_snapshot(tree, {}, None, acl_cache=cache)
    # Two lists in use: /zookeeper/config's READ_ACL_UNSAFE and the clients' open ACL (which,
    # unlike root, /zookeeper and /zookeeper/quota, gets a real index rather than -1).
    by_acl = {acls: i for i, acls in cache.items()}
    assert sorted(by_acl.values()) == [1, 2]
    assert set(by_acl) == {READ_ACL_UNSAFE, OPEN_ACL_UNSAFE}
    snap = parse_snapshot(out)
    assert snap.info.acl_cache.items() == cache.items()
    # Dropping every user of the open ACL and adding a new list gives index 3, not a reuse.
    for p in ("/a", "/a/e", "/c"):
        snap.tree.nodes[p].acl = (ACL(1, Id("ip", "10.0.0.1")),)
    parse_snapshot(serialize_snapshot(snap.tree, {}, None, acl_cache=snap.info.acl_cache))
    assert dict(snap.info.acl_cache.items()) == {by_acl[READ_ACL_UNSAFE]: READ_ACL_UNSAFE,
                                                 3: (ACL(1, Id("ip", "10.0.0.1")),)}


def test_snapshot_validity_and_corruption(tmp_path):
    tree, digest = _sample_tree()
    good = serialize_snapshot(tree, {}, ZxidDigest(9, 2, digest.value))
    (tmp_path / "snapshot.9").write_bytes(good)
    (tmp_path / "snapshot.a").write_bytes(good[:-7])  # torn: no seal
    (tmp_path / "snapshot.zz").write_bytes(good)  # not a snapshot name
    assert [p.name for p in find_snapshots(tmp_path)] == ["snapshot.9"]
    bad = bytearray(good)
    bad[40] ^= 1
    with pytest.raises(SnapshotError):
        parse_snapshot(bytes(bad))
    with pytest.raises(SnapshotError):
        parse_snapshot(b"ZKLG" + good[4:])


def test_replay_of_delete_missing_from_fuzzy_snapshot():
    """The snapshot caught /s before the delete of /s/x but not /s/x itself: replaying the
    delete still moves /s's pzxid, as ZooKeeper does."""
    acl = OPEN_ACL_UNSAFE
    txns = [Txn(0, 0, 1, 10, Op.CREATE, CreateTxn("/s", b"", acl, False, 1)),
            Txn(0, 0, 2, 11, Op.CREATE, CreateTxn("/s/x", b"", acl, False, 1)),
            Txn(0, 0, 3, 12, Op.DELETE, DeleteTxn("/s/x"))]
    truth = DataTree()
    truth_digest = TreeDigest(truth)
    for t in txns:
        truth_digest.apply(truth, t)
    fuzzy = DataTree()
    for t in txns[:2]:
        fuzzy.apply(t)
    del fuzzy.nodes["/s/x"]
    fuzzy.nodes["/s"].remove_child("x")
    digest = TreeDigest(fuzzy)
    replay_txn(fuzzy, txns[2], digest)
    assert _tree_state(fuzzy) == _tree_state(truth)
    assert digest.value == truth_digest.value


def test_digest_definition():
    tree, digest = _sample_tree()
    root = tree.nodes["/"]
    import zlib
    block = struct.pack(">qqqqqiiiq", root.czxid, root.mzxid, root.pzxid, root.ctime,
                        root.mtime, root.version, root.cversion, root.aversion,
                        root.ephemeral_owner)
    assert node_digest("/", root) == zlib.crc32(b"" + (root.data or b"") + block)
    assert node_digest("/zookeeper/quota", tree.nodes["/zookeeper/quota"]) == 0
    assert node_digest("/zookeeper", tree.nodes["/zookeeper"]) != 0
    assert digest.value == tree_digest(tree)


"""Every txn the server logs carries the tree digest after it (TxnDigest), as ZooKeeper 3.6+.

The server logs a txn before applying it, so the digest is computed ahead (DigestShadow in
storage/digest.py). The invariant checked here: replaying the log from the start snapshot,
the digest of the tree right after each txn (computed from scratch) equals the one logged with
it; error txns carry none. Apache ZooKeeper serving the same dataDir must count no digest
mismatch while replaying it.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.security import make_acl

from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.txns import MultiTxn
from zookapter.server.datatree import DataTree
from zookapter.storage.digest import DigestShadow, tree_digest
from zookapter.storage.files import VERSION_DIR, snapshot_name, sorted_files
from zookapter.storage.recovery import load_database, replay_txn
from zookapter.storage.snapshot import read_snapshot
from zookapter.storage.txnlog import iter_log
from zookapter.testing import ZookapterServer

from oracle import ApacheZooKeeper, apache_zookeeper_available
from rawclient import RawClient

needs_oracle = pytest.mark.skipif(not apache_zookeeper_available(),
                                  reason="Apache ZooKeeper oracle unavailable")


def _create_body(path: str, data: bytes, flags: int, ttl: int | None = None) -> bytes:
    w = Writer()
    w.ustring(path).buffer(data).int(1).int(31).ustring("world").ustring("anyone").int(flags)
    if ttl is not None:
        w.long(ttl)
    return bytes(w.buf)


def _wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _workload(s: ZookapterServer, tag: str) -> None:
    c = KazooClient(hosts=s.hosts, timeout=10)
    c.start(timeout=15)
    base = f"/{tag}"
    c.create(base, b"root-data")
    c.create(f"{base}/a", b"x" * 100)
    c.create(f"{base}/a/b", None)  # null data
    c.create(f"{base}/empty", b"")
    for _ in range(3):
        c.create(f"{base}/seq-", b"s", sequence=True)
    c.create(f"{base}/eph", b"e", ephemeral=True)
    c.create(f"{base}/eph-seq-", b"e", ephemeral=True, sequence=True)
    c.set(f"{base}/a", b"y" * 10)
    c.set(f"{base}/a", b"z", version=1)
    c.set(f"{base}/a/b", None)
    c.set_acls(f"{base}/a/b", [make_acl("world", "anyone", all=True)])
    c.set_acls(f"{base}/a/b", [make_acl("world", "anyone", read=True, write=True,
                                        create=True, delete=True, admin=True)], version=1)
    c.create(f"{base}/gone", b"g")
    c.delete(f"{base}/gone")
    # error txns
    with pytest.raises(NodeExistsError):
        c.create(f"{base}/a", b"dup")
    with pytest.raises(NoNodeError):
        c.set(f"{base}/missing", b"m")
    # multi: success, then one that fails half-way (changes nothing)
    t = c.transaction()
    t.create(f"{base}/m1", b"1")
    t.create(f"{base}/m1/child", b"c")
    t.set_data(f"{base}/a", b"multi")
    t.check(f"{base}/a/b", 1)
    t.delete(f"{base}/empty")
    assert all(not isinstance(r, Exception) for r in t.commit())
    t = c.transaction()
    t.create(f"{base}/m2", b"2")
    t.delete(f"{base}/does-not-exist")
    t.set_data(f"{base}/a", b"never")
    assert any(isinstance(r, Exception) for r in t.commit())
    # under /zookeeper: the parent counts in the digest, the child does not
    try:
        c.create(f"/zookeeper/{tag}", b"sys")
    except Exception:
        pass
    # containers and TTL nodes (raw protocol; kazoo has no API for them)
    raw = RawClient(s.host, s.port)
    raw.connect()
    assert raw.request(Op.CREATE_CONTAINER, _create_body(f"{base}/cont", b"c", 4))[2] == 0
    assert raw.request(Op.CREATE, _create_body(f"{base}/cont/kid", b"k", 0))[2] == 0
    assert raw.request(Op.CREATE_TTL, _create_body(f"{base}/ttl", b"t", 5, 60000))[2] == 0
    assert raw.request(Op.CREATE_TTL, _create_body(f"{base}/ttl-seq-", b"t", 6, 60000))[2] == 0
    assert raw.request(Op.CREATE_TTL, _create_body(f"{base}/ttl-short", b"t", 5, 100))[2] == 0
    raw.close()
    # The reaper deletes the emptied container and the expired TTL node (deleteContainer).
    c.delete(f"{base}/cont/kid")
    assert _wait_for(lambda: c.exists(f"{base}/cont") is None)
    assert _wait_for(lambda: c.exists(f"{base}/ttl-short") is None)
    # a session closing with ephemerals (some created in a multi) and one expiring
    c2 = KazooClient(hosts=s.hosts, timeout=10)
    c2.start(timeout=15)
    c2.create(f"{base}/c2-eph", b"e", ephemeral=True)
    c2.create(f"{base}/c2-eph-seq-", b"e", ephemeral=True, sequence=True)
    t = c2.transaction()
    t.create(f"{base}/c2-eph-multi", b"e", ephemeral=True)
    t.commit()
    c2.stop()
    c2.close()
    # pipelined writes from several clients at once: many txns prepped before being applied
    clients = [KazooClient(hosts=s.hosts, timeout=10) for _ in range(4)]
    for k in clients:
        k.start(timeout=15)
    c.create(f"{base}/p", b"")

    def hammer(i: int, k: KazooClient) -> None:
        futs = []
        for j in range(60):
            p = f"{base}/p/n{i}-{j}"
            futs.append(k.create_async(p, b"v%d" % j, ephemeral=(j % 5 == 0)))
            futs.append(k.set_async(p, b"w%d" % j))
            futs.append(k.create_async(f"{base}/p/q-", b"", sequence=True))
            futs.append(k.set_async(f"{base}/a", b"shared%d-%d" % (i, j)))
            if j % 3 == 0:
                futs.append(k.delete_async(p))
            if j % 7 == 0:
                futs.append(k.create_async(p, b"dup"))  # fails (or not, after the delete)
        for f in futs:
            try:
                f.get(timeout=30)
            except Exception:
                pass

    crashed: list[BaseException] = []

    def run(i: int, k: KazooClient) -> None:
        try:
            hammer(i, k)
        except BaseException as e:  # noqa: BLE001
            crashed.append(e)

    threads = [threading.Thread(target=run, args=(i, k)) for i, k in enumerate(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not crashed, crashed
    for k in clients:  # closeSession deleting the remaining ephemerals
        k.stop()
        k.close()
    c.stop()
    c.close()


def _check_log(vdir) -> int:
    """Replay all logs from the first snapshot; every digest must match. Returns #txns."""
    snaps = sorted_files(vdir, "snapshot")
    first = read_snapshot(snaps[0][1])
    tree = first.tree
    assert first.info.digest is None or first.info.digest.digest == tree_digest(tree)
    n = with_digest = 0
    types: set[int] = set()
    for entry in iter_log(vdir, tree.last_processed_zxid + 1):
        txn = entry.txn
        replay_txn(tree, txn)
        n += 1
        types.add(txn.type)
        if txn.type == Op.MULTI and isinstance(txn.record, MultiTxn):
            types.update(t for t, _ in txn.record.txns)
        if txn.type == Op.ERROR:
            assert entry.digest is None, hex(txn.zxid)
            continue
        assert entry.digest == (2, tree_digest(tree)), hex(txn.zxid)
        with_digest += 1
    expected = {Op.CREATE, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.DELETE_CONTAINER,
                Op.SET_DATA, Op.SET_ACL, Op.MULTI, Op.CHECK, Op.ERROR, Op.CREATE_SESSION,
                Op.CLOSE_SESSION}
    assert expected <= types, expected - types
    assert with_digest > 500
    return n


def test_logged_digests_match_tree(tmp_path):
    data_dir = tmp_path / "data"
    props = {"znode.container.checkIntervalMs": "100"}
    with ZookapterServer(data_dir=str(data_dir), props=props) as s:
        _workload(s, "one")
    # Restart: the digest carries on from the recovered tree; small snapCount so the log
    # rolls and fuzzy snapshots are taken while txns are in flight.
    with ZookapterServer(data_dir=str(data_dir),
                         props={**props, "zookeeper.snapCount": "200"}) as s:
        _workload(s, "two")
    vdir = data_dir / VERSION_DIR
    assert len(sorted_files(vdir, "log")) >= 2
    n = _check_log(vdir)
    assert n > 1000
    # Our recovery (from the start snapshot only, and from the newest) sees no mismatch.
    first_only = tmp_path / "first"
    first_only.mkdir()
    shutil.copy(sorted_files(vdir, "snapshot")[0][1], first_only)
    for _, f in sorted_files(vdir, "log"):
        shutil.copy(f, first_only)
    db = load_database(first_only)
    assert db.digest_mismatches == [] and db.torn is None
    newest = read_snapshot(sorted_files(vdir, "snapshot")[-1][1])
    assert newest.info.digest is not None and newest.info.digest.zxid > 0
    db2 = load_database(vdir)
    assert db2.digest_mismatches == []
    assert db.last_zxid == db2.last_zxid
    assert tree_digest(db.tree) == tree_digest(db2.tree) == db.digest.value


@pytest.mark.oracle
@needs_oracle
@pytest.mark.parametrize("fuzzy", [False, True], ids=["whole-log", "fuzzy-snapshot"])
def test_java_replays_our_digests(tmp_path, fuzzy):
    data_dir = tmp_path / "data"
    props = {"znode.container.checkIntervalMs": "100"}
    if fuzzy:  # snapshots taken while txns are applied; Java starts from the newest
        props["zookeeper.snapCount"] = "200"
    with ZookapterServer(data_dir=str(data_dir), props=props) as s:
        _workload(s, "one")
    vdir = data_dir / VERSION_DIR
    snaps = sorted_files(vdir, "snapshot")
    if fuzzy:
        newest = read_snapshot(snaps[-1][1])
        assert snaps[-1][0] > 0 and newest.info.digest is not None
        # its digest section names the last txn applied when serialization ended
        assert newest.info.digest.zxid >= snaps[-1][0]
    else:
        assert snaps[-1][1].name == snapshot_name(0)  # Java replays the whole log
    expected = load_database(vdir)
    assert expected.digest_mismatches == []
    with ApacheZooKeeper(data_dir=data_dir) as zk:
        c = KazooClient(hosts=zk.hosts, timeout=10)
        c.start(timeout=15)
        try:
            assert c.get("/one")[0] == b"root-data"
            assert c.get("/one/a")[0].startswith(b"shared")
            assert set(c.get_children("/one/m1")) == {"child"}
            assert c.exists("/one/eph") is None and c.exists("/one/cont") is None
            assert len(c.get_children("/one/p")) == len(
                [p for p in expected.tree.nodes if p.startswith("/one/p/")])
        finally:
            c.stop()
            c.close()
        mntr = zk.four_letter_word("mntr")
        log_path = zk.log_path
        server_log = log_path.read_text(errors="replace") if log_path else ""
    assert "zk_digest_mismatches_count\t0" in mntr, mntr
    assert "Digests are not matching" not in server_log
    assert "digest mismatch" not in server_log.lower()
    # Java's startup snapshot holds our tree and its digest.
    java_snap = read_snapshot(vdir / snapshot_name(expected.last_zxid))
    assert tree_digest(java_snap.tree) == tree_digest(expected.tree)


def test_shadow_tracks_pipelined_txns():
    """DigestShadow ahead of the tree: digests of txns prepped in a row, applied later."""
    from zookapter.protocol.records import OPEN_ACL_UNSAFE
    from zookapter.protocol.txns import CreateTxn, DeleteTxn, SetACLTxn, SetDataTxn, Txn
    tree = DataTree()
    shadow = DigestShadow(tree)
    assert shadow.value == tree_digest(tree)
    z = iter(range(1, 1000))
    mk = lambda typ, rec, sid=0: Txn(sid, 0, next(z), 1000, typ, rec)  # noqa: E731
    txns = [
        mk(Op.CREATE, CreateTxn("/a", b"a", OPEN_ACL_UNSAFE, False, 1)),
        mk(Op.CREATE, CreateTxn("/a/b", None, OPEN_ACL_UNSAFE, True, 1), 7),
        mk(Op.SET_DATA, SetDataTxn("/a", b"aa", 1)),
        mk(Op.SET_ACL, SetACLTxn("/a/b", OPEN_ACL_UNSAFE, 1)),
        mk(Op.MULTI, MultiTxn(((Op.CREATE, CreateTxn("/c", b"", OPEN_ACL_UNSAFE, False, 2)),
                               (Op.SET_DATA, SetDataTxn("/c", b"c", 1)),
                               (Op.DELETE, DeleteTxn("/a/b"))))),
        mk(Op.CREATE, CreateTxn("/zookeeper/x", b"x", OPEN_ACL_UNSAFE, False, 1)),
        mk(Op.DELETE, DeleteTxn("/c")),
        mk(Op.DELETE_CONTAINER, DeleteTxn("/nope")),
        mk(Op.CREATE, CreateTxn("/a/t", b"", OPEN_ACL_UNSAFE, False, 3, ttl=5000)),
        mk(Op.CREATE, CreateTxn("/k", b"", OPEN_ACL_UNSAFE, False, 4, container=True)),
    ]
    digests = [shadow.txn(t) for t in txns[:6]]
    for t, d in zip(txns[:3], digests, strict=False):
        tree.apply(t)
        assert tree_digest(tree) == d
    shadow.applied(txns[2].zxid)
    digests += [shadow.txn(t) for t in txns[6:]]
    for t, d in zip(txns[3:], digests[3:], strict=True):
        tree.apply(t)
        assert tree_digest(tree) == d
    shadow.applied(txns[-1].zxid)
    assert not shadow._overlay
    assert shadow.value == tree_digest(tree)

"""Writes survive a restart: the txn log and snapshots in ZooKeeper's format, sessions and
their ephemerals restored within the session timeout."""

from __future__ import annotations

import os

from kazoo.client import KazooClient
from support import dump_tree, free_port

from zookapter.testing import ZookapterServer


def test_restart_keeps_tree_and_sessions(tmp_path):
    port = free_port()
    data = str(tmp_path / "data")
    with ZookapterServer(data_dir=data, port=port) as s:
        zk = KazooClient(hosts=s.hosts, timeout=20)
        zk.start()
        zk.create("/d/a", b"1", makepath=True)
        zk.create("/d/s-", b"", sequence=True)
        zk.set("/d/a", b"2")
        zk.create("/d/eph", ephemeral=True)
        before = {p: zk.get(p) for p in ("/d", "/d/a", "/d/eph")}
        sid = zk.client_id
        # stop the server under the client; the session must survive the restart
    assert os.listdir(os.path.join(data, "version-2"))
    with ZookapterServer(data_dir=data, port=port) as s:
        other = KazooClient(hosts=s.hosts)
        other.start()
        for p, (value, stat) in before.items():
            got = other.get(p)
            assert got[0] == value and got[1] == stat
        assert other.get_children("/d") and "s-0000000001" in other.get_children("/d")
        zk.retry(zk.exists, "/d")  # the old client reconnects to the same session
        assert zk.client_id == sid
        zk.stop()
        assert other.exists("/d/eph") is None
        other.stop()


def test_snapshots_roll_the_log(tmp_path):
    data = str(tmp_path / "data")
    with ZookapterServer(data_dir=data, props={"zookeeper.snapCount": "20"}) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        for i in range(100):
            zk.create(f"/n{i}", b"x")
        zk.stop()
    files = os.listdir(os.path.join(data, "version-2"))
    assert sum(f.startswith("snapshot.") for f in files) >= 3
    assert sum(f.startswith("log.") for f in files) >= 3
    with ZookapterServer(data_dir=data) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        assert len([c for c in zk.get_children("/") if c.startswith("n")]) == 100
        zk.stop()


def test_fuzzy_snapshots_under_concurrent_writes_recover_exactly(tmp_path):
    """Snapshots serialized a few nodes per loop turn while three clients keep writing:
    after a restart (snapshot + log replay) the tree equals what was served before."""
    import threading
    data = str(tmp_path / "data")
    props = {"zookeeper.snapCount": "40", "zookapter.snapshot.chunkNodes": "7"}
    port = free_port()
    with ZookapterServer(data_dir=data, port=port, props=props) as s:
        setup = KazooClient(hosts=s.hosts)
        setup.start()
        for i in range(3):
            setup.create(f"/w{i}")
        errors = []

        def writer(i):
            try:
                c = KazooClient(hosts=s.hosts)
                c.start()
                for j in range(150):
                    c.create(f"/w{i}/n{j}", b"v" * (j % 7))
                    if j % 3 == 0:
                        c.set(f"/w{i}/n{j}", b"changed")
                    if j % 5 == 0 and j:
                        c.delete(f"/w{i}/n{j - 1}")
                c.stop()
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        before = dump_tree(setup)
        setup.stop()
    snaps = [f for f in os.listdir(os.path.join(data, "version-2")) if f.startswith("snap")]
    assert len(snaps) >= 5
    with ZookapterServer(data_dir=data, port=port) as s:
        c = KazooClient(hosts=s.hosts)
        c.start()
        after = dump_tree(c)
        c.stop()
    assert sorted(before) == sorted(after)
    for p in before:
        if p != "/":
            assert before[p] == after[p], p


def test_damaged_length_in_the_middle_of_the_newest_log_refuses_to_start(tmp_path):
    """A flipped bit in a record's length field looks like a torn record, but valid records
    follow it: truncating would drop acknowledged writes, so the start is refused and no
    file changes."""
    import hashlib

    import pytest

    from zookapter.storage.txnlog import CorruptLogError, iter_log

    data = str(tmp_path / "data")
    with ZookapterServer(data_dir=data) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        for i in range(10):
            zk.create(f"/n{i}", b"x" * 20)
        zk.stop()
    vdir = os.path.join(data, "version-2")
    logs = sorted(f for f in os.listdir(vdir) if f.startswith("log."))
    entries = [e for e in iter_log(vdir) if e.txn.type == 1]
    victim = entries[3]
    path = victim.file
    raw = bytearray(open(path, "rb").read())
    raw[victim.offset + 11] ^= 1  # low byte of the length field
    open(path, "wb").write(raw)
    before = {f: hashlib.sha256(open(os.path.join(vdir, f), "rb").read()).hexdigest()
              for f in os.listdir(vdir)}
    with pytest.raises(CorruptLogError) as e:
        ZookapterServer(data_dir=data).start()
    assert str(victim.offset) in str(e.value) and os.path.basename(str(path)) in str(e.value)
    after = {f: hashlib.sha256(open(os.path.join(vdir, f), "rb").read()).hexdigest()
             for f in os.listdir(vdir)}
    assert before == after and logs


def test_force_sync_no_skips_fsync(tmp_path, monkeypatch):
    """forceSync=no (zoo.cfg) as in ZooKeeper: writes are logged but not fsynced."""
    calls = []
    real = os.fdatasync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    for force, expect_syncs in (("no", False), ("yes", True)):
        calls.clear()
        with ZookapterServer(data_dir=str(tmp_path / force),
                             props={"zookeeper.forceSync": force}) as s:
            zk = KazooClient(hosts=s.hosts)
            zk.start()
            for i in range(20):
                zk.create(f"/f{i}", b"x")
            zk.stop()
        assert bool(calls) is expect_syncs, (force, len(calls))
    with ZookapterServer(data_dir=str(tmp_path / "no")) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        assert len([c for c in zk.get_children("/") if c.startswith("f")]) == 20
        zk.stop()


def test_data_log_dir_separate_from_data_dir(tmp_path):
    data, logs = tmp_path / "data", tmp_path / "logs"
    with ZookapterServer(data_dir=str(data), data_log_dir=str(logs)) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        zk.create("/sep", b"x")
        zk.stop()
    assert any(f.startswith("log.") for f in os.listdir(logs / "version-2"))
    assert not any(f.startswith("log.") for f in os.listdir(data / "version-2"))
    assert any(f.startswith("snapshot.") for f in os.listdir(data / "version-2"))
    with ZookapterServer(data_dir=str(data), data_log_dir=str(logs)) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        assert zk.get("/sep")[0] == b"x"
        zk.stop()

"""Both ways across the same dataDir: Apache ZooKeeper 3.8 fills it, zookapter serves the
same tree with the same stats; zookapter fills it, Apache ZooKeeper serves the same tree."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl
from support import dump_server

from zookapter.testing import ZookapterServer

from oracle import ApacheZooKeeper, apache_zookeeper_available

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available(), reason="no Apache ZK")]

SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="


def _fill(hosts: str) -> None:
    zk = KazooClient(hosts=hosts, auth_data=[("digest", "super:test")])
    zk.start()
    zk.create("/app/config", b"v1", makepath=True)
    zk.set("/app/config", b"v2")
    for _ in range(3):
        zk.create("/app/q/item-", b"x", sequence=True, makepath=True)
    zk.delete("/app/q/item-0000000001")
    zk.create("/secret", b"s", acl=[make_digest_acl("alice", "pw", all=True)])
    zk.set_acls("/app/config", [make_digest_acl("bob", "pw", read=True, write=True),
                                make_digest_acl("alice", "pw", all=True)])
    t = zk.transaction()
    t.create("/multi", b"m")
    t.create("/multi/child", b"c")
    t.set_data("/app", b"app")
    t.commit()
    t = zk.transaction()
    t.create("/never")
    t.delete("/nonexistent")
    t.commit()
    zk.create("/big", b"z" * 50000)
    zk.create("/eph", b"e", ephemeral=True)
    # leave the session open: its ephemeral must survive the restart


def _dump(hosts: str) -> dict:
    return dump_server(hosts, acls=True, auth_data=[("digest", "super:test")])


def _compare(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for path in a:
        if path == "/":
            continue  # the root's stat reflects each server's own session bookkeeping
        assert a[path] == b[path], path


def test_zookeeper_datadir_served_by_zookapter(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with ApacheZooKeeper(data_dir=data, extra_jvm_props={
            "zookeeper.DigestAuthenticationProvider.superDigest": SUPER}) as apache:
        _fill(apache.hosts)
        before = _dump(apache.hosts)
    with ZookapterServer(data_dir=str(data), super_digest=SUPER) as z:
        after = _dump(z.hosts)
    _compare(before, after)
    assert after["/eph"][1].ephemeralOwner != 0


def test_zookapter_datadir_served_by_zookeeper(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with ZookapterServer(data_dir=str(data), super_digest=SUPER) as z:
        _fill(z.hosts)
        before = _dump(z.hosts)
    with ApacheZooKeeper(data_dir=data, extra_jvm_props={
            "zookeeper.DigestAuthenticationProvider.superDigest": SUPER}) as apache:
        after = _dump(apache.hosts)
    _compare(before, after)
    assert after["/eph"][1].ephemeralOwner != 0

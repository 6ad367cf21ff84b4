"""Quotas: /zookeeper/quota stats maintained by the server, hard limits enforced with
zookeeper.enforceQuota=true (QuotaExceeded, -125)."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from zookapter.testing import ZookapterServer


def _scenario(hosts: str, root: str) -> list:
    zk = KazooClient(hosts=hosts)
    zk.start()
    try:
        zk.create(f"{root}/a", b"12345", makepath=True)
        qdir = f"/zookeeper/quota{root}"
        zk.create(f"{qdir}/zookeeper_limits", b"count=10,bytes=100", makepath=True)
        zk.create(f"{qdir}/zookeeper_stats", b"count=0,bytes=0")
        seen = [zk.get(f"{qdir}/zookeeper_stats")[0]]
        zk.create(f"{root}/b", b"xy")
        zk.set(f"{root}/a", b"1")
        seen.append(zk.get(f"{qdir}/zookeeper_stats")[0])
        zk.delete(f"{root}/b")
        seen.append(zk.get(f"{qdir}/zookeeper_stats")[0])
        zk.delete(f"{qdir}/zookeeper_limits")
        zk.create(f"{root}/c", b"zzz")
        seen.append(zk.get(f"{qdir}/zookeeper_stats")[0])
        zk.delete(qdir, recursive=True)
        zk.delete(root, recursive=True)
        return seen
    finally:
        zk.stop()


def test_quota_stats_tracked():
    with ZookapterServer() as s:
        assert _scenario(s.hosts, "/q") == [
            b"count=2,bytes=5", b"count=3,bytes=3", b"count=2,bytes=1", b"count=2,bytes=1"]


@pytest.mark.oracle
def test_quota_stats_differential(apache_zk):
    with ZookapterServer() as s:
        assert _scenario(s.hosts, "/qd") == _scenario(apache_zk.hosts, "/qd")


def test_hard_quota_enforced():
    with ZookapterServer(props={"zookeeper.enforceQuota": "true"}) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        zk.create("/hq")
        zk.create("/zookeeper/quota/hq/zookeeper_limits",
                  b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3", makepath=True)
        zk.create("/zookeeper/quota/hq/zookeeper_stats", b"count=0,bytes=0")
        zk.create("/hq/1")
        zk.create("/hq/2")
        with pytest.raises(KazooException) as e:
            zk.create("/hq/3")
        assert type(e.value).__name__ == "QuotaExceededError" or \
            getattr(e.value, "code", None) == -125
        with pytest.raises(KazooException):
            zk.set("/hq/1", b"x" * 11)
        zk.set("/hq/1", b"x" * 10)
        zk.stop()

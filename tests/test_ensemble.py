"""Replicated ensembles of real server processes: zookapter alone, and mixed with Apache
ZooKeeper 3.8 members speaking the same quorum protocol (either kind leading)."""

from __future__ import annotations

import time

import pytest

from zookapter.client import ZooKeeperClient
from zookapter.client.errors import ConnectionLossError, NodeExistsError

from ensemble import Ensemble, wait_for
from oracle import apache_zookeeper_available


def _clients(e: Ensemble, sids: list[int]) -> dict[int, ZooKeeperClient]:
    out = {}
    for sid in sids:
        c = ZooKeeperClient(e.hosts([sid]), timeout=20.0)
        c.start(20)
        out[sid] = c
    return out


def _stop_all(clients: dict[int, ZooKeeperClient]) -> None:
    for c in clients.values():
        try:
            c.close()
        except Exception:
            pass


def _children_everywhere(clients: dict[int, ZooKeeperClient], path: str) -> dict[int, list]:
    out = {}
    for sid, c in clients.items():
        c.sync(path)
        out[sid] = sorted(c.get_children(path))
    return out


def test_zookapter_ensemble_replicates_and_survives_the_leader_crashing() -> None:
    with Ensemble(3, kinds="zzz") as e:
        leader = e.leader()
        assert leader is not None
        clients = _clients(e, [1, 2, 3])
        try:
            for sid, c in clients.items():
                c.ensure_path("/acked")
                for i in range(20):
                    c.create(f"/acked/s{sid}-{i}", b"x")
            seen = _children_everywhere(clients, "/acked")
            assert all(len(v) == 60 for v in seen.values()) and len(set(map(tuple, seen.values()))) == 1

            e.kill(leader)
            new_leader = e.wait_for_quorum(30)
            assert new_leader != leader
            survivors = {s: c for s, c in clients.items() if s != leader}
            for sid, c in survivors.items():
                for i in range(20, 30):
                    for attempt in range(50):  # the client may first have to reconnect
                        try:
                            c.create(f"/acked/s{sid}-{i}", b"y")
                            break
                        except ConnectionLossError:
                            time.sleep(0.1)
                        except NodeExistsError:
                            assert attempt, "only a retried create may find its node"
                            break
            seen = _children_everywhere(survivors, "/acked")
            assert all(len(v) == 80 for v in seen.values())

            e.restart(leader)
            wait_for(lambda: e.mode(leader) == "follower", 30, "the old leader to rejoin",
                     [e.peers[leader]])
            back = _clients(e, [leader])
            try:
                assert _children_everywhere(back, "/acked")[leader] == seen[new_leader]
            finally:
                _stop_all(back)
        finally:
            _stop_all(clients)


def test_sessions_and_ephemerals_are_ensemble_wide() -> None:
    with Ensemble(3, kinds="zzz") as e:
        leader = e.leader()
        follower = next(s for s in (1, 2, 3) if s != leader)
        other = next(s for s in (1, 2, 3) if s not in (leader, follower))
        owner = ZooKeeperClient(e.hosts([follower, other]), timeout=4.0,
                                randomize_hosts=False)
        owner.start(20)
        watcher = _clients(e, [other])[other]
        try:
            owner.create("/eph", b"", ephemeral=True)
            watcher.sync("/")
            stat = watcher.exists("/eph")
            assert stat is not None and stat.ephemeralOwner == owner.session_id
            # the session moves to another member and keeps its ephemeral
            e.kill(follower)
            wait_for(lambda: owner.connected, 20, "the client to move")
            assert owner.exists("/eph") is not None
            # closing the session removes the ephemeral everywhere
            owner.close()
            watcher.sync("/")
            assert watcher.exists("/eph") is None
        finally:
            watcher.close()


@pytest.mark.oracle
@pytest.mark.parametrize("kinds", ["jjz", "zzj", "jzz", "zjj"])
def test_mixed_ensemble_with_apache_zookeeper(kinds: str) -> None:
    """Member 3 wins the first election, so "jjz"/"jzz" run under a zookapter leader and
    "zzj"/"zjj" under a Java one."""
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper not installed")
    e = Ensemble(3, kinds=kinds)
    e.prepare()
    try:
        # Member 3 and one other start first and elect 3; the last one joins that leader.
        e.restart(3)
        e.restart(1)
        assert e.wait_for_quorum(60) == 3
        e.restart(2)
        e.wait_for_mode(2, "follower", 60)
        clients = _clients(e, [1, 2, 3])
        try:
            for sid, c in clients.items():
                c.create(f"/k{sid}", b"v%d" % sid)
                c.create(f"/e{sid}", b"", ephemeral=True)
            seen = _children_everywhere(clients, "/")
            assert all(v == seen[1] for v in seen.values())
            assert {f"k{s}" for s in (1, 2, 3)} <= set(seen[1])
            for sid, c in clients.items():
                data, stat = c.get(f"/k{(sid % 3) + 1}")
                assert data == b"v%d" % ((sid % 3) + 1)
                assert stat.czxid >> 32 == clients[1].get("/k1")[1].czxid >> 32
        finally:
            _stop_all(clients)
    finally:
        e.stop()


@pytest.mark.parametrize("kinds,observers", [("zzz", "z"), ("zzz", "j"), ("jjj", "z")])
def test_observers_receive_every_write_and_forward_their_own(kinds: str, observers: str
                                                             ) -> None:
    if "j" in kinds + observers and not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper not installed")
    with Ensemble(3, kinds=kinds, observers=observers) as e:
        assert e.mode(4) == "observer"
        clients = _clients(e, [1, 2, 3, 4])
        try:
            clients[4].create("/from-observer", b"o")
            clients[1].create("/from-voter", b"v")
            seen = _children_everywhere(clients, "/")
            assert all({"from-observer", "from-voter"} <= set(v) for v in seen.values())
        finally:
            _stop_all(clients)

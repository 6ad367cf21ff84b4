"""The asyncio client against a real 3-server Apache ZooKeeper 3.8 ensemble (tests/ensemble.py).

- Fail-over: the server the client is connected to (the leader, the harder case) is
  SIGKILLed; the client goes SUSPENDED, resumes the same session on another member, its
  ephemeral node survives and its data and child watches still fire.
- Read-only mode (-Dreadonlymode.enabled=true): with two of three servers down the survivor
  serves reads; a read_only=True client gets CONNECTED_RO, reads, and has writes refused with
  NotReadOnlyError (the blocking ZooKeeperClient reports CONNECTED_RO too), while a
  read_only=False client is refused; once the quorum is back the client reaches CONNECTED
  (a new session: the read-only one was provisional) and a watch set in read-only mode
  still fires.
- The read-write search: a lone peer whose quorum never comes (its two partners are
  configured on ports nobody listens on) stays read-only for good, so a client that reaches
  CONNECTED on the healthy ensemble can only have got there by probing with `isro`.

Blocking ensemble operations run in a thread (asyncio.to_thread) so the client's event loop
keeps pinging meanwhile.
"""

from __future__ import annotations

import asyncio
import functools

import pytest
from test_client_support import eventually, unique_path

from zookapter.client import AsyncZooKeeper, ConnectionState, EventType, ZooKeeperClient
from zookapter.client import errors as e
from zookapter.client.rwsearch import is_read_write

from ensemble import ApacheEnsemble
from oracle import apache_zookeeper_available

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available(),
                                 reason="Apache ZooKeeper (java + jars) not available")]

C, RO = ConnectionState.CONNECTED, ConnectionState.CONNECTED_RO
S = ConnectionState.SUSPENDED
TEST_TIMEOUT_S = 90.0
WAIT_S = 30.0  # for any one state change; generous, the machine is shared


def aiotest(fn):
    """asyncio.run with a timeout that leaves room for JVM restarts and an election."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT_S))
    return wrapper


@pytest.fixture
def ensemble():
    """A default-configured ensemble (global sessions only), for the fail-over test."""
    with ApacheEnsemble() as ens:
        yield ens


@pytest.fixture(scope="module")
def ro_ensemble():
    """An ensemble with read-only mode (and the local sessions it needs) enabled."""
    with ApacheEnsemble(read_only=True) as ens:
        yield ens


@pytest.fixture(scope="module")
def lone_ro_peer():
    """Member 1 of an ensemble whose other two members are never started: read-only forever."""
    ens = ApacheEnsemble(read_only=True)
    ens.prepare()
    try:
        ens.restart(1)
        ens.wait_for_mode(1, "read-only", WAIT_S)
        yield ens
    finally:
        ens.stop()


async def _settle(ens: ApacheEnsemble) -> int:
    """Restart every member that is down and wait for a serving quorum; the leader's id."""
    for sid in ens.peers:
        ens.restart(sid)
    return await asyncio.to_thread(ens.wait_for_quorum, WAIT_S * 2)


@aiotest
async def test_failover_keeps_session_ephemeral_and_watches(ensemble):
    leader = ensemble.leader()
    assert leader is not None
    order = [leader, *(sid for sid in ensemble.peers if sid != leader)]
    base = unique_path("failover")
    async with AsyncZooKeeper(ensemble.hosts(order), timeout=10.0,
                              randomize_hosts=False) as zk:
        states: list[ConnectionState] = []
        zk.add_listener(states.append)
        await zk.create(base)
        await zk.create(f"{base}/eph", b"e", ephemeral=True)
        session = zk.session_id
        data_events, child_events = [], []
        await zk.get(base, watch=data_events.append)
        await zk.get_children(base, watch=child_events.append)

        await asyncio.to_thread(ensemble.kill, leader)
        await eventually(lambda: zk.state == S, WAIT_S)
        await eventually(lambda: zk.state == C, WAIT_S)
        assert states[:2] == [S, C] and zk.session_id == session
        assert await zk.exists(f"{base}/eph") is not None

        survivors = [sid for sid in order if sid != leader]
        async with AsyncZooKeeper(ensemble.hosts(survivors)) as other:
            _, stat = await other.get(f"{base}/eph")
            assert stat.ephemeralOwner == session
            await other.set(base, b"changed")
            await other.create(f"{base}/child")
        await eventually(lambda: data_events and child_events, WAIT_S)
        assert [ev.type for ev in data_events] == [EventType.NODE_DATA_CHANGED]
        assert [ev.type for ev in child_events] == [EventType.NODE_CHILDREN_CHANGED]
        assert zk.session_id == session and zk.state == C


@aiotest
async def test_read_only_mode_then_quorum_regained(ro_ensemble):
    ens = ro_ensemble
    await _settle(ens)
    base = unique_path("ro")
    async with AsyncZooKeeper(ens.hosts()) as setup:
        await setup.create(base, b"before")
    survivor, *victims = list(ens.peers)
    for sid in victims:
        await asyncio.to_thread(ens.kill, sid)
    await asyncio.to_thread(ens.wait_for_mode, survivor, "read-only", WAIT_S)

    # A client that does not accept read-only servers is turned away.
    rw_only = AsyncZooKeeper(ens.hosts([survivor]), read_only=False)
    with pytest.raises(e.OperationTimeoutError):
        await rw_only.start(timeout=3.0)

    zk = AsyncZooKeeper(ens.hosts(), timeout=10.0, read_only=True)
    states: list[ConnectionState] = []
    zk.add_listener(states.append)
    await zk.start(timeout=WAIT_S)
    try:
        assert zk.state == RO and zk.connected and zk.connected_read_only
        assert states == [RO]
        fake_session = zk.session_id
        data_events = []
        data, _ = await zk.get(base, watch=data_events.append)
        assert data == b"before"
        assert await zk.get_children("/") != []
        with pytest.raises(e.NotReadOnlyError):
            await zk.set(base, b"no")
        with pytest.raises(e.NotReadOnlyError):
            await zk.create(f"{base}/no")
        with pytest.raises(e.NotReadOnlyError):
            await zk.delete(base)
        txn = zk.transaction()
        txn.create(f"{base}/no")
        with pytest.raises(e.NotReadOnlyError):
            await txn.commit()
        assert zk.state == RO  # a refused write does not disturb the connection

        def blocking_client() -> tuple[ConnectionState, bytes]:
            with ZooKeeperClient(ens.hosts([survivor]), read_only=True) as szk:
                return szk.state, szk.get(base)[0]
        assert await asyncio.to_thread(blocking_client) == (RO, b"before")

        for sid in victims:
            await asyncio.to_thread(ens.restart, sid)
        await eventually(lambda: zk.state == C, WAIT_S * 2)
        assert not zk.connected_read_only and S in states and states[-1] == C
        assert zk.session_id not in (0, fake_session)
        await zk.set(base, b"after")  # writes work again...
        async with AsyncZooKeeper(ens.hosts()) as other:
            await other.set(base, b"by other")
        await eventually(lambda: len(data_events) >= 1, WAIT_S)
        # ...and the watch set in read-only mode moved with the session (our own set above
        # fired it, or the other client's did)
        assert data_events[0].type == EventType.NODE_DATA_CHANGED
    finally:
        await zk.stop()


@aiotest
async def test_read_write_search_moves_the_session(ro_ensemble, lone_ro_peer):
    await _settle(ro_ensemble)
    ro_host = lone_ro_peer.hosts([1])
    rw_sid = next(iter(ro_ensemble.peers))
    assert not await is_read_write("127.0.0.1", lone_ro_peer.ports[1].client)
    assert await is_read_write("127.0.0.1", ro_ensemble.ports[rw_sid].client)

    base = unique_path("seek")
    async with AsyncZooKeeper(ro_ensemble.hosts()) as setup:
        await setup.create(base, b"rw data")
    # The read-only peer first in line, so the client lands there first.
    hosts = f"{ro_host},{ro_ensemble.hosts()}"
    async with AsyncZooKeeper(hosts, timeout=10.0, read_only=True,
                              randomize_hosts=False) as zk:
        states: list[ConnectionState] = [zk.state]
        zk.add_listener(states.append)
        assert states[0] in (RO, C)
        await eventually(lambda: zk.state == C, WAIT_S)
        assert states[0] == RO and states[-2:] == [S, C]
        assert lone_ro_peer.mode(1) == "read-only"  # still up: the client chose to leave
        data, _ = await zk.get(base)
        assert data == b"rw data"
        await zk.create(f"{base}/eph", ephemeral=True)  # a real session now

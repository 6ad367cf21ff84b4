"""Read-only mode of zookapter ensemble members (-Dreadonlymode.enabled=true), the way
tests/test_client_ensemble.py checks it against Apache ZooKeeper 3.8.

With two of three members down, the survivor stays LOOKING; after the grace period
(max(2 s, tickTime)) it serves read-only:

- a read_only=True client (ours, async and blocking, and kazoo) connects with a local
  session (CONNECTED_RO), reads and sets watches; every write, multi and sync is refused
  with NotReadOnly and the connection stays up;
- a client that does not accept read-only servers is disconnected without a session;
- a session created through the quorum is not taken over: its client stays SUSPENDED until
  the quorum is back, then resumes it;
- `isro` answers "ro" and `srvr` says "Mode: read-only".

When the others come back the survivor rejoins the quorum, the read-only server and its
connections go away, and the read-only client reaches CONNECTED with a real session (the
read-only one was provisional); a watch set in read-only mode still fires.
"""

from __future__ import annotations

import asyncio
import functools

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState
from test_client_support import eventually, unique_path

from zookapter.client import AsyncZooKeeper, ConnectionState, EventType, ZooKeeperClient
from zookapter.client import errors as e

from ensemble import Ensemble
from oracle import four_letter_word

C, RO = ConnectionState.CONNECTED, ConnectionState.CONNECTED_RO
S = ConnectionState.SUSPENDED
TEST_TIMEOUT_S = 90.0
WAIT_S = 30.0  # for any one state change; generous, the machine is shared


def aiotest(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT_S))
    return wrapper


@pytest.fixture(scope="module")
def ro_ensemble():
    with Ensemble(3, kinds="zzz", read_only=True) as ens:
        yield ens


async def _settle(ens: Ensemble) -> int:
    for sid in ens.peers:
        ens.restart(sid)
    return await asyncio.to_thread(ens.wait_for_quorum, WAIT_S * 2)


async def _isolate(ens: Ensemble, survivor: int) -> None:
    for sid in ens.peers:
        if sid != survivor:
            await asyncio.to_thread(ens.kill, sid)
    await asyncio.to_thread(ens.wait_for_mode, survivor, "read-only", WAIT_S)


@aiotest
async def test_read_only_mode_then_quorum_regained(ro_ensemble):
    ens = ro_ensemble
    await _settle(ens)
    survivor = 1
    base = unique_path("ro")
    async with AsyncZooKeeper(ens.hosts()) as setup:
        await setup.create(base, b"before")
    # a global session on the survivor, made while the quorum serves
    keeper = AsyncZooKeeper(ens.hosts([survivor]), timeout=40.0, read_only=True)
    await keeper.start(timeout=WAIT_S)
    keeper_session = keeper.session_id
    keeper_states: list[ConnectionState] = []
    keeper.add_listener(keeper_states.append)
    try:
        await _isolate(ens, survivor)
        port = ens.ports[survivor].client
        assert four_letter_word("127.0.0.1", port, "isro") == "ro"

        rw_only = AsyncZooKeeper(ens.hosts([survivor]), read_only=False)
        with pytest.raises(e.OperationTimeoutError):
            await rw_only.start(timeout=3.0)

        zk = AsyncZooKeeper(ens.hosts(), timeout=10.0, read_only=True)
        states: list[ConnectionState] = []
        zk.add_listener(states.append)
        await zk.start(timeout=WAIT_S)
        try:
            assert zk.state == RO and zk.connected_read_only and states == [RO]
            provisional = zk.session_id
            data_events = []
            data, _ = await zk.get(base, watch=data_events.append)
            assert data == b"before"
            assert "zookeeper" in await zk.get_children("/")
            for write in (zk.set(base, b"no"), zk.create(f"{base}/no"), zk.delete(base),
                          zk.sync(base)):
                with pytest.raises(e.NotReadOnlyError):
                    await write
            txn = zk.transaction()
            txn.create(f"{base}/no")
            with pytest.raises(e.NotReadOnlyError):
                await txn.commit()
            assert zk.state == RO  # refused writes leave the connection up

            def blocking_client() -> tuple[ConnectionState, bytes]:
                with ZooKeeperClient(ens.hosts([survivor]), read_only=True) as szk:
                    return szk.state, szk.get(base)[0]
            assert await asyncio.to_thread(blocking_client) == (RO, b"before")
            # the quorum's session was not taken over by the read-only server
            assert keeper.state == S and keeper.session_id == keeper_session

            for sid in ens.peers:
                await asyncio.to_thread(ens.restart, sid)
            await eventually(lambda: zk.state == C, WAIT_S * 2)
            assert not zk.connected_read_only and S in states and states[-1] == C
            assert zk.session_id not in (0, provisional)
            await zk.set(base, b"after")  # writes work again, and the watch fired
            await eventually(lambda: data_events, WAIT_S)
            assert data_events[0].type == EventType.NODE_DATA_CHANGED
            await eventually(lambda: keeper.state == C, WAIT_S)
            assert keeper.session_id == keeper_session and RO not in keeper_states
            assert four_letter_word("127.0.0.1", port, "isro") == "rw"
        finally:
            await zk.stop()
    finally:
        await keeper.stop()


def test_kazoo_read_only_client(ro_ensemble):
    ens = ro_ensemble
    asyncio.run(_settle(ens))
    base = unique_path("kazoo-ro")
    with ZooKeeperClient(ens.hosts()) as setup:
        setup.create(base, b"kazoo")
    asyncio.run(_isolate(ens, 2))
    kz = KazooClient(hosts=ens.hosts([2]), read_only=True, timeout=10.0)
    kz.start(timeout=WAIT_S)
    try:
        assert kz.client_state == KeeperState.CONNECTED_RO
        assert kz.get(base)[0] == b"kazoo"
        with pytest.raises(NotReadOnlyCallError):
            kz.set(base, b"no")
        with pytest.raises(NotReadOnlyCallError):
            kz.create(f"{base}/no")
        assert kz.client_state == KeeperState.CONNECTED_RO
    finally:
        kz.stop()
        kz.close()

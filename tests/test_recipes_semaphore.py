"""The Semaphore recipe against zookapter and Apache ZooKeeper: never more than max_leases
holders among many sessions, FIFO hand-over, timeouts and non-blocking attempts leave no
lease behind, an expired holder's lease goes to the next waiter, and kazoo's Semaphore shares
the leases on the same path.
"""

from __future__ import annotations

import asyncio

import pytest
from recipes_support import (
    ExpirableSession,
    aiotest,
    eventually,
    eventually_async,
    has_children,
    kazoo_client,
    sessions,
    unique_path,
)

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.recipes.lock import LockTimeout
from zookapter.recipes.semaphore import Semaphore, SyncSemaphore


@aiotest
async def test_max_leases_never_exceeded_among_sessions(zk_server):
    path = unique_path("sem")
    holding: list[int] = []
    peak = 0
    async with sessions(zk_server.hosts, 8) as zks:
        async def worker(i: int) -> None:
            nonlocal peak
            sem = Semaphore(zks[i], path, f"s{i}", max_leases=3)
            for _ in range(2):
                async with sem:
                    holding.append(i)
                    peak = max(peak, len(holding))
                    assert len(holding) <= 3, holding
                    assert len(await sem.lease_holders()) <= 3
                    await asyncio.sleep(0.02)
                    holding.remove(i)
        await asyncio.gather(*(worker(i) for i in range(8)))
        assert 1 <= peak <= 3
        assert await zks[0].get_children(path) == []
        assert (await zks[0].get(path))[0] == b"3"


@aiotest
async def test_leases_run_out_and_pass_on_in_order(zk_server):
    path = unique_path("sem")
    async with sessions(zk_server.hosts, 5) as zks:
        sems = [Semaphore(zk, path, f"s{i}", max_leases=2) for i, zk in enumerate(zks)]
        assert await sems[0].acquire() and await sems[1].acquire()
        assert sorted(await sems[0].lease_holders()) == ["s0", "s1"]
        assert not await sems[2].acquire(blocking=False)
        with pytest.raises(LockTimeout):
            await sems[2].acquire(timeout=0.3)
        order: list[int] = []

        async def wait(i: int) -> None:
            await sems[i].acquire()
            order.append(i)

        gate = sems[0].lock_path
        w3 = asyncio.ensure_future(wait(3))  # s3 holds the gate and watches the leases
        await eventually_async(lambda: has_children(zks[0], gate, 1))
        w4 = asyncio.ensure_future(wait(4))  # s4 queues for the gate behind s3
        await eventually_async(lambda: has_children(zks[0], gate, 2))
        await asyncio.sleep(0.1)
        assert not w3.done() and not w4.done()
        await sems[0].release()
        await asyncio.wait_for(w3, 10)
        await asyncio.sleep(0.1)
        assert not w4.done()
        await sems[1].release()
        await asyncio.wait_for(w4, 10)
        assert order == [3, 4]
        assert sorted(await sems[0].lease_holders()) == ["s3", "s4"]
        # the timed-out and non-blocking attempts left neither a lease nor a gate node
        assert len(await zks[0].get_children(path)) == 2
        assert await zks[0].get_children(sems[0].lock_path) == []
        for s in sems[3:]:
            assert await s.release()


@aiotest
async def test_expired_holder_loses_its_lease_to_the_waiter(zk_server):
    path = unique_path("sem")
    async with ExpirableSession(zk_server) as expirable, AsyncZooKeeper(zk_server.hosts) as b:
        holder, waiter = Semaphore(expirable.zk, path, "a"), Semaphore(b, path, "b")
        assert await holder.acquire()
        pending = asyncio.ensure_future(waiter.acquire())
        await asyncio.sleep(0.2)
        assert not pending.done()
        await expirable.expire()
        await eventually(lambda: not holder.is_acquired)
        assert await asyncio.wait_for(pending, 10)
        assert await holder.lease_holders() == ["b"]
        assert not await holder.release()
        await waiter.release()


@aiotest
async def test_kazoo_semaphore_shares_the_leases(zk_server):
    path = unique_path("sem")
    with kazoo_client(zk_server.hosts) as kz:
        async with sessions(zk_server.hosts, 2) as (a, b):
            theirs = kz.Semaphore(path, "kazoo", max_leases=2)
            assert await asyncio.to_thread(theirs.acquire)
            ours = Semaphore(a, path, "ours", max_leases=2)
            assert await ours.acquire()
            assert sorted(await asyncio.to_thread(theirs.lease_holders)) == ["kazoo", "ours"]
            third = Semaphore(b, path, "third", max_leases=2)
            assert not await third.acquire(blocking=False)
            assert not await asyncio.to_thread(
                kz.Semaphore(path, "k2", max_leases=2).acquire, blocking=False)

            pending = asyncio.ensure_future(third.acquire())
            await asyncio.sleep(0.2)
            assert not pending.done()
            await asyncio.to_thread(theirs.release)
            assert await asyncio.wait_for(pending, 10)

            kazoo_waits = asyncio.ensure_future(asyncio.to_thread(theirs.acquire))
            await asyncio.sleep(0.2)
            assert not kazoo_waits.done()
            await ours.release()
            assert await asyncio.wait_for(kazoo_waits, 10)
            assert sorted(await third.lease_holders()) == ["kazoo", "third"]
            await asyncio.to_thread(theirs.release)
            await third.release()

            # both sides refuse a different limit than the one stored on the node
            with pytest.raises(ValueError):
                await Semaphore(a, path, "x", max_leases=3).acquire()
            with pytest.raises(ValueError):
                await asyncio.to_thread(kz.Semaphore(path, "y", max_leases=5).acquire)


def test_sync_semaphore(zk_server):
    path = unique_path("sem")
    with ZooKeeperClient(zk_server.hosts) as c1, ZooKeeperClient(zk_server.hosts) as c2:
        with SyncSemaphore(c1, path, "one", max_leases=1) as sem:
            assert sem.is_acquired
            other = SyncSemaphore(c2, path, "two", max_leases=1)
            assert not other.acquire(blocking=False)
            with pytest.raises(LockTimeout):
                other.acquire(timeout=0.2)
            assert sem.lease_holders() == ["one"]
        assert other.acquire(timeout=10) and other.release()

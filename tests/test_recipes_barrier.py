"""Barrier and DoubleBarrier against both servers: waiters in separate sessions released
together and never early, timeouts, connection loss and session expiry while waiting, the
blocking twins, and barriers shared with kazoo's recipes."""

from __future__ import annotations

import asyncio
import threading
import time

from recipes_support import (
    ExpirableSession,
    aiotest,
    eventually,
    kazoo_client,
    result_of,
    sessions,
    spawn,
    start_proxy,
    sync_client,
    unique_path,
)

from zookapter.client import AsyncZooKeeper, NoNodeError
from zookapter.recipes.barrier import Barrier, DoubleBarrier, SyncBarrier, SyncDoubleBarrier


async def children(zk: AsyncZooKeeper, path: str) -> list[str]:
    try:
        return await zk.get_children(path)
    except NoNodeError:
        return []


async def timed(aw) -> tuple[object, float]:
    result = await aw
    return result, time.monotonic()


@aiotest
async def test_barrier_releases_every_waiter_when_removed(zk_server):
    path = unique_path("barrier")
    async with sessions(zk_server.hosts, 7) as zks:
        barrier = Barrier(zks[0], path)
        assert await barrier.wait(0) is True  # no barrier: nothing to wait for
        await barrier.create()
        waiters = [asyncio.ensure_future(timed(Barrier(zk, path).wait())) for zk in zks[1:]]
        assert await Barrier(zks[1], path).wait(0.3) is False
        assert not any(w.done() for w in waiters)
        removed_at = time.monotonic()
        assert await barrier.remove() is True
        released = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        assert all(ok is True and at >= removed_at for ok, at in released)
        assert await barrier.remove() is False


@aiotest
async def test_barrier_waiter_survives_connection_loss(zk_server):
    path = unique_path("barrier-loss")
    proxy = start_proxy(zk_server)
    try:
        async with AsyncZooKeeper(zk_server.hosts) as direct, \
                AsyncZooKeeper(proxy.hosts, timeout=10.0) as cut_off:
            await Barrier(direct, path).create()
            waiter = asyncio.ensure_future(Barrier(cut_off, path).wait(20))
            await asyncio.sleep(0.2)
            proxy.cut()
            await eventually(lambda: not cut_off.connected)
            await Barrier(direct, path).remove()
            await asyncio.sleep(0.3)
            assert not waiter.done()
            proxy.heal()
            assert await asyncio.wait_for(waiter, 15) is True
    finally:
        proxy.stop()


@aiotest
async def test_double_barrier_enters_and_leaves_together(zk_server):
    path = unique_path("double")
    n = 5
    async with sessions(zk_server.hosts, n) as zks:
        barriers = [DoubleBarrier(zk, path, n, f"p{i}") for i, zk in enumerate(zks)]
        entering = [asyncio.ensure_future(timed(b.enter())) for b in barriers[:-1]]
        while len(await children(zks[0], path)) < n - 1:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert not any(e.done() for e in entering)
        last_in = time.monotonic()
        entered = await asyncio.wait_for(
            asyncio.gather(*entering, timed(barriers[-1].enter())), 10)
        assert all(ok is True and at >= last_in for ok, at in entered)
        assert all(b.participating for b in barriers)
        data = sorted([(await zks[0].get(f"{path}/{b.node_name}"))[0] for b in barriers])
        assert data == [f"p{i}".encode() for i in range(n)]

        leaving = [asyncio.ensure_future(timed(b.leave())) for b in barriers[1:]]
        await asyncio.sleep(0.3)
        assert not any(x.done() for x in leaving)
        last_out = time.monotonic()
        left = await asyncio.wait_for(asyncio.gather(*leaving, timed(barriers[0].leave())), 10)
        assert all(ok is True and at >= last_out for ok, at in left)
        assert await zks[0].get_children(path) == []
        assert not any(b.participating for b in barriers)


@aiotest
async def test_double_barrier_across_processes(zk_server):
    """Three processes and two sessions: nobody is through a phase before everybody came to
    it (the times are CLOCK_MONOTONIC, the same in every process)."""
    path = unique_path("double-procs")
    procs = [await spawn("double", zk_server.hosts, path, 5, f"proc{i}") for i in range(3)]
    async with sessions(zk_server.hosts, 2) as zks:
        async def participant(zk: AsyncZooKeeper, who: str) -> list[float]:
            barrier = DoubleBarrier(zk, path, 5, who)
            times = [time.monotonic()]
            assert await barrier.enter(30)
            times += [time.monotonic(), time.monotonic()]
            assert await barrier.leave(30)
            return times + [time.monotonic()]

        local = await asyncio.gather(*(participant(zk, f"s{i}") for i, zk in enumerate(zks)))
        times = list(local) + [await result_of(p) for p in procs]
    enter_called, entered, leave_called, left = zip(*times, strict=True)
    assert min(entered) >= max(enter_called)
    assert min(left) >= max(leave_called)


@aiotest
async def test_double_barrier_timeout_and_expiry_while_entering(zk_server):
    path = unique_path("double-expiry")
    async with ExpirableSession(zk_server) as victim, \
            AsyncZooKeeper(zk_server.hosts) as zk_b:
        zk_a = victim.zk
        lonely = DoubleBarrier(zk_a, path, 2, "lonely")
        assert await lonely.enter(0.3) is False
        assert await zk_a.get_children(path) == []

        a = DoubleBarrier(zk_a, path, 2, "a")
        entering = asyncio.ensure_future(a.enter(30))
        while await children(zk_b, path) == []:
            await asyncio.sleep(0.02)
        await victim.expire()
        # the waiting participant is back with a node of its new session
        await eventually(lambda: a._node_session == zk_a.session_id)
        stat = await zk_b.exists(a.create_path)
        assert stat is not None and stat.ephemeralOwner == zk_a.session_id
        b = DoubleBarrier(zk_b, path, 2, "b")
        assert await asyncio.wait_for(asyncio.gather(entering, b.enter(10)), 15) == [True, True]
        assert await asyncio.wait_for(asyncio.gather(a.leave(10), b.leave(10)), 15) == [
            True, True]


def test_blocking_twins_share_barriers_with_kazoo(zk_server):
    path = unique_path("kazoo-barrier")
    with kazoo_client(zk_server.hosts) as kz, sync_client(zk_server.hosts) as zk:
        # kazoo waits on our barrier, we wait on kazoo's
        ours = SyncBarrier(zk, path)
        ours.create()
        released: list[bool] = []
        t = threading.Thread(target=lambda: released.append(kz.Barrier(path).wait(10)))
        t.start()
        time.sleep(0.2)
        assert released == []
        assert ours.remove() is True
        t.join(10)
        assert released == [True]
        kz.Barrier(path).create()
        assert ours.wait(0.2) is False
        kz.Barrier(path).remove()
        assert ours.wait(5) is True

        # a double barrier of three: kazoo and two of ours
        dpath = f"{path}-double"
        kz_double = kz.DoubleBarrier(dpath, 3, "kazoo")
        with sync_client(zk_server.hosts) as zk2:
            mine = [SyncDoubleBarrier(zk, dpath, 3, "z1"), SyncDoubleBarrier(zk2, dpath, 3, "z2")]
            log: list[str] = []
            lock = threading.Lock()

            def run(name: str, enter, leave) -> None:
                enter()
                with lock:
                    log.append(f"in:{name}")
                leave()
                with lock:
                    log.append(f"out:{name}")

            threads = [threading.Thread(target=run, args=("kazoo", kz_double.enter,
                                                           kz_double.leave))]
            threads += [threading.Thread(target=run, args=(f"z{i}", b.enter, b.leave))
                        for i, b in enumerate(mine)]
            for t in threads[:2]:
                t.start()
            time.sleep(0.3)
            assert log == []
            threads[2].start()
            for t in threads:
                t.join(20)
            assert sorted(log[:3]) == ["in:kazoo", "in:z0", "in:z1"]
            assert sorted(log[3:]) == ["out:kazoo", "out:z0", "out:z1"]
            assert zk.get_children(dpath) == []

"""Queue and LockingQueue against both servers: priority and FIFO order, producers and
consumers in separate processes and sessions with nothing lost or duplicated, a taken item
coming back when its taker's session expires, a consume whose reply is lost, the blocking
twins, and queues shared with kazoo's recipes."""

from __future__ import annotations

import asyncio
from collections import Counter as Multiset

from recipes_support import (
    ExpirableSession,
    ReplyDroppingProxy,
    aiotest,
    kazoo_client,
    result_of,
    sessions,
    slow,
    spawn,
    start_proxy,
    sync_client,
    unique_path,
)

from zookapter.client import AsyncZooKeeper, NoNodeError
from zookapter.recipes.queue import LockingQueue, Queue, SyncLockingQueue, SyncQueue

STOP = b"STOP"


def assert_fifo_per_producer(items: list[str]) -> None:
    """Within one consumer's items, each producer's items come in the order put."""
    last: dict[str, int] = {}
    for item in items:
        producer, index = item.rsplit(":", 1)
        assert int(index) > last.get(producer, -1), f"{item} after {last[producer]}"
        last[producer] = int(index)


@aiotest
async def test_priority_then_fifo_order(zk_server):
    path = unique_path("queue")
    async with sessions(zk_server.hosts, 2) as (zk, other):
        q = Queue(zk, path)
        assert await q.get() is None and await q.length() == 0
        for value, priority in [(b"a", 100), (b"b", 5), (b"c", 100), (b"d", 999), (b"e", 5)]:
            await q.put(value, priority)
        assert await q.length() == 5
        assert [await q.get() for _ in range(6)] == [b"b", b"e", b"a", b"c", b"d", None]
        assert await q.get(block=True, timeout=0.2) is None
        waiting = asyncio.ensure_future(q.get(block=True, timeout=10))
        await asyncio.sleep(0.1)
        await Queue(other, path).put(b"late")
        assert await asyncio.wait_for(waiting, 10) == b"late"

        lq = LockingQueue(zk, f"{path}-locking")
        await lq.put_all([b"x", b"y"], priority=50)
        await lq.put(b"first", priority=1)
        assert await lq.length() == 3
        taken = []
        for _ in range(3):
            taken.append(await lq.get(5))
            assert await lq.get(5) == taken[-1]  # still the one we hold
            assert await lq.consume()
        assert taken == [b"first", b"x", b"y"]
        assert await lq.get(0.2) is None and await lq.consume() is False


async def run_queue_traffic(hosts: str, path: str, kind: str) -> tuple[list[str], list[list[str]]]:
    """Two producer processes and one in-process producer, two consumer processes and two
    in-process consumers; each consumer stops at its STOP item. Returns (produced, consumed
    per consumer)."""
    per_producer = 25
    producers = [await spawn("produce", hosts, path, f"p{i}", per_producer, kind)
                 for i in range(2)]
    consumers = [await spawn("consume", hosts, path, kind) for _ in range(2)]
    async with sessions(hosts, 3) as (zk_p, zk_c1, zk_c2):
        make = Queue if kind == "queue" else LockingQueue

        async def consume(zk: AsyncZooKeeper) -> list[str]:
            q, items = make(zk, path), []
            while True:
                item = await (q.get(block=True, timeout=30) if kind == "queue"
                              else q.get(30))
                assert item is not None, "consumer starved"
                if kind != "queue":
                    assert await q.consume()
                if item == STOP:
                    return items
                items.append(item.decode())

        local = [asyncio.ensure_future(consume(zk)) for zk in (zk_c1, zk_c2)]
        producer = make(zk_p, path)
        for i in range(per_producer):
            await producer.put(f"local:{i}".encode())
        for p in producers:
            assert await result_of(p) == per_producer
        for _ in range(4):  # after every item: 999 is the lowest priority
            await producer.put(STOP, priority=999)
        consumed = [await result_of(c) for c in consumers]
        consumed += [await asyncio.wait_for(t, 30) for t in local]
    produced = [f"{who}:{i}" for who in ("p0", "p1", "local") for i in range(per_producer)]
    return produced, consumed


@slow
async def test_queue_producers_and_consumers_in_processes(zk_server):
    produced, consumed = await run_queue_traffic(zk_server.hosts, unique_path("q"), "queue")
    assert Multiset(x for c in consumed for x in c) == Multiset(produced)
    for items in consumed:
        assert_fifo_per_producer(items)


@slow
async def test_locking_queue_producers_and_consumers_in_processes(zk_server):
    path = unique_path("lq")
    produced, consumed = await run_queue_traffic(zk_server.hosts, path, "locking")
    assert Multiset(x for c in consumed for x in c) == Multiset(produced)
    for items in consumed:
        assert_fifo_per_producer(items)
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        assert await zk.get_children(f"{path}/entries") == []
        assert await zk.get_children(f"{path}/taken") == []


@aiotest
async def test_taken_item_returns_when_the_takers_session_expires(zk_server):
    path = unique_path("lq-expiry")
    async with ExpirableSession(zk_server) as victim, \
            AsyncZooKeeper(zk_server.hosts) as zk_b:
        a, b = LockingQueue(victim.zk, path), LockingQueue(zk_b, path)
        await a.put(b"job")
        assert await a.get(5) == b"job" and await a.holds_lock()
        assert await b.get(0.3) is None  # taken
        waiting = asyncio.ensure_future(b.get(20))
        await victim.expire()
        assert await asyncio.wait_for(waiting, 20) == b"job"
        assert not await a.holds_lock()
        assert await a.consume() is False  # it is B's now
        assert await b.consume() is True
        assert await a.length() == 0

        # release() gives an item back at once
        await a.put(b"again")
        assert await a.get(5) == b"again"
        assert await a.release() is True and await a.release() is False
        assert await b.get(5) == b"again" and await b.consume()


@aiotest
async def test_cancelled_get_leaves_no_item_taken(zk_server):
    path = unique_path("lq-cancel")
    async with sessions(zk_server.hosts, 2) as (zk_a, zk_b):
        await LockingQueue(zk_a, path).put_all([b"only"])
        for steps in range(30):  # cancel at 0, 0.5, 1, ... ms: somewhere the lock is in flight
            taker = LockingQueue(zk_a, path)
            get = asyncio.ensure_future(taker.get(5))
            await asyncio.sleep(steps * 0.0005)
            get.cancel()
            done = await asyncio.gather(get, return_exceptions=True)
            if done[0] == b"only":  # it got there first: give it back
                assert await taker.release()
        other = LockingQueue(zk_b, path)
        assert await other.get(10) == b"only" and await other.consume()


@aiotest
async def test_consume_whose_reply_is_lost_applies_once(zk_server):
    path = unique_path("lq-lost")
    proxy = start_proxy(zk_server, ReplyDroppingProxy)
    try:
        async with AsyncZooKeeper(zk_server.hosts) as direct, \
                AsyncZooKeeper(proxy.hosts, timeout=10.0) as zk:
            lq = LockingQueue(zk, path)
            await lq.put_all([b"one", b"two"])
            assert await lq.get(5) == b"one"
            proxy.drop_replies = True
            consuming = asyncio.ensure_future(lq.consume())
            await eventually_gone(direct, f"{path}/entries", "one")
            proxy.cut()
            proxy.drop_replies = False
            proxy.heal()
            assert await asyncio.wait_for(consuming, 20) is True
            assert await lq.get(5) == b"two" and await lq.consume()
            assert await lq.length() == 0
    finally:
        proxy.stop()


async def eventually_gone(zk: AsyncZooKeeper, path: str, value: str) -> None:
    """Wait until no child of `path` holds `value`."""
    for _ in range(500):
        values = []
        for child in await zk.get_children(path):
            try:
                values.append((await zk.get(f"{path}/{child}"))[0])
            except NoNodeError:
                pass
        if value.encode() not in values:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{value} still queued")


def test_blocking_twins_share_queues_with_kazoo(zk_server):
    path = unique_path("kazoo-queue")
    with kazoo_client(zk_server.hosts) as kz, sync_client(zk_server.hosts) as zk:
        ours, theirs = SyncQueue(zk, path), kz.Queue(path)
        theirs.put(b"k1")
        theirs.put(b"k0", priority=10)
        ours.put(b"z1")
        ours.put(b"z0", priority=10)
        assert len(ours) == len(theirs) == 4
        assert [ours.get(), theirs.get(), ours.get(), theirs.get()] == [
            b"k0", b"z0", b"k1", b"z1"]
        assert ours.get() is None and ours.get(block=True, timeout=0.1) is None

        lpath = f"{path}-locking"
        ours_l, theirs_l = SyncLockingQueue(zk, lpath), kz.LockingQueue(lpath)
        theirs_l.put(b"from-kazoo", priority=1)
        ours_l.put(b"from-zookapter", priority=2)
        assert theirs_l.get(5) == b"from-kazoo"  # kazoo holds it: we get the next one
        assert ours_l.get(5) == b"from-zookapter"
        assert ours_l.holds_lock() and theirs_l.holds_lock()
        assert theirs_l.release()
        assert ours_l.consume()
        assert ours_l.get(5) == b"from-kazoo" and ours_l.consume()
        assert theirs_l.get(0.2) is None
        assert len(ours_l) == len(theirs_l) == 0

"""The ReadWriteLock recipe against zookapter and Apache ZooKeeper: readers share, a writer
excludes everyone, a reader queued behind a writer waits (no writer starvation), each waiter
watches only the node that blocks it, an expired reader lets the writer in, and kazoo's
ReadLock / WriteLock / Lock queue together with ours on the same path.
"""

from __future__ import annotations

import asyncio

from recipes_support import (
    ExpirableSession,
    aiotest,
    eventually,
    kazoo_client,
    sessions,
    unique_path,
    watches_by_session,
)

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.recipes.lock import Lock
from zookapter.recipes.rwlock import ReadWriteLock, SyncReadWriteLock


@aiotest
async def test_readers_share_writer_excludes_in_queue_order(zk_server):
    path = unique_path("rw")
    async with sessions(zk_server.hosts, 4) as zks:
        r1 = ReadWriteLock(zks[0], path, "r1").read_lock
        r2 = ReadWriteLock(zks[1], path, "r2").read_lock
        w = ReadWriteLock(zks[2], path, "w").write_lock
        r3 = ReadWriteLock(zks[3], path, "r3").read_lock
        t1, t2 = await r1.acquire(), await r2.acquire()
        assert r1.is_acquired and r2.is_acquired
        pw = asyncio.ensure_future(w.acquire())
        await eventually(lambda: w.node is not None)
        pr3 = asyncio.ensure_future(r3.acquire())
        await eventually(lambda: r3.node is not None)
        assert await ReadWriteLock(zks[0], path).contenders() == ["r1", "r2", "w", "r3"]

        def watched() -> bool:  # the writer waits for the nearest reader, r3 for the writer
            table = watches_by_session(zk_server.hosts)
            return (table.get(zks[2].session_id) == {f"{path}/{r2.node}"}
                    and table.get(zks[3].session_id) == {f"{path}/{w.node}"})
        await eventually(watched)

        await r1.release()
        await asyncio.sleep(0.1)
        assert not pw.done() and not pr3.done()
        await r2.release()
        tw = await asyncio.wait_for(pw, 10)
        assert tw > max(t1, t2)
        await asyncio.sleep(0.1)
        assert not pr3.done()  # the reader that queued after the writer waits for it
        await w.release()
        assert await asyncio.wait_for(pr3, 10) > tw
        await r3.release()


@aiotest
async def test_expired_reader_lets_the_writer_in(zk_server):
    path = unique_path("rw")
    async with ExpirableSession(zk_server) as expirable, AsyncZooKeeper(zk_server.hosts) as b:
        reader = ReadWriteLock(expirable.zk, path, "r").read_lock
        writer = ReadWriteLock(b, path, "w").write_lock
        await reader.acquire()
        pending = asyncio.ensure_future(writer.acquire())
        await eventually(lambda: writer.node is not None)
        await expirable.expire()
        await eventually(lambda: not reader.is_acquired)
        await asyncio.wait_for(pending, 10)
        assert await reader.acquire(blocking=False) is None
        await writer.release()


@aiotest
async def test_kazoo_read_write_locks_queue_with_ours(zk_server):
    path = unique_path("rw")
    with kazoo_client(zk_server.hosts) as kz:
        async with sessions(zk_server.hosts, 2) as (a, b):
            ours_r = ReadWriteLock(a, path, "ours-r").read_lock
            ours_w = ReadWriteLock(b, path, "ours-w").write_lock
            kazoo_r = kz.ReadLock(path, "kazoo-r")
            assert await asyncio.to_thread(kazoo_r.acquire)
            assert await ours_r.acquire(blocking=False) is not None  # readers share
            assert await ours_w.acquire(blocking=False) is None
            assert not await asyncio.to_thread(kz.WriteLock(path).acquire, blocking=False)

            pw = asyncio.ensure_future(ours_w.acquire())
            await eventually(lambda: ours_w.node is not None)
            assert await ours_w.contenders() == ["kazoo-r", "ours-r", "ours-w"]
            assert await asyncio.to_thread(kazoo_r.contenders) == [
                "kazoo-r", "ours-r", "ours-w"]
            await asyncio.to_thread(kazoo_r.release)
            await ours_r.release()
            await asyncio.wait_for(pw, 10)

            # our writer excludes kazoo's readers, writers and plain locks
            assert not await asyncio.to_thread(kz.ReadLock(path).acquire, blocking=False)
            assert not await asyncio.to_thread(kz.Lock(path).acquire, blocking=False)
            kazoo_w = kz.WriteLock(path, "kazoo-w")
            kw = asyncio.ensure_future(asyncio.to_thread(kazoo_w.acquire))
            await eventually(lambda: kazoo_w.node is not None)
            await asyncio.sleep(0.1)
            assert not kw.done()
            await ours_w.release()
            assert await asyncio.wait_for(kw, 10)

            # and kazoo's writer excludes our reader, which gets in once it is gone
            assert await ours_r.acquire(blocking=False) is None
            pr = asyncio.ensure_future(ours_r.acquire())
            await eventually(lambda: ours_r.node is not None)
            await asyncio.to_thread(kazoo_w.release)
            await asyncio.wait_for(pr, 10)
            await ours_r.release()


@aiotest
async def test_plain_lock_ignores_readers_as_kazoo_does(zk_server):
    path = unique_path("rw")
    async with sessions(zk_server.hosts, 2) as (a, b):
        reader = ReadWriteLock(a, path, "r").read_lock
        await reader.acquire()
        plain = Lock(b, path, "plain")
        assert await plain.acquire(blocking=False) is not None
        assert await plain.contenders() == ["plain"]  # a Lock sees no readers
        # a writer waits for both
        assert await ReadWriteLock(b, path).write_lock.acquire(blocking=False) is None
        await plain.release()
        await reader.release()


def test_sync_read_write_lock(zk_server):
    path = unique_path("rw")
    with ZooKeeperClient(zk_server.hosts) as c1, ZooKeeperClient(zk_server.hosts) as c2:
        one, two = SyncReadWriteLock(c1, path, "one"), SyncReadWriteLock(c2, path, "two")
        with one.read_lock as token:
            assert two.read_lock.acquire(timeout=10) > token
            assert two.write_lock.acquire(blocking=False) is None
            assert one.contenders() == ["one", "two"]
            two.read_lock.release()
        with two.write_lock:
            assert one.read_lock.acquire(blocking=False) is None
        assert not two.write_lock.is_acquired

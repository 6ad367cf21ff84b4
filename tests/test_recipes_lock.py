"""The Lock recipe against zookapter and Apache ZooKeeper, over real TCP:

- mutual exclusion among 10 sessions and among 4 processes hammering a counter znode;
- FIFO hand-over, each waiter watching only its predecessor (the server's `wchc` table);
- fencing tokens grow with every acquisition, and a store keeping the highest token refuses
  a stale holder's write;
- a holder whose session expires stops believing it holds the lock, waiters move up and
  nobody is stranded; a holder keeps the lock across a connection cut and a server restart;
- a create whose reply was lost is recovered by its prefix (no duplicate contender);
- kazoo's Lock and ours exclude each other on the same path.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import pytest
from kazoo.exceptions import LockTimeout as KazooLockTimeout
from recipes_support import (
    SRC,
    ExpirableSession,
    ReplyDroppingProxy,
    aiotest,
    child_count,
    eventually,
    eventually_async,
    has_children,
    kazoo_client,
    sessions,
    unique_path,
    watches_by_session,
)
from test_client_support import ZookapterProcess

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.client import errors as e
from zookapter.recipes import _contenders
from zookapter.recipes.lock import Lock, LockTimeout, SyncLock

WORKER = os.path.join(os.path.dirname(__file__), "recipes_lock_worker.py")


def test_contender_rules():
    kids = ["a__lock__0000000004", "b__rlock__0000000002", "c__lock__0000000001",
            "lease", "d__lock__000000003", "x__lock__0000000007"]
    assert [c.name for c in _contenders.queue(kids, frozenset({"__lock__"}))] == [
        "c__lock__0000000001", "a__lock__0000000004", "x__lock__0000000007"]
    lock_only = frozenset({"__lock__"})
    both = frozenset({"__lock__", "__rlock__"})
    assert _contenders.predecessor(kids, "c__lock__0000000001", lock_only) is None
    assert _contenders.predecessor(kids, "a__lock__0000000004", lock_only) == \
        "c__lock__0000000001"
    assert _contenders.predecessor(kids, "a__lock__0000000004", both) == \
        "b__rlock__0000000002"
    assert _contenders.predecessor(kids, "b__rlock__0000000002", lock_only) == \
        "c__lock__0000000001"
    assert _contenders.find_own(kids, "x__lock__") == "x__lock__0000000007"
    with pytest.raises(ValueError):
        _contenders.predecessor(kids, "zz__lock__0000000009", lock_only)


@aiotest
async def test_mutual_exclusion_fencing_and_counter_among_ten_sessions(zk_server):
    path, counter = unique_path("lock"), unique_path("counter")
    inside, tokens = [], []
    async with sessions(zk_server.hosts, 10) as zks:
        await zks[0].create(counter, b"0")

        async def worker(i: int, zk: AsyncZooKeeper) -> None:
            lock = Lock(zk, path, identifier=f"w{i}")
            for _ in range(3):
                async with lock as token:
                    assert lock.is_acquired and lock.fencing_token == token
                    inside.append(i)
                    assert len(inside) == 1, f"two holders: {inside}"
                    tokens.append(token)
                    data, stat = await zk.get(counter)
                    await asyncio.sleep(0.002)
                    await zk.set(counter, str(int(data) + 1).encode(), version=stat.version)
                    inside.remove(i)
                assert not lock.is_acquired and lock.fencing_token is None

        await asyncio.gather(*(worker(i, zk) for i, zk in enumerate(zks)))
        assert (await zks[0].get(counter))[0] == b"30"
        assert tokens == sorted(tokens) and len(set(tokens)) == 30
        assert await zks[0].get_children(path) == []
        await zks[0].delete(counter)


@aiotest
async def test_fifo_and_each_waiter_watches_only_its_predecessor(zk_server):
    path = unique_path("lock")
    async with sessions(zk_server.hosts, 6) as zks:
        locks = [Lock(zk, path, identifier=f"c{i}") for i, zk in enumerate(zks)]
        await locks[0].acquire()
        order: list[int] = []

        async def wait_then_release(i: int) -> None:
            await locks[i].acquire()
            order.append(i)
            await asyncio.sleep(0.01)
            await locks[i].release()

        tasks = []
        for i in range(1, 6):  # queue them one by one: creation order is known
            tasks.append(asyncio.ensure_future(wait_then_release(i)))
            await eventually(lambda i=i: locks[i].node is not None)
        assert await locks[0].contenders() == [f"c{i}" for i in range(6)]

        def node_path(i: int) -> str:
            return f"{path}/{locks[i].node}"

        def watched() -> bool:
            table = watches_by_session(zk_server.hosts)
            return all(table.get(zks[i].session_id) == {node_path(i - 1)}
                       for i in range(1, 6))
        await eventually(watched)
        # the holder watches its own node (to notice its deletion), nothing else
        assert watches_by_session(zk_server.hosts)[zks[0].session_id] == {node_path(0)}

        assert await locks[0].release()
        await asyncio.gather(*tasks)
        assert order == [1, 2, 3, 4, 5]


@aiotest
async def test_nonblocking_timeout_cancel_and_reentry(zk_server):
    path = unique_path("lock")
    async with sessions(zk_server.hosts, 2) as (a, b):
        holder, other = Lock(a, path, "holder"), Lock(b, path, "other")
        token = await holder.acquire()
        with pytest.raises(RuntimeError):
            await holder.acquire()
        assert await other.acquire(blocking=False) is None
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            await other.acquire(timeout=0.3)
        assert time.monotonic() - started >= 0.3
        waiter = asyncio.ensure_future(other.acquire())
        await eventually(lambda: other.node is not None)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # every abandoned attempt removed its node: only the holder is queued
        await eventually_async(lambda: has_children(a, path, 1))
        assert await holder.contenders() == ["holder"]
        assert await holder.release() and not await holder.release()
        assert await other.acquire(blocking=False) > token
        await other.release()


class StaleToken(Exception):
    pass


async def guarded_write(zk: AsyncZooKeeper, store: str, token: int, value: bytes) -> None:
    """A downstream store: the node keeps `<highest token>:<value>`; a write with a smaller
    token is refused. Compare-and-set with a version check in a transaction, so two writers
    racing cannot both pass the token check."""
    while True:
        data, stat = await zk.get(store)
        highest = int(data.split(b":", 1)[0])
        if token < highest:
            raise StaleToken(f"token {token} < {highest}")
        tx = zk.transaction()
        tx.check(store, stat.version)
        tx.set_data(store, b"%d:%s" % (token, value))
        try:
            await tx.commit()
            return
        except e.BadVersionError:
            continue


@aiotest
async def test_expired_holder_lets_go_and_stale_token_is_refused(zk_server):
    path, store = unique_path("lock"), unique_path("store")
    async with ExpirableSession(zk_server) as expirable_a, \
            ExpirableSession(zk_server) as expirable_b, AsyncZooKeeper(zk_server.hosts) as c:
        a, b = expirable_a.zk, expirable_b.zk
        await a.create(store, b"0:")
        la, lb, lc = Lock(a, path, "a"), Lock(b, path, "b"), Lock(c, path, "c")
        token_a = await la.acquire()
        await guarded_write(a, store, token_a, b"from a")
        wb = asyncio.ensure_future(lb.acquire())
        await eventually(lambda: lb.node is not None)
        wc = asyncio.ensure_future(lc.acquire())
        await eventually(lambda: lc.node is not None)
        assert await la.contenders() == ["a", "b", "c"]

        # a waiter's session expires: it queues again (now behind c); c watches a instead
        old_b = lb.node
        await expirable_b.expire()
        await eventually(lambda: lb.node not in (None, old_b))
        assert await la.contenders() == ["a", "c", "b"]

        # the holder "pauses" and its session expires: it knows once it hears of it
        await expirable_a.expire()
        await eventually(lambda: not la.is_acquired)
        assert la.fencing_token is None
        token_c = await asyncio.wait_for(wc, 10)
        assert token_c > token_a
        await guarded_write(c, store, token_c, b"from c")
        with pytest.raises(StaleToken):  # the paused holder's late write
            await guarded_write(a, store, token_a, b"late")
        assert not await la.release()

        assert not wb.done()
        await lc.release()
        token_b = await asyncio.wait_for(wb, 10)  # nobody stranded
        assert token_b > token_c
        await lb.release()
        token_a2 = await la.acquire()  # the expired holder starts over in its new session
        assert token_a2 > token_b
        await la.release()
        assert (await c.get(store))[0] == b"%d:from c" % token_c
        await c.delete(store)


@aiotest
async def test_holder_keeps_lock_across_connection_cut(zk_server, proxy_for):
    proxy = proxy_for(zk_server)
    path = unique_path("lock")
    async with AsyncZooKeeper(proxy.hosts, timeout=10.0) as a, \
            AsyncZooKeeper(zk_server.hosts) as b:
        holder, waiter = Lock(a, path, "a"), Lock(b, path, "b")
        token = await holder.acquire()
        pending = asyncio.ensure_future(waiter.acquire())
        await eventually(lambda: waiter.node is not None)
        proxy.cut()
        await eventually(lambda: holder.suspended)
        assert holder.is_acquired and holder.fencing_token == token
        await asyncio.sleep(0.5)
        proxy.heal()
        await eventually(lambda: a.connected and not holder.suspended)
        assert holder.is_acquired and not pending.done()
        await holder.release()
        assert await asyncio.wait_for(pending, 10) > token
        await waiter.release()


def run_on_server_process(tmp_path, tick_time_ms: int,
                          scenario: Callable[[ZookapterProcess], Awaitable[None]]) -> None:
    """Run `scenario` against a zookapter server process it may kill and start again."""
    server = ZookapterProcess(tmp_path, tick_time_ms=tick_time_ms)
    server.start()
    try:
        asyncio.run(asyncio.wait_for(scenario(server), 60))
    finally:
        server.stop()


def test_holder_keeps_lock_across_server_restart(tmp_path):
    """zookapter only: kill -9 the server process and start it again on the same dataDir;
    sessions and the lock survive, the waiter is still queued behind the holder."""
    async def scenario(server: ZookapterProcess) -> None:
        async with sessions(server.hosts, 2, timeout=30.0) as (a, b):
            holder, waiter = Lock(a, "/locks/r", "a"), Lock(b, "/locks/r", "b")
            token = await holder.acquire()
            pending = asyncio.ensure_future(waiter.acquire())
            await eventually(lambda: waiter.node is not None)
            server.kill()
            await eventually(lambda: holder.suspended and waiter.suspended)
            server.start()
            await eventually(lambda: a.connected and b.connected and not holder.suspended,
                             timeout=20)
            assert holder.is_acquired and not pending.done()
            assert await holder.contenders() == ["a", "b"]
            await holder.release()
            assert await asyncio.wait_for(pending, 10) > token
            await waiter.release()

    run_on_server_process(tmp_path, 2000, scenario)  # tickTime 2 s allows 30 s sessions


@aiotest
async def test_partitioned_holder_gives_up_after_the_session_timeout(fast_server, proxy_for):
    """Cut off from the ensemble, the holder cannot hear that its session expired; a third
    of the session timeout into the outage it stops believing it holds the lock — before the
    server expires the session and the waiter moves up."""
    proxy = proxy_for(fast_server)
    path = unique_path("lock")
    async with AsyncZooKeeper(proxy.hosts, timeout=2.0) as a, \
            AsyncZooKeeper(fast_server.hosts, timeout=4.0) as b:
        holder, waiter = Lock(a, path, "a"), Lock(b, path, "b")
        await holder.acquire()
        pending = asyncio.ensure_future(waiter.acquire())
        overlap = []  # did the old holder still believe when the waiter got the lock?
        pending.add_done_callback(lambda _: overlap.append(holder.is_acquired))
        await eventually(lambda: waiter.node is not None)
        proxy.cut()
        await eventually(lambda: holder.suspended)
        cut_at = time.monotonic()
        await eventually(lambda: not holder.is_acquired)
        assert time.monotonic() - cut_at >= 0.5  # ~ a third of the 2 s session timeout
        assert await asyncio.wait_for(pending, 10)  # the server expired the session
        assert overlap == [False]
        proxy.heal()
        await eventually(lambda: a.connected)
        assert not holder.is_acquired and not await holder.release()
        await waiter.release()


def test_holder_presumed_lost_deletes_its_node_when_the_session_survives(tmp_path):
    """zookapter only: the server is down for longer than the session timeout, so the holder
    presumes its lock lost; the restarted server renews the sessions it reloads, so the
    session (and the node) survive — the holder deletes its node and the waiter gets in."""
    async def scenario(server: ZookapterProcess) -> None:
        async with AsyncZooKeeper(server.hosts, timeout=2.0) as a, \
                AsyncZooKeeper(server.hosts, timeout=10.0) as b:
            holder, waiter = Lock(a, "/locks/p", "a"), Lock(b, "/locks/p", "b")
            await holder.acquire()
            pending = asyncio.ensure_future(waiter.acquire())
            await eventually(lambda: waiter.node is not None)
            session = a.session_id
            server.kill()
            await eventually(lambda: not holder.is_acquired)
            server.start()
            await eventually(lambda: a.connected, timeout=20)
            assert a.session_id == session  # the session survived the outage
            assert await asyncio.wait_for(pending, 10)
            assert await waiter.contenders() == ["b"]
            await waiter.release()

    run_on_server_process(tmp_path, 500, scenario)


@aiotest
async def test_create_reply_lost_recovered_by_prefix(zk_server):
    proxy = ReplyDroppingProxy(*zk_server.hosts.split(":")).start()
    path = unique_path("lock")
    try:
        async with AsyncZooKeeper(zk_server.hosts) as direct, \
                AsyncZooKeeper(proxy.hosts, timeout=10.0) as zk:
            holder, lock = Lock(direct, path, "holder"), Lock(zk, path, "lost-reply")
            await holder.acquire()
            assert await lock.acquire(blocking=False) is None  # makes sure of the lock node
            assert await child_count(direct, path) == 1  # and has removed its own again
            proxy.drop_replies = True
            pending = asyncio.ensure_future(lock.acquire())  # its first request: the create
            # the create reached the server, its reply did not come back
            await eventually_async(lambda: has_children(direct, path, 2))
            assert lock.node is None
            proxy.cut()
            proxy.drop_replies = False
            proxy.heal()
            await eventually(lambda: lock.node is not None)
            children = await direct.get_children(path)
            assert len(children) == 2 and lock.node in children
            await holder.release()
            token = await asyncio.wait_for(pending, 10)
            assert token == (await direct.exists(f"{path}/{lock.node}")).czxid
            await lock.release()
    finally:
        proxy.stop()


@aiotest
async def test_kazoo_lock_and_ours_exclude_each_other(zk_server):
    path = unique_path("lock")
    with kazoo_client(zk_server.hosts) as kz:
        async with AsyncZooKeeper(zk_server.hosts) as zk:
            ours = Lock(zk, path, "ours")
            theirs = kz.Lock(path, "kazoo")
            assert await asyncio.to_thread(theirs.acquire)
            assert await ours.acquire(blocking=False) is None
            pending = asyncio.ensure_future(ours.acquire())
            await eventually(lambda: ours.node is not None)
            assert await ours.contenders() == ["kazoo", "ours"]
            assert await asyncio.to_thread(theirs.contenders) == ["kazoo", "ours"]
            kazoo_czxid = (await zk.exists(f"{path}/{theirs.node}")).czxid
            await asyncio.sleep(0.2)
            assert not pending.done()
            await asyncio.to_thread(theirs.release)
            token = await asyncio.wait_for(pending, 10)
            assert token > kazoo_czxid

            other = kz.Lock(path, "kazoo-2")
            assert not await asyncio.to_thread(other.acquire, blocking=False)
            with pytest.raises(KazooLockTimeout):
                await asyncio.to_thread(other.acquire, timeout=0.3)
            kazoo_waits = asyncio.ensure_future(asyncio.to_thread(other.acquire))
            await asyncio.sleep(0.2)
            assert not kazoo_waits.done()
            await ours.release()
            assert await asyncio.wait_for(kazoo_waits, 10)
            kazoo_czxid = (await zk.exists(f"{path}/{other.node}")).czxid
            assert kazoo_czxid > token
            assert await _acquire_after(ours, other) > kazoo_czxid
            await ours.release()


async def _acquire_after(ours: Lock, theirs) -> int:
    """Queue `ours` behind the kazoo holder `theirs`, then let kazoo release."""
    pending = asyncio.ensure_future(ours.acquire())
    await eventually(lambda: ours.node is not None)
    await asyncio.to_thread(theirs.release)
    return await asyncio.wait_for(pending, 10)


def test_sync_lock(zk_server):
    path = unique_path("lock")
    with ZooKeeperClient(zk_server.hosts) as c1, ZooKeeperClient(zk_server.hosts) as c2:
        with SyncLock(c1, path, identifier="w1") as token:
            other = SyncLock(c2, path, identifier="w2")
            assert other.acquire(blocking=False) is None
            with pytest.raises(LockTimeout):
                other.acquire(timeout=0.2)
            assert other.contenders() == ["w1"]
        second = other.acquire(timeout=10)
        assert second > token and other.is_acquired and other.fencing_token == second
        assert other.release() and not other.is_acquired


def test_four_processes_hammer_a_counter(zk_server):
    path, counter = unique_path("lock"), unique_path("counter")
    rounds, procs = 15, 4
    with ZooKeeperClient(zk_server.hosts) as zk:
        zk.create(counter, b"0:0")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
        workers = [subprocess.Popen([sys.executable, WORKER, zk_server.hosts, path, counter,
                                     str(rounds), f"p{i}"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE) for i in range(procs)]
        outputs = [w.communicate(timeout=60) for w in workers]
        for w, (out, err) in zip(workers, outputs, strict=True):
            assert w.returncode == 0, err.decode()[-2000:]
            assert out.decode().strip() == "0"  # no violation seen
        count, _ = zk.get(counter)[0].decode().split(":")
        assert int(count) == rounds * procs
        zk.delete(counter)

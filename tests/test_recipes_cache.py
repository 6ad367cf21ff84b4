"""TreeCache (recipes/treecache.py) against real servers — zookapter and Apache ZooKeeper 3.8:
initial load and live events; agreement with the real tree after a burst of changes from
other sessions (one in another process); catching up after a zookapter server restart with
changes made while the cache was cut off; re-registering its watch after session expiry;
the blocking twin; coexistence with kazoo's TreeCache on the same subtree."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import textwrap

from recipes_support import (
    SRC,
    aiotest,
    eventually,
    unique_path,
)
from test_client_support import TcpProxy, ZookapterProcess

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.client import errors as e
from zookapter.recipes.treecache import SyncTreeCache, TreeCache, TreeEvent, TreeEventType

A, U, R = TreeEventType.NODE_ADDED, TreeEventType.NODE_UPDATED, TreeEventType.NODE_REMOVED


async def real_tree(zk: AsyncZooKeeper, root: str) -> dict[str, tuple[bytes, int]]:
    """path -> (data, mzxid) of the subtree as the server has it now."""
    out: dict[str, tuple[bytes, int]] = {}

    async def walk(path: str) -> None:
        try:
            data, stat = await zk.get(path)
            kids = await zk.get_children(path)
        except e.NoNodeError:
            return
        out[path] = (data, stat.mzxid)
        await asyncio.gather(*(walk(f"{path}/{k}") for k in kids))

    await walk(root)
    return out


def cached_tree(cache: TreeCache) -> dict[str, tuple[bytes, int]]:
    return {p: (n.data, n.stat.mzxid) for p, n in cache.snapshot().items()}


async def converge(cache: TreeCache, zk: AsyncZooKeeper, root: str, timeout: float = 15.0):
    """Wait until the cache equals the (no longer changing) real tree."""
    await zk.sync(root)
    expected = await real_tree(zk, root)
    try:
        await eventually(lambda: cached_tree(cache) == expected, timeout=timeout)
    except AssertionError:
        got = cached_tree(cache)
        raise AssertionError(f"cache differs: missing {sorted(set(expected) - set(got))}, "
                             f"extra {sorted(set(got) - set(expected))}, stale "
                             f"{sorted(p for p in got if p in expected and got[p] != expected[p])}"
                             ) from None
    return expected


def recorder(events: list[tuple[TreeEventType, str | None]]):
    def listener(ev: TreeEvent) -> None:
        events.append((ev.type, ev.path))
    return listener


@aiotest
async def test_load_events_and_reads(zk_server):
    root = unique_path("cache")
    async with AsyncZooKeeper(zk_server.hosts) as zk, \
            AsyncZooKeeper(zk_server.hosts) as other:
        await zk.create(f"{root}/a/b", b"1", makepath=True)
        await zk.create(f"{root}/c", b"2")
        events: list = []
        cache = TreeCache(zk, root)
        cache.listen(recorder(events))
        async with cache:
            assert cache.initialized and len(cache) == 4
            await eventually(lambda: (TreeEventType.INITIALIZED, None) in events)
            assert sorted(events[:-1]) == sorted(
                (A, p) for p in (root, f"{root}/a", f"{root}/a/b", f"{root}/c"))
            assert cache.get_children(root) == ["a", "c"]
            assert cache.get_data(f"{root}/a/b").data == b"1"
            assert cache.get_data(f"{root}/nope") is None and cache.get_children("/x") is None

            events.clear()
            # one step at a time: a notification is only a hint, the cache reads the node
            # when it gets to it, and would not report a node that is already gone again
            await other.create(f"{root}/a/d", b"new")
            await eventually(lambda: f"{root}/a/d" in cache)
            await other.set(f"{root}/c", b"3")
            await eventually(lambda: cache.get_data(f"{root}/c").data == b"3")
            await other.delete(f"{root}/a", recursive=True)
            await eventually(lambda: len(events) >= 5)
            assert events[:2] == [(A, f"{root}/a/d"), (U, f"{root}/c")]
            assert set(events[2:4]) == {(R, f"{root}/a/b"), (R, f"{root}/a/d")}
            assert events[4:] == [(R, f"{root}/a")]
            assert cache.get_children(root) == ["c"]
            assert cache.get_data(f"{root}/c").data == b"3"
            await converge(cache, other, root)
        await zk.delete(root, recursive=True)


@aiotest
async def test_missing_root_and_max_depth(zk_server):
    root = unique_path("cache")
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        async with TreeCache(zk, root) as cache, TreeCache(zk, root, max_depth=1) as shallow:
            assert len(cache) == 0 and await zk.exists(root) is None  # creates nothing
            await zk.create(f"{root}/x/y", b"v", makepath=True)
            await eventually(lambda: f"{root}/x/y" in cache)
            await eventually(lambda: f"{root}/x" in shallow)
            await zk.sync(root)
            assert f"{root}/x/y" not in shallow and shallow.get_children(f"{root}/x") == []
        await zk.delete(root, recursive=True)


WRITER_SCRIPT = textwrap.dedent("""
    import random, sys
    from zookapter.client import ZooKeeperClient
    from zookapter.client import errors as e
    hosts, root, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rnd = random.Random(seed)
    with ZooKeeperClient(hosts) as zk:
        for i in range(60):
            path = root + "/" + "/".join(rnd.choice("pq") for _ in range(rnd.randint(1, 3)))
            try:
                if rnd.random() < 0.5:
                    zk.create(path, b"proc%d" % i, makepath=True)
                elif rnd.random() < 0.7:
                    zk.set(path, b"proc-set%d" % i)
                else:
                    zk.delete(path, recursive=True)
            except (e.NoNodeError, e.NodeExistsError, e.NotEmptyError):
                pass
""")


def spawn_writer(hosts: str, root: str, seed: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
    return subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, hosts, root, str(seed)],
                            env=env, stdin=subprocess.DEVNULL)


async def churn(zk: AsyncZooKeeper, root: str, seed: int, ops: int = 80) -> None:
    """Random creates, sets and recursive deletes in a small name space, so that writers
    collide and subtrees come and go."""
    rnd = random.Random(seed)
    for i in range(ops):
        path = root + "/" + "/".join(rnd.choice("abc") for _ in range(rnd.randint(1, 3)))
        try:
            r = rnd.random()
            if r < 0.45:
                await zk.create(path, f"{seed}-{i}".encode(), makepath=True)
            elif r < 0.8:
                await zk.set(path, f"{seed}-set-{i}".encode())
            else:
                await zk.delete(path, recursive=True)
        except (e.NoNodeError, e.NodeExistsError, e.NotEmptyError):
            pass


@aiotest
async def test_matches_tree_after_concurrent_burst(zk_server):
    root = unique_path("burst")
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        await zk.create(root)
        await zk.create(f"{root}/a", b"seed")
        async with TreeCache(zk, root) as cache:
            proc = spawn_writer(zk_server.hosts, root, 99)
            writers = [AsyncZooKeeper(zk_server.hosts) for _ in range(4)]
            for w in writers:
                await w.start()
            try:
                await asyncio.gather(*(churn(w, root, n) for n, w in enumerate(writers)))
            finally:
                for w in writers:
                    await w.stop()
            while proc.poll() is None:
                await asyncio.sleep(0.05)
            assert proc.returncode == 0
            expected = await converge(cache, zk, root)
            assert len(expected) > 1
        await zk.delete(root, recursive=True)


@aiotest
async def test_catches_up_after_server_restart_while_cut_off(tmp_path):
    server = ZookapterProcess(tmp_path, tick_time_ms=2000)  # sessions of up to 40 s
    server.start()
    host, port = server.hosts.split(":")
    proxy = TcpProxy(host, int(port)).start()
    try:
        async with AsyncZooKeeper(server.hosts) as direct, \
                AsyncZooKeeper(proxy.hosts, timeout=30.0) as zk:
            await direct.create("/app/keep", b"k", makepath=True)
            await direct.create("/app/gone/kid", b"g", makepath=True)
            await direct.create("/app/changed", b"old")
            session = zk.session_id
            events: list = []
            cache = TreeCache(zk, "/app")
            cache.listen(recorder(events))
            await cache.start()
            await eventually(lambda: (TreeEventType.INITIALIZED, None) in events)
            events.clear()

            proxy.cut()
            await eventually(lambda: not zk.connected)
            server.kill()
            server.start()
            await eventually(lambda: direct.connected, timeout=15)
            await direct.retry(direct.delete, "/app/gone", recursive=True)
            await direct.set("/app/changed", b"new")
            await direct.create("/app/fresh/deep", b"f", makepath=True)
            proxy.heal()
            await eventually(lambda: zk.connected, timeout=15)
            assert zk.session_id == session
            await converge(cache, direct, "/app")
            await eventually(lambda: (A, "/app/fresh/deep") in events)
            assert events[0] == (TreeEventType.CONNECTION_SUSPENDED, None)
            assert (TreeEventType.CONNECTION_RECONNECTED, None) in events
            assert {(R, "/app/gone/kid"), (R, "/app/gone"), (U, "/app/changed"),
                    (A, "/app/fresh"), (A, "/app/fresh/deep")} <= set(events)
            assert (R, "/app/keep") not in events and (U, "/app/keep") not in events
            # the watch is live again
            await direct.set("/app/keep", b"k2")
            await eventually(lambda: cache.get_data("/app/keep").data == b"k2")
            await cache.close()
    finally:
        proxy.stop()
        server.stop()


@aiotest
async def test_rewatches_after_session_expiry(fast_server, proxy_for):
    proxy = proxy_for(fast_server)
    root = unique_path("expiry")
    async with AsyncZooKeeper(fast_server.hosts) as direct, \
            AsyncZooKeeper(proxy.hosts, timeout=1.0) as zk:
        await direct.create(f"{root}/a", b"1", makepath=True)
        await direct.create(f"{root}/b", b"1")
        await zk.create(f"{root}/eph", ephemeral=True)
        events: list = []
        cache = TreeCache(zk, root)
        cache.listen(recorder(events))
        async with cache:
            proxy.cut()
            for _ in range(100):  # wait for the server to expire the session
                if await direct.exists(f"{root}/eph") is None:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("session was not expired")
            await direct.set(f"{root}/a", b"2")
            await direct.delete(f"{root}/b")
            await direct.create(f"{root}/c", b"3")
            proxy.heal()
            await eventually(lambda: zk.connected)
            await converge(cache, direct, root)
            assert (TreeEventType.CONNECTION_LOST, None) in events
            assert {(U, f"{root}/a"), (R, f"{root}/b"), (A, f"{root}/c"),
                    (R, f"{root}/eph")} <= set(events)
            # the recursive watch was added again in the new session
            await direct.create(f"{root}/c/d", b"4")
            await eventually(lambda: f"{root}/c/d" in cache)
        await direct.delete(root, recursive=True)


def test_sync_twin_and_kazoo_tree_cache_coexist(zk_server):
    from kazoo.client import KazooClient
    from kazoo.recipe.cache import TreeCache as KazooTreeCache

    root = unique_path("twin")
    seen: list[tuple[TreeEventType, str | None]] = []
    kz = KazooClient(hosts=zk_server.hosts)
    kz.start(timeout=15)
    with ZooKeeperClient(zk_server.hosts) as client:
        client.create(f"{root}/a", b"1", makepath=True)
        kcache = KazooTreeCache(kz, root)
        kcache.start()
        with SyncTreeCache(client, root) as cache:
            cache.listen(recorder(seen))
            client.create(f"{root}/b", b"2")
            client.set(f"{root}/a", b"3")
            client.create(f"{root}/b/c", b"4")

            def agree() -> bool:
                ours = cache.snapshot()
                theirs = {}
                stack = [root]
                while stack:
                    p = stack.pop()
                    node = kcache.get_data(p)
                    if node is None:
                        return False
                    theirs[p] = node.data
                    stack.extend(f"{p}/{k}" for k in kcache.get_children(p) or ())
                return {p: n.data for p, n in ours.items()} == theirs == {
                    root: b"", f"{root}/a": b"3", f"{root}/b": b"2", f"{root}/b/c": b"4"}

            asyncio.run(eventually(agree, timeout=15))
            asyncio.run(eventually(lambda: (A, f"{root}/b/c") in seen))
            assert cache.get_children(root) == ["a", "b"]
        kcache.close()
        client.delete(root, recursive=True)
    kz.stop()
    kz.close()

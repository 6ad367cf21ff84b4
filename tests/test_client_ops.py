"""The asyncio client against real servers over TCP — zookapter's and Apache ZooKeeper 3.8
(every test runs on both): each operation and its errors, watches, multi, chroot, auth and
ACLs, pipelining."""

# Fixtures are imported from test_client_support and then named as test parameters:
# ruff: noqa: F811
from __future__ import annotations

import asyncio

import pytest
from test_client_support import (  # noqa: F401  (fixtures are used by name)
    aiotest,
    eventually,
    unique_path,
    zk_server,
    zookapter_module_server,
)

from zookapter.client import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    AsyncZooKeeper,
    ClientInfo,
    CreateMode,
    EventType,
    Id,
    KeeperState,
    WatchedEvent,
    WatcherType,
    make_digest_acl,
)
from zookapter.client import errors as e


async def base_node(zk: AsyncZooKeeper) -> str:
    base = unique_path()
    await zk.create(base)
    return base


# --- CRUD ------------------------------------------------------------------------------------

@aiotest
async def test_create_get_set_delete(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        p = f"{base}/a"
        assert await zk.create(p, b"one") == p
        data, stat = await zk.get(p)
        assert data == b"one" and stat.version == 0 and stat.dataLength == 3
        stat2 = await zk.set(p, b"two")
        assert stat2.version == 1 and stat2.mzxid > stat.mzxid
        assert (await zk.get(p))[0] == b"two"
        assert (await zk.exists(p)).version == 1
        await zk.delete(p)
        assert await zk.exists(p) is None


@aiotest
async def test_create_variants(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        path, stat = await zk.create(f"{base}/s-", b"", mode=CreateMode.PERSISTENT_SEQUENTIAL,
                                     include_stat=True)
        assert path == f"{base}/s-0000000000" and stat.czxid > 0
        assert await zk.create(f"{base}/s-", sequence=True) == f"{base}/s-0000000001"
        eph, stat = await zk.create(f"{base}/e", ephemeral=True, include_stat=True)
        assert stat.ephemeralOwner == zk.session_id
        assert await zk.get_ephemerals(base) == [eph]
        await zk.create(f"{base}/c", mode=CreateMode.CONTAINER)
        assert await zk.exists(f"{base}/c") is not None  # (Stat hides the container owner)
        await zk.create(f"{base}/ttl", mode=CreateMode.PERSISTENT_WITH_TTL, ttl=60000)
        assert await zk.create(f"{base}/ttl2-", ttl=60000, sequence=True) == (
            f"{base}/ttl2-0000000005")
        assert await zk.exists(f"{base}/ttl") is not None
        assert await zk.create(f"{base}/x/y/z", b"v", makepath=True) == f"{base}/x/y/z"
        assert (await zk.get(f"{base}/x/y/z"))[0] == b"v"
        await zk.ensure_path(f"{base}/p/q/r")
        await zk.ensure_path(f"{base}/p/q/r")
        assert await zk.get_children(f"{base}/p/q") == ["r"]


@aiotest
async def test_errors(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        with pytest.raises(e.NoNodeError) as info:
            await zk.get(f"{base}/missing")
        assert info.value.path == f"{base}/missing" and info.value.code == -101
        with pytest.raises(e.NoNodeError):
            await zk.create(f"{base}/no/parent")
        with pytest.raises(e.NodeExistsError):
            await zk.create(base)
        await zk.create(f"{base}/v", b"x")
        with pytest.raises(e.BadVersionError):
            await zk.set(f"{base}/v", b"y", version=5)
        with pytest.raises(e.BadVersionError):
            await zk.delete(f"{base}/v", version=5)
        await zk.create(f"{base}/v/child")
        with pytest.raises(e.NotEmptyError):
            await zk.delete(f"{base}/v")
        await zk.create(f"{base}/eph", ephemeral=True)
        with pytest.raises(e.NoChildrenForEphemeralsError):
            await zk.create(f"{base}/eph/kid")
        with pytest.raises(e.InvalidACLError):
            await zk.create(f"{base}/acl", acl=[])
        with pytest.raises(e.BadArgumentsError):
            await zk.delete("/zookeeper")
        with pytest.raises(e.NoWatcherError):
            await zk.remove_watches(base, WatcherType.DATA)
        with pytest.raises(e.InvalidPathError):
            await zk.get("no-slash")
        with pytest.raises(e.InvalidPathError):
            await zk.create("/trailing/")
        with pytest.raises(TypeError):
            await zk.create(f"{base}/t", "not bytes")
        with pytest.raises(e.NoNodeError):
            await zk.get_children(f"{base}/missing")
        with pytest.raises(e.NoNodeError):
            await zk.get_acl(f"{base}/missing")
        with pytest.raises(e.NoNodeError):
            await zk.set_acl(f"{base}/missing", OPEN_ACL_UNSAFE)
        with pytest.raises(e.NoNodeError):
            await zk.get_all_children_number(f"{base}/missing")
        with pytest.raises(ValueError):
            await zk.create(f"{base}/t", mode=CreateMode.PERSISTENT_WITH_TTL)


@aiotest
async def test_children_counts_and_recursive_delete(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        for name in ("a", "b", "c"):
            await zk.create(f"{base}/{name}")
        await zk.create(f"{base}/a/x")
        await zk.create(f"{base}/a/x/y")
        assert sorted(await zk.get_children(base)) == ["a", "b", "c"]
        children, stat = await zk.get_children(base, include_stat=True)
        assert stat.numChildren == 3 and len(children) == 3
        assert await zk.get_all_children_number(base) == 5
        assert await zk.sync(base) == base
        await zk.delete(base, recursive=True)
        assert await zk.exists(base) is None
        with pytest.raises(e.NoNodeError):
            await zk.delete(f"{base}/gone", recursive=True)


@aiotest
async def test_acl_ops(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        acls, stat = await zk.get_acl(base)
        assert list(acls) == list(OPEN_ACL_UNSAFE) and stat.aversion == 0
        with pytest.raises(e.BadVersionError):
            await zk.set_acl(base, READ_ACL_UNSAFE, version=3)
        stat = await zk.set_acl(base, READ_ACL_UNSAFE, version=0)
        assert stat.aversion == 1
        with pytest.raises(e.NoAuthError):  # ADMIN is gone
            await zk.set_acl(base, OPEN_ACL_UNSAFE)
        with pytest.raises(e.NoAuthError):
            await zk.create(f"{base}/kid")
        with pytest.raises(e.NoAuthError):
            await zk.set(base, b"x")
        assert (await zk.get(base))[0] == b""


@aiotest
async def test_auth_and_digest_acl(zk_server):
    async with AsyncZooKeeper(zk_server.hosts, auth=[("digest", "alice:secret")]) as alice:
        assert ClientInfo("digest", "alice") in await alice.who_am_i()
        base = await base_node(alice)
        await alice.create(f"{base}/mine", b"s", acl=CREATOR_ALL_ACL)
        acls, _ = await alice.get_acl(f"{base}/mine")
        assert acls == [make_digest_acl("alice", "secret", all=True)]
        await alice.create(f"{base}/ro", b"r", acl=[make_digest_acl("bob", "pw", read=True)])
        async with AsyncZooKeeper(zk_server.hosts) as anon:
            with pytest.raises(e.NoAuthError):
                await anon.get(f"{base}/mine")
            with pytest.raises(e.NoAuthError):
                await anon.get(f"{base}/ro")
            with pytest.raises(e.InvalidACLError):  # "auth" ACL needs an authenticated id
                await anon.create(f"{base}/x", acl=CREATOR_ALL_ACL)
            await anon.add_auth("digest", "bob:pw")
            assert ClientInfo("digest", "bob") in await anon.who_am_i()
            assert (await anon.get(f"{base}/ro"))[0] == b"r"
            with pytest.raises(e.NoAuthError):
                await anon.set(f"{base}/ro", b"w")
            await anon.add_auth("digest", "alice:secret")
            assert (await anon.get(f"{base}/mine"))[0] == b"s"


@aiotest
async def test_auth_failure(zk_server):
    with pytest.raises(e.AuthFailedError):
        async with AsyncZooKeeper(zk_server.hosts, auth=[("nosuchscheme", "x")]):
            pass
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        states = []
        zk.add_listener(states.append)
        with pytest.raises(e.AuthFailedError):
            await zk.add_auth("nosuchscheme", "x")
        # the server closed the connection; the client resumes its session
        session = zk.session_id
        await zk.retry(zk.exists, "/")
        assert zk.connected and zk.session_id == session
        assert [s.value for s in states] == ["SUSPENDED", "CONNECTED"]


# --- watches ---------------------------------------------------------------------------------

@aiotest
async def test_one_shot_watches_fire_once(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        data_events, child_events, exist_events = [], [], []
        await zk.get(base, watch=data_events.append)
        await zk.get_children(base, watch=child_events.append)
        assert await zk.exists(f"{base}/n", watch=exist_events.append) is None
        await zk.set(base, b"1")
        await zk.set(base, b"2")
        await zk.create(f"{base}/n")
        await zk.create(f"{base}/m")
        await zk.sync(base)
        await eventually(lambda: data_events and child_events and exist_events)
        await asyncio.sleep(0.1)
        assert data_events == [WatchedEvent(EventType.NODE_DATA_CHANGED,
                                            KeeperState.SYNC_CONNECTED, base)]
        assert child_events == [WatchedEvent(EventType.NODE_CHILDREN_CHANGED,
                                             KeeperState.SYNC_CONNECTED, base)]
        assert [ev.type for ev in exist_events] == [EventType.NODE_CREATED]
        assert exist_events[0].path == f"{base}/n"


@aiotest
async def test_delete_fires_data_and_child_watch_once_per_callback(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        events = []

        async def on_event(ev):  # an async callback
            events.append(ev)

        await zk.get(base, watch=on_event)
        await zk.get_children(base, watch=on_event)
        other = []
        await zk.exists(base, watch=other.append)
        await zk.delete(base)
        await eventually(lambda: events and other)
        await asyncio.sleep(0.1)
        assert [ev.type for ev in events] == [EventType.NODE_DELETED]
        assert [ev.type for ev in other] == [EventType.NODE_DELETED]


@aiotest
async def test_persistent_watch(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        events = []
        await zk.add_watch(base, events.append)
        await zk.set(base, b"1")
        await zk.set(base, b"2")
        await zk.create(f"{base}/kid")
        await zk.create(f"{base}/kid/grandkid")  # not seen: not recursive
        await zk.sync(base)
        await eventually(lambda: len(events) >= 3)
        await asyncio.sleep(0.1)
        assert [ev.type for ev in events] == [EventType.NODE_DATA_CHANGED,
                                              EventType.NODE_DATA_CHANGED,
                                              EventType.NODE_CHILDREN_CHANGED]
        await zk.remove_watches(base, WatcherType.PERSISTENT)
        await eventually(lambda: len(events) == 4)
        assert events[-1].type == EventType.PERSISTENT_WATCH_REMOVED
        await zk.set(base, b"3")
        await zk.sync(base)
        await asyncio.sleep(0.1)
        assert len(events) == 4


@aiotest
async def test_recursive_watch_stream(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        stream = await zk.add_watch(base, recursive=True)
        await zk.create(f"{base}/a")
        await zk.create(f"{base}/a/b", b"x")
        await zk.set(f"{base}/a/b", b"y")
        await zk.delete(f"{base}/a/b")
        got = [await stream.__anext__() for _ in range(4)]
        assert [(ev.type, ev.path) for ev in got] == [
            (EventType.NODE_CREATED, f"{base}/a"),
            (EventType.NODE_CREATED, f"{base}/a/b"),
            (EventType.NODE_DATA_CHANGED, f"{base}/a/b"),
            (EventType.NODE_DELETED, f"{base}/a/b")]
        await stream.close()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        with pytest.raises(e.NoWatcherError):  # the server no longer has it
            await zk.remove_watches(base, WatcherType.PERSISTENT_RECURSIVE)


@aiotest
async def test_remove_one_of_two_callbacks(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        first, second = [], []
        await zk.get(base, watch=first.append)
        await zk.get(base, watch=second.append)
        await zk.remove_watches(base, WatcherType.DATA, first.append)
        await zk.set(base, b"x")
        await eventually(lambda: second)
        assert [ev.type for ev in first] == [EventType.DATA_WATCH_REMOVED]
        assert [ev.type for ev in second] == [EventType.NODE_DATA_CHANGED]
        with pytest.raises(e.NoWatcherError):  # nothing left locally for that callback
            await zk.remove_watches(base, WatcherType.DATA, first.append)


# --- multi -----------------------------------------------------------------------------------

@aiotest
async def test_transaction_success(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        await zk.create(f"{base}/old", b"o")
        tx = zk.transaction()
        tx.create(f"{base}/new", b"n").create(f"{base}/seq-", sequence=True)
        tx.set_data(f"{base}/old", b"o2", version=0).check(base, 0)
        tx.delete(f"{base}/old", version=1)
        results = await tx.commit()
        assert results[0] == f"{base}/new" and results[1] == f"{base}/seq-0000000002"
        assert results[2].version == 1 and results[3:] == [True, True]
        assert sorted(await zk.get_children(base)) == ["new", "seq-0000000002"]
        assert await zk.transaction().commit() == []
        async with zk.transaction() as tx2:
            tx2.create(f"{base}/ctx")
        assert await zk.exists(f"{base}/ctx")


@aiotest
async def test_transaction_failure(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        tx = zk.transaction().create(f"{base}/a").check(base, 7).create(f"{base}/b")
        with pytest.raises(e.BadVersionError) as info:
            await tx.commit()
        kinds = [type(r) for r in info.value.results]
        assert kinds == [e.RolledBackError, e.BadVersionError, e.RuntimeInconsistencyError]
        assert await zk.get_children(base) == []
        tx = zk.transaction().create(f"{base}/a").delete(f"{base}/nope")
        results = await tx.commit(raise_on_error=False)
        assert isinstance(results[0], e.RolledBackError)
        assert isinstance(results[1], e.NoNodeError) and results[1].path == f"{base}/nope"
        with pytest.raises(ValueError):  # a transaction commits once
            await tx.commit()


# --- chroot ----------------------------------------------------------------------------------

@aiotest
async def test_chroot(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as root:
        base = await base_node(root)
        async with AsyncZooKeeper(zk_server.hosts + base) as zk:
            assert await zk.create("/a", b"v") == "/a"
            assert await zk.create("/s-", sequence=True) == "/s-0000000001"
            assert (await root.get(f"{base}/a"))[0] == b"v"
            assert sorted(await zk.get_children("/")) == ["a", "s-0000000001"]
            assert await zk.exists("/") is not None
            assert await zk.sync("/a") == "/a"
            await zk.create("/e", ephemeral=True)
            assert await zk.get_ephemerals() == ["/e"]
            events = []
            await zk.get("/a", watch=events.append)
            stream = await zk.add_watch("/", recursive=True)
            await root.set(f"{base}/a", b"w")
            await eventually(lambda: events)
            assert events[0].path == "/a"
            ev = await stream.__anext__()
            assert (ev.type, ev.path) == (EventType.NODE_DATA_CHANGED, "/a")
            tx = zk.transaction().create("/t").set_data("/a", b"x")
            assert (await tx.commit())[0] == "/t"
            with pytest.raises(e.NoNodeError) as info:
                await zk.get("/missing")
            assert info.value.path == "/missing"
            await stream.close()


# --- pipelining ------------------------------------------------------------------------------

@aiotest
async def test_pipelining_1000_concurrent_gets(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = await base_node(zk)
        await asyncio.gather(*(zk.create(f"{base}/n{i}", str(i).encode()) for i in range(50)))
        results = await asyncio.gather(*(zk.get(f"{base}/n{i % 50}") for i in range(1000)))
        assert [r[0] for r in results] == [str(i % 50).encode() for i in range(1000)]
        mixed = await asyncio.gather(*(zk.get(f"{base}/n{i % 50}" if i % 2 else f"{base}/x{i}")
                                       for i in range(100)), return_exceptions=True)
        assert all(isinstance(r, e.NoNodeError) for r in mixed[::2])
        assert all(isinstance(r, tuple) for r in mixed[1::2])


@aiotest
async def test_cancelled_request_does_not_break_the_connection(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        tasks = [asyncio.ensure_future(zk.exists("/")) for _ in range(20)]
        await asyncio.sleep(0)
        for t in tasks[::2]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert await zk.exists("/zookeeper") is not None


# --- lifecycle -------------------------------------------------------------------------------

@aiotest
async def test_ephemerals_go_with_the_session_and_stopped_client_refuses(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as observer:
        base = await base_node(observer)
        zk = AsyncZooKeeper(zk_server.hosts)
        states = []
        zk.add_listener(states.append)
        await zk.start()
        await zk.create(f"{base}/e", ephemeral=True)
        await zk.stop()
        assert [s.value for s in states] == ["CONNECTED", "LOST"]
        assert await observer.exists(f"{base}/e") is None
        with pytest.raises(e.ConnectionClosedError):
            await zk.get("/")


@aiotest
async def test_start_timeout_on_dead_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    zk = AsyncZooKeeper(f"127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(e.OperationTimeoutError):
        await zk.start()


def test_acl_records_are_plain_tuples():
    assert OPEN_ACL_UNSAFE == (ACL(31, Id("world", "anyone")),)

"""Session behaviour of the asyncio client across failures, over real TCP:

- connection cut with requests in flight -> ConnectionLossError, SUSPENDED, reconnect with the
  same session, watches re-registered (setWatches) and the missed change delivered;
- network down for longer than the session timeout -> the server expires the session, the
  client hears so on reconnect: LOST, queued work fails, a new session follows;
- a zookapter server process SIGKILLed under pipelined writes and restarted on the same port
  and dataDir -> in-flight writes fail with ConnectionLossError, the session survives.

The network failures go through a TcpProxy, so they run against both zookapter and Apache
ZooKeeper.
"""

# Fixtures are imported from test_client_support and then named as test parameters:
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import struct

import pytest
from test_client_support import (  # noqa: F401  (fixtures are used by name)
    ZookapterProcess,
    aiotest,
    eventually,
    fast_apache,
    fast_server,
    fast_zookapter,
    free_port,
    proxy_for,
    unique_path,
    zk_server,
    zookapter_module_server,
)

from zookapter.client import AsyncZooKeeper, ClientInfo, ConnectionState, EventType
from zookapter.client import errors as e

C, S, L = ConnectionState.CONNECTED, ConnectionState.SUSPENDED, ConnectionState.LOST


@aiotest
async def test_connection_loss_then_resume_with_watches(zk_server, proxy_for):
    proxy = proxy_for(zk_server)
    base = unique_path()
    async with AsyncZooKeeper(zk_server.hosts) as direct, \
            AsyncZooKeeper(proxy.hosts, timeout=10.0, auth=[("digest", "u:p")]) as zk:
        states = []
        zk.add_listener(states.append)
        await zk.add_auth("digest", "v:q")
        await zk.create(base, b"v0")
        await zk.create(f"{base}/eph", ephemeral=True)
        session = zk.session_id
        data_events, child_events, exist_events = [], [], []
        await zk.get(base, watch=data_events.append)
        await zk.get_children(base, watch=child_events.append)
        await zk.exists(f"{base}/later", watch=exist_events.append)
        recursive = await zk.add_watch(base, recursive=True)

        proxy.stall()
        in_flight = [asyncio.ensure_future(zk.get(base)) for _ in range(5)]
        await asyncio.sleep(0.2)
        assert not any(f.done() for f in in_flight)
        proxy.cut()
        for f in in_flight:
            with pytest.raises(e.ConnectionLossError):
                await f
        await eventually(lambda: zk.state == S)

        # changes made while the client is away are reported after it comes back
        await direct.set(base, b"v1")
        await direct.create(f"{base}/later")
        proxy.heal()
        await eventually(lambda: zk.connected)
        assert zk.session_id == session and states == [S, C]
        await eventually(lambda: data_events and child_events and exist_events)
        assert [ev.type for ev in data_events] == [EventType.NODE_DATA_CHANGED]
        assert [ev.type for ev in child_events] == [EventType.NODE_CHILDREN_CHANGED]
        assert [ev.type for ev in exist_events] == [EventType.NODE_CREATED]
        assert await zk.get_ephemerals(base) == [f"{base}/eph"]
        # both identities were presented again on the new connection
        ids = await zk.who_am_i()
        assert ClientInfo("digest", "u") in ids and ClientInfo("digest", "v") in ids

        # the persistent watch is registered again. The server sends it no catch-up events,
        # but like Java's client ours hands it the catch-up events of one-shot watches on
        # its subtree (here: NodeDataChanged of base and NodeCreated of base/later).
        await direct.set(f"{base}/later", b"x")
        seen = []
        while (EventType.NODE_DATA_CHANGED, f"{base}/later") not in seen:
            ev = await asyncio.wait_for(recursive.__anext__(), 5)
            seen.append((ev.type, ev.path))
        assert set(seen) <= {(EventType.NODE_DATA_CHANGED, base),
                             (EventType.NODE_CREATED, f"{base}/later"),
                             (EventType.NODE_DATA_CHANGED, f"{base}/later")}
        await recursive.close()
        await zk.delete(base, recursive=True)


@aiotest
async def test_hung_server_detected_by_read_timeout(fast_server, proxy_for):
    proxy = proxy_for(fast_server)
    async with AsyncZooKeeper(proxy.hosts, timeout=4.0) as zk:
        assert zk.negotiated_timeout_ms == 4000
        session = zk.session_id
        proxy.stall()  # pings go unanswered: after 2/3 of the timeout the client reconnects
        await eventually(lambda: zk.state == S, timeout=4)
        proxy.cut()  # end the reconnect attempt stuck in the stalled proxy
        proxy.heal()
        await eventually(lambda: zk.connected)
        assert zk.session_id == session
        assert await zk.exists("/") is not None


@aiotest
async def test_session_expiry_reported_as_lost(fast_server, proxy_for):
    proxy = proxy_for(fast_server)
    base = unique_path()
    async with AsyncZooKeeper(fast_server.hosts) as direct, \
            AsyncZooKeeper(proxy.hosts, timeout=1.0) as zk:
        states = []
        zk.add_listener(states.append)
        await zk.create(base)
        await zk.create(f"{base}/eph", ephemeral=True)
        old_session = zk.session_id
        watched = []
        await zk.get(base, watch=watched.append)
        stream = await zk.add_watch(base)

        proxy.cut()
        await eventually(lambda: zk.state == S)
        queued = asyncio.ensure_future(zk.get(base))
        with pytest.raises(e.ConnectionLossError):  # a whole round of hosts failed
            await queued
        # the server expires the session: its ephemeral node goes away
        for _ in range(100):
            if await direct.exists(f"{base}/eph") is None:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("session was not expired by the server")

        proxy.heal()
        await eventually(lambda: zk.connected and zk.session_id not in (0, old_session))
        assert states == [S, L, C]
        with pytest.raises(e.SessionExpiredError):
            await stream.__anext__()
        # the new session works; old one-shot watches are gone with the old session
        await zk.create(f"{base}/eph", ephemeral=True)
        await direct.set(base, b"x")
        await direct.sync(base)
        await asyncio.sleep(0.1)
        assert watched == []
        await direct.delete(base, recursive=True)


def test_server_killed_mid_request_and_restarted(tmp_path):
    async def main():
        server = ZookapterProcess(tmp_path)
        server.start()
        try:
            await scenario(server)
        finally:
            server.stop()

    async def scenario(server):
        async with AsyncZooKeeper(server.hosts, timeout=10.0) as zk:
            states = []
            zk.add_listener(states.append)
            await zk.create("/n", b"0")
            await zk.create("/eph", ephemeral=True)
            session = zk.session_id
            events = []
            await zk.get("/n", watch=events.append)

            writes = [asyncio.ensure_future(zk.create(f"/w{i}")) for i in range(3000)]
            await asyncio.sleep(0)  # the requests are written to the socket
            await asyncio.sleep(0.005)
            server.kill()
            results = await asyncio.gather(*writes, return_exceptions=True)
            lost = [r for r in results if isinstance(r, e.ConnectionLossError)]
            ok = [r for r in results if isinstance(r, str)]
            assert lost and len(lost) + len(ok) == len(results)
            assert all(isinstance(r, str) for r in results[:len(ok)])  # replies in order
            await eventually(lambda: zk.state == S)

            server.start()
            await eventually(lambda: zk.connected, timeout=15)
            assert zk.session_id == session and states == [S, C]
            assert await zk.exists("/eph") is not None
            # every acknowledged create survived the crash
            assert set(ok) <= {f"/{c}" for c in await zk.get_children("/")}
            async with AsyncZooKeeper(server.hosts) as other:
                await other.set("/n", b"1")
            await eventually(lambda: events)
            assert [ev.type for ev in events] == [EventType.NODE_DATA_CHANGED]

    asyncio.run(asyncio.wait_for(main(), 60))


@aiotest
async def test_multiple_hosts_dead_one_skipped_and_session_moves(zk_server, proxy_for):
    """Two routes to one server stand in for two ensemble members: the client skips a dead
    address, and when its route dies it moves to the other with the same session."""
    a, b = proxy_for(zk_server), proxy_for(zk_server)
    dead = free_port()
    hosts = f"127.0.0.1:{dead},{a.hosts},{b.hosts}"
    async with AsyncZooKeeper(hosts, timeout=10.0) as zk:
        session = zk.session_id
        states, events = [], []
        zk.add_listener(states.append)
        base = unique_path()
        await zk.create(base)
        await zk.get(base, watch=events.append)
        for round_ in range(1, 4):  # cut the route in use: the client must take the other
            used, other = (a, b) if a.connections else (b, a)
            assert used.connections and not other.connections
            used.cut()
            await eventually(lambda n=2 * round_: len(states) == n and zk.connected)
            assert zk.session_id == session and other.connections
            used.heal()
        assert states == [S, C] * 3
        await zk.set(base, b"x")
        await eventually(lambda: events)
        await zk.delete(base)


@aiotest
async def test_out_of_order_reply_drops_the_connection():
    """A fake server answering with the wrong xid: the client treats the connection as
    broken (ConnectionLossError for what was in flight) and reconnects."""
    connections = []

    async def fake_server(reader, writer):
        connections.append(writer)
        (n,) = struct.unpack(">i", await reader.readexactly(4))
        await reader.readexactly(n)
        resp = struct.pack(">iiqi", 0, 4000, 0x42, 16) + b"p" * 16 + b"\0"
        writer.write(struct.pack(">i", len(resp)) + resp)
        while True:
            try:
                (n,) = struct.unpack(">i", await reader.readexactly(4))
                (xid,) = struct.unpack(">i", (await reader.readexactly(n))[:4])
            except asyncio.IncompleteReadError:
                return
            if xid > 0:  # answer a request with a later xid than expected
                body = struct.pack(">iqi", xid + 1, 1, 0)
                writer.write(struct.pack(">i", len(body)) + body)

    server = await asyncio.start_server(fake_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with AsyncZooKeeper(f"127.0.0.1:{port}", timeout=4.0) as zk:
        with pytest.raises(e.ConnectionLossError):
            await zk.exists("/")
        await eventually(lambda: len(connections) == 2 and zk.connected)
        assert zk.session_id == 0x42
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()

"""The rest of the client API against real servers (zookapter and Apache ZooKeeper 3.8, every
test on both): multiRead, checkWatches, getConfig and its watch, reconfig's refusal, the
DataWatch / ChildrenWatch helpers (also across a server restart and a session expiry) and
their blocking twins; plus fake servers that break the protocol (garbage, oversize frames,
unexpected xids), which must cost a reconnect and never a hang or a wrong result."""

# Fixtures are imported from test_client_support and then named as test parameters:
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time

import pytest
from oracle import SUPER_DIGEST, ApacheZooKeeper, apache_zookeeper_available
from test_client_support import (  # noqa: F401  (fixtures are used by name)
    ZookapterProcess,
    aiotest,
    eventually,
    fast_apache,
    fast_server,
    fast_zookapter,
    proxy_for,
    unique_path,
    zk_server,
)

from zookapter.client import (
    AsyncZooKeeper,
    ChildrenWatch,
    ConnectionState,
    DataWatch,
    EventType,
    WatcherType,
    ZooKeeperClient,
    make_digest_acl,
)
from zookapter.client import errors as e
from zookapter.protocol.consts import Err
from zookapter.testing import ZookapterServer


@pytest.fixture(scope="module")
def zookapter_module_server():
    """This module's zookapter server has the oracle's super user (config writes)."""
    with ZookapterServer(super_digest=SUPER_DIGEST) as server:
        yield server


@pytest.fixture(scope="module")
def private_apache():
    """An Apache server of this module's own: the config test writes /zookeeper/config,
    which must not leak into the session-wide oracle other modules compare against."""
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper oracle unavailable")
    server = ApacheZooKeeper().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["zookapter", "apache"])
def config_server(request):
    if request.param == "zookapter":
        return request.getfixturevalue("zookapter_module_server")
    return request.getfixturevalue("private_apache")


class Recorder:
    """A watch callback collecting its calls; `wait_for(x)` until the last call equals x."""

    def __init__(self, result: object = None) -> None:
        self.calls: list[tuple] = []
        self.result = result

    def __call__(self, *args: object) -> object:
        self.calls.append(args)
        return self.result

    @property
    def last(self) -> tuple | None:
        return self.calls[-1] if self.calls else None

    async def wait_for(self, expected: tuple, timeout: float = 10.0) -> None:
        await eventually(lambda: self.last == expected, timeout=timeout)


def data_of(rec: Recorder) -> list[bytes | None]:
    return [c[0] for c in rec.calls]


# --- multiRead -------------------------------------------------------------------------------

@aiotest
async def test_read_transaction_results_and_errors(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = unique_path()
        await zk.create(base, b"top")
        await zk.create(f"{base}/a", b"A")
        await zk.create(f"{base}/b")
        await zk.create(f"{base}/secret", b"s", acl=[make_digest_acl("u", "p", all=True)])
        results = await (zk.read_transaction().get(base).get_children(base)
                         .get(f"{base}/missing").get_data(f"{base}/a")
                         .get_children(f"{base}/missing").get(f"{base}/secret").commit())
        data, stat = results[0]
        assert data == b"top" and stat.numChildren == 3 and stat == await zk.exists(base)
        assert sorted(results[1]) == ["a", "b", "secret"]
        assert isinstance(results[2], e.NoNodeError) and results[2].path == f"{base}/missing"
        assert results[3][0] == b"A"
        assert isinstance(results[4], e.NoNodeError)
        assert isinstance(results[5], e.NoAuthError)

        with pytest.raises(e.NoNodeError) as info:
            await zk.read_transaction().get(base).get(f"{base}/missing").commit(
                raise_on_error=True)
        assert info.value.results[0][0] == b"top"  # type: ignore[attr-defined]
        assert await zk.read_transaction().commit() == []
        tx = zk.read_transaction().get(base)
        await tx.commit()
        with pytest.raises(ValueError):
            await tx.commit()
        with pytest.raises(e.InvalidPathError):
            zk.read_transaction().get("relative")
        await zk.add_auth("digest", "u:p")
        await zk.delete(base, recursive=True)


@aiotest
async def test_read_transaction_under_chroot(zk_server):
    base = unique_path()
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        await zk.create(f"{base}/x", b"in-chroot", makepath=True)
        async with AsyncZooKeeper(zk_server.hosts + base) as cz:
            (data, _), children = await cz.read_transaction().get("/x").get_children(
                "/").commit()
            assert data == b"in-chroot" and children == ["x"]
        await zk.delete(base, recursive=True)


# --- checkWatches, getConfig, reconfig -------------------------------------------------------

@aiotest
async def test_check_watches(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        base = unique_path()
        await zk.create(base)
        assert await zk.check_watches(base) is False
        events: list = []
        await zk.get(base, watch=events.append)
        assert await zk.check_watches(base, WatcherType.DATA) is True
        assert await zk.check_watches(base, WatcherType.CHILDREN) is False
        assert await zk.check_watches(base, WatcherType.ANY) is True
        await zk.get_children(base, watch=events.append)
        assert await zk.check_watches(base, WatcherType.CHILDREN) is True
        await zk.set(base, b"x")  # fires (and so consumes) the data watch only
        await eventually(lambda: events)
        assert await zk.check_watches(base, WatcherType.DATA) is False
        assert await zk.check_watches(base, WatcherType.CHILDREN) is True
        assert await zk.exists(base, watch=events.append) is not None
        assert await zk.check_watches(base, WatcherType.DATA) is True
        assert await zk.check_watches(base, WatcherType.DATA) is True  # checking removes none
        missing = f"{base}/later"
        await zk.exists(missing, watch=events.append)  # an exist watch counts as data
        assert await zk.check_watches(missing, WatcherType.DATA) is True
        await zk.delete(base, recursive=True)


@aiotest
async def test_get_config_and_its_watch(config_server):
    hosts = config_server.hosts
    async with AsyncZooKeeper(hosts) as zk, \
            AsyncZooKeeper(hosts + unique_path("chroot")) as cz, \
            AsyncZooKeeper(hosts, auth=[("digest", "super:test")]) as su:
        original, stat = await zk.get_config()
        assert (original, stat) == await zk.get("/zookeeper/config")
        assert await cz.get_config() == (original, stat)  # the config is outside any chroot
        events, chroot_events = [], []
        await zk.get_config(watch=events.append)
        await cz.get_config(watch=chroot_events.append)
        assert await zk.check_watches("/zookeeper/config", WatcherType.DATA)
        try:
            await su.set("/zookeeper/config", b"server.1=127.0.0.1:2888:3888;2181")
            await eventually(lambda: events and chroot_events)
            for evs in (events, chroot_events):
                assert [(ev.type, ev.path) for ev in evs] == [
                    (EventType.NODE_DATA_CHANGED, "/zookeeper/config")]
            data, stat2 = await cz.get_config()
            assert data.startswith(b"server.1=") and stat2.version == stat.version + 1
        finally:
            await su.set("/zookeeper/config", original)


@aiotest
async def test_reconfig_is_refused_by_a_standalone_server(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        with pytest.raises((e.ReconfigDisabledError, e.UnimplementedError)):
            await zk.reconfig(joining=["server.5=127.0.0.1:2888:3888;2181"])
        with pytest.raises((e.ReconfigDisabledError, e.UnimplementedError)):
            await zk.reconfig(leaving="1", from_config=7)
        assert await zk.exists("/") is not None  # the connection is fine


def test_every_error_code_has_its_exception():
    for code in Err:
        cls = e.error_class(int(code))
        assert cls is not None and issubclass(cls, e.ZookeeperError) and cls.code == code
        err = e.error_for(int(code), "/p")
        assert type(err) is cls and err.path == "/p"
    assert isinstance(e.error_for(-999), e.UnknownError)
    assert e.ConnectionLoss is e.ConnectionLossError


def test_blocking_client_has_every_async_method():
    async_client = AsyncZooKeeper("127.0.0.1:1")
    public = {n for n in dir(async_client) if not n.startswith("_")} - {"timeout"}
    assert public - set(dir(ZooKeeperClient)) == set()


# --- DataWatch / ChildrenWatch ---------------------------------------------------------------

@aiotest
async def test_data_watch_follows_a_node_through_its_life(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        path = unique_path()
        rec = Recorder()
        watch = await DataWatch(zk, path, rec)
        assert rec.calls == [(None, None)]  # called at once: the node does not exist yet
        await zk.create(path, b"1")
        await eventually(lambda: data_of(rec) == [None, b"1"])
        assert rec.last[1].version == 0
        await zk.set(path, b"2")
        await eventually(lambda: data_of(rec)[-1] == b"2")
        await zk.delete(path)
        await rec.wait_for((None, None))
        await zk.create(path, b"3")
        await eventually(lambda: data_of(rec)[-1] == b"3")
        assert data_of(rec) == [None, b"1", b"2", None, b"3"]
        await watch.close()
        assert watch.stopped
        await zk.set(path, b"4")
        await zk.sync(path)
        await asyncio.sleep(0.1)
        assert data_of(rec)[-1] == b"3"
        assert await zk.check_watches(path) is False  # its watch went with it
        await zk.delete(path)


@aiotest
async def test_data_watch_event_argument_stop_by_false_and_decorator(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        path = unique_path()
        await zk.create(path, b"a")
        seen = []

        async def with_event(data, stat, event):  # three parameters: gets the event
            seen.append((data, event and event.type))
            return data != b"stop"

        watch = await zk.data_watch(path, with_event)
        await zk.set(path, b"b")
        await eventually(lambda: len(seen) == 2)
        await zk.set(path, b"stop")
        await eventually(lambda: watch.stopped)
        await zk.set(path, b"after")
        await zk.sync(path)
        assert seen == [(b"a", None), (b"b", EventType.NODE_DATA_CHANGED),
                        (b"stop", EventType.NODE_DATA_CHANGED)]

        decorated = []

        @zk.data_watch(path)
        def on_change(data, stat):
            decorated.append(data)
            return False  # one call only

        await eventually(lambda: decorated == [b"after"])
        await zk.delete(path)


@aiotest
async def test_data_watch_collapses_bursts_to_the_latest_state(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        path = unique_path()
        await zk.create(path, b"0")
        seen = []
        gate = asyncio.Event()

        async def slow(data, stat):
            seen.append(data)
            await gate.wait()  # hold the watch while many changes happen

        watch = DataWatch(zk, path, slow)
        await eventually(lambda: seen == [b"0"])
        for i in range(1, 21):
            await zk.set(path, str(i).encode())
        gate.set()
        await eventually(lambda: seen[-1] == b"20")
        assert len(seen) <= 3 and seen == sorted(seen, key=int)
        await watch.close()
        await zk.delete(path)


@aiotest
async def test_data_watch_error_ends_it(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        path = unique_path()
        await zk.create(path, b"", acl=[make_digest_acl("u", "p", all=True)])
        watch = DataWatch(zk, path, Recorder())
        with pytest.raises(e.NoAuthError):
            await watch.ready()
        assert watch.stopped
        async with AsyncZooKeeper(zk_server.hosts, auth=[("digest", "u:p")]) as owner:
            await owner.delete(path)


@aiotest
async def test_children_watch(zk_server):
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        path = unique_path()
        rec = Recorder()
        watch = await ChildrenWatch(zk, path, rec)
        assert rec.calls == [([],)]
        await zk.create(path)  # created without children: nothing new to report
        await zk.create(f"{path}/a")
        await eventually(lambda: rec.last == (["a"],))
        assert rec.calls == [([],), (["a"],)]
        await zk.create(f"{path}/b")
        await eventually(lambda: rec.last and sorted(rec.last[0]) == ["a", "b"])
        await zk.set(path, b"data changes are not child changes")
        await zk.delete(f"{path}/a")
        await rec.wait_for((["b"],))
        await zk.delete(path, recursive=True)  # deleted: [] again, and it keeps following
        await rec.wait_for(([],))
        await zk.create(f"{path}/c", makepath=True)
        await rec.wait_for((["c"],))
        assert [sorted(c[0]) for c in rec.calls] == [[], ["a"], ["a", "b"], ["b"], [], ["c"]]
        events = []
        evwatch = await zk.children_watch(path, lambda c, ev: events.append((c, ev)),
                                          send_event=True)
        await zk.create(f"{path}/d")
        await eventually(lambda: len(events) == 2)
        assert events[0] == (["c"], None) and events[1][1].type == (
            EventType.NODE_CHILDREN_CHANGED)
        await watch.close()
        await evwatch.close()
        assert await zk.check_watches(path) is False
        await zk.delete(path, recursive=True)


@aiotest
async def test_watches_follow_across_session_expiry(fast_server, proxy_for):
    proxy = proxy_for(fast_server)
    path = unique_path()
    async with AsyncZooKeeper(fast_server.hosts) as direct, \
            AsyncZooKeeper(proxy.hosts, timeout=1.0) as zk:
        await direct.create(path, b"v0")
        await zk.create(f"{path}/eph", ephemeral=True)
        data, children = Recorder(), Recorder()
        await DataWatch(zk, path, data)
        await ChildrenWatch(zk, path, children)
        lost_only = await DataWatch(zk, path, Recorder(), allow_session_lost=False)
        old_session = zk.session_id

        proxy.cut()
        await eventually(lambda: zk.state == ConnectionState.SUSPENDED)
        for _ in range(200):  # the server expires the session: its ephemeral goes
            if await direct.exists(f"{path}/eph") is None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the session was not expired")
        await direct.set(path, b"v1")  # missed: the old session's watches are gone
        await direct.create(f"{path}/new")
        proxy.heal()
        await eventually(lambda: zk.connected and zk.session_id not in (0, old_session))
        await eventually(lambda: data_of(data)[-1] == b"v1")
        await children.wait_for((["new"],))
        assert data_of(data) == [b"v0", b"v1"]
        assert lost_only.stopped
        # and the watches are armed again on the new session
        await direct.set(path, b"v2")
        await eventually(lambda: data_of(data)[-1] == b"v2")
        await direct.delete(f"{path}/new")
        await children.wait_for(([],))
        await direct.delete(path, recursive=True)


def test_watches_follow_across_a_server_restart(tmp_path):
    async def main():
        server = ZookapterProcess(tmp_path)
        server.start()
        try:
            await scenario(server)
        finally:
            server.stop()

    async def scenario(server):
        async with AsyncZooKeeper(server.hosts, timeout=10.0) as zk:
            await zk.create("/n", b"0")
            data, children = Recorder(), Recorder()
            await zk.data_watch("/n", data)
            await zk.children_watch("/n", children)
            session = zk.session_id
            server.kill()
            await eventually(lambda: zk.state == ConnectionState.SUSPENDED)
            server.start()
            async with AsyncZooKeeper(server.hosts) as other:  # maybe before zk is back
                await other.set("/n", b"1")
                await other.create("/n/kid")
            await eventually(lambda: data_of(data)[-1] == b"1", timeout=15)
            await children.wait_for((["kid"],), timeout=15)
            assert zk.session_id == session
            await zk.set("/n", b"2")
            await eventually(lambda: data_of(data)[-1] == b"2")
            assert data_of(data) == [b"0", b"1", b"2"]

    asyncio.run(asyncio.wait_for(main(), 60))


# --- blocking twins --------------------------------------------------------------------------

def test_sync_watches_and_api(zk_server):
    with ZooKeeperClient(zk_server.hosts) as zk:
        path = unique_path()
        zk.create(path, b"a")
        threads, data = set(), []

        def on_data(value, stat):
            threads.add(threading.current_thread().name)
            data.append(value)
            if value == b"b":
                zk.create(f"{path}/from-callback")  # blocking calls are fine here
            return value != b"stop"

        watch = zk.data_watch(path, on_data)
        assert data == [b"a"]  # the first call happened before data_watch returned
        kids: list = []
        cwatch = zk.children_watch(path, kids.append)
        assert kids == [[]]
        zk.set(path, b"b")
        deadline = time.monotonic() + 10
        while kids[-1] != ["from-callback"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert kids[-1] == ["from-callback"] and data[-1] == b"b"
        assert threads == {t for t in threads if t.startswith("zookapter-callbacks")}
        zk.set(path, b"stop")
        while not watch.stopped and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watch.stopped and data[-1] == b"stop"
        cwatch.stop()
        while not cwatch.stopped and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cwatch.stopped

        (value, _), children = zk.read_transaction().get(path).get_children(path).commit()
        assert value == b"stop" and children == ["from-callback"]
        assert zk.check_watches(path) is False
        assert zk.get_config()[1].aversion == -1
        with pytest.raises((e.ReconfigDisabledError, e.UnimplementedError)):
            zk.reconfig(leaving="1")
        assert zk.retry(zk.get, path)[0] == b"stop"
        zk.delete(path, recursive=True)


# --- servers that break the protocol ---------------------------------------------------------

HANDSHAKE = struct.pack(">iiqi", 0, 4000, 0x42, 16) + b"p" * 16 + b"\0"
STAT_BYTES = bytes(68)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def reply(xid: int, body: bytes = b"", err: int = 0) -> bytes:
    return frame(struct.pack(">iqi", xid, 1, err) + body)


MISBEHAVIOURS = {
    # what the first connection sends in answer to the first request
    "frame shorter than a reply header": lambda xid: frame(b"\0\0\0"),
    "truncated reply body": lambda xid: reply(xid, STAT_BYTES[:10]),
    "garbage notification": lambda xid: frame(struct.pack(">iqi", -1, 0, 0) + b"\xff\xfe"),
    "oversize frame": lambda xid: struct.pack(">i", 0xFFFFF + 1),
    "negative frame length": lambda xid: struct.pack(">i", -7),
    "reply with a later xid": lambda xid: reply(xid + 1, STAT_BYTES),
}


class FakeServer:
    """Handshakes (session 0x42), answers pings and requests sanely — except on its first
    connection, where the first request gets `misbehave(xid)`."""

    def __init__(self, misbehave) -> None:
        self.misbehave = misbehave
        self.connections: list[asyncio.StreamWriter] = []
        self.session_ids: list[int] = []
        self.server: asyncio.base_events.Server | None = None

    @property
    def hosts(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self.connections:
            w.transport.abort()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections.append(writer)
        first = len(self.connections) == 1
        try:
            (n,) = struct.unpack(">i", await reader.readexactly(4))
            self.session_ids.append(struct.unpack(">iqiq", (await reader.readexactly(n))[:24])[3])
            writer.write(frame(HANDSHAKE))
            while True:
                (n,) = struct.unpack(">i", await reader.readexactly(4))
                xid, op = struct.unpack(">ii", (await reader.readexactly(n))[:8])
                if first and xid > 0:
                    first = False
                    writer.write(self.misbehave(xid))
                elif xid == -2 or op != 3:
                    writer.write(reply(xid))
                else:
                    writer.write(reply(xid, STAT_BYTES))
        except (asyncio.IncompleteReadError, ConnectionError):
            return


@pytest.mark.parametrize("kind", list(MISBEHAVIOURS))
@aiotest
async def test_protocol_violation_drops_connection_and_reconnects(kind, caplog):
    caplog.set_level(logging.WARNING, logger="zookapter.client")
    async with FakeServer(MISBEHAVIOURS[kind]) as fake, \
            AsyncZooKeeper(fake.hosts, timeout=4.0) as zk:
        with pytest.raises(e.ConnectionLossError):
            await asyncio.wait_for(zk.exists("/"), 5)
        await eventually(lambda: len(fake.connections) == 2 and zk.connected)
        assert fake.session_ids == [0, 0x42]  # the session is resumed on the new connection
        assert await asyncio.wait_for(zk.exists("/"), 5) is not None
        assert any("protocol error" in r.getMessage() for r in caplog.records)


@aiotest
async def test_extra_reply_after_a_good_one_drops_the_connection(caplog):
    """A reply for no outstanding request: the good reply before it is delivered, then the
    connection is dropped and the session resumed."""
    caplog.set_level(logging.WARNING, logger="zookapter.client")
    async with FakeServer(lambda xid: reply(xid, STAT_BYTES) + reply(999, STAT_BYTES)) as fake, \
            AsyncZooKeeper(fake.hosts, timeout=4.0) as zk:
        assert await asyncio.wait_for(zk.exists("/"), 5) is not None
        await eventually(lambda: len(fake.connections) == 2 and zk.connected)
        assert await asyncio.wait_for(zk.exists("/"), 5) is not None
        assert any("no request outstanding" in r.getMessage() for r in caplog.records)


@aiotest
async def test_reply_larger_than_max_frame_from_a_real_server(zk_server):
    """jute.maxbuffer on the client side: a reply over `max_frame` is refused (the connection
    is dropped and the session resumed), smaller ones still work."""
    path = unique_path()
    async with AsyncZooKeeper(zk_server.hosts) as writer, \
            AsyncZooKeeper(zk_server.hosts, max_frame=4096) as zk:
        await writer.create(path, b"x" * 8000)
        await writer.create(f"{path}-small", b"y")
        session = zk.session_id
        with pytest.raises(e.ConnectionLossError):
            await asyncio.wait_for(zk.get(path), 10)
        await eventually(lambda: zk.connected)
        assert (await zk.get(f"{path}-small"))[0] == b"y"
        assert zk.session_id == session
        await writer.delete(path)
        await writer.delete(f"{path}-small")

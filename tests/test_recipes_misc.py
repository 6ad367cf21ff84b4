"""Counter, Party and Lease against both servers: concurrent incrementers in sessions and
processes end exact, a change whose reply is lost applies once, party membership follows
session expiry, lease exclusivity, renewal and expiry, the blocking twins, and each shared
with kazoo's recipe of the same kind."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct

import pytest
from recipes_support import (
    ExpirableSession,
    ReplyDroppingProxy,
    aiotest,
    eventually_async,
    kazoo_client,
    result_of,
    sessions,
    slow,
    spawn,
    start_proxy,
    sync_client,
    unique_path,
)

from zookapter.client import AsyncZooKeeper, EventType
from zookapter.protocol.consts import Op
from zookapter.recipes.counter import Counter, SyncCounter
from zookapter.recipes.lease import Lease, MultiLease, SyncLease, SyncMultiLease
from zookapter.recipes.party import Party, ShallowParty, SyncParty, SyncShallowParty

# --- Counter ---------------------------------------------------------------------------------

@slow
async def test_concurrent_incrementers_end_exact(zk_server):
    path = unique_path("counter")
    per_worker = 15
    procs = [await spawn("count", zk_server.hosts, path, per_worker) for _ in range(2)]
    async with sessions(zk_server.hosts, 4) as zks:
        counters = [Counter(zk, path) for zk in zks]

        async def work(counter: Counter) -> list[int]:
            seen = []
            for _ in range(per_worker):
                seen.append(await counter.add(1))
                assert counter.post_value == counter.pre_value + 1
            return seen

        results = await asyncio.gather(*(work(c) for c in counters))
        for p in procs:
            assert await result_of(p) == per_worker
        assert await counters[0].get() == per_worker * 6
        seen = [v for r in results for v in r]
        assert len(set(seen)) == len(seen)  # every in-process change saw its own result
        assert await zks[0].get_children(path) == []  # no change markers left


@aiotest
async def test_counter_types_and_curator_format(zk_server):
    path = unique_path("counter-types")
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        c = Counter(zk, path)
        assert await c.get() == 0
        assert await c.add(5) == 5 and await c.subtract(7) == -2
        assert (await zk.get(path))[0] == b"-2"
        with pytest.raises(TypeError):
            await c.add(1.5)
        f = Counter(zk, f"{path}-float", 1.5)
        assert await f.add(2.25) == 3.75 and (await zk.get(f"{path}-float"))[0] == b"3.75"
        cur = Counter(zk, f"{path}-curator", curator=True)
        await cur.add(300)
        assert (await zk.get(f"{path}-curator"))[0] == struct.pack(">i", 300)
        with pytest.raises(TypeError):
            Counter(zk, path, 0.5, curator=True)


@aiotest
async def test_change_whose_reply_is_lost_applies_once(zk_server):
    path = unique_path("counter-lost")
    proxy = start_proxy(zk_server, ReplyDroppingProxy)
    try:
        async with AsyncZooKeeper(zk_server.hosts) as direct, \
                AsyncZooKeeper(proxy.hosts, timeout=10.0) as zk:
            counter = Counter(zk, path)
            assert await counter.add(1) == 1
            proxy.drop_from_op = Op.MULTI  # the read gets its reply, the write does not
            adding = asyncio.ensure_future(counter.add(10))

            async def applied() -> bool:
                return (await direct.get(path))[0] == b"11"

            await eventually_async(applied)
            proxy.cut()
            proxy.drop_from_op, proxy.drop_replies = None, False
            proxy.heal()
            assert await asyncio.wait_for(adding, 20) == 11
            assert await Counter(direct, path).get() == 11
            assert await direct.get_children(path) == []
    finally:
        proxy.stop()


def test_counter_shared_with_kazoo(zk_server):
    path = unique_path("kazoo-counter")
    with kazoo_client(zk_server.hosts) as kz, sync_client(zk_server.hosts) as zk:
        ours, theirs = SyncCounter(zk, path), kz.Counter(path)
        ours += 5
        theirs += 3
        ours -= 1
        assert ours.value == theirs.value == 7
        assert (ours.pre_value, ours.post_value) == (8, 7)
        ours_f, theirs_f = SyncCounter(zk, f"{path}-f", 0.5), kz.Counter(f"{path}-f", 0.5)
        theirs_f += 1.25
        ours_f += 1.0
        assert ours_f.value == theirs_f.value == 2.75
        cur = SyncCounter(zk, f"{path}-c", curator=True)
        kz_cur = kz.Counter(f"{path}-c", support_curator=True)
        cur += 40
        kz_cur += 2
        assert cur.value == kz_cur.value == 42


# --- Party -----------------------------------------------------------------------------------

@aiotest
async def test_party_members_join_and_leave(zk_server):
    path = unique_path("party")
    async with sessions(zk_server.hosts, 5) as zks:
        parties = [Party(zk, path, f"m{i}") for i, zk in enumerate(zks)]
        for p in parties:
            await p.join()
        assert sorted(await parties[0].members()) == [f"m{i}" for i in range(5)]
        assert await parties[1].count() == 5
        assert await parties[2].leave() is True and await parties[2].leave() is False
        assert sorted(await parties[0].members()) == ["m0", "m1", "m3", "m4"]
        await zks[3].stop()  # a member whose process ends leaves with its session
        assert sorted(await parties[0].members()) == ["m0", "m1", "m4"]

        shallow = [ShallowParty(zk, f"{path}-shallow", f"s{i}") for i, zk in enumerate(zks[:2])]
        async with shallow[0], shallow[1]:
            assert sorted(await shallow[0].members()) == ["s0", "s1"]
        assert await shallow[0].members() == []


@aiotest
async def test_party_membership_follows_session_expiry(zk_server):
    path = unique_path("party-expiry")
    async with ExpirableSession(zk_server) as victim, \
            AsyncZooKeeper(zk_server.hosts) as zk_observer:
        zk_member = victim.zk
        member = Party(zk_member, path, "member")
        observer = Party(zk_observer, path, "observer")
        await member.join()
        await observer.join()
        old_session = zk_member.session_id
        events = await zk_observer.add_watch(path, recursive=True)
        await victim.expire()
        # the observer sees the member's node go with the old session and come back
        seen = []
        while seen[-2:] != [(EventType.NODE_DELETED, member.create_path),
                            (EventType.NODE_CREATED, member.create_path)]:
            ev = await asyncio.wait_for(events.__anext__(), 15)
            seen.append((ev.type, ev.path))
        await events.close()
        stat = await zk_observer.exists(member.create_path)
        assert stat.ephemeralOwner == zk_member.session_id != old_session
        assert sorted(await observer.members()) == ["member", "observer"]
        await member.leave()
        assert await observer.members() == ["observer"]


def test_party_shared_with_kazoo(zk_server):
    path = unique_path("kazoo-party")
    with kazoo_client(zk_server.hosts) as kz, sync_client(zk_server.hosts) as zk:
        theirs, ours = kz.Party(path, "kazoo"), SyncParty(zk, path, "zookapter")
        theirs.join()
        with ours:
            assert sorted(ours) == sorted(theirs) == ["kazoo", "zookapter"]
            assert len(ours) == len(theirs) == 2
        assert list(theirs) == ["kazoo"]
        theirs.leave()
        theirs_s = kz.ShallowParty(f"{path}-s", "kazoo")
        ours_s = SyncShallowParty(zk, f"{path}-s", "zookapter")
        theirs_s.join()
        ours_s.join()
        assert sorted(ours_s) == sorted(theirs_s) == ["kazoo", "zookapter"]
        ours_s.leave()
        assert list(theirs_s) == ["kazoo"]


# --- Lease -----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2030, 1, 1, 12, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@aiotest
async def test_lease_is_exclusive_renewable_and_expires(zk_server):
    path = unique_path("lease")
    clock = FakeClock()
    async with sessions(zk_server.hosts, 6) as zks:
        leases = [Lease(zk, path, dt.timedelta(seconds=60), f"c{i}", clock)
                  for i, zk in enumerate(zks)]
        obtained = await asyncio.gather(*(lease.acquire() for lease in leases))
        assert sum(obtained) == 1
        holder = obtained.index(True)
        assert bool(leases[holder])
        assert (await leases[0].holder())[0] == f"c{holder}"
        other = (holder + 1) % 6
        assert not await leases[other].acquire()
        clock.advance(30)
        assert await leases[holder].acquire()  # renewal: now ends 90 s after the start
        clock.advance(59)
        assert not await leases[other].acquire()
        clock.advance(2)
        assert await leases[other].acquire()
        assert not await leases[holder].acquire()
        assert await leases[holder].release() is False
        assert await leases[other].release() is True
        assert await leases[holder].acquire()
        # the short lock nodes are gone, only the lease remains
        assert await zks[0].get_children(path) == ["lease_holder"]

        multi = [MultiLease(zk, 2, f"{path}-multi", 60, f"m{i}", clock)
                 for i, zk in enumerate(zks)]
        assert sum(await asyncio.gather(*(m.acquire() for m in multi))) == 2


def test_lease_shared_with_kazoo(zk_server):
    path = unique_path("kazoo-lease")
    clock = FakeClock()
    minute = dt.timedelta(minutes=1)
    with kazoo_client(zk_server.hosts) as kz, sync_client(zk_server.hosts) as zk:
        ours = SyncLease(zk, path, minute, "zookapter", clock)
        assert ours.acquire()
        assert not kz.NonBlockingLease(path, minute, "kazoo", utcnow=clock)
        raw, _ = zk.get(f"{path}/lease_holder")
        assert raw == (b'{"version": 1, "holder": "zookapter", "end": "2030-01-01T12:01:00"}')
        clock.advance(61)
        assert kz.NonBlockingLease(path, minute, "kazoo", utcnow=clock)
        assert not ours.acquire()
        assert ours.holder() == ("kazoo", dt.datetime(2030, 1, 1, 12, 2, 1))
        clock.advance(61)
        assert ours.acquire()

        mpath = f"{path}-multi"
        assert SyncMultiLease(zk, 2, mpath, minute, "z", clock).acquire()
        assert kz.MultiNonBlockingLease(2, mpath, minute, "k", utcnow=clock)
        assert not kz.MultiNonBlockingLease(2, mpath, minute, "k2", utcnow=clock)
        assert not SyncMultiLease(zk, 2, mpath, minute, "z2", clock).acquire()

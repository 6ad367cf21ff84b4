"""LeaderLatch and LeaderElection against both servers: one leader at a time among contenders
in separate sessions and processes, hand-over in queue order, leadership given up on
suspension and moving when the leader's session expires, cancellation, the blocking twins,
and a shared election with kazoo's Election."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest
from recipes_support import (
    ExpirableSession,
    aiotest,
    assert_disjoint,
    eventually,
    eventually_async,
    kazoo_client,
    result_of,
    sessions,
    spawn,
    start_proxy,
    sync_client,
    unique_path,
)

from zookapter.client import AsyncZooKeeper
from zookapter.recipes.election import (
    LeaderElection,
    LeaderLatch,
    LeadershipLost,
    SyncLeaderElection,
    SyncLeaderLatch,
)


def record_intervals(latch: LeaderLatch, who: str, out: list[tuple[float, float, str]]
                     ) -> None:
    started: list[float] = []

    def listener(leader: bool) -> None:
        if leader:
            started.append(time.monotonic())
        else:
            out.append((started.pop(), time.monotonic(), who))

    latch.add_listener(listener)


async def _equals(aw, expected) -> bool:
    return await aw == expected


def slow(fn):
    """Run an async test with a longer overall limit than aiotest's."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 90))
    return wrapper


@slow
async def test_one_leader_at_a_time_six_sessions_three_processes(zk_server):
    path = unique_path("elect")
    hold, rounds = 0.1, 2
    procs = [await spawn("elect", zk_server.hosts, path, f"proc{i}", hold, rounds)
             for i in range(3)]
    intervals: list[tuple[float, float, str]] = []

    async def contender(zk: AsyncZooKeeper, who: str) -> None:
        async def lead() -> None:
            start = time.monotonic()
            await asyncio.sleep(hold)
            intervals.append((start, time.monotonic(), who))
        election = LeaderElection(zk, path, who)
        for _ in range(rounds):
            await election.run(lead)

    async with sessions(zk_server.hosts, 6) as zks:
        await asyncio.gather(*(contender(zk, f"sess{i}") for i, zk in enumerate(zks)))
        for p in procs:
            intervals.extend(tuple(i) for i in await result_of(p))
        assert await LeaderElection(zks[0], path).contenders() == []
    assert len(intervals) == (6 + 3) * rounds
    assert {who for _, _, who in intervals} == {f"sess{i}" for i in range(6)} | {
        f"proc{i}" for i in range(3)}
    assert_disjoint(intervals)


@aiotest
async def test_latch_hands_over_in_queue_order(zk_server):
    path = unique_path("latch")
    intervals: list[tuple[float, float, str]] = []
    async with sessions(zk_server.hosts, 6) as zks:
        latches = [LeaderLatch(zk, path, f"c{i}") for i, zk in enumerate(zks)]
        for i, latch in enumerate(latches):
            record_intervals(latch, f"c{i}", intervals)
            await latch.start()
        assert await latches[3].contenders() == [f"c{i}" for i in range(6)]
        assert await latches[0].await_leadership(10)
        assert not await latches[1].await_leadership(0.2)
        for i, latch in enumerate(latches):
            await latch.await_leadership(10)
            assert [x.has_leadership for x in latches] == [j == i for j in range(6)]
            assert (await latch.contenders())[0] == f"c{i}"
            await latch.close()
        assert [who for _, _, who in sorted(intervals)] == [f"c{i}" for i in range(6)]
        assert_disjoint(intervals)
        assert await zks[0].get_children(path) == []


@slow
async def test_leadership_moves_when_the_partitioned_leaders_session_expires(zk_server):
    """The leader's network hangs (a stalled proxy): it steps down when its client gives the
    connection up, before the server expires the session and the next contender wins; the
    ex-leader's election run raises LeadershipLost and, back online, it queues again."""
    path = unique_path("expire")
    proxy = start_proxy(zk_server)
    intervals: list[tuple[float, float, str]] = []
    try:
        async with AsyncZooKeeper(proxy.hosts, timeout=4.0) as zk_a, \
                AsyncZooKeeper(zk_server.hosts, timeout=4.0) as zk_b:
            election = LeaderElection(zk_a, path, "a")
            cancelled = asyncio.Event()

            async def lead_forever() -> None:
                start = time.monotonic()
                try:
                    await asyncio.sleep(3600)
                finally:
                    intervals.append((start, time.monotonic(), "a"))
                    cancelled.set()

            run = asyncio.ensure_future(election.run(lead_forever))
            await eventually(lambda: election.is_leader)
            latch_b = LeaderLatch(zk_b, path, "b")
            record_intervals(latch_b, "b", intervals)
            await latch_b.start()
            assert not await latch_b.await_leadership(0.3)
            old_session = zk_a.session_id

            proxy.stall()
            with pytest.raises(LeadershipLost):
                await asyncio.wait_for(run, 20)
            assert cancelled.is_set() and not election.is_leader
            assert await latch_b.await_leadership(30)
            assert_disjoint(intervals)

            proxy.cut()
            proxy.heal()
            await eventually(lambda: zk_a.connected and zk_a.session_id != old_session, 20)
            latch_a = LeaderLatch(zk_a, path, "a2")
            await latch_a.start()
            assert await latch_a.contenders() == ["b", "a2"]
            assert not latch_a.has_leadership
            await latch_b.close()
            assert await latch_a.await_leadership(10)
            await latch_a.close()
    finally:
        proxy.stop()


@aiotest
async def test_latch_reenters_after_session_expiry(zk_server):
    path = unique_path("reenter")
    events: list[bool] = []
    async with ExpirableSession(zk_server) as victim, \
            AsyncZooKeeper(zk_server.hosts) as zk_b:
        latch_a = LeaderLatch(victim.zk, path, "a")
        latch_a.add_listener(events.append)
        await latch_a.start()
        assert await latch_a.await_leadership(10)
        latch_b = LeaderLatch(zk_b, path, "b")
        await latch_b.start()
        first_node = latch_a.node

        await victim.expire()
        assert await latch_b.await_leadership(10)
        await eventually(lambda: latch_a.node not in (None, first_node))
        assert not latch_a.has_leadership and events == [True, False]
        assert await latch_b.contenders() == ["b", "a"]
        await latch_b.close()
        assert await latch_a.await_leadership(10)
        assert events == [True, False, True]
        await latch_a.close()


@aiotest
async def test_suspension_pauses_leadership_unless_told_otherwise(zk_server):
    path = unique_path("blip")
    proxy = start_proxy(zk_server)
    try:
        async with AsyncZooKeeper(proxy.hosts, timeout=10.0) as zk:
            strict = LeaderLatch(zk, path, "strict")
            lenient = LeaderLatch(zk, f"{path}-2", "lenient", suspended_is_lost=False)
            strict_events: list[bool] = []
            lenient_events: list[bool] = []
            strict.add_listener(strict_events.append)
            lenient.add_listener(lenient_events.append)
            for latch in (strict, lenient):
                await latch.start()
                assert await latch.await_leadership(10)
            session = zk.session_id

            proxy.cut()
            await eventually(lambda: not zk.connected)
            assert not strict.has_leadership and lenient.has_leadership
            proxy.heal()
            await eventually(lambda: zk.connected)
            assert await strict.await_leadership(10)
            assert zk.session_id == session
            assert strict_events == [True, False, True] and lenient_events == [True]
            await strict.close()
            await lenient.close()
    finally:
        proxy.stop()


@aiotest
async def test_cancel_withdraws_a_waiting_or_leading_contender(zk_server):
    path = unique_path("cancel")
    async with sessions(zk_server.hosts, 2) as (zk_a, zk_b):
        holder = LeaderLatch(zk_a, path, "holder")
        await holder.start()
        waiting = LeaderElection(zk_b, path, "waiting")
        ran = []
        run = asyncio.ensure_future(waiting.run(ran.append, 1))
        await eventually_async(
            lambda: _equals(holder.contenders(), ["holder", "waiting"]))
        waiting.cancel()
        assert await asyncio.wait_for(run, 10) is None and ran == []
        assert await holder.contenders() == ["holder"]
        await holder.close()

        leading = LeaderElection(zk_b, path, "leading")
        started = asyncio.Event()

        async def lead() -> str:
            started.set()
            await asyncio.sleep(3600)
            return "never"

        run = asyncio.ensure_future(leading.run(lead))
        await asyncio.wait_for(started.wait(), 10)
        leading.cancel()
        assert await asyncio.wait_for(run, 10) is None
        assert await leading.contenders() == []
        # a plain function's result and errors come back from run()
        assert await leading.run(lambda x: x * 2, 21) == 42
        with pytest.raises(ZeroDivisionError):
            await leading.run(lambda: 1 / 0)


@aiotest
async def test_cancelled_candidates_leave_no_node_behind(zk_server):
    """Cancelling run() at any point — even with its create in flight — leaves no contender
    node that would block the election."""
    path = unique_path("cancelled")
    async with sessions(zk_server.hosts, 2) as (zk_a, zk_b):
        async with LeaderLatch(zk_a, path, "holder") as holder:
            assert await holder.await_leadership(10)
            for steps in range(12):
                run = asyncio.ensure_future(LeaderElection(zk_b, path, "x").run(print))
                for _ in range(steps):
                    await asyncio.sleep(0)
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
            await eventually_async(lambda: _equals(holder.contenders(), ["holder"]))
        latch = LeaderLatch(zk_b, path, "after")
        await latch.start()
        assert await latch.await_leadership(10)
        await latch.close()


def test_blocking_twins(zk_server):
    path = unique_path("sync")
    with sync_client(zk_server.hosts) as a, sync_client(zk_server.hosts) as b:
        latch = SyncLeaderLatch(a, path, "latch")
        seen: list[tuple[bool, str]] = []
        latch.add_listener(lambda leader: seen.append((leader, threading.current_thread().name)))
        with latch:
            assert latch.await_leadership(10) and latch.has_leadership
            election = SyncLeaderElection(b, path, "election")
            result: list[object] = []
            t = threading.Thread(target=lambda: result.append(
                election.run(lambda: election.is_leader)))
            t.start()
            deadline = time.monotonic() + 10
            while latch.contenders() != ["latch", "election"]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        t.join(10)
        assert result == [True]
        assert [leader for leader, _ in seen] == [True, False]
        assert all(name.startswith("zookapter-callbacks") for _, name in seen)

        election = SyncLeaderElection(b, path, "cancelled")
        with SyncLeaderLatch(a, path, "holder") as holder:
            assert holder.await_leadership(10)
            t = threading.Thread(target=lambda: result.append(election.run(lambda: "ran")))
            t.start()
            while holder.contenders() != ["holder", "cancelled"]:
                time.sleep(0.02)
            election.cancel()
            t.join(10)
        assert result == [True, None]


def test_kazoo_election_shares_the_path(zk_server):
    """kazoo's Election is a Lock on `<uuid>__lock__<seq>` nodes: ours queue with it."""
    path = unique_path("kazoo")
    with kazoo_client(zk_server.hosts) as kz, sync_client(zk_server.hosts) as zk:
        kz_election = kz.Election(path, "kazoo")
        release_kazoo = threading.Event()
        kazoo_led = threading.Event()

        def kazoo_lead() -> None:
            kazoo_led.set()
            release_kazoo.wait(30)

        kt = threading.Thread(target=kz_election.run, args=(kazoo_lead,))
        kt.start()
        assert kazoo_led.wait(10)
        ours = SyncLeaderElection(zk, path, "zookapter")
        result: list[object] = []
        t = threading.Thread(target=lambda: result.append(ours.run(lambda: "ours")))
        t.start()
        deadline = time.monotonic() + 10
        while kz_election.contenders() != ["kazoo", "zookapter"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert ours.contenders() == ["kazoo", "zookapter"]
        time.sleep(0.2)
        assert result == [] and not ours.is_leader
        release_kazoo.set()
        kt.join(10)
        t.join(10)
        assert result == ["ours"]

        # and the other way round: kazoo waits for our leader
        with SyncLeaderLatch(zk, path, "latch") as latch:
            assert latch.await_leadership(10)
            kazoo_led.clear()
            release_kazoo.clear()
            kt = threading.Thread(target=kz_election.run, args=(kazoo_lead,))
            kt.start()
            while latch.contenders() != ["latch", "kazoo"]:
                time.sleep(0.02)
            assert not kazoo_led.wait(0.3)
        assert kazoo_led.wait(10)
        release_kazoo.set()
        kt.join(10)

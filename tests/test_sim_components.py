"""The simulator's building blocks on their own: scheduler, clocks, network, disk, nemesis."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest

from zookapter.sim import (
    Binding,
    Disk,
    DiskImage,
    DiskProfile,
    Latency,
    LinkProfile,
    NemesisConfig,
    Network,
    NetworkConfig,
    NodeContext,
    Scheduler,
    SimConfig,
    Simulation,
    Torn,
    generate,
)
from zookapter.sim.clock import NodeClock
from zookapter.sim.nemesis import Crash, Heal, Partition, Restart
from zookapter.sim.scheduler import BudgetExceeded

# -- scheduler -------------------------------------------------------------------------------


def test_scheduler_orders_by_time_then_insertion() -> None:
    sched = Scheduler()
    seen: list[tuple[int, str]] = []
    for name, at in [("b", 5), ("a", 3), ("c", 5), ("d", 0)]:
        sched.at(at, lambda n=name: seen.append((sched.now_ms, n)))
    sched.run(10)
    assert seen == [(0, "d"), (3, "a"), (5, "b"), (5, "c")]
    assert sched.now_ms == 10


def test_scheduler_refuses_the_past_and_stops_runaways() -> None:
    sched = Scheduler(events_max=100)
    sched.run(10)
    with pytest.raises(AssertionError):
        sched.at(5, print)

    def again() -> None:
        sched.after(0, again)

    sched.after(0, again)
    with pytest.raises(BudgetExceeded):
        sched.run(20)


def test_scheduler_stop_condition() -> None:
    sched = Scheduler()
    hits: list[int] = []
    for t in range(10):
        sched.at(t, hits.append, t)
    sched.run(100, stop=lambda: len(hits) == 3)
    assert hits == [0, 1, 2] and sched.now_ms == 2


# -- clocks and latency ------------------------------------------------------------------------


def test_clock_offset_rate_and_jumps() -> None:
    clock = NodeClock(offset_ms=1000)
    assert clock.local(0) == 1000 and clock.local(50) == 1050
    clock.jump(50, 500)
    assert clock.local(60) == 1560
    clock.set_rate(60, 2.0)
    assert clock.local(70) == 1580
    clock.restart(100, 7)  # a new process: new origin, same (hardware) rate
    assert clock.local(110) == 27
    with pytest.raises(ValueError):
        clock.jump(110, -5)
    wall = NodeClock(monotonic=False)
    wall.jump(10, -100)
    assert wall.local(10) == -90


def test_latency_samples_stay_in_range() -> None:
    rng = Random(1)
    lat = Latency(2, 4, slow_p=0.1, slow_max_ms=50)
    samples = [lat.sample(rng) for _ in range(2000)]
    assert min(samples) == 2 and max(samples) <= 50 and any(s > 4 for s in samples)
    assert Latency(3, 3).sample(rng) == 3
    assert lat.scaled(10).max_ms == 40
    with pytest.raises(ValueError):
        Latency(5, 1)


# -- network ---------------------------------------------------------------------------------


class Sink:
    def __init__(self, nodes: list[int]) -> None:
        self.up = {n: True for n in nodes}
        self.events: list[tuple[Any, ...]] = []
        self.sched: Scheduler | None = None

    def is_up(self, node: int) -> bool:
        return self.up[node]

    def deliver(self, dst: int, src: int, payload: Any) -> None:
        self.events.append(("msg", dst, src, payload))

    def connection_event(self, node: int, peer: int, connected: bool, channel: Any) -> None:
        self.events.append(("conn" if connected else "disc", node, peer) + (
            (channel,) if channel is not None else ()))

    def msgs(self, dst: int) -> list[Any]:
        return [e[3] for e in self.events if e[0] == "msg" and e[1] == dst]


def network(connections: bool = True, **link: Any) -> tuple[Scheduler, Network, Sink]:
    sched = Scheduler()
    sink = Sink([1, 2, 3])
    config = NetworkConfig(connections=connections,
                           link=LinkProfile(Latency(1, 30), **link),
                           detect=Latency(5, 10), connect_timeout_ms=50)
    return sched, Network(sched, Random(3), sink, config), sink


def test_connection_keeps_order_despite_random_latency() -> None:
    sched, net, sink = network()
    for i in range(50):
        net.send(1, 2, i, open_=True)
        net.send(3, 2, 100 + i, open_=True)
    sched.run(1000)
    assert sink.events[0][0] == "conn"
    got = sink.msgs(2)
    assert [m for m in got if m < 100] == list(range(50))
    assert [m for m in got if m >= 100] == list(range(100, 150))
    assert got != sorted(got)  # the two connections interleave


def test_send_without_open_needs_a_connection() -> None:
    sched, net, sink = network()
    net.send(1, 2, "lost")
    sched.run(100)
    assert sink.events == [] and net.dropped == 1


def test_partition_breaks_connection_and_notifies_both_ends() -> None:
    sched, net, sink = network()
    net.send(1, 2, "a", open_=True)
    sched.run(100)
    net.send(1, 2, "in flight")
    net.partition([[1], [2, 3]], [1, 2, 3])
    net.send(1, 2, "after")
    net.send(1, 2, "reopen?", open_=True)  # 1 has not been told yet: still lost
    sched.run(200)
    assert sink.msgs(2) == ["a"]
    assert sorted(e for e in sink.events if e[0] == "disc") == [("disc", 1, 2), ("disc", 2, 1)]
    net.send(1, 2, "refused", open_=True)  # told now, but still partitioned
    sched.run(400)
    assert sink.events[-1] == ("disc", 1, 2)
    net.heal()
    net.send(1, 2, "b", open_=True)
    sched.run(600)
    assert sink.msgs(2) == ["a", "b"]


def test_crash_breaks_connections_and_only_the_survivor_hears() -> None:
    sched, net, sink = network()
    net.send(1, 2, "a", open_=True)
    sched.run(100)
    net.send(1, 2, "in flight")
    sink.up[2] = False
    net.node_crashed(2)
    sched.run(200)
    assert sink.msgs(2) == ["a"]
    assert [e for e in sink.events if e[0] == "disc"] == [("disc", 1, 2)]
    net.send(1, 2, "down", open_=True)
    sched.run(300)
    assert sink.events[-1] == ("disc", 1, 2)  # connect timed out


def test_notice_for_a_dead_incarnation_is_dropped() -> None:
    sched, net, sink = network()
    net.send(1, 2, "a", open_=True)
    sched.run(100)
    net.close(2, 1)  # 1 will be told later...
    sink.up[1] = False
    net.node_crashed(1)  # ...but crashes first
    sink.up[1] = True
    sched.run(300)
    assert [e for e in sink.events if e[0] == "disc"] == []


def test_channels_are_separate_connections() -> None:
    sched, net, sink = network()
    net.send(1, 2, "vote", open_=True, channel="election")
    net.send(1, 2, "zab", open_=True, channel="quorum")
    sched.run(100)
    net.close(1, 2, channel="quorum")
    net.send(1, 2, "vote 2", channel="election")
    net.send(1, 2, "zab 2", channel="quorum")
    sched.run(200)
    assert sink.msgs(2) == ["vote", "zab", "vote 2"] or sink.msgs(2) == ["zab", "vote", "vote 2"]
    assert [e for e in sink.events if e[0] == "disc"] == [("disc", 2, 1, "quorum")]
    net.partition([[1], [2]], [1, 2])
    sched.run(300)
    assert sorted(e for e in sink.events if e[0] == "disc")[:2] == [
        ("disc", 1, 2, "election"), ("disc", 2, 1, "election")]


def test_datagrams_reorder_drop_and_duplicate() -> None:
    sched, net, sink = network(connections=False, drop_p=0.2, duplicate_p=0.2)
    for i in range(300):
        net.send(1, 2, i)
    sched.run(1000)
    got = sink.msgs(2)
    assert got != sorted(got)
    assert len(set(got)) < 300  # some dropped
    assert len(got) > len(set(got))  # some duplicated


def test_datagrams_lost_across_partition_even_in_flight() -> None:
    sched, net, sink = network(connections=False)
    net.send(1, 2, "x")
    net.block(1, 2)
    net.send(2, 1, "one way is fine")
    sched.run(100)
    assert sink.msgs(2) == [] and sink.msgs(1) == ["one way is fine"]


# -- disk ------------------------------------------------------------------------------------


def test_disk_sync_and_crash_keep_synced_prefix() -> None:
    disk = Disk()
    disk.append("log", [1, 2, 3])
    disk.sync("log")
    disk.append("log", [4, 5, 6])
    disk.put("epoch", 7)
    profile = DiskProfile(tear_p=0.0)
    outcomes = {disk.crash(Random(s), profile).log("log") for s in range(50)}
    assert outcomes == {(1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4, 5), (1, 2, 3, 4, 5, 6)}
    assert disk.crash(Random(0), profile).file("epoch") == 7


def test_disk_sync_covers_only_records_written_before_the_call() -> None:
    disk = Disk()
    disk.append("log", ["a", "b"])
    upto = disk.length("log")
    disk.append("log", ["c"])
    disk.sync("log", upto)
    assert disk.durable_image().log("log") == ("a", "b")


def test_crash_may_tear_the_first_lost_record() -> None:
    disk = Disk(DiskImage({"log": ("a",)}))
    disk.append("log", ["b", "c"])
    images = [disk.crash(Random(s), DiskProfile(tear_p=1.0)).log("log") for s in range(40)]
    assert ("a", Torn("b")) in images and ("a", "b", Torn("c")) in images
    assert all(not isinstance(r, Torn) for img in images for r in img[:-1])


def test_unsynced_truncation_may_be_undone_by_a_crash() -> None:
    disk = Disk(DiskImage({"log": ("a", "b", "c")}))
    disk.truncate("log", 1)
    disk.append("log", ["x"])
    images = {disk.crash(Random(s), DiskProfile(tear_p=0.0)).log("log") for s in range(60)}
    assert images == {("a", "b", "c"), ("a",), ("a", "x")}
    disk.sync("log")
    assert disk.crash(Random(0), DiskProfile()).log("log") == ("a", "x")


def test_disk_without_power_loss_keeps_everything() -> None:
    disk = Disk()
    disk.append("log", [1, 2])
    assert disk.crash(Random(0), DiskProfile(lose_unsynced=False)).log("log") == (1, 2)


# -- nemesis ---------------------------------------------------------------------------------


def test_nemesis_is_a_function_of_the_seed_and_recovers_everything() -> None:
    config = NemesisConfig(duration_ms=5_000, max_down=2)
    first = generate([1, 2, 3], config, Random(42))
    assert first == generate([1, 2, 3], config, Random(42))
    assert first != generate([1, 2, 3], config, Random(43))
    down: set[int] = set()
    partitioned = False
    for time_ms, fault in first:
        assert time_ms <= config.duration_ms
        if isinstance(fault, Crash):
            assert fault.node not in down
            down.add(fault.node)
            assert len(down) <= 2
        elif isinstance(fault, Restart):
            down.remove(fault.node)
        elif isinstance(fault, Partition):
            partitioned = True
            assert sorted(n for g in fault.groups for n in g) == [1, 2, 3]
        elif isinstance(fault, Heal):
            partitioned = False
    assert not down and not partitioned


# -- the simulation's node plumbing ----------------------------------------------------------


class Probe:
    """A node that does what its events say and remembers what it saw."""

    def __init__(self, node_id: int, image: DiskImage, now_ms: int) -> None:
        self.id = node_id
        self.image = image
        self.seen: list[tuple[int | None, Any]] = []
        self.booted_at = now_ms

    def step(self, event: Any, now_ms: int | None = None) -> list[Any]:
        self.seen.append((now_ms, event))
        return [event] if isinstance(event, tuple) else []

    def tick(self, now_ms: int) -> list[Any]:
        return []


def _act(ctx: NodeContext, action: tuple[Any, ...]) -> None:
    kind, *args = action
    if kind == "append":
        ctx.append("log", args)
        ctx.fsync("log", "synced")
    elif kind == "put":
        ctx.put("epoch", args[0], "put done")
    elif kind == "put_now":
        ctx.put_now("epoch", args[0])
    elif kind == "send":
        ctx.send(args[0], "hello", open_=True)


def probe_sim(**binding: Any) -> Simulation:
    b = Binding(actions={tuple: _act}, message=lambda src, msg: f"{msg} from {src}",
                disconnected=lambda peer, channel: f"lost {peer}",
                request=lambda rid, req: req, tick_interval_ms=10, **binding)
    config = SimConfig(nodes=(1, 2), disk=DiskProfile(fsync=Latency(5, 5), put=Latency(5, 5),
                                                       tear_p=0.0))
    sim = Simulation(1, b, lambda n, image, now, rng: Probe(n, image, now), config)
    sim.boot()
    return sim


def test_disk_completions_come_back_as_events_and_crashes_drop_them() -> None:
    sim = probe_sim()
    sim.submit(1, 0, ("append", "a"), 0)
    sim.run(20)
    assert [e for _, e in sim.node(1).seen] == [("append", "a"), "synced"]
    sim.submit(1, 1, ("append", "b"), 0)
    sim.submit(1, 2, ("put", 7), 0)
    sim.run(21)
    sim.crash(1)
    sim.run(100)
    sim.start(1)
    image = sim.node(1).image
    assert image.log("log")[0] == "a" and image.file("epoch") is None
    sim.submit(1, 3, ("put_now", 8), 0)
    sim.run(101)
    sim.crash(1)
    sim.start(1)
    assert sim.node(1).image.file("epoch") == 8 and sim.node(1).seen == []


def test_boot_hook_timed_steps_and_disconnects_reach_the_node() -> None:
    booted: list[int] = []

    def boot(node: Probe, now_ms: int) -> list[Any]:
        booted.append(now_ms)
        return [("send", 3 - node.id)]

    sim = probe_sim(boot=boot, timed_step=True)
    assert booted == [sim.node(1).booted_at, sim.node(2).booted_at]
    sim.run(200)
    # Node 1 booted first: its connect to 2 (not up yet) failed; 2's connect to 1 worked.
    assert [e for _, e in sim.node(1).seen] == ["hello from 2", "lost 2"]
    assert all(now is not None for now, _ in sim.node(1).seen)
    sim.crash(1)
    sim.run(400)
    assert [e for _, e in sim.node(2).seen] == ["lost 1"]

"""The simulated cluster: nodes driven through their `step(event)` / `tick(now_ms)` cores by
seeded fake components (scheduler, network, disks, clocks).

The simulator knows nothing about a node's protocol. A `Binding` is the glue a real shell
would have: it says how to turn a received message, a connection notice or a client request
into one of the node's events, and, per action type the node returns, what to do with it
through a `NodeContext` (send, write, fsync, reply, report a fact). Actions are executed in
the order returned, so a node's "persist before send" ordering is honoured; disk operations
complete later and their completion comes back to the node as the event the handler chose.

A node is rebuilt from its disk on restart: `factory(node_id, image, now_ms, rng)` gets the
`DiskImage` that survived the crash (see disk.py) and must recover from it alone; the
binding's optional `boot(node, now_ms)` returns the actions to run right then (cut a torn
log tail, report `Restored`, start an election). Everything scheduled for a node carries its
incarnation and is dropped if the node crashed since.

Disk writes come in two speeds. `fsync`/`put` go through the node's disk queue (latency,
slow-disk faults; completions in request order) and come back as an event. `put_now` and
`sync_now` are durable at once, for cores whose contract treats a write as synchronous
(ZooKeeper blocks on writing acceptedEpoch/currentEpoch before answering).

All randomness comes from streams derived from the seed by purpose (network, disk, ticks,
each node incarnation, ...), so changing how one part draws numbers does not reshuffle the
others.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .checks import Observed
from .clock import NodeClock
from .disk import EMPTY_IMAGE, Disk, DiskImage, DiskProfile
from .history import Outcome
from .nemesis import ClockJump, Crash, DiskSpeed, Fault, Heal, Partition, Restart
from .network import LinkProfile, Network, NetworkConfig
from .scheduler import EVENTS_MAX_DEFAULT, Scheduler, Trace

Factory = Callable[[int, DiskImage, int, random.Random], Any]
Handler = Callable[["NodeContext", Any], None]
ReplySink = Callable[[int, int, Outcome], None]  # (node, request id, outcome)


def stream(seed: int, purpose: str) -> random.Random:
    """An independent random stream for one purpose of one run (str seeds hash stably)."""
    return random.Random(f"{seed}/{purpose}")


@dataclass(frozen=True)
class Binding:
    """How the simulator talks to one kind of node; see the module docstring."""
    actions: Mapping[type, Handler]
    message: Callable[[int, Any], Any]  # (sender, payload) -> event
    disconnected: Callable[[int, Hashable], Any] | None = None  # (peer, channel) -> event
    connected: Callable[[int, Hashable], Any] | None = None  # (peer, channel) -> event
    request: Callable[[int, Any], Any] | None = None  # (request id, client request) -> event
    boot: Callable[[Any, int], list[Any]] | None = None  # (node, now_ms): first actions
    tick_interval_ms: int = 50
    timed_step: bool = False  # call node.step(event, now_ms) rather than node.step(event)
    describe: Callable[[Any], str] = lambda event: type(event).__name__


@dataclass(frozen=True)
class SimConfig:
    nodes: tuple[int, ...] = (1, 2, 3)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    links: Mapping[tuple[int, int], LinkProfile] = field(default_factory=dict)  # (src, dst)
    disk: DiskProfile = field(default_factory=DiskProfile)
    clock_origin_max_ms: int = 10**9  # each process's clock starts at a random reading
    clock_skew: float = 0.0  # node clock rates drawn from [1 - skew, 1 + skew]
    monotonic_clocks: bool = True
    events_max: int = EVENTS_MAX_DEFAULT


class NodeContext:
    """What action handlers may do on behalf of one node incarnation."""
    __slots__ = ("_sim", "_slot", "node_id", "incarnation")

    def __init__(self, sim: Simulation, slot: _Slot) -> None:
        self._sim = sim
        self._slot = slot
        self.node_id = slot.node_id
        self.incarnation = slot.incarnation

    @property
    def now_ms(self) -> int:
        """The node's local clock."""
        return self._slot.clock.local(self._sim.scheduler.now_ms)

    @property
    def peers(self) -> tuple[int, ...]:
        return tuple(n for n in self._sim.config.nodes if n != self.node_id)

    def send(self, dst: int, payload: Any, open_: bool = False,
             channel: Hashable = None) -> None:
        """Send over the connection (or as a datagram, in datagram mode); `open_` connects
        first if there is no connection (see network.py)."""
        self._sim.network.send(self.node_id, dst, payload, open_, channel)

    def close(self, dst: int, channel: Hashable = None) -> None:
        self._sim.network.close(self.node_id, dst, channel)

    def append(self, log: str, records: Any) -> None:
        self._slot.disk.append(log, records)

    def truncate(self, log: str, length: int) -> None:
        self._slot.disk.truncate(log, length)

    def log_length(self, log: str) -> int:
        return self._slot.disk.length(log)

    def records(self, log: str) -> tuple[Any, ...]:
        """What the node has written to `log` (e.g. to find where a Truncate(zxid) cuts)."""
        return self._slot.disk.records(log)

    def fsync(self, log: str, event: Any = None) -> None:
        """Make `log` durable; when that completes, `event` (if any) is stepped."""
        self._sim.disk_op(self._slot, self._sim.config.disk.fsync, "sync", log,
                          self._slot.disk.length(log), event)

    def put(self, name: str, value: Any, event: Any = None) -> None:
        """Atomically replace file `name`; durable when `event` (if any) is stepped."""
        self._sim.disk_op(self._slot, self._sim.config.disk.put, "put", name, value, event)

    def put_now(self, name: str, value: Any) -> None:
        """Atomically replace file `name`, durable at once: for cores that treat the write
        as synchronous (the shell blocks on it), e.g. ZAB's acceptedEpoch/currentEpoch."""
        self._slot.disk.put(name, value)

    def sync_now(self, log: str) -> None:
        """Make `log` durable at once (a blocking fsync, e.g. after a synchronous Truncate)."""
        self._slot.disk.sync(log)

    def reply(self, request_id: int, outcome: Outcome) -> None:
        self._sim.reply(self.node_id, request_id, outcome)

    def observe(self, fact: Any) -> None:
        sim = self._sim
        sim.observations.append(Observed(sim.scheduler.now_ms, self.node_id,
                                         self.incarnation, fact))

    def later(self, delay_ms: int, event: Any) -> None:
        """Step `event` on this node after `delay_ms` of virtual time (a timer)."""
        self._sim.scheduler.after(delay_ms, self._sim.step_event, self._slot,
                                  self.incarnation, event)


class _Slot:
    """One node id across incarnations: its disk and clock persist, the core does not."""
    __slots__ = ("node_id", "node", "up", "incarnation", "disk", "image", "clock",
                 "disk_factor", "ctx")

    def __init__(self, node_id: int, clock: NodeClock) -> None:
        self.node_id = node_id
        self.node: Any = None
        self.up = False
        self.incarnation = 0
        self.disk = Disk()
        self.image: DiskImage = EMPTY_IMAGE  # what the next start recovers from
        self.clock = clock
        self.disk_factor = 1.0
        self.ctx: NodeContext | None = None


class Simulation:
    """One seeded run's world. `boot()`, schedule faults and clients, then `run(until)`."""

    def __init__(self, seed: int, binding: Binding, factory: Factory,
                 config: SimConfig | None = None, *, trace: bool = False) -> None:
        self.seed = seed
        self.binding = binding
        self.factory = factory
        self.config = config = config or SimConfig()
        self.scheduler = Scheduler(config.events_max)
        self.trace: Trace | None = Trace() if trace else None
        self.observations: list[Observed] = []
        self.faults: list[tuple[int, Fault]] = []
        self.reply_sink: ReplySink | None = None
        self._rng_disk = stream(seed, "disk")
        self._rng_ticks = stream(seed, "ticks")
        self._rng_clocks = stream(seed, "clocks")
        self.network = Network(self.scheduler, stream(seed, "network"), self, config.network)
        for (src, dst), profile in config.links.items():
            self.network.set_link(src, dst, profile)
        self.slots = {n: _Slot(n, self._new_clock()) for n in config.nodes}
        self._handlers = dict(binding.actions)

    def _new_clock(self) -> NodeClock:
        rng = self._rng_clocks
        skew = self.config.clock_skew
        rate = 1.0 + (rng.random() * 2 - 1) * skew if skew else 1.0
        return NodeClock(int(rng.random() * self.config.clock_origin_max_ms), rate,
                         monotonic=self.config.monotonic_clocks)

    # -- lifecycle -----------------------------------------------------------------------

    def boot(self) -> None:
        for node in self.config.nodes:
            self.start(node)

    def start(self, node: int) -> None:
        """(Re)start a node's process from whatever its disk holds."""
        slot = self.slots[node]
        if slot.up:
            return
        now = self.scheduler.now_ms
        slot.clock.restart(now, int(self._rng_clocks.random() * self.config.clock_origin_max_ms))
        slot.disk = Disk(slot.image)
        slot.up = True
        slot.ctx = NodeContext(self, slot)
        rng = stream(self.seed, f"node{node}/{slot.incarnation}")
        local = slot.clock.local(now)
        slot.node = self.factory(node, slot.image, local, rng)
        self._record(slot, "start")
        if self.binding.boot is not None:
            self._execute(slot, self.binding.boot(slot.node, local))
        first = int(self._rng_ticks.random() * self.binding.tick_interval_ms)
        self.scheduler.after(first, self._tick, slot, slot.incarnation)

    def crash(self, node: int) -> None:
        slot = self.slots[node]
        if not slot.up:
            return
        self._record(slot, "crash")
        slot.up = False
        slot.node = None
        slot.ctx = None
        slot.incarnation += 1
        slot.image = slot.disk.crash(self._rng_disk, self.config.disk)
        slot.disk.busy_until_ms = 0
        self.network.node_crashed(node)

    def is_up(self, node: int) -> bool:
        return self.slots[node].up

    def node(self, node: int) -> Any:
        """The live core of `node` (None while crashed), for tests and final checks."""
        return self.slots[node].node

    def run(self, until_ms: int, stop: Callable[[], bool] | None = None) -> None:
        self.scheduler.run(until_ms, stop)

    # -- faults --------------------------------------------------------------------------

    def schedule_faults(self, schedule: list[tuple[int, Fault]]) -> None:
        for time_ms, fault in schedule:
            self.scheduler.at(time_ms, self.apply_fault, fault)

    def apply_fault(self, fault: Fault) -> None:
        self.faults.append((self.scheduler.now_ms, fault))
        if self.trace is not None:
            self.trace.record(self.scheduler.now_ms, "-", "fault", str(fault))
        handler = _FAULT_HANDLERS.get(type(fault))
        if handler is None:
            raise AssertionError(f"unknown fault {fault!r}")
        handler(self, fault)

    def _partition(self, fault: Partition) -> None:
        """A new partition replaces the previous one."""
        self.network.heal()
        self.network.partition(fault.groups, self.config.nodes)

    def _heal(self, fault: Heal) -> None:
        self.network.heal()

    def _crash(self, fault: Crash) -> None:
        self.crash(fault.node)

    def _restart(self, fault: Restart) -> None:
        self.start(fault.node)

    def _clock_jump(self, fault: ClockJump) -> None:
        self.slots[fault.node].clock.jump(self.scheduler.now_ms, fault.delta_ms)

    def _disk_speed(self, fault: DiskSpeed) -> None:
        self.slots[fault.node].disk_factor = fault.factor

    # -- driving nodes -------------------------------------------------------------------

    def step_event(self, slot: _Slot, incarnation: int, event: Any) -> None:
        if slot.incarnation != incarnation or not slot.up:
            return
        if self.trace is not None:
            self._record(slot, self.binding.describe(event))
        if self.binding.timed_step:
            actions = slot.node.step(event, slot.clock.local(self.scheduler.now_ms))
        else:
            actions = slot.node.step(event)
        if actions:
            self._execute(slot, actions)

    def _tick(self, slot: _Slot, incarnation: int) -> None:
        if slot.incarnation != incarnation or not slot.up:
            return
        if self.trace is not None:
            self._record(slot, "tick")
        actions = slot.node.tick(slot.clock.local(self.scheduler.now_ms))
        if actions:
            self._execute(slot, actions)
        if slot.incarnation == incarnation and slot.up:
            self.scheduler.after(self.binding.tick_interval_ms, self._tick, slot, incarnation)

    def _execute(self, slot: _Slot, actions: list[Any]) -> None:
        handlers = self._handlers
        ctx = slot.ctx
        for action in actions:
            handler = handlers.get(type(action))
            if handler is None:
                raise AssertionError(f"binding has no handler for {type(action).__name__}")
            handler(ctx, action)  # type: ignore[arg-type]

    def _record(self, slot: _Slot, what: str) -> None:
        if self.trace is not None:
            self.trace.record(self.scheduler.now_ms, slot.node_id, slot.incarnation, what)

    # -- NetworkSink ---------------------------------------------------------------------

    def deliver(self, dst: int, src: int, payload: Any) -> None:
        slot = self.slots[dst]
        if slot.up:
            self.step_event(slot, slot.incarnation, self.binding.message(src, payload))

    def connection_event(self, node: int, peer: int, connected: bool,
                         channel: Hashable) -> None:
        slot = self.slots[node]
        make = self.binding.connected if connected else self.binding.disconnected
        if slot.up and make is not None:
            self.step_event(slot, slot.incarnation, make(peer, channel))

    # -- disks ---------------------------------------------------------------------------

    def disk_op(self, slot: _Slot, latency: Any, kind: str, name: str, arg: Any,
                event: Any) -> None:
        """Queue a disk operation: completions of one node happen in request order."""
        now = self.scheduler.now_ms
        cost = latency.sample(self._rng_disk)
        if slot.disk_factor != 1.0:
            cost = int(cost * slot.disk_factor)
        done = max(now, slot.disk.busy_until_ms) + cost
        slot.disk.busy_until_ms = done
        self.scheduler.at(done, self._disk_done, slot, slot.incarnation, kind, name, arg, event)

    def _disk_done(self, slot: _Slot, incarnation: int, kind: str, name: str, arg: Any,
                   event: Any) -> None:
        if slot.incarnation != incarnation or not slot.up:
            return  # the process died first: crash() already decided what survived
        if kind == "sync":
            slot.disk.sync(name, arg)
        else:
            slot.disk.put(name, arg)
        if event is not None:
            self.step_event(slot, incarnation, event)

    # -- clients -------------------------------------------------------------------------

    def submit(self, node: int, request_id: int, request: Any, delay_ms: int) -> None:
        """A client request reaches `node` after `delay_ms` (lost if it is down then)."""
        if self.binding.request is None:
            raise AssertionError("binding has no request event: nodes cannot take clients")
        self.scheduler.after(delay_ms, self._request_arrives, node, request_id, request)

    def _request_arrives(self, node: int, request_id: int, request: Any) -> None:
        slot = self.slots[node]
        if slot.up:
            event = self.binding.request(request_id, request)  # type: ignore[misc]
            self.step_event(slot, slot.incarnation, event)

    def reply(self, node: int, request_id: int, outcome: Outcome) -> None:
        if self.reply_sink is not None:
            self.reply_sink(node, request_id, outcome)


_FAULT_HANDLERS: dict[type, Callable[[Simulation, Any], None]] = {
    Partition: Simulation._partition,
    Heal: Simulation._heal,
    Crash: Simulation._crash,
    Restart: Simulation._restart,
    ClockJump: Simulation._clock_jump,
    DiskSpeed: Simulation._disk_speed,
}

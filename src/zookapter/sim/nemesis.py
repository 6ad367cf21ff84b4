"""Fault schedules ("nemesis", after Jepsen), drawn from the seed before the run starts.

A schedule is a plain list of `(time_ms, fault)` pairs, printed with a failing seed so the
reader sees what went wrong when. The generator walks virtual time in random steps and picks
a fault kind by weight, keeping track of which nodes are down, partitioned or slowed so that
each fault makes sense (restart only crashed nodes, heal only an existing partition). At
`duration_ms` it appends the recovery that lets the cluster settle before the final checks:
heal, restart every crashed node, restore disks.

Faults: `Partition` (groups that can only talk within themselves), `Heal`, `Crash` (power
loss: unsynced writes may be lost), `Restart`, `ClockJump` (a node's clock steps forward, or
backward if allowed), `DiskSpeed` (fsyncs become `factor` times slower, 1.0 restores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Union


@dataclass(frozen=True, slots=True)
class Partition:
    groups: tuple[tuple[int, ...], ...]

    def __str__(self) -> str:
        return "partition " + " | ".join(",".join(map(str, g)) for g in self.groups)


@dataclass(frozen=True, slots=True)
class Heal:
    def __str__(self) -> str:
        return "heal"


@dataclass(frozen=True, slots=True)
class Crash:
    node: int

    def __str__(self) -> str:
        return f"crash {self.node}"


@dataclass(frozen=True, slots=True)
class Restart:
    node: int

    def __str__(self) -> str:
        return f"restart {self.node}"


@dataclass(frozen=True, slots=True)
class ClockJump:
    node: int
    delta_ms: int

    def __str__(self) -> str:
        return f"clock {self.node} {self.delta_ms:+d}ms"


@dataclass(frozen=True, slots=True)
class DiskSpeed:
    node: int
    factor: float

    def __str__(self) -> str:
        return f"disk {self.node} x{self.factor:g}"


Fault = Union[Partition, Heal, Crash, Restart, ClockJump, DiskSpeed]
Schedule = list[tuple[int, Fault]]

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "partition": 3.0, "heal": 2.0, "crash": 2.0, "restart": 3.0, "clock": 1.0, "disk": 1.0,
}


@dataclass(frozen=True)
class NemesisConfig:
    duration_ms: int = 2_000  # faults happen in [start_ms, duration_ms); recovery follows
    start_ms: int = 100
    gap_min_ms: int = 20  # time between two faults: uniform in [gap_min_ms, gap_max_ms]
    gap_max_ms: int = 250
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    max_down: int | None = None  # crashed at once; None = any number, even all
    clock_jump_max_ms: int = 2_000
    backward_jumps: bool = False  # only with non-monotonic node clocks
    slow_disk_factor: float = 20.0


class _Generator:
    def __init__(self, nodes: Sequence[int], config: NemesisConfig, rng: Random) -> None:
        self.nodes = list(nodes)
        self.config = config
        self.rng = rng
        self.down: set[int] = set()
        self.slow: set[int] = set()
        self.partitioned = False

    def candidates(self) -> list[tuple[str, float]]:
        c = self.config
        can = {
            "partition": len(self.nodes) > 1,
            "heal": self.partitioned,
            "crash": len(self.down) < (len(self.nodes) if c.max_down is None else c.max_down),
            "restart": bool(self.down),
            "clock": True,
            "disk": True,
        }
        return [(kind, w) for kind, w in c.weights.items() if w > 0 and can.get(kind, False)]

    def pick(self) -> Fault | None:
        options = self.candidates()
        if not options:
            return None
        total = sum(w for _, w in options)
        x = self.rng.random() * total
        for kind, w in options:
            x -= w
            if x < 0:
                return getattr(self, "_" + kind)()
        return getattr(self, "_" + options[-1][0])()

    def _partition(self) -> Fault:
        shuffled = self.nodes[:]
        self.rng.shuffle(shuffled)
        cut = 1 + int(self.rng.random() * (len(shuffled) - 1))
        self.partitioned = True
        return Partition((tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:]))))

    def _heal(self) -> Fault:
        self.partitioned = False
        return Heal()

    def _crash(self) -> Fault:
        node = self.rng.choice([n for n in self.nodes if n not in self.down])
        self.down.add(node)
        return Crash(node)

    def _restart(self) -> Fault:
        node = self.rng.choice(sorted(self.down))
        self.down.discard(node)
        return Restart(node)

    def _clock(self) -> Fault:
        delta = 1 + int(self.rng.random() * self.config.clock_jump_max_ms)
        if self.config.backward_jumps and self.rng.random() < 0.5:
            delta = -delta
        return ClockJump(self.rng.choice(self.nodes), delta)

    def _disk(self) -> Fault:
        node = self.rng.choice(self.nodes)
        if node in self.slow:
            self.slow.discard(node)
            return DiskSpeed(node, 1.0)
        self.slow.add(node)
        return DiskSpeed(node, self.config.slow_disk_factor)

    def recovery(self) -> list[Fault]:
        faults: list[Fault] = [Heal()] if self.partitioned else []
        faults += [Restart(n) for n in sorted(self.down)]
        faults += [DiskSpeed(n, 1.0) for n in sorted(self.slow)]
        return faults


def generate(nodes: Sequence[int], config: NemesisConfig, rng: Random) -> Schedule:
    """A fault schedule for `nodes`, a pure function of `rng`'s state."""
    gen = _Generator(nodes, config, rng)
    schedule: Schedule = []
    t = config.start_ms
    span = config.gap_max_ms - config.gap_min_ms + 1
    while True:
        t += config.gap_min_ms + int(rng.random() * span)
        if t >= config.duration_ms:
            break
        fault = gen.pick()
        if fault is not None:
            schedule.append((t, fault))
    schedule += [(config.duration_ms, f) for f in gen.recovery()]
    return schedule


def describe(schedule: Schedule) -> str:
    return "\n".join(f"{t:>7} ms  {fault}" for t, fault in schedule)

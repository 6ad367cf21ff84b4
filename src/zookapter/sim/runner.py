"""Running scenarios seed by seed, judging them, and reporting failures so they replay.

A `Scenario` is everything about a simulated test except the seed: the node binding and
factory, the simulated hardware, the fault generator, the client workload and the checks.
`run_seed(scenario, seed)` builds a fresh `Simulation`, runs it through three phases, and
returns a `RunResult` whose `problems` list is empty when every check passed:

1. faults and clients: the nemesis schedule and the client workload run side by side;
2. recovery: at the nemesis' end every partition heals and every crashed node restarts, and
   the cluster gets `settle_ms` to catch up;
3. final requests (e.g. a read of every key), retried until answered, then `drain_ms` more so
   that followers apply the last commits; then the checks run.

Everything is a pure function of (scenario, seed): `verify_seed` raises `SimFailure`, whose
message carries the seed, the violations, the fault schedule and the command that replays it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import linearizability
from .checks import (
    Observed,
    check_acked_applied,
    check_applied_sequences,
    check_one_leader_per_epoch,
)
from .cluster import Binding, Factory, SimConfig, Simulation, stream
from .history import OK, History
from .linearizability import ZNODE_MODEL, Model
from .nemesis import NemesisConfig, Schedule, describe, generate
from .workload import (
    Clients,
    RequestGenerator,
    WorkloadConfig,
    znode_final_reads,
    znode_requests,
)

Check = Callable[["RunResult"], list[str]]


def check_linearizable(result: RunResult) -> list[str]:
    model = result.scenario.model
    if model is None:
        return []
    verdict = linearizability.check(result.history.ops, model, result.scenario.steps_max)
    result.linearizability = verdict
    if verdict.ok is False:
        return [verdict.explain()]
    if verdict.ok is None:
        result.notes.append("linearizability unchecked: " + verdict.explain())
    return []


def check_zxid_sequences(result: RunResult) -> list[str]:
    return check_applied_sequences(result.observations)


def check_leaders(result: RunResult) -> list[str]:
    return check_one_leader_per_epoch(result.observations)


def check_acked_writes(result: RunResult) -> list[str]:
    return check_acked_applied(result.history.acked_zxids(), result.observations,
                               result.scenario.sim.nodes)


def check_final_progress(result: RunResult) -> list[str]:
    """Liveness: once healed and settled, the final requests must succeed."""
    if result.clients is None:
        return []
    statuses = result.clients.final_statuses
    pending = result.clients.final_pending
    failed = [s for s in statuses if s != OK]
    if pending or failed:
        return [f"no progress after healing: {pending} final requests unanswered, "
                f"{len(failed)} failed ({', '.join(failed[:5])})"]
    return []


DEFAULT_CHECKS: tuple[Check, ...] = (
    check_linearizable, check_zxid_sequences, check_leaders, check_acked_writes,
    check_final_progress,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    binding: Binding
    factory: Factory
    sim: SimConfig = field(default_factory=SimConfig)
    nemesis: NemesisConfig | None = field(default_factory=NemesisConfig)
    workload: WorkloadConfig | None = field(default_factory=WorkloadConfig)
    requests: Callable[[int], RequestGenerator] = znode_requests  # keys -> generator
    final_requests: Callable[[int], Sequence[Any]] | None = znode_final_reads
    model: Model | None = ZNODE_MODEL
    settle_ms: int = 1_000
    final_window_ms: int = 10_000
    drain_ms: int = 300
    checks: tuple[Check, ...] = DEFAULT_CHECKS
    steps_max: int = linearizability.STEPS_MAX_DEFAULT
    ref: str | None = None  # "module:attr" or "path/file.py:attr", for the replay command

    def recovery_ms(self) -> int:
        """When the nemesis has healed everything and no client is still invoking."""
        end = self.nemesis.duration_ms if self.nemesis else 0
        if self.workload is not None:
            end = max(end, self.workload.end_ms + self.workload.timeout_ms)
        return end


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    sim: Simulation
    schedule: Schedule
    history: History
    clients: Clients | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    elapsed_s: float = 0.0
    linearizability: linearizability.Result | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def observations(self) -> list[Observed]:
        return self.sim.observations

    @property
    def events(self) -> int:
        return self.sim.scheduler.events_run

    def trace_digest(self) -> str:
        if self.sim.trace is None:
            raise ValueError("run with trace=True to get a trace digest")
        return self.sim.trace.digest()

    def summary(self) -> str:
        counts = self.history.counts()
        return (f"seed {self.seed}: {'ok' if self.ok else 'FAILED'}; "
                f"{self.events} events, {self.sim.scheduler.now_ms} ms virtual, "
                f"{self.elapsed_s * 1000:.0f} ms real; ops ok={counts['ok']} "
                f"info={counts['info']} fail={counts['fail']}; faults={len(self.schedule)}")

    def replay_hint(self) -> str:
        ref = self.scenario.ref or "<module:scenario>"
        return f"python -m zookapter.sim {ref} --seed {self.seed} --trace"

    def report(self) -> str:
        lines = [f"simulation {self.scenario.name!r} failed for seed {self.seed}",
                 self.summary()]
        lines += [f"- {p}" for p in self.problems]
        lines += [f"note: {n}" for n in self.notes]
        if self.schedule:
            lines += ["fault schedule:", describe(self.schedule)]
        lines.append(f"replay: {self.replay_hint()}")
        return "\n".join(lines)


class SimFailure(AssertionError):
    def __init__(self, result: RunResult) -> None:
        super().__init__(result.report())
        self.result = result


def run_seed(scenario: Scenario, seed: int, *, trace: bool = False) -> RunResult:
    started = time.perf_counter()
    sim = Simulation(seed, scenario.binding, scenario.factory, scenario.sim, trace=trace)
    nodes = scenario.sim.nodes
    schedule = (generate(nodes, scenario.nemesis, stream(seed, "nemesis"))
                if scenario.nemesis else [])
    clients = None
    if scenario.workload is not None:
        clients = Clients(sim, scenario.workload, scenario.requests(scenario.workload.keys))
    result = RunResult(scenario, seed, sim, schedule,
                       clients.history if clients else History(), clients)
    try:
        _drive(scenario, sim, schedule, clients)
    except Exception:
        result.error = traceback.format_exc(limit=12)
        result.problems.append(f"exception at {sim.scheduler.now_ms} ms:\n{result.error}")
    if clients is not None:
        clients.finish()
    if result.error is None:
        for check in scenario.checks:
            result.problems += check(result)
    result.elapsed_s = time.perf_counter() - started
    return result


def _drive(scenario: Scenario, sim: Simulation, schedule: Schedule,
           clients: Clients | None) -> None:
    sim.boot()
    sim.schedule_faults(schedule)
    final_at = scenario.recovery_ms() + scenario.settle_ms
    if clients is not None:
        clients.start()
        if scenario.final_requests is not None:
            clients.add_final(scenario.final_requests(scenario.workload.keys),  # type: ignore
                              final_at)
    sim.run(final_at)
    if clients is not None and clients.final_pending:
        sim.run(final_at + scenario.final_window_ms, lambda: clients.final_pending == 0)
    sim.run(sim.scheduler.now_ms + scenario.drain_ms)


def verify_seed(scenario: Scenario, seed: int, *, trace: bool = False) -> RunResult:
    result = run_seed(scenario, seed, trace=trace)
    if not result.ok:
        raise SimFailure(result)
    return result


@dataclass
class Summary:
    runs: int = 0
    events: int = 0
    ops: int = 0
    elapsed_s: float = 0.0
    unchecked: list[int] = field(default_factory=list)  # seeds with notes (e.g. gave up)

    def __str__(self) -> str:
        return (f"{self.runs} seeds, {self.events} events, {self.ops} ops in "
                f"{self.elapsed_s:.2f} s; notes on seeds {self.unchecked or 'none'}")


def verify_seeds(scenario: Scenario, seeds: Iterable[int]) -> Summary:
    """Run seeds in order, stopping at the first failure (raised as SimFailure)."""
    summary = Summary()
    for seed in seeds:
        result = verify_seed(scenario, seed)
        summary.runs += 1
        summary.events += result.events
        summary.ops += len(result.history)
        summary.elapsed_s += result.elapsed_s
        if result.notes:
            summary.unchecked.append(seed)
    return summary


def find_failure(scenario: Scenario, seeds: Iterable[int]) -> RunResult | None:
    """The first failing seed's result, or None: for tests that expect a bug to be caught."""
    for seed in seeds:
        result = run_seed(scenario, seed)
        if not result.ok:
            return result
    return None

"""The simulator end to end, with the toy replicated store of tests/sim_toy.py.

The correct toy must pass hundreds of seeds under faults; each deliberately broken variant
must be caught within a bounded number of seeds, and its failing seed must replay exactly
(same trace digest, same violations), in-process and from the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sim_toy

from zookapter.sim import SimFailure, find_failure, run_seed, verify_seed, verify_seeds
from zookapter.sim.history import INFO, OK

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def test_toy_passes_300_seeds_quickly() -> None:
    started = time.perf_counter()
    summary = verify_seeds(sim_toy.SCENARIO, range(300))
    elapsed = time.perf_counter() - started
    print(summary)
    assert summary.runs == 300
    assert summary.ops > 300 * 50  # the workload really ran
    assert elapsed < 60, f"300 seeds took {elapsed:.1f} s"


def test_toy_passes_crash_heavy_faults() -> None:
    summary = verify_seeds(sim_toy.CRASHY_SCENARIO, range(1000, 1200))
    assert summary.runs == 200


def test_runs_exercise_faults_and_unknown_outcomes() -> None:
    results = [run_seed(sim_toy.SCENARIO, seed) for seed in range(20)]
    assert all(r.ok for r in results)
    assert sum(len(r.schedule) for r in results) > 100
    statuses = [op.status for r in results for op in r.history]
    assert statuses.count(OK) > 500 and statuses.count(INFO) > 20
    assert all(r.linearizability is not None and r.linearizability.ok for r in results)


def test_same_seed_same_run_different_seed_different_run() -> None:
    a = run_seed(sim_toy.SCENARIO, 5, trace=True)
    b = run_seed(sim_toy.SCENARIO, 5, trace=True)
    c = run_seed(sim_toy.SCENARIO, 6, trace=True)
    assert a.trace_digest() == b.trace_digest() != c.trace_digest()
    assert [str(op) for op in a.history] == [str(op) for op in b.history]
    assert a.observations == b.observations
    assert a.schedule == b.schedule != c.schedule
    assert len(a.sim.trace.lines) > 500  # type: ignore[union-attr]


def test_tracing_does_not_change_the_run() -> None:
    plain = run_seed(sim_toy.SCENARIO, 9)
    traced = run_seed(sim_toy.SCENARIO, 9, trace=True)
    assert [str(op) for op in plain.history] == [str(op) for op in traced.history]
    assert plain.events == traced.events


@pytest.mark.parametrize(("scenario", "within", "expect"), [
    (sim_toy.ACK_EARLY, 20, "acknowledged"),
    (sim_toy.FSYNC_LIES, 100, ""),
])
def test_broken_toy_is_caught_and_replays(scenario, within: int, expect: str) -> None:
    failed = find_failure(scenario, range(within))
    assert failed is not None, f"{scenario.name} survived {within} seeds"
    assert expect in "\n".join(failed.problems)
    again = run_seed(scenario, failed.seed, trace=True)
    twice = run_seed(scenario, failed.seed, trace=True)
    assert again.problems == failed.problems
    assert again.trace_digest() == twice.trace_digest()
    with pytest.raises(SimFailure) as caught:
        verify_seed(scenario, failed.seed)
    message = str(caught.value)
    assert f"failed for seed {failed.seed}" in message
    assert f"python -m zookapter.sim {scenario.ref} --seed {failed.seed}" in message
    assert "fault schedule:" in message


def test_verify_seeds_stops_at_the_first_failure() -> None:
    with pytest.raises(SimFailure) as caught:
        verify_seeds(sim_toy.ACK_EARLY, range(20))
    first = find_failure(sim_toy.ACK_EARLY, range(20))
    assert first is not None and caught.value.result.seed == first.seed


def test_command_line_replays_the_same_run() -> None:
    """Another process (with another hash seed) reproduces the failure bit for bit."""
    failed = find_failure(sim_toy.ACK_EARLY, range(20))
    assert failed is not None
    digest = run_seed(sim_toy.ACK_EARLY, failed.seed, trace=True).trace_digest()
    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONHASHSEED="12345")
    proc = subprocess.run(  # exactly the command the failure report suggests
        [sys.executable, "-m", "zookapter.sim", sim_toy.ACK_EARLY.ref, "--seed",
         str(failed.seed), "--trace", "--tail", "3"],
        capture_output=True, text=True, env=env, timeout=120, cwd=TESTS.parent)
    assert proc.returncode == 1, proc.stderr
    assert f"failed for seed {failed.seed}" in proc.stdout
    assert f"trace digest: {digest}" in proc.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "zookapter.sim", "sim_toy:SCENARIO", "--seeds", "0:3"],
        capture_output=True, text=True, env=dict(env, PYTHONPATH=f"{SRC}{os.pathsep}{TESTS}"),
        timeout=120, cwd=TESTS)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": ok;") == 3

"""Replay simulator seeds from the command line: ``python -m zookapter.sim MODULE:ATTR``.

ATTR names a `Scenario` (or a function returning one) in MODULE, which is either a dotted
module name on sys.path or a file path ending in .py (its directory is put on sys.path, so
``tests/sim_toy.py:SCENARIO`` works from the repository root).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .history import format_ops
from .runner import Scenario, run_seed


def load_scenario(ref: str) -> Scenario:
    module_name, _, attr = ref.rpartition(":")
    if not module_name:
        raise SystemExit(f"scenario reference {ref!r} is not MODULE:ATTRIBUTE")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    found = getattr(importlib.import_module(module_name), attr)
    scenario = found() if callable(found) and not isinstance(found, Scenario) else found
    if not isinstance(scenario, Scenario):
        raise SystemExit(f"{ref} is not a Scenario")
    return scenario


def _seeds(args: argparse.Namespace) -> range:
    if args.seeds:
        start, _, stop = args.seeds.partition(":")
        return range(int(start), int(stop))
    return range(args.seed, args.seed + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zookapter.sim", description=__doc__)
    parser.add_argument("scenario", help="MODULE:ATTR or path/file.py:ATTR naming a Scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", help="A:B, a range of seeds (stops at the first failure)")
    parser.add_argument("--trace", action="store_true", help="record and digest the trace")
    parser.add_argument("--tail", type=int, default=60, help="trace lines to print")
    parser.add_argument("--history", action="store_true", help="print the client history")
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario)
    for seed in _seeds(args):
        result = run_seed(scenario, seed, trace=args.trace)
        print(result.summary() if result.ok else result.report())
        for note in result.notes:
            print("note:", note)
        if args.trace:
            print("trace digest:", result.trace_digest())
            print("\n".join(result.sim.trace.tail(args.tail)))  # type: ignore[union-attr]
        if args.history:
            print(format_ops(result.history))
        if not result.ok:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

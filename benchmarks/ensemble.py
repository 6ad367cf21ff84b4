#!/usr/bin/env python3
"""Ensemble benchmark: 3 zookapter members vs 3 Apache ZooKeeper 3.8 members.

Starts a 3-member Apache ensemble (QuorumPeerMain), drives it with zkload, stops it, then
does the same with a 3-member zookapter ensemble (`python -m zookapter server zoo.cfg`),
in one run on one machine, with the same zoo.cfg settings and the same client. Sessions are
pinned round-robin to the members (zkload -R): reads are served by every member, writes go
through followers to the leader as they would in production. With --rounds N this is done
N times, the order alternating, and medians are reported (ensemble_report.py).
Results go to benchmarks/results/ensemble.json and ensemble.md.

    python3 benchmarks/ensemble.py                       # both ensembles, get,set,create
    python3 benchmarks/ensemble.py --rounds 3            # medians of 3 alternating rounds
    python3 benchmarks/ensemble.py --only zookapter --ops set --duration 5
    python3 benchmarks/ensemble.py --profile /tmp/prof   # py-spy on zookapter's members
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zkbench
from ensemble_procs import SIZE, Ensemble, ensemble_settings, set_autogroup_nice
from ensemble_report import LABEL, aggregate, ratios, render_markdown, render_table
from run import cpu_seconds, host_busy_seconds
from zkbench import log


class Profiler:
    """py-spy record on the leader and one follower for the measured window (`--gil`: only
    samples holding the GIL, i.e. Python CPU time, not fsync waits or an idle loop)."""

    def __init__(self, outdir: Path | None, duration: float, fmt: str = "flamegraph") -> None:
        self.outdir, self.duration, self.fmt = outdir, duration, fmt
        self.procs: list[subprocess.Popen] = []

    def start(self, ens: Ensemble, leader: int, op: str) -> None:
        if self.outdir is None or ens.kind != "zookapter" or not shutil.which("py-spy"):
            return
        self.outdir.mkdir(parents=True, exist_ok=True)
        follower = next(m.sid for m in ens.members if m.sid != leader)
        for sid, role in ((leader, "leader"), (follower, "follower")):
            ext = "svg" if self.fmt == "flamegraph" else "txt"
            out = self.outdir / f"{op}-{role}.{ext}"
            self.procs.append(subprocess.Popen(
                ["py-spy", "record", "-o", str(out), "--pid", str(ens.members[sid - 1].pid),
                 "--duration", str(max(1, int(self.duration))), "--nonblocking", "--gil",
                 "--rate", os.environ.get("ZKBENCH_PYSPY_RATE", "100"),
                 "--format", self.fmt],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def wait(self) -> None:
        for p in self.procs:
            try:
                p.wait(timeout=self.duration + 60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


def measure_op(ens: Ensemble, op: str, leader: int, args: argparse.Namespace,
               profiler: Profiler) -> dict:
    """One zkload run; server CPU per member and other CPU over the measured window."""
    marks: dict[str, tuple[list[float], float, float]] = {}

    def on_marker(name: str) -> None:
        marks[name] = ([cpu_seconds(m.pid) for m in ens.members], time.monotonic(),
                       host_busy_seconds())
        if name == "measure-start":
            profiler.start(ens, leader, op)

    try:
        res = zkbench.run_zkload(ens.hosts, op, sessions=args.sessions,
                                 outstanding=args.outstanding, duration=args.duration,
                                 warmup=args.warmup, size=args.size, on_marker=on_marker,
                                 pin=True)
    except Exception as e:  # noqa: BLE001
        res = {"op": op, "error": str(e)}
    profiler.wait()
    if "measure-start" in marks and "measure-end" in marks:
        (c0, t0, h0), (c1, t1, h1) = marks["measure-start"], marks["measure-end"]
        span = t1 - t0 if t1 > t0 else 1e-9
        per = [round((b - a) / span, 3) for a, b in zip(c0, c1, strict=True)]
        res["member_cpu_cores"] = {str(m.sid): c for m, c in zip(ens.members, per, strict=True)}
        res["leader_cpu_cores"] = per[leader - 1]
        res["server_cpu_cores"] = round(sum(per), 3)
        host = (h1 - h0) / span
        res["other_cpu_cores"] = round(
            max(0.0, host - sum(per) - (res.get("client_cpu_cores") or 0)), 3)
        if res.get("ops_per_sec"):
            res["server_cpu_us_per_op"] = round(sum(per) / res["ops_per_sec"] * 1e6, 2)
    return res


def bench_ensemble(kind: str, args: argparse.Namespace) -> dict:
    out: dict = {"server": kind, "results": {}}
    log(f"== starting a {SIZE}-member {LABEL[kind]} ensemble")
    ens = Ensemble(kind, xmx=args.xmx, keep=args.keep_logs, autogroup_nice=args.autogroup_nice)
    try:
        t0 = time.monotonic()
        leader = ens.start()
    except Exception as e:  # noqa: BLE001
        out["error"] = f"failed to start: {e}"
        log(f"   {out['error']}")
        ens.keep = True
        ens.stop()
        out["workdir"] = str(ens.root)
        return out
    out.update(leader=leader, start_s=round(time.monotonic() - t0, 1),
               command=ens.members[0].command(ens.members[0].dir / "zoo.cfg", args.xmx),
               settings=ens.settings, modes=ens.modes())
    log(f"   quorum after {out['start_s']}s, leader {leader}, modes {out['modes']}")
    profiler = Profiler(args.profile, args.duration, args.profile_format)
    try:
        for op in args.ops:
            if not all(m.alive() for m in ens.members):
                out["results"][op] = {"op": op, "error": "a member died"}
                continue
            log(f"   {kind}: {op} ({args.sessions} sessions x {args.outstanding} outstanding "
                f"over {SIZE} members, {args.warmup}s warmup + {args.duration}s)")
            res = measure_op(ens, op, leader, args, profiler)
            out["results"][op] = res
            log_result(op, res, args.noise_warn)
        if ens.modes().get(leader) != "leader":
            out["leader_changed"] = ens.modes()
            log(f"   WARNING: the leader changed during the run: {out['leader_changed']}")
        dead = [m.sid for m in ens.members if not m.alive()]
        if dead:
            out["error"] = f"member(s) {dead} exited"
            out["log_tail"] = ens.tails(40)
        out.update(ens.data_usage())
    finally:
        ens.stop()
        if args.keep_logs:
            out["workdir"] = str(ens.root)
    return out


def log_result(op: str, res: dict, noise_warn: float) -> None:
    if "error" in res:
        log(f"   {op}: ERROR {res['error']}")
        return
    warn = ""
    if res.get("errors") or res.get("exit_code"):
        warn = f"  (errors={res.get('errors')}, last={res.get('last_error')!r})"
    log(f"   {op}: {res['ops_per_sec']:.0f} ops/s  p50 {res['p50_ms']:.3f} ms  "
        f"p99 {res['p99_ms']:.3f} ms  n={res['count']}  cpu per member "
        f"{res.get('member_cpu_cores')} = {res.get('server_cpu_us_per_op')} us/op, "
        f"client {res.get('client_cpu_cores')} "
        f"other {res.get('other_cpu_cores')} cores{warn}")
    if (res.get("other_cpu_cores") or 0) > noise_warn:
        log(f"   WARNING: other processes used {res['other_cpu_cores']} cores "
            "during the measurement: results are noisy")


def bench_round(kinds: list[str], args: argparse.Namespace) -> dict[str, dict]:
    return {kind: bench_ensemble(kind, args) for kind in kinds}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per op (10)")
    ap.add_argument("--warmup", type=float, default=5.0, help="warmup seconds per op (5)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of both ensembles, order alternating; medians reported (2)")
    ap.add_argument("--sessions", type=int, default=9, help="client sessions (9: 3 per member)")
    ap.add_argument("--outstanding", type=int, default=8,
                    help="outstanding requests per session (8)")
    ap.add_argument("--ops", default="get,set,create", help="comma list of get,set,create")
    ap.add_argument("--only", choices=zkbench.SERVERS, help="benchmark only one ensemble")
    ap.add_argument("--size", type=int, default=100, help="znode data bytes (100)")
    ap.add_argument("--xmx", default="1g", help="Java heap per Apache member (1g)")
    ap.add_argument("--autogroup-nice", type=int, default=None, metavar="N",
                    help="scheduler weight of the members' and zkload's sessions, e.g. -10 "
                         "(root): less disturbance from other load, same for both servers")
    ap.add_argument("--noise-warn", type=float, default=0.2,
                    help="warn when other processes use more than this many cores (0.2)")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR",
                    help="py-spy profiles of zookapter's leader and a follower per op")
    ap.add_argument("--profile-format", choices=("flamegraph", "raw", "speedscope"),
                    default="flamegraph",
                    help="py-spy output: flamegraph (.svg) or raw collapsed stacks (.txt)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the members' dirs/logs")
    ap.add_argument("--no-write", action="store_true", help="do not write results/ensemble.*")
    args = ap.parse_args()
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in args.ops if o not in ("get", "set", "create")]
    if bad:
        ap.error(f"unknown op(s): {','.join(bad)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    zkbench.build_zkload()
    if args.autogroup_nice is not None and not set_autogroup_nice(os.getpid(),
                                                                  args.autogroup_nice):
        log("WARNING: cannot set the autogroup nice value (needs root and autogroups)")
        args.autogroup_nice = None  # zkload runs in this session: keep both sides equal
    kinds = [args.only] if args.only else list(zkbench.SERVERS)
    skipped: dict[str, str] = {}
    if "apache" in kinds:
        ok, why = zkbench.apache_available()
        if not ok:
            skipped["apache"] = why
            kinds.remove("apache")
            log(f"== skipping {LABEL['apache']}: {why}")
    rounds: dict[str, list[dict]] = {k: [] for k in kinds}
    for i in range(args.rounds):
        order = kinds if i % 2 == 0 else kinds[::-1]
        log(f"=== round {i + 1} of {args.rounds}: {', '.join(LABEL[k] for k in order)}")
        for kind, res in bench_round(order, args).items():
            rounds[kind].append(res)
    runs = {k: {"rounds": r, "results": aggregate(r, args.ops)} for k, r in rounds.items()}

    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {"members": SIZE, "rounds": args.rounds, "duration": args.duration,
                   "warmup": args.warmup, "sessions": args.sessions,
                   "outstanding": args.outstanding, "ops": args.ops, "size": args.size,
                   "xmx": args.xmx, "only": args.only, "noise_warn": args.noise_warn,
                   "autogroup_nice": args.autogroup_nice,
                   "spread": "round-robin"},
        "settings": ensemble_settings(),
        "host": zkbench.host_info(),
        "runs": runs,
        "skipped": skipped,
        "ratios": ratios(runs, args.ops),
    }
    print()
    print(render_table(runs, args.ops))
    if not args.no_write:
        zkbench.write_atomic(zkbench.RESULTS_DIR / "ensemble.json",
                             json.dumps(report, indent=2) + "\n")
        zkbench.write_atomic(zkbench.RESULTS_DIR / "ensemble.md", render_markdown(report))
        print(f"\nwrote {zkbench.RESULTS_DIR / 'ensemble.json'} and ensemble.md")
    failed = any(rnd.get("error") or any("error" in res for res in rnd["results"].values())
                 for r in rounds.values() for rnd in r)
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())

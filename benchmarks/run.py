#!/usr/bin/env python3
"""Throughput/latency benchmark: zookapter vs Apache ZooKeeper 3.8.

Starts each server in turn (standalone, fresh temporary dataDir, default
forceSync=yes), drives it with the same native load generator (zkload, built
from zkload.c against the ZooKeeper C client) and prints a comparison table.
Results go to benchmarks/results/latest.json and latest.md.

    python3 benchmarks/run.py                      # both servers, get,set,create
    python3 benchmarks/run.py --only apache --duration 5
    python3 benchmarks/run.py --ops get --sessions 16 --outstanding 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zkbench
from zkbench import log

LABEL = {"apache": "ZooKeeper 3.8", "zookapter": "zookapter"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its descendants, in seconds."""
    total = 0
    for p in [pid] + zkbench.descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def host_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def bench_server(kind: str, args: argparse.Namespace) -> dict:
    out: dict = {"server": kind, "results": {}}
    log(f"== starting {LABEL[kind]}")
    try:
        srv = zkbench.start_server(kind, xmx="1g", keep=args.keep_logs)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"failed to start: {e}"
        log(f"   {out['error']}")
        return out
    out["command"] = srv.cmd
    out["pid"] = srv.pid
    try:
        for op in args.ops:
            if not srv.alive():
                out["results"][op] = {"op": op, "error": "server died"}
                continue
            log(f"   {kind}: {op} ({args.sessions} sessions x {args.outstanding} outstanding, "
                f"{args.warmup}s warmup + {args.duration}s)")
            marks: dict[str, tuple[float, float, float]] = {}

            def on_marker(name: str, pid: int = srv.pid, marks: dict = marks) -> None:
                marks[name] = (cpu_seconds(pid), time.monotonic(), host_busy_seconds())

            try:
                res = zkbench.run_zkload(
                    srv.hostport, op, sessions=args.sessions, outstanding=args.outstanding,
                    duration=args.duration, warmup=args.warmup, size=args.size,
                    sequential=args.sequential, on_marker=on_marker)
            except Exception as e:  # noqa: BLE001
                res = {"op": op, "error": str(e)}
            # server CPU over exactly the measured window (all threads/children)
            if "measure-start" in marks and "measure-end" in marks:
                (c0, t0, h0), (c1, t1, h1) = marks["measure-start"], marks["measure-end"]
                cores = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
                res["server_cpu_cores"] = round(cores, 3)
                # busy CPU on the machine not used by this server or zkload
                # (other processes, kernel work): non-zero means a noisy run
                host = (h1 - h0) / (t1 - t0) if t1 > t0 else 0.0
                res["other_cpu_cores"] = round(
                    max(0.0, host - cores - (res.get("client_cpu_cores") or 0)), 3)
                if res.get("ops_per_sec"):
                    res["server_cpu_us_per_op"] = round(cores / res["ops_per_sec"] * 1e6, 2)
                    res["client_cpu_us_per_op"] = round(
                        res.get("client_cpu_cores", 0) / res["ops_per_sec"] * 1e6, 2)
            else:
                res["server_cpu_cores"] = None
            res["server_rss_kb"] = zkbench.rss_kb(srv.pid) if srv.alive() else None
            out["results"][op] = res
            if "error" in res:
                log(f"   {op}: ERROR {res['error']}")
            else:
                warn = ""
                if res.get("errors") or res.get("exit_code"):
                    warn = f"  (errors={res.get('errors')}, last={res.get('last_error')!r})"
                log(f"   {op}: {res['ops_per_sec']:.0f} ops/s  p50 {res['p50_ms']:.3f} ms  "
                    f"p99 {res['p99_ms']:.3f} ms  n={res['count']}  "
                    f"cpu server {res['server_cpu_cores']} / client {res.get('client_cpu_cores')} "
                    f"cores = {res.get('server_cpu_us_per_op')} / "
                    f"{res.get('client_cpu_us_per_op')} us/op, "
                    f"other {res.get('other_cpu_cores')} cores{warn}")
                if (res.get("other_cpu_cores") or 0) > args.noise_warn:
                    log(f"   WARNING: other processes used {res['other_cpu_cores']} cores "
                        "during the measurement: results are noisy")
        if not srv.alive():
            out["error"] = f"server exited with code {srv.proc.returncode}"
            out["log_tail"] = srv.log_tail(40)
        out.update(zkbench.data_dir_usage(srv))
        if out["data_dir_files"] == 0 and any(o in args.ops for o in ("set", "create")):
            log(f"   NOTE: {kind} wrote nothing to its dataDir: writes were not durable")
    finally:
        srv.stop()
        if args.keep_logs:
            out["workdir"] = str(srv.workdir)
    return out


def _get(runs: dict, kind: str, op: str, key: str):
    r = runs.get(kind, {}).get("results", {}).get(op)
    if not r or "error" in r:
        return None
    return r.get(key)


def render_table(runs: dict, ops: list[str], markdown: bool) -> str:
    kinds = [k for k in zkbench.SERVERS if k in runs]
    head = ["op"]
    for k in kinds:
        head += [f"{LABEL[k]} ops/s", f"{LABEL[k]} p50 ms", f"{LABEL[k]} p99 ms"]
    both = len(kinds) == 2
    if both:
        head += ["ops/s ratio", "p50 ratio", "p99 ratio"]
    rows = []
    for op in ops:
        row = [op]
        for k in kinds:
            ops_s = _get(runs, k, op, "ops_per_sec")
            if ops_s is None:
                row += ["error", "-", "-"]
                continue
            row += [f"{ops_s:,.0f}", f"{_get(runs, k, op, 'p50_ms'):.3f}",
                    f"{_get(runs, k, op, 'p99_ms'):.3f}"]
        if both:
            for key in ("ops_per_sec", "p50_ms", "p99_ms"):
                row.append(zkbench.fmt_ratio(_get(runs, "zookapter", op, key),
                                             _get(runs, "apache", op, key)))
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def render_markdown(report: dict) -> str:
    p = report["params"]
    runs = report["runs"]
    lines = [
        "# zookapter vs Apache ZooKeeper: throughput and latency",
        "",
        f"Generated {report['timestamp']} by `benchmarks/run.py`.",
        "",
        (f"Workload: {p['sessions']} sessions x {p['outstanding']} outstanding async requests "
        f"(closed loop), {p['size']}-byte data, {p['warmup']}s warmup + {p['duration']}s measured "
        "per operation. Client: `benchmarks/bin/zkload` (ZooKeeper C client, async API). "
        "Servers standalone on 127.0.0.1, fresh dataDir, forceSync=yes (default). "
        "Ratios are zookapter / ZooKeeper (ops/s: higher is better; latency: lower is better)."),
        "",
        render_table(runs, p["ops"], markdown=True),
        "",
    ]
    # CPU usage detail
    detail = [("| server | op | server CPU (cores) | server CPU µs/op | client CPU (cores) "
              "| client CPU µs/op | other CPU (cores) | p99.9 ms | errors | server RSS (MiB) |"),
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in zkbench.SERVERS:
        if kind not in runs:
            continue
        for op in p["ops"]:
            r = runs[kind].get("results", {}).get(op)
            if not r or "error" in r:
                continue
            rss = r.get("server_rss_kb")
            rss_s = f"{rss / 1024:.0f}" if rss else "-"
            detail.append(f"| {LABEL[kind]} | {op} | {r.get('server_cpu_cores')} | "
                          f"{r.get('server_cpu_us_per_op')} | {r.get('client_cpu_cores')} | "
                          f"{r.get('client_cpu_us_per_op')} | {r.get('other_cpu_cores')} | "
                          f"{r.get('p999_ms', 0):.3f} | "
                          f"{r.get('errors')} | {rss_s} |")
    lines += detail + [""]
    for kind, why in report.get("skipped", {}).items():
        lines.append(f"- {LABEL[kind]} skipped: {why}")
    for kind in zkbench.SERVERS:
        r = runs.get(kind)
        if r and r.get("data_dir_files") == 0 and any(o in p["ops"] for o in ("set", "create")):
            lines.append(f"- **{LABEL[kind]} wrote nothing to its dataDir**: its set/create "
                         "numbers are for non-durable (in-memory) writes, not comparable with "
                         "a server that logs and fsyncs every write.")
        elif r and "data_dir_bytes" in r:
            lines.append(f"- {LABEL[kind]} wrote {r['data_dir_files']} file(s), "
                         f"{r['data_dir_bytes'] / 1048576:.1f} MiB to its dataDir.")
    for kind in zkbench.SERVERS:
        if kind in runs and runs[kind].get("error"):
            lines.append(f"- {LABEL[kind]} error: {runs[kind]['error']}")
    ncpu = report["host"].get("cpus") or 0
    for kind in zkbench.SERVERS:
        for op in p["ops"]:
            r = runs.get(kind, {}).get("results", {}).get(op)
            if not r or "error" in r or not ncpu:
                continue
            sc, cc = r.get("server_cpu_cores") or 0, r.get("client_cpu_cores") or 0
            oc = r.get("other_cpu_cores") or 0
            if oc > p.get("noise_warn", 0.2):
                lines.append(f"- {LABEL[kind]} {op}: **noisy**: other processes used {oc:.2f} "
                             "cores during the measurement.")
            if sc + cc > 0.85 * ncpu and cc > 0.5 * (sc + cc):
                lines.append(f"- {LABEL[kind]} {op}: the machine was CPU-saturated and the "
                             f"client used {cc:.2f} of {ncpu} cores (server {sc:.2f}), so this "
                             "result is partly client-bound.")
    h = report["host"]
    lines += ["", (f"Host: {h.get('cpus')} CPUs ({h.get('cpu', '?')}), "
                   f"kernel {h.get('kernel', '?')}, {h.get('java', '?')}, "
                   f"Python {h.get('python')}."), ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per op (10)")
    ap.add_argument("--warmup", type=float, default=5.0, help="warmup seconds per op (5)")
    ap.add_argument("--sessions", type=int, default=8, help="client sessions (8)")
    ap.add_argument("--outstanding", type=int, default=8,
                    help="outstanding requests per session (8)")
    ap.add_argument("--ops", default="get,set,create", help="comma list of get,set,create")
    ap.add_argument("--only", choices=zkbench.SERVERS, help="benchmark only one server")
    ap.add_argument("--size", type=int, default=100, help="znode data bytes (100)")
    ap.add_argument("--sequential", action="store_true",
                    help="create: sequential znodes instead of unique names")
    ap.add_argument("--noise-warn", type=float, default=0.2,
                    help="warn when other processes use more than this many cores (0.2)")
    ap.add_argument("--keep-logs", action="store_true", help="keep server dirs/logs")
    ap.add_argument("--no-write", action="store_true", help="do not write results/latest.*")
    args = ap.parse_args()
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in args.ops if o not in ("get", "set", "create")]
    if bad:
        ap.error(f"unknown op(s): {','.join(bad)}")

    zkbench.build_zkload()

    kinds = [args.only] if args.only else list(zkbench.SERVERS)
    skipped: dict[str, str] = {}
    runs: dict[str, dict] = {}
    for kind in kinds:
        ok, why = (zkbench.apache_available() if kind == "apache"
                   else zkbench.zookapter_available())
        if not ok:
            skipped[kind] = why
            log(f"== skipping {LABEL[kind]}: {why}")
            continue
        runs[kind] = bench_server(kind, args)

    notes = []
    for kind, r in runs.items():
        if r.get("data_dir_files") == 0 and any(o in args.ops for o in ("set", "create")):
            notes.append(f"{LABEL[kind]} wrote nothing to its dataDir: its set/create results "
                         "are non-durable (in-memory) writes")
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {"duration": args.duration, "warmup": args.warmup,
                   "sessions": args.sessions, "outstanding": args.outstanding,
                   "ops": args.ops, "size": args.size, "sequential": args.sequential,
                   "only": args.only, "noise_warn": args.noise_warn},
        "host": zkbench.host_info(),
        "runs": runs,
        "skipped": skipped,
        "notes": notes,
        "ratios": {},
    }
    if "apache" in runs and "zookapter" in runs:
        for op in args.ops:
            report["ratios"][op] = {
                key: (round(z / a, 4) if (z is not None and a) else None)
                for key in ("ops_per_sec", "p50_ms", "p99_ms")
                for z, a in [(_get(runs, "zookapter", op, key), _get(runs, "apache", op, key))]
            }

    print()
    print(render_table(runs, args.ops, markdown=False))
    for kind, why in skipped.items():
        print(f"({LABEL[kind]} skipped: {why})")
    for n in notes:
        print(f"NOTE: {n}")
    if not args.no_write:
        zkbench.write_atomic(zkbench.RESULTS_DIR / "latest.json",
                             json.dumps(report, indent=2) + "\n")
        zkbench.write_atomic(zkbench.RESULTS_DIR / "latest.md", render_markdown(report))
        print(f"\nwrote {zkbench.RESULTS_DIR / 'latest.json'} and latest.md")
    failed = any(r.get("error") for r in runs.values()) or any(
        "error" in res for r in runs.values() for res in r.get("results", {}).values())
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())

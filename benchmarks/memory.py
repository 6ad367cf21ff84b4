#!/usr/bin/env python3
"""Memory benchmark: resident memory of zookapter vs Apache ZooKeeper 3.8
holding N znodes (default 1,000,000) of 100 bytes each.

For each server: start it (standalone, fresh dataDir; Java with -Xmx2g), read
its VmRSS, load N znodes /zkfill/p<j>/<i> (j = i % parents) with the native
loader (`zkload -o fill`, many outstanding async creates), wait a few seconds,
and read VmRSS again (from /proc/<pid>/status, summed over any child
processes). Results go to benchmarks/results/memory.json and memory.md.

    python3 benchmarks/memory.py                    # 1M znodes, both servers
    python3 benchmarks/memory.py --nodes 100000 --only apache
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zkbench
from zkbench import log

LABEL = {"apache": "ZooKeeper 3.8", "zookapter": "zookapter"}


def mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.1f}"


def java_heap_used_kb(pid: int) -> int | None:
    """Used heap (KiB) as reported by `jcmd <pid> GC.heap_info`."""
    if not shutil.which("jcmd"):
        return None
    try:
        r = subprocess.run(["jcmd", str(pid), "GC.heap_info"], check=False,
                           capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"total (\d+)K, used (\d+)K", r.stdout)
    return int(m.group(2)) if m else None


def measure(kind: str, args: argparse.Namespace) -> dict:
    out: dict = {"server": kind}
    log(f"== starting {LABEL[kind]}")
    try:
        srv = zkbench.start_server(kind, xmx=args.xmx, keep=args.keep_logs)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"failed to start: {e}"
        return out
    out["command"] = srv.cmd
    try:
        time.sleep(2)
        out["rss_idle_kb"] = zkbench.rss_kb(srv.pid)
        log(f"   idle RSS {mib(out['rss_idle_kb'])} MiB; creating {args.nodes:,} znodes "
            f"({args.sessions} sessions x {args.outstanding} outstanding, "
            f"{args.parents} parents)")
        t0 = time.monotonic()
        try:
            fill = zkbench.run_zkload(
                srv.hostport, "fill", sessions=args.sessions, outstanding=args.outstanding,
                size=args.size, fill_count=args.nodes, fill_parents=args.parents,
                timeout=args.fill_timeout)
        except Exception as e:  # noqa: BLE001
            out["error"] = f"fill failed: {e}"
            out["log_tail"] = srv.log_tail(40)
            return out
        out["fill"] = fill
        out["fill_wall_s"] = round(time.monotonic() - t0, 1)
        log(f"   created {fill['count']:,} znodes in {fill['elapsed_s']:.1f}s "
            f"({fill['ops_per_sec']:,.0f}/s, errors {fill['errors']})")
        if fill["count"] != args.nodes:
            out["warning"] = f"only {fill['count']} of {args.nodes} creates succeeded"
            log(f"   WARNING: {out['warning']}")
        if not srv.alive():
            out["error"] = f"server exited with code {srv.proc.returncode}"
            out["log_tail"] = srv.log_tail(40)
            return out
        time.sleep(args.settle)
        out.update(zkbench.data_dir_usage(srv))
        out["rss_kb"] = zkbench.rss_kb(srv.pid)
        out["peak_rss_kb"] = zkbench.hwm_kb(srv.pid)
        out["bytes_per_znode"] = round(
            (out["rss_kb"] - out["rss_idle_kb"]) * 1024 / max(fill["count"], 1), 1)
        log(f"   RSS {mib(out['rss_kb'])} MiB (peak {mib(out['peak_rss_kb'])} MiB), "
            f"~{out['bytes_per_znode']:.0f} bytes/znode over idle")
        if kind == "apache" and not args.no_jcmd:
            # Informational only: the JVM's RSS includes uncollected garbage and
            # heap it has not returned to the OS. A forced full GC shows the
            # live heap; G1 may then uncommit part of the heap.
            out["java_heap_used_before_gc_kb"] = java_heap_used_kb(srv.pid)
            subprocess.run(["jcmd", str(srv.pid), "GC.run"], check=False, capture_output=True,
                           timeout=120)
            time.sleep(2)
            out["java_heap_used_after_gc_kb"] = java_heap_used_kb(srv.pid)
            out["rss_after_gc_kb"] = zkbench.rss_kb(srv.pid)
            log(f"   (after jcmd GC.run: live heap {mib(out['java_heap_used_after_gc_kb'])} MiB, "
                f"RSS {mib(out['rss_after_gc_kb'])} MiB)")
    finally:
        srv.stop()
        if args.keep_logs:
            out["workdir"] = str(srv.workdir)
    return out


def render(report: dict, markdown: bool) -> str:
    runs = report["runs"]
    kinds = [k for k in zkbench.SERVERS if k in runs]
    head = ["server", "znodes", "idle RSS MiB", "RSS MiB", "peak RSS MiB", "bytes/znode",
            "fill rate/s"]
    rows = []
    for k in kinds:
        r = runs[k]
        if "rss_kb" not in r:
            rows.append([LABEL[k], "error", "-", "-", "-", "-", "-"])
            continue
        rows.append([LABEL[k], f"{r['fill']['count']:,}", mib(r["rss_idle_kb"]), mib(r["rss_kb"]),
                     mib(r["peak_rss_kb"]), f"{r['bytes_per_znode']:.0f}",
                     f"{r['fill']['ops_per_sec']:,.0f}"])
    ratio = report.get("ratio_rss")
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|---|" + "|".join("---:" for _ in head[1:]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        fmt = lambda r: "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths)))
        lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    if ratio is not None:
        lines += ["", f"RSS ratio zookapter / ZooKeeper: {ratio:.2f}x"]
    a = runs.get("apache", {})
    z = runs.get("zookapter", {})
    if a.get("rss_after_gc_kb"):
        lines += ["", (f"ZooKeeper after `jcmd GC.run` (informational): live heap "
                      f"{mib(a.get('java_heap_used_after_gc_kb'))} MiB, "
                      f"RSS {mib(a['rss_after_gc_kb'])} MiB. The JVM's RSS mostly reflects "
                      f"heap sizing (-Xmx{report['params']['xmx']}), not live data.")]
        if z.get("rss_kb") and a.get("java_heap_used_after_gc_kb"):
            lines.append(f"zookapter RSS / ZooKeeper live heap: "
                         f"{z['rss_kb'] / a['java_heap_used_after_gc_kb']:.2f}x")
    for k in kinds:
        if runs[k].get("data_dir_files") == 0:
            lines.append(f"NOTE: {LABEL[k]} wrote nothing to its dataDir (no transaction log "
                         "or snapshot).")
    for k, why in report.get("skipped", {}).items():
        lines.append(f"{LABEL[k]} skipped: {why}")
    for k in kinds:
        if runs[k].get("error"):
            lines.append(f"{LABEL[k]} error: {runs[k]['error']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1_000_000, help="znodes to create (1000000)")
    ap.add_argument("--only", choices=zkbench.SERVERS, help="measure only one server")
    ap.add_argument("--size", type=int, default=100, help="bytes of data per znode (100)")
    ap.add_argument("--parents", type=int, default=10, help="parent znodes (10)")
    ap.add_argument("--sessions", type=int, default=8, help="loader sessions (8)")
    ap.add_argument("--outstanding", type=int, default=64,
                    help="outstanding creates per session (64)")
    ap.add_argument("--xmx", default="2g", help="Java max heap for ZooKeeper (2g)")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait after loading before reading RSS (5)")
    ap.add_argument("--fill-timeout", type=float, default=7200.0,
                    help="give up loading after this many seconds (7200)")
    ap.add_argument("--no-jcmd", action="store_true",
                    help="skip the informational post-GC measurement of the JVM")
    ap.add_argument("--keep-logs", action="store_true", help="keep server dirs/logs")
    ap.add_argument("--no-write", action="store_true",
                    help="do not write results/memory.{json,md}")
    args = ap.parse_args()

    zkbench.build_zkload()
    kinds = [args.only] if args.only else list(zkbench.SERVERS)
    runs: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for kind in kinds:
        ok, why = (zkbench.apache_available() if kind == "apache"
                   else zkbench.zookapter_available())
        if not ok:
            skipped[kind] = why
            log(f"== skipping {LABEL[kind]}: {why}")
            continue
        runs[kind] = measure(kind, args)

    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {k: getattr(args, k) for k in
                   ("nodes", "size", "parents", "sessions", "outstanding", "xmx", "settle")},
        "host": zkbench.host_info(),
        "runs": runs,
        "skipped": skipped,
        "ratio_rss": None,
    }
    a, z = runs.get("apache", {}), runs.get("zookapter", {})
    if a.get("rss_kb") and z.get("rss_kb"):
        report["ratio_rss"] = round(z["rss_kb"] / a["rss_kb"], 4)

    print()
    print(render(report, markdown=False))
    if not args.no_write:
        md = ["# zookapter vs Apache ZooKeeper: resident memory", "",
              (f"Generated {report['timestamp']} by `benchmarks/memory.py`: "
              f"{args.nodes:,} znodes of {args.size} bytes under {args.parents} parents; "
              f"VmRSS read {args.settle:g}s after loading (ZooKeeper with -Xmx{args.xmx})."), "",
              render(report, markdown=True), ""]
        zkbench.write_atomic(zkbench.RESULTS_DIR / "memory.json",
                             json.dumps(report, indent=2) + "\n")
        zkbench.write_atomic(zkbench.RESULTS_DIR / "memory.md", "\n".join(md))
        print(f"\nwrote {zkbench.RESULTS_DIR / 'memory.json'} and memory.md")
    failed = not runs or any(r.get("error") for r in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Client benchmark: zookapter's AsyncZooKeeper vs kazoo 2.11, same server, same run.

Starts one server (zookapter by default, `--server apache` for Apache ZooKeeper 3.8; both
started by zkbench, as run.py does), creates one znode holding `--size` bytes, then for
each operation (getData, setData), each window size K and each client runs a closed loop
with K requests outstanding: `--warmup` seconds unmeasured, then `--duration` seconds
measured. Every client run is a separate process, so one client's garbage, threads or
loop never slow the other; the clients run one after the other against the same server.
The server runs with forceSync=no unless `--force-sync`: with an fsync per write batch,
setData throughput is the disk's, whatever the client. Before each operation's runs the
server gets `--server-warmup` seconds of unmeasured load (a cold JVM is several times slower).

Clients:
- zookapter: `AsyncZooKeeper`, K coroutines each awaiting `get`/`set` in a loop, on uvloop
  when it is installed (it is a zookapter dependency).
- kazoo: `KazooClient` (default threading handler) with `get_async`/`set_async`, used two
  ways a kazoo user would pick for throughput, both measured, the faster one counted:
  `callback` (each completion's `rawlink` callback issues the next request) and `window`
  (the main thread keeps K IAsyncResults in a deque, waits for the oldest, issues one more).

Reported per run: ops/s, latency p50/p99 (issue to completion, seen by the caller), client
CPU (process time, all threads, over the measured window) per op, and the ratio
zookapter / best kazoo mode. Results go to benchmarks/results/client.json and client.md.

    .venv/bin/python benchmarks/client_bench.py
    .venv/bin/python benchmarks/client_bench.py --server apache --outstanding 8 --ops get
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zkbench  # noqa: E402
from run import cpu_seconds, host_busy_seconds  # noqa: E402
from zkbench import log  # noqa: E402

NODE = "/client-bench"
KAZOO_MODES = ("callback", "window")
NOISE_CORES = 0.2  # other processes' CPU above which a measurement is flagged noisy
CLIENT_LABEL = {"zookapter": "zookapter", "kazoo-callback": "kazoo (callback)",
                "kazoo-window": "kazoo (window)"}


# --- worker side: one client, one op, one window size, in its own process -----------------

class Recorder:
    """Latencies of the completions inside the measured window, and its CPU/wall bounds."""

    def __init__(self) -> None:
        self.measuring = False
        self.stopping = False
        self.latencies: list[float] = []
        self.errors = 0
        self.bad = 0
        self.t0 = self.t1 = self.cpu0 = self.cpu1 = 0.0

    def start(self) -> None:
        self.cpu0, self.t0 = time.process_time(), time.perf_counter()
        self.measuring = True
        print("#measure-start", flush=True)

    def end(self) -> None:
        self.measuring = False
        self.cpu1, self.t1 = time.process_time(), time.perf_counter()
        print("#measure-end", flush=True)

    def result(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        wall = self.t1 - self.t0
        n = len(lat)
        cpu = self.cpu1 - self.cpu0

        def pct(p: float) -> float:
            return round(lat[min(n - 1, int(p * n))] * 1000, 3) if n else 0.0

        return {"count": n, "ops_per_sec": round(n / wall, 1) if wall > 0 else 0.0,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
                "mean_ms": round(sum(lat) / n * 1000, 3) if n else 0.0,
                "errors": self.errors, "bad_replies": self.bad,
                "client_cpu_cores": round(cpu / wall, 3) if wall > 0 else 0.0,
                "client_cpu_us_per_op": round(cpu / n * 1e6, 2) if n else None}


def _check(op: str, value: Any, size: int) -> bool:
    """True if a reply looks right: get returns the node's bytes, set a Stat."""
    if op == "get":
        return len(value[0]) == size
    return value is not None


async def _zookapter_main(args: argparse.Namespace, rec: Recorder) -> None:
    import asyncio

    from zookapter.client import AsyncZooKeeper

    zk = AsyncZooKeeper(args.hosts, timeout=30.0)
    await zk.start()
    value = b"x" * args.size
    call = (lambda: zk.get(NODE)) if args.op == "get" else (lambda: zk.set(NODE, value))
    perf = time.perf_counter

    async def lane() -> None:
        while not rec.stopping:
            t = perf()
            try:
                res = await call()
            except Exception:  # noqa: BLE001
                rec.errors += 1
                continue
            if rec.measuring:
                rec.latencies.append(perf() - t)
                if not _check(args.op, res, args.size):
                    rec.bad += 1

    lanes = [asyncio.ensure_future(lane()) for _ in range(args.k)]
    await asyncio.sleep(args.warmup)
    rec.start()
    await asyncio.sleep(args.duration)
    rec.end()
    rec.stopping = True
    await asyncio.gather(*lanes)
    await zk.stop()


def run_zookapter(args: argparse.Namespace, rec: Recorder) -> str:
    import asyncio
    try:
        import uvloop
        factory = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:
        factory, loop_name = None, "asyncio"
    if args.no_uvloop:
        factory, loop_name = None, "asyncio"
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_zookapter_main(args, rec))
    return loop_name


def _kazoo_issue(zk: Any, op: str, value: bytes) -> Any:
    return zk.get_async(NODE) if op == "get" else zk.set_async(NODE, value)


def _kazoo_callback(zk: Any, args: argparse.Namespace, rec: Recorder) -> None:
    """Closed loop driven by kazoo's completion thread: each callback issues the next."""
    import threading
    value = b"x" * args.size
    perf = time.perf_counter
    inflight = [0]
    lock = threading.Lock()
    drained = threading.Event()

    def issue() -> None:
        t = perf()
        _kazoo_issue(zk, args.op, value).rawlink(lambda r: done(r, t))

    def done(r: Any, t: float) -> None:
        elapsed = perf() - t
        if r.exception is not None:
            rec.errors += 1
        elif rec.measuring:
            rec.latencies.append(elapsed)
            if not _check(args.op, r.value, args.size):
                rec.bad += 1
        if not rec.stopping:
            issue()
            return
        with lock:
            inflight[0] -= 1
            if inflight[0] == 0:
                drained.set()

    inflight[0] = args.k
    for _ in range(args.k):
        issue()
    time.sleep(args.warmup)
    rec.start()
    time.sleep(args.duration)
    rec.end()
    rec.stopping = True
    drained.wait(30)


def _kazoo_window(zk: Any, args: argparse.Namespace, rec: Recorder) -> None:
    """Closed loop in the main thread: wait for the oldest of K results, issue one more."""
    value = b"x" * args.size
    perf = time.perf_counter
    window: deque[tuple[float, Any]] = deque(
        (perf(), _kazoo_issue(zk, args.op, value)) for _ in range(args.k))
    phase_end = perf() + args.warmup
    measured = False
    while window:
        t, r = window.popleft()
        try:
            res = r.get()
        except Exception:  # noqa: BLE001
            rec.errors += 1
            res = None
        now = perf()
        if rec.measuring and res is not None:
            rec.latencies.append(now - t)
            if not _check(args.op, res, args.size):
                rec.bad += 1
        if now >= phase_end:
            if not measured:
                rec.start()
                measured, phase_end = True, now + args.duration
            elif rec.measuring:
                rec.end()
                rec.stopping = True
        if not rec.stopping:
            window.append((perf(), _kazoo_issue(zk, args.op, value)))


def run_kazoo(args: argparse.Namespace, rec: Recorder, mode: str) -> str:
    from kazoo.client import KazooClient
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    zk = KazooClient(hosts=args.hosts, timeout=30.0)
    zk.start(timeout=30)
    try:
        (_kazoo_callback if mode == "callback" else _kazoo_window)(zk, args, rec)
    finally:
        zk.stop()
        zk.close()
    return "threading"


def worker_main(args: argparse.Namespace) -> int:
    rec = Recorder()
    if args.worker == "zookapter":
        loop = run_zookapter(args, rec)
    else:
        loop = run_kazoo(args, rec, args.worker.split("-", 1)[1])
    out = rec.result()
    out.update(client=args.worker, op=args.op, outstanding=args.k, runtime=loop)
    print(json.dumps(out), flush=True)
    return 0


# --- driver side ---------------------------------------------------------------------------

def run_worker(srv: zkbench.Server, client: str, op: str, k: int,
               args: argparse.Namespace) -> dict[str, Any]:
    """One client run in a child process; server CPU sampled at its measure markers."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", client, "--op", op,
           "--k", str(k), "--hosts", srv.hostport, "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--size", str(args.size)]
    if args.no_uvloop:
        cmd.append("--no-uvloop")
    marks: dict[str, tuple[float, float, float]] = {}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    result: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("#measure-"):
            marks[line.strip()[1:]] = (cpu_seconds(srv.pid), time.monotonic(),
                                       host_busy_seconds())
        elif line.startswith("{"):
            result = json.loads(line)
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    if result is None:
        return {"client": client, "op": op, "outstanding": k,
                "error": f"worker exited {proc.returncode}: {stderr.strip()[-1500:]}"}
    if "measure-start" in marks and "measure-end" in marks:
        (c0, t0, h0), (c1, t1, h1) = marks["measure-start"], marks["measure-end"]
        if t1 > t0:
            server = (c1 - c0) / (t1 - t0)
            result["server_cpu_cores"] = round(server, 3)
            # busy CPU of everything else on the machine: other load makes a run noisy
            result["other_cpu_cores"] = round(max(0.0, (h1 - h0) / (t1 - t0) - server
                                                  - result["client_cpu_cores"]), 3)
    return result


def warm_server(srv: zkbench.Server, op: str, args: argparse.Namespace) -> None:
    """Unmeasured load before an op's first run, so that run does not pay for a cold
    server (the JVM's JIT in particular) and the comparison stays even."""
    if args.server_warmup <= 0:
        return
    log(f"{op}: warming the server up for {args.server_warmup:g}s")
    quick = argparse.Namespace(**{**vars(args), "warmup": args.server_warmup, "duration": 0.2})
    r = run_worker(srv, "zookapter", op, 64, quick)
    if "error" in r:
        log(f"   warm-up failed: {r['error']}")


def _env() -> dict[str, str]:
    """The environment with this interpreter's bin directory first on PATH, so a venv's
    `zookapter` command is found and the workers import the same packages."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def create_node(hostport: str, size: int) -> None:
    from kazoo.client import KazooClient
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    zk = KazooClient(hosts=hostport, timeout=30.0)
    zk.start(timeout=30)
    try:
        zk.ensure_path(NODE)
        zk.set(NODE, b"x" * size)
    finally:
        zk.stop()
        zk.close()


def _fmt_run(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    return (f"{r['ops_per_sec']:>9,.0f} ops/s  p50 {r['p50_ms']:.3f} ms  "
            f"p99 {r['p99_ms']:.3f} ms  client {r['client_cpu_us_per_op']} us/op "
            f"({r['client_cpu_cores']} cores)  server {r.get('server_cpu_cores')} cores  "
            f"other {r.get('other_cpu_cores')} cores"
            + (f"  errors={r['errors']} bad={r['bad_replies']}"
               if r["errors"] or r["bad_replies"] else ""))


def summarize(runs: list[dict[str, Any]], ops: list[str], ks: list[int]) -> list[dict]:
    """Per (op, K): zookapter vs the faster kazoo mode."""
    rows = []
    for op in ops:
        for k in ks:
            mine = [r for r in runs if r["op"] == op and r["outstanding"] == k
                    and "error" not in r]
            zk = next((r for r in mine if r["client"] == "zookapter"), None)
            kaz = max((r for r in mine if r["client"].startswith("kazoo")),
                      key=lambda r: r["ops_per_sec"], default=None)
            row: dict[str, Any] = {"op": op, "outstanding": k, "zookapter": zk, "kazoo": kaz}
            if zk and kaz and kaz["ops_per_sec"]:
                row["ops_ratio"] = round(zk["ops_per_sec"] / kaz["ops_per_sec"], 2)
                if zk.get("client_cpu_us_per_op") and kaz.get("client_cpu_us_per_op"):
                    row["cpu_per_op_ratio"] = round(
                        kaz["client_cpu_us_per_op"] / zk["client_cpu_us_per_op"], 2)
            rows.append(row)
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    p = report["params"]
    lines = [
        "# zookapter client vs kazoo: pipelined throughput",
        "",
        f"Generated {report['timestamp']} by `benchmarks/client_bench.py`.",
        "",
        (f"Server: {report['server_label']} standalone on 127.0.0.1 (one server for all runs, "
         f"forceSync={'yes' if p.get('force_sync') else 'no'}). "
         f"One znode of {p['size']} bytes; getData / setData (version -1) in a closed loop "
         f"with K requests outstanding on one session; {p['warmup']}s warmup + "
         f"{p['duration']}s measured; each client run in its own process, one after the "
         "other. kazoo 2.11 uses its default threading handler and `get_async`/`set_async`; "
         "the faster of its two drivers (`callback`: the completion callback issues the next "
         "request; `window`: wait for the oldest of K results) is compared. Ratio = "
         "zookapter ops/s / kazoo ops/s; CPU ratio = kazoo client CPU per op / zookapter's."),
        "",
        "| op | K | zookapter ops/s | p50 ms | p99 ms | kazoo ops/s | kazoo driver | p50 ms "
        "| p99 ms | ops/s ratio | client CPU/op ratio |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in report["summary"]:
        zk, kz = row["zookapter"], row["kazoo"]
        zk_s = (f"{zk['ops_per_sec']:,.0f} | {zk['p50_ms']:.3f} | {zk['p99_ms']:.3f}"
                if zk else "error | - | -")
        kz_s = (f"{kz['ops_per_sec']:,.0f} | {kz['client'].split('-', 1)[1]} | "
                f"{kz['p50_ms']:.3f} | {kz['p99_ms']:.3f}" if kz else "error | - | - | -")
        ratio = f"{row['ops_ratio']:.2f}x" if "ops_ratio" in row else "-"
        cpu = f"{row['cpu_per_op_ratio']:.2f}x" if "cpu_per_op_ratio" in row else "-"
        lines.append(f"| {row['op']} | {row['outstanding']} | {zk_s} | {kz_s} | {ratio} "
                     f"| {cpu} |")
    lines += ["", "All runs:", "",
              "| client | op | K | ops/s | p50 ms | p99 ms | p99.9 ms | client CPU (cores) "
              "| client CPU µs/op | server CPU (cores) | other CPU (cores) | errors |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        name = CLIENT_LABEL.get(r["client"], r["client"])
        if "error" in r:
            lines.append(f"| {name} | {r['op']} | {r['outstanding']} | error: "
                         f"{r['error'][:80]} | | | | | | | | |")
            continue
        lines.append(f"| {name} | {r['op']} | {r['outstanding']} | {r['ops_per_sec']:,.0f} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | "
                     f"{r['client_cpu_cores']} | {r['client_cpu_us_per_op']} | "
                     f"{r.get('server_cpu_cores')} | {r.get('other_cpu_cores')} | "
                     f"{r['errors'] + r['bad_replies']} |")
    noisy = [r for r in report["runs"] if (r.get("other_cpu_cores") or 0) > NOISE_CORES]
    if noisy:
        worst = max(r["other_cpu_cores"] for r in noisy)
        lines += ["", (f"**Noisy run**: other processes used more than {NOISE_CORES} cores "
                       f"during {len(noisy)} of {len(report['runs'])} measurements (up to "
                       f"{worst} cores): absolute numbers are low and the ratios less certain "
                       "than in a quiet run.")]
    h = report["host"]
    lines += ["", (f"zookapter event loop: {report.get('zookapter_loop', '?')}. "
                   f"Host: {h.get('cpus')} CPUs ({h.get('cpu', '?')}), Python {h.get('python')}; "
                   "client and server share the machine, so absolute numbers move with other "
                   "load: compare the ratios within one run."), ""]
    return "\n".join(lines)


def driver_main(args: argparse.Namespace) -> int:
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    ks = [int(k) for k in args.outstanding.split(",") if k.strip()]
    clients = ["zookapter"] + [f"kazoo-{m}" for m in args.kazoo_modes.split(",") if m]
    os.environ["PATH"] = _env()["PATH"]
    ok, why = (zkbench.apache_available() if args.server == "apache"
               else zkbench.zookapter_available())
    if not ok:
        log(f"cannot start the {args.server} server: {why}")
        return 1
    srv = zkbench.start_server(args.server, xmx="1g",
                               extra_cfg=None if args.force_sync else {"forceSync": "no"})
    runs: list[dict[str, Any]] = []
    try:
        create_node(srv.hostport, args.size)
        for op in ops:
            warm_server(srv, op, args)
            for k in ks:
                for client in clients:
                    log(f"{op} K={k} {CLIENT_LABEL[client]} ...")
                    r = run_worker(srv, client, op, k, args)
                    log(f"   {_fmt_run(r)}")
                    runs.append(r)
    finally:
        srv.stop()
    summary = summarize(runs, ops, ks)
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": args.server,
        "server_label": "zookapter" if args.server == "zookapter" else "Apache ZooKeeper 3.8",
        "params": {"duration": args.duration, "warmup": args.warmup, "size": args.size,
                   "ops": ops, "outstanding": ks, "clients": clients,
                   "force_sync": args.force_sync, "server_warmup": args.server_warmup},
        "zookapter_loop": next((r.get("runtime") for r in runs
                                if r["client"] == "zookapter" and "runtime" in r), None),
        "host": zkbench.host_info(),
        "runs": runs,
        "summary": summary,
    }
    print()
    for row in summary:
        zk, kz = row["zookapter"], row["kazoo"]
        print(f"{row['op']:>4} K={row['outstanding']:<3} zookapter "
              f"{zk['ops_per_sec'] if zk else 0:>9,.0f} ops/s  kazoo "
              f"{kz['ops_per_sec'] if kz else 0:>9,.0f} ops/s  ratio "
              f"{row.get('ops_ratio', '-')}x  (client CPU/op ratio "
              f"{row.get('cpu_per_op_ratio', '-')}x)")
    if not args.no_write:
        zkbench.write_atomic(zkbench.RESULTS_DIR / "client.json",
                             json.dumps(report, indent=2) + "\n")
        zkbench.write_atomic(zkbench.RESULTS_DIR / "client.md", render_markdown(report))
        print(f"\nwrote {zkbench.RESULTS_DIR / 'client.json'} and client.md")
    return 1 if any("error" in r for r in runs) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=zkbench.SERVERS, default="zookapter",
                    help="server to run against (zookapter)")
    ap.add_argument("--ops", default="get,set", help="comma list of get,set (get,set)")
    ap.add_argument("--outstanding", default="64,8",
                    help="comma list of window sizes K, requests in flight (64,8)")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (5)")
    ap.add_argument("--warmup", type=float, default=2.0, help="warmup seconds per run (2)")
    ap.add_argument("--size", type=int, default=100, help="znode data bytes (100)")
    ap.add_argument("--server-warmup", type=float, default=3.0,
                    help="unmeasured load on the server before each op's runs, seconds (3)")
    ap.add_argument("--kazoo-modes", default=",".join(KAZOO_MODES),
                    help="kazoo drivers to run: callback,window (both)")
    ap.add_argument("--force-sync", action="store_true",
                    help="keep the server's fsync per write (default: forceSync=no, so that "
                         "setData measures the clients rather than the disk)")
    ap.add_argument("--no-uvloop", action="store_true", help="zookapter on plain asyncio")
    ap.add_argument("--no-write", action="store_true", help="do not write results/client.*")
    # worker mode (internal): one client run, prints markers and one JSON line
    ap.add_argument("--worker", choices=["zookapter", *(f"kazoo-{m}" for m in KAZOO_MODES)],
                    help=argparse.SUPPRESS)
    ap.add_argument("--op", choices=["get", "set"], help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--hosts", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)
    bad = [m for m in args.kazoo_modes.split(",") if m and m not in KAZOO_MODES]
    if bad:
        ap.error(f"unknown kazoo mode(s): {','.join(bad)}")
    return driver_main(args)


if __name__ == "__main__":
    sys.exit(main())

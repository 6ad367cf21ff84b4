"""Aggregation and reports of the ensemble benchmark (ensemble.py).

Each round runs both ensembles one after the other (the order alternates between rounds, so
that neither implementation always meets the other helpers' load at the same point). Per
operation, every numeric figure is the median over the rounds; ratios are zookapter /
ZooKeeper of those medians, and the per-round ratios show how much the rounds agree.
"""

from __future__ import annotations

import statistics

import zkbench

LABEL = {"apache": "ZooKeeper 3.8", "zookapter": "zookapter"}
RATIO_KEYS = ("ops_per_sec", "p50_ms", "p99_ms", "server_cpu_us_per_op")


def aggregate(rounds: list[dict], ops: list[str]) -> dict:
    """One kind's rounds -> {op: medians of every numeric field, plus the per-round values
    of ops/s, p99 and other CPU}."""
    out: dict = {}
    for op in ops:
        good = [r["results"][op] for r in rounds
                if op in r.get("results", {}) and "error" not in r["results"][op]]
        if not good:
            errors = [r.get("results", {}).get(op, {}).get("error") or r.get("error")
                      for r in rounds]
            out[op] = {"op": op, "error": "; ".join(str(e) for e in errors if e) or "no run"}
            continue
        keys = {k for g in good for k, v in g.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
        agg: dict = {"op": op, "rounds": len(good)}
        for k in sorted(keys):
            vals = [g[k] for g in good if isinstance(g.get(k), (int, float))]
            agg[k] = round(statistics.median(vals), 4)
        for k in ("ops_per_sec", "p99_ms", "other_cpu_cores"):
            agg[f"{k}_by_round"] = [g.get(k) for g in good]
        out[op] = agg
    return out


def _get(runs: dict, kind: str, op: str, key: str):
    r = runs.get(kind, {}).get("results", {}).get(op)
    if not r or "error" in r:
        return None
    return r.get(key)


def ratios(runs: dict, ops: list[str]) -> dict:
    """zookapter / ZooKeeper per op: of the medians, and of ops/s round by round."""
    out: dict = {}
    if "apache" not in runs or "zookapter" not in runs:
        return out
    for op in ops:
        out[op] = {}
        for key in RATIO_KEYS:
            z, a = _get(runs, "zookapter", op, key), _get(runs, "apache", op, key)
            out[op][key] = round(z / a, 4) if (z is not None and a) else None
        by_round = []
        for za, ap in zip(runs["zookapter"]["rounds"], runs["apache"]["rounds"], strict=False):
            z = za.get("results", {}).get(op, {}).get("ops_per_sec")
            a = ap.get("results", {}).get(op, {}).get("ops_per_sec")
            by_round.append(round(z / a, 3) if (z and a) else None)
        out[op]["ops_per_sec_by_round"] = by_round
    return out


def render_table(runs: dict, ops: list[str]) -> str:
    kinds = [k for k in zkbench.SERVERS if k in runs]
    head = ["op"]
    for k in kinds:
        head += [f"{LABEL[k]} ops/s", f"{LABEL[k]} p50 ms", f"{LABEL[k]} p99 ms"]
    both = len(kinds) == 2
    if both:
        head += ["ops/s ratio", "p99 ratio", "ops/s ratio by round"]
    rows = []
    rat = ratios(runs, ops)
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
            for key in ("ops_per_sec", "p99_ms"):
                row.append(zkbench.fmt_ratio(_get(runs, "zookapter", op, key),
                                             _get(runs, "apache", op, key)))
            row.append(", ".join("-" if r is None else f"{r:.2f}"
                                 for r in rat[op]["ops_per_sec_by_round"]))
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _detail_rows(runs: dict, ops: list[str]) -> list[str]:
    lines = [("| round | ensemble | op | ops/s | p99 ms | leader | CPU per member (cores) | "
              "server CPU µs/op | client CPU (cores) | other CPU (cores) | errors |"),
             "|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for kind in zkbench.SERVERS:
        for i, rnd in enumerate(runs.get(kind, {}).get("rounds", []), 1):
            for op in ops:
                r = rnd.get("results", {}).get(op)
                if not r or "error" in r:
                    continue
                cpu = " / ".join(f"{sid}: {c}" for sid, c in
                                 (r.get("member_cpu_cores") or {}).items())
                lines.append(f"| {i} | {LABEL[kind]} | {op} | {r['ops_per_sec']:,.0f} | "
                             f"{r['p99_ms']:.3f} | {rnd.get('leader')} | {cpu} | "
                             f"{r.get('server_cpu_us_per_op')} | {r.get('client_cpu_cores')} | "
                             f"{r.get('other_cpu_cores')} | {r.get('errors')} |")
    return lines


def _notes(report: dict) -> list[str]:
    p, runs = report["params"], report["runs"]
    lines = [f"- {LABEL[kind]} skipped: {why}" for kind, why in report.get("skipped", {}).items()]
    for kind in zkbench.SERVERS:
        for i, r in enumerate(runs.get(kind, {}).get("rounds", []), 1):
            if "data_dir_bytes" in r:
                lines.append(f"- round {i}, {LABEL[kind]}: quorum after {r.get('start_s')}s; "
                             f"the members wrote {r['data_dir_files']} file(s), "
                             f"{r['data_dir_bytes'] / 1048576:.1f} MiB to their dataDirs.")
            if r.get("leader_changed"):
                lines.append(f"- round {i}, {LABEL[kind]}: **the leader changed** during the "
                             f"run: {r['leader_changed']}")
            if r.get("error"):
                lines.append(f"- round {i}, {LABEL[kind]} error: {r['error']}")
            for op in p["ops"]:
                res = r.get("results", {}).get(op) or {}
                if (res.get("other_cpu_cores") or 0) > p.get("noise_warn", 0.2):
                    lines.append(f"- round {i}, {LABEL[kind]} {op}: **noisy**: other processes "
                                 f"used {res['other_cpu_cores']:.2f} cores during the "
                                 "measurement.")
    return lines


def render_markdown(report: dict) -> str:
    p = report["params"]
    runs = report["runs"]
    h = report["host"]
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    return "\n".join([
        f"# {p['members']}-member ensembles: zookapter vs Apache ZooKeeper",
        "",
        f"Generated {report['timestamp']} by `benchmarks/ensemble.py`.",
        "",
        (f"Workload: {p['sessions']} sessions x {p['outstanding']} outstanding async requests "
         f"(closed loop), pinned round-robin to the {p['members']} members, {p['size']}-byte "
         f"data, {p['warmup']}s warmup + {p['duration']}s measured per operation. Client: "
         "`benchmarks/bin/zkload -R`. Each ensemble runs alone on 127.0.0.1 with fresh "
         f"dataDirs and the same zoo.cfg settings: {settings} (forceSync=yes by default). "
         f"{p['rounds']} round(s), each running both ensembles one after the other (order "
         "alternating); figures are medians over the rounds. Ratios are zookapter / "
         "ZooKeeper (ops/s: higher is better; latency: lower is better)."
         + ("" if p.get("autogroup_nice") is None else
            f" The members' and zkload's scheduler autogroups ran at nice "
            f"{p['autogroup_nice']} (less disturbance from other load, same for both).")),
        "",
        render_table(runs, p["ops"]),
        "",
        *_detail_rows(runs, p["ops"]),
        "",
        *_notes(report),
        "",
        (f"Host: {h.get('cpus')} CPUs ({h.get('cpu', '?')}), kernel {h.get('kernel', '?')}, "
         f"{h.get('java', '?')}, Python {h.get('python')}."),
        "",
    ])

"""A distributed lock guarding a shared counter: N worker processes each increment the
counter znode M times, each time under the lock, and print the lock's fencing token.

    python examples/lock_demo.py --workers 3 --iterations 10

Without the lock, two workers reading the same value would both write value + 1 and an
increment would be lost; with it, the final count is exactly N x M. The fencing token (the
czxid of the holder's lock node) grows with every acquisition, so a storage system could
refuse a write carrying an older token than one it has already seen.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading

from zookapter.client import ZooKeeperClient
from zookapter.recipes.lock import SyncLock

LOCK_PATH = "/demo/lock"
COUNTER_PATH = "/demo/lock-counter"
LINE = re.compile(r"\[(?P<worker>\S+)\] token=(?P<token>\d+) counter=(?P<counter>\d+)")


def worker(hosts: str, worker_id: str, iterations: int) -> None:
    """Increment the counter `iterations` times, each under the lock."""
    with ZooKeeperClient(hosts) as zk:
        for _ in range(iterations):
            with SyncLock(zk, LOCK_PATH, identifier=worker_id) as token:
                data, stat = zk.get(COUNTER_PATH)
                value = int(data) + 1
                # version= would fail if anyone changed the counter since our read: with
                # the lock held, nobody does
                zk.set(COUNTER_PATH, str(value).encode(), version=stat.version)
                print(f"[{worker_id}] token={token} counter={value}", flush=True)


def start_worker(hosts: str, worker_id: str, iterations: int,
                 lines: list[str]) -> tuple[subprocess.Popen, threading.Thread]:
    """Run a worker process; echo and collect its output lines."""
    proc = subprocess.Popen([sys.executable, __file__, "worker", worker_id, "--hosts", hosts,
                             "--iterations", str(iterations)],
                            stdout=subprocess.PIPE, text=True)

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return proc, reader


def run(hosts: str, workers: int, iterations: int) -> int:
    with ZooKeeperClient(hosts) as zk:
        zk.ensure_path(COUNTER_PATH)
        zk.set(COUNTER_PATH, b"0")
        print(f"{workers} workers x {iterations} increments of {COUNTER_PATH}")
        lines: list[str] = []
        started = [start_worker(hosts, f"w{i}", iterations, lines)
                   for i in range(1, workers + 1)]
        failed = 0
        for proc, reader in started:
            failed += proc.wait() != 0
            reader.join()
        final = int(zk.get(COUNTER_PATH)[0])

    expected = workers * iterations
    holds = sorted((int(m["counter"]), int(m["token"]))
                   for m in map(LINE.search, lines) if m)
    tokens_grow = all(a[1] < b[1] for a, b in zip(holds, holds[1:], strict=False))
    print(f"final counter: {final} (expected {expected}); "
          f"fencing tokens increase with every hold: {tokens_grow}")
    return 0 if final == expected and tokens_grow and not failed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", choices=["demo", "worker"], default="demo")
    parser.add_argument("worker_id", nargs="?", help="(worker role) this worker's id")
    parser.add_argument("--hosts", default="127.0.0.1:2181")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    if args.role == "worker":
        worker(args.hosts, args.worker_id, args.iterations)
    else:
        sys.exit(run(args.hosts, args.workers, args.iterations))


if __name__ == "__main__":
    main()

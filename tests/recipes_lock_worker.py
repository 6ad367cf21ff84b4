"""Run by test_recipes_lock.py as a separate process: increment a counter znode `n` times, each
time under a SyncLock, and count what would betray a broken lock.

    python recipes_lock_worker.py HOSTS LOCK_PATH COUNTER_PATH N IDENTIFIER

The counter's data is `<count>:<last fencing token>`. Under the lock this process
- creates the ephemeral marker `<COUNTER_PATH>-inside` (NodeExists: someone else is inside),
- checks its fencing token is larger than the last one written (tokens must grow),
- writes the counter with the version it read (BadVersion: a concurrent write).
It prints the number of violations seen and exits 0.
"""

from __future__ import annotations

import sys

from zookapter.client import ZooKeeperClient
from zookapter.client.errors import BadVersionError, NodeExistsError
from zookapter.recipes.lock import SyncLock


def run(hosts: str, lock_path: str, counter: str, n: int, identifier: str) -> int:
    violations = 0
    with ZooKeeperClient(hosts, timeout=10.0) as zk:
        lock = SyncLock(zk, lock_path, identifier=identifier)
        for _ in range(n):
            with lock as token:
                try:
                    zk.create(f"{counter}-inside", ephemeral=True)
                except NodeExistsError:
                    violations += 1
                data, stat = zk.get(counter)
                count, last = (int(x) for x in data.decode().split(":"))
                if token <= last:
                    violations += 1
                try:
                    zk.set(counter, f"{count + 1}:{token}".encode(), version=stat.version)
                except BadVersionError:
                    violations += 1
                zk.delete(f"{counter}-inside")
    return violations


if __name__ == "__main__":
    hosts, lock_path, counter, n, identifier = sys.argv[1:6]
    print(run(hosts, lock_path, counter, int(n), identifier))

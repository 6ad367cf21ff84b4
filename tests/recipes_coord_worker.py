"""A recipe participant in its own process, for the coordination recipe tests. Prints one JSON
line with what it saw.

    recipes_coord_worker.py elect HOSTS PATH ID HOLD_S ROUNDS  -> [[start, end, id], ...]
    recipes_coord_worker.py produce HOSTS PATH ID N queue|locking -> N
    recipes_coord_worker.py consume HOSTS PATH queue|locking    -> [item, ...] (until STOP)
    recipes_coord_worker.py count HOSTS PATH N                  -> N
    recipes_coord_worker.py double HOSTS PATH N ID  -> [enter called, entered, leave called, left]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from zookapter.client import AsyncZooKeeper
from zookapter.recipes.barrier import DoubleBarrier
from zookapter.recipes.counter import Counter
from zookapter.recipes.election import LeaderElection
from zookapter.recipes.queue import LockingQueue, Queue

STOP = b"STOP"


async def elect(zk: AsyncZooKeeper, path: str, ident: str, hold: str, rounds: str) -> object:
    intervals = []

    async def lead() -> None:
        start = time.monotonic()
        await asyncio.sleep(float(hold))
        intervals.append([start, time.monotonic(), ident])

    election = LeaderElection(zk, path, ident)
    for _ in range(int(rounds)):
        await election.run(lead)
    return intervals


async def produce(zk: AsyncZooKeeper, path: str, ident: str, n: str, kind: str) -> object:
    queue = Queue(zk, path) if kind == "queue" else LockingQueue(zk, path)
    for i in range(int(n)):
        await queue.put(f"{ident}:{i}".encode())
    return int(n)


async def consume(zk: AsyncZooKeeper, path: str, kind: str) -> object:
    items = []
    if kind == "queue":
        queue = Queue(zk, path)
        while (item := await queue.get(block=True, timeout=30)) not in (STOP, None):
            items.append(item.decode())
        return items
    lq = LockingQueue(zk, path)
    while (item := await lq.get(timeout=30)) is not None:
        if not await lq.consume():
            raise AssertionError(f"could not consume {item!r}")
        if item == STOP:
            break
        items.append(item.decode())
    return items


async def count(zk: AsyncZooKeeper, path: str, n: str) -> object:
    counter = Counter(zk, path)
    for _ in range(int(n)):
        await counter.add(1)
    return int(n)


async def double(zk: AsyncZooKeeper, path: str, n: str, ident: str) -> object:
    """Times (monotonic, comparable across processes) around a double barrier's two phases."""
    barrier = DoubleBarrier(zk, path, int(n), ident)
    times = [time.monotonic()]
    if not await barrier.enter(30):
        raise AssertionError("enter timed out")
    times += [time.monotonic(), time.monotonic()]
    if not await barrier.leave(30):
        raise AssertionError("leave timed out")
    return times + [time.monotonic()]


COMMANDS = {"elect": elect, "produce": produce, "consume": consume, "count": count,
            "double": double}


async def main(argv: list[str]) -> None:
    command, hosts, *args = argv
    async with AsyncZooKeeper(hosts, timeout=10.0) as zk:
        result = await COMMANDS[command](zk, *args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

"""Live typed configuration: a writer changes values, two readers print each change.

    python examples/config_demo.py                 # writer + two readers, then exit
    python examples/config_demo.py watch           # one more reader, until Ctrl-C

Every participant has its own ZooKeeper session, as separate processes would. The
configuration is one znode, /demo/config, holding a JSON object; the readers declare the keys
with their types and defaults and get typed values and (key, old, new) callbacks.
"""

from __future__ import annotations

import argparse
import asyncio
import random

from zookapter.client import AsyncZooKeeper
from zookapter.recipes.config import JSON, ConfigWatcher, ConfigWriter, Key

KEYS = [
    Key("workers", int, 4),
    Key("ratio", float, 0.5),
    Key("debug", bool, False),
    Key("greeting", str, "hello"),
    Key("limits", JSON, {"rps": 100}),
]


def printer(name: str):
    def on_change(key: str, old: object, new: object) -> None:
        print(f"[{name}] {key}: {old!r} -> {new!r}", flush=True)
    return on_change


def next_change(step: int, current: dict) -> dict:
    """Something different to write at each step: one or two keys."""
    choices = [
        {"workers": current["workers"] + 1},
        {"ratio": round(random.uniform(0, 1), 2)},
        {"debug": not current["debug"]},
        {"greeting": random.choice(["hi", "hallo", "bonjour", "ciao"]) + f" #{step}"},
        {"limits": {"rps": random.choice([50, 100, 200]), "burst": step}},
    ]
    change = choices[step % len(choices)]
    if step % 3 == 2:
        change = {**change, **choices[(step + 1) % len(choices)]}
    return change


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("readers did not catch up")
        await asyncio.sleep(0.02)


async def demo(hosts: str, path: str, iterations: int, interval: float) -> None:
    async with AsyncZooKeeper(hosts) as writer_zk, \
            AsyncZooKeeper(hosts) as zk1, AsyncZooKeeper(hosts) as zk2:
        writer = ConfigWriter(writer_zk, path, KEYS)
        async with ConfigWatcher(zk1, path, KEYS) as reader1, \
                ConfigWatcher(zk2, path, KEYS) as reader2:
            print(f"[reader-1] starts with {reader1.values()}")
            print(f"[reader-2] starts with {reader2.values()}")
            reader1.on_change(printer("reader-1"))
            reader2.on_change(printer("reader-2"))

            for step in range(iterations):
                change = next_change(step, await writer.get())
                print(f"[writer] update {change}", flush=True)
                await writer.update(change)
                await asyncio.sleep(interval)

            # compare-and-set: only one of two racing writers can move workers from n to n+1
            n = (await writer.get())["workers"]
            results = await asyncio.gather(writer.compare_and_set("workers", n, n + 1),
                                           writer.compare_and_set("workers", n, n + 1))
            print(f"[writer] two compare_and_set(workers, {n}, {n + 1}): {results}")

            final = await writer.get()
            await wait_until(lambda: reader1.values() == final == reader2.values())
            print(f"both readers agree with the stored configuration: {final}")


async def watch(hosts: str, path: str) -> None:
    async with AsyncZooKeeper(hosts) as zk, ConfigWatcher(zk, path, KEYS) as reader:
        print(f"[watcher] {reader.values()}  (Ctrl-C to stop)")
        reader.on_change(printer("watcher"))
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["demo", "watch"], default="demo")
    parser.add_argument("--hosts", default="127.0.0.1:2181")
    parser.add_argument("--path", default="/demo/config")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between updates")
    args = parser.parse_args()
    try:
        if args.mode == "watch":
            asyncio.run(watch(args.hosts, args.path))
        else:
            asyncio.run(demo(args.hosts, args.path, args.iterations, args.interval))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

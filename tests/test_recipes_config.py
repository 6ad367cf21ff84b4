"""ConfigWatcher / ConfigWriter (recipes/config.py) against real servers — zookapter and
Apache ZooKeeper 3.8: typed values and (key, old, new) callbacks in both layouts, defaults
for missing and malformed values, compare-and-set under contention from several sessions and
another process, following session expiry, and the blocking twins."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest
from recipes_support import (
    SRC,
    aiotest,
    eventually,
    unique_path,
)

from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.recipes.config import (
    JSON,
    NODE,
    TREE,
    ConfigWatcher,
    ConfigWriter,
    Key,
    SyncConfigWatcher,
    SyncConfigWriter,
)

KEYS = [Key("workers", int, 4), Key("ratio", float, 0.5), Key("debug", bool, False),
        Key("greeting", str, "hello"), Key("limits", JSON, {"rps": 10})]
DEFAULTS = {"workers": 4, "ratio": 0.5, "debug": False, "greeting": "hello",
            "limits": {"rps": 10}}


def test_key_parsing_and_checks():
    k_int, k_float, k_bool, k_str, k_json = KEYS
    assert k_int.parse(" 7 ", True) == 7 and k_int.parse(7, False) == 7
    assert k_float.parse("2.5", True) == 2.5 and k_float.parse(3, False) == 3.0
    assert [k_bool.parse(t, True) for t in ("yes", "OFF", "1", "false")] == [
        True, False, True, False]
    assert k_json.parse('{"a": [1]}', True) == {"a": [1]}
    for key, bad in ((k_int, True), (k_int, "x"), (k_float, "nan?"), (k_bool, "maybe"),
                     (k_str, 5)):
        with pytest.raises((ValueError, TypeError)):
            key.parse(bad, False)
    assert k_float.to_text(0.1) == "0.1" and k_bool.to_text(True) == "true"
    for layout in (NODE, TREE):
        k_int.check(5, layout)
        with pytest.raises(ValueError):
            k_int.check(True, layout)  # a bool is not an int here
        with pytest.raises(ValueError):
            k_str.check(5, layout)
    custom = Key("hosts", parser=lambda raw: raw.split(","), dumper=",".join, default=[])
    assert custom.parse("a,b", True) == ["a", "b"] and custom.to_text(["x", "y"]) == "x,y"
    with pytest.raises(ValueError):
        Key("bad/name", int, 0)
    with pytest.raises(ValueError):
        Key("complex", complex, 0)


@pytest.mark.parametrize("layout", [NODE, TREE])
@aiotest
async def test_typed_values_and_callbacks(zk_server, layout):
    path = unique_path("cfg")
    async with AsyncZooKeeper(zk_server.hosts) as r1, AsyncZooKeeper(zk_server.hosts) as r2, \
            AsyncZooKeeper(zk_server.hosts) as wzk:
        writer = ConfigWriter(wzk, path, KEYS, layout)
        async with ConfigWatcher(r1, path, KEYS, layout) as a, \
                ConfigWatcher(r2, path, KEYS, layout) as b:
            assert a.values() == b.values() == DEFAULTS  # nothing stored yet
            changes_a: list = []
            only_workers: list = []
            a.on_change(lambda *args: changes_a.append(args))
            b.on_change(lambda *args: only_workers.append(args), key="workers")

            await writer.set("workers", 8)
            await writer.update({"ratio": 0.25, "debug": True, "limits": {"rps": 99}})
            await eventually(lambda: len(changes_a) == 4)
            assert changes_a == [("workers", 4, 8), ("ratio", 0.5, 0.25), ("debug", False, True),
                                 ("limits", {"rps": 10}, {"rps": 99})]
            assert isinstance(a.value("workers"), int) and isinstance(a["ratio"], float)
            await eventually(lambda: only_workers == [("workers", 4, 8)])
            await eventually(lambda: b.values() == a.values())
            assert await writer.get() == a.values()

            assert await writer.compare_and_set("workers", 8, 9)
            assert not await writer.compare_and_set("workers", 8, 10)
            await writer.delete("debug")  # back to its default
            await eventually(lambda: changes_a[-2:] == [("workers", 8, 9),
                                                        ("debug", True, False)])
            with pytest.raises(ValueError):
                await writer.set("workers", "many")
            with pytest.raises(KeyError):
                await writer.set("undeclared", 1)
            with pytest.raises(KeyError):
                a.value("undeclared")
            await writer.set("greeting", "hi")  # so the next malformed write is a change

            # a malformed value reads as the default (logged), other keys are unaffected
            if layout == NODE:
                data, _ = await wzk.get(path)
                stored = json.loads(data)
                assert stored["workers"] == 9 and "debug" not in stored
                stored["greeting"] = 42
                await wzk.set(path, json.dumps(stored).encode())
            else:
                assert (await wzk.get(f"{path}/workers"))[0] == b"9"
                await wzk.set(f"{path}/greeting", b"\xff\xfe not text")
                await wzk.set(f"{path}/workers", b"nine")
            expected_greeting = "hello" if layout == NODE else "\ufffd\ufffd not text"
            await eventually(lambda: a.value("greeting") == expected_greeting)
            if layout == TREE:
                await eventually(lambda: a.value("workers") == 4)
            assert a.value("ratio") == 0.25
        await wzk.delete(path, recursive=True)


@pytest.mark.parametrize("layout", [NODE, TREE])
@aiotest
async def test_compare_and_set_under_contention(zk_server, layout):
    path = unique_path("cas")
    per_writer, sessions = 15, 3
    keys = [Key("counter", int, 0), Key("other", str, "")]
    async with AsyncZooKeeper(zk_server.hosts) as zk:
        proc = spawn_cas_process(zk_server.hosts, path, layout, per_writer)

        async def increment(n: int) -> None:
            async with AsyncZooKeeper(zk_server.hosts) as wzk:
                writer = ConfigWriter(wzk, path, keys, layout)
                for i in range(per_writer):
                    while True:
                        current = (await writer.get())["counter"]
                        if await writer.compare_and_set("counter", current, current + 1):
                            break
                    if i % 5 == 0:  # unrelated writes to the same config interleave
                        await writer.set("other", f"w{n}-{i}")

        async with ConfigWatcher(zk, path, keys, layout) as watcher:
            await asyncio.gather(*(increment(n) for n in range(sessions)))
            while proc.poll() is None:
                await asyncio.sleep(0.05)
            assert proc.returncode == 0
            total = per_writer * (sessions + 1)
            await eventually(lambda: watcher.value("counter") == total)
        await zk.delete(path, recursive=True)


CAS_SCRIPT = textwrap.dedent("""
    import sys
    from zookapter.client import ZooKeeperClient
    from zookapter.recipes.config import Key, SyncConfigWriter
    hosts, path, layout, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    keys = [Key("counter", int, 0), Key("other", str, "")]
    with ZooKeeperClient(hosts) as zk:
        writer = SyncConfigWriter(zk, path, keys, layout)
        for _ in range(count):
            while True:
                current = writer.get()["counter"]
                if writer.compare_and_set("counter", current, current + 1):
                    break
""")


def spawn_cas_process(hosts: str, path: str, layout: str, count: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
    return subprocess.Popen([sys.executable, "-c", CAS_SCRIPT, hosts, path, layout,
                             str(count)], env=env, stdin=subprocess.DEVNULL)


@aiotest
async def test_follows_changes_across_session_expiry(fast_server, proxy_for):
    proxy = proxy_for(fast_server)
    path = unique_path("cfgexp")
    async with AsyncZooKeeper(fast_server.hosts) as direct, \
            AsyncZooKeeper(proxy.hosts, timeout=1.0) as zk:
        writer = ConfigWriter(direct, path, KEYS)
        await writer.set("workers", 1)
        await zk.create(f"{path}-eph", ephemeral=True)
        async with ConfigWatcher(zk, path, KEYS) as watcher:
            seen: list = []
            watcher.on_change(lambda *args: seen.append(args))
            assert watcher.value("workers") == 1
            proxy.cut()
            for _ in range(100):
                if await direct.exists(f"{path}-eph") is None:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("session was not expired")
            await writer.update({"workers": 2, "greeting": "while away"})
            proxy.heal()
            await eventually(lambda: watcher.value("greeting") == "while away")
            assert set(seen) == {("workers", 1, 2), ("greeting", "hello", "while away")}
            await writer.set("workers", 3)  # and it keeps following in the new session
            await eventually(lambda: seen[-1] == ("workers", 2, 3))
        await direct.delete(path)


def test_sync_twins(zk_server):
    path = unique_path("cfgsync")
    changes: list = []
    with ZooKeeperClient(zk_server.hosts) as client:
        writer = SyncConfigWriter(client, path, KEYS, TREE)
        with SyncConfigWatcher(client, path, KEYS, TREE) as watcher:
            watcher.on_change(lambda *args: changes.append(args))
            writer.update({"workers": 12, "limits": {"rps": 1}})
            assert writer.compare_and_set("workers", 12, 13)
            asyncio.run(eventually(lambda: watcher.value("workers") == 13))
            asyncio.run(eventually(lambda: ("limits", {"rps": 10}, {"rps": 1}) in changes))
            assert watcher["limits"] == {"rps": 1} and writer.get()["workers"] == 13
        client.delete(path, recursive=True)

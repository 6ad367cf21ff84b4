"""Service registration and discovery (recipes/discovery.py) against real servers —
zookapter and Apache ZooKeeper 3.8: Curator-compatible JSON, one-off queries and the live
ServiceCache, member processes killed (their instances expire) and started, a registry whose
session expires re-registering, a stale node of a previous session replaced, and the
blocking twins."""

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
from zookapter.recipes.discovery import (
    ServiceCache,
    ServiceDiscovery,
    ServiceInstance,
    ServiceRegistry,
    SyncServiceDiscovery,
    SyncServiceRegistry,
)

# What Curator 5's JsonInstanceSerializer writes for a ServiceInstance<Map> payload.
CURATOR_JSON = (b'{"name":"api","id":"ca2fff8e-d756-480c-b59e-8297ff88624b",'
                b'"address":"10.20.30.40","port":1234,"sslPort":null,'
                b'"payload":{"@class":"java.util.LinkedHashMap","zone":"eu"},'
                b'"registrationTimeUTC":1325129459728,"serviceType":"DYNAMIC",'
                b'"uriSpec":{"parts":[{"value":"scheme","variable":true}]},"enabled":true}')


def ids(instances: list[ServiceInstance]) -> list[str]:
    return [i.id for i in instances]


def test_curator_json_both_ways():
    inst = ServiceInstance.from_json(CURATOR_JSON)
    assert (inst.name, inst.id, inst.address, inst.port, inst.ssl_port) == (
        "api", "ca2fff8e-d756-480c-b59e-8297ff88624b", "10.20.30.40", 1234, None)
    assert inst.payload == {"zone": "eu"} and inst.registration_time_utc == 1325129459728
    assert inst.service_type == "DYNAMIC" and inst.extra["enabled"] is True
    back = json.loads(inst.to_json())
    assert back["uriSpec"] == {"parts": [{"value": "scheme", "variable": True}]}
    assert back["enabled"] is True  # fields we do not model survive a rewrite
    ours = json.loads(ServiceInstance("web", address="h", port=80, payload={"a": 1}).to_json())
    assert list(ours) == ["name", "id", "address", "port", "sslPort", "payload",
                          "registrationTimeUTC", "serviceType", "uriSpec"]
    assert ours["serviceType"] == "DYNAMIC" and isinstance(ours["registrationTimeUTC"], int)
    for bad in (b"[]", b"{}", b'{"name": "a/b", "id": "x"}', b"not json"):
        with pytest.raises(ValueError):
            ServiceInstance.from_json(bad)
    seq = ServiceInstance.from_json(b'{"name": "a", "id": "b", "serviceType": "SEQ"}')
    assert seq.service_type == "SEQ"  # read as is; only registering it is refused


@aiotest
async def test_register_discover_and_cache(zk_server):
    base = unique_path("svc")
    async with AsyncZooKeeper(zk_server.hosts) as zk, AsyncZooKeeper(zk_server.hosts) as obs:
        registry = ServiceRegistry(zk, base)
        discovery = ServiceDiscovery(obs, base)
        assert await discovery.names() == [] and await discovery.instances("api") == []
        async with discovery.cache("api") as cache:
            lists: list[list[str]] = []
            cache.on_change(lambda instances: lists.append(ids(instances)))
            one = await registry.register("api", address="10.0.0.1", port=8080,
                                          payload={"zone": "a"})
            two = await registry.register("api", ServiceInstance("other-name", id="two",
                                                                 port=9090))
            assert two.name == "api"
            with pytest.raises(ValueError):
                await registry.register("api", ServiceInstance("api", service_type="SEQ"))
            web = await registry.register("web", ServiceInstance("web", address="w", port=1))
            assert await discovery.names() == ["api", "web"]
            found = await discovery.instances("api")
            assert found == sorted([one, two], key=lambda i: i.id)
            assert await discovery.instance("web", web.id) == web
            data, stat = await obs.get(f"{base}/api/{one.id}")
            assert stat.ephemeralOwner == zk.session_id
            assert json.loads(data)["payload"] == {"zone": "a"}
            await eventually(lambda: sorted(ids(cache.instances())) == sorted([one.id, "two"]))

            # a Curator registration is seen too, and an unparseable one is skipped
            await obs.create(f"{base}/api/ca2fff8e-d756-480c-b59e-8297ff88624b", CURATOR_JSON)
            await obs.create(f"{base}/api/garbage", b"{not json")
            await eventually(lambda: len(cache.instances()) == 3)
            assert len(await discovery.instances("api")) == 3

            moved = ServiceInstance("api", id="two", port=9191)
            await registry.update(moved)
            await eventually(lambda: any(i.port == 9191 for i in cache.instances()))
            await registry.unregister(one)
            await eventually(lambda: one.id not in ids(cache.instances()))
            await registry.close()  # the rest goes
            await eventually(lambda: "two" not in ids(cache.instances()))
            assert await discovery.instances("web") == []
            assert all(len(set(x)) == len(x) for x in lists) and lists[-1] == [
                "ca2fff8e-d756-480c-b59e-8297ff88624b"]
        await obs.delete(base, recursive=True)


@aiotest
async def test_stale_node_of_another_session_is_replaced(zk_server):
    base = unique_path("svc")
    inst = ServiceInstance("api", id="fixed", port=1)
    async with AsyncZooKeeper(zk_server.hosts) as old, AsyncZooKeeper(zk_server.hosts) as new:
        await ServiceRegistry(old, base).register("api", inst)  # an earlier incarnation
        registry = ServiceRegistry(new, base)
        await registry.register("api", ServiceInstance("api", id="fixed", port=2))
        data, stat = await new.get(f"{base}/api/fixed")
        assert stat.ephemeralOwner == new.session_id and json.loads(data)["port"] == 2
        await registry.close()
        await new.delete(base, recursive=True)


@aiotest
async def test_reregisters_after_session_expiry(fast_server, proxy_for):
    proxy = proxy_for(fast_server)
    base = unique_path("svc")
    async with AsyncZooKeeper(fast_server.hosts) as obs, \
            AsyncZooKeeper(proxy.hosts, timeout=1.0) as zk:
        registry = ServiceRegistry(zk, base)
        inst = await registry.register("api", address="h", port=1)
        async with ServiceCache(obs, "api", base) as cache:
            history: list[list[str]] = []
            cache.on_change(lambda instances: history.append(ids(instances)))
            assert ids(cache.instances()) == [inst.id]
            old_session = zk.session_id
            proxy.cut()
            await eventually(lambda: cache.instances() == [])  # the session expired
            proxy.heal()
            await eventually(lambda: ids(cache.instances()) == [inst.id])
            assert zk.session_id not in (0, old_session)
            _, stat = await obs.get(f"{base}/api/{inst.id}")
            assert stat.ephemeralOwner == zk.session_id
            assert history == [[], [inst.id]]
            # it is maintained in the new session too: a second expiry, a second comeback
            proxy.cut()
            await eventually(lambda: cache.instances() == [])
            proxy.heal()
            await eventually(lambda: ids(cache.instances()) == [inst.id])
        await registry.close()
        await obs.delete(base, recursive=True)


MEMBER_SCRIPT = textwrap.dedent("""
    import sys
    from zookapter.client import ZooKeeperClient
    from zookapter.recipes.discovery import SyncServiceRegistry
    hosts, base, member = sys.argv[1], sys.argv[2], sys.argv[3]
    with ZooKeeperClient(hosts, timeout=1.0) as zk:
        registry = SyncServiceRegistry(zk, base)
        registry.register("members", address="127.0.0.1", port=9000, payload={"m": member})
        print("registered", flush=True)
        sys.stdin.read()   # until the test closes our stdin (or kills us)
        registry.close()
""")


def spawn_member(hosts: str, base: str, member: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
    return subprocess.Popen([sys.executable, "-c", MEMBER_SCRIPT, hosts, base, member],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)


@aiotest
async def test_member_processes_killed_and_started(fast_server):
    base = unique_path("svc")

    def members(cache: ServiceCache) -> list[str]:
        return sorted(i.payload["m"] for i in cache.instances())

    procs = {m: spawn_member(fast_server.hosts, base, m) for m in ("m1", "m2", "m3")}
    try:
        async with AsyncZooKeeper(fast_server.hosts) as obs, \
                ServiceCache(obs, "members", base) as cache:
            await eventually(lambda: members(cache) == ["m1", "m2", "m3"], timeout=20)
            procs["m2"].kill()  # no goodbye: the node goes when the session expires
            await eventually(lambda: members(cache) == ["m1", "m3"], timeout=15)
            procs["m4"] = spawn_member(fast_server.hosts, base, "m4")
            await eventually(lambda: members(cache) == ["m1", "m3", "m4"], timeout=20)
            procs["m1"].stdin.close()  # a clean exit unregisters at once
            await eventually(lambda: members(cache) == ["m3", "m4"], timeout=15)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(10)
            if p.stdin and not p.stdin.closed:
                p.stdin.close()
    async with AsyncZooKeeper(fast_server.hosts) as zk:
        await zk.delete(base, recursive=True)


def test_sync_twins(zk_server):
    base = unique_path("svcsync")
    changes: list[list[str]] = []
    with ZooKeeperClient(zk_server.hosts) as a, ZooKeeperClient(zk_server.hosts) as b:
        registry = SyncServiceRegistry(a, base)
        discovery = SyncServiceDiscovery(b, base)
        with discovery.cache("api") as cache:
            cache.on_change(lambda instances: changes.append(ids(instances)))
            inst = registry.register("api", address="h", port=7)
            assert discovery.instances("api") == [inst]
            assert discovery.instance("api", inst.id) == inst
            assert registry.registered() == [inst]
            asyncio.run(eventually(lambda: changes == [[inst.id]]))
            assert cache.instances() == [inst]
            registry.close()
            asyncio.run(eventually(lambda: changes == [[inst.id], []]))
        b.delete(base, recursive=True)

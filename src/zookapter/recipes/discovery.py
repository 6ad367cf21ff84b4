"""Service registration and discovery, in Curator's layout and JSON (curator-x-discovery).

    registry = ServiceRegistry(zk)                       # base path /services
    me = await registry.register("api", ServiceInstance("api", address="10.0.0.5", port=8080))
    print(await ServiceDiscovery(zk).instances("api"))   # [ServiceInstance(...), ...]
    async with ServiceCache(zk, "api") as cache:         # a live list
        cache.on_change(lambda instances: print(len(instances), "instances"))

Layout: `<base>/<name>/<id>`, one znode per instance — ephemeral for service type DYNAMIC
(the default: the instance disappears with its session), persistent for STATIC/PERMANENT.
(Curator's DYNAMIC_SEQUENTIAL instances are discovered but cannot be registered here.)
Data: a JSON object with Curator's ServiceInstance fields — name, id, address, port, sslPort,
payload, registrationTimeUTC, serviceType, uriSpec: the fields of Curator's "compatible
serialization mode", which every Curator version reads (older ones reject unknown fields such
as "enabled"). We read Curator's instances too: fields we do not model are kept in `extra`
and written back; the Java class tag ("@class") Curator's Jackson serializer puts in an
object payload is dropped.

The registry keeps its instances registered: after session expiry (LOST, then CONNECTED with
a new session) it creates them again, and after every reconnect it checks that each node is
there and owned by its session (a create whose reply was lost may or may not have landed).
A node with our path owned by another session — a previous incarnation of this process whose
session has not expired yet — is replaced, as Curator does.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import (
    BadVersionError,
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    ZookeeperError,
)
from ..client.sync import ZooKeeperClient
from ._sync import SyncRecipe
from .treecache import TreeCache, TreeEvent

log = logging.getLogger("zookapter.recipes.discovery")

DEFAULT_BASE_PATH = "/services"
EPHEMERAL_TYPES = ("DYNAMIC",)
PERSISTENT_TYPES = ("STATIC", "PERMANENT")
RETRY_S = 1.0  # while re-registration is owed and the client is connected, retry this often
_TRANSIENT = (ConnectionLossError, OperationTimeoutError, SessionExpiredError)
_FIELDS = ("name", "id", "address", "port", "sslPort", "payload", "registrationTimeUTC",
           "serviceType", "uriSpec")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ServiceInstance:
    """One instance of a service (Curator's ServiceInstance)."""
    name: str
    address: str | None = None
    port: int | None = None
    payload: Any = None
    id: str = field(default_factory=_new_id)
    ssl_port: int | None = None
    registration_time_utc: int = field(default_factory=_now_ms)
    service_type: str = "DYNAMIC"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("id", self.id)):
            if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
                raise ValueError(f"bad service instance {what}: {value!r}")

    def to_json(self) -> bytes:
        obj: dict[str, Any] = {
            "name": self.name, "id": self.id, "address": self.address, "port": self.port,
            "sslPort": self.ssl_port, "payload": self.payload,
            "registrationTimeUTC": self.registration_time_utc,
            "serviceType": self.service_type, "uriSpec": self.extra.get("uriSpec")}
        obj.update((k, v) for k, v in self.extra.items() if k not in obj)
        return json.dumps(obj).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ServiceInstance:
        """Parse a registration (ours or Curator's); ValueError if it is not one."""
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        payload = obj.get("payload")
        if isinstance(payload, dict) and "@class" in payload:
            payload = {k: v for k, v in payload.items() if k != "@class"}
        extra = {k: v for k, v in obj.items() if k not in _FIELDS}
        if obj.get("uriSpec") is not None:
            extra["uriSpec"] = obj["uriSpec"]
        return cls(name=obj.get("name"), id=obj.get("id"),  # type: ignore[arg-type]
                   address=obj.get("address"),
                   port=obj.get("port"), payload=payload, ssl_port=obj.get("sslPort"),
                   registration_time_utc=int(obj.get("registrationTimeUTC") or 0),
                   service_type=obj.get("serviceType") or "DYNAMIC", extra=extra)


def _service_path(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


# -- registration ---------------------------------------------------------------------------

class ServiceRegistry:
    """Registers this process's instances under `base_path` and keeps them registered."""

    def __init__(self, zk: AsyncZooKeeper, base_path: str = DEFAULT_BASE_PATH) -> None:
        zk._check_path(base_path)
        self.zk = zk
        self.base_path = base_path
        self._registered: dict[str, ServiceInstance] = {}  # by znode path
        self._owed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _path(self, inst: ServiceInstance) -> str:
        return f"{_service_path(self.base_path, inst.name)}/{inst.id}"

    async def register(self, name: str, instance: ServiceInstance | None = None, *,
                       address: str | None = None, port: int | None = None,
                       payload: Any = None) -> ServiceInstance:
        """Register `instance` (or a new one from address/port/payload) as an instance of
        service `name`; return what was registered."""
        if self._closed:
            raise RuntimeError("registry is closed")
        if instance is None:
            instance = ServiceInstance(name, address=address, port=port, payload=payload)
        elif instance.name != name:
            instance = replace(instance, name=name)
        if instance.service_type not in EPHEMERAL_TYPES + PERSISTENT_TYPES:
            raise ValueError(f"cannot register serviceType {instance.service_type!r}")
        self._start_maintenance()
        self._registered[self._path(instance)] = instance
        await self._ensure(instance)
        return instance

    async def update(self, instance: ServiceInstance) -> None:
        """Replace a registered instance's data (same name and id)."""
        path = self._path(instance)
        if path not in self._registered:
            raise KeyError(f"{path} is not registered here")
        self._registered[path] = instance
        await self.zk.retry(self.zk.set, path, instance.to_json())

    async def unregister(self, instance: ServiceInstance) -> None:
        """Stop maintaining the instance and delete its node."""
        path = self._path(instance)
        self._registered.pop(path, None)
        try:
            await self.zk.retry(self.zk.delete, path)
        except NoNodeError:
            pass

    def registered(self) -> list[ServiceInstance]:
        return list(self._registered.values())

    async def close(self) -> None:
        """Unregister every instance (if still connected) and stop maintaining them."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self.zk.remove_listener(self._on_state)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for inst in list(self._registered.values()):
            try:
                await asyncio.wait_for(self.unregister(inst), 5.0)
            except (ZookeeperError, asyncio.TimeoutError):
                pass  # an ephemeral node goes with the session anyway

    async def __aenter__(self) -> ServiceRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- keeping registered -----------------------------------------------------------------

    def _start_maintenance(self) -> None:
        if self._task is None:
            self.zk.add_listener(self._on_state)
            self._task = asyncio.get_running_loop().create_task(self._maintain())

    def _on_state(self, state: ConnectionState) -> None:
        if state == ConnectionState.CONNECTED:
            self._owed.set()

    async def _maintain(self) -> None:
        failed = False
        while True:
            try:
                await asyncio.wait_for(self._owed.wait(), RETRY_S if failed else None)
            except asyncio.TimeoutError:
                if not self.zk.connected:
                    continue
            self._owed.clear()
            failed = False
            for inst in list(self._registered.values()):
                try:
                    await self._ensure(inst)
                except _TRANSIENT as e:
                    log.debug("re-registering %s: %r; will retry", inst.id, e)
                    failed = True
                except Exception:
                    log.exception("re-registering %s failed; will retry", inst.id)
                    failed = True

    async def _ensure(self, inst: ServiceInstance) -> None:
        """Make the instance's node exist, owned by the current session if ephemeral."""
        path = self._path(inst)
        ephemeral = inst.service_type in EPHEMERAL_TYPES
        data = inst.to_json()
        while self._registered.get(path) is inst:
            try:
                try:
                    current, stat = await self.zk.retry(self.zk.get, path)
                except NoNodeError:
                    await self.zk.create(path, data, ephemeral=ephemeral, makepath=True)
                    return
                if not ephemeral or stat.ephemeralOwner == self.zk.session_id:
                    if current != data:
                        await self.zk.set(path, data, version=stat.version)
                    return
                await self.zk.delete(path, version=stat.version)  # another session's
            except (NodeExistsError, NoNodeError, BadVersionError):
                continue  # raced with another registrant or with expiry: look again
            except ConnectionLossError:
                await asyncio.sleep(0.05)  # did the create land? look again


# -- discovery ------------------------------------------------------------------------------

class ServiceDiscovery:
    """One-off queries of the registered services under `base_path`."""

    def __init__(self, zk: AsyncZooKeeper, base_path: str = DEFAULT_BASE_PATH) -> None:
        zk._check_path(base_path)
        self.zk = zk
        self.base_path = base_path

    async def names(self) -> list[str]:
        """The services that have (or had) instances."""
        try:
            names = await self.zk.get_children(self.base_path)
        except NoNodeError:
            return []
        return sorted(names)  # type: ignore[arg-type]

    async def instances(self, name: str) -> list[ServiceInstance]:
        """The instances of service `name`, by id (unparseable registrations skipped)."""
        base = _service_path(self.base_path, name)
        try:
            ids = await self.zk.get_children(base)
        except NoNodeError:
            return []
        found = await asyncio.gather(*(self._instance_at(f"{base}/{i}") for i in ids))
        return sorted((i for i in found if i is not None), key=lambda i: i.id)

    async def instance(self, name: str, instance_id: str) -> ServiceInstance | None:
        return await self._instance_at(f"{_service_path(self.base_path, name)}/{instance_id}")

    async def _instance_at(self, path: str) -> ServiceInstance | None:
        try:
            data, _ = await self.zk.get(path)
        except NoNodeError:
            return None
        return _parse(path, data)

    def cache(self, name: str) -> ServiceCache:
        return ServiceCache(self.zk, name, self.base_path)


def _parse(path: str, data: bytes) -> ServiceInstance | None:
    try:
        return ServiceInstance.from_json(data)
    except (ValueError, TypeError) as e:
        log.warning("ignoring %s: not a service instance (%s)", path, e)
        return None


InstancesCallback = Callable[[list[ServiceInstance]], Any]


class ServiceCache:
    """The live instance list of one service (Curator's ServiceCache), on a TreeCache of
    `<base>/<name>`: follows registrations, expiries, reconnects and session expiry."""

    def __init__(self, zk: AsyncZooKeeper, name: str,
                 base_path: str = DEFAULT_BASE_PATH) -> None:
        self.name = name
        self.path = _service_path(base_path, name)
        self._cache = TreeCache(zk, self.path, max_depth=1)
        self._parsed: dict[str, tuple[int, ServiceInstance | None]] = {}  # path -> (mzxid, _)
        self._instances: list[ServiceInstance] = []
        self._callbacks: list[InstancesCallback] = []
        self._ready = False

    async def start(self, timeout: float | None = None) -> None:
        """Load the instance list; callbacks fire for changes after this returns."""
        self._cache.listen(self._on_tree_event)
        await self._cache.start(timeout)
        self._instances = self._read()
        self._ready = True

    async def close(self) -> None:
        await self._cache.close()

    async def __aenter__(self) -> ServiceCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def instances(self) -> list[ServiceInstance]:
        """The instances now, by id."""
        return list(self._instances)

    def on_change(self, callback: InstancesCallback) -> None:
        """Call `callback(instances)` whenever the list changes (coroutines awaited)."""
        self._callbacks.append(callback)

    def remove_callback(self, callback: InstancesCallback) -> None:
        self._callbacks.remove(callback)

    def _read(self) -> list[ServiceInstance]:
        out: list[ServiceInstance] = []
        seen: set[str] = set()
        for kid in self._cache.get_children(self.path) or ():
            path = f"{self.path}/{kid}"
            node = self._cache.get_data(path)
            if node is None:
                continue
            seen.add(path)
            cached = self._parsed.get(path)
            if cached is None or cached[0] != node.stat.mzxid:
                cached = (node.stat.mzxid, _parse(path, node.data))
                self._parsed[path] = cached
            if cached[1] is not None:
                out.append(cached[1])
        for gone in set(self._parsed) - seen:
            del self._parsed[gone]
        return sorted(out, key=lambda i: i.id)

    async def _on_tree_event(self, event: TreeEvent) -> None:
        if not self._ready or event.node is None:
            return
        new = self._read()
        if new == self._instances:
            return
        self._instances = new
        for callback in list(self._callbacks):
            try:
                result = callback(list(new))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("service cache callback %r failed", callback)


# -- blocking twins --------------------------------------------------------------------------

class SyncServiceRegistry(SyncRecipe[ServiceRegistry]):
    """Blocking ServiceRegistry on a `ZooKeeperClient`."""

    def __init__(self, client: ZooKeeperClient, base_path: str = DEFAULT_BASE_PATH) -> None:
        super().__init__(client, lambda zk: ServiceRegistry(zk, base_path))

    def register(self, name: str, instance: ServiceInstance | None = None, *,
                 address: str | None = None, port: int | None = None,
                 payload: Any = None) -> ServiceInstance:
        return self._run(self._inner.register(name, instance, address=address, port=port,
                                              payload=payload))

    def update(self, instance: ServiceInstance) -> None:
        self._run(self._inner.update(instance))

    def unregister(self, instance: ServiceInstance) -> None:
        self._run(self._inner.unregister(instance))

    def registered(self) -> list[ServiceInstance]:
        return self._inner.registered()

    def close(self) -> None:
        self._run(self._inner.close())

    def __enter__(self) -> SyncServiceRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncServiceDiscovery(SyncRecipe[ServiceDiscovery]):
    """Blocking ServiceDiscovery on a `ZooKeeperClient`."""

    def __init__(self, client: ZooKeeperClient, base_path: str = DEFAULT_BASE_PATH) -> None:
        super().__init__(client, lambda zk: ServiceDiscovery(zk, base_path))
        self.base_path = base_path

    def names(self) -> list[str]:
        return self._run(self._inner.names())

    def instances(self, name: str) -> list[ServiceInstance]:
        return self._run(self._inner.instances(name))

    def instance(self, name: str, instance_id: str) -> ServiceInstance | None:
        return self._run(self._inner.instance(name, instance_id))

    def cache(self, name: str) -> SyncServiceCache:
        return SyncServiceCache(self._client, name, self.base_path)


class SyncServiceCache(SyncRecipe[ServiceCache]):
    """Blocking ServiceCache; callbacks run on the client's callback thread."""

    def __init__(self, client: ZooKeeperClient, name: str,
                 base_path: str = DEFAULT_BASE_PATH) -> None:
        super().__init__(client, lambda zk: ServiceCache(zk, name, base_path))

    def start(self, timeout: float | None = None) -> None:
        self._run(self._inner.start(timeout))

    def close(self) -> None:
        self._run(self._inner.close())

    def __enter__(self) -> SyncServiceCache:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instances(self) -> list[ServiceInstance]:
        return self._inner.instances()

    def on_change(self, callback: InstancesCallback) -> None:
        self._inner.on_change(self.wrap_callback(callback))  # type: ignore[arg-type]

    def remove_callback(self, callback: InstancesCallback) -> None:
        self._inner.remove_callback(self.wrap_callback(callback))  # type: ignore[arg-type]

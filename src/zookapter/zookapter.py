"""The simplest way in: a blocking ZooKeeper client with the create modes as constants.

    from zookapter.zookapter import Zookeeper

    zk = Zookeeper(hosts='127.0.0.1:2181')
    zk.start()
    zk.create('/test', b'Hello, Zookeeper!', Zookeeper.EPHEMERAL)
    data, stat = zk.get('/test')
    zk.delete('/test')
    zk.stop()

`Zookeeper` is `zookapter.client.sync.ZooKeeperClient` with one difference: the third
positional argument of `create` is the create *mode* (an ACL list is still accepted there, as
kazoo's `create(path, value, acl)` would pass it). Every other method — get, set, delete,
exists, get_children, ensure_path, transaction, add_watch, ... — is the sync client's; for
asyncio code use `zookapter.client.AsyncZooKeeper` directly.
"""

from __future__ import annotations

from typing import Any

from .client.sync import ZooKeeperClient
from .protocol.consts import CreateMode
from .protocol.records import ACL, Stat

__all__ = ["Zookeeper", "CreateMode"]


class Zookeeper(ZooKeeperClient):
    PERSISTENT = CreateMode.PERSISTENT
    EPHEMERAL = CreateMode.EPHEMERAL
    PERSISTENT_SEQUENTIAL = CreateMode.PERSISTENT_SEQUENTIAL
    EPHEMERAL_SEQUENTIAL = CreateMode.EPHEMERAL_SEQUENTIAL
    CONTAINER = CreateMode.CONTAINER
    TTL = CreateMode.PERSISTENT_WITH_TTL
    PERSISTENT_WITH_TTL = CreateMode.PERSISTENT_WITH_TTL
    PERSISTENT_SEQUENTIAL_WITH_TTL = CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL

    def __init__(self, hosts: str = "127.0.0.1:2181", timeout: float = 10.0,
                 **options: Any) -> None:
        super().__init__(hosts, timeout, **options)

    def create(self, path: str, value: bytes = b"",  # type: ignore[override]
               mode: CreateMode | int | list[ACL] | None = CreateMode.PERSISTENT,
               acl: list[ACL] | None = None, ttl: int | None = None, makepath: bool = False,
               include_stat: bool = False, **flags: bool) -> str | tuple[str, Stat]:
        """Create `path` holding `value` in `mode` (Zookeeper.PERSISTENT, EPHEMERAL, ...;
        Zookeeper.TTL needs `ttl` in ms). Returns the created path."""
        if mode is None:
            mode = CreateMode.PERSISTENT
        elif isinstance(mode, (list, tuple)):  # kazoo order: create(path, value, acl)
            acl = list(mode)
            mode = CreateMode.PERSISTENT
        return super().create(path, value, acl, CreateMode(mode), ttl, makepath,
                              include_stat, **flags)

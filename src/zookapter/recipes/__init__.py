"""Recipes on the zookapter client: locks, elections, barriers, queues, counters, caches,
configuration and service discovery.

Each recipe is an asyncio class taking an `AsyncZooKeeper`; its blocking twin takes a
`ZooKeeperClient` and has the same name in `zookapter.recipes.sync` (also importable here
as `Sync<Name>`). Znode layouts, failure behaviour and which recipes interoperate with
kazoo's on the same paths: docs/recipes/.

    from zookapter.recipes import Lock
    async with Lock(zk, "/locks/orders", identifier="worker-1") as token:
        ...  # token: the fencing token, grows with every acquisition
"""

from .barrier import Barrier, DoubleBarrier, SyncBarrier, SyncDoubleBarrier
from .config import ConfigWatcher, ConfigWriter, Key, SyncConfigWatcher, SyncConfigWriter
from .counter import Counter, SyncCounter
from .discovery import (
    ServiceCache,
    ServiceDiscovery,
    ServiceInstance,
    ServiceRegistry,
    SyncServiceCache,
    SyncServiceDiscovery,
    SyncServiceRegistry,
)
from .election import (
    LeaderElection,
    LeaderLatch,
    LeadershipLost,
    SyncLeaderElection,
    SyncLeaderLatch,
)
from .lease import Lease, MultiLease, SyncLease, SyncMultiLease
from .lock import Lock, LockTimeout, SyncLock
from .party import Party, ShallowParty, SyncParty, SyncShallowParty
from .queue import LockingQueue, Queue, SyncLockingQueue, SyncQueue
from .rwlock import ReadLock, ReadWriteLock, SyncReadWriteLock, WriteLock
from .semaphore import Semaphore, SyncSemaphore
from .treecache import SyncTreeCache, TreeCache, TreeEvent, TreeEventType

__all__ = [
    "Barrier", "DoubleBarrier", "ConfigWatcher", "ConfigWriter", "Key", "Counter",
    "ServiceCache", "ServiceDiscovery", "ServiceInstance", "ServiceRegistry",
    "LeaderElection", "LeaderLatch", "LeadershipLost", "Lease", "MultiLease", "Lock",
    "LockTimeout", "Party", "ShallowParty", "LockingQueue", "Queue", "ReadLock",
    "ReadWriteLock", "WriteLock", "Semaphore", "TreeCache", "TreeEvent", "TreeEventType",
    "SyncBarrier", "SyncDoubleBarrier", "SyncConfigWatcher", "SyncConfigWriter",
    "SyncCounter", "SyncServiceCache", "SyncServiceDiscovery", "SyncServiceRegistry",
    "SyncLeaderElection", "SyncLeaderLatch", "SyncLease", "SyncMultiLease", "SyncLock",
    "SyncParty", "SyncShallowParty", "SyncLockingQueue", "SyncQueue", "SyncReadWriteLock",
    "SyncSemaphore", "SyncTreeCache",
]

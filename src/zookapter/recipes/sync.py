"""The blocking recipes under the asyncio recipes' names, for code built on
`ZooKeeperClient`:

    from zookapter.client import ZooKeeperClient
    from zookapter.recipes.sync import Lock

    zk = ZooKeeperClient("127.0.0.1:2181")
    zk.start()
    with Lock(zk, "/locks/orders", identifier="worker-1") as token:
        ...
"""

from . import LeadershipLost, LockTimeout, Key, ServiceInstance, TreeEvent, TreeEventType
from . import SyncBarrier as Barrier
from . import SyncConfigWatcher as ConfigWatcher
from . import SyncConfigWriter as ConfigWriter
from . import SyncCounter as Counter
from . import SyncDoubleBarrier as DoubleBarrier
from . import SyncLeaderElection as LeaderElection
from . import SyncLeaderLatch as LeaderLatch
from . import SyncLease as Lease
from . import SyncLock as Lock
from . import SyncLockingQueue as LockingQueue
from . import SyncMultiLease as MultiLease
from . import SyncParty as Party
from . import SyncQueue as Queue
from . import SyncReadWriteLock as ReadWriteLock
from . import SyncSemaphore as Semaphore
from . import SyncServiceCache as ServiceCache
from . import SyncServiceDiscovery as ServiceDiscovery
from . import SyncServiceRegistry as ServiceRegistry
from . import SyncShallowParty as ShallowParty
from . import SyncTreeCache as TreeCache

__all__ = [
    "Barrier", "ConfigWatcher", "ConfigWriter", "Counter", "DoubleBarrier", "Key",
    "LeaderElection", "LeaderLatch", "LeadershipLost", "Lease", "Lock", "LockTimeout",
    "LockingQueue", "MultiLease", "Party", "Queue", "ReadWriteLock", "Semaphore",
    "ServiceCache", "ServiceDiscovery", "ServiceInstance", "ServiceRegistry", "ShallowParty",
    "TreeCache", "TreeEvent", "TreeEventType",
]

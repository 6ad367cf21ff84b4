"""zookapter's ZooKeeper client.

- `AsyncZooKeeper` (aio.py): the asyncio client — session, reconnects, pipelining, watches;
  its operations are the coroutines of api.py.
- `ZooKeeperClient` (sync.py): the same API, blocking, on a background event loop thread.
- `ClientProtocolCore` (connection.py): the sans-I/O protocol core both are built on.
- errors.py: one exception class per ZooKeeper error code.
- `DataWatch` / `ChildrenWatch` (watchers.py; blocking twins in syncwatchers.py): follow a
  node's data or children across changes, reconnects and session expiry.
"""

from ..protocol.consts import CreateMode, EventType, KeeperState, Perm, WatcherType
from ..protocol.records import ACL, Id, Stat
from .acl import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)
from .aio import AsyncZooKeeper, ConnectionState, WatchStream
from .connection import ClientInfo, ClientProtocolCore
from .errors import *  # noqa: F403
from .errors import ZookeeperError
from .readtransaction import ReadTransaction
from .sync import ZooKeeperClient
from .syncwatchers import SyncChildrenWatch, SyncDataWatch
from .transaction import Transaction
from .watchers import ChildrenWatch, DataWatch
from .watches import WatchedEvent

__all__ = [
    "AsyncZooKeeper", "ZooKeeperClient", "ConnectionState", "WatchStream", "WatchedEvent",
    "Transaction", "ReadTransaction", "DataWatch", "ChildrenWatch", "SyncDataWatch",
    "SyncChildrenWatch", "ClientProtocolCore", "ClientInfo", "ZookeeperError",
    "CreateMode", "EventType", "KeeperState", "Perm", "WatcherType", "ACL", "Id", "Stat",
    "OPEN_ACL_UNSAFE", "CREATOR_ALL_ACL", "READ_ACL_UNSAFE", "make_acl", "make_digest_acl",
    "make_digest_acl_credential",
]

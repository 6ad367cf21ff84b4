"""Container and TTL node reaping, as ZooKeeper's ContainerManager.

Periodically (znode.container.checkIntervalMs) the leader or standalone server looks for
containers that are empty and have had a child once (persisted cversion > 0), and TTL nodes
that are empty and whose mtime is older than their TTL, and deletes each through the normal
write pipeline as a `deleteContainer` txn (session 0, xid 0) so the deletion is logged and
replicated like any other write. Deletions are rate limited (znode.container.maxPerMinute).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol.consts import Op, owner_ttl
from ..protocol.txns import DeleteTxn
from .prep import ChangeRecord, KeeperError, split_path

if TYPE_CHECKING:
    from .core import ServerCore

log = logging.getLogger("zookapter.containers")


class ContainerReaper:
    def __init__(self, core: ServerCore, max_per_minute: int = 10000,
                 max_never_used_ms: int = 0) -> None:
        self.core = core
        self.max_per_minute = max_per_minute
        self.max_never_used_ms = max_never_used_ms

    def candidates(self) -> list[str]:
        tree, now = self.core.tree, self.core.clock()
        out = []
        for path in sorted(tree.containers):
            node = tree.get(path)
            if node is None or node.children:
                continue
            if node.cversion > 0 or (self.max_never_used_ms
                                     and now - node.mtime > self.max_never_used_ms):
                out.append(path)
        for path in sorted(tree.ttls):
            node = tree.get(path)
            if node is None or node.children:
                continue
            ttl = owner_ttl(node.ephemeral_owner, True)
            if ttl and now - node.mtime > ttl:
                out.append(path)
        return out

    def check(self) -> int:
        n = 0
        for path in self.candidates()[: max(1, self.max_per_minute)]:
            if self.delete(path):
                n += 1
        return n

    def delete(self, path: str) -> bool:
        """Prep a deleteContainer txn against the outstanding state, as PrepRequestProcessor."""
        core = self.core
        prep = core.prep
        zxid = core.next_zxid
        try:
            node = prep.record(path)
            parent_path, _ = split_path(path)
            if node.child_count > 0:
                return False
            if node.ephemeral_owner > 0:
                return False
            parent = prep.record(parent_path)
        except KeyError:
            return False
        except KeeperError:
            return False
        prep.keep_one(parent_path, ChangeRecord(
            zxid, parent_path, True, parent.version, parent.cversion, parent.aversion,
            parent.ephemeral_owner, parent.child_count - 1, parent.acl, parent.data_len))
        prep.keep_one(path, ChangeRecord(zxid, path, False))
        txn = core._new_txn(0, 0, Op.DELETE_CONTAINER, DeleteTxn(path))
        core._enqueue(txn, None, None)
        log.debug("reaping container/TTL node %s", path)
        return True

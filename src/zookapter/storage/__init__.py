"""zookapter.storage: the data directory, readable and writable by Apache ZooKeeper.

- files: naming (`log.<hex zxid>`, `snapshot.<hex zxid>` in `version-2/`), FileHeader;
- txnlog: log records (encode/decode), `TxnLogWriter` (buffered appends, batch write + fsync
  meant for an executor, ZooKeeper's preallocation), `iter_log` (torn-tail aware reader),
  `truncate_torn_tail`;
- snapshot: `write_snapshot` / `read_snapshot` / `find_snapshots`, the ACL index cache;
- digest: the tree digest (node_digest, tree_digest, incremental `TreeDigest`);
- recovery: `load_database` (newest snapshot + log replay with ZooKeeper's semantics) and
  `replay_txn`;
- javaorder: Java HashMap/HashSet iteration order, for byte-identical snapshots;
- purge: ZooKeeper's PurgeTxnLog (`zookapter purge`, autopurge in the server);
- dump: txn and snapshot views for `zookapter txnlog` / `zookapter snapshot`.

All of it is synchronous; the server runs the blocking parts in an executor.
"""

"""Group commit of txns to the log: the I/O shell between the request pipeline and the disk.

The pipeline hands over each batch of prepped txns with a `done` callback. Records are
encoded on the event loop into the log writer's buffer; one worker thread at a time writes the
buffered bytes and fsyncs them. Every batch that arrives while an fsync is running waits and
goes into the next write, so one fsync covers many txns (ZooKeeper's SyncRequestProcessor
does the same). `done` runs on the loop only after the fsync of its txns returned, so a
reply is never sent for a write that is not on disk (forceSync=no skips the fsync, as
ZooKeeper's `zookeeper.forceSync=no`).

`coalesce` (off by default; an ensemble member turns it on): when the disk is idle, the first
batch does not start a write at once but at the end of the event-loop turn, so the batches
handed over in the same turn share one write and fsync. A follower persists each PROPOSAL
separately, and a burst of them arrives in one read: without this the first would be
fsynced alone and the rest would wait for a second fsync.

A failed write or fsync is fatal, as in ZooKeeper (which halts): nothing more is
acknowledged, and `on_fatal` is called so the server can stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Callable
from functools import partial

from ..protocol.txns import Txn
from .digest import DIGEST_VERSION
from .txnlog import DEFAULT_PREALLOC_SIZE, TxnLogWriter, encode_payload

log = logging.getLogger("zookapter.storage")


class TxnLogPersister:
    def __init__(self, log_dir: str, loop: asyncio.AbstractEventLoop, force_sync: bool = True,
                 prealloc_size: int = DEFAULT_PREALLOC_SIZE,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.loop = loop
        self.force_sync = force_sync
        self.prealloc_size = prealloc_size
        self.on_fatal = on_fatal
        self.writer: TxnLogWriter | None = None
        self._pending: list[tuple[int, bytes]] = []  # (zxid, record payload)
        self._waiting: list[Callable[[], None]] = []
        self._busy = False
        self._failed: BaseException | None = None
        self._roll_requested = False
        self.coalesce = False
        self._kick_scheduled = False
        self._closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "zookapter-txnlog")
        self.txns_logged = 0
        self.fsyncs = 0

    def persist(self, txns: list[Txn], done: Callable[[], None]) -> None:
        """Log `txns` (each with the tree digest after it, `txn.digest`, when known)."""
        self.persist_encoded(
            [(t.zxid, encode_payload(t, None if t.digest is None else (DIGEST_VERSION,
                                                                          t.digest)))
             for t in txns], done)

    def persist_encoded(self, records: list[tuple[int, bytes]],
                        done: Callable[[], None]) -> None:
        """Log records already encoded as (zxid, payload): an ensemble member's proposals
        carry exactly the log payload (PROPOSAL data = TxnHeader + txn + TxnDigest), so
        they are written as received or proposed, not encoded a second time."""
        if self._failed is not None:
            return  # never acknowledge after a failed write
        self._pending.extend(records)
        self._waiting.append(done)
        self.txns_logged += len(records)
        if self._busy or self._kick_scheduled:
            return
        if self.coalesce:
            self._kick_scheduled = True
            self.loop.call_soon(self._kick)
        else:
            self._start_write()

    def _kick(self) -> None:
        """The deferred start of a write (see `coalesce`)."""
        self._kick_scheduled = False
        if not self._busy and self._pending and not self._closed and self._failed is None:
            self._start_write()

    def roll(self) -> None:
        """Start a new log file with the next write (after a snapshot, as ZooKeeper)."""
        self._roll_requested = True

    def _start_write(self) -> None:
        """Encode everything pending into the log writer and write+fsync it in the worker.
        Runs only when no write is in flight, so rolling to a new file is safe here."""
        records, self._pending = self._pending, []
        callbacks, self._waiting = self._waiting, []
        if self._roll_requested and self.writer is not None:
            self.writer.close()
            self.writer = None
        self._roll_requested = False
        if self.writer is None:
            self.writer = TxnLogWriter(self.log_dir, records[0][0],
                                       prealloc_size=self.prealloc_size)
        append = self.writer.append_encoded
        for zxid, payload in records:
            append(zxid, payload)
        batch = self.writer.take_batch()
        self._busy = True
        fut = self.loop.run_in_executor(self._executor, self.writer.write_batch, batch,
                                        self.force_sync)
        fut.add_done_callback(partial(self._written, callbacks))

    def _written(self, callbacks: list[Callable[[], None]], fut: asyncio.Future) -> None:
        self._done(callbacks, fut.exception())

    def _done(self, callbacks: list[Callable[[], None]], exc: BaseException | None) -> None:
        self._busy = False
        if exc is not None:
            self._failed = exc
            log.critical("writing the txn log failed, no more writes are acknowledged: %s", exc)
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        self.fsyncs += 1
        # Start the next write before applying and replying to this batch, so the disk
        # syncs the next group while the loop does the CPU work of this one.
        if self._pending:
            self._start_write()
        for cb in callbacks:
            cb()

    def idle(self) -> bool:
        return not self._busy and not self._pending

    def close(self) -> None:
        """Wait for the write in flight, then write what is still pending (synchronously;
        its requests are not answered any more) and close the file."""
        self._closed = True
        self._executor.shutdown(wait=True)
        if self._failed is None and self._pending:
            try:
                if self.writer is None:
                    self.writer = TxnLogWriter(self.log_dir, self._pending[0][0],
                                               prealloc_size=self.prealloc_size)
                for zxid, payload in self._pending:
                    self.writer.append_encoded(zxid, payload)
                self._pending = []
                self.writer.write_batch(self.writer.take_batch(), self.force_sync)
            except OSError as e:
                log.error("final txn log write failed: %s", e)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

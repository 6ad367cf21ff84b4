"""Group commit of txns to the log: the I/O shell between the request pipeline and the disk.

The pipeline hands over each batch of prepped txns with a `done` callback. Records are
encoded on the event loop and appended to a shared buffer; a writer thread of our own (Java's
SyncRequestProcessor thread) takes everything buffered, writes it and fsyncs it, and as soon
as that returns takes whatever arrived meanwhile, without waiting for the event loop: the
loop only hears back, through `call_soon_threadsafe`, which callbacks are now durable. So
one fsync covers every batch that arrived while the previous one ran, and the disk never
waits for a busy loop to start the next write (with a thread pool and a hop back to the loop
between writes, a busy member's fsync cycle was three times its fsync time). `done` runs on
the loop only after the fsync of its txns returned, so a reply is never sent for a write
that is not on disk (forceSync=no skips the fsync, as ZooKeeper's `zookeeper.forceSync=no`).

`coalesce` (off by default; an ensemble member turns it on): when the writer is idle, the
first batch does not wake it at once but at the end of the event-loop turn, so the batches
handed over in the same turn share one write and fsync. A follower persists each PROPOSAL
separately, and a burst of them arrives in one read: without this the first would be
fsynced alone and the rest would wait for a second fsync.

A failed write or fsync is fatal, as in ZooKeeper (which halts): nothing more is
acknowledged, and `on_fatal` is called so the server can stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from ..protocol.txns import Txn
from .digest import DIGEST_VERSION
from .txnlog import DEFAULT_PREALLOC_SIZE, TxnLogWriter, encode_payload, frame_record

log = logging.getLogger("zookapter.storage")


class TxnLogPersister:
    """See the module docstring. Everything but the writer thread runs on `loop`."""

    def __init__(self, log_dir: str, loop: asyncio.AbstractEventLoop, force_sync: bool = True,
                 prealloc_size: int = DEFAULT_PREALLOC_SIZE,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.loop = loop
        self.force_sync = force_sync
        self.prealloc_size = prealloc_size
        self.on_fatal = on_fatal
        self.coalesce = False
        self.txns_logged = 0
        self.fsyncs = 0
        self._failed: BaseException | None = None
        self._closed = False
        self._kick_scheduled = False
        # shared with the writer thread, under _cond
        self._cond = threading.Condition(threading.Lock())
        self._buf = bytearray()  # encoded records not yet taken by the writer
        self._first_zxid = 0  # of the first record in _buf
        self._callbacks: list[Callable[[], None]] = []  # of the batches in _buf
        self._go = False  # the writer may take _buf
        self._writing = False  # the writer holds a batch
        self._roll_requested = False
        self._stop = False
        # the writer thread's own
        self.writer: TxnLogWriter | None = None
        self._thread = threading.Thread(target=self._run, name="zookapter-txnlog", daemon=True)
        self._thread.start()

    # --- the loop's side -----------------------------------------------------------------

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
        if self._failed is not None or self._closed or not records:
            return  # never acknowledge after a failed write
        chunk = b"".join(frame_record(payload) for _zxid, payload in records)
        self.txns_logged += len(records)
        with self._cond:
            if not self._buf:
                self._first_zxid = records[0][0]
            self._buf += chunk
            self._callbacks.append(done)
            if self._writing or self._go:
                return  # taken when the write in progress ends
            if not self.coalesce:
                self._go = True
                self._cond.notify()
                return
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self.loop.call_soon(self._kick)

    def _kick(self) -> None:
        """The deferred wake-up of an idle writer (see `coalesce`)."""
        self._kick_scheduled = False
        with self._cond:
            if self._buf and not self._writing:
                self._go = True
                self._cond.notify()

    def roll(self) -> None:
        """Start a new log file with the next batch the writer takes (after a snapshot, as
        ZooKeeper)."""
        with self._cond:
            self._roll_requested = True

    def idle(self) -> bool:
        with self._cond:
            return not self._writing and not self._buf

    def _written(self, callbacks: list[Callable[[], None]]) -> None:
        if self._failed is not None:
            return
        for cb in callbacks:
            cb()

    def _write_failed(self, exc: BaseException) -> None:
        log.critical("writing the txn log failed, no more writes are acknowledged: %s", exc)
        if self.on_fatal is not None:
            self.on_fatal(exc)

    def close(self) -> None:
        """Write what is still pending (its requests are not answered any more), wait for
        the writer to finish, and close the file."""
        self._closed = True
        with self._cond:
            self._stop = True
            self._go = True
            self._cond.notify()
        self._thread.join()
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                log.error("closing the txn log failed: %s", e)
            self.writer = None

    # --- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._go or self._stop):
                    self._cond.wait()
                if not self._buf:
                    self._go = False
                    if self._stop:
                        return
                    continue
                batch, self._buf = self._buf, bytearray()
                callbacks, self._callbacks = self._callbacks, []
                first_zxid = self._first_zxid
                roll, self._roll_requested = self._roll_requested, False
                self._go = False
                self._writing = True
                stopping = self._stop
            try:
                self._write(batch, first_zxid, roll)
            except BaseException as e:  # noqa: BLE001 - any failure is fatal to the log
                self._failed = e
                if not stopping:
                    self._post(self._write_failed, e)
                return
            self.fsyncs += 1
            with self._cond:
                self._writing = False
                if self._buf:
                    self._go = True  # arrived during the write: next batch at once
            if not stopping:
                self._post(self._written, callbacks)

    def _write(self, batch: bytearray, first_zxid: int, roll: bool) -> None:
        if roll and self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.writer is None:
            self.writer = TxnLogWriter(self.log_dir, first_zxid,
                                       prealloc_size=self.prealloc_size)
        self.writer.write_batch(batch, self.force_sync)

    def _post(self, fn: Callable[..., None], arg: object) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

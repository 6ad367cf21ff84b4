"""The transaction log: `log.<zxid>` files, byte-compatible with ZooKeeper's FileTxnLog.

File layout::

    FileHeader            int magic "ZKLG", int version 2, long dbid 0
    record*               long   checksum   Adler-32 of payload (low 32 bits; high bits 0)
                          int    length     of payload
                          byte[] payload    TxnHeader + txn record [+ TxnDigest]
                          byte   'B'        end of record
    zeros                 preallocated space up to the file's size

TxnDigest = int version (2), long treeDigest (the tree's digest after this txn).

Writing (`TxnLogWriter`) is split so that disk I/O can run off the event loop:

- `append(txn, digest)` encodes a record into an in-memory buffer (cheap, on the loop);
- `take_batch()` hands the buffered bytes over and starts a new buffer (on the loop);
- `write_batch(batch, fsync=True)` preallocates if needed, writes the batch and fsyncs
  (blocking; run it in an executor). Only one `write_batch` may run at a time; it touches
  only the file, never the buffer, so the loop may keep appending meanwhile.

`flush()` / `fsync()` / `close()` are the synchronous conveniences built on these (not to be
called while a `write_batch` is running). Like ZooKeeper, name the file after the zxid of the
first txn it will hold (`first_zxid`), and start a new writer to roll the log.

Preallocation is ZooKeeper's: when the write position gets within 4096 bytes of the
preallocated end, the file is grown by `prealloc_size` by writing one zero byte at the new
end (or, when already past the end, to `position + prealloc_size` rounded down to a multiple
of `prealloc_size`). Readers therefore see zeros after the last record: a record length of 0
means end of file.

Reading (`iter_log`) follows FileTxnIterator: files sorted by their zxid, starting with the
newest file whose start zxid is <= from_zxid, records with zxid < from_zxid skipped. Per file:

- clean end: end of file at a record boundary, or a zero length (preallocated zeros);
- torn tail (crash while appending): fewer than 12 bytes left, a length running past the end
  of the file, a missing 'B' after the payload, or a negative length. Reading of that file
  stops there; as in ZooKeeper the next file (if any) is read. For the last file the
  iterator's `torn` is set to (file, offset) so the caller can `truncate_torn_tail()` before
  appending. A checksum mismatch on the very last record of the last file, followed only by
  zeros, is also treated as torn (the write was never acknowledged, as it was not synced);
- `CorruptLogError(file, offset, reason)`: bad magic or short header (except an empty or
  short last file, which counts as torn at offset 0), a checksum mismatch anywhere else, or a
  checksummed payload that does not parse.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple, Self

from ..protocol.jute import JuteError, Reader, Writer
from ..protocol.txns import Txn, UnsupportedTxn
from .files import (
    FILE_HEADER,
    FORMAT_VERSION,
    LOG_DBID,
    LOG_MAGIC,
    LOG_PREFIX,
    fsync_dir,
    log_name,
    sorted_files,
)

DEFAULT_PREALLOC_SIZE = 64 * 1024 * 1024
PAD_THRESHOLD = 4096
END_OF_RECORD = 0x42  # 'B'
RECORD_HEAD = struct.Struct(">qi")  # checksum, payload length
TXN_DIGEST = struct.Struct(">iq")  # version, treeDigest

Digest = tuple[int, int]  # (digest version, tree digest)


class CorruptLogError(IOError):
    """A txn log that ZooKeeper too would refuse to read."""

    def __init__(self, file: str | os.PathLike[str], offset: int, reason: str) -> None:
        super().__init__(f"{file} at offset {offset}: {reason}")
        self.file = Path(file)
        self.offset = offset
        self.reason = reason


# --- records ---------------------------------------------------------------------------------

def encode_payload(txn: Txn, digest: Digest | None = None) -> bytes:
    """TxnHeader + record + optional TxnDigest (what the checksum covers)."""
    w = Writer()
    txn.write(w)
    if digest is not None:
        w.raw(TXN_DIGEST.pack(digest[0], digest[1]))
    return bytes(w.buf)


def encode_record(txn: Txn, digest: Digest | None = None) -> bytes:
    """One complete log record: checksum, length, payload, 'B'."""
    return frame_record(encode_payload(txn, digest))


def frame_record(payload: bytes) -> bytes:
    """The log record around an encoded payload (encode_payload's bytes, which are also a
    PROPOSAL's data): checksum, length, payload, 'B'."""
    return RECORD_HEAD.pack(zlib.adler32(payload), len(payload)) + payload + b"B"


def decode_payload(payload: bytes) -> tuple[Txn, Digest | None]:
    """Parse a payload; the TxnDigest is absent when fewer than 12 bytes follow the record."""
    r = Reader(payload, max_len=len(payload))
    txn = Txn.read(r)
    digest = None
    if r.remaining() >= TXN_DIGEST.size:
        digest = TXN_DIGEST.unpack_from(payload, r.pos)
    return txn, digest


# --- writing ---------------------------------------------------------------------------------

def padded_size(position: int, size: int, prealloc_size: int) -> int:
    """The file size after preallocation for a write at `position` (ZooKeeper's rule)."""
    if prealloc_size > 0 and position + PAD_THRESHOLD >= size:
        if position > size:
            new = position + prealloc_size
            return new - new % prealloc_size
        return size + prealloc_size
    return size


def _pwrite_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class TxnLogWriter:
    """Appends records to a new `log.<first_zxid>` file (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], first_zxid: int,
                 prealloc_size: int = DEFAULT_PREALLOC_SIZE, dbid: int = LOG_DBID) -> None:
        self.directory = Path(directory)
        self.path = self.directory / log_name(first_zxid)
        self.first_zxid = first_zxid
        self.last_zxid: int | None = None
        self.prealloc_size = prealloc_size
        self._pending = bytearray()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _pwrite_all(self._fd, FILE_HEADER.pack(LOG_MAGIC, FORMAT_VERSION, dbid), 0)
        self._position = FILE_HEADER.size
        self._size = self._position
        self._preallocate()
        self._dir_synced = False  # the directory entry is made durable by the first fsync

    @property
    def position(self) -> int:
        """Bytes of header and records written to the file so far (excludes the buffer)."""
        return self._position

    @property
    def pending(self) -> int:
        """Bytes appended but not yet taken by take_batch()."""
        return len(self._pending)

    def append(self, txn: Txn, digest: Digest | None = None) -> None:
        self._pending += encode_record(txn, digest)
        self.last_zxid = txn.zxid

    def take_batch(self) -> bytearray:
        batch, self._pending = self._pending, bytearray()
        return batch

    def write_batch(self, batch: bytes | bytearray, fsync: bool = True) -> None:
        """Preallocate as needed, write `batch` at the end, optionally fsync. Blocking (the
        log's worker thread: one pwrite, not lseek + write, as each syscall there means
        taking the GIL back from a busy event loop once more)."""
        fd = self._require_open()
        if batch:
            self._preallocate()
            _pwrite_all(fd, batch, self._position)
            self._position += len(batch)
        if fsync:
            self.fsync()

    def flush(self) -> None:
        """Write everything appended so far (no fsync)."""
        self.write_batch(self.take_batch(), fsync=False)

    def fsync(self) -> None:
        fd = self._require_open()
        fdatasync = getattr(os, "fdatasync", os.fsync)
        fdatasync(fd)
        if not self._dir_synced:
            fsync_dir(self.directory)
            self._dir_synced = True

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError("txn log is closed")
        return self._fd

    def _preallocate(self) -> None:
        new_size = padded_size(self._position, self._size, self.prealloc_size)
        if new_size != self._size:
            os.pwrite(self._require_open(), b"\0", new_size - 1)
            self._size = new_size


# --- reading ---------------------------------------------------------------------------------

class LogEntry(NamedTuple):
    txn: Txn
    digest: Digest | None
    file: Path
    offset: int  # of the record's checksum field


def log_files(directory: str | os.PathLike[str], from_zxid: int = 0) -> list[Path]:
    """The log files holding txns >= from_zxid: the newest file starting at or before it and
    every later one, oldest first."""
    files = sorted_files(directory, LOG_PREFIX)
    start = 0
    for i, (zxid, _path) in enumerate(files):
        if zxid <= from_zxid:
            start = i
    return [p for _z, p in files[start:]]


def _only_zeros(fh: IO[bytes]) -> bool:
    while True:
        chunk = fh.read(1 << 20)
        if not chunk:
            return True
        if chunk.count(0) != len(chunk):
            return False


MAX_TORN_SPAN = 4 * 1024 * 1024  # far more than one record (jute.maxbuffer) can be


def _valid_record_after(path: Path, offset: int) -> bool:
    """True if a complete, checksummed record starts somewhere after `offset`.

    A crash can only leave a prefix of the last record followed by the preallocated zeros,
    so anything parseable further on means the record at `offset` was damaged in place."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(MAX_TORN_SPAN + 1)
        more = fh.read(1 << 20)
    end = len(data.rstrip(b"\0"))
    if end > MAX_TORN_SPAN or (more and more.count(0) != len(more)):
        return True  # far too much data for a single torn record
    head = RECORD_HEAD
    for pos in range(1, max(end - head.size, 0)):
        crc, length = head.unpack_from(data, pos)
        stop = pos + head.size + length
        if length <= 0 or stop >= len(data) or data[stop] != END_OF_RECORD:
            continue
        if zlib.adler32(data[pos + head.size:stop]) == crc:
            return True
    return False


class LogIterator:
    """Iterates `LogEntry`s across log files; see the module docstring for end conditions.

    After iteration: `torn` is (file, offset) when the last file ends in a torn record
    (else None), `torn_earlier` lists torn tails skipped in earlier files, `end` is
    (file, offset just past the last good record) of the last file read, and `last_zxid`
    the zxid of the last entry read (None if none)."""

    def __init__(self, directory: str | os.PathLike[str], from_zxid: int = 0,
                 files: list[Path] | None = None) -> None:
        self.directory = Path(directory)
        self.from_zxid = from_zxid
        self.files = log_files(directory, from_zxid) if files is None else list(files)
        self.torn: tuple[Path, int] | None = None
        self.torn_earlier: list[tuple[Path, int]] = []
        self.end: tuple[Path, int] | None = None
        self.last_zxid: int | None = None

    def __iter__(self) -> Iterator[LogEntry]:
        n = len(self.files)
        for i, path in enumerate(self.files):
            yield from self._read_file(path, is_last=(i == n - 1))

    def _torn(self, path: Path, offset: int, is_last: bool) -> None:
        if is_last:
            if _valid_record_after(path, offset):
                # Not a write cut short by a crash (that is followed only by zeros): a damaged
                # record with acknowledged ones after it. Refuse rather than truncate them.
                raise CorruptLogError(path, offset, "damaged record followed by valid records")
            self.torn = (path, offset)
        else:
            self.torn_earlier.append((path, offset))

    def _read_file(self, path: Path, is_last: bool) -> Iterator[LogEntry]:
        with open(path, "rb") as fh:
            head = fh.read(FILE_HEADER.size)
            if len(head) < FILE_HEADER.size:
                if is_last:
                    self._torn(path, 0, True)
                    self.end = (path, 0)
                    return
                raise CorruptLogError(path, 0, "short file header")
            magic, _version, _dbid = FILE_HEADER.unpack(head)
            if magic != LOG_MAGIC:
                raise CorruptLogError(path, 0, f"invalid magic number {magic:#x}")
            offset = FILE_HEADER.size
            self.end = (path, offset)
            while True:
                head = fh.read(RECORD_HEAD.size)
                if not head:
                    return
                if len(head) < RECORD_HEAD.size:
                    self._torn(path, offset, is_last)
                    return
                crc, length = RECORD_HEAD.unpack(head)
                if length == 0:
                    return
                if length < 0:
                    self._torn(path, offset, is_last)
                    return
                body = fh.read(length + 1)
                if len(body) < length + 1 or body[length] != END_OF_RECORD:
                    self._torn(path, offset, is_last)
                    return
                payload = body[:length]
                if zlib.adler32(payload) != crc:
                    if is_last and _only_zeros(fh):
                        self._torn(path, offset, True)
                        return
                    raise CorruptLogError(path, offset, "CRC check failed")
                try:
                    txn, digest = decode_payload(payload)
                except (JuteError, UnsupportedTxn) as e:
                    raise CorruptLogError(path, offset, f"unparseable txn: {e}") from e
                record_offset = offset
                offset += RECORD_HEAD.size + length + 1
                self.end = (path, offset)
                if txn.zxid >= self.from_zxid:
                    self.last_zxid = txn.zxid
                    yield LogEntry(txn, digest, path, record_offset)


def iter_log(directory: str | os.PathLike[str], from_zxid: int = 0) -> LogIterator:
    """Txns with zxid >= from_zxid from the logs in `directory` (iterate the result)."""
    return LogIterator(directory, from_zxid)


def iter_log_file(path: str | os.PathLike[str]) -> LogIterator:
    """All txns of one log file (iterate the result)."""
    p = Path(path)
    return LogIterator(p.parent, -(1 << 63), files=[p])


def truncate_torn_tail(file: str | os.PathLike[str], offset: int) -> None:
    """Cut a torn tail off a log file (as reported by `LogIterator.torn`) and sync it.
    A file without even a complete header is removed."""
    path = Path(file)
    if offset < FILE_HEADER.size:
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate_log(directory: str | os.PathLike[str], zxid: int) -> bool:
    """Drop every logged txn after `zxid` (a follower told TRUNC by its leader).

    As ZooKeeper's FileTxnLog.truncate: the file holding `zxid` is cut right after it and
    every log file named after a later zxid is deleted. Returns False when no log file starts
    at or before `zxid` (then nothing is touched: the caller must fetch a snapshot instead).
    The data tree must be reloaded from disk afterwards."""
    files = sorted_files(directory, LOG_PREFIX)
    keep = [p for start, p in files if start <= zxid]
    if not keep:
        return False
    last = keep[-1]
    cut: int | None = None
    for entry in iter_log_file(last):
        if entry.txn.zxid > zxid:
            cut = entry.offset
            break
    if cut is not None:
        fd = os.open(last, os.O_WRONLY)
        try:
            os.ftruncate(fd, cut)
            os.fsync(fd)
        finally:
            os.close(fd)
    for start, p in files:
        if start > zxid:
            p.unlink()
    fsync_dir(directory)
    return True

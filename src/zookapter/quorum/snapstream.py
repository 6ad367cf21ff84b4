"""Receiving a SNAP sync: where the snapshot in a quorum byte stream ends.

After a SNAP packet the leader writes the snapshot body straight onto the connection — no
length prefix, no framing — followed by the "BenWasHere" signature, and then goes on with
ordinary packets (NEWLEADER...). A learner therefore has to walk the snapshot's structure to
find its end. Parsing the whole buffer again each time more bytes arrive would be quadratic
in the snapshot size, so `SnapshotScanner` walks the structure once, incrementally, touching
only lengths and counts; when it has seen the signature the caller parses the complete slice
once with `storage.snapshot.parse_wire_snapshot`.

Structure walked (see storage/snapshot.py): int sessions + 12 bytes each; int ACL lists,
each long index + vector<ACL> (int count, then int perms + two ustrings per ACL); nodes, each
ustring path — "/" ends them — then buffer data, long ACL index and a 60-byte stat; then the
signature ustring.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from ..protocol.jute import JUTE_MAXBUFFER_DEFAULT

_INT = struct.Struct(">i")
_STAT_AND_ACL = 8 + 60
_MAX_LEN = 1 << 31


class SnapshotStreamError(ValueError):
    """The bytes after SNAP are not a snapshot (negative or absurd lengths)."""


# Each step of the walk yields how many bytes it needs at `pos`; the driver resumes it once
# they are buffered.
_Walk = Generator[int, None, None]


class SnapshotScanner:
    """Feed the bytes following a SNAP packet; `feed` returns the snapshot's length (through
    the signature) once it is complete, None before."""

    def __init__(self, max_item: int = 2 * JUTE_MAXBUFFER_DEFAULT) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.end: int | None = None
        self.max_item = max_item
        self._walk = self._structure()
        self._need = next(self._walk)

    def feed(self, data: bytes | bytearray | memoryview) -> int | None:
        self.buf += data
        while self.end is None and len(self.buf) - self.pos >= self._need:
            try:
                self._need = self._walk.send(None)
            except StopIteration:
                self.end = self.pos
        return self.end

    def _int(self) -> int:
        (v,) = _INT.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def _length(self, what: str) -> int:
        n = self._int()
        if n < -1 or n > self.max_item:
            raise SnapshotStreamError(f"bad {what} length {n} at offset {self.pos - 4}")
        return max(n, 0)

    def _skip_string(self) -> _Walk:
        yield 4
        n = self._length("string")
        yield n
        self.pos += n

    def _structure(self) -> _Walk:
        yield 4
        sessions = self._length("session count")
        yield sessions * 12
        self.pos += sessions * 12
        yield 4
        for _ in range(self._length("ACL map")):
            yield 12
            self.pos += 8
            for _ in range(self._length("ACL vector")):
                yield 4
                self.pos += 4
                yield from self._skip_string()
                yield from self._skip_string()
        while True:
            yield 4
            n = self._length("path")
            yield n
            is_end = n == 1 and self.buf[self.pos] == 0x2F  # "/"
            self.pos += n
            if is_end:
                break
            yield 4
            data_len = self._length("data")
            yield data_len + _STAT_AND_ACL
            self.pos += data_len + _STAT_AND_ACL
        yield from self._skip_string()  # the signature

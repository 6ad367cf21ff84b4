"""Jute, ZooKeeper's record serialization: big-endian primitives, length-prefixed strings,
buffers and vectors, with -1 meaning null.

A `Reader` walks a `bytes`/`memoryview` with an offset; a `Writer` appends to a `bytearray`.
Both use precompiled `struct.Struct` objects, because every client request passes through here.
Lengths are bounded by `max_len` (jute.maxbuffer plus its "extra" allowance, as Java's
BinaryInputArchive does) so a hostile length can never make us allocate gigabytes.
"""

from __future__ import annotations

import builtins
import struct
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
BOOL = struct.Struct(">?")
INT_INT = struct.Struct(">ii")
INT_LONG_INT = struct.Struct(">iqi")

JUTE_MAXBUFFER_DEFAULT = 0xFFFFF


class JuteError(ValueError):
    """Malformed or truncated jute input (Java: IOException / "Unreasonable length")."""


class Reader:
    """Sequential decoder over one frame. Raises JuteError on truncation or absurd lengths."""

    __slots__ = ("buf", "max_len", "pos")

    def __init__(self, buf: bytes | memoryview, pos: builtins.int = 0,
                 max_len: builtins.int = 2 * JUTE_MAXBUFFER_DEFAULT) -> None:
        self.buf = buf
        self.pos = pos
        self.max_len = max_len

    def remaining(self) -> builtins.int:
        return len(self.buf) - self.pos

    def _need(self, n: builtins.int) -> None:
        if self.pos + n > len(self.buf):
            raise JuteError(f"truncated record: need {n} bytes at offset {self.pos}")

    def int(self) -> builtins.int:
        self._need(4)
        (v,) = INT.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def long(self) -> builtins.int:
        self._need(8)
        (v,) = LONG.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def bool(self) -> builtins.bool:
        self._need(1)
        v = self.buf[self.pos] != 0
        self.pos += 1
        return v

    def byte(self) -> builtins.int:
        self._need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v - 256 if v > 127 else v

    def _length(self) -> builtins.int:
        n = self.int()
        if n < -1 or n > self.max_len:
            raise JuteError(f"unreasonable length {n}")
        return n

    def buffer(self) -> bytes | None:
        n = self._length()
        if n == -1:
            return None
        self._need(n)
        v = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return v

    def ustring(self) -> str | None:
        n = self._length()
        if n == -1:
            return None
        self._need(n)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Java decodes with replacement characters rather than failing.
            return raw.decode("utf-8", "replace")

    def vector(self, item: Callable[[Reader], T]) -> list[T] | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.max_len:
            raise JuteError(f"unreasonable vector length {n}")
        return [item(self) for _ in range(n)]

    def ustring_vector(self) -> list[str] | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.max_len:
            raise JuteError(f"unreasonable vector length {n}")
        out = []
        for _ in range(n):
            s = self.ustring()
            out.append("" if s is None else s)
        return out


class Writer:
    """Appends jute-encoded values to a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def int(self, v: builtins.int) -> Writer:
        self.buf += INT.pack(v)
        return self

    def long(self, v: builtins.int) -> Writer:
        self.buf += LONG.pack(v)
        return self

    def bool(self, v: builtins.bool) -> Writer:
        self.buf.append(1 if v else 0)
        return self

    def buffer(self, v: bytes | None) -> Writer:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            self.buf += INT.pack(len(v))
            self.buf += v
        return self

    def ustring(self, v: str | None) -> Writer:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            raw = encode_java_utf8(v)
            self.buf += INT.pack(len(raw))
            self.buf += raw
        return self

    def ustring_vector(self, v: list[str] | None) -> Writer:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
            return self
        self.buf += INT.pack(len(v))
        for s in v:
            self.ustring(s)
        return self

    def raw(self, b: bytes) -> Writer:
        self.buf += b
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)


def encode_java_utf8(s: str) -> bytes:
    """UTF-8 of a jute string. Java would write a non-BMP character as two 3-byte surrogates;
    such characters are rejected in paths by validation, and elsewhere clients send UTF-8."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from a Java peer) round-trip through surrogatepass.
        return s.encode("utf-8", "surrogatepass")

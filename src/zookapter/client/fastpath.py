"""Hand-specialised codecs for the requests and replies a busy client exchanges most.

The generic path (a `Writer`, the record's `write`, a `Reader` per frame, one method call per
field) costs a few microseconds per request in CPython, which is most of a pipelined
client's CPU. These functions produce exactly the same bytes and values with one precompiled
`struct` call per fixed-size run of fields and no intermediate objects:

- encoders build a whole request frame (length prefix, xid, opcode, body) for the record
  types of getData/exists/getChildren, setData, delete and the single-path requests; any
  other record goes through the generic path;
- decoders read a reply body straight out of the receive buffer between two offsets, for
  the Stat-bearing replies (getData, setData, exists, setACL). They check every length
  against the frame's end and raise JuteError as the Reader would.

`ClientProtocolCore` picks these first and falls back to the generic codecs, so behaviour
never depends on which path a request took.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.consts import Op
from ..protocol.jute import INT, JuteError, encode_java_utf8
from ..protocol.records import (
    STAT,
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
    Stat,
)

if TYPE_CHECKING:
    from .connection import ClientProtocolCore

FRAME_HEAD = struct.Struct(">iii")  # frame length, xid, opcode
FRAME_HEAD_PATH = struct.Struct(">iiii")  # frame length, xid, opcode, path length
REPLY_HEAD = struct.Struct(">iqi")  # xid, zxid, err (the frame length is read first)
STAT_SIZE = STAT.size
_NULL = b"\xff\xff\xff\xff"
_BOOL = (b"\x00", b"\x01")


def request_frame(xid: int, op: int, body: bytes | bytearray) -> bytes:
    """A frame from an already encoded request body."""
    return FRAME_HEAD.pack(len(body) + 8, xid, op) + body


# --- encoders: (core, xid, op, record) -> frame, or None to use the generic path ---------------

def _server_path(core: ClientProtocolCore, path: str) -> bytes:
    return encode_java_utf8(path if core.chroot is None else core.to_server(path))


def _enc_path_watch(core: ClientProtocolCore, xid: int, op: int,
                    rec: PathWatchRequest) -> bytes | None:
    if rec.path is None:
        return None
    p = _server_path(core, rec.path)
    n = len(p)
    return FRAME_HEAD_PATH.pack(n + 13, xid, op, n) + p + _BOOL[bool(rec.watch)]


def _enc_path(core: ClientProtocolCore, xid: int, op: int, rec: PathRequest) -> bytes | None:
    if rec.path is None:
        return None
    p = _server_path(core, rec.path)
    n = len(p)
    return FRAME_HEAD_PATH.pack(n + 12, xid, op, n) + p


def _enc_delete(core: ClientProtocolCore, xid: int, op: int,
                rec: DeleteRequest) -> bytes | None:
    if rec.path is None:
        return None
    p = _server_path(core, rec.path)
    n = len(p)
    return FRAME_HEAD_PATH.pack(n + 16, xid, op, n) + p + INT.pack(rec.version)


def _enc_set_data(core: ClientProtocolCore, xid: int, op: int,
                  rec: SetDataRequest) -> bytes | None:
    if rec.path is None:
        return None
    p = _server_path(core, rec.path)
    n = len(p)
    data = rec.data
    if data is None:
        return b"".join((FRAME_HEAD_PATH.pack(n + 20, xid, op, n), p, _NULL,
                         INT.pack(rec.version)))
    d = len(data)
    return b"".join((FRAME_HEAD_PATH.pack(n + d + 20, xid, op, n), p, INT.pack(d), data,
                     INT.pack(rec.version)))


ENCODERS: dict[type, Callable[[ClientProtocolCore, int, int, Any], bytes | None]] = {
    PathWatchRequest: _enc_path_watch,
    PathRequest: _enc_path,
    DeleteRequest: _enc_delete,
    SetDataRequest: _enc_set_data,
}


# --- decoders: (buf, pos, end) -> body; buf is bytes, [pos, end) the reply body ---------------

def _truncated(need: int, pos: int) -> JuteError:
    return JuteError(f"truncated record: need {need} bytes at offset {pos}")


def _dec_stat(buf: bytes, pos: int, end: int) -> Stat:
    if end - pos < STAT_SIZE:
        raise _truncated(STAT_SIZE, pos)
    return Stat(*STAT.unpack_from(buf, pos))


def _dec_data_stat(buf: bytes, pos: int, end: int) -> tuple[bytes, Stat]:
    if end - pos < 4 + STAT_SIZE:
        raise _truncated(4 + STAT_SIZE, pos)
    (n,) = INT.unpack_from(buf, pos)
    pos += 4
    if n > 0:
        if end - pos < n + STAT_SIZE:
            raise _truncated(n + STAT_SIZE, pos)
        data = buf[pos:pos + n]
        pos += n
    elif n >= -1:
        data = b""
    else:
        raise JuteError(f"unreasonable length {n}")
    return data, Stat(*STAT.unpack_from(buf, pos))


DECODERS: dict[int, Callable[[bytes, int, int], Any]] = {
    Op.GET_DATA: _dec_data_stat,
    Op.EXISTS: _dec_stat,
    Op.SET_DATA: _dec_stat,
    Op.SET_ACL: _dec_stat,
}

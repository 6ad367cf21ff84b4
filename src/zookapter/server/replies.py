"""Encoding of reply frames: length prefix + ReplyHeader + body, built in one bytearray.

Hot path: getData replies are `header + buffer + cached stat bytes`, so they are packed with
one precompiled struct and two concatenations.
"""

from __future__ import annotations

import struct

from ..protocol.consts import Op
from ..protocol.jute import Writer
from ..protocol.records import ACL, MULTI_DONE, MULTI_HEADER, write_acls

FRAME_HEADER = struct.Struct(">iiqi")  # frame length, xid, zxid, err
HEADER_LEN = 16  # xid + zxid + err
INT = struct.Struct(">i")
NOTIFY = struct.Struct(">iiqiiii")  # len, xid=-1, zxid, err=0, type, state, path len


def header_only(xid: int, zxid: int, err: int) -> bytes:
    return FRAME_HEADER.pack(HEADER_LEN, xid, zxid, err)


def with_body(xid: int, zxid: int, body: bytes | bytearray) -> bytes:
    return FRAME_HEADER.pack(HEADER_LEN + len(body), xid, zxid, 0) + body


def get_data_reply(xid: int, zxid: int, data: bytes | None, stat: bytes) -> bytes:
    if data is None:
        return FRAME_HEADER.pack(HEADER_LEN + 72, xid, zxid, 0) + b"\xff\xff\xff\xff" + stat
    n = len(data)
    return b"".join((FRAME_HEADER.pack(HEADER_LEN + 72 + n, xid, zxid, 0), INT.pack(n),
                     data, stat))


def notification(event_type: int, path: str, zxid: int) -> bytes:
    raw = path.encode("utf-8")
    return NOTIFY.pack(HEADER_LEN + 12 + len(raw), -1, zxid, 0, event_type, 3, len(raw)) + raw


def ustring_body(path: str) -> bytes:
    raw = path.encode("utf-8")
    return INT.pack(len(raw)) + raw


def children_body(children: list[str], stat: bytes | None = None) -> bytes:
    w = Writer()
    w.ustring_vector(children)
    if stat is not None:
        w.raw(stat)
    return bytes(w.buf)


def acl_body(acl: tuple[ACL, ...], stat: bytes) -> bytes:
    w = Writer()
    write_acls(w, acl)
    w.raw(stat)
    return bytes(w.buf)


def multi_body(results: list[tuple[int, int, bytes]]) -> bytes:
    """results: (type, err, body) per op; an error result is (-1, err, ErrorResponse)."""
    parts = []
    for typ, err, body in results:
        parts.append(MULTI_HEADER.pack(typ, False, err))
        parts.append(body)
    parts.append(MULTI_DONE)
    return b"".join(parts)


def error_result(err: int) -> tuple[int, int, bytes]:
    return (Op.ERROR, err, INT.pack(err))

"""The client's hand-specialised codecs (fastpath.py) against the generic ones: the same
request bytes for every record type they cover, the same reply values, the same errors on
malformed input, and frame reassembly when replies arrive in arbitrary pieces. No sockets:
these are byte-level checks of the sans-I/O core."""

from __future__ import annotations

import struct

import pytest

from zookapter.client.connection import ClientProtocolCore, Reply
from zookapter.client.errors import ProtocolError
from zookapter.client.fastpath import ENCODERS, request_frame
from zookapter.protocol.consts import Err, Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import ConnectResponse as ConnectResponseRecord
from zookapter.protocol.records import (
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
    Stat,
)

STAT = Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def reply(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    return frame(struct.pack(">iqi", xid, zxid, err) + body)


def stat_bytes() -> bytes:
    w = Writer()
    STAT.write(w)
    return bytes(w.buf)


def connected(chroot: str | None = None) -> ClientProtocolCore:
    core = ClientProtocolCore(chroot)
    core.connect_request(10000)
    w = Writer()
    ConnectResponseRecord(0, 10000, 0x1234, bytes(16), False).write(w)
    core.receive_data(frame(bytes(w.buf)))
    return core


def generic_frame(core: ClientProtocolCore, xid: int, op: int, rec: object) -> bytes:
    """The frame the generic path builds: the record's own write(), chroot applied."""
    path = getattr(rec, "path", None)
    if path is not None:
        rec = type(rec)(**{**{f: getattr(rec, f) for f in rec.__slots__},  # type: ignore
                           "path": core.to_server(path)})
    w = Writer()
    rec.write(w)  # type: ignore[attr-defined]
    return request_frame(xid, op, w.buf)


RECORDS = [
    (Op.GET_DATA, PathWatchRequest("/a/b", False)),
    (Op.EXISTS, PathWatchRequest("/a", True)),
    (Op.GET_CHILDREN, PathWatchRequest("/", True)),
    (Op.SYNC, PathRequest("/x")),
    (Op.GET_ACL, PathRequest("/ünïcødé/✓")),
    (Op.DELETE, DeleteRequest("/d", 7)),
    (Op.DELETE, DeleteRequest("/d", -1)),
    (Op.SET_DATA, SetDataRequest("/s", b"v" * 100, -1)),
    (Op.SET_DATA, SetDataRequest("/s", b"", 3)),
    (Op.SET_DATA, SetDataRequest("/s", None, 3)),
]


@pytest.mark.parametrize("chroot", [None, "/app", "/ch/root"])
@pytest.mark.parametrize("op,rec", RECORDS)
def test_fast_encoders_match_generic_bytes(chroot: str | None, op: int, rec: object) -> None:
    core = connected(chroot)
    assert type(rec) in ENCODERS
    xid, data = core.send_request(op, rec)
    assert data == generic_frame(core, xid, op, rec)
    assert core.pending_xids() == [xid]


def test_path_none_and_unlisted_records_take_the_generic_path() -> None:
    core = connected()
    xid, data = core.send_request(Op.SYNC, PathRequest(None))
    assert data == request_frame(xid, Op.SYNC, b"\xff\xff\xff\xff")
    xid, data = core.send_request(Op.CLOSE_SESSION, None)
    assert data == struct.pack(">iii", 8, xid, Op.CLOSE_SESSION)


def test_get_data_values() -> None:
    core = connected("/app")
    for _ in range(3):
        core.send_request(Op.GET_DATA, PathWatchRequest("/n", False))
    data = (reply(1, 5, 0, struct.pack(">i", 3) + b"abc" + stat_bytes())
            + reply(2, 6, 0, struct.pack(">i", -1) + stat_bytes())
            + reply(3, 7, 0, struct.pack(">i", 0) + stat_bytes()))
    assert core.receive_data(data) == [
        Reply(1, 5, 0, Op.GET_DATA, (b"abc", STAT), "/n"),
        Reply(2, 6, 0, Op.GET_DATA, (b"", STAT), "/n"),
        Reply(3, 7, 0, Op.GET_DATA, (b"", STAT), "/n"),
    ]
    assert core.last_zxid == 7


@pytest.mark.parametrize("op", [Op.SET_DATA, Op.EXISTS, Op.SET_ACL])
def test_stat_replies(op: int) -> None:
    core = connected()
    core.send_request(op, PathWatchRequest("/n", False))
    core.send_request(op, PathWatchRequest("/n", False))
    events = core.receive_data(reply(1, 9, 0, stat_bytes()) + reply(2, 9, Err.NO_NODE))
    assert events == [Reply(1, 9, 0, op, STAT, "/n"), Reply(2, 9, Err.NO_NODE, op, None, "/n")]


@pytest.mark.parametrize("op,body", [
    (Op.GET_DATA, struct.pack(">i", 3) + b"abc" + stat_bytes()[:-1]),  # stat cut short
    (Op.GET_DATA, struct.pack(">i", 500) + b"abc" + stat_bytes()),  # data longer than frame
    (Op.GET_DATA, struct.pack(">i", -2) + stat_bytes()),  # negative length
    (Op.GET_DATA, b""),
    (Op.SET_DATA, stat_bytes()[:40]),
])
def test_malformed_replies_are_protocol_errors(op: int, body: bytes) -> None:
    core = connected()
    core.send_request(op, PathWatchRequest("/n", False))
    core.send_request(op, PathWatchRequest("/n", False))
    good = reply(1, 1, 0, stat_bytes() if op != Op.GET_DATA
                 else struct.pack(">i", 0) + stat_bytes())
    with pytest.raises(ProtocolError) as info:
        core.receive_data(good + reply(2, 2, 0, body))
    assert [e.xid for e in info.value.events] == [1]  # replies before the bad one survive


def test_frames_in_arbitrary_pieces() -> None:
    """A stream of replies cut at every kind of boundary (inside a length prefix, a header,
    a body, exactly between frames) decodes to the same events as in one piece."""
    n = 40
    stream = b"".join(reply(i, i, 0, struct.pack(">i", i * 50) + b"d" * (i * 50) + stat_bytes())
                      for i in range(1, n + 1))
    for cut in (1, 2, 3, 5, 7, 64, 1000, 4096):
        core = connected()
        for _ in range(n):
            core.send_request(Op.GET_DATA, PathWatchRequest("/n", False))
        events = []
        for i in range(0, len(stream), cut):
            events += core.receive_data(stream[i:i + cut])
        assert [e.xid for e in events] == list(range(1, n + 1)), cut
        assert all(e.body == (b"d" * (e.xid * 50), STAT) for e in events)
        assert core.pending_count == 0


def test_bytearray_and_memoryview_input() -> None:
    core = connected()
    core.send_request(Op.SET_DATA, PathWatchRequest("/n", False))
    core.send_request(Op.SET_DATA, PathWatchRequest("/n", False))
    data = reply(1, 1, 0, stat_bytes()) + reply(2, 2, 0, stat_bytes())
    events = core.receive_data(bytearray(data[:50]))
    events += core.receive_data(memoryview(data)[50:])
    assert [e.body for e in events] == [STAT, STAT]


def test_oversized_frame_length_is_refused_before_its_body_arrives() -> None:
    core = connected()
    with pytest.raises(ProtocolError, match="frame length"):
        core.receive_data(struct.pack(">i", 0x7FFFFFF0) + b"\x00" * 10)

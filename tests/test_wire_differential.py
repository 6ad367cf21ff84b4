"""Byte-level differential tests: the same raw requests to Apache ZooKeeper 3.8 and to
zookapter must get the same reply headers (error codes) and bodies. zxids differ between the
servers and are blanked; everything else is compared byte for byte."""

from __future__ import annotations

import struct

import pytest

from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.testing import ZookapterServer

from oracle import ApacheZooKeeper, apache_zookeeper_available
from rawclient import RawClient

pytestmark = pytest.mark.oracle
MULTI_END = struct.pack(">i?i", -1, True, -1)


def _w() -> Writer:
    return Writer()


def _multi(*ops: tuple[int, bytes]) -> bytes:
    out = b"".join(struct.pack(">i?i", op, False, -1) + body for op, body in ops)
    return out + MULTI_END


def _script(host: str, port: int) -> list:
    raw = RawClient(host, port)
    raw.connect()
    out: list = []

    def req(op: int, body: bytes = b"") -> None:
        xid, _zxid, err, rbody = raw.request(op, body)
        out.append((op, xid, err, rbody))

    req(Op.WHO_AM_I)
    w = _w().int(0).ustring("digest").buffer(b"bob:pw")
    raw.send_frame(struct.pack(">ii", -4, Op.AUTH) + bytes(w.buf))
    frame = raw.recv_frame()
    out.append(("auth", frame[:4], frame[12:]))
    req(Op.WHO_AM_I)
    req(Op.SYNC, bytes(_w().ustring("/").buf))
    req(Op.CHECK, bytes(_w().ustring("/zookeeper").int(3).buf))
    req(Op.GET_ALL_CHILDREN_NUMBER, bytes(_w().ustring("/").buf))
    req(Op.GET_ALL_CHILDREN_NUMBER, bytes(_w().ustring("/nope").buf))
    req(Op.REMOVE_WATCHES, bytes(_w().ustring("/x").int(1).buf))
    req(Op.ADD_WATCH, bytes(_w().ustring("/x").int(9).buf))
    req(Op.CHECK_WATCHES, bytes(_w().ustring("/x").int(2).buf))
    req(Op.MULTI, MULTI_END)
    req(Op.MULTI_READ, MULTI_END)
    req(Op.MULTI_READ, _multi((Op.GET_DATA, bytes(_w().ustring("/").bool(False).buf)),
                              (Op.GET_DATA, bytes(_w().ustring("/nope").bool(False).buf)),
                              (Op.GET_CHILDREN, bytes(_w().ustring("/zookeeper/quota")
                                                      .bool(False).buf))))
    req(Op.MULTI, _multi((Op.GET_DATA, bytes(_w().ustring("/").bool(False).buf)),
                         (Op.DELETE, bytes(_w().ustring("/nope").int(-1).buf))))
    req(Op.GET_DATA, bytes(_w().ustring("/zookeeper").bool(False).buf))
    req(Op.GET_DATA, bytes(_w().ustring("/zookeeper/config").bool(False).buf))
    req(Op.GET_ACL, bytes(_w().ustring("/zookeeper/config").buf))
    req(Op.GET_CHILDREN2, bytes(_w().ustring("/zookeeper/quota").bool(False).buf))
    req(Op.EXISTS, bytes(_w().ustring("/zookeeper/quota").bool(False).buf))
    req(Op.GET_EPHEMERALS, bytes(_w().ustring("/").buf))
    req(Op.RECONFIG, bytes(_w().ustring("server.5=h:1:2").ustring(None).ustring(None)
                           .long(-1).buf))
    req(Op.CLOSE_SESSION)
    raw.close()
    return out


def test_raw_requests_match_zookeeper():
    # A fresh Apache server: the script reads root and /zookeeper stats, which other tests'
    # writes on a shared server would change.
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper oracle unavailable")
    with ApacheZooKeeper() as apache:
        host, port = apache.hosts.split(":")
        expected = _script(host, int(port))
    with ZookapterServer() as z:
        got = _script(z.host, z.port)
    for e, g in zip(expected, got, strict=True):
        assert g == e
    assert len(got) == len(expected)

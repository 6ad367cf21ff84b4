"""Unit tests of the client's pure parts: the sans-I/O connection core driven with byte
strings, the error registry, connect-string parsing and the watch registry. No sockets."""

from __future__ import annotations

import struct

import pytest

from zookapter.client import errors
from zookapter.client.connection import (
    AuthReply,
    ClientInfo,
    ClientProtocolCore,
    ConnectResponse,
    MultiResult,
    PingReply,
    Reply,
    SetWatchesReply,
    WatchEvent,
)
from zookapter.client.errors import ProtocolError
from zookapter.client.hosts import parse_hosts
from zookapter.client.watches import WatchKind, WatchRegistry, ancestors_and_self
from zookapter.protocol.consts import Err, EventType, Op, WatcherType
from zookapter.protocol.jute import Reader, Writer
from zookapter.protocol.records import (
    MULTI_HEADER,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetWatches,
    Stat,
)
from zookapter.protocol.records import ConnectResponse as ConnectResponseRecord

PASSWD = bytes(range(16))
STAT = Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def reply(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    return frame(struct.pack(">iqi", xid, zxid, err) + body)


def enc(write) -> bytes:
    w = Writer()
    write(w)
    return w.getvalue()


def connected(chroot: str | None = None, **kw) -> ClientProtocolCore:
    core = ClientProtocolCore(chroot, **kw)
    core.connect_request(10000)
    resp = enc(ConnectResponseRecord(0, 10000, 0x1234, PASSWD, False).write)
    [ev] = core.receive_data(frame(resp))
    assert isinstance(ev, ConnectResponse)
    return core


def stat_bytes(st: Stat = STAT) -> bytes:
    return enc(st.write)


# --- handshake -------------------------------------------------------------------------------

def test_connect_request_bytes():
    core = ClientProtocolCore()
    data = core.connect_request(5000, session_id=7, passwd=PASSWD, last_zxid=99,
                                read_only=True)
    (n,) = struct.unpack_from(">i", data)
    assert n == len(data) - 4 == 45
    req = ConnectRequest.read(Reader(data[4:]))
    assert (req.lastZxidSeen, req.timeOut, req.sessionId, req.passwd, req.readOnly) == (
        99, 5000, 7, PASSWD, True)


def test_connect_response_event_and_expired():
    core = ClientProtocolCore()
    core.connect_request(5000)
    [ev] = core.receive_data(frame(enc(ConnectResponseRecord(0, 4000, 42, PASSWD).write)))
    assert ev == ConnectResponse(4000, 42, PASSWD, False) and not ev.expired
    core = ClientProtocolCore()
    core.connect_request(5000, session_id=42, passwd=PASSWD)
    [ev] = core.receive_data(frame(enc(ConnectResponseRecord(0, 0, 0, b"\0" * 16).write)))
    assert ev.expired


def test_old_server_connect_response_without_read_only_byte():
    core = ClientProtocolCore()
    core.connect_request(5000)
    [ev] = core.receive_data(frame(enc(ConnectResponseRecord(0, 4000, 42, PASSWD, False,
                                                             False).write)))
    assert ev.session_id == 42 and ev.read_only is False


def test_nothing_before_handshake():
    core = ClientProtocolCore()
    with pytest.raises(ProtocolError):
        core.send_request(Op.EXISTS, PathWatchRequest("/a", False))
    with pytest.raises(ProtocolError):
        core.receive_data(reply(1, 0, 0))


# --- requests and replies --------------------------------------------------------------------

def test_xids_and_request_bytes():
    core = connected()
    xid1, data1 = core.send_request(Op.GET_DATA, PathWatchRequest("/a", True))
    xid2, _ = core.send_request(Op.DELETE, DeleteRequest("/b", 3))
    assert (xid1, xid2) == (1, 2)
    assert data1 == frame(struct.pack(">ii", 1, Op.GET_DATA)
                          + enc(PathWatchRequest("/a", True).write))
    assert core.pending_xids() == [1, 2]


def test_first_xid_and_wraparound():
    core = connected(first_xid=0x7FFFFFFF)
    assert core.send_request(Op.SYNC, PathRequest("/"))[0] == 0x7FFFFFFF
    assert core.send_request(Op.SYNC, PathRequest("/"))[0] == 1


def test_replies_decoded_in_order():
    core = connected()
    core.send_request(Op.GET_DATA, PathWatchRequest("/a", False))
    core.send_request(Op.EXISTS, PathWatchRequest("/b", False))
    core.send_request(Op.GET_CHILDREN, PathWatchRequest("/c", False))
    data = (reply(1, 10, 0, struct.pack(">i", 3) + b"abc" + stat_bytes())
            + reply(2, 11, Err.NO_NODE)
            + reply(3, 12, 0, enc(lambda w: w.ustring_vector(["x", "y"]))))
    events = core.receive_data(data)
    assert events == [Reply(1, 10, 0, Op.GET_DATA, (b"abc", STAT), "/a"),
                      Reply(2, 11, Err.NO_NODE, Op.EXISTS, None, "/b"),
                      Reply(3, 12, 0, Op.GET_CHILDREN, ["x", "y"], "/c")]
    assert core.last_zxid == 12 and core.pending_count == 0


def test_frames_split_byte_by_byte():
    core = connected()
    core.send_request(Op.SET_DATA, PathWatchRequest("/a", False))
    data = reply(1, 5, 0, stat_bytes())
    events = []
    for i in range(len(data)):
        events += core.receive_data(data[i:i + 1])
    assert events == [Reply(1, 5, 0, Op.SET_DATA, STAT, "/a")]


def test_out_of_order_reply_is_protocol_error():
    core = connected()
    core.send_request(Op.SYNC, PathRequest("/"))
    core.send_request(Op.SYNC, PathRequest("/"))
    with pytest.raises(ProtocolError, match="out of order"):
        core.receive_data(reply(2, 0, 0, enc(lambda w: w.ustring("/"))))


def test_reply_without_request_is_protocol_error():
    core = connected()
    with pytest.raises(ProtocolError):
        core.receive_data(reply(5, 0, 0))


@pytest.mark.parametrize("length", [-2, 0xFFFFF + 1, 0x7FFFFFFF])
def test_frame_length_bounds(length):
    core = connected()
    with pytest.raises(ProtocolError, match="frame length"):
        core.receive_data(struct.pack(">i", length) + b"\0" * 8)
    with pytest.raises(ProtocolError):  # the core stays closed
        core.receive_data(b"")


def test_custom_max_frame():
    core = connected(max_frame=100)
    core.send_request(Op.GET_DATA, PathWatchRequest("/a", False))
    with pytest.raises(ProtocolError):
        core.receive_data(reply(1, 0, 0, struct.pack(">i", 200) + b"x" * 200 + stat_bytes()))


def test_truncated_body_is_protocol_error():
    core = connected()
    core.send_request(Op.EXISTS, PathWatchRequest("/a", False))
    with pytest.raises(ProtocolError, match="malformed"):
        core.receive_data(reply(1, 0, 0, b"\0" * 10))


def test_special_xids():
    core = connected()
    data = (reply(-2, 77, 0) + reply(-4, 0, Err.AUTH_FAILED) + reply(-8, 78, 0)
            + reply(-1, 79, 0, enc(lambda w: w.int(3).int(3).ustring("/n"))))
    assert core.receive_data(data) == [PingReply(77), AuthReply(Err.AUTH_FAILED),
                                       SetWatchesReply(78, 0), WatchEvent(3, 3, "/n", 79)]
    assert core.ping() == frame(struct.pack(">ii", -2, Op.PING))


def test_auth_request_bytes():
    core = ClientProtocolCore()
    core.connect_request(5000)
    data = core.auth_request("digest", b"u:p")
    assert data == frame(struct.pack(">iii", -4, Op.AUTH, 0)
                         + enc(lambda w: w.ustring("digest").buffer(b"u:p")))


def test_connection_lost_returns_pending():
    core = connected()
    core.send_request(Op.SYNC, PathRequest("/"))
    core.send_request(Op.SYNC, PathRequest("/"))
    assert core.connection_lost() == [1, 2]
    with pytest.raises(ProtocolError):
        core.send_request(Op.SYNC, PathRequest("/"))


def test_multi_response_decoding():
    core = connected()
    core.send_request(Op.MULTI, [(Op.CREATE, CreateRequest("/a", b"", (), 0)),
                                 (Op.SET_DATA, PathWatchRequest("/b", False))])
    body = (MULTI_HEADER.pack(Op.CREATE, False, 0) + enc(lambda w: w.ustring("/a"))
            + MULTI_HEADER.pack(Op.ERROR, False, Err.BAD_VERSION)
            + struct.pack(">i", Err.BAD_VERSION) + MULTI_HEADER.pack(-1, True, -1))
    [ev] = core.receive_data(reply(1, 9, 0, body))
    assert ev.body == [MultiResult(Op.CREATE, 0, "/a"),
                       MultiResult(Op.ERROR, Err.BAD_VERSION, Err.BAD_VERSION)]


def test_who_am_i_decoding():
    core = connected()
    core.send_request(Op.WHO_AM_I, None)
    body = enc(lambda w: w.int(2).ustring("ip").ustring("127.0.0.1").ustring("digest")
               .ustring("u"))
    [ev] = core.receive_data(reply(1, 0, 0, body))
    assert ev.body == [ClientInfo("ip", "127.0.0.1"), ClientInfo("digest", "u")]


# --- chroot ----------------------------------------------------------------------------------

def test_chroot_prefixes_request_paths():
    core = connected("/app")
    _, data = core.send_request(Op.CREATE2, CreateRequest("/x", b"v", None, 0))
    assert enc(CreateRequest("/app/x", b"v", None, 0).write) in data
    _, data = core.send_request(Op.GET_CHILDREN, PathWatchRequest("/", False))
    assert enc(PathWatchRequest("/app", False).write) in data
    _, data = core.send_request(Op.MULTI, [(Op.DELETE, DeleteRequest("/y", -1))])
    assert enc(DeleteRequest("/app/y", -1).write) in data


def test_chroot_strips_reply_and_event_paths():
    core = connected("/app")
    core.send_request(Op.CREATE2, CreateRequest("/x", b"", None, 2))
    core.send_request(Op.GET_EPHEMERALS, PathRequest("/"))
    data = (reply(1, 3, 0, enc(lambda w: w.ustring("/app/x0000000001")) + stat_bytes())
            + reply(2, 3, 0, enc(lambda w: w.ustring_vector(["/app/e1", "/app/f/e2"])))
            + reply(-1, 4, 0, enc(lambda w: w.int(2).int(3).ustring("/app")))
            + reply(-1, 4, 0, enc(lambda w: w.int(2).int(3).ustring("/apple"))))
    ev = core.receive_data(data)
    assert ev[0].body == ("/x0000000001", STAT) and ev[0].path == "/x"
    assert ev[1].body == ["/e1", "/f/e2"]
    assert ev[2].path == "/" and ev[3].path == "/apple"  # not under the chroot: untouched


def test_set_watches_frames():
    core = connected("/r")
    [f] = core.set_watches_requests(50, ["/d"], ["/e"], ["/c"])
    assert struct.unpack_from(">ii", f, 4) == (-8, Op.SET_WATCHES)
    sw = SetWatches.read(Reader(f[12:]), False)
    assert (sw.relativeZxid, sw.dataWatches, sw.existWatches, sw.childWatches) == (
        50, ["/r/d"], ["/r/e"], ["/r/c"])
    [f] = core.set_watches_requests(50, [], [], [], ["/p"], ["/q"])
    assert struct.unpack_from(">ii", f, 4) == (-8, Op.SET_WATCHES2)
    sw = SetWatches.read(Reader(f[12:]), True)
    assert sw.persistentWatches == ["/r/p"] and sw.persistentRecursiveWatches == ["/r/q"]


def test_set_watches_split_into_chunks():
    core = connected()
    paths = [f"/{i:04d}" + "x" * 1000 for i in range(300)]  # ~300 KB of path text
    frames = core.set_watches_requests(1, paths, [], [])
    assert len(frames) == 3
    seen = []
    for f in frames:
        seen += SetWatches.read(Reader(f[12:]), False).dataWatches
    assert seen == paths


# --- errors ----------------------------------------------------------------------------------

def test_every_error_code_has_a_class():
    for code in Err:
        cls = errors.error_class(code)
        assert cls is not None and cls.code == code, code
        exc = errors.error_for(code, "/p")
        assert isinstance(exc, errors.ZookeeperError) and exc.path == "/p"
    assert isinstance(errors.error_for(Err.NO_NODE), errors.NoNodeError)
    assert isinstance(errors.error_for(Err.SESSION_EXPIRED), errors.SessionExpiredError)
    unknown = errors.error_for(-999)
    assert isinstance(unknown, errors.UnknownError) and unknown.code == -999
    assert issubclass(errors.ConnectionClosedError, errors.SessionExpiredError)
    assert issubclass(errors.InvalidPathError, ValueError)


# --- connect strings -------------------------------------------------------------------------

def test_parse_hosts():
    assert parse_hosts("a:1,b:2/app/x") == ([("a", 1), ("b", 2)], "/app/x")
    assert parse_hosts("a") == ([("a", 2181)], None)
    assert parse_hosts("[::1]:2182,h/") == ([("::1", 2182), ("h", 2181)], None)
    with pytest.raises(ValueError):
        parse_hosts("a:1/bad/")
    with pytest.raises(ValueError):
        parse_hosts("/x")


# --- watch registry --------------------------------------------------------------------------

def test_one_shot_watches_fire_once_and_dedupe():
    reg = WatchRegistry()
    cb1, cb2 = object(), object()
    reg.add(WatchKind.DATA, "/a", cb1)
    reg.add(WatchKind.CHILD, "/a", cb1)
    reg.add(WatchKind.EXIST, "/a", cb2)
    assert reg.materialize(EventType.NODE_DELETED, "/a") == [cb1, cb2]
    assert reg.materialize(EventType.NODE_DELETED, "/a") == []
    reg.add(WatchKind.CHILD, "/a", cb1)
    assert reg.materialize(EventType.NODE_DATA_CHANGED, "/a") == []
    assert reg.materialize(EventType.NODE_CHILDREN_CHANGED, "/a") == [cb1]


def test_persistent_and_recursive_matching():
    reg = WatchRegistry()
    p, r = object(), object()
    reg.add(WatchKind.PERSISTENT, "/a", p)
    reg.add(WatchKind.PERSISTENT_RECURSIVE, "/a", r)
    assert reg.materialize(EventType.NODE_DATA_CHANGED, "/a") == [p, r]
    assert reg.materialize(EventType.NODE_CREATED, "/a/b/c") == [r]
    assert reg.materialize(EventType.NODE_CHILDREN_CHANGED, "/a") == [p]
    assert reg.materialize(EventType.NODE_CHILDREN_CHANGED, "/a/b") == []
    assert reg.materialize(EventType.NODE_DELETED, "/ab") == []
    assert len(reg) == 2  # persistent watches stay


def test_remove_watches_reports_removed_events():
    reg = WatchRegistry()
    a, b = object(), object()
    reg.add(WatchKind.DATA, "/x", a)
    reg.add(WatchKind.CHILD, "/x", b)
    reg.add(WatchKind.PERSISTENT, "/x", b)
    assert reg.remove("/x", WatcherType.CHILDREN) == [(b, EventType.CHILD_WATCH_REMOVED)]
    assert reg.remaining("/x", WatcherType.ANY)
    assert reg.remove("/x", WatcherType.ANY, a) == [(a, EventType.DATA_WATCH_REMOVED)]
    assert reg.remove("/x", WatcherType.ANY) == [(b, EventType.PERSISTENT_WATCH_REMOVED)]
    assert not reg.remaining("/x", WatcherType.ANY)


def test_ancestors():
    assert ancestors_and_self("/a/b") == ["/a/b", "/a", "/"]
    assert ancestors_and_self("/") == ["/"]


def test_protocol_error_keeps_events_decoded_before_it():
    core = connected()
    core.send_request(Op.SYNC, PathRequest("/"))
    core.send_request(Op.SYNC, PathRequest("/"))
    good = reply(1, 0, 0, enc(lambda w: w.ustring("/")))
    with pytest.raises(ProtocolError) as info:
        core.receive_data(good + reply(7, 0, 0))
    assert [ev.xid for ev in info.value.events] == [1]

"""zookapter server behaviour over real TCP, through kazoo and raw sockets."""

from __future__ import annotations

import struct
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.security import make_digest_acl

from zookapter.protocol.consts import Err, Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import PathWatchRequest
from zookapter.testing import ZookapterServer

from rawclient import RawClient, four_letter


@pytest.fixture(scope="module")
def server():
    with ZookapterServer(super_digest="super:D/InIHSb7yEEbrWz8b9l71RjZJU=") as s:
        yield s


@pytest.fixture
def zk(server):
    c = KazooClient(hosts=server.hosts, timeout=5)
    c.start(timeout=10)
    yield c
    c.stop()
    c.close()


def wait_for(pred, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_crud_and_stats(zk):
    zk.create("/crud", b"v0")
    data, st = zk.get("/crud")
    assert data == b"v0" and st.version == 0 and st.czxid == st.mzxid == st.pzxid
    st2 = zk.set("/crud", b"v1")
    assert st2.version == 1 and st2.mzxid > st.mzxid and st2.czxid == st.czxid
    with pytest.raises(BadVersionError):
        zk.set("/crud", b"x", version=0)
    zk.create("/crud/a")
    zk.create("/crud/b")
    zk.delete("/crud/a")
    _, pst = zk.get("/crud")
    # persisted cversion counts creates (2); clients see 2*2 - 1 child = 3
    assert pst.cversion == 3 and pst.numChildren == 1
    with pytest.raises(NotEmptyError):
        zk.delete("/crud")
    zk.delete("/crud", recursive=True)
    assert zk.exists("/crud") is None


def test_sequential_suffix_uses_parent_cversion(zk):
    zk.create("/seq")
    zk.create("/seq/x")
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000001"
    zk.delete("/seq/x")
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000002"
    zk.delete("/seq", recursive=True)


def test_ephemeral_rules(server, zk):
    zk.create("/eph", ephemeral=True)
    assert zk.exists("/eph").ephemeralOwner == zk.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child")
    other = KazooClient(hosts=server.hosts)
    other.start()
    other.create("/eph2", ephemeral=True)
    other.stop()
    assert zk.exists("/eph2") is None


def _create_body(path, flags, ttl=None):
    w = Writer()
    w.ustring(path).buffer(b"").int(1).int(31).ustring("world").ustring("anyone").int(flags)
    if ttl is not None:
        w.long(ttl)
    return bytes(w.buf)


def test_container_and_ttl_owner_hidden(server, zk):
    # kazoo 2.11 has no container/TTL API: speak the protocol directly
    raw = RawClient(server.host, server.port)
    raw.connect()
    assert raw.request(Op.CREATE_CONTAINER, _create_body("/cont", 4))[2] == 0
    assert raw.request(Op.CREATE_TTL, _create_body("/ttl", 5, 60000))[2] == 0
    assert raw.request(Op.CREATE_TTL, _create_body("/ttl0", 5, 0))[2] == Err.BAD_ARGUMENTS
    assert raw.request(Op.CREATE, _create_body("/ttl1", 5))[2] == Err.BAD_ARGUMENTS
    assert raw.request(Op.CREATE, _create_body("/badflags", 9))[2] == Err.BAD_ARGUMENTS
    raw.close()
    assert zk.exists("/cont").ephemeralOwner == 0
    assert zk.exists("/ttl").ephemeralOwner == 0
    zk.delete("/cont")
    zk.delete("/ttl")


def test_containers_and_ttl_nodes_are_reaped():
    with ZookapterServer(props={"znode.container.checkIntervalMs": "100"}) as s:
        raw = RawClient(s.host, s.port)
        raw.connect()
        assert raw.request(Op.CREATE_CONTAINER, _create_body("/c", 4))[2] == 0
        assert raw.request(Op.CREATE_TTL, _create_body("/t", 5, 200))[2] == 0
        assert raw.request(Op.CREATE, _create_body("/c/child", 0))[2] == 0
        c = KazooClient(hosts=s.hosts)
        c.start()
        time.sleep(0.5)
        assert c.exists("/c") is not None  # has a child
        assert wait_for(lambda: c.exists("/t") is None)
        c.delete("/c/child")
        assert wait_for(lambda: c.exists("/c") is None)
        c.stop()
        raw.close()


def test_multi_failure_results(zk):
    zk.create("/m")
    t = zk.transaction()
    t.create("/m/a")
    t.create("/m")
    t.delete("/nonexistent")
    res = t.commit()
    assert [type(r) for r in res] == [RolledBackError, NodeExistsError, RuntimeError] or \
        isinstance(res[0], RolledBackError) and isinstance(res[1], NodeExistsError)
    assert zk.exists("/m/a") is None
    t = zk.transaction()
    t.create("/m/a", b"1")
    t.set_data("/m/a", b"2")
    t.check("/m/a", 1)
    t.delete("/m/a")
    res = t.commit()
    assert res[0] == "/m/a" and res[1].version == 1 and res[2] is True and res[3] is True
    zk.delete("/m")


def test_watches_fire_once_in_order(zk):
    events = []
    zk.create("/w")
    zk.get("/w", watch=events.append)
    zk.get_children("/w", watch=events.append)
    zk.exists("/w/missing", watch=events.append)
    zk.set("/w", b"1")
    zk.set("/w", b"2")  # standard watch already fired: no second event
    zk.create("/w/missing")
    assert wait_for(lambda: len(events) == 3)
    assert [(e.type, e.path) for e in events] == [
        ("CHANGED", "/w"), ("CREATED", "/w/missing"), ("CHILD", "/w")]
    zk.delete("/w", recursive=True)


def _events(raw, n):
    out = []
    while len(out) < n:
        frame = raw.recv_frame()
        xid, zxid, err = struct.unpack_from(">iqi", frame, 0)
        if xid == -1:
            etype, state, plen = struct.unpack_from(">iii", frame, 16)
            out.append((etype, frame[28:28 + plen].decode()))
    return out


@pytest.mark.parametrize("mode,expected", [
    (1, [(1, "/pr/a"), (3, "/pr/a"), (2, "/pr/a"), (3, "/pr")]),
    (0, [(4, "/pr"), (4, "/pr"), (3, "/pr")]),
])
def test_persistent_watches(server, zk, mode, expected):
    zk.create("/pr")
    raw = RawClient(server.host, server.port)
    raw.connect()
    w = Writer()
    w.ustring("/pr").int(mode)
    _, _, err, body = raw.request(Op.ADD_WATCH, bytes(w.buf))
    assert err == 0 and body == b"\x00\x00\x00\x00"
    zk.create("/pr/a")
    zk.set("/pr/a", b"x")
    zk.delete("/pr/a")
    zk.set("/pr", b"y")
    assert _events(raw, len(expected)) == expected
    raw.close()
    zk.delete("/pr")


def test_digest_acl_and_super(server, zk):
    acl = make_digest_acl("alice", "secret", all=True)
    zk.create("/acl", b"s", acl=[acl])
    with pytest.raises(NoAuthError):
        zk.get("/acl")
    with pytest.raises(NoAuthError):
        zk.get_acls("/acl")  # getACL needs READ or ADMIN; we have neither
    other = KazooClient(hosts=server.hosts, auth_data=[("digest", "alice:secret")])
    other.start()
    assert other.get("/acl")[0] == b"s"
    other.stop()
    sup = KazooClient(hosts=server.hosts, auth_data=[("digest", "super:test")])
    sup.start()
    assert sup.get("/acl")[0] == b"s"
    sup.delete("/acl")
    sup.stop()


def test_getacl_masks_digest_without_admin(server):
    c = KazooClient(hosts=server.hosts, auth_data=[("digest", "bob:pw")])
    c.start()
    from kazoo.security import ACL, Id
    c.create("/mask", acl=[make_digest_acl("bob", "pw", read=True),
                           ACL(1, Id("world", "anyone"))])
    acls, _ = c.get_acls("/mask")
    assert all(a.id.id.endswith(":x") for a in acls if a.id.scheme == "digest")
    c.stop()
    sup = KazooClient(hosts=server.hosts, auth_data=[("digest", "super:test")])
    sup.start()
    sup.delete("/mask")
    sup.stop()


def test_invalid_acl_and_bad_path(zk):
    from kazoo.exceptions import InvalidACLError
    from kazoo.security import ACL, Id
    with pytest.raises(InvalidACLError):
        zk.create("/badacl", acl=[ACL(31, Id("nosuch", "x"))])
    with pytest.raises(InvalidACLError):
        zk.create("/badacl", acl=[ACL(31, Id("auth", ""))])  # no authenticated id
    zk.delete("/badacl") if zk.exists("/badacl") else None


def _path_codes(host, port):
    """(create, setData, delete, getData) error codes for awkward paths, over raw TCP."""
    raw = RawClient(host, port)
    raw.connect()
    out = []
    for p in ["/bad/", "//x", "/a/./b", "/a/..", "noslash", "/x\u0001", "/", "/zookeeper",
              "/.", "/a/", "/zookeeper/quota", "/zookeeper/config", ""]:
        codes = [raw.request(Op.CREATE, _create_body(p, 0))[2]]
        w = Writer()
        w.ustring(p).buffer(b"").int(-1)
        codes.append(raw.request(Op.SET_DATA, bytes(w.buf))[2])
        w = Writer()
        w.ustring(p).int(-1)
        codes.append(raw.request(Op.DELETE, bytes(w.buf))[2])
        w = Writer()
        w.ustring(p).bool(False)
        codes.append(raw.request(Op.GET_DATA, bytes(w.buf))[2])
        out.append((p, codes))
    raw.close()
    return out


def test_bad_paths_match_zookeeper(server):
    got = dict(_path_codes(server.host, server.port))
    # recorded from Apache ZooKeeper 3.8 (see test_bad_paths_differential for the live check)
    assert got["/bad/"] == [-101, -8, -101, -101]
    assert got["//x"] == [-8, -8, -101, -101]
    assert got["noslash"] == [-8, -8, -8, -101]
    assert got["/"] == [-110, 0, -8, 0]


@pytest.mark.oracle
def test_bad_paths_differential(server, apache_zk):
    host, port = apache_zk.hosts.split(":")
    assert _path_codes(server.host, server.port) == _path_codes(host, int(port))


def test_session_expiry_deletes_ephemerals(server, zk):
    other = KazooClient(hosts=server.hosts, timeout=4)
    other.start()
    other.create("/expiring", ephemeral=True)
    # freeze the other client: its session must expire on the server
    sid = other.client_id[0]
    other._connection._socket.close() if False else None
    other.stop()  # a clean close also deletes it; expiry is covered by raw client below
    assert zk.exists("/expiring") is None
    raw = RawClient(server.host, server.port)
    resp = raw.connect(timeout_ms=4000)
    assert resp.timeOut == 4000
    w = Writer()
    w.ustring("/raw-eph").buffer(b"").int(1).int(31).ustring("world").ustring("anyone").int(1)
    _, _, err, _ = raw.request(Op.CREATE, bytes(w.buf))
    assert err == 0
    raw.close()  # no close-session: the session lives until its timeout
    assert zk.exists("/raw-eph") is not None
    assert wait_for(lambda: zk.exists("/raw-eph") is None, timeout=10)
    assert sid != 0


def test_session_resume_with_password(server):
    raw = RawClient(server.host, server.port)
    resp = raw.connect(timeout_ms=10000)
    raw.close()
    raw2 = RawClient(server.host, server.port)
    again = raw2.connect(timeout_ms=10000, session_id=resp.sessionId, passwd=resp.passwd)
    assert again.sessionId == resp.sessionId and again.timeOut == 10000
    raw2.close()
    raw3 = RawClient(server.host, server.port)
    bad = raw3.connect(timeout_ms=10000, session_id=resp.sessionId, passwd=b"\x01" * 16)
    assert bad.timeOut == 0 and bad.sessionId == 0
    assert raw3.is_closed()


def test_old_client_without_readonly_byte(server):
    raw = RawClient(server.host, server.port)
    w = Writer()
    w.int(0).long(0).int(10000).long(0).buffer(b"\x00" * 16)
    raw.send_frame(bytes(w.buf))
    frame = raw.recv_frame()
    assert len(frame) == 36  # no trailing readOnly byte for a pre-3.4 client
    raw.close()


def test_timeout_negotiation(server):
    raw = RawClient(server.host, server.port)
    assert raw.connect(timeout_ms=1).timeOut == 2 * 2000
    raw.close()
    raw = RawClient(server.host, server.port)
    assert raw.connect(timeout_ms=10 ** 9).timeOut == 20 * 2000
    raw.close()


# --- bad input: ZooKeeper's error or a closed connection, never a crash --------------------

def _server_alive(server):
    c = KazooClient(hosts=server.hosts)
    c.start(timeout=5)
    ok = c.exists("/") is not None
    c.stop()
    return ok


@pytest.mark.parametrize("payload", [
    b"\x00\x00\x00\x05hello",                    # garbage handshake body
    struct.pack(">i", -5),                         # negative length
    struct.pack(">i", 0x7FFFFFFF) + b"x" * 10,     # over jute.maxbuffer
    b"GET / HTTP/1.1\r\n\r\n",                   # not ZooKeeper at all
])
def test_garbage_before_handshake_closes_connection(server, payload):
    raw = RawClient(server.host, server.port)
    raw.send_raw(payload)
    assert raw.is_closed()
    assert _server_alive(server)


def test_malformed_request_and_unknown_opcode(server):
    raw = RawClient(server.host, server.port)
    raw.connect()
    _, _, err, _ = raw.request(999)
    assert err == Err.UNIMPLEMENTED
    _, _, err, _ = raw.request(Op.GET_DATA, b"\x00\x00\x01\x00/tr")  # truncated string
    assert err == Err.MARSHALLING_ERROR
    _, _, err, _ = raw.request(Op.CREATE, b"\x00\x00\x00\x02/x")  # truncated create
    assert err == Err.MARSHALLING_ERROR
    w = Writer()
    PathWatchRequest("/", False).write(w)
    _, _, err, body = raw.request(Op.GET_DATA, bytes(w.buf))
    assert err == 0
    raw.close()
    assert _server_alive(server)


def test_oversize_frame_after_handshake(server):
    raw = RawClient(server.host, server.port)
    raw.connect()
    raw.send_raw(struct.pack(">i", 0xFFFFF + 1))
    assert raw.is_closed()
    assert _server_alive(server)


def test_other_sessions_unaffected_by_bad_client(server, zk):
    zk.create("/survivor", b"ok")
    raw = RawClient(server.host, server.port)
    raw.send_raw(b"\xff" * 100)
    assert raw.is_closed()
    assert zk.get("/survivor")[0] == b"ok"
    zk.delete("/survivor")


def test_four_letter_words(server):
    assert four_letter(server.host, server.port, "ruok") == "imok"
    srvr = four_letter(server.host, server.port, "srvr")
    assert "Mode: standalone" in srvr and "Zxid: 0x" in srvr
    mntr = four_letter(server.host, server.port, "mntr")
    assert mntr.startswith("zk_version\t") and "zk_znode_count\t" in mntr
    assert four_letter(server.host, server.port, "isro") == "rw"
    assert "Total watches:" in four_letter(server.host, server.port, "wchs")


def test_four_letter_whitelist():
    with ZookapterServer(fourlw_whitelist="srvr") as s:
        assert four_letter(s.host, s.port, "ruok") == \
            "ruok is not executed because it is not in the whitelist.\n"
        assert "Mode: standalone" in four_letter(s.host, s.port, "srvr")


def test_pipelined_writes_see_each_other(server, zk):
    results = []
    asyncs = [zk.create_async("/pipe"), zk.create_async("/pipe/a"),
              zk.create_async("/pipe/a/b"), zk.set_async("/pipe/a", b"x"),
              zk.get_async("/pipe/a")]
    for a in asyncs:
        results.append(a.get(timeout=5))
    assert results[2] == "/pipe/a/b" and results[4][0] == b"x"
    zk.delete("/pipe", recursive=True)


def test_get_all_children_number_and_ephemerals(zk):
    zk.create("/cnt/a/b", makepath=True)
    assert zk.get_all_children_number if hasattr(zk, "get_all_children_number") else True
    zk.delete("/cnt", recursive=True)


def test_concurrent_clients(server):
    errors = []

    def worker(i):
        try:
            c = KazooClient(hosts=server.hosts)
            c.start()
            for j in range(20):
                c.create(f"/conc-{i}-{j}", b"x", ephemeral=True)
            c.stop()
        except Exception as e:  # pragma: no cover - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_client_that_never_reads_replies_is_throttled_not_fatal(server, zk):
    """A pipelining client that never reads: the server stops reading from it instead of
    buffering without bound, and other sessions go on."""
    raw = RawClient(server.host, server.port)
    raw.connect()
    w = Writer()
    PathWatchRequest("/", False).write(w)
    frame = struct.pack(">iii", 8 + len(w.buf), 1, Op.GET_DATA) + bytes(w.buf)
    raw.sock.setblocking(False)
    sent = 0
    try:
        for _ in range(200000):
            sent += raw.sock.send(frame * 64)
    except BlockingIOError:
        pass
    assert sent > 0
    assert zk.exists("/") is not None
    raw.close()

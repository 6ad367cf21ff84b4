"""Election-channel and Zab-channel codecs, checked against bytes captured from Apache
ZooKeeper 3.8 (tests/testdata/quorum/java_*.txt, written by test_quorum_interop.py with
--rewrite) and against hand-built edge cases."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from zookapter.protocol.consts import Op
from zookapter.protocol.records import Id
from zookapter.protocol.txns import CreateSessionTxn, SetDataTxn, Txn
from zookapter.quorum import packets as P
from zookapter.quorum.config import verifier_from_text
from zookapter.quorum.election_wire import (
    FRAME_LEN_MAX,
    OBSERVER_ID,
    PROTOCOL_VERSION_V1,
    PROTOCOL_VERSION_V2,
    ChannelDecoder,
    ElectionWireError,
    InitialMessage,
    Notification,
    ServerState,
    decode_initial_message,
    frame,
    initial_message_size,
)

TESTDATA = Path(__file__).parent / "testdata" / "quorum"


def load_capture(name: str) -> dict[str, bytes]:
    items = {}
    for line in (TESTDATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, hexed = line.split()
            items[key] = bytes.fromhex(hexed)
    return items


TRIO = load_capture("java_election_trio.txt")
DUO = load_capture("java_zab_duo.txt")


# --- initial message -------------------------------------------------------------------------

def test_java_hello_v1() -> None:
    stream = DUO["election_stream_from_2"]
    size = initial_message_size(stream)
    msg = decode_initial_message(stream[:size])
    assert msg.protocol_version == PROTOCOL_VERSION_V1 == -65536 and msg.sid == 2
    ((host, port),) = msg.addresses
    assert host == "127.0.0.1"
    # field by field: long version, long sid, int length, "host:port"
    text = f"127.0.0.1:{port}".encode()
    assert stream[:size] == (b"\xff" * 6 + b"\x00\x00" + (2).to_bytes(8, "big")
                             + len(text).to_bytes(4, "big") + text)
    assert InitialMessage(2, ((host, port),)).encode() == stream[:size]


def test_java_hello_v2_multi_address() -> None:
    raw = TRIO["initial_v2"]
    msg = decode_initial_message(raw)
    assert msg.protocol_version == PROTOCOL_VERSION_V2 == -65535 and msg.sid == 1
    assert [h for h, _ in msg.addresses] == ["127.0.0.1", "127.0.0.2"]
    assert b"|" in raw and msg.encode() == raw


def test_hello_edge_cases() -> None:
    legacy = (7).to_bytes(8, "big")  # pre-3.5 peers sent just their sid
    assert decode_initial_message(legacy) == InitialMessage(7, (), 7)
    assert InitialMessage(7, (), 7).encode() == legacy
    v6 = InitialMessage(3, (("0:0:0:0:0:0:0:1", 3888),)).encode()
    assert v6.endswith(b"[0:0:0:0:0:0:0:1]:3888")
    assert decode_initial_message(v6).addresses == (("0:0:0:0:0:0:0:1", 3888),)
    # wildcard addresses are dropped (the receiver then uses its config)
    wild = InitialMessage(3, (("0.0.0.0", 3888),)).encode()
    assert decode_initial_message(wild).addresses == ()
    # V1 carries only the first address
    two = InitialMessage(3, (("a", 1), ("b", 2)))
    assert decode_initial_message(two.encode()).addresses == (("a", 1),)
    anon = InitialMessage(OBSERVER_ID, (("h", 1),))
    assert decode_initial_message(anon.encode()).sid == OBSERVER_ID


@pytest.mark.parametrize("raw", [
    (-5).to_bytes(8, "big", signed=True) + bytes(12),  # unknown protocol version
    InitialMessage(1, (("h", 1),)).encode()[:16] + (0).to_bytes(4, "big"),
    InitialMessage(1, (("h", 1),)).encode()[:16] + (2049).to_bytes(4, "big"),
    InitialMessage(1, (("h", 1),)).encode()[:16] + (4).to_bytes(4, "big") + b"h:x1",
    InitialMessage(1, (("h", 1),)).encode()[:16] + (3).to_bytes(4, "big") + b"h:1:2"[:3],
])
def test_bad_hellos(raw: bytes) -> None:
    with pytest.raises(ElectionWireError):
        ChannelDecoder(expect_initial=True).feed(raw + b"\x00" * 8)


# --- notifications ---------------------------------------------------------------------------

def _frames(stream: bytes, expect_initial: bool) -> list[bytes]:
    return [x for x in ChannelDecoder(expect_initial).feed(stream) if isinstance(x, bytes)]


def test_java_notifications_roundtrip_byte_for_byte() -> None:
    payloads = _frames(TRIO["frames_from_1"], False) + _frames(TRIO["frames_from_2"], False) \
        + _frames(DUO["election_stream_from_2"], True)
    assert len(payloads) >= 5
    for payload in payloads:
        n = Notification.decode(payload)
        assert n.encode() == payload
        assert frame(payload) == n.frame()
        assert n.version == 2 and len(payload) == 44 + len(n.config)
        verifier_from_text(n.config_text, multi_address_enabled=True)  # parses


def test_java_notification_fields() -> None:
    stale, reply = (Notification.decode(p) for p in _frames(TRIO["frames_from_2"], False))
    # On a new connection Java first re-sends the last message it had for that peer: its
    # own LOOKING vote from the election, with the config as it was then (version 0)...
    assert (stale.state, stale.leader, stale.zxid, stale.election_epoch, stale.peer_epoch) == \
        (ServerState.LOOKING, 2, 0, 1, 0)
    assert stale.config_text.endswith("\nversion=0")
    # ...then answers our LOOKING notification as the leader, with the updated epoch
    assert (reply.state, reply.leader, reply.zxid, reply.election_epoch, reply.peer_epoch) == \
        (ServerState.LEADING, 2, 0, 1, 1)
    assert reply.config_text.endswith("\nversion=100000000")
    rebuilt = Notification(2, 2, 0, 1, 1, 2, reply.config)
    assert rebuilt.encode() == _frames(TRIO["frames_from_2"], False)[1]


def test_old_notification_formats() -> None:
    full = Notification(1, 3, 0x500000007, 9, 5).encode()
    n28 = Notification.decode(full[:28])
    assert (n28.peer_epoch, n28.version) == (5, 0)  # the epoch of the zxid
    n40 = Notification.decode(full[:36] + (1).to_bytes(4, "big"))
    assert (n40.peer_epoch, n40.version, n40.config) == (5, 0, b"")  # version not read
    assert Notification(1, 3, 0x500000007, 9, 5, 1).encode() == full[:36] + (1).to_bytes(4, "big")
    n41 = Notification.decode(full[:36] + (1).to_bytes(4, "big") + b"x")
    assert n41.version == 1 and n41.config == b""  # version 1: no config even if bytes follow


@pytest.mark.parametrize("payload", [
    bytes(27),  # short
    bytes(30),  # between the old formats
    bytes(38),
    Notification(0, 1, 0, 1, 0).encode()[:40] + (-1).to_bytes(4, "big", signed=True),
    Notification(0, 1, 0, 1, 0).encode()[:40] + (100).to_bytes(4, "big") + b"ab",
    Notification(0, 1, 0, 1, 0, 2, b"abc").encode()[:-1],
])
def test_bad_notifications(payload: bytes) -> None:
    with pytest.raises(ElectionWireError):
        Notification.decode(payload)


def test_channel_decoder_any_split() -> None:
    stream = DUO["election_stream_from_2"] + Notification(0, 1, 0, 1, 0).frame()
    whole = ChannelDecoder(True).feed(stream)
    rng = random.Random(7)
    for _ in range(20):
        dec, got, pos = ChannelDecoder(True), [], 0
        while pos < len(stream):
            step = rng.randint(1, 40)
            got += dec.feed(stream[pos:pos + step])
            pos += step
        assert got == whole and dec.buffered == 0
    with pytest.raises(ElectionWireError):
        ChannelDecoder(False).feed((FRAME_LEN_MAX + 1).to_bytes(4, "big"))
    with pytest.raises(ElectionWireError):
        ChannelDecoder(False).feed(bytes(4))


# --- Zab packets -----------------------------------------------------------------------------

def _leader_packets() -> list[tuple[str, bytes, P.QuorumPacket]]:
    return [(k, raw, P.QuorumPacket.decode(raw)) for k, raw in DUO.items()
            if k.startswith("leader_")]


def test_java_packets_roundtrip() -> None:
    for key, raw, pkt in _leader_packets():
        assert pkt.name.lower() == key.split("_", 2)[2]
        assert pkt.encode() == raw
    fi = P.QuorumPacket.decode(DUO["learner_followerinfo"])
    assert fi.type == P.PacketType.FOLLOWERINFO and fi.authinfo is None
    assert P.LearnerInfo.decode(fi.data) == P.LearnerInfo(1, 0x10000, 0)


def test_our_builders_match_java() -> None:
    got = {pkt.name: (raw, pkt) for _, raw, pkt in reversed(_leader_packets())}
    assert P.leader_info(1).encode() == got["LEADERINFO"][0]
    assert P.simple(P.PacketType.DIFF, 0).encode() == got["DIFF"][0]
    assert P.simple(P.PacketType.UPTODATE, -1).encode() == got["UPTODATE"][0]
    newleader = got["NEWLEADER"][1]
    assert P.new_leader(1, newleader.data.decode()).encode() == got["NEWLEADER"][0]
    commit = got["COMMIT"][1]
    assert P.simple(P.PacketType.COMMIT, commit.zxid).encode() == got["COMMIT"][0]
    ping = got["PING"][1]
    assert P.simple(P.PacketType.PING, ping.zxid).encode() == got["PING"][0]
    reply = P.ping_reply(ping, [])
    assert reply.data == b"" and reply.zxid == ping.zxid


def test_java_proposals() -> None:
    proposals = [pkt for _, _, pkt in _leader_packets() if pkt.type == P.PacketType.PROPOSAL]
    decoded = [P.decode_proposal(p.data) for p in proposals]
    assert [t.type for t, _ in decoded] == [Op.CREATE_SESSION, Op.CREATE, Op.CLOSE_SESSION]
    for pkt, (txn, digest) in zip(proposals, decoded, strict=True):
        assert txn.zxid == pkt.zxid and P.epoch_of(txn.zxid) == 1
        assert digest is not None and digest[0] == 2  # TxnDigest version 2
        assert P.proposal(txn, digest).encode() == pkt.encode()
    assert isinstance(decoded[0][0].record, CreateSessionTxn)
    assert decoded[1][0].record.path == "/py"


def test_packet_decoder_stream_and_snap() -> None:
    stream = b"".join(raw for _, raw, _ in _leader_packets())
    expected = [pkt for _, _, pkt in _leader_packets()]
    dec = P.PacketDecoder()
    got = []
    for i in range(0, len(stream), 7):
        got += dec.feed(stream[i:i + 7])
    assert got == expected
    snap = P.simple(P.PacketType.SNAP, 0x100000005).encode()
    dec = P.PacketDecoder()
    assert dec.feed(snap + b"SNAPSHOT BYTES") == [P.QuorumPacket(P.PacketType.SNAP, 0x100000005)]
    assert dec.feed(b"...") == [] and dec.take_remaining() == b"SNAPSHOT BYTES..."
    with pytest.raises(P.PacketError):
        P.PacketDecoder().feed(P.simple(P.PacketType.ACK, 1).encode()[:12] + b"\xff\xff\xff\xf0")


def test_payload_helpers() -> None:
    req = P.ForwardedRequest(0x1234, 7, Op.SET_DATA, b"\x00\x00\x00\x02/a")
    pkt = P.QuorumPacket(P.PacketType.REQUEST, -1, req.encode(), (Id("digest", "u:x"),))
    back = P.QuorumPacket.decode(pkt.encode())
    assert P.ForwardedRequest.decode(back.data) == req and back.authinfo == (Id("digest", "u:x"),)
    touches = [(0x100, 30000), (0x200, 4000)]
    assert P.decode_touches(P.encode_touches(touches)) == touches
    assert P.decode_touches(None) == []
    assert P.decode_revalidate_request(P.encode_revalidate_request(5, 6000)) == (5, 6000)
    assert P.decode_revalidate_reply(P.encode_revalidate_reply(5, True)) == (5, True)
    txn = Txn(5, 1, 0x200000003, 1700000000000, Op.SET_DATA, SetDataTxn("/a", b"x", 2))
    assert P.decode_activate(P.encode_activate(3, P.encode_proposal(txn))) == \
        (3, P.encode_proposal(txn))
    assert P.decode_int(P.ack_epoch(0x100000009, -1).data) == -1
    assert P.make_zxid(2, 5) == 0x200000005 and P.counter_of(0x200000005) == 5
    assert P.LearnerInfo.decode((9).to_bytes(8, "big")) == P.LearnerInfo(9, 0, -1)
    fi = P.follower_info(3, P.LearnerInfo(4, config_version=0x100000000), observer=True)
    assert fi.type == P.PacketType.OBSERVERINFO and fi.zxid == 0x300000000

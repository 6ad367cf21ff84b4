"""The Zab core against Apache ZooKeeper 3.8's bytes (tests/testdata/quorum/java_zab_duo.txt,
captured by test_quorum_interop.py: Java server 2 leading, a scripted follower 1).

- Our leader core, given what the Java follower side sent, must emit exactly the packets the
  Java leader sent: LEADERINFO, DIFF, NEWLEADER (with the config text), UPTODATE, then
  PROPOSAL/COMMIT pairs carrying the same txn bytes (TxnDigest included) and PING.
- Our learner core, fed the Java leader's packets, must answer what Java accepted from the
  scripted follower: FOLLOWERINFO (byte for byte from the capture), ACKEPOCH{0, 0}, the
  NEWLEADER and UPTODATE ACKs, an ACK per proposal after it is persisted, and the PING echo
  with a zero-length buffer.
"""

from __future__ import annotations

from pathlib import Path

from zookapter.quorum import packets as P
from zookapter.quorum.config import verifier_from_text
from zookapter.quorum.election_wire import ChannelDecoder, Notification, ServerState
from zookapter.quorum.packets import PacketType as T
from zookapter.quorum.packets import QuorumPacket
from zookapter.quorum.peer import QuorumPeer, ZabConfig
from zookapter.quorum.zab_events import (
    Apply,
    Connect,
    ConnectionUp,
    PacketIn,
    Persist,
    Persisted,
    PersistEpoch,
    Propose,
    RoleChanged,
    Send,
    StartServing,
    VoteIn,
)

TESTDATA = Path(__file__).parent / "testdata" / "quorum"


def load_capture(name: str) -> dict[str, bytes]:
    items = {}
    for line in (TESTDATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, hexed = line.split()
            items[key] = bytes.fromhex(hexed)
    return items


DUO = load_capture("java_zab_duo.txt")

RAW = [v for k, v in sorted(DUO.items()) if k.startswith("leader_")]
PACKETS = [QuorumPacket.decode(raw) for raw in RAW]
VERIFIER = verifier_from_text(PACKETS[2].data.decode())  # the NEWLEADER config text
CONFIG = ZabConfig(VERIFIER, tick_time_ms=500, init_limit=10, sync_limit=5)
EPOCH1 = P.make_zxid(1, 0)


def sends(actions: list) -> list[bytes]:
    return [a.packet.encode() for a in actions if isinstance(a, Send)]


def test_capture_shape() -> None:
    assert [p.type for p in PACKETS] == [T.LEADERINFO, T.DIFF, T.NEWLEADER, T.UPTODATE,
                                        T.PROPOSAL, T.COMMIT, T.PROPOSAL, T.COMMIT,
                                        T.PROPOSAL, T.COMMIT, T.PING]
    assert VERIFIER.version == 0 and VERIFIER.to_string() == PACKETS[2].data.decode()


def _elected_leader() -> QuorumPeer:
    peer = QuorumPeer(2, CONFIG)
    peer.start(0)
    vote = Notification(ServerState.LOOKING, 2, 0, 1, 0, 2, VERIFIER.to_bytes())
    peer.step(VoteIn(1, vote), 10)
    acts = peer.tick(210)  # the 200 ms finalize wait is over
    assert RoleChanged(ServerState.LEADING, 2) in acts
    return peer


def test_our_leader_sends_what_java_sent() -> None:
    peer = _elected_leader()
    info = QuorumPacket.decode(DUO["learner_followerinfo"])
    acts = peer.step(PacketIn(1, info), 220)
    assert acts[0] == PersistEpoch(accepted=1)  # persisted before LEADERINFO goes out
    assert sends(acts) == RAW[0:1]
    acts = peer.step(PacketIn(1, P.ack_epoch(0, 0)), 230)
    assert PersistEpoch(current=1) in acts
    assert sends(acts) == RAW[1:3]  # DIFF{0} (already in sync), NEWLEADER{config}
    acts = peer.step(PacketIn(1, P.simple(T.ACK, EPOCH1)), 240)
    assert StartServing(ServerState.LEADING, 1, EPOCH1) in acts
    assert sends(acts) == RAW[3:4]  # UPTODATE{-1}
    assert peer.step(PacketIn(1, P.simple(T.ACK, EPOCH1)), 250) == []  # UPTODATE's ACK
    now = 260
    for i in (4, 6, 8):
        txn, _ = P.decode_proposal(PACKETS[i].data)
        txn.digest = P.decode_proposal(PACKETS[i].data)[1][1]  # type: ignore[index]
        acts = peer.step(Propose((txn,)), now)
        assert sends(acts) == [RAW[i]]  # byte-identical PROPOSAL
        (persist,) = [a for a in acts if isinstance(a, Persist)]
        assert peer.step(Persisted(persist.token), now) == []  # our ACK alone: no quorum
        acts = peer.step(PacketIn(1, P.simple(T.ACK, txn.zxid)), now)
        assert sends(acts) == [RAW[i + 1]]  # COMMIT
        (apply,) = [a for a in acts if isinstance(a, Apply)]
        assert apply.proposals[0].data == PACKETS[i].data
        now += 10
    acts = peer.tick(now + 250)  # half a tick: PING{lastProposed}
    assert sends(acts) == [RAW[10]]


def _following_learner() -> tuple[QuorumPeer, list]:
    peer = QuorumPeer(1, CONFIG)
    peer.start(0)
    stream = DUO["election_stream_from_2"]
    decoder = ChannelDecoder(True)
    items = decoder.feed(stream)
    notes = [Notification.decode(x) for x in items[1:]]  # after the hello
    acts: list = []
    for n in notes:
        acts += peer.step(VoteIn(2, n), 10)
    acts += peer.tick(210)
    assert RoleChanged(ServerState.FOLLOWING, 2) in acts and Connect(2) in acts
    return peer, acts


def test_our_learner_answers_what_java_accepted() -> None:
    peer, _ = _following_learner()
    acts = peer.step(ConnectionUp(2), 220)
    assert sends(acts) == [DUO["learner_followerinfo"]]
    acts = peer.step(PacketIn(2, PACKETS[0]), 230)  # LEADERINFO
    assert acts[0] == PersistEpoch(accepted=1)
    assert sends(acts) == [P.ack_epoch(0, 0).encode()]
    assert sends(acts)[0] == bytes.fromhex("00000012" "0000000000000000" "00000004" "00000000"
                                           "ffffffff")
    assert peer.step(PacketIn(2, PACKETS[1]), 240) == []  # DIFF: nothing to do yet
    acts = peer.step(PacketIn(2, PACKETS[2]), 250)  # NEWLEADER
    assert acts[0] == PersistEpoch(current=1)
    assert sends(acts) == [P.simple(T.ACK, EPOCH1).encode()]
    acts = peer.step(PacketIn(2, PACKETS[3]), 260)  # UPTODATE
    assert sends(acts) == [P.simple(T.ACK, EPOCH1).encode()]
    assert StartServing(ServerState.FOLLOWING, 1, 0) in acts
    now = 270
    for i in (4, 6, 8):
        acts = peer.step(PacketIn(2, PACKETS[i]), now)
        (persist,) = acts
        assert isinstance(persist, Persist) and persist.proposals[0].data == PACKETS[i].data
        # ACK only once the txn is on disk
        assert sends(peer.step(Persisted(persist.token), now)) == \
            [P.simple(T.ACK, PACKETS[i].zxid).encode()]
        (apply,) = peer.step(PacketIn(2, PACKETS[i + 1]), now)
        assert isinstance(apply, Apply) and apply.proposals[0].zxid == PACKETS[i].zxid
        now += 10
    acts = peer.step(PacketIn(2, PACKETS[10]), now)  # PING
    assert sends(acts) == [bytes.fromhex("00000005" "0000000100000003" "00000000" "ffffffff")]
    assert peer.last_zxid == PACKETS[8].zxid

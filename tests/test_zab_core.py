"""The Zab core (zookapter.quorum.peer) in 3- and 5-peer clusters over the deterministic
in-test router of tests/zabnet.py: election -> discovery -> sync -> broadcast, the sync
modes (DIFF, txn-log DIFF, TRUNC, SNAP), crashes, partitions, observers, forwarding."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from zabnet import Net

from zookapter.protocol.consts import Op
from zookapter.quorum import packets as P
from zookapter.quorum.election_wire import ServerState
from zookapter.quorum.packets import PacketType as T
from zookapter.quorum.packets import make_zxid
from zookapter.quorum.zab_events import (
    PacketIn,
    PersistEpoch,
    Revalidate,
    RevalidateReply,
    RevalidateResult,
    RevalidateSession,
    Send,
)

SYNC_KINDS = (T.DIFF, T.TRUNC, T.SNAP)


def sync_modes(net: Net, to: int) -> list[str]:
    return [p.name for s, d, p in net.trace if d == to and p.type in SYNC_KINDS]


def sent(net: Net, src: int, dst: int, *types: T) -> list[P.QuorumPacket]:
    return [p for s, d, p in net.trace if s == src and d == dst and (not types or p.type in types)]


def check_consistent(net: Net) -> None:
    """All live servers hold the same history, and every txn any server applied as
    committed is in it at its place (nothing committed is ever lost or reordered)."""
    lead = net.leader()
    assert lead is not None, net.status()
    history = net.zxids(lead.sid)
    assert history == sorted(set(history))
    for node in net.nodes.values():
        if node.alive:
            assert net.zxids(node.sid) == history, (node.sid, net.status())
        assert set(node.applied_committed) <= set(history), node.sid
    payloads = {p.zxid: p.data for p in lead.state}
    for node in net.nodes.values():
        for p in node.state:
            assert payloads.get(p.zxid, p.data) == p.data


def cluster(n: int = 3, **kw: object) -> Net:
    net = Net(n, **kw)  # type: ignore[arg-type]
    net.start()
    net.run_until(net.stable)
    return net


def rejoin_after_writes(net: Net, sid: int, writes: int, prefix: bytes = b"v") -> None:
    """Crash `sid`, commit `writes` writes without it, restart it and let it sync; the
    trace then holds only what was sent since the restart."""
    net.crash(sid)
    for i in range(writes):
        net.write(prefix + b"%d" % i)
    net.run(100)
    net.trace.clear()
    net.start(sid)
    net.run_until(net.stable)


# --- election -> discovery -> sync -> broadcast --------------------------------------------

@pytest.mark.parametrize("n", [3, 5])
def test_cluster_elects_syncs_and_broadcasts(n: int) -> None:
    net = cluster(n)
    lead = net.leader()
    assert lead is not None and lead.sid == n  # equal zxids: the highest sid wins
    assert lead.serving == (ServerState.LEADING, 1)
    for sid, node in net.nodes.items():
        assert node.disk.accepted == 1 and node.disk.current == 1
        if sid != n:
            kinds = [p.type for p in sent(net, n, sid)
                     if p.type not in (T.PING, T.PROPOSAL, T.COMMIT)]
            assert kinds[0] == T.LEADERINFO and kinds[-2:] == [T.NEWLEADER, T.UPTODATE]
            assert kinds[1] in (T.DIFF, T.SNAP)
            answers = [p.type for p in sent(net, sid, n) if p.type != T.PING]
            assert answers[:4] == [T.FOLLOWERINFO, T.ACKEPOCH, T.ACK, T.ACK]
    zxids = [net.write(b"v%d" % i) for i in range(10)]
    assert zxids == [make_zxid(1, i) for i in range(1, 11)]
    net.run_until(lambda: all(net.zxids(s) == zxids for s in net.nodes))
    check_consistent(net)
    # commits go out in zxid order, each after its proposal
    commits = [p.zxid for p in sent(net, n, 1, T.COMMIT)]
    assert commits == zxids


def test_commit_needs_a_quorum_of_acks() -> None:
    net = cluster(5)
    lead = net.leader()
    assert lead is not None
    followers = [s for s in net.nodes if s != lead.sid]
    # only one follower hears the proposal: leader + 1 of 5 is no quorum
    net.partition([lead.sid, followers[0]], followers[1:])
    z = net.write(b"x")
    net.deliver()
    assert z not in net.zxids(lead.sid)
    assert any(p.type == T.ACK and p.zxid == z for p in sent(net, followers[0], lead.sid))
    assert not any(p.zxid == z for p in sent(net, lead.sid, followers[0], T.COMMIT))


def test_acks_wait_for_the_disk() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None
    net.slow_disks |= {1, 2}
    z = net.write(b"x")
    net.run(50)
    assert not sent(net, 1, lead.sid, T.ACK) or all(
        p.zxid != z for p in sent(net, 1, lead.sid, T.ACK))
    assert z not in net.zxids(lead.sid)  # leader alone is no quorum
    net.release_disk(1)
    net.run_until(lambda: z in net.zxids(lead.sid))
    net.release_disk(2)
    net.run_until(lambda: all(z in net.zxids(s) for s in net.nodes))
    check_consistent(net)


def test_forwarded_requests_and_sync() -> None:
    net = cluster(5)
    lead = net.leader()
    assert lead is not None
    net.write(b"forwarded", via=1)
    net.run_until(lambda: any(p.txn.record.data == b"forwarded" for p in net.nodes[1].state))
    (req,) = lead.learner_requests
    assert req.sid == 1 and req.request.body == b"forwarded"
    (pkt,) = sent(net, 1, lead.sid, T.REQUEST)
    assert pkt.zxid == -1 and P.ForwardedRequest.decode(pkt.data) == req.request
    # a sync forwarded after a write is answered once that write is committed
    net.slow_disks |= {2, 3, 4}
    net.write(b"w", via=1)
    net.forward(1, P.ForwardedRequest(0x1001, 2, Op.SYNC))
    net.run(200)
    assert net.nodes[1].sync_replies == 0
    for s in (2, 3, 4):
        net.release_disk(s)
    net.run_until(lambda: net.nodes[1].sync_replies == 1)
    (sync,) = sent(net, lead.sid, 1, T.SYNC)
    assert sync == P.simple(T.SYNC, 0)
    check_consistent(net)


def test_pings_carry_last_proposed_and_touches() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None
    net.nodes[1].touches = [(0x1234, 30000)]
    z = net.write(b"x")
    net.run(200)
    pings = sent(net, lead.sid, 1, T.PING)
    assert pings and pings[-1] == P.simple(T.PING, z)
    replies = sent(net, 1, lead.sid, T.PING)
    assert replies[-1].zxid == z and P.decode_touches(replies[-1].data) == [(0x1234, 30000)]
    assert sent(net, 2, lead.sid, T.PING)[-1].data == b""  # zero-length, not null


def test_revalidate_round_trip() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None and lead.peer is not None
    follower = net.nodes[1]
    assert follower.peer is not None
    actions = follower.peer.step(RevalidateSession(0x99, 4000), net.now)
    (send,) = actions
    assert send.packet == P.QuorumPacket(T.REVALIDATE, -1, P.encode_revalidate_request(0x99, 4000))
    out = lead.peer.step(PacketIn(1, send.packet), net.now)
    assert out == [Revalidate(1, 0x99, 4000)]
    (reply,) = lead.peer.step(RevalidateReply(1, 0x99, True), net.now)
    assert reply.packet.data == P.encode_revalidate_reply(0x99, True)
    assert follower.peer.step(PacketIn(lead.sid, reply.packet), net.now) == \
        [RevalidateResult(0x99, True)]


# --- sync modes ----------------------------------------------------------------------------

def test_follower_behind_gets_diff() -> None:
    net = cluster(3)
    net.write(b"a")
    net.run(100)
    rejoin_after_writes(net, 1, 5, b"b")
    assert sync_modes(net, 1) == ["DIFF"]
    diff = sent(net, 3, 1, T.DIFF)[0]
    assert diff.zxid == make_zxid(1, 6)  # maxCommittedLog
    props = [p.zxid for p in sent(net, 3, 1, T.PROPOSAL)]
    assert props == [make_zxid(1, i) for i in range(2, 7)]
    check_consistent(net)


def test_far_behind_gets_snapshot() -> None:
    net = cluster(3, commit_log_count=3, snapshot_size_factor=-1.0)
    rejoin_after_writes(net, 1, 10)
    assert sync_modes(net, 1) == ["SNAP"]
    assert net.nodes[1].disk.snap_zxid == net.nodes[3].processed  # synced snapshot written
    check_consistent(net)


def test_behind_the_committed_log_uses_the_txn_log() -> None:
    net = cluster(3, commit_log_count=3)
    net.write(b"first")
    net.run(100)
    rejoin_after_writes(net, 1, 10)
    assert sync_modes(net, 1) == ["DIFF"]
    assert len(sent(net, 3, 1, T.PROPOSAL)) == 10
    check_consistent(net)


def _isolate_leader_with_a_lost_write(net: Net) -> tuple[int, int]:
    lead = net.leader()
    assert lead is not None
    others = [s for s in net.nodes if s != lead.sid]
    net.partition([lead.sid], others)
    lost = net.write(b"lost")  # logged by the old leader only
    return lead.sid, lost


def test_old_leader_with_uncommitted_proposal_is_truncated() -> None:
    net = cluster(3)
    net.write(b"a")
    net.run(100)
    old, lost = _isolate_leader_with_a_lost_write(net)
    others = [s for s in net.nodes if s != old]
    net.run_until(lambda: net.stable(others))
    assert lost in net.zxids(old)  # fast-forwarded into its state when it stepped down
    net.heal()
    net.trace.clear()
    net.run_until(net.stable)
    assert sync_modes(net, old) == ["TRUNC"]
    assert net.nodes[old].truncations == [make_zxid(1, 1)]
    assert lost not in net.zxids(old)
    assert all(p.zxid != lost for p in net.nodes[old].disk.log)
    check_consistent(net)


def test_restart_with_uncommitted_proposal_in_the_log_is_truncated() -> None:
    net = cluster(3)
    net.write(b"a")
    net.run(100)
    old, lost = _isolate_leader_with_a_lost_write(net)
    net.crash(old)
    assert net.nodes[old].disk.log[-1].zxid == lost
    net.heal()
    others = [s for s in net.nodes if s != old]
    net.run_until(lambda: net.stable(others))
    net.trace.clear()
    net.start(old)
    assert net.nodes[old].processed == lost  # recovery replays the uncommitted txn
    net.run_until(net.stable)
    assert sync_modes(net, old) == ["TRUNC"] and lost not in net.zxids(old)
    check_consistent(net)


def test_divergent_txn_from_an_older_epoch_gets_snapshot() -> None:
    net = cluster(3)
    old, lost = _isolate_leader_with_a_lost_write(net)
    others = [s for s in net.nodes if s != old]
    net.run_until(lambda: net.stable(others))
    for i in range(3):
        net.write(b"new%d" % i)  # epoch 2 goes on past the lost epoch-1 txn
    net.run(100)
    net.heal()
    net.trace.clear()
    net.run_until(net.stable)
    assert sync_modes(net, old) == ["SNAP"]  # no TRUNC across epochs
    assert lost not in net.zxids(old)
    check_consistent(net)


# --- failures ---------------------------------------------------------------------------

def test_leader_crash_loses_no_committed_txn() -> None:
    net = cluster(5)
    for i in range(20):
        net.write(b"v%d" % i)
    net.run(20)  # some committed, some maybe still in flight
    old = net.leader()
    assert old is not None
    committed = set(old.applied_committed)
    net.crash(old.sid)
    net.run_until(net.stable)
    new = net.leader()
    assert new is not None and new.sid != old.sid and new.serving[1] == 2
    assert committed <= set(net.zxids(new.sid))
    more = [net.write(b"after%d" % i) for i in range(3)]
    assert P.epoch_of(more[0]) == 2
    net.start(old.sid)
    net.run_until(lambda: net.stable() and all(
        more[-1] in net.zxids(s) for s in net.nodes))
    check_consistent(net)


def test_proposal_logged_by_one_follower_survives_the_leader() -> None:
    net = cluster(5)
    lead = net.leader()
    assert lead is not None
    followers = sorted(s for s in net.nodes if s != lead.sid)
    net.slow_disks.add(lead.sid)
    net.partition([lead.sid, followers[0]], followers[1:])
    z = net.write(b"maybe")
    net.deliver()
    assert any(p.zxid == z for p in net.nodes[followers[0]].disk.log)
    net.crash(lead.sid)
    net.heal()
    net.run_until(net.stable)
    new = net.leader()
    assert new is not None and new.sid == followers[0]  # the most recent log wins
    net.run_until(lambda: all(z in net.zxids(s) for s in net.nodes if net.nodes[s].alive))
    check_consistent(net)


def test_leader_steps_down_when_its_followers_disconnect() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None
    start = net.now
    net.partition([lead.sid], [s for s in net.nodes if s != lead.sid])
    net.run_until(lambda: lead.role == ServerState.LOOKING)
    assert net.now - start <= net.config.tick_time_ms + net.step_ms  # the next full tick


def test_leader_steps_down_when_its_followers_go_silent() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None
    start = net.now
    for s in net.nodes:
        if s != lead.sid:
            net.freeze(s)  # connections stay open, nothing comes back
    net.run_until(lambda: lead.role == ServerState.LOOKING)
    # dropped by the read timeout (syncLimit ticks), or unsynced at a tick check
    assert net.config.sync_ms - net.config.tick_time_ms <= net.now - start
    assert net.now - start <= net.config.sync_ms + net.config.tick_time_ms


def test_learner_leaves_when_the_leader_goes_silent() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None
    start = net.now
    net.freeze(lead.sid)
    net.run_until(lambda: net.nodes[1].role != ServerState.FOLLOWING)
    assert net.now - start <= net.config.sync_ms + net.step_ms
    net.run_until(lambda: net.stable([1, 2]))  # the two others go on in epoch 2
    assert net.leader().serving[1] == 2  # type: ignore[union-attr]


def test_restarted_cluster_recovers_from_disk() -> None:
    net = cluster(3)
    zs = [net.write(b"v%d" % i) for i in range(5)]
    net.run(100)
    for s in net.nodes:
        net.crash(s)
    net.start()
    net.run_until(net.stable)
    lead = net.leader()
    assert lead is not None and lead.serving[1] == 2
    assert net.zxids(lead.sid)[:5] == zs
    check_consistent(net)


def test_observer_syncs_and_learns_commits_by_inform() -> None:
    net = Net(3, observers=[4])
    net.start()
    net.run_until(net.stable)
    lead = net.leader()
    assert lead is not None and lead.sid == 3
    assert net.nodes[4].role == ServerState.OBSERVING
    assert sent(net, 4, 3)[0].type == T.OBSERVERINFO
    zs = [net.write(b"v%d" % i) for i in range(3)]
    net.run_until(lambda: net.zxids(4) == zs)
    assert [p.zxid for p in sent(net, 3, 4, T.INFORM)] == zs
    assert not sent(net, 3, 4, T.PROPOSAL, T.COMMIT)
    assert not sent(net, 4, 3, T.ACK)[2:]  # only the NEWLEADER and UPTODATE acks
    assert [p.zxid for p in net.nodes[4].disk.log] == zs
    check_consistent(net)


def test_epochs_are_persisted_before_they_are_acknowledged() -> None:
    net = Net(3)
    order: list[tuple[int, object]] = []
    original = net._action

    def spy(node, a):  # type: ignore[no-untyped-def]
        if isinstance(a, PersistEpoch) or isinstance(a, Send) and \
                a.packet.type in (T.ACKEPOCH, T.ACK):
            order.append((node.sid, a))
        original(node, a)

    net._action = spy  # type: ignore[method-assign]
    net.start()
    net.run_until(net.stable)
    for sid in (1, 2):
        mine = [a for s, a in order if s == sid]
        kinds = [type(a).__name__ if isinstance(a, PersistEpoch) else a.packet.name
                 for a in mine][:4]
        assert kinds == ["PersistEpoch", "ACKEPOCH", "PersistEpoch", "ACK"]
        assert mine[0].accepted == 1 and mine[2].current == 1


def test_core_modules_do_no_io() -> None:
    banned = {"asyncio", "socket", "time", "threading", "os", "random"}
    root = Path(__file__).parent.parent / "src" / "zookapter" / "quorum"
    for name in ("zab_events", "history", "syncplan", "learner_handle", "leader", "learner",
                 "peer"):
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not mods & banned, (name, mods)


def test_learner_retries_the_leader_connection() -> None:
    from zookapter.quorum.election_wire import Notification
    from zookapter.quorum.peer import QuorumPeer
    from zookapter.quorum.zab_events import (
        Connect,
        ConnectionDown,
        ConnectionUp,
        RoleChanged,
        VoteIn,
    )
    net = Net(3, init_limit=5)  # 500 ms: room for retries 100 ms apart
    peer = QuorumPeer(1, net.config)
    peer.start(0)
    vote = Notification(ServerState.LOOKING, 3, 0, 1, 0, 2, net.verifier.to_bytes())
    peer.step(VoteIn(3, vote), 0)
    acts = peer.tick(200)
    assert RoleChanged(ServerState.FOLLOWING, 3) in acts and acts[-1] == Connect(3)
    assert peer.step(ConnectionDown(3), 210) == []  # first failure: retry in 100 ms
    assert peer.tick(309) == []
    assert peer.tick(310) == [Connect(3)]
    acts = peer.step(ConnectionUp(3), 320)
    assert [a.packet.type for a in acts] == [T.FOLLOWERINFO]
    # without an answer, the role ends after initLimit ticks
    assert peer.tick(319 + net.config.init_ms) == []
    acts = peer.tick(320 + net.config.init_ms)
    assert RoleChanged(ServerState.LOOKING, None) in acts


def test_next_deadline() -> None:
    net = cluster(3)
    lead = net.leader()
    assert lead is not None and lead.peer is not None
    half = net.config.tick_time_ms // 2
    assert net.now < lead.peer.next_deadline_ms <= net.now + half
    follower = net.nodes[1].peer
    assert follower is not None
    assert net.now < follower.next_deadline_ms <= net.now + net.config.sync_ms


def test_config_from_zoo_cfg() -> None:
    from zookapter.quorum.config import parse_quorum_peer_config
    from zookapter.quorum.peer import ZabConfig
    props = {"tickTime": "500", "initLimit": "7", "syncLimit": "3",
             "server.1": "127.0.0.1:2888:3888", "server.2": "127.0.0.1:2889:3889",
             "server.3": "127.0.0.1:2890:3890:observer"}
    cfg = ZabConfig.from_peer_config(parse_quorum_peer_config(props, "3"), commit_log_count=9)
    assert (cfg.tick_time_ms, cfg.init_ms, cfg.sync_ms) == (500, 3500, 1500)
    assert cfg.commit_log_count == 9 and cfg.learner_type is not None
    assert cfg.learner_type.value == "observer"

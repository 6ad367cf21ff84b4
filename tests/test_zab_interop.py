"""The Zab leader core against a real Apache ZooKeeper 3.8 follower.

Java server 1 and our core as server 2 (server 3 configured, never started) elect 2: our
core has history (epoch 1, two creates). The Java follower then syncs from our leader over
TCP: LEADERINFO/ACKEPOCH, a SNAP with our serialized snapshot stream (it has no txns, we
have no txn log to diff from), NEWLEADER, UPTODATE. A kazoo client connected to the Java
follower then reads our nodes and writes: its createSession, create and closeSession come
to us as forwarded REQUESTs, we prep them into txns with tree digests, propose, and commit
with the Java follower's ACKs; Java applies them (checking our digests) and answers the
client. Pings keep the follower from timing out.

The socket shell here is test scaffolding (one thread, select), not the server's shell.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_quorum_interop import ElectionNode, started

from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Reader, Writer
from zookapter.protocol.records import OPEN_ACL_UNSAFE, CreateRequest
from zookapter.protocol.txns import CreateSessionTxn, Txn
from zookapter.quorum import packets as P
from zookapter.quorum.config import verifier_from_text
from zookapter.quorum.packets import PacketDecoder, PacketType, make_zxid
from zookapter.quorum.peer import QuorumPeer, ZabConfig
from zookapter.quorum.zab_events import (
    Apply,
    ConnectionDown,
    Disconnect,
    LearnerRequest,
    PacketIn,
    Persist,
    Persisted,
    Proposal,
    Propose,
    Send,
    SendSnapshot,
    SendVote,
    StartServing,
    VoteIn,
)
from zookapter.server.datatree import DataTree
from zookapter.server.prep import Prep
from zookapter.storage.digest import DigestShadow
from zookapter.storage.snapshot import serialize_snapshot

from ensemble import HOST, JavaPeer, Ports, server_mode, wait_for
from oracle import apache_zookeeper_available

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available(),
                                 reason="Apache ZooKeeper (java + jars) not available")]

TICK_MS = 500


class TreeMachine:
    """Just enough of a leader's state machine: prep into txns with digests, apply."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.prep = Prep(self.tree)
        self.digest = DigestShadow(self.tree)
        self.sessions: dict[int, int] = {}
        self.next_zxid = make_zxid(1, 1)

    def make(self, session: int, cxid: int, op: int, req: object) -> Txn:
        zxid, now = self.next_zxid, int(time.time() * 1000)
        self.next_zxid += 1
        if op == Op.CREATE_SESSION:
            typ, rec = op, CreateSessionTxn(req)  # type: ignore[arg-type]
        elif op == Op.CLOSE_SESSION:
            typ, rec = op, self.prep.close_session(session, zxid)
        else:
            typ, rec = self.prep.prep(op, req, session, zxid, now, [])
        txn = Txn(session, cxid, zxid, now, typ, rec)  # type: ignore[arg-type]
        if typ != Op.ERROR:
            txn.digest = self.digest.txn(txn)
        return txn

    def forwarded(self, req: P.ForwardedRequest) -> Txn | None:
        r = Reader(req.body)
        if req.type == Op.CREATE_SESSION:
            return self.make(req.session_id, req.cxid, req.type, r.int())
        if req.type == Op.CLOSE_SESSION:
            return self.make(req.session_id, req.cxid, req.type, None)
        if req.type in (Op.CREATE, Op.CREATE2):
            return self.make(req.session_id, req.cxid, req.type, CreateRequest.read(r))
        return None

    def apply(self, proposals: tuple[Proposal, ...]) -> None:
        for p in proposals:
            self.tree.apply(p.txn)
            if p.txn.type == Op.CREATE_SESSION:
                self.sessions[p.txn.session_id] = p.txn.record.timeOut  # type: ignore[union-attr]
            elif p.txn.type == Op.CLOSE_SESSION:
                self.sessions.pop(p.txn.session_id, None)
            self.prep.applied(p.zxid)
            self.digest.applied(p.zxid)

    def snap_stream(self) -> bytes:
        """ZKDatabase.serializeSnapshot: a snapshot file minus header, checksum and seal."""
        data = serialize_snapshot(self.tree, self.sessions, digest_section=False)
        return data[16:-13] + Writer().ustring(P.SNAP_SIGNATURE).getvalue()


class PeerAsElection:
    """Lets ElectionNode's election sockets drive the whole QuorumPeer."""

    running = True

    def __init__(self, peer: QuorumPeer) -> None:
        self.peer, self.my_id = peer, peer.my_id

    @property
    def next_deadline_ms(self) -> int | None:
        return self.peer.next_deadline_ms

    def step(self, sid: int, n: object, now_ms: int) -> list:
        return self.peer.step(VoteIn(sid, n), now_ms)  # type: ignore[arg-type]

    def tick(self, now_ms: int) -> list:
        return self.peer.tick(now_ms)


class ZabShell(ElectionNode):
    """Election sockets (inherited) + the leader's quorum port, executing core actions."""

    def __init__(self, peer: QuorumPeer, election_port: int, peers: dict[int, int],
                 quorum_port: int, machine: TreeMachine) -> None:
        super().__init__(PeerAsElection(peer), election_port, peers)  # type: ignore[arg-type]
        self.peer, self.machine = peer, machine
        self.quorum = socket.create_server((HOST, quorum_port))
        self.learners: dict[socket.socket, tuple[PacketDecoder, list[int]]] = {}
        self.by_sid: dict[int, socket.socket] = {}
        self.events: list = []
        self.log: list[tuple[str, int, P.QuorumPacket]] = []
        self.serving = False
        self.error: BaseException | None = None
        self.stop = threading.Event()

    # -- the core's actions -----------------------------------------------------------------

    def apply(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, SendVote):
                self.send(a.to, a.notification)
            elif isinstance(a, Send):
                self._write(a.to, a.packet.encode())
                self.log.append(("out", a.to, a.packet))
            elif isinstance(a, SendSnapshot):
                pkt = P.simple(PacketType.SNAP, a.zxid)
                self.log.append(("out", a.to, pkt))
                self._write(a.to, pkt.encode() + self.machine.snap_stream())
            elif isinstance(a, Persist):
                self.events.append(Persisted(a.token))  # no disk: durable at once
            elif isinstance(a, Apply):
                self.machine.apply(a.proposals)
            elif isinstance(a, StartServing):
                self.machine.next_zxid = a.zxid + 1
                self.serving = True
            elif isinstance(a, LearnerRequest):
                txn = self.machine.forwarded(a.request)
                if txn is not None:
                    self.events.append(Propose((txn,)))
            elif isinstance(a, Disconnect):
                sock = self.by_sid.pop(a.sid, None)
                if sock is not None:
                    self.learners.pop(sock, None)
                    sock.close()

    def _write(self, sid: int, data: bytes) -> None:
        sock = self.by_sid.get(sid)
        if sock is not None:
            sock.sendall(data)

    def _step(self, event: object) -> None:
        self.events.append(event)
        while self.events:
            self.apply(self.peer.step(self.events.pop(0), self.now_ms()))

    # -- sockets ----------------------------------------------------------------------------

    def poll_quorum(self) -> None:
        ready, _, _ = select.select([self.quorum, *self.learners], [], [], 0)
        for sock in ready:
            if sock is self.quorum:
                conn, _ = self.quorum.accept()
                self.learners[conn] = (PacketDecoder(), [])
                continue
            decoder, sid = self.learners[sock]
            data = sock.recv(65536)
            if not data:
                self.learners.pop(sock)
                sock.close()
                if sid and self.by_sid.get(sid[0]) is sock:
                    del self.by_sid[sid[0]]
                    self._step(ConnectionDown(sid[0]))
                continue
            for pkt in decoder.feed(data):
                if not sid:  # FOLLOWERINFO names the learner
                    sid.append(P.LearnerInfo.decode(pkt.data or b"").sid)
                    self.by_sid[sid[0]] = sock
                self.log.append(("in", sid[0], pkt))
                self._step(PacketIn(sid[0], pkt))

    def serve(self) -> None:
        try:
            self.apply(self.peer.start(self.now_ms()))
            while not self.stop.is_set():
                self.poll(0.02)
                self.poll_quorum()
                self.apply(self.peer.tick(self.now_ms()))
                while self.events:
                    self.apply(self.peer.step(self.events.pop(0), self.now_ms()))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def close(self) -> None:
        self.stop.set()
        for sock in list(self.learners):
            sock.close()
        self.quorum.close()
        super().close()


def _preloaded() -> tuple[TreeMachine, list[Proposal]]:
    """Epoch-1 history: /a and /b created (as if loaded from our snapshot and log)."""
    machine = TreeMachine()
    history = []
    for path, data in (("/a", b"alpha"), ("/b", b"beta")):
        txn = machine.make(0x77, 1, Op.CREATE, CreateRequest(path, data, OPEN_ACL_UNSAFE, 0))
        p = Proposal.of(txn)
        machine.apply((p,))
        history.append(p)
    return machine, history


@contextlib.contextmanager
def leader_with_java_follower():
    ports = {sid: Ports() for sid in (1, 2, 3)}
    lines = [f"server.{s}={HOST}:{p.quorum}:{p.election}" for s, p in ports.items()]
    cfg = {"tickTime": str(TICK_MS), "initLimit": "10", "syncLimit": "5",
           "clientPort": str(ports[1].client), "clientPortAddress": HOST,
           "4lw.commands.whitelist": "*", "admin.enableServer": "false"}
    root = Path(tempfile.mkdtemp(prefix="zk-zab-"))
    machine, history = _preloaded()
    config = ZabConfig(verifier_from_text("\n".join(lines)), tick_time_ms=TICK_MS,
                       init_limit=10, sync_limit=5)
    peer = QuorumPeer(2, config, last_zxid=history[-1].zxid, accepted_epoch=1,
                      current_epoch=1, recent=history)
    shell = ZabShell(peer, ports[2].election, {1: ports[1].election, 3: ports[3].election},
                     ports[2].quorum, machine)
    java = JavaPeer(root, 1, cfg, lines)
    thread = threading.Thread(target=shell.serve, daemon=True)
    try:
        java.start()
        thread.start()
        wait_for(lambda: shell.error or (shell.serving and
                                         server_mode(ports[1].client) == "follower"),
                 60.0, "the Java follower to sync with our leader", [java])
        assert shell.error is None, shell.error
        yield {"shell": shell, "java": java, "ports": ports, "machine": machine}
    finally:
        shell.stop.set()
        thread.join(10)
        shell.close()
        java.stop()
        if not os.environ.get("ZK_ORACLE_KEEP_DIR"):
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def zab_leader():
    value, stack = started(leader_with_java_follower)
    with stack:
        yield value


def test_java_follower_syncs_by_snapshot_from_our_leader(zab_leader) -> None:
    shell = zab_leader["shell"]
    out = [p for d, _, p in list(shell.log) if d == "out" and p.type != PacketType.PING]
    kinds = [p.type for p in out][:4]
    assert kinds == [PacketType.LEADERINFO, PacketType.SNAP, PacketType.NEWLEADER,
                     PacketType.UPTODATE]
    assert out[0].zxid == make_zxid(2, 0) and out[1].zxid == make_zxid(1, 2)
    into = wait_for(lambda: [p for d, _, p in list(shell.log) if d == "in"][3:] and
                    [p for d, _, p in list(shell.log) if d == "in"], 10.0, "UPTODATE's ACK")
    assert [p.type for p in into][:4] == [PacketType.FOLLOWERINFO, PacketType.ACKEPOCH,
                                          PacketType.ACK, PacketType.ACK]
    assert into[1].zxid == 0 and P.decode_int(into[1].data) == 0  # fresh Java follower


def test_kazoo_through_the_java_follower(zab_leader) -> None:
    from kazoo.client import KazooClient
    shell, java, ports = zab_leader["shell"], zab_leader["java"], zab_leader["ports"]
    zk = KazooClient(hosts=f"{HOST}:{ports[1].client}", timeout=15)
    zk.start(timeout=30)
    try:
        assert zk.get("/a")[0] == b"alpha" and zk.get("/b")[0] == b"beta"  # from our SNAP
        zk.create("/c", b"gamma")
        assert zk.get("/c")[0] == b"gamma"
    finally:
        zk.stop()
        zk.close()
    assert shell.error is None, shell.error
    assert zab_leader["machine"].tree.get("/c") is not None

    def commits() -> list[int]:
        return [p.zxid for d, _, p in list(shell.log) if d == "out" and p.type == PacketType.COMMIT]

    # createSession, create, closeSession: all forwarded, proposed and committed by us
    wait_for(lambda: len(commits()) >= 3, 10.0, "three commits", [java])
    assert all(P.epoch_of(z) == 2 for z in commits())
    requests = [P.ForwardedRequest.decode(p.data) for d, _, p in list(shell.log)
                if d == "in" and p.type == PacketType.REQUEST]
    assert [r.type for r in requests] == [Op.CREATE_SESSION, Op.CREATE, Op.CLOSE_SESSION]
    # the follower echoes our pings (with its touched sessions)
    wait_for(lambda: any(d == "in" and p.type == PacketType.PING for d, _, p in list(shell.log)),
             10.0, "a PING echo", [java])
    log = java.log()
    assert "Digests are not matching" not in log and "digest mismatch" not in log.lower()
    assert server_mode(ports[1].client) == "follower"

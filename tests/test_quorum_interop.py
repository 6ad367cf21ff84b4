"""zookapter's quorum codecs and election core against real Apache ZooKeeper 3.8 servers.

Two small ensembles of QuorumPeerMain processes on loopback, each with one member played by
Python:

- "trio": Java servers 1 and 2 (multiAddress.enabled, reconfigEnabled), member 3 is Python,
  member 17 is an observer that never runs. Python listens on 3's election port while the Java
  servers elect (they send 3 their V2 handshake, then hang up since 3 > their ids), then
  connects to both as server 3, runs our `Election` core and joins the established leader.
  The /zookeeper/config text and the dynamic config file are compared with our verifier.
- "duo": Java server 2 alone with Python as server 1 (server 3 configured, never started).
  Java needs Python's vote for a quorum: our core and Java elect 2 together, then a scripted
  Python follower syncs with the Java leader over the Zab channel (FOLLOWERINFO ... UPTODATE),
  acks its proposals so that client writes commit, and answers pings.

Captured bytes go to tests/testdata/quorum/java_*.txt when run with --rewrite; the offline
tests in test_quorum_wire.py check our codecs against those files.
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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zookapter.protocol.consts import Op
from zookapter.quorum import packets as P
from zookapter.quorum.config import parse_quorum_peer_config, verifier_from_text
from zookapter.quorum.election import Elected, Election, Send
from zookapter.quorum.election_wire import (
    ChannelDecoder,
    InitialMessage,
    Notification,
    ServerState,
    initial_message_size,
)
from zookapter.server.config import parse_properties

from ensemble import HOST, JavaPeer, Ports, server_mode, wait_for
from oracle import apache_zookeeper_available
from oracle import four_letter_word as _4lw

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available(),
                                 reason="Apache ZooKeeper (java + jars) not available")]

TESTDATA = Path(__file__).parent / "testdata" / "quorum"
START_TIMEOUT_S = 30.0


# --- Python as an election peer --------------------------------------------------------------

@dataclass(eq=False)
class Channel:
    """One election connection as seen by the Python peer, with everything it received."""
    sock: socket.socket
    how: str  # "accepted" or "dialed"
    sid: int | None
    decoder: ChannelDecoder
    raw: bytearray = field(default_factory=bytearray)
    open: bool = True


class ElectionNode:
    """Our Election core on real sockets, following QuorumCnxManager's rules: one connection
    per pair, the one opened by the larger id; a smaller-id initiator only says hello."""

    def __init__(self, core: Election, election_port: int, peers: dict[int, int]) -> None:
        self.core, self.peers = core, peers
        self.listener = socket.create_server((HOST, election_port))
        self.channels: list[Channel] = []
        self.conns: dict[int, Channel] = {}
        self.last_sent: dict[int, Notification] = {}
        self.received: list[tuple[int, Notification]] = []
        self.result: Elected | None = None
        self.t0 = time.monotonic()

    def now_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)

    def hello(self) -> bytes:
        return InitialMessage(self.core.my_id, ((HOST, self.listener.getsockname()[1]),)).encode()

    def streams(self, how: str) -> list[Channel]:
        return [c for c in self.channels if c.how == how]

    def apply(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.send(a.to, a.notification)
            elif isinstance(a, Elected):
                self.result = a

    def send(self, sid: int, n: Notification) -> None:
        self.last_sent[sid] = n
        ch = self.conns.get(sid) or self._dial(sid)
        if ch is not None:
            ch.sock.sendall(n.frame())

    def _dial(self, sid: int) -> Channel | None:
        try:
            sock = socket.create_connection((HOST, self.peers[sid]), timeout=2)
        except OSError:
            return None
        sock.sendall(self.hello())
        if sid > self.core.my_id:  # they win the tie-break and will call us back
            sock.close()
            return None
        ch = Channel(sock, "dialed", sid, ChannelDecoder(expect_initial=False))
        self.channels.append(ch)
        self.conns[sid] = ch
        return ch

    def _close(self, ch: Channel) -> None:
        if ch.sid is not None and self.conns.get(ch.sid) is ch:
            del self.conns[ch.sid]
        ch.open = False
        ch.sock.close()

    def _on_data(self, ch: Channel, data: bytes) -> None:
        ch.raw += data
        for item in ch.decoder.feed(data):
            if isinstance(item, InitialMessage):
                ch.sid = item.sid
                if item.sid < self.core.my_id:  # we should be the one dialing
                    self._close(ch)
                    return
                self.conns[item.sid] = ch
                if item.sid in self.last_sent:  # Java re-sends the last message on connect
                    ch.sock.sendall(self.last_sent[item.sid].frame())
                continue
            n = Notification.decode(item)
            self.received.append((ch.sid, n))
            self.apply(self.core.step(ch.sid, n, self.now_ms()))

    def poll(self, timeout_s: float) -> None:
        live = {c.sock: c for c in self.channels if c.open}
        ready, _, _ = select.select([self.listener, *live], [], [], timeout_s)
        for sock in ready:
            if sock is self.listener:
                conn, _ = self.listener.accept()
                self.channels.append(Channel(conn, "accepted", None, ChannelDecoder(True)))
                continue
            ch = live[sock]
            if not ch.open:
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                self._on_data(ch, data)
            else:
                self._close(ch)

    def run_until(self, predicate, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"election did not finish; received {self.received}")
            nxt = self.core.next_deadline_ms
            wait = 0.05 if nxt is None else max(0.0, min(0.05, (nxt - self.now_ms()) / 1000))
            self.poll(wait)
            if self.core.running:
                self.apply(self.core.tick(self.now_ms()))

    def close(self) -> None:
        for ch in self.channels:
            if ch.open:
                self._close(ch)
        self.listener.close()


# --- Python as a Zab follower ----------------------------------------------------------------

class ScriptedFollower(threading.Thread):
    """Just enough of a follower: sync with the leader, ack proposals, answer pings."""

    def __init__(self, sid: int, quorum_port: int) -> None:
        super().__init__(daemon=True)
        self.sid, self.port = sid, quorum_port
        self.sent: list[bytes] = []
        self.received: list[tuple[P.QuorumPacket, bytes]] = []
        self.synced, self.commits = threading.Event(), []
        self.error: BaseException | None = None
        self.sock = self._connect()
        self._stop = False

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 10
        while True:  # the leader opens its quorum port once it has decided to lead
            try:
                return socket.create_connection((HOST, self.port), timeout=10)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def write(self, pkt: P.QuorumPacket) -> None:
        raw = pkt.encode()
        self.sent.append(raw)
        self.sock.sendall(raw)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            if not self._stop:
                self.error = e

    def _run(self) -> None:
        self.write(P.follower_info(0, P.LearnerInfo(self.sid, P.ZAB_PROTOCOL_VERSION, 0)))
        buf, new_epoch = bytearray(), 0
        while not self._stop:
            data = self.sock.recv(65536)
            if not data:
                return
            buf += data
            while (size := P.packet_size(buf)) is not None:
                raw = bytes(buf[:size])
                del buf[:size]
                pkt = P.QuorumPacket.decode(raw)
                self.received.append((pkt, raw))
                if pkt.type == P.PacketType.LEADERINFO:
                    new_epoch = P.epoch_of(pkt.zxid)
                    self.write(P.ack_epoch(0, 0))
                elif pkt.type == P.PacketType.NEWLEADER:
                    self.write(P.simple(P.PacketType.ACK, pkt.zxid))
                elif pkt.type == P.PacketType.UPTODATE:
                    self.write(P.simple(P.PacketType.ACK, P.make_zxid(new_epoch, 0)))
                    self.synced.set()
                elif pkt.type == P.PacketType.PING:
                    self.write(P.ping_reply(pkt, []))
                elif pkt.type == P.PacketType.PROPOSAL:
                    self.write(P.simple(P.PacketType.ACK, pkt.zxid))
                elif pkt.type == P.PacketType.COMMIT:
                    self.commits.append(pkt.zxid)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


# --- capture files ---------------------------------------------------------------------------

def write_capture(name: str, header: str, items: list[tuple[str, bytes]]) -> None:
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key} {raw.hex()}" for key, raw in items]
    (TESTDATA / name).write_text("\n".join(lines) + "\n")


# --- ensemble "trio" -------------------------------------------------------------------------

def started(factory):
    """Enter the context manager `factory()`, once more with fresh ports if the first try
    fails to start (a free port can be taken by another process before Java binds it)."""
    for attempt in range(2):
        stack = contextlib.ExitStack()
        try:
            return stack.enter_context(factory()), stack
        except (AssertionError, OSError):
            stack.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def trio():
    value, stack = started(trio_ensemble)
    with stack:
        yield value


@contextlib.contextmanager
def trio_ensemble():
    ports = {sid: Ports() for sid in (1, 2, 3, 17)}
    p1, p2, p3, p17 = ports[1], ports[2], ports[3], ports[17]
    server_lines = [
        f"server.1={HOST}:{p1.quorum}:{p1.election}|127.0.0.2:{p1.quorum}:{p1.election}"
        f":participant;{HOST}:{p1.client}",
        f"server.2=localhost:{p2.quorum}:{p2.election};{p2.client}",
        f"server.3={HOST}:{p3.quorum}:{p3.election}",
        f"server.17={HOST}:{p17.quorum}:{p17.election}:observer;{HOST}:{p17.client}",
    ]
    cfg = {"tickTime": "500", "initLimit": "10", "syncLimit": "5", "reconfigEnabled": "true",
           "4lw.commands.whitelist": "*", "admin.enableServer": "false",
           "multiAddress.enabled": "true", "multiAddress.reachabilityCheckEnabled": "false"}
    props = {"zookeeper.multiAddress.enabled": "true"}
    core = Election(3, verifier_from_text("\n".join(server_lines), multi_address_enabled=True),
                    0, 0)
    node = ElectionNode(core, p3.election, {1: p1.election, 2: p2.election})
    root = Path(tempfile.mkdtemp(prefix="zk-trio-"))
    java = [JavaPeer(root, sid, cfg, server_lines, props) for sid in (1, 2)]
    try:
        for peer in java:
            peer.start()
        modes = {sid: wait_for(lambda s=sid: server_mode(ports[s].client), START_TIMEOUT_S,
                               f"server {sid} to serve", java) for sid in (1, 2)}
        # their hellos to server 3 (a smaller id says hello and hangs up)
        node.run_until(lambda: {c.sid for c in node.streams("accepted")} >= {1, 2}, 10.0)
        yield {"root": root, "ports": ports, "java": java, "node": node, "modes": modes,
               "server_lines": server_lines, "cfg": cfg}
    finally:
        node.close()
        for peer in java:
            peer.stop()
        if not os.environ.get("ZK_ORACLE_KEEP_DIR"):
            shutil.rmtree(root, ignore_errors=True)


def test_trio_elects_without_server_3(trio) -> None:
    assert sorted(trio["modes"].values()) == ["follower", "leader"]
    assert trio["modes"][2] == "leader"  # equal zxids: the highest live sid wins


def test_trio_zookeeper_config_text(trio) -> None:
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=f"{HOST}:{trio['ports'][1].client}", timeout=10)
    zk.start(timeout=15)
    try:
        data, stat = zk.get("/zookeeper/config")
    finally:
        zk.stop()
        zk.close()
    # reconfigEnabled: the first leader stamps the initial config with its NEWLEADER zxid.
    java_text = data.decode()
    ours = verifier_from_text("\n".join(trio["server_lines"]), multi_address_enabled=True)
    assert java_text == ours.with_version(0x100000000).to_string()
    assert stat.mzxid == 0x100000000
    # ...and wrote zoo.cfg.dynamic.100000000 (sorted lines, no version, no final newline)
    dyn = trio["java"][0].dir / "zoo.cfg.dynamic.100000000"
    assert dyn.read_text() == ours.dynamic_file_text()
    # Our parser reads what Java rewrote: zoo.cfg now points at the dynamic file.
    props = parse_properties((trio["java"][0].cfg_path).read_text())
    cfg = parse_quorum_peer_config(props, "1\n",
                                   dynamic_props=parse_properties(dyn.read_text()))
    assert cfg.verifier.version == 0x100000000 and cfg.my_id == 1
    assert cfg.verifier.to_string() == java_text
    # The membership part of the `conf` four-letter word is the same text.
    conf = _4lw(HOST, trio["ports"][2].client, "conf")
    assert conf.split("membership: \n", 1)[1].rstrip("\n") == java_text


def _hellos(node: ElectionNode) -> dict[int, tuple[InitialMessage, bytes]]:
    """The first hello received from each smaller-id server on our election port."""
    hellos = {}
    for ch in node.streams("accepted"):
        if ch.sid is not None and ch.sid < node.core.my_id:
            raw = bytes(ch.raw)
            hellos.setdefault(ch.sid, (ChannelDecoder(True).feed(raw)[0], raw))
    return hellos


def test_trio_java_hello_is_v2_with_all_addresses(trio) -> None:
    hellos, ports = _hellos(trio["node"]), trio["ports"]
    assert set(hellos) == {1, 2}
    for msg, raw in hellos.values():
        assert initial_message_size(raw) == len(raw)  # nothing follows the hello
        assert msg.encode() == raw  # byte-identical re-encoding
    m1, _ = hellos[1]
    assert m1.protocol_version == -65535
    assert sorted(m1.addresses) == [(HOST, ports[1].election), ("127.0.0.2", ports[1].election)]
    m2, _ = hellos[2]
    assert m2.protocol_version == -65535  # V2 whenever multiAddress is enabled
    # Java sends the resolved IP, not the configured name "localhost"
    assert m2.addresses == ((HOST, ports[2].election),)


def test_trio_python_server_3_joins_the_leader(trio, rewrite: bool) -> None:
    node = trio["node"]
    node.apply(node.core.start(node.now_ms()))
    node.run_until(lambda: node.result is not None, 10.0)
    assert node.result.state == ServerState.FOLLOWING and node.result.vote.leader == 2
    replies = {sid: n for sid, n in node.received}
    assert replies[1].state == ServerState.FOLLOWING and replies[2].state == ServerState.LEADING
    for n in replies.values():
        # Java's vote after sync carries the new epoch (updateElectionVote)
        assert (n.leader, n.zxid, n.election_epoch, n.peer_epoch) == (2, 0, 1, 1)
        assert n.version == 2
        qv = verifier_from_text(n.config_text, multi_address_enabled=True)
        assert qv.version == 0x100000000
    if rewrite:
        items = [("initial_v2", _hellos(node)[1][1])]
        items += [(f"frames_from_{c.sid}", bytes(c.raw)) for c in node.streams("dialed")]
        write_capture("java_election_trio.txt",
                      "Apache ZooKeeper 3.8 election traffic, multiAddress.enabled=true.\n"
                      "initial_v2: server 1's hello to server 3 (no length prefix);\n"
                      "frames_from_N: what server N (FOLLOWING/LEADING) answered our LOOKING\n"
                      "notification with: int length + notification, repeated.",
                      items)


# --- ensemble "duo" --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def duo():
    value, stack = started(duo_ensemble)
    with stack:
        yield value


@contextlib.contextmanager
def duo_ensemble():
    ports = {sid: Ports() for sid in (1, 2, 3)}
    server_lines = [f"server.{s}={HOST}:{p.quorum}:{p.election}" for s, p in ports.items()]
    cfg = {"tickTime": "500", "initLimit": "10", "syncLimit": "5",
           "clientPort": str(ports[2].client), "clientPortAddress": HOST,
           "4lw.commands.whitelist": "*", "admin.enableServer": "false"}
    core = Election(1, verifier_from_text("\n".join(server_lines)), 0, 0)
    node = ElectionNode(core, ports[1].election, {2: ports[2].election, 3: ports[3].election})
    root = Path(tempfile.mkdtemp(prefix="zk-duo-"))
    java = JavaPeer(root, 2, cfg, server_lines)
    follower = None
    try:
        java.start()
        node.apply(core.start(node.now_ms()))
        node.run_until(lambda: node.result is not None, START_TIMEOUT_S)
        follower = ScriptedFollower(1, ports[2].quorum)
        follower.start()
        if not follower.synced.wait(15):
            raise AssertionError(f"no UPTODATE: {follower.error}\n{java.log()[-3000:]}")
        yield {"root": root, "ports": ports, "java": java, "node": node,
               "follower": follower, "server_lines": server_lines}
    finally:
        if follower is not None:
            follower.close()
        node.close()
        java.stop()
        if not os.environ.get("ZK_ORACLE_KEEP_DIR"):
            shutil.rmtree(root, ignore_errors=True)


def test_duo_python_vote_makes_the_quorum(duo) -> None:
    node = duo["node"]
    assert node.result.state == ServerState.FOLLOWING and node.result.vote.leader == 2
    (stream,) = [c for c in node.streams("accepted") if c.sid == 2]
    hello = bytes(stream.raw[:initial_message_size(stream.raw)])
    msg = ChannelDecoder(True).feed(hello)[0]
    assert msg.encode() == hello
    assert msg == InitialMessage(2, ((HOST, duo["ports"][2].election),), -65536)
    first = node.received[0][1]
    assert (first.state, first.leader, first.zxid, first.election_epoch, first.peer_epoch) \
        == (ServerState.LOOKING, 2, 0, 1, 0)
    assert first.config_text == verifier_from_text("\n".join(duo["server_lines"])).to_string()
    # Java serves only because our follower synced: it is a quorum with us.
    assert server_mode(duo["ports"][2].client) == "leader"


def test_duo_zab_sync_sequence(duo) -> None:
    f = duo["follower"]
    kinds = [p.type for p, _ in f.received]
    head = [P.PacketType.LEADERINFO, P.PacketType.DIFF, P.PacketType.NEWLEADER,
            P.PacketType.UPTODATE]
    assert [k for k in kinds if k != P.PacketType.PING][:4] == head
    by_type = {p.type: p for p, _ in f.received}
    li = by_type[P.PacketType.LEADERINFO]
    assert li.zxid == 0x100000000 and P.decode_int(li.data) == P.ZAB_PROTOCOL_VERSION
    assert by_type[P.PacketType.DIFF].zxid == 0
    nl = by_type[P.PacketType.NEWLEADER]
    assert nl.zxid == 0x100000000
    assert nl.data.decode() == verifier_from_text("\n".join(duo["server_lines"])).to_string()
    assert by_type[P.PacketType.UPTODATE].zxid == -1
    for pkt, raw in f.received:
        assert pkt.encode() == raw


def test_duo_writes_commit_with_our_acks(duo, rewrite: bool) -> None:
    from kazoo.client import KazooClient
    f = duo["follower"]
    zk = KazooClient(hosts=f"{HOST}:{duo['ports'][2].client}", timeout=10)
    zk.start(timeout=15)
    try:
        zk.create("/py", b"zab")
    finally:
        zk.stop()
        zk.close()
    wait_for(lambda: len(f.commits) >= 3, 5.0, "commits of createSession/create/closeSession")
    proposals = [(p, raw) for p, raw in f.received if p.type == P.PacketType.PROPOSAL]
    txns = [P.decode_proposal(p.data) for p, _ in proposals]
    assert [t.type for t, _ in txns][:3] == [Op.CREATE_SESSION, Op.CREATE, Op.CLOSE_SESSION]
    create, digest = txns[1]
    assert create.record.path == "/py" and create.record.data == b"zab"
    assert digest is not None and digest[0] == 2
    for (p, _), (t, d) in zip(proposals, txns, strict=True):
        assert p.zxid == t.zxid
        assert P.proposal(t, d) == p  # our PROPOSAL is the same packet
    assert f.commits[:3] == [p.zxid for p, _ in proposals[:3]]
    # The leader pings every tickTime/2 with its last proposed zxid; we echo with no sessions.
    wait_for(lambda: any(p.type == P.PacketType.PING for p, _ in f.received), 5.0, "a PING")
    ping = next(p for p, _ in f.received if p.type == P.PacketType.PING)
    assert ping.data is None and ping.authinfo is None and P.epoch_of(ping.zxid) == 1
    if rewrite:
        items = [("learner_followerinfo", f.sent[0])]
        items += [(f"leader_{i:02d}_{pkt.name.lower()}", raw)
                  for i, (pkt, raw) in enumerate(f.received)
                  if pkt.type != P.PacketType.PING or pkt is ping]
        (stream,) = [c for c in duo["node"].streams("accepted") if c.sid == 2]
        items.append(("election_stream_from_2", bytes(stream.raw)))
        write_capture("java_zab_duo.txt",
                      "Apache ZooKeeper 3.8: server 2 leading, Python as follower 1.\n"
                      "learner_followerinfo: what we sent first; leader_NN_type: the leader's\n"
                      "packets in order (one PING kept), each a bare QuorumPacket;\n"
                      "election_stream_from_2: server 2's V1 hello + framed notifications.",
                      items)

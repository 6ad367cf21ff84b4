"""A tiny deterministic in-process router for Zab core tests (not the fault simulator).

`Net` runs several `QuorumPeer` cores: it executes their actions (in order, as a real shell
must), carries election notifications and Zab packets as bytes over FIFO links, keeps a fake
disk per server (txn log, one snapshot, epoch files) and a trivial state machine whose
"tree" is the list of applied proposals. Time advances in fixed steps; every event is
delivered in FIFO order, so a test replays identically every run.

Faults offered: crash/restart a server (its disk survives), partitions (links between groups
are cut and their Zab connections closed), a slow disk (Persisted completions held back).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zookapter.protocol.consts import Op
from zookapter.protocol.txns import SetDataTxn, Txn
from zookapter.quorum import packets as P
from zookapter.quorum.config import verifier_from_text
from zookapter.quorum.election import Send as SendVote
from zookapter.quorum.election_wire import Notification, ServerState
from zookapter.quorum.packets import PacketType, QuorumPacket
from zookapter.quorum.peer import QuorumPeer, ZabConfig
from zookapter.quorum.zab_events import (
    Apply,
    Connect,
    ConnectionDown,
    ConnectionUp,
    Disconnect,
    Forward,
    LearnerRequest,
    LearnerSync,
    LoadSnapshot,
    NewerConfig,
    PacketIn,
    Persist,
    Persisted,
    PersistEpoch,
    Proposal,
    Propose,
    RoleChanged,
    Send,
    SendSnapshot,
    StartServing,
    SyncReply,
    TakeSnapshot,
    Truncate,
    VoteIn,
)


def encode_state(state: Iterable[Proposal]) -> bytes:
    return b"".join(len(p.data).to_bytes(4, "big") + p.data for p in state)


def decode_state(body: bytes) -> list[Proposal]:
    out, i = [], 0
    while i < len(body):
        n = int.from_bytes(body[i:i + 4], "big")
        out.append(Proposal.decode(body[i + 4:i + 4 + n]))
        i += 4 + n
    return out


@dataclass
class Disk:
    log: list[Proposal] = field(default_factory=list)
    snaps: list[tuple[int, tuple[Proposal, ...]]] = field(default_factory=lambda: [(0, ())])
    accepted: int | None = None
    current: int | None = None

    @property
    def snap_zxid(self) -> int:
        return self.snaps[-1][0]

    @property
    def snap_state(self) -> tuple[Proposal, ...]:
        return self.snaps[-1][1]

    def snapshot(self, zxid: int, state: Iterable[Proposal]) -> None:
        self.snaps = [s for s in self.snaps if s[0] != zxid] + [(zxid, tuple(state))]
        self.snaps.sort(key=lambda s: s[0])

    def discard_after(self, zxid: int) -> None:
        self.log = [p for p in self.log if p.zxid <= zxid]
        self.snaps = [s for s in self.snaps if s[0] <= zxid]
        assert self.snaps, "no snapshot to reload from"


class Host:
    """ZabHost over a node's fake disk."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def snapshot_size(self) -> int:
        return len(encode_state(self.node.disk.snap_state))

    def read_log(self, start_zxid: int, end_zxid: int, size_limit: int) -> list[Proposal]:
        log = self.node.disk.log
        idx = next((i for i, p in enumerate(log) if p.zxid == start_zxid), None)
        if idx is None:
            return []
        tail = log[idx:]
        if size_limit > 0 and sum(len(p.data) for p in tail) > size_limit:
            return []
        return [p for p in tail if p.zxid <= end_zxid]

    def touched_sessions(self) -> list[tuple[int, int]]:
        return list(self.node.touches)


class Node:
    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.disk = Disk()
        self.peer: QuorumPeer | None = None
        self.state: list[Proposal] = []
        self.processed = 0
        self.role: ServerState = ServerState.LOOKING
        self.serving: tuple[ServerState, int] | None = None
        self.next_zxid = 0
        self.touches: list[tuple[int, int]] = []
        self.sync_replies = 0
        self.learner_requests: list[LearnerRequest] = []
        self.snapshot_syncs = 0
        self.truncations: list[int] = []
        self.applied_committed: list[int] = []  # zxids applied as committed (not recovered)

    @property
    def alive(self) -> bool:
        return self.peer is not None

    def load(self) -> tuple[int, list[Proposal]]:
        """Recovery: snapshot + the log after it (everything logged is applied)."""
        replay = [p for p in self.disk.log if p.zxid > self.disk.snap_zxid]
        self.state = list(self.disk.snap_state) + replay
        self.processed = replay[-1].zxid if replay else self.disk.snap_zxid
        return self.processed, replay


class Net:
    def __init__(self, voters: int | Iterable[int] = 3, observers: Iterable[int] = (), *,
                 tick_time_ms: int = 100, init_limit: int = 10, sync_limit: int = 5,
                 step_ms: int = 10, **zab: object) -> None:
        ids = list(range(1, voters + 1)) if isinstance(voters, int) else list(voters)
        lines = [f"server.{i}=127.0.0.1:{20000 + i}:{30000 + i}:participant" for i in ids]
        lines += [f"server.{i}=127.0.0.1:{20000 + i}:{30000 + i}:observer" for i in observers]
        self.verifier = verifier_from_text("\n".join(lines) + "\n")
        self.config = ZabConfig(self.verifier, tick_time_ms=tick_time_ms,
                                init_limit=init_limit, sync_limit=sync_limit,
                                **zab)  # type: ignore[arg-type]
        self.nodes = {i: Node(i) for i in [*ids, *observers]}
        self.now = 0
        self.step_ms = step_ms
        self.queue: deque[tuple] = deque()
        self.conns: dict[frozenset[int], int] = {}
        self._conn_ids = 0
        self.groups: list[set[int]] | None = None
        self.slow_disks: set[int] = set()
        self.held: dict[int, list[int]] = {}
        self.trace: list[tuple[int, int, QuorumPacket]] = []  # (from, to, packet) sent

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, *sids: int) -> None:
        for sid in sids or tuple(self.nodes):
            node = self.nodes[sid]
            last, replay = node.load()
            d = node.disk
            node.peer = QuorumPeer(sid, self.config, last_zxid=last, accepted_epoch=d.accepted,
                                   current_epoch=d.current, recent=replay, host=Host(node))
            node.role, node.serving = ServerState.LOOKING, None
            self._run_actions(node, node.peer.start(self.now))

    def crash(self, sid: int) -> None:
        node = self.nodes[sid]
        node.peer = None
        node.role, node.serving = ServerState.LOOKING, None
        self.held.pop(sid, None)
        for key in [k for k in self.conns if sid in k]:
            del self.conns[key]
            (other,) = key - {sid}
            self.queue.append(("down", sid, other, None))

    def freeze(self, sid: int) -> None:
        """The process stops (SIGSTOP): nothing in or out, but its connections stay open."""
        self.nodes[sid].peer = None
        self.nodes[sid].role, self.nodes[sid].serving = ServerState.LOOKING, None

    def forward(self, sid: int, req: P.ForwardedRequest) -> None:
        """A client request reaching learner `sid`."""
        self._step(self.nodes[sid], Forward(req))

    def restart(self, sid: int) -> None:
        self.crash(sid)
        self.start(sid)

    def partition(self, *groups: Iterable[int]) -> None:
        self.groups = [set(g) for g in groups]
        for key in [k for k in self.conns if not self.reachable(*k)]:
            del self.conns[key]
            a, b = sorted(key)
            self.queue.append(("down", a, b, None))
            self.queue.append(("down", b, a, None))

    def heal(self) -> None:
        self.groups = None

    def release_disk(self, sid: int) -> None:
        self.slow_disks.discard(sid)
        for token in self.held.pop(sid, []):
            self.queue.append(("persisted", sid, sid, token))

    def reachable(self, a: int, b: int) -> bool:
        if not (self.nodes[a].alive and self.nodes[b].alive):
            return False
        return self.groups is None or any(a in g and b in g for g in self.groups)

    # -- time -----------------------------------------------------------------------------

    def deliver(self, rounds: int = 20) -> None:
        """Deliver what is queued, then what that produced, and so on, for at most `rounds`
        generations: messages answered at once by both sides (an observer and a lagging
        LOOKING voter do that in FastLeaderElection) need time to pass, as on a network."""
        for _ in range(rounds):
            if not self.queue:
                return
            for _ in range(len(self.queue)):
                self._deliver(*self.queue.popleft())

    def run(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.deliver()
            self.now += self.step_ms
            for node in self.nodes.values():
                if node.peer is not None:
                    self._run_actions(node, node.peer.tick(self.now))
        self.deliver()

    def run_until(self, pred: Callable[[], bool], timeout_ms: int = 20_000) -> None:
        end = self.now + timeout_ms
        self.deliver()
        while not pred():
            if self.now >= end:
                raise AssertionError(f"condition not met after {timeout_ms} ms: {self.status()}")
            self.run(self.step_ms)

    # -- queries --------------------------------------------------------------------------

    def leader(self) -> Node | None:
        found = [n for n in self.nodes.values() if n.serving and n.role == ServerState.LEADING]
        return found[0] if len(found) == 1 else None

    def stable(self, sids: Iterable[int] | None = None) -> bool:
        """One serving leader and every given (default: live) server serving under it."""
        lead = self.leader()
        if lead is None:
            return False
        epoch = lead.serving[1]
        sids = [s for s in self.nodes if self.nodes[s].alive] if sids is None else sids
        return all(self.nodes[s].serving is not None and self.nodes[s].serving[1] == epoch
                   for s in sids)

    def status(self) -> str:
        return "; ".join(f"{s}:{n.role.name if n.alive else 'DOWN'}"
                         f"{'*' if n.serving else ''} 0x{n.processed:x}"
                         for s, n in self.nodes.items())

    def zxids(self, sid: int) -> list[int]:
        return [p.zxid for p in self.nodes[sid].state]

    # -- the state machine --------------------------------------------------------------

    def write(self, data: bytes, via: int | None = None) -> int:
        """A client write prepped by the leader (or forwarded by learner `via`)."""
        if via is not None:
            self.forward(via, P.ForwardedRequest(0x1000 + via, 1, Op.SET_DATA, data))
            return -1
        lead = self.leader()
        assert lead is not None, self.status()
        return self._propose(lead, data)

    def _propose(self, lead: Node, data: bytes, session: int = 0x42) -> int:
        zxid = lead.next_zxid
        lead.next_zxid += 1
        txn = Txn(session, 1, zxid, 1_700_000_000_000 + self.now, Op.SET_DATA,
                  SetDataTxn("/x", data, zxid & 0xFFFF))
        txn.digest = zxid * 7
        self._step(lead, Propose((txn,)))
        return zxid

    # -- plumbing ---------------------------------------------------------------------------

    def _step(self, node: Node, event: object) -> None:
        assert node.peer is not None
        self._run_actions(node, node.peer.step(event, self.now))  # type: ignore[arg-type]

    def _link(self, a: int, b: int) -> int | None:
        return self.conns.get(frozenset((a, b)))

    def _deliver(self, kind: str, src: int, dst: int, payload: object, cid: int = 0) -> None:
        node = self.nodes[dst]
        if node.peer is None:
            return
        if kind == "vote":
            if self.reachable(src, dst):
                note = Notification.decode(payload)  # type: ignore[arg-type]
                self._step(node, VoteIn(src, note))
        elif kind == "persisted":
            self._step(node, Persisted(payload))  # type: ignore[arg-type]
        elif kind == "up":
            if self._link(src, dst) == cid:
                self._step(node, ConnectionUp(src))
        elif kind == "down":
            self._step(node, ConnectionDown(src))
        elif kind in ("pkt", "snap"):
            if self._link(src, dst) != cid:
                return
            if kind == "pkt":
                pkt = QuorumPacket.decode(payload)  # type: ignore[arg-type]
                self._step(node, PacketIn(src, pkt))
            else:
                zxid, body = payload  # type: ignore[misc]
                self._step(node, PacketIn(src, P.simple(PacketType.SNAP, zxid), body))

    def _run_actions(self, node: Node, actions: list) -> None:
        for a in actions:
            self._action(node, a)

    def _action(self, node: Node, a: object) -> None:  # noqa: C901 - one branch per action
        sid = node.sid
        if isinstance(a, SendVote):
            if self.reachable(sid, a.to):
                self.queue.append(("vote", sid, a.to, a.notification.encode()))
        elif isinstance(a, Send):
            cid = self._link(sid, a.to)
            self.trace.append((sid, a.to, a.packet))
            if cid is not None:
                self.queue.append(("pkt", sid, a.to, a.packet.encode(), cid))
        elif isinstance(a, SendSnapshot):
            assert node.processed == a.zxid, (hex(node.processed), hex(a.zxid))
            cid = self._link(sid, a.to)
            node.snapshot_syncs += 1
            self.trace.append((sid, a.to, P.simple(PacketType.SNAP, a.zxid)))
            if cid is not None:
                self.queue.append(("snap", sid, a.to, (a.zxid, encode_state(node.state)), cid))
        elif isinstance(a, Connect):
            if self.reachable(sid, a.sid):
                self._conn_ids += 1
                self.conns[frozenset((sid, a.sid))] = self._conn_ids
                self.queue.append(("up", a.sid, sid, None, self._conn_ids))
            else:
                self.queue.append(("down", a.sid, sid, None))
        elif isinstance(a, Disconnect):
            if self.conns.pop(frozenset((sid, a.sid)), None) is not None:
                self.queue.append(("down", sid, a.sid, None))
        elif isinstance(a, Persist):
            node.disk.log.extend(a.proposals)
            if sid in self.slow_disks:
                self.held.setdefault(sid, []).append(a.token)
            else:
                self.queue.append(("persisted", sid, sid, a.token))
        elif isinstance(a, Apply):
            for p in a.proposals:
                assert p.zxid > node.processed, (sid, hex(p.zxid), hex(node.processed))
                node.state.append(p)
                node.processed = p.zxid
                if not a.recovered:
                    node.applied_committed.append(p.zxid)
        elif isinstance(a, Truncate):
            d = node.disk
            d.log = [p for p in d.log if p.zxid <= a.zxid]
            node.load()
            assert all(p.zxid <= a.zxid for p in node.state), "snapshot past the TRUNC"
            node.processed = a.zxid
            node.truncations.append(a.zxid)
        elif isinstance(a, LoadSnapshot):
            node.disk.discard_after(a.zxid)
            node.disk.log = []
            node.state = decode_state(a.body)
            node.processed = a.zxid
        elif isinstance(a, TakeSnapshot):
            node.disk.snapshot(node.processed, node.state)
        elif isinstance(a, PersistEpoch):
            if a.accepted is not None:
                node.disk.accepted = a.accepted
            if a.current is not None:
                node.disk.current = a.current
        elif isinstance(a, RoleChanged):
            node.role = a.state
            node.serving = None
        elif isinstance(a, StartServing):
            node.serving = (a.state, a.epoch)
            if a.state == ServerState.LEADING:
                node.processed = a.zxid
                node.next_zxid = a.zxid + 1
        elif isinstance(a, LearnerRequest):
            node.learner_requests.append(a)
            if a.request.type == Op.SYNC:
                self._step(node, LearnerSync(a.sid))
            else:
                self._propose(node, a.request.body, a.request.session_id)
        elif isinstance(a, SyncReply):
            node.sync_replies += 1
        elif isinstance(a, NewerConfig):
            pass
        # TouchSessions, Revalidate, RevalidateResult: recorded by tests through trace

"""A toy replicated znode store for testing the simulator and its checkers (not ZAB).

It has the shape the real quorum peer has — `step(event) -> actions`, `tick(now_ms) ->
actions`, durable state only through `Write` actions answered by `Persisted` — and a
protocol that is small but, unless deliberately broken, correct under crashes, partitions
and lost unsynced writes:

- The leader of epoch e is fixed: `nodes[e % len(nodes)]`. A node that hears nothing from a
  leader for its (random) election timeout becomes a candidate for the next epoch it leads
  and solicits promises. A node promises (durably) any higher epoch it is solicited for and
  answers with its log and the epoch of the last log it accepted.
- A leader with promises from a quorum adopts the log with the highest (accepted epoch, last
  zxid) — ZAB's recovery rule — and syncs every follower to it over their connection (full
  log; followers truncate to the common prefix). Followers persist the log, then the accepted
  epoch, then ack.
- Every client request, reads included, is a log entry with zxid epoch<<32|counter. An entry
  commits when a quorum has acked it durably in the current epoch; the leader then applies it
  and answers the client. A reconnected follower is synced again from scratch.

`Flaws` breaks it on purpose so that tests can check the checkers catch the bug:
`ack_early` answers clients before the entry is replicated, `fsync_lies` treats writes as
durable as soon as they are issued (acks before the fsync completes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from zookapter.sim import (
    Applied,
    Binding,
    DiskImage,
    NemesisConfig,
    NetworkConfig,
    NodeContext,
    Outcome,
    Role,
    Scenario,
    SimConfig,
    Torn,
    WorkloadConfig,
    ZnodeOp,
    znode_model,
)
from zookapter.sim.history import FAIL, INFO, OK, Redirect

ELECTION_TIMEOUT_MS = 150
TICK_MS = 20


@dataclass(frozen=True, slots=True)
class Flaws:
    ack_early: bool = False
    fsync_lies: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    zxid: int
    op: ZnodeOp


# -- messages --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Solicit:
    epoch: int


@dataclass(frozen=True, slots=True)
class Promise:
    epoch: int
    accepted: int
    log: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Sync:
    epoch: int
    log: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class Propose:
    epoch: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class Ack:
    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Commit:
    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Newer:
    epoch: int


# -- events and actions ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Received:
    src: int
    msg: Any


@dataclass(frozen=True, slots=True)
class Disconnected:
    peer: int


@dataclass(frozen=True, slots=True)
class Persisted:
    token: int


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    op: ZnodeOp


@dataclass(frozen=True, slots=True)
class Send:
    dst: int
    msg: Any
    open_: bool = False


@dataclass(frozen=True, slots=True)
class Write:
    """Truncate/append the log, then fsync it; `promised`/`accepted` epoch files are written
    before / after the log sync, and `token` comes back as Persisted when all is durable."""
    token: int
    truncate_to: int | None = None
    entries: tuple[Entry, ...] = ()
    promised: int | None = None
    accepted: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Report:
    fact: Any


FOLLOWING, CANDIDATE, LEADING = "following", "candidate", "leading"


@dataclass
class _LeaderState:
    acked: dict[int, int] = field(default_factory=dict)
    synced: set[int] = field(default_factory=set)
    pending: dict[int, int] = field(default_factory=dict)  # zxid -> request id
    counter: int = 0
    spec: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # for ack_early


class ToyNode:
    def __init__(self, node_id: int, nodes: tuple[int, ...], image: DiskImage, now_ms: int,
                 rng: Random, flaws: Flaws) -> None:
        self.id = node_id
        self.nodes = nodes
        self.quorum = len(nodes) // 2 + 1
        self.rng = rng
        self.flaws = flaws
        self.now = now_ms
        self.promised: int = image.file("promised", 0)
        self.accepted: int = image.file("accepted", 0)
        self.promised = max(self.promised, self.accepted)
        records = list(image.log("log"))
        self.torn = bool(records) and isinstance(records[-1], Torn)
        if self.torn:
            records.pop()  # a torn tail is discarded (boot() cuts it off the disk too)
        self.log: list[Entry] = records
        self.out: list[Any] = []
        self._tokens = 0
        self._waiting: dict[int, Callable[[], None]] = {}
        self.commit = 0
        self.applied = 0  # entries of self.log applied
        self.state: dict[str, tuple[bytes, int]] = {}
        self.role = FOLLOWING
        self.leader_id: int | None = None
        self.synced_epoch = -1  # epoch whose Sync this follower accepted (Proposals need it)
        self.seen_epoch = self.promised
        self.last_heard = now_ms
        self.timeout = self._new_timeout()
        self.promises: dict[int, Promise] = {}
        self.lead: _LeaderState | None = None

    # -- driver interface ----------------------------------------------------------------

    def boot(self, now_ms: int) -> list[Any]:
        """Right after recovery: cut a torn tail so that new appends follow clean data."""
        if self.torn:
            self._write(lambda: None, truncate_to=len(self.log))
        return self._flush()

    def step(self, event: Any) -> list[Any]:
        _EVENTS[type(event)](self, event)
        return self._flush()

    def tick(self, now_ms: int) -> list[Any]:
        self.now = now_ms
        if self.role == LEADING:
            self._heartbeat()
        elif now_ms - self.last_heard > self.timeout and not self._own_promise_pending():
            self._suspect()
        return self._flush()

    def _flush(self) -> list[Any]:
        out, self.out = self.out, []
        return out

    # -- helpers -------------------------------------------------------------------------

    def leader_of(self, epoch: int) -> int:
        return self.nodes[epoch % len(self.nodes)]

    def _new_timeout(self) -> int:
        return ELECTION_TIMEOUT_MS + int(self.rng.random() * ELECTION_TIMEOUT_MS)

    def _last_zxid(self) -> int:
        return self.log[-1].zxid if self.log else 0

    def _send(self, dst: int, msg: Any, open_: bool = False) -> None:
        self.out.append(Send(dst, msg, open_))

    def _write(self, then: Callable[[], None], **kw: Any) -> None:
        self._tokens += 1
        self.out.append(Write(self._tokens, **kw))
        if self.flaws.fsync_lies:
            then()
        else:
            self._waiting[self._tokens] = then

    def _on_persisted(self, event: Persisted) -> None:
        then = self._waiting.pop(event.token, None)
        if then is not None:
            then()

    # -- elections -----------------------------------------------------------------------

    def _own_promise_pending(self) -> bool:
        """A candidate waits for its own disk: giving up meanwhile livelocks a slow disk."""
        return self.role == CANDIDATE and self.id not in self.promises

    def _suspect(self) -> None:
        """No leader heard from: stand for the next epoch we lead."""
        epoch = max(self.promised, self.seen_epoch) + 1
        while self.leader_of(epoch) != self.id:
            epoch += 1
        self.last_heard, self.timeout = self.now, self._new_timeout()
        self._promise(epoch)
        for peer in self.nodes:
            if peer != self.id:
                self._send(peer, Solicit(epoch), open_=True)

    def _promise(self, epoch: int) -> None:
        self._step_down(epoch)
        self.promised = epoch
        if self.leader_of(epoch) == self.id:
            self.role = CANDIDATE
            self.promises = {}
        self._write(lambda: self._promised(epoch), promised=epoch)

    def _on_solicit(self, src: int, msg: Solicit) -> None:
        if msg.epoch > self.promised:
            self.last_heard = self.now  # give the candidate its chance
            self._promise(msg.epoch)
        elif msg.epoch < self.promised:
            self._send(src, Newer(self.promised))

    def _promised(self, epoch: int) -> None:
        if self.promised != epoch:
            return
        promise = Promise(epoch, self.accepted, tuple(self.log))
        if self.leader_of(epoch) != self.id:
            self._send(self.leader_of(epoch), promise, open_=True)
        elif self.role == CANDIDATE:
            self._collect(self.id, promise)

    def _step_down(self, epoch: int) -> None:
        if self.role == LEADING and self.lead is not None:
            for request_id in self.lead.pending.values():
                self.out.append(Reply(request_id, Outcome(INFO, "leader changed")))
        self.lead = None
        self.role = FOLLOWING
        self.seen_epoch = max(self.seen_epoch, epoch)

    def _on_promise(self, src: int, msg: Promise) -> None:
        if msg.epoch < self.promised:
            self._send(src, Newer(self.promised))
        elif msg.epoch > self.promised or self.leader_of(msg.epoch) != self.id:
            return  # never solicited
        elif self.role == CANDIDATE:
            self._collect(src, msg)
        elif self.role == LEADING and self.lead is not None:
            self._sync_follower(src)

    def _collect(self, src: int, promise: Promise) -> None:
        self.promises[src] = promise
        if self.id in self.promises and len(self.promises) >= self.quorum:
            best = max(self.promises.values(),
                       key=lambda p: (p.accepted, p.log[-1].zxid if p.log else 0))
            self._become_leader(best.log)

    def _become_leader(self, log: tuple[Entry, ...]) -> None:
        epoch = self.promised
        self.role = LEADING
        self.lead = _LeaderState()
        self.out.append(Report(Role(LEADING, epoch)))
        self._adopt(log, epoch, lambda: self._leader_synced(epoch, log))
        for peer in self.nodes:
            if peer != self.id:
                self._sync_follower(peer)
        if self.flaws.ack_early:
            self.lead.spec = dict(self.state)
            for entry in self.log[self.applied:]:
                _apply_op(self.lead.spec, entry.op)

    def _leader_synced(self, epoch: int, log: tuple[Entry, ...]) -> None:
        if self.role == LEADING and self.promised == epoch and self.lead is not None:
            self._ack(self.id, log[-1].zxid if log else 0)

    def _adopt(self, log: tuple[Entry, ...], epoch: int, then: Callable[[], None],
               promised: int | None = None) -> None:
        """Make our log equal to `log` (truncating to the common prefix) and accept `epoch`."""
        common = 0
        limit = min(len(log), len(self.log))
        while common < limit and log[common] == self.log[common]:
            common += 1
        if common < self.applied:
            raise AssertionError(f"node {self.id} would truncate applied entries")
        self.log[common:] = log[common:]
        self.accepted = epoch
        self._write(then, truncate_to=common, entries=tuple(log[common:]), accepted=epoch,
                    promised=promised)

    # -- leading -------------------------------------------------------------------------

    def _sync_follower(self, peer: int) -> None:
        assert self.lead is not None
        self.lead.synced.add(peer)
        self._send(peer, Sync(self.promised, tuple(self.log), self.commit), open_=True)

    def _heartbeat(self) -> None:
        assert self.lead is not None
        for peer in self.nodes:
            if peer == self.id:
                continue
            if peer in self.lead.synced:
                self._send(peer, Commit(self.promised, self.commit))
            else:
                self._sync_follower(peer)

    def _on_request(self, event: Request) -> None:
        if self.role != LEADING or self.lead is None:
            hint = self.leader_id if self.role == FOLLOWING else None
            reason = "no leader" if hint is None else Redirect(hint)
            self.out.append(Reply(event.request_id, Outcome(FAIL, reason)))
            return
        lead, epoch = self.lead, self.promised
        lead.counter += 1
        entry = Entry((epoch << 32) | lead.counter, event.op)
        self.log.append(entry)
        lead.pending[entry.zxid] = event.request_id
        self._write(lambda: self._leader_synced(epoch, (entry,)), entries=(entry,))
        for peer in lead.synced:
            self._send(peer, Propose(epoch, entry))
        if self.flaws.ack_early:
            output = _apply_op(lead.spec, entry.op)
            del lead.pending[entry.zxid]
            self.out.append(Reply(event.request_id, Outcome(OK, output, entry.zxid)))

    def _on_ack(self, src: int, msg: Ack) -> None:
        if msg.epoch == self.promised and self.role == LEADING:
            self._ack(src, msg.zxid)

    def _ack(self, node: int, zxid: int) -> None:
        lead = self.lead
        assert lead is not None
        if zxid <= lead.acked.get(node, -1):
            return
        lead.acked[node] = zxid
        if len(lead.acked) < self.quorum:
            return
        agreed = sorted(lead.acked.values(), reverse=True)[self.quorum - 1]
        if agreed > self.commit:
            self.commit = agreed
            self._apply_committed()
            for peer in lead.synced:
                self._send(peer, Commit(self.promised, self.commit))

    def _on_disconnected(self, event: Disconnected) -> None:
        if self.lead is not None:
            self.lead.synced.discard(event.peer)
            self.lead.acked.pop(event.peer, None)

    # -- following -----------------------------------------------------------------------

    def _from_leader(self, src: int, epoch: int) -> bool:
        """Accept a leader message of `epoch`? Tell stale leaders about the newer epoch."""
        if epoch < self.promised:
            self._send(src, Newer(self.promised))
            return False
        if epoch == self.promised and self.role != FOLLOWING:
            return False  # our own epoch: only we lead it
        self.last_heard = self.now
        return True

    def _on_sync(self, src: int, msg: Sync) -> None:
        if not self._from_leader(src, msg.epoch):
            return
        if self.leader_of(msg.epoch) != src:
            raise AssertionError(f"node {src} syncs epoch {msg.epoch}, led by another")
        raised = msg.epoch > self.promised
        if raised:
            self._step_down(msg.epoch)
            self.promised = msg.epoch
        self.leader_id, self.synced_epoch = src, msg.epoch
        epoch, last = msg.epoch, (msg.log[-1].zxid if msg.log else 0)
        self._adopt(msg.log, epoch, lambda: self._ack_leader(epoch, last),
                    promised=epoch if raised else None)
        self._learn_commit(msg.commit)

    def _on_propose(self, src: int, msg: Propose) -> None:
        if not self._from_leader(src, msg.epoch) or self.synced_epoch != msg.epoch:
            return
        if msg.entry.zxid <= self._last_zxid():
            raise AssertionError(f"node {self.id}: proposal {msg.entry.zxid:x} out of order")
        self.log.append(msg.entry)
        epoch, zxid = msg.epoch, msg.entry.zxid
        self._write(lambda: self._ack_leader(epoch, zxid), entries=(msg.entry,))

    def _ack_leader(self, epoch: int, zxid: int) -> None:
        if self.promised == epoch and self.synced_epoch == epoch and self.leader_id is not None:
            self._send(self.leader_id, Ack(epoch, zxid))

    def _on_commit(self, src: int, msg: Commit) -> None:
        if self._from_leader(src, msg.epoch) and self.synced_epoch == msg.epoch:
            self._learn_commit(msg.zxid)

    def _learn_commit(self, zxid: int) -> None:
        if zxid > self.commit:
            self.commit = zxid
            self._apply_committed()

    def _on_newer(self, src: int, msg: Newer) -> None:
        if msg.epoch > self.promised:
            self._step_down(msg.epoch)
            self.last_heard = self.now

    # -- applying ------------------------------------------------------------------------

    def _apply_committed(self) -> None:
        pending = self.lead.pending if self.lead is not None else {}
        while self.applied < len(self.log) and self.log[self.applied].zxid <= self.commit:
            entry = self.log[self.applied]
            self.applied += 1
            output = _apply_op(self.state, entry.op)
            self.out.append(Report(Applied(entry.zxid, entry.op)))
            request_id = pending.pop(entry.zxid, None)
            if request_id is not None:
                self.out.append(Reply(request_id, Outcome(OK, output, entry.zxid)))

    def _on_received(self, event: Received) -> None:
        _MESSAGES[type(event.msg)](self, event.src, event.msg)


def _apply_op(state: dict[str, tuple[bytes, int]], op: ZnodeOp) -> Any:
    """The toy's own znode store (written independently of the checker's model)."""
    node = state.get(op.path)
    if op.f == "get":
        return (znode_model.NO_NODE,) if node is None else (0, node[0], node[1])
    if op.f == "create":
        if node is not None:
            return (znode_model.NODE_EXISTS,)
        state[op.path] = (op.data or b"", 0)
        return (0,)
    if node is None:
        return (znode_model.NO_NODE,)
    if op.version not in (-1, node[1]):
        return (znode_model.BAD_VERSION,)
    if op.f == "delete":
        del state[op.path]
        return (0,)
    state[op.path] = (op.data or b"", node[1] + 1)
    return (0, node[1] + 1)


_EVENTS: dict[type, Callable[[ToyNode, Any], None]] = {
    Received: ToyNode._on_received,
    Disconnected: ToyNode._on_disconnected,
    Persisted: ToyNode._on_persisted,
    Request: ToyNode._on_request,
}

_MESSAGES: dict[type, Callable[[ToyNode, int, Any], None]] = {
    Solicit: ToyNode._on_solicit,
    Promise: ToyNode._on_promise,
    Sync: ToyNode._on_sync,
    Propose: ToyNode._on_propose,
    Ack: ToyNode._on_ack,
    Commit: ToyNode._on_commit,
    Newer: ToyNode._on_newer,
}


# -- binding and scenario ---------------------------------------------------------------------

def _do_send(ctx: NodeContext, a: Send) -> None:
    ctx.send(a.dst, a.msg, a.open_)


def _do_write(ctx: NodeContext, a: Write) -> None:
    if a.truncate_to is not None:
        ctx.truncate("log", a.truncate_to)
    if a.entries:
        ctx.append("log", a.entries)
    if a.promised is not None:
        ctx.put("promised", a.promised)
    done = Persisted(a.token)
    if a.accepted is None:
        ctx.fsync("log", done)
    else:
        ctx.fsync("log")
        ctx.put("accepted", a.accepted, done)


def _do_reply(ctx: NodeContext, a: Reply) -> None:
    ctx.reply(a.request_id, a.outcome)


def _do_report(ctx: NodeContext, a: Report) -> None:
    ctx.observe(a.fact)


def _describe(event: Any) -> str:
    if isinstance(event, Received):
        msg = event.msg
        return f"{type(msg).__name__}(e={msg.epoch}) from {event.src}"
    return repr(event)


BINDING = Binding(
    actions={Send: _do_send, Write: _do_write, Reply: _do_reply, Report: _do_report},
    message=Received,
    disconnected=lambda peer, channel: Disconnected(peer),
    request=Request,
    boot=ToyNode.boot,
    tick_interval_ms=TICK_MS,
    describe=_describe,
)


# Power-loss heavy: many crashes and slow disks, so unsynced data is often at stake.
CRASHY = NemesisConfig(duration_ms=1_500, weights={"crash": 4.0, "restart": 3.0, "disk": 2.0,
                                                   "partition": 1.0, "heal": 1.0})


def make_scenario(flaws: Flaws = Flaws(), *, nodes: tuple[int, ...] = (1, 2, 3),
                  duration_ms: int = 1_500, name: str = "toy",
                  ref: str | None = "tests/sim_toy.py:SCENARIO",
                  nemesis: NemesisConfig | None = None) -> Scenario:
    def factory(node_id: int, image: DiskImage, now_ms: int, rng: Random) -> ToyNode:
        return ToyNode(node_id, nodes, image, now_ms, rng, flaws)

    return Scenario(
        name=name,
        binding=BINDING,
        factory=factory,
        sim=SimConfig(nodes=nodes, network=NetworkConfig(connections=True)),
        nemesis=nemesis or NemesisConfig(duration_ms=duration_ms),
        workload=WorkloadConfig(clients=3, end_ms=duration_ms, timeout_ms=300),
        settle_ms=800,
        ref=ref,
    )


SCENARIO = make_scenario()
ACK_EARLY = make_scenario(Flaws(ack_early=True), name="toy-ack-early",
                          ref="tests/sim_toy.py:ACK_EARLY")
FSYNC_LIES = make_scenario(Flaws(fsync_lies=True), name="toy-fsync-lies",
                           ref="tests/sim_toy.py:FSYNC_LIES", nemesis=CRASHY)
CRASHY_SCENARIO = make_scenario(name="toy-crashy", ref="tests/sim_toy.py:CRASHY_SCENARIO",
                                nemesis=CRASHY)

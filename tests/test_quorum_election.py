"""FastLeaderElection core: unit tests and transcript scenarios.

The transcripts in tests/testdata/quorum/election_*.txt drive several `Election` cores over
a simulated network, in the style of etcd raft's interaction tests. Each block is a command,
a `----` line and the expected output, ending at a blank line; `#` lines are comments.
Run `pytest tests/test_quorum_election.py --rewrite` to regenerate the expected outputs
(then read the diff!).

Commands:
  cluster voters=1,2,3 [observers=4] [groups=1:2|3] [weights=3:0]
                                   fresh cores at time 0 (zxid 0, epoch 0)
  server ID [zxid=HEX] [epoch=N]   set a server's last zxid / current epoch (before start)
  start ID... | start all          begin an election round (also to look again)
  deliver [A->B] [count=N]         deliver queued messages in FIFO order (A or B may be *);
                                   without count, until the network is quiet
  drop [A->B]                      lose queued messages
  tick MS                          advance the clock by MS and tick every server
  partition 1 2 | 3                only servers in the same group can talk
  heal                             remove the partition
  inject A->B STATE leader=L [zxid=HEX] [round=N] [peerEpoch=N]
                                   queue a hand-made notification
  status                           state, leader, round and proposal of every server
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zookapter.quorum.config import (
    LONG_MIN,
    HierarchicalQuorumVerifier,
    verifier_from_text,
)
from zookapter.quorum.election import Elected, Election, NewerConfig, Send, Vote
from zookapter.quorum.election_wire import Notification, ServerState

TESTDATA = Path(__file__).parent / "testdata" / "quorum"


# --- the simulated network -------------------------------------------------------------------

def _fmt_note(n: Notification) -> str:
    leader = "none" if n.leader == LONG_MIN else str(n.leader)
    zxid = "none" if n.zxid == LONG_MIN else f"0x{n.zxid & (2**64 - 1):x}"
    epoch = "none" if n.peer_epoch == LONG_MIN else str(n.peer_epoch)
    return (f"{ServerState(n.state).name} leader={leader} zxid={zxid} "
            f"round={n.election_epoch} peerEpoch={epoch}")


def _fmt_vote(v: Vote) -> str:
    return f"leader={v.leader} zxid=0x{v.zxid:x} round={v.election_epoch} peerEpoch={v.peer_epoch}"


class Sim:
    def __init__(self) -> None:
        self.cores: dict[int, Election] = {}
        self.queue: list[tuple[int, int, Notification]] = []
        self.groups: list[set[int]] | None = None
        self.now = 0
        self.verifier = None

    def connected(self, a: int, b: int) -> bool:
        return self.groups is None or any(a in g and b in g for g in self.groups)

    def _emit(self, sid: int, actions: list, out: list[str], indent: str) -> None:
        for a in actions:
            if isinstance(a, Send):
                if self.connected(sid, a.to):
                    self.queue.append((sid, a.to, a.notification))
                    out.append(f"{indent}{sid}->{a.to} {_fmt_note(a.notification)}")
                else:
                    out.append(f"{indent}{sid}->{a.to} {_fmt_note(a.notification)} (lost)")
            elif isinstance(a, Elected):
                out.append(f"{indent}{sid}: {a.state.name} {_fmt_vote(a.vote)}")
            elif isinstance(a, NewerConfig):
                out.append(f"{indent}{sid}: newer config 0x{a.verifier.version:x} from "
                           f"{a.sender}")
            else:  # pragma: no cover
                raise AssertionError(f"unknown action {a!r}")

    # -- commands ----------------------------------------------------------------------------

    def cmd_cluster(self, args: list[str], kv: dict[str, str]) -> list[str]:
        voters = [int(x) for x in kv["voters"].split(",")]
        observers = [int(x) for x in kv.get("observers", "").split(",") if x]
        lines = [f"server.{i}=127.0.0.1:{2000 + i}:{3000 + i}:participant" for i in voters]
        lines += [f"server.{i}=127.0.0.1:{2000 + i}:{3000 + i}:observer" for i in observers]
        if "groups" in kv:
            for gid, group in enumerate(kv["groups"].split("|"), start=1):
                lines.append(f"group.{gid}={group}")
        for item in kv.get("weights", "").split(","):
            if item:
                sid, w = item.split(":")
                lines.append(f"weight.{sid}={w}")
        self.verifier = verifier_from_text("\n".join(lines) + "\n")
        self.cores = {i: Election(i, self.verifier, 0, 0) for i in voters + observers}
        self.queue, self.groups, self.now = [], None, 0
        kind = "hierarchical" if isinstance(self.verifier, HierarchicalQuorumVerifier) \
            else "majority"
        return [f"{kind} quorum of {len(voters)} voters, {len(observers)} observers"]

    def cmd_server(self, args: list[str], kv: dict[str, str]) -> list[str]:
        core = self.cores[int(args[0])]
        if "zxid" in kv:
            core.last_zxid = int(kv["zxid"], 16)
        if "epoch" in kv:
            core.current_epoch = int(kv["epoch"])
        return ["ok"]

    def cmd_start(self, args: list[str], kv: dict[str, str]) -> list[str]:
        ids = sorted(self.cores) if args == ["all"] else [int(a) for a in args]
        out: list[str] = []
        for sid in ids:
            actions = self.cores[sid].start(self.now)
            out.append(f"{sid}: start round={self.cores[sid].logical_clock}")
            self._emit(sid, actions, out, "  ")
        return out

    def _matches(self, pattern: str | None, a: int, b: int) -> bool:
        if pattern is None:
            return True
        src, dst = pattern.split("->")
        return src in ("*", str(a)) and dst in ("*", str(b))

    def cmd_deliver(self, args: list[str], kv: dict[str, str]) -> list[str]:
        pattern = args[0] if args else None
        limit = int(kv["count"]) if "count" in kv else 10_000
        out: list[str] = []
        delivered = 0
        while delivered < limit:
            idx = next((i for i, (a, b, _) in enumerate(self.queue)
                        if self._matches(pattern, a, b)), None)
            if idx is None:
                break
            a, b, n = self.queue.pop(idx)
            delivered += 1
            if not self.connected(a, b):
                out.append(f"{a}->{b} {_fmt_note(n)} (lost)")
                continue
            out.append(f"{a}->{b} {_fmt_note(n)}")
            self._emit(b, self.cores[b].step(a, n, self.now), out, "  ")
        if delivered >= 10_000:
            raise AssertionError("the network never went quiet")
        return out or ["nothing to deliver"]

    def cmd_drop(self, args: list[str], kv: dict[str, str]) -> list[str]:
        pattern = args[0] if args else None
        kept = [m for m in self.queue if not self._matches(pattern, m[0], m[1])]
        dropped = len(self.queue) - len(kept)
        self.queue = kept
        return [f"dropped {dropped}"]

    def cmd_tick(self, args: list[str], kv: dict[str, str]) -> list[str]:
        self.now += int(args[0])
        out = [f"now={self.now}"]
        for sid in sorted(self.cores):
            self._emit(sid, self.cores[sid].tick(self.now), out, "  ")
        return out

    def cmd_partition(self, args: list[str], kv: dict[str, str]) -> list[str]:
        self.groups = [set(map(int, g.split())) for g in " ".join(args).split("|")]
        return ["ok"]

    def cmd_heal(self, args: list[str], kv: dict[str, str]) -> list[str]:
        self.groups = None
        return ["ok"]

    def cmd_inject(self, args: list[str], kv: dict[str, str]) -> list[str]:
        a, b = (int(x) for x in args[0].split("->"))
        n = Notification(ServerState[args[1]], int(kv["leader"]), int(kv.get("zxid", "0"), 16),
                         int(kv.get("round", "1")), int(kv.get("peerEpoch", "0")), 2,
                         self.verifier.to_bytes())
        self.queue.append((a, b, n))
        return [f"{a}->{b} {_fmt_note(n)} queued"]

    def cmd_status(self, args: list[str], kv: dict[str, str]) -> list[str]:
        out = []
        for sid, c in sorted(self.cores.items()):
            p = c.proposal
            mode = "finalizing" if c.finalizing else "running" if c.running \
                else "idle" if c.state == ServerState.LOOKING else "done"
            leader = "none" if p.leader == LONG_MIN else p.leader
            out.append(f"{sid}: {c.state.name} {mode} round={c.logical_clock} "
                       f"proposal={leader} votes={sorted(c.recv_set)} "
                       f"current={_fmt_vote(c.current_vote)}")
        return out

    def run(self, line: str) -> list[str]:
        words = line.split()
        args = [w for w in words[1:] if "=" not in w]
        kv = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        handler = getattr(self, "cmd_" + words[0], None)
        if handler is None:
            raise AssertionError(f"unknown transcript command {words[0]!r}")
        return handler(args, kv)


# --- transcript files ------------------------------------------------------------------------

def _parse_transcript(text: str) -> tuple[list[tuple[list[str], str, list[str]]], list[str]]:
    """-> ([(comment/blank lines before, command, expected lines)], trailing lines)."""
    blocks = []
    lines = text.split("\n")
    i, prefix = 0, []
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            prefix.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise AssertionError(f"line {i + 1}: command without ---- separator: {line!r}")
        j = i + 2
        while j < len(lines) and lines[j].strip():
            j += 1
        blocks.append((prefix, line, lines[i + 2:j]))
        prefix, i = [], j
    return blocks, prefix


def run_transcript(path: Path) -> tuple[str, str]:
    """Run a transcript; return (text as written, text with the actual outputs)."""
    text = path.read_text()
    blocks, trailer = _parse_transcript(text)
    sim = Sim()
    lines: list[str] = []
    for prefix, command, _expected in blocks:
        lines += [*prefix, command, "----", *sim.run(command)]
    return text, "\n".join(lines + trailer)


TRANSCRIPTS = sorted(TESTDATA.glob("election_*.txt"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path, rewrite: bool) -> None:
    written, actual = run_transcript(path)
    if rewrite:
        path.write_text(actual)
        return
    assert actual == written, f"{path.name} differs; rerun with --rewrite and review the diff"


# --- unit tests ------------------------------------------------------------------------------

def _qv(n: int = 3, observers: tuple[int, ...] = ()):
    lines = [f"server.{i}=127.0.0.1:{2000 + i}:{3000 + i}" for i in range(1, n + 1)]
    lines += [f"server.{i}=127.0.0.1:{2000 + i}:{3000 + i}:observer" for i in observers]
    return verifier_from_text("\n".join(lines) + "\n")


def test_vote_order_epoch_then_zxid_then_sid() -> None:
    from zookapter.quorum.election import total_order_beats
    qv = _qv()
    assert total_order_beats(qv, (1, 0, 2), (3, 0x100000009, 1))  # epoch first
    assert total_order_beats(qv, (1, 0x100000002, 1), (3, 0x100000001, 1))  # then zxid
    assert total_order_beats(qv, (3, 5, 1), (2, 5, 1))  # then sid
    assert not total_order_beats(qv, (2, 5, 1), (2, 5, 1))


def test_zero_weight_server_never_wins() -> None:
    from zookapter.quorum.election import total_order_beats
    qv = verifier_from_text("server.1=h:1:2\nserver.2=h:3:4\nserver.3=h:5:6\n"
                            "group.1=1:2:3\nweight.3=0\n")
    assert qv.weight(3) == 0
    assert not total_order_beats(qv, (3, 99, 9), (1, 0, 0))


def test_vote_equality_like_java() -> None:
    looking = Vote(3, 5, 1, 1)
    assert looking.same_as(Vote(3, 5, 1, 1))
    assert not looking.same_as(Vote(3, 5, 2, 1))  # round matters while looking
    following = Vote(3, 5, 1, 1, ServerState.FOLLOWING, 2)
    leading = Vote(3, 9, 7, 1, ServerState.LEADING, 2)
    assert following.same_as(leading)  # established: leader and epoch only
    assert not following.same_as(Vote(3, 5, 1, 2, ServerState.LEADING, 2))
    assert following.same_as(Vote(3, 5, 1, 2, ServerState.LEADING, 0))  # mixed versions


def test_non_voter_gets_current_vote_at_once() -> None:
    qv = _qv(3, observers=(4,))
    core = Election(1, qv, 0x100000003, 1)
    core.start(0)
    probe = Notification(0, LONG_MIN, LONG_MIN, 1, LONG_MIN)
    (reply,) = core.step(4, probe, 5)
    # Java answers with QuorumPeer.currentVote (ourselves before any result), not the proposal
    assert reply.to == 4
    assert (reply.notification.leader, reply.notification.zxid) == (1, 0x100000003)
    assert reply.notification.state == ServerState.LOOKING
    assert reply.notification.config == qv.to_bytes()


def test_backoff_doubles_up_to_the_maximum() -> None:
    core = Election(1, _qv(), 0, 0, max_notification_interval_ms=1000)
    core.start(0)
    times, now = [], 0
    while now < 5000:
        now += 50
        if [a for a in core.tick(now) if isinstance(a, Send)]:
            times.append(now)
    assert times == [200, 600, 1400, 2400, 3400, 4400]


def test_unknown_state_is_ignored_and_newer_config_reported() -> None:
    qv = _qv()
    core = Election(1, qv, 0, 0)
    core.start(0)
    assert core.step(2, Notification(7, 2, 0, 1, 0), 1) == []
    newer = qv.with_version(0x100000000)
    acts = core.step(2, Notification(0, 2, 0, 1, 0, 2, newer.to_bytes()), 2)
    # Same members: reported, and the vote is still processed (2 beats 1: re-broadcast).
    assert [type(a) for a in acts] == [NewerConfig, Send, Send]
    assert acts[0].verifier.version == 0x100000000
    assert core.recv_set[2] == Vote(2, 0, 1, 0)
    other = verifier_from_text("server.1=h:1:2\nserver.2=h:3:4\nversion=200000000")
    acts = core.step(2, Notification(0, 2, 0, 1, 0, 2, other.to_bytes()), 3)
    assert [type(a) for a in acts] == [NewerConfig]  # membership changed: stop here


def test_old_formats_take_part() -> None:
    """A 28-byte notification (no peerEpoch) counts like any other."""
    core = Election(1, _qv(), 0, 0)
    core.start(0)
    old = Notification.decode(Notification(0, 3, 0, 1, 0).encode()[:28])
    core.step(3, old, 1)
    assert core.proposal.leader == 3 and core.recv_set[3].peer_epoch == 0


def test_observer_follows_the_voters() -> None:
    qv = _qv(3, observers=(4,))
    obs = Election(4, qv, 0, 0)
    (s1, s2, s3) = obs.start(0)
    assert {s.to for s in (s1, s2, s3)} == {1, 2, 3}
    assert s1.notification.leader == LONG_MIN
    lead = Notification(2, 3, 0, 1, 0)
    follow = Notification(1, 3, 0, 1, 0)
    assert obs.step(3, lead, 1) == []
    (done,) = obs.step(1, follow, 2)
    assert done == Elected(ServerState.OBSERVING, Vote(3, 0, 1, 0))


def test_finalize_wait_restarts_on_every_message_that_is_not_better() -> None:
    core = Election(1, _qv(), 0, 0)
    core.start(0)
    core.step(2, Notification(0, 2, 0, 1, 0), 0)  # 1 adopts 2; 2's vote + own: quorum
    core.step(3, Notification(0, 1, 0, 1, 0), 0)
    assert core.finalizing and core.next_deadline_ms == 200
    core.step(3, Notification(0, 1, 0, 1, 0), 150)  # worse: dropped, the wait starts over
    assert core.next_deadline_ms == 350 and 3 not in core.recv_set
    assert core.tick(349) == []
    (done,) = core.tick(350)
    assert done == Elected(ServerState.FOLLOWING, Vote(2, 0, 1, 0))


@pytest.mark.parametrize("seed", range(25))
def test_random_delivery_order_elects_the_best_server(seed: int) -> None:
    """Messages delivered in a random order, start times staggered: once the network is quiet
    and 200 ms pass, everybody follows the server with the best (epoch, zxid, sid)."""
    import random
    rng = random.Random(seed)
    n = rng.choice([3, 4, 5])
    sim = Sim()
    sim.cmd_cluster([], {"voters": ",".join(str(i) for i in range(1, n + 1))})
    for core in sim.cores.values():
        core.current_epoch = rng.randint(0, 2)
        core.last_zxid = (core.current_epoch << 32) + rng.randint(0, 3)
    best = max(sim.cores.values(), key=lambda c: (c.current_epoch, c.last_zxid, c.my_id))
    order = list(sim.cores)
    rng.shuffle(order)
    for sid in order:
        sim.cmd_start([str(sid)], {})
        for _ in range(rng.randint(0, 4)):  # some traffic before the next one starts
            if sim.queue:
                a, b, note = sim.queue.pop(rng.randrange(len(sim.queue)))
                sim._emit(b, sim.cores[b].step(a, note, sim.now), [], "")
    while any(c.running for c in sim.cores.values()):
        while sim.queue:
            a, b, note = sim.queue.pop(rng.randrange(len(sim.queue)))
            sim._emit(b, sim.cores[b].step(a, note, sim.now), [], "")
        sim.cmd_tick(["200"], {})
    assert {c.leader for c in sim.cores.values()} == {best.my_id}
    assert best.state == ServerState.LEADING

"""Scenarios that run the real Zab core and server role cores in the simulator.

Each member is a `ZabNode` (zab_node.py): a `QuorumPeer` plus `LeaderCore`/`LearnerCore`
over a `DataTree`, recovering from its simulated disk on every (re)start. Simulated clients
talk to any member, observers included, through a real ZooKeeper session (zab_gateway.py):
writes on learners are forwarded to the leader, reads are sync + getData. The state
machine is the production one rather than a minimal znode store because that is the code
whose behaviour under ZAB matters (forwarding, session creation and revalidation, replies
released on commit, digests), and it is cheap enough: a run takes some 20 ms.

Timing: tickTime 100 ms, initLimit 10, syncLimit 5 (ZooKeeper's ratios, twenty times
faster). Per seed, each member also draws its local settings, as each server has its own
zoo.cfg and system properties: commitLogCount (3, 10 or 500), snapshotSizeFactor (txn-log
syncs off, tiny, default or huge), now and then forceSnapshotSync, a snapCount (5 to 1000
txns). With short committed logs and frequent snapshots, DIFF, TRUNC, txn-log DIFF and
SNAP syncs all occur.

Faults (nemesis.py): partitions (connections across the cut break; within a connection
order holds, across connections messages reorder with their latencies), crashes that lose
unsynced log writes (maybe leaving a torn record), slow disks, forward clock jumps; at the
end everything heals and restarts, and the final reads must succeed.

Checks: linearizability of the client history (runner.check_linearizable), at most one
leader per epoch, and zab_checks.check_zab (one txn per zxid everywhere, every committed
apply and serving state a prefix of the final history, serving servers ending with it,
every acknowledged write in it, equal data trees, no broken contract), plus liveness: the
final reads succeed once everything is healed.

`Flaws` breaks the system on purpose, to prove the checks bite: a leader that commits once
its own log write is durable (no quorum), or followers that acknowledge proposals before
their fsync completes.

Scenarios: ZAB3, ZAB3_CRASHY (power-loss heavy), ZAB3_LONG (3 s of faults, 4 clients),
ZAB3_OBSERVER (plus an observer), ZAB5; NO_QUORUM and EARLY_ACK are the broken ones. Replay
a failing seed with ``python -m zookapter.sim zookapter.sim.zab_binding:ZAB3 --seed N
--trace``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..quorum.config import verifier_from_text
from ..quorum.election import Elected
from ..quorum.election_wire import ServerState
from ..quorum.leader import LeaderRole
from ..quorum.packets import PacketType
from ..quorum.peer import QuorumPeer, ZabConfig
from .cluster import Binding, Factory, NodeContext, SimConfig
from .disk import DiskImage, DiskProfile
from .latency import Latency
from .nemesis import NemesisConfig
from .network import LinkProfile, NetworkConfig
from .runner import Scenario, check_final_progress, check_leaders, check_linearizable
from .workload import WorkloadConfig
from .zab_checks import check_zab
from .zab_messages import (
    ClientRequest,
    Down,
    NodeSettings,
    Received,
    SnapMsg,
    Tick,
    Up,
    VoteMsg,
    ZabMsg,
)
from .zab_node import ZabNode

TICK_TIME_MS = 100
INIT_LIMIT = 10
SYNC_LIMIT = 5
# Java's 60 s would outlast a run. The same everywhere: in FastLeaderElection a voter with
# the worst vote and a shorter interval keeps resetting the others' timeouts, and they,
# holding better votes, never re-send theirs (a stall Java shares).
MAX_NOTIFICATION_INTERVAL_MS = 1_000


@dataclass(frozen=True)
class Flaws:
    commit_without_quorum: bool = False
    ack_before_persist: bool = False


@dataclass(frozen=True, slots=True)
class Boot:
    node: ZabNode


def _boot(ctx: NodeContext, action: Boot) -> None:
    action.node.boot(ctx)


class _NoQuorumLeader(LeaderRole):
    """Broken on purpose: its own ACK is enough to commit."""

    def _try_to_commit(self, zxid: int) -> bool:
        op = self.outstanding[zxid]
        if self.my_id in op.acks:
            op.acks |= set(self.verifier.voting_members)
        return super()._try_to_commit(zxid)


class _NoQuorumPeer(QuorumPeer):
    def _become(self, elected: Elected) -> None:
        super()._become(elected)
        if type(self.role) is LeaderRole:
            self.role.__class__ = _NoQuorumLeader


def _describe(event: Any) -> str:
    if isinstance(event, Received):
        msg = event.payload
        if isinstance(msg, ZabMsg):
            name = PacketType(msg.packet.type).name
            return f"{name} 0x{msg.packet.zxid & (2**64 - 1):x} from {event.src}"
        if isinstance(msg, SnapMsg):
            return f"SNAP 0x{msg.zxid:x} from {event.src}"
        if isinstance(msg, VoteMsg):
            n = msg.notification
            return (f"vote {ServerState(n.state).name} {n.leader} 0x{n.zxid & (2**64 - 1):x} "
                    f"round {n.election_epoch} from {event.src}")
        return f"{type(msg).__name__} from {event.src}"
    if isinstance(event, ClientRequest):
        return f"client #{event.request_id} {event.op}"
    if isinstance(event, Tick):
        return "tick"
    if isinstance(event, (Down, Up)):
        return f"{type(event).__name__.lower()} {event.peer} {event.channel}"
    return type(event).__name__


BINDING = Binding(
    actions={Boot: _boot},
    message=Received,
    disconnected=Down,
    connected=Up,
    request=ClientRequest,
    boot=lambda node, now_ms: [Boot(node)],
    tick_interval_ms=25,
    timed_step=True,
    describe=_describe,
)


def _settings(rng: random.Random, flaws: Flaws) -> tuple[dict[str, Any], NodeSettings]:
    """One member incarnation's local settings (see the module docstring)."""
    zab = dict(commit_log_count=rng.choice((3, 10, 500)),
               snapshot_size_factor=rng.choice((-1.0, 0.0, 0.33, 100.0)),
               force_snap_sync=rng.random() < 0.1)
    node = NodeSettings(snap_count=rng.choice((5, 20, 1000)), tick_time_ms=TICK_TIME_MS,
                        ack_before_persist=flaws.ack_before_persist)
    return zab, node


def make_factory(nodes: tuple[int, ...], flaws: Flaws = Flaws(),
                 observers: tuple[int, ...] = ()) -> Factory:
    """Members of an ensemble of voters `nodes` and `observers`, each recovering from its
    disk image."""
    lines = [f"server.{i}=10.0.0.{i}:2888:3888:participant" for i in nodes]
    lines += [f"server.{i}=10.0.0.{i}:2888:3888:observer" for i in observers]
    verifier = verifier_from_text("\n".join(lines) + "\n")
    peer_class = _NoQuorumPeer if flaws.commit_without_quorum else QuorumPeer

    def factory(node_id: int, image: DiskImage, now_ms: int, rng: random.Random) -> ZabNode:
        zab, settings = _settings(rng, flaws)
        config = ZabConfig(verifier, tick_time_ms=TICK_TIME_MS, init_limit=INIT_LIMIT,
                           sync_limit=SYNC_LIMIT,
                           max_notification_interval_ms=MAX_NOTIFICATION_INTERVAL_MS, **zab)
        return ZabNode(node_id, peer_class, config, settings, image)

    return factory


def make_scenario(name: str, *, nodes: tuple[int, ...] = (1, 2, 3),
                  observers: tuple[int, ...] = (), flaws: Flaws = Flaws(),
                  duration_ms: int = 2_000, clients: int = 3,
                  nemesis: NemesisConfig | None = None, disk: DiskProfile | None = None,
                  ref: str | None = None) -> Scenario:
    return Scenario(
        name=name,
        binding=BINDING,
        factory=make_factory(nodes, flaws, observers),
        sim=SimConfig(nodes=nodes + observers, disk=disk or DiskProfile(), network=NetworkConfig(
            connections=True, link=LinkProfile(Latency(1, 5, 0.02, 40)))),
        nemesis=nemesis or NemesisConfig(duration_ms=duration_ms, gap_min_ms=50,
                                         gap_max_ms=400),
        workload=WorkloadConfig(clients=clients, end_ms=duration_ms, think=Latency(2, 20),
                                timeout_ms=500, final_timeout_ms=2_000, keys=3),
        settle_ms=2_000,
        drain_ms=500,
        checks=(check_linearizable, check_leaders, check_zab, check_final_progress),
        ref=ref,
    )


CRASHY = NemesisConfig(duration_ms=2_000, gap_min_ms=50, gap_max_ms=400,
                       weights={"crash": 4.0, "restart": 3.0, "disk": 2.0, "partition": 1.0,
                                "heal": 1.0, "clock": 1.0})

ZAB3 = make_scenario("zab-3", ref="zookapter.sim.zab_binding:ZAB3")
ZAB5 = make_scenario("zab-5", nodes=(1, 2, 3, 4, 5), ref="zookapter.sim.zab_binding:ZAB5")
ZAB3_OBSERVER = make_scenario("zab-3-observer", observers=(4,),
                              ref="zookapter.sim.zab_binding:ZAB3_OBSERVER")
# longer, with more clients: more faults per run and more concurrency for the checker
ZAB3_LONG = make_scenario("zab-3-long", duration_ms=3_000, clients=4,
                          ref="zookapter.sim.zab_binding:ZAB3_LONG")
ZAB3_CRASHY = make_scenario("zab-3-crashy", nemesis=CRASHY,
                            ref="zookapter.sim.zab_binding:ZAB3_CRASHY")
NO_QUORUM = make_scenario("zab-3-commit-without-quorum",
                          flaws=Flaws(commit_without_quorum=True),
                          ref="zookapter.sim.zab_binding:NO_QUORUM")
# slow fsyncs and many crashes: much is acknowledged but not on disk when a machine dies
EARLY_ACK = make_scenario("zab-3-ack-before-persist", flaws=Flaws(ack_before_persist=True),
                          nemesis=CRASHY, disk=DiskProfile(fsync=Latency(20, 80, 0.1, 300)),
                          ref="zookapter.sim.zab_binding:EARLY_ACK")

"""What a simulated ZAB member exchanges with the simulator: messages on the simulated
network, the events it is stepped with besides the Zab core's own, and what it keeps on the
simulated disk. Plain data; the behaviour is in zab_node.py.

Messages are Python objects, not bytes: the quorum and election codecs are tested on their
own (test_quorum_wire, test_quorum_interop), and the simulator is about interleavings.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ..quorum.election_wire import Notification
from ..quorum.packets import QuorumPacket
from .zab_checks import FrozenGhost
from .znode_model import ZnodeOp

LOG = "txnlog"
ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"
SNAP_PREFIX = "snapshot."
VOTES = "election"
WAIT_FOR_SERVING_MS = 100  # a request to a member not serving waits this long, then FAIL


def quorum_channel(leader: int) -> tuple[str, int]:
    """The connection to `leader`'s quorum port (one per learner, opened by the learner)."""
    return ("zab", leader)


# --- what travels on the simulated network -------------------------------------------------

@dataclass(frozen=True, slots=True)
class VoteMsg:
    notification: Notification


@dataclass(frozen=True, slots=True)
class ZabMsg:
    port: int  # whose quorum port the connection goes to
    packet: QuorumPacket


@dataclass(frozen=True, slots=True)
class SnapMsg:
    """SNAP + the serialized state; `ghost` is verification-only (zab_checks.py)."""
    port: int
    zxid: int
    body: bytes
    ghost: FrozenGhost


@dataclass(frozen=True, slots=True)
class Hello:
    port: int


@dataclass(frozen=True, slots=True)
class Welcome:
    port: int


# --- events into the member (besides the core's own) ---------------------------------------

@dataclass(frozen=True, slots=True)
class Received:
    src: int
    payload: Any


@dataclass(frozen=True, slots=True)
class Down:
    peer: int
    channel: Hashable


@dataclass(frozen=True, slots=True)
class Up:
    """A peer opened a connection to us."""
    peer: int
    channel: Hashable


@dataclass(frozen=True, slots=True)
class ClientRequest:
    request_id: int
    op: ZnodeOp


@dataclass(frozen=True, slots=True)
class GiveUp:
    """A request that has waited `WAIT_FOR_SERVING_MS` for this member to serve."""
    request_id: int


@dataclass(frozen=True, slots=True)
class Call:
    """A callback scheduled by a role core (its group-commit flush)."""
    fn: Callable[[], None]


@dataclass(frozen=True, slots=True)
class FsyncDone:
    """The txn log fsync started last has completed."""


@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: int


@dataclass(frozen=True, slots=True)
class SnapFile:
    zxid: int
    body: bytes
    ghost: FrozenGhost


@dataclass(frozen=True)
class NodeSettings:
    """Local knobs of one member incarnation (drawn per seed by the scenario)."""
    snap_count: int = 100_000
    tick_time_ms: int = 100  # for the server core's session timeout bounds
    ack_before_persist: bool = False  # a broken follower, to prove the checks bite


def newest_snapshot(files: Any) -> SnapFile | None:
    snaps = [f for name, f in files.items() if name.startswith(SNAP_PREFIX) and f is not None]
    return max(snaps, key=lambda s: s.zxid, default=None)

"""Events into and actions out of the Zab core (`peer.QuorumPeer`), and the small host
interface the core queries. See peer.py for how a shell drives them.

Everything here is plain data: the shell (asyncio server, simulator, test router) turns
bytes and disk completions into events, feeds them to `QuorumPeer.step`, and executes the
returned actions **in list order**. The ordering contract that makes the core correct:

- `Send` / `SendSnapshot` to one peer leave on its connection in the order they were returned.
- `Persist` batches are appended to the txn log in order, and their `Persisted(token)`
  completions are reported in the same order (a log is FIFO; one fsync may complete several).
- `Apply`, `Truncate`, `LoadSnapshot`, `TakeSnapshot` and `PersistEpoch` take effect before
  the shell executes the next action of the list (they are synchronous for the core):
  e.g. `PersistEpoch` is on disk before the `Send` of the ACKEPOCH that follows it, and the
  state serialized for a `SendSnapshot` is exactly what the preceding `Apply`s produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..protocol.records import Id
from ..protocol.txns import Txn
from ..storage.digest import DIGEST_VERSION
from .election import NewerConfig
from .election import Send as SendVote
from .election_wire import Notification, ServerState
from .packets import ForwardedRequest, PacketType, QuorumPacket, decode_proposal, encode_proposal


class LeaveRole(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a role to end it (timeout, lost quorum, connection lost): the peer
    closes the role's connections and goes back to LOOKING."""


class ZabError(LeaveRole):
    """A protocol violation by the other side: the role is abandoned (back to LOOKING)."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """One replicated txn: its zxid, the decoded txn (with `txn.digest`, the tree digest after
    it, when known) and the PROPOSAL payload bytes, kept so re-sends are byte-identical."""
    zxid: int
    txn: Txn
    data: bytes

    @staticmethod
    def of(txn: Txn) -> Proposal:
        digest = None if txn.digest is None else (DIGEST_VERSION, txn.digest)
        return Proposal(txn.zxid, txn, encode_proposal(txn, digest))

    @staticmethod
    def decode(data: bytes) -> Proposal:
        txn, digest = decode_proposal(data)
        txn.digest = None if digest is None else digest[1]
        return Proposal(txn.zxid, txn, bytes(data))

    def packet(self, typ: PacketType = PacketType.PROPOSAL) -> QuorumPacket:
        """PROPOSAL (or INFORM, same payload) for this txn."""
        return QuorumPacket(typ, self.zxid, self.data)


# --- events ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PacketIn:
    """A QuorumPacket from `sid` on the Zab channel. For SNAP, `snapshot` holds the snapshot
    stream that followed it (sessions, ACL map, nodes, "/"), the shell having read and
    checked the "BenWasHere" signature. A leader's shell learns a learner's sid from the
    LearnerInfo of its first packet; if a second connection claims a sid, the shell closes
    the older one and reports its `ConnectionDown` first."""
    sid: int
    packet: QuorumPacket
    snapshot: bytes | None = None


@dataclass(frozen=True, slots=True)
class ConnectionUp:
    """Learner: the connection to the leader asked for by `Connect(sid)` is open."""
    sid: int


@dataclass(frozen=True, slots=True)
class ConnectionDown:
    """The Zab connection with `sid` closed, or a `Connect(sid)` failed."""
    sid: int


@dataclass(frozen=True, slots=True)
class VoteIn:
    """An election notification from `sid` (election channel)."""
    sid: int
    notification: Notification


@dataclass(frozen=True, slots=True)
class Persisted:
    """The `Persist` batch with this token is fsynced."""
    token: int


@dataclass(frozen=True, slots=True)
class Propose:
    """Leader: prepped txns from the local state machine, numbered from the zxid given by
    `StartServing` on, consecutively, `txn.digest` set as for the txn log. Dropped when the
    peer is not a serving leader (after `RoleChanged` the shell fails those requests)."""
    txns: tuple[Txn, ...]


@dataclass(frozen=True, slots=True)
class LearnerSync:
    """Leader: the state machine reached a `sync` forwarded by learner `sid` in its pipeline;
    the core answers SYNC once every proposal outstanding now is committed."""
    sid: int


@dataclass(frozen=True, slots=True)
class RevalidateReply:
    """Leader: the state machine's answer to a `Revalidate` action."""
    sid: int
    session_id: int
    valid: bool


@dataclass(frozen=True, slots=True)
class Forward:
    """Learner: a client request to forward to the leader as REQUEST (writes, sync,
    createSession/closeSession), with the client's auth ids. Dropped unless serving."""
    request: ForwardedRequest
    authinfo: tuple[Id, ...] | None = None


@dataclass(frozen=True, slots=True)
class RevalidateSession:
    """Learner: a client reconnected with an existing session; ask the leader."""
    session_id: int
    timeout_ms: int


Event = (PacketIn | ConnectionUp | ConnectionDown | VoteIn | Persisted | Propose | LearnerSync
         | RevalidateReply | Forward | RevalidateSession)


# --- actions ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    """Write `packet` on the Zab connection with `to`."""
    to: int
    packet: QuorumPacket


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Write SNAP{zxid}, then the serialized state (ZKDatabase.serializeSnapshot: sessions,
    ACL map, nodes, "/"; no file header, checksum or digest), then the jute string
    "BenWasHere". The state must be exactly at `zxid` (every earlier `Apply` done)."""
    to: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Connect:
    """Learner: open the Zab connection to leader `sid`'s quorum address; answer with
    `ConnectionUp` or `ConnectionDown`."""
    sid: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the Zab connection with `sid` (no `ConnectionDown` needed)."""
    sid: int


@dataclass(frozen=True, slots=True)
class Persist:
    """Append the proposals' txns (with their digests) to the txn log and fsync; answer
    `Persisted(token)`."""
    token: int
    proposals: tuple[Proposal, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    """Drop every logged txn after `zxid` and reload the state from disk (newest snapshot +
    the log after it), as ZKDatabase.truncateLog. Keep the snapshots, all of them: one
    named with an epoch-start zxid above `zxid` (written after a SNAP sync of a leader that
    had no txn of its epoch yet) holds exactly the history up to `zxid`, and the log may
    then be empty or start after `zxid`; deleting that snapshot loses data. No snapshot can
    hold a txn past `zxid` as long as snapshots are taken of synced state alone
    (TakeSnapshot, or while serving): a shell must not snapshot the state it recovered at
    startup, which can hold uncommitted txns a TRUNC has to remove. Only when neither the
    newest snapshot nor the log reaches `zxid` must the shell stop the server (Java's
    "not able to truncate the log")."""
    zxid: int


@dataclass(frozen=True, slots=True)
class Apply:
    """Committed: apply in order (zxids strictly increasing, each once), then reply to
    clients waiting for them. `recovered` marks the fast-forward when a role ends (Java's
    fastForwardDataBase: logged txns applied so the tree matches the log; no replies)."""
    proposals: tuple[Proposal, ...]
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """Learner: replace the whole state (tree and sessions) by the SNAP stream `body`; the
    state's last processed zxid becomes `zxid`. Discard the whole txn log and any snapshot
    newer than `zxid`: their txns are either in the snapshot or from a history the leader
    does not have. (Java keeps its old log files; a superseded txn left in them would be
    read back by a later txn-log DIFF or replayed after a restart.) Together with Truncate
    cutting the tail, this keeps the log a prefix of the leader's history, which
    ZabHost.read_log relies on."""
    zxid: int
    body: bytes


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Write a snapshot of the current state (`sync`: before going on, as Java's
    takeSnapshot(syncSnap) after a SNAP sync)."""
    sync: bool = False


@dataclass(frozen=True, slots=True)
class PersistEpoch:
    """Write the acceptedEpoch and/or currentEpoch file (atomically, fsynced) now."""
    accepted: int | None = None
    current: int | None = None


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The peer's state changed (LOOKING after leaving a role; LEADING/FOLLOWING/OBSERVING
    when elected). Leaving a role means: stop serving clients, close their connections."""
    state: ServerState
    leader: int | None


@dataclass(frozen=True, slots=True)
class StartServing:
    """The role is synced: serve clients. `zxid` is the state's last processed zxid; a
    leader sets its tree's lastProcessedZxid to it (epoch << 32) and numbers new txns from
    `zxid + 1`."""
    state: ServerState
    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class LearnerRequest:
    """Leader: a REQUEST forwarded by learner `sid`; run it through prep like a local one
    (the reply goes back through the learner when it applies the txn)."""
    sid: int
    request: ForwardedRequest
    authinfo: tuple[Id, ...] | None


@dataclass(frozen=True, slots=True)
class TouchSessions:
    """Leader: learner `sid` saw activity on these (sessionId, timeoutMs) sessions."""
    sid: int
    touches: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Revalidate:
    """Leader: learner `sid` asks whether a session is valid (touch it and make `sid` its
    owner if so); answer with `RevalidateReply`."""
    sid: int
    session_id: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class RevalidateResult:
    """Learner: the leader's answer to `RevalidateSession`."""
    session_id: int
    valid: bool


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Learner: the leader answered the oldest forwarded `sync` (every txn committed before
    it has been applied here, since SYNC follows their COMMITs on the stream)."""


Action = (Send | SendSnapshot | SendVote | NewerConfig | Connect | Disconnect | Persist
          | Truncate | Apply | LoadSnapshot | TakeSnapshot | PersistEpoch | RoleChanged
          | StartServing | LearnerRequest | TouchSessions | Revalidate | RevalidateResult
          | SyncReply)


# --- what the core asks the host ------------------------------------------------------------

class ZabHost(Protocol):
    """Read-only queries the core makes while handling an event (answered synchronously)."""

    def snapshot_size(self) -> int:
        """Bytes of the newest snapshot file (0 if none): bounds txn-log syncs."""
        ...

    def read_log(self, start_zxid: int, end_zxid: int, size_limit: int) -> list[Proposal]:
        """Logged txns with start_zxid <= zxid <= end_zxid, the first being start_zxid itself;
        [] if the log does not hold start_zxid, or if size_limit > 0 and the log from
        start_zxid on takes more than size_limit bytes (ZKDatabase.getProposalsFromTxnLog)."""
        ...

    def touched_sessions(self) -> list[tuple[int, int]]:
        """Learner: (sessionId, timeoutMs) of sessions touched since the last call (PING)."""
        ...


class NullHost:
    """No txn log to read and no sessions: DIFF from memory or SNAP only."""

    def snapshot_size(self) -> int:
        return 0

    def read_log(self, start_zxid: int, end_zxid: int, size_limit: int) -> list[Proposal]:
        return []

    def touched_sessions(self) -> list[tuple[int, int]]:
        return []


__all__ = [
    "Action", "Apply", "Connect", "ConnectionDown", "ConnectionUp", "Disconnect", "Event",
    "Forward", "LeaveRole", "LearnerRequest", "LearnerSync", "LoadSnapshot", "NewerConfig",
    "NullHost",
    "PacketIn", "Persist", "PersistEpoch", "Persisted", "Proposal", "Propose", "Revalidate",
    "RevalidateReply", "RevalidateResult", "RevalidateSession", "RoleChanged", "Send",
    "SendSnapshot", "SendVote", "StartServing", "SyncReply", "TakeSnapshot", "TouchSessions",
    "Truncate", "VoteIn", "ZabError", "ZabHost",
]

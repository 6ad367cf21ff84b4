"""The leader's bookkeeping for one connected learner (Java's LearnerHandler, minus the
thread and the socket).

Java runs one thread per learner that blocks at each step of the handshake; here `stage`
records which step it is blocked at, so the leader can resume it when the awaited quorum
forms:

  INFO            FOLLOWERINFO/OBSERVERINFO in; waiting for the new epoch (getEpochToPropose)
  EPOCH_SENT      LEADERINFO out; waiting for ACKEPOCH
  EPOCH_ACKED     ACKEPOCH in; waiting for a quorum of them (waitForEpochAck)
  NEWLEADER_SENT  sync packets + NEWLEADER out; waiting for the NEWLEADER ACK
  NEWLEADER_ACKED waiting for the leader to start serving (waitForStartup)
  UPTODATE_SENT   broadcast phase

Liveness, as in Java: the socket read timeout (initLimit ticks until the NEWLEADER ACK,
syncLimit ticks after it) drops a silent learner; `tick_deadline` (tickOfNextAckDeadline)
says whether it still counts as synced for the leader's quorum check; `SyncLimitCheck` drops
a learner that leaves a proposal unacknowledged for syncLimit ticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto


class Stage(Enum):
    INFO = auto()
    EPOCH_SENT = auto()
    EPOCH_ACKED = auto()
    NEWLEADER_SENT = auto()
    NEWLEADER_ACKED = auto()
    UPTODATE_SENT = auto()


class SyncLimitCheck:
    """LearnerHandler.SyncLimitCheck: the send time of the oldest unacknowledged proposal
    (and of the newest one sent after it), from the NEWLEADER ACK on. Java keeps just these
    two slots; so do we, to time out the same learners."""

    __slots__ = ("started", "cur_zxid", "cur_time", "next_zxid", "next_time")

    def __init__(self) -> None:
        self.started = False
        self.cur_zxid = 0
        self.cur_time: int | None = None
        self.next_zxid = 0
        self.next_time: int | None = None

    def start(self) -> None:
        self.started = True

    def proposal_sent(self, zxid: int, now_ms: int) -> None:
        if not self.started:
            return
        if self.cur_time is None:
            self.cur_zxid, self.cur_time = zxid, now_ms
        else:
            self.next_zxid, self.next_time = zxid, now_ms

    def acked(self, zxid: int) -> None:
        if self.cur_zxid == zxid:
            self.cur_zxid, self.cur_time = self.next_zxid, self.next_time
            self.next_zxid, self.next_time = 0, None
        elif self.next_zxid == zxid:
            self.next_zxid, self.next_time = 0, None

    def ok(self, now_ms: int, limit_ms: int) -> bool:
        return self.cur_time is None or now_ms - self.cur_time < limit_ms


@dataclass
class LearnerHandle:
    sid: int
    observer: bool
    protocol_version: int
    accepted_epoch: int
    read_deadline_ms: int
    tick_deadline: int
    stage: Stage = Stage.INFO
    peer_last_zxid: int = -1
    sending: bool = False  # NEWLEADER queued: Java's sender thread runs, pings may go out
    forwarding: bool = False  # receives new proposals/commits (or INFORMs, for observers)
    check: SyncLimitCheck = field(default_factory=SyncLimitCheck)

    @property
    def acked_newleader(self) -> bool:
        return self.stage in (Stage.NEWLEADER_ACKED, Stage.UPTODATE_SENT)

    def synced(self, tick: int) -> bool:
        """LearnerHandler.synced(): still within its ack deadline."""
        return tick <= self.tick_deadline

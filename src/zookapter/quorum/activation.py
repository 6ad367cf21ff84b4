"""Switching an ensemble member to a new configuration (QuorumPeer.processReconfig), the
pure part the Zab core shares between its roles.

A configuration becomes active on a member when the reconfig txn that carries it commits:
the leader sends COMMITANDACTIVATE (followers) / INFORMANDACTIVATE (observers) naming a
designated leader, and each member adopts the new verifier for its quorums and elections.
A member whose own kind changes (participant <-> observer), or whose leader is not the
designated one, leaves its role and elects again. A new leader also activates the config
it sends in NEWLEADER (stamped with a version on the first reconfig-enabled election), and
its learners do the same at UPTODATE; a LOOKING member adopts a newer config it finds in a
vote.
"""

from __future__ import annotations

from ..protocol.consts import Op
from ..protocol.txns import SetDataTxn
from .config import LearnerType, QuorumVerifier, verifier_from_text
from .zab_events import Proposal


def proposal_config(p: Proposal) -> QuorumVerifier | None:
    """The configuration a reconfig proposal carries (None for any other txn)."""
    txn = p.txn
    if txn.type != Op.RECONFIG or not isinstance(txn.record, SetDataTxn):
        return None
    try:
        return verifier_from_text((txn.record.data or b"").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def learner_type_in(qv: QuorumVerifier, sid: int) -> LearnerType:
    """What `sid` is in `qv` (updateLearnerType): an observer if listed as one, else a
    participant (voting, or non-voting when not listed at all)."""
    return LearnerType.OBSERVER if sid in qv.observing_members else LearnerType.PARTICIPANT


def is_newer(new: QuorumVerifier, old: QuorumVerifier) -> bool:
    """Does activating `new` change anything (a later version with other members)?"""
    return new.version > old.version and not old.equivalent(new)


def designated_leader(new: QuorumVerifier, old: QuorumVerifier, my_id: int,
                      ackers: list[set[int]]) -> int:
    """Leader.getDesignatedLeader: this leader stays if it is a voter of `new` at the same
    quorum address; otherwise the voter of `new` that acknowledged the reconfig and the
    most of the proposals after it (`ackers`: the reconfig's ack set, then each following
    outstanding proposal's, in zxid order)."""
    me_new, me_old = new.voting_members.get(my_id), old.members.get(my_id)
    if me_new is not None and me_old is not None and \
            me_new.quorum_addrs == me_old.quorum_addrs:
        return my_id
    candidates = sorted((ackers[0] if ackers else set()) & set(new.voting_members) - {my_id})
    if not candidates:
        return my_id
    best = candidates[0]
    for acked in ackers[1:]:
        remaining = [c for c in candidates if c in acked]
        if not remaining:
            return best
        candidates, best = remaining, remaining[0]
        if len(candidates) == 1:
            return best
    return best


__all__ = ["designated_leader", "is_newer", "learner_type_in", "proposal_config"]

"""Dynamic reconfiguration on the leader: checking a `reconfig` request and computing the
configuration it asks for (ZooKeeper's PrepRequestProcessor, opcode 16).

A reconfig is a write like any other: the leader turns it into a txn of type RECONFIG whose
record is a SetDataTxn of /zookeeper/config holding the new configuration's text, with the
txn's zxid as the configuration's version. Zab replicates it; when it commits, the leader
sends COMMITANDACTIVATE (INFORMANDACTIVATE to observers) instead of COMMIT, and every member
switches to the new configuration as it applies it (see leader.py / learner.py).

`ReconfigPlanner` runs the checks in Java's order, because the error a client sees for a
request wrong in several ways depends on it:

  another reconfig still in flight   -> ReconfigInProgress
  curConfigId not the last seen one  -> BadVersion
  unparsable members / joiners       -> BadArguments (a non-numeric id: MarshallingError)
  fewer than 2 voters (1 without standaloneEnabled) -> BadArguments
  no synced quorum of the new voters -> NewConfigNoQuorum
  and only then the caller's WRITE permission on /zookeeper/config (the server core).

Incremental mode (joining/leaving) needs a majority verifier; bulk mode (newMembers) accepts
any dynamic config text, commas standing for newlines.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.consts import Err
from ..protocol.jute import Reader
from ..server.config import parse_properties
from ..server.prep import KeeperError
from .config import (
    ConfigError,
    HierarchicalQuorumVerifier,
    QuorumServer,
    QuorumVerifier,
    java_long,
    parse_dynamic_config,
    parse_server,
)

log = logging.getLogger("zookapter.quorum")


@dataclass(frozen=True, slots=True)
class ReconfigRequest:
    """The request body: comma-separated `server.N=spec` to add and ids to remove, or a
    whole new membership, and the config version it applies to (-1: any)."""
    joining: str | None
    leaving: str | None
    new_members: str | None
    cur_config_id: int

    @staticmethod
    def read(r: Reader) -> ReconfigRequest:
        return ReconfigRequest(r.ustring(), r.ustring(), r.ustring(), r.long())


def _split(value: str, sep: str) -> list[str]:
    """ZooKeeper's StringUtils.split: trimmed pieces, empty ones dropped."""
    return [p.strip() for p in value.split(sep) if p.strip()]


def _special(host: str) -> bool:
    """Wildcard and loopback addresses never conflict (QuorumServer.excludedSpecialAddresses)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_unspecified or ip.is_loopback


def _addresses(s: QuorumServer) -> list[tuple[str, int]]:
    out = [(h, q) for h, q, _ in s.addrs] + [(h, e) for h, _, e in s.addrs]
    if s.client_addr is not None:
        out.append(s.client_addr)
    return out


def check_address_duplicate(new: QuorumServer, other: QuorumServer) -> None:
    """QuorumServer.checkAddressDuplicate: none of `new`'s addresses may be one of `other`'s
    (special addresses of `other` excepted)."""
    theirs = {a for a in _addresses(other) if not _special(a[0])}
    for mine in _addresses(new):
        if mine in theirs:
            log.warning("%s:%d of server.%d conflicts with server.%d", mine[0], mine[1],
                        new.id, other.id)
            raise KeeperError(Err.BAD_ARGUMENTS)


def incremental(base: QuorumVerifier, joining: str | None, leaving: str | None,
                multi_address_enabled: bool = False) -> QuorumVerifier:
    """The members of `base` minus `leaving`, plus (or replaced by) `joining`. The result
    has `base`'s version; the caller stamps the new one."""
    if isinstance(base, HierarchicalQuorumVerifier):
        log.warning("Incremental reconfiguration requested but last configuration seen has "
                    "a non-majority quorum system")
        raise KeeperError(Err.BAD_ARGUMENTS)
    members = dict(base.members)
    try:
        for sid_text in _split(leaving or "", ","):
            members.pop(_long(sid_text), None)
        for joiner in _split(joining or "", ","):
            parts = _split(joiner, "=")
            if len(parts) != 2:
                raise KeeperError(Err.BAD_ARGUMENTS)  # "Wrong format of server string"
            sid = _long(parts[0][parts[0].rfind(".") + 1:])
            server = parse_server(sid, parts[1], multi_address_enabled)
            if server.client_addr is None:  # each server needs all 3 ports
                raise KeeperError(Err.BAD_ARGUMENTS)
            for other in members.values():
                if other.id != sid:
                    check_address_duplicate(server, other)
            members.pop(sid, None)
            members[sid] = server
    except ConfigError as e:
        log.warning("Reconfiguration failed: %s", e)
        raise KeeperError(Err.BAD_ARGUMENTS) from None
    return QuorumVerifier(members, base.version)


def bulk(new_members: str, standalone_enabled: bool = True,
         multi_address_enabled: bool = False) -> QuorumVerifier:
    """A whole new membership, as dynamic config text (commas may separate the lines)."""
    try:
        return parse_dynamic_config(parse_properties(new_members.replace(",", "\n")),
                                    standalone_enabled=standalone_enabled,
                                    multi_address_enabled=multi_address_enabled)
    except ConfigError as e:
        log.warning("Reconfiguration failed: %s", e)
        raise KeeperError(Err.BAD_ARGUMENTS) from None


def _long(text: str) -> int:
    """Long.parseLong; Java's prep turns its NumberFormatException into MarshallingError."""
    try:
        return java_long(text)
    except ConfigError:
        raise KeeperError(Err.MARSHALLING_ERROR) from None


def stamped(qv: QuorumVerifier, version: int) -> QuorumVerifier:
    """`qv` under `version` (setVersion), members untouched."""
    if isinstance(qv, HierarchicalQuorumVerifier):
        return HierarchicalQuorumVerifier(qv.members, version, qv.groups, qv.weights)
    return QuorumVerifier(qv.members, version)


class ReconfigPlanner:
    """The leader's reconfig checks. `current` gives the active configuration and
    `quorum_synced(qv)` whether the leader plus its synced followers hold a quorum of `qv`
    (Leader.isQuorumSynced). `last_seen` is the newest configuration proposed; while it is
    ahead of `current()` a reconfig is in flight and another one is refused."""

    def __init__(self, current: Callable[[], QuorumVerifier],
                 quorum_synced: Callable[[QuorumVerifier], bool], *,
                 standalone_enabled: bool = True, multi_address_enabled: bool = False) -> None:
        self.current = current
        self.quorum_synced = quorum_synced
        self.standalone_enabled = standalone_enabled
        self.multi_address_enabled = multi_address_enabled
        self.last_seen: QuorumVerifier | None = None

    def _last_seen(self) -> QuorumVerifier:
        cur = self.current()
        seen = self.last_seen
        return seen if seen is not None and seen.version > cur.version else cur

    def plan(self, req: ReconfigRequest, zxid: int) -> QuorumVerifier:
        """The configuration `req` asks for, versioned `zxid`; KeeperError if refused."""
        seen = self._last_seen()
        if seen.version != self.current().version:
            raise KeeperError(Err.RECONFIG_IN_PROGRESS)
        if req.cur_config_id != -1 and req.cur_config_id != seen.version:
            log.warning("Reconfiguration from version 0x%x failed -- last seen version is "
                        "0x%x", req.cur_config_id, seen.version)
            raise KeeperError(Err.BAD_VERSION)
        if req.new_members is not None:
            qv = bulk(req.new_members, self.standalone_enabled, self.multi_address_enabled)
        else:
            qv = incremental(seen, req.joining, req.leaving, self.multi_address_enabled)
        qv = stamped(qv, zxid)
        voters = len(qv.voting_members)
        if voters < (2 if self.standalone_enabled else 1):
            log.warning("Reconfig failed - new configuration must include at least %d "
                        "follower(s)", 2 if self.standalone_enabled else 1)
            raise KeeperError(Err.BAD_ARGUMENTS)
        if not self.quorum_synced(qv):
            log.warning("Reconfig failed - there must be a connected and synced quorum in "
                        "new configuration")
            raise KeeperError(Err.NEW_CONFIG_NO_QUORUM)
        return qv

    def proposed(self, qv: QuorumVerifier) -> None:
        """The reconfig txn carrying `qv` went into the pipeline (Leader.propose's
        setLastSeenQuorumVerifier)."""
        self.last_seen = qv


__all__ = ["ReconfigPlanner", "ReconfigRequest", "bulk", "check_address_duplicate",
           "incremental", "stamped"]

"""What an ensemble member adds to the operations surface (mntr, srvr, conf, AdminServer),
per role, as ZooKeeper 3.8 reports it.

ZooKeeper answers those commands from whichever ZooKeeperServer currently serves clients:

- Leader-, Follower- and ObserverZooKeeperServer are QuorumZooKeeperServers: mntr adds
  `peer_state` ("following - broadcast") and the gauge `quorum_size`; `conf` adds initLimit,
  syncLimit, electionAlg, electionPort, quorumPort, peerType and the membership; the
  AdminServer's leader, voting_view and zabstate describe the quorum.
- The leader's server also registers the gauges learners, synced_followers,
  synced_non_voting_followers, synced_observers, pending_syncs, leader_uptime and
  last/min/max_proposal_size, adds "Proposal sizes last/min/max" to srvr/stat and
  `proposal_stats` to the AdminServer's srvr/stat, and lists its observers (`observers`).
- A ReadOnlyZooKeeperServer is a plain ZooKeeperServer: standalone answers, except its
  mode ("read-only"), its srvr banner and `conf`'s quorum lines (without the membership).

`QuorumView` computes those answers from a QuorumServer (shell.py) and its Zab core. The ops
modules reach it as `server.quorum_view`; a method returning None means "answer as a
standalone server would", which is also what ZooKeeper does for a server that is not a
QuorumZooKeeperServer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..server.readonly import ReadOnlyCore
from ..server.roles import LeaderCore, LearnerCore
from .config import LearnerType, delimited_host, java_host_string
from .election_wire import ServerState
from .leader import LeaderRole, Phase
from .learner import LearnerRole
from .learner import Stage as LearnerStage

if TYPE_CHECKING:
    from .shell import QuorumServer

# Java's QuorumPeer.ZabState, by the phase our leader / stage our learner is in
_LEADER_ZAB = {Phase.EPOCH: "discovery", Phase.EPOCH_ACK: "discovery",
               Phase.NEWLEADER_ACK: "synchronization", Phase.BROADCAST: "broadcast"}
_LEARNER_ZAB = {LearnerStage.CONNECTING: "discovery", LearnerStage.REGISTERING: "discovery",
                LearnerStage.WAIT_SYNC: "synchronization",
                LearnerStage.SYNCING: "synchronization", LearnerStage.BROADCAST: "broadcast"}


class ProposalStats:
    """Java's BufferStats for the leader's proposals: serialized txn sizes (header, txn and
    digest), -1 until the first proposal. A new leadership starts from scratch."""

    def __init__(self) -> None:
        self.last = self.min = self.max = -1

    def record(self, size: int) -> None:
        self.last = size
        if self.min < 0 or size < self.min:
            self.min = size
        self.max = max(self.max, size)

    def as_dict(self) -> dict[str, int]:
        return {"last_buffer_size": self.last, "min_buffer_size": self.min,
                "max_buffer_size": self.max}

    def __str__(self) -> str:
        return f"{self.last}/{self.min}/{self.max}"


def _address(host: str, port: int) -> str:
    return f"{delimited_host(java_host_string(host))}:{port}"


def _multiple_addresses(addrs: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    """MultipleAddresses as Jackson serializes it (zabstate's quorum/election address)."""
    texts = [_address(h, p) for h, p in addrs]
    return {
        "empty": not texts,
        "all_addresses": texts,
        "all_reachable_addresses": texts,
        "one": texts[0] if texts else None,
        "reachable_address": texts[0] if texts else None,
        "wildcard_addresses": [f"0.0.0.0:{p}" for _, p in addrs],
        "all_ports": [p for _, p in addrs],
        "all_host_strings": [java_host_string(h) for h, _ in addrs],
        "all_reachable_addresses_or_all": texts,
        "reachable_or_one": texts[0] if texts else None,
    }


class QuorumView:
    """Read-only answers about one QuorumServer for the ops modules; see the module doc."""

    def __init__(self, server: QuorumServer) -> None:
        self.server = server

    # --- which server serves ---------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return isinstance(self.server.core, ReadOnlyCore)

    @property
    def in_quorum(self) -> bool:
        """A QuorumZooKeeperServer serves (leader, follower or observer)."""
        return isinstance(self.server.core, (LeaderCore, LearnerCore))

    def _leader_role(self) -> LeaderRole | None:
        peer = self.server.peer
        if not isinstance(self.server.core, LeaderCore) or peer is None:
            return None
        role = peer.role
        return role if isinstance(role, LeaderRole) else None

    # --- Zab state ---------------------------------------------------------------------------

    def zab_state(self) -> str:
        """election, discovery, synchronization or broadcast (QuorumPeer.ZabState)."""
        peer = self.server.peer
        role = None if peer is None else peer.role
        if isinstance(role, LeaderRole):
            return _LEADER_ZAB[role.phase]
        if isinstance(role, LearnerRole):
            return _LEARNER_ZAB[role.stage]
        return "election"

    def peer_state(self) -> str:
        """QuorumPeer.getDetailedPeerState without the sync mode: "leading - broadcast"."""
        state = self.server.state.name.lower()
        zab = self.zab_state()
        return state if zab == "election" else f"{state} - {zab}"

    # --- mntr --------------------------------------------------------------------------------

    def monitor_values(self) -> list[tuple[str, Any]]:
        """What QuorumZooKeeperServer.dumpMonitorValues adds after server_state (an
        observer also names the server it follows)."""
        if not self.in_quorum:
            return []
        out: list[tuple[str, Any]] = [("peer_state", self.peer_state())]
        if self.server.state == ServerState.OBSERVING:
            out.append(("observer_master_id", self.server.leader_id))
        return out

    def gauges(self) -> list[tuple[str, Any]]:
        """The gauges a quorum role registers (quorum_size; the leader's own)."""
        if not self.in_quorum:
            return []
        out: list[tuple[str, Any]] = [
            ("quorum_size", len(self.server.qcfg.verifier.voting_members))]
        role = self._leader_role()
        if role is not None:
            stats = self.server.proposal_stats
            out += [
                ("learners", role.learner_count),
                ("synced_followers", len(role.synced_learners(observers=False))),
                ("synced_non_voting_followers", len(role.synced_non_voting_followers())),
                ("synced_observers", len(role.synced_learners(observers=True))),
                ("pending_syncs", role.pending_sync_count),
                ("leader_uptime", self.server.leader_uptime_ms()),
                ("last_proposal_size", stats.last),
                ("max_proposal_size", stats.max),
                ("min_proposal_size", stats.min),
            ]
        return out

    # --- srvr / stat / conf ------------------------------------------------------------------

    def proposal_stats(self) -> ProposalStats | None:
        return self.server.proposal_stats if self._leader_role() is not None else None

    def conf_tail(self) -> str:
        """The lines `conf` prints after serverId: the quorum settings, and the membership
        unless read-only (QuorumZooKeeperServer / ReadOnlyZooKeeperServer.dumpConf)."""
        if not (self.in_quorum or self.read_only):
            return ""
        qcfg = self.server.qcfg
        me = qcfg.me
        assert me is not None
        lines = [
            f"initLimit={qcfg.init_limit}",
            f"syncLimit={qcfg.sync_limit}",
            f"electionAlg={qcfg.election_alg}",
            "electionPort=" + "|".join(str(p) for _, p in me.election_addrs),
            "quorumPort=" + "|".join(str(p) for _, p in me.quorum_addrs),
            f"peerType={0 if me.type is LearnerType.PARTICIPANT else 1}",
        ]
        text = "".join(line + "\n" for line in lines)
        if self.in_quorum:
            text += "membership: \n" + qcfg.verifier.to_string()  # no final newline, as Java
        return text

    # --- AdminServer ---------------------------------------------------------------------------

    def leader(self) -> dict[str, Any] | None:
        if not self.in_quorum:
            return None
        sid = self.server.leader_id
        member = None if sid is None else self.server.qcfg.verifier.members.get(sid)
        ip = "|".join(java_host_string(h) for h, _ in member.quorum_addrs) if member else ""
        return {"is_leader": isinstance(self.server.core, LeaderCore),
                "leader_id": sid if sid is not None else -1, "leader_ip": ip}

    def observers(self) -> dict[str, Any] | None:
        role = self._leader_role()
        if role is None:
            return None
        sids = role.synced_learners(observers=True)
        return {"synced_observers": len(sids),
                "observers": [self.server.learner_info(sid) for sid in sids]}

    def voting_view(self) -> dict[str, Any] | None:
        if not self.in_quorum:
            return None
        view = {}
        for sid, m in sorted(self.server.qcfg.verifier.voting_members.items()):
            client = _address(*m.client_addr) if m.client_addr is not None else ""
            view[sid] = {
                "server_addresses": [_address(h, p) for h, p in m.quorum_addrs],
                "election_addresses": [_address(h, p) for h, p in m.election_addrs],
                "client_address": client,
                "learner_type": "participant" if m.type is LearnerType.PARTICIPANT
                else "observer",
            }
        return {"current_config": view}

    def zabstate(self) -> dict[str, Any] | None:
        if not self.in_quorum:
            return None
        server = self.server
        me = server.qcfg.me
        assert me is not None and server.core is not None
        zxid = server.core.last_zxid
        client = server.qcfg.client_port_address or me.client_addr
        if client is None and server.port is not None:
            client = (server.config.client_port_address, server.port)
        return {
            "myid": server.my_id,
            "is_leader": server.state == ServerState.LEADING,
            "quorum_address": _multiple_addresses(me.quorum_addrs),
            "election_address": _multiple_addresses(me.election_addrs),
            "client_address": _address(*client) if client is not None else None,
            "voting": server.qcfg.verifier.is_voter(server.my_id),
            "last_zxid": f"0x{zxid & 0xFFFFFFFFFFFFFFFF:x}",
            "zab_epoch": zxid >> 32,
            "zab_counter": zxid & 0xFFFFFFFF,
            "zabstate": self.zab_state(),
        }


__all__ = ["ProposalStats", "QuorumView"]

"""mntr, srvr, stat, conf, isro and the AdminServer of ensemble members, zookapter against
Apache ZooKeeper 3.8, per role.

- Leader and follower: one mixed ensemble ("jzj"); its leader is killed (and restarted) until
  each kind has led, and every member's answers are recorded per (kind, role). Both kinds
  must print the same mntr keys (peer_state, quorum_size; learners, synced_followers,
  synced_non_voting_followers, synced_observers, pending_syncs, leader_uptime and
  last/min/max_proposal_size on the leader) with values of the same shape, the same srvr/stat
  lines ("Proposal sizes last/min/max" on the leader), the same conf keys (initLimit ...
  peerType, then the membership, which is the same text everywhere), and AdminServer answers
  of the same structure (leader, observers, voting_view, zabstate, monitor, srvr, stat, conf,
  is_read_only). Members recorded at the same moment agree on Zxid and Node count.
- Read-only: a lone member of each kind with readonlymode.enabled (its partners never start).
- Without a quorum and without read-only mode: "not currently serving" everywhere, isro
  "null".

Values that differ by nature (ports, paths, counters, versions) are compared by shape only;
summary sets keyed by data (per-namespace traffic) or by learner id (learner_handler_qp_*)
are left out: zookapter does not keep them.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from zookapter.client import ZooKeeperClient

from ensemble import Ensemble, JavaPeer, wait_for
from oracle import JAVA_DIR, _free_port, apache_zookeeper_available
from oracle import four_letter_word as _4lw

SERVLET_JAR = JAVA_DIR / "servlet-api.jar"  # Jetty (Java's AdminServer) needs it
pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available() or not SERVLET_JAR.exists(),
                                 reason="Apache ZooKeeper (java, jars, servlet-api) missing")]

WAIT_S = 60.0
WORDS = ("mntr", "srvr", "stat", "conf", "isro")
ADMIN = ("leader", "observers", "voting_view", "zabstate", "monitor", "srvr", "stat", "conf",
         "is_read_only")
# summary sets named after data or learner ids: not kept by zookapter
DYNAMIC_KEY = re.compile(r"^zk_(avg|min|max|cnt|sum|p50|p95|p99|p999)_"
                         r"(\d+_learner_handler_qp_\w+|.+_(write|read)_per_namespace)$")


class AdminEnsemble(Ensemble):
    """An Ensemble whose members also run the AdminServer, each on a port of its own."""

    def prepare(self) -> None:
        super().prepare()
        self.admin_ports = {sid: _free_port() for sid in self.peers}
        for sid, peer in self.peers.items():
            with open(peer.cfg_path, "a", encoding="utf-8") as f:
                f.write(f"admin.enableServer=true\nadmin.serverAddress=127.0.0.1\n"
                        f"admin.serverPort={self.admin_ports[sid]}\n")
            if type(peer) is JavaPeer:
                argv = [a for a in peer.argv if not a.startswith("-Dzookeeper.admin.")]
                cp = argv.index("-cp") + 1
                argv[cp] += f":{SERVLET_JAR}"
                peer.argv = argv

    def admin(self, sid: int, command: str) -> Any:
        """The command's JSON; the AdminServer may start a moment after the client port."""
        url = f"http://127.0.0.1:{self.admin_ports[sid]}/commands/{command}"
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as reply:
                    return json.loads(reply.read())
            except urllib.error.URLError as e:
                if not isinstance(e.reason, ConnectionRefusedError) or \
                        time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def answers(self, sid: int) -> dict[str, Any]:
        port = self.ports[sid].client
        out: dict[str, Any] = {w: _4lw("127.0.0.1", port, w, timeout_s=5.0) for w in WORDS}
        out.update({f"admin {c}": self.admin(sid, c) for c in ADMIN})
        return out


# --- shapes -------------------------------------------------------------------------------------

def _mntr(text: str) -> dict[str, str]:
    pairs = (line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return {k: v for k, v in pairs if not DYNAMIC_KEY.match(k)}


def _scalar_shape(value: str) -> str:
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if re.fullmatch(r"-?\d+\.\d+(E-?\d+)?", value):
        return "double"
    return "text"


def _json_shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_shape(v) for k, v in value.items()
                if not DYNAMIC_KEY.match(f"zk_{k}")}
    if isinstance(value, list):
        return [_json_shape(value[0])] if value else []
    return type(value).__name__


def _labels(text: str) -> list[str]:
    """srvr/stat lines up to their first ':' (connection lines dropped: clients differ)."""
    return [line.split(":", 1)[0] for line in text.splitlines() if not line.startswith(" /")]


def _line(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(label + ": "))[
        len(label) + 2:]


def _conf(text: str) -> tuple[list[str], str]:
    head, _, membership = text.partition("membership: \n")
    return [line.split("=", 1)[0] for line in head.splitlines()], membership


def assert_same_shape(java: dict[str, Any], ours: dict[str, Any], what: str) -> None:
    jm, zm = _mntr(java["mntr"]), _mntr(ours["mntr"])
    assert sorted(jm) == sorted(zm), f"{what}: mntr keys differ"
    shapes = {k: (_scalar_shape(jm[k]), _scalar_shape(zm[k])) for k in jm}
    assert {k: s for k, s in shapes.items() if s[0] != s[1]} == {}, f"{what}: mntr values"
    for word in ("srvr", "stat"):
        assert _labels(java[word]) == _labels(ours[word]), f"{what}: {word} lines"
    for answers in (java, ours):  # the average as Java prints a double: 0.0, 4.5, 7.6667
        latency = _line(answers["srvr"], "Latency min/avg/max")
        assert re.fullmatch(r"\d+/(0|[1-9]\d*)\.(0|\d{0,3}[1-9])/\d+", latency), latency
    assert _conf(java["conf"])[0] == _conf(ours["conf"])[0], f"{what}: conf keys"
    assert java["isro"] == ours["isro"]
    for command in ADMIN:
        key = f"admin {command}"
        assert _json_shape(java[key]) == _json_shape(ours[key]), f"{what}: admin {command}"


# --- leader and follower ---------------------------------------------------------------------

_rounds = itertools.count()


def _record(e: AdminEnsemble, seen: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Write, sync everyone, then take every live member's answers at one moment."""
    with ZooKeeperClient(e.hosts(e.live()), timeout=20.0) as c:
        base = f"/ops-{next(_rounds)}"
        c.create(base, b"x" * 100)
        c.set(base, b"y" * 10)
    sids = e.live()
    # one open session per member (closing one would be a write), each member synced
    clients = [ZooKeeperClient(e.hosts([sid]), timeout=20.0) for sid in sids]
    try:
        for c in clients:
            c.start(WAIT_S)
        for c in clients:
            c.sync("/")
        moment = {sid: e.answers(sid) for sid in sids}
    finally:
        for c in clients:
            c.close()
    zxids = {_line(a["srvr"], "Zxid") for a in moment.values()}
    counts = {_line(a["srvr"], "Node count") for a in moment.values()}
    assert len(zxids) == 1 and len(counts) == 1, (zxids, counts)
    memberships = {_conf(a["conf"])[1] for a in moment.values()}
    assert len(memberships) == 1 and "server.3=" in memberships.pop()
    views = {json.dumps(a["admin voting_view"]["current_config"], sort_keys=True)
             for a in moment.values()}
    assert len(views) == 1
    for sid, answers in moment.items():
        role = _line(answers["srvr"], "Mode")
        seen.setdefault((e.kinds[sid - 1], role), answers)
        check_role_values(e, sid, role, answers)


def check_role_values(e: AdminEnsemble, sid: int, role: str, answers: dict[str, Any]) -> None:
    """What both kinds must report with equal values."""
    mntr = _mntr(answers["mntr"])
    leading = role == "leader"
    assert mntr["zk_server_state"] == role
    assert mntr["zk_peer_state"] == f"{'leading' if leading else 'following'} - broadcast"
    assert mntr["zk_quorum_size"] == "3"
    head = answers["conf"].partition("membership: \n")[0]
    conf = dict(line.split("=", 1) for line in head.splitlines())
    assert conf["serverId"] == str(sid) and conf["peerType"] == "0"
    assert conf["electionPort"] == str(e.ports[sid].election)
    assert conf["quorumPort"] == str(e.ports[sid].quorum)
    lead = answers["admin leader"]
    assert lead["is_leader"] is leading and lead["leader_ip"] == "127.0.0.1"
    zab = answers["admin zabstate"]
    assert (zab["myid"], zab["is_leader"], zab["voting"], zab["zabstate"]) == \
        (sid, leading, True, "broadcast")
    assert answers["admin is_read_only"]["read_only"] is False
    if leading:
        live_followers = str(len(e.live()) - 1)
        assert mntr["zk_learners"] == mntr["zk_synced_followers"] == live_followers
        assert mntr["zk_synced_observers"] == mntr["zk_synced_non_voting_followers"] == "0"
        assert mntr["zk_pending_syncs"] == "0"
        sizes = _line(answers["srvr"], "Proposal sizes last/min/max")
        assert re.fullmatch(r"\d+/\d+/\d+", sizes)
        assert answers["admin srvr"]["proposal_stats"]["max_buffer_size"] > 0


def test_leader_and_follower_report_like_apache() -> None:
    e = AdminEnsemble(3, kinds="jzj")
    e.prepare()
    for peer in e.peers.values():
        peer.start()
    try:
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        e.wait_for_quorum(WAIT_S)
        for _ in range(4):
            _record(e, seen)
            if {("j", "leader"), ("z", "leader")} <= set(seen):
                break
            leader = e.leader()
            assert leader is not None
            e.kill(leader)
            e.wait_for_quorum(WAIT_S)
            e.restart(leader)
            e.wait_for_quorum(WAIT_S)
        assert set(seen) == {(k, r) for k in "jz" for r in ("leader", "follower")}, set(seen)
        for role in ("leader", "follower"):
            assert_same_shape(seen[("j", role)], seen[("z", role)], role)
    finally:
        e.stop()


# --- without a quorum ----------------------------------------------------------------------------


def _lone_members(read_only: bool) -> list[AdminEnsemble]:
    """Member 1 of a Java and of a zookapter ensemble whose partners never start."""
    lone = []
    for kinds in ("jjj", "zzz"):
        e = AdminEnsemble(3, kinds=kinds, read_only=read_only)
        e.prepare()
        e.restart(1)
        lone.append(e)
    return lone


def _stop(ensembles: list[AdminEnsemble]) -> None:
    for e in ensembles:
        e.stop()


def test_read_only_member_reports_like_apache() -> None:
    lone = _lone_members(read_only=True)
    try:
        for e in lone:
            e.wait_for_mode(1, "read-only", WAIT_S)
        java, ours = (e.answers(1) for e in lone)
        assert_same_shape(java, ours, "read-only")
        for answers in (java, ours):
            assert answers["isro"] == "ro"
            assert answers["srvr"].splitlines()[1] == \
                "READ-ONLY mode; serving only read-only clients"
            assert "zk_peer_state" not in answers["mntr"]
            assert answers["conf"].endswith("peerType=0\n")  # no membership
            assert answers["admin leader"] == {"error": "server is not initialized",
                                               "command": "leader"}
            assert answers["admin voting_view"]["current_config"] == {}
            assert answers["admin zabstate"]["zabstate"] == ""
            assert answers["admin is_read_only"]["read_only"] is True
    finally:
        _stop(lone)


NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


def test_member_without_quorum_reports_like_apache() -> None:
    lone = _lone_members(read_only=False)
    try:
        port = {id(e): e.ports[1].client for e in lone}
        for e in lone:
            wait_for(lambda e=e: _isro(port[id(e)]) == "null", WAIT_S, "a LOOKING member",
                     e.peers.values())
        for e in lone:
            p = port[id(e)]
            for word in ("mntr", "srvr", "stat", "conf", "cons", "dump"):
                assert _4lw("127.0.0.1", p, word) == NOT_SERVING + "\n", (e.kinds, word)
            assert _4lw("127.0.0.1", p, "ruok") == "imok"
            assert _4lw("127.0.0.1", p, "envi").startswith("Environment:\n")
            for command in ("leader", "voting_view", "srvr", "conf", "is_read_only"):
                assert e.admin(1, command) == {"command": command, "error": NOT_SERVING}
            assert e.admin(1, "zabstate") == {"voting": False, "zabstate": "",
                                              "command": "zabstate", "error": None}
    finally:
        _stop(lone)


def _isro(port: int) -> str | None:
    try:
        return _4lw("127.0.0.1", port, "isro", timeout_s=1.0)
    except OSError:
        return None


"""Apache ZooKeeper 3.8 quorum peers (QuorumPeerMain) as test subprocesses.

- `JavaPeer`: one peer with its own dataDir, myid and zoo.cfg (the caller writes the server.N
  lines), started, SIGKILLed and restarted on the same ports and dataDir.
- `ApacheEnsemble`: N such peers on free loopback ports forming one ensemble; `start()`
  returns once a quorum serves (one leader, the others following). Tests kill, pause
  (SIGSTOP/SIGCONT) and restart members, replace one by the other implementation on its
  dataDir (`replace()`, a rolling migration), and read each member's role with the `srvr`
  four-letter word (`mode()`). With `network=` (netfault.py) each member runs in its own
  network namespace at its own address, so that tests can partition them.
- `wait_for` / `server_mode`: the polling helpers both are built on.

Start-up on a small shared machine is dominated by JVM boot, so the ensemble uses a short
tickTime (250 ms: election and the read-only grace period finish fast) while initLimit and
syncLimit stay generous in wall-clock terms (5 s / 2.5 s), so that a GC or scheduling pause
does not make a follower drop out of the quorum.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from oracle import _classpath, _free_port, _java_binary
from oracle import four_letter_word as _4lw

if TYPE_CHECKING:
    from netfault import NamespaceNetwork

HOST = "127.0.0.1"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
T = TypeVar("T")


@dataclass
class Ports:
    client: int = field(default_factory=_free_port)
    quorum: int = field(default_factory=_free_port)
    election: int = field(default_factory=_free_port)


def _distinct_ports(count: int) -> list[int]:
    """`count` different ports free now, below Linux's ephemeral range (32768+): a port the
    kernel hands out for port 0 can be handed out again, to another member of the same
    ensemble or to some outgoing connection, before the server that was given it binds it
    (a restarted member then fails with "address already in use")."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(20000, 32768)
        if port in chosen:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


class JavaPeer:
    """One Apache QuorumPeerMain in a subprocess, with its own dataDir and zoo.cfg."""

    def __init__(self, root: Path, sid: int, cfg: dict[str, str], server_lines: list[str],
                 jvm_props: dict[str, str] | None = None) -> None:
        self.sid, self.dir = sid, root / f"s{sid}"
        self.cfg, self.server_lines, self.jvm_props = cfg, server_lines, jvm_props
        (self.dir / "data").mkdir(parents=True, exist_ok=True)  # exists for a replacement
        (self.dir / "data" / "myid").write_text(f"{sid}\n")
        lines = [f"{k}={v}" for k, v in {"dataDir": str(self.dir / "data"), **cfg}.items()]
        self.cfg_path = self.dir / "zoo.cfg"
        self.cfg_path.write_text("\n".join(lines + server_lines) + "\n")
        props = {"zookeeper.admin.enableServer": "false", "zookeeper.jmx.log4j.disable": "true",
                 "org.slf4j.simpleLogger.defaultLogLevel": "info", **(jvm_props or {})}
        self.argv = [_java_binary() or "java", "-Xmx128m", "-XX:TieredStopAtLevel=1",
                     "-XX:+UseSerialGC", "-XX:-UsePerfData",
                     *(f"-D{k}={v}" for k, v in props.items()),
                     "-cp", _classpath(), MAIN, str(self.cfg_path)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> JavaPeer:
        """Start (or restart after stop/kill) on the same config; the log is appended to."""
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, sockets are reset by the kernel (a crash)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process freezes with its sockets open (a long GC pause, a VM stall)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)  # a paused process would ignore SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


class ZookapterPeer(JavaPeer):
    """A zookapter ensemble member in a subprocess: same config files as a JavaPeer."""

    def __init__(self, root: Path, sid: int, cfg: dict[str, str], server_lines: list[str],
                 jvm_props: dict[str, str] | None = None) -> None:
        super().__init__(root, sid, cfg, server_lines, jvm_props)
        defines = [f"-D{k}={v}" for k, v in (jvm_props or {}).items()]
        self.argv = [sys.executable, "-m", "zookapter", "--log-level", "INFO", "server",
                     str(self.cfg_path), *defines]


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str,
             peers: Iterable[JavaPeer] = ()) -> T:
    """Poll `predicate` until it returns something truthy; on timeout fail with the peers'
    log tails (a start-up problem is otherwise invisible)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    tails = "\n".join(f"--- server {p.sid}:\n{p.log()[-3000:]}" for p in peers)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def server_mode(port: int, host: str = HOST) -> str | None:
    """The `Mode:` line of `srvr` (leader, follower, observer, read-only, standalone), or None
    while the server is down or not serving."""
    try:
        reply = _4lw(host, port, "srvr", timeout_s=1.0)
    except OSError:
        return None
    for line in reply.splitlines():
        if line.startswith("Mode: "):
            return line[6:]
    return None


class ApacheEnsemble:
    """`size` Apache ZooKeeper peers forming one ensemble on loopback.

    `read_only=True` runs them with -Dreadonlymode.enabled=true: a peer that has lost its
    quorum serves reads after a grace period (max(2 s, tickTime)). ZooKeeper 3.6+ only lets
    *local* sessions be created on such a server, so `localSessionsEnabled` is turned on too,
    with `localSessionsUpgradingEnabled` (off by default): a session becomes global when it
    creates its first ephemeral node instead of getting EphemeralOnLocalSessionError.
    """

    def __init__(self, size: int = 3, *, read_only: bool = False, tick_time_ms: int = 250,
                 extra_config: dict[str, str] | None = None, kinds: str | None = None,
                 network: NamespaceNetwork | None = None, observers: str = "") -> None:
        """`kinds`: one letter per member, "j" for Apache ZooKeeper, "z" for zookapter
        (default: all Apache), e.g. "jjz" for a mixed ensemble. `network`: run each member
        in its own network namespace at its own address (netfault.py), so that tests can
        partition them; it must be set up before start() or prepare(). `observers`: the
        kinds of extra non-voting members (ids size+1, ...), e.g. "z" for one zookapter
        observer."""
        self.voters = size
        self.size = size + len(observers)
        self.kinds = (kinds or "j" * size) + observers
        assert len(self.kinds) == self.size and set(self.kinds) <= {"j", "z"}
        self.read_only = read_only
        self.tick_time_ms = tick_time_ms
        self.extra_config = dict(extra_config or {})
        self.network = network
        self.ports: dict[int, Ports] = {}
        self.peers: dict[int, JavaPeer] = {}
        self.root: Path | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> ApacheEnsemble:
        """Start every peer and wait for a serving quorum; one retry with fresh ports (a free
        port can be taken by another process before Java binds it)."""
        for attempt in range(2):
            self.prepare()
            for peer in self.peers.values():
                peer.start()
            try:
                self.wait_for_quorum(timeout_s)
                return self
            except AssertionError:
                self.stop()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for peer in self.peers.values():
            peer.stop()
        if self.root is not None and not os.environ.get("ZK_ORACLE_KEEP_DIR"):
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> ApacheEnsemble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self, sid: int) -> None:
        self.peers[sid].kill()

    def restart(self, sid: int) -> None:
        if not self.peers[sid].running:
            self.peers[sid].start()

    def pause(self, sid: int) -> None:
        self.peers[sid].pause()

    def resume(self, sid: int) -> None:
        self.peers[sid].resume()

    def replace(self, sid: int, kind: str) -> None:
        """Stop member `sid` (SIGTERM) and start the other implementation ("j"/"z") in its
        place: same dataDir, ports and config (a rolling migration, one member at a time)."""
        old = self.peers[sid]
        old.stop()
        assert self.root is not None
        peer = self._make_peer(kind, sid, old.cfg, old.server_lines, old.jvm_props or {})
        self.kinds = self.kinds[:sid - 1] + kind + self.kinds[sid:]
        self.peers[sid] = peer
        peer.start()

    # -- observation ----------------------------------------------------------------------

    def hosts(self, sids: Iterable[int] | None = None) -> str:
        """A connect string for the given members (all by default), in that order."""
        chosen = self.peers if sids is None else sids
        return ",".join(f"{self.address(s)}:{self.ports[s].client}" for s in chosen)

    def address(self, sid: int) -> str:
        """Where member `sid` listens: loopback, or its namespace's address."""
        return HOST if self.network is None else self.network.address(sid)

    def mode(self, sid: int) -> str | None:
        if not self.peers[sid].running:
            return None
        return server_mode(self.ports[sid].client, self.address(sid))

    def live(self) -> list[int]:
        return [sid for sid, peer in self.peers.items() if peer.running]

    def leader(self) -> int | None:
        leaders = [sid for sid in self.live() if self.mode(sid) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_for_quorum(self, timeout_s: float = 60.0, sids: Iterable[int] | None = None,
                        ) -> int:
        """Wait until every live peer (of `sids`, if given: e.g. all but a paused or cut-off
        one) serves as leader or follower (exactly one leader); return the leader's id."""
        def settled() -> int | None:
            chosen = self.live() if sids is None else [s for s in sids if s in self.live()]
            modes = {sid: self.mode(sid) for sid in chosen}
            leaders = [sid for sid, m in modes.items() if m == "leader"]
            ok = len(leaders) == 1 and all(m in ("leader", "follower", "observer")
                                           for m in modes.values())
            return leaders[0] if ok else None
        return wait_for(settled, timeout_s, "a serving quorum", self.peers.values())

    def wait_for_mode(self, sid: int, mode: str, timeout_s: float = 30.0) -> None:
        wait_for(lambda: self.mode(sid) == mode, timeout_s, f"server {sid} in mode {mode}",
                 [self.peers[sid]])

    def prepare(self) -> None:
        """Pick ports and write every member's config and myid, starting nothing (start()
        does this itself; a test may then start a minority of members with restart())."""
        self.root = Path(tempfile.mkdtemp(prefix="zk-ensemble-"))
        ports = iter(_distinct_ports(3 * self.size))
        self.ports = {sid: Ports(next(ports), next(ports), next(ports))
                      for sid in range(1, self.size + 1)}
        lines = [f"server.{sid}={self.address(sid)}:{p.quorum}:{p.election}"
                 f"{':observer' if sid > self.voters else ''};"
                 f"{self.address(sid)}:{p.client}" for sid, p in self.ports.items()]
        base = {"tickTime": str(self.tick_time_ms),
                "initLimit": str(max(5000 // self.tick_time_ms, 2)),
                "syncLimit": str(max(2500 // self.tick_time_ms, 2)),
                "maxSessionTimeout": "60000", "4lw.commands.whitelist": "*",
                "admin.enableServer": "false", "forceSync": "no",
                "maxClientCnxns": "0"}
        if self.read_only:
            base.update(localSessionsEnabled="true", localSessionsUpgradingEnabled="true")
        props = {"readonlymode.enabled": "true"} if self.read_only else {}
        self.peers = {sid: self._make_peer(
            self.kinds[sid - 1], sid,
            {**base, **self.extra_config,
             **({"peerType": "observer"} if sid > self.voters else {})}, lines, props)
            for sid in self.ports}

    def _make_peer(self, kind: str, sid: int, cfg: dict[str, str], lines: list[str],
                   props: dict[str, str]) -> JavaPeer:
        assert self.root is not None
        peer = {"j": JavaPeer, "z": ZookapterPeer}[kind](self.root, sid, cfg, lines, props)
        if self.network is not None:
            peer.argv = self.network.wrap(sid, peer.argv)
        return peer


Ensemble = ApacheEnsemble  # any mix of Apache ZooKeeper and zookapter members (`kinds`)

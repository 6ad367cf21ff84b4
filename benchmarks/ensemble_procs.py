"""Ensemble members as processes for the ensemble benchmark (ensemble.py).

`Ensemble(kind)` writes a zoo.cfg and data/myid per member (fresh loopback ports and
dataDirs, the same settings for both implementations), starts 3 Apache ZooKeeper 3.8
QuorumPeerMain processes or 3 zookapter members (`python -m zookapter server zoo.cfg`), and
waits until they serve as one quorum, read from each member's `srvr` Mode line.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import zkbench

QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
SIZE = 3


def ensemble_settings(extra: dict[str, str] | None = None) -> dict[str, str]:
    """zoo.cfg settings shared by both ensembles: ZooKeeper's sample timings, fsync on
    (forceSync and snapCount keep their defaults; ZKBENCH_SNAPCOUNT=n overrides snapCount,
    e.g. to see what snapshots cost), no AdminServer, srvr allowed."""
    snap = os.environ.get("ZKBENCH_SNAPCOUNT")
    return {"tickTime": "2000", "initLimit": "10", "syncLimit": "5",
            "maxClientCnxns": "0", "admin.enableServer": "false",
            "4lw.commands.whitelist": "srvr,stat,mntr,ruok", **(extra or {}),
            **({"snapCount": snap} if snap else {})}


@dataclass
class Member:
    """One ensemble member: its ports, directory and process."""
    sid: int
    kind: str
    dir: Path
    client: int = field(default_factory=zkbench.free_port)
    quorum: int = field(default_factory=zkbench.free_port)
    election: int = field(default_factory=zkbench.free_port)
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def logfile(self) -> Path:
        return self.dir / "server.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def server_line(self) -> str:
        return f"server.{self.sid}=127.0.0.1:{self.quorum}:{self.election};127.0.0.1:{self.client}"

    def write_config(self, settings: dict[str, str], lines: list[str]) -> Path:
        """zoo.cfg plus data/myid, as ZooKeeper's QuorumPeerMain expects them."""
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{self.sid}\n")
        cfg = self.dir / "zoo.cfg"
        body = [f"dataDir={data}"] + [f"{k}={v}" for k, v in settings.items()] + lines
        cfg.write_text("\n".join(body) + "\n")
        return cfg

    def command(self, cfg: Path, xmx: str) -> list[str]:
        if self.kind == "apache":
            return ["java", f"-Xmx{xmx}", "-Dzookeeper.admin.enableServer=false",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", zkbench.apache_classpath(), QUORUM_MAIN, str(cfg)]
        return zookapter_argv() + ["--log-level", "WARNING", "server", str(cfg)]

    def start(self, cfg: Path, xmx: str, autogroup_nice: int | None = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.logfile, "ab") as lf:
            self.proc = subprocess.Popen(self.command(cfg, xmx), stdout=lf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.dir, start_new_session=True)
        if autogroup_nice is not None:
            set_autogroup_nice(self.proc.pid, autogroup_nice)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def set_autogroup_nice(pid: int, nice: int) -> bool:
    """Weight of the scheduler autogroup of `pid` (its session) against other sessions'.
    Each member runs in its own session, so with kernel.sched_autogroup_enabled the CPU is
    shared between sessions, not threads; a negative value (root only) shields the benchmark
    from other load on the machine, the same way for both implementations."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError:
        return False


def zookapter_argv() -> list[str]:
    """How to run zookapter: this interpreter if it has the package, else the repo's venv,
    else a `zookapter` on PATH."""
    if importlib.util.find_spec("zookapter") is not None:
        return [sys.executable, "-m", "zookapter"]
    venv = zkbench.REPO_DIR / ".venv" / "bin" / "python"
    if venv.exists():
        return [str(venv), "-m", "zookapter"]
    exe = shutil.which("zookapter")
    if exe is None:
        raise RuntimeError("zookapter is not installed (cd /work/main && pip install -e .)")
    return [exe]


def four_letter(port: int, word: str, timeout: float = 2.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def mode(m: Member) -> str | None:
    """The member's `Mode:` line from srvr (leader, follower, ...), None if not serving."""
    if not m.alive():
        return None
    try:
        reply = four_letter(m.client, "srvr")
    except OSError:
        return None
    for line in reply.splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return None


class Ensemble:
    """SIZE members of one kind on loopback, with fresh ports and dataDirs."""

    def __init__(self, kind: str, xmx: str = "1g", keep: bool = False,
                 extra_cfg: dict[str, str] | None = None,
                 autogroup_nice: int | None = None) -> None:
        self.kind, self.xmx, self.keep = kind, xmx, keep
        self.autogroup_nice = autogroup_nice
        self.root = Path(tempfile.mkdtemp(prefix=f"zkbench-ens-{kind}-"))
        self.members = [Member(sid, kind, self.root / f"s{sid}") for sid in range(1, SIZE + 1)]
        self.settings = ensemble_settings(extra_cfg)

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{m.client}" for m in self.members)

    def start(self, timeout: float = 120.0) -> int:
        """Start every member, return the leader's sid once a quorum serves."""
        lines = [m.server_line() for m in self.members]
        for m in self.members:
            m.start(m.write_config(self.settings, lines), self.xmx, self.autogroup_nice)
        return self.wait_for_quorum(timeout)

    def modes(self) -> dict[int, str | None]:
        return {m.sid: mode(m) for m in self.members}

    def wait_for_quorum(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        modes: dict[int, str | None] = {}
        while time.monotonic() < deadline:
            dead = [m.sid for m in self.members if not m.alive()]
            if dead:
                raise RuntimeError(f"member(s) {dead} exited during start-up:\n" + self.tails())
            modes = self.modes()
            leaders = [sid for sid, md in modes.items() if md == "leader"]
            if len(leaders) == 1 and all(md in ("leader", "follower") for md in modes.values()):
                return leaders[0]
            time.sleep(0.2)
        raise RuntimeError(f"no quorum within {timeout}s (modes {modes}):\n" + self.tails())

    def tails(self, n: int = 15) -> str:
        return "\n".join(f"--- member {m.sid}:\n{m.log_tail(n)}" for m in self.members)

    def data_usage(self) -> dict:
        files, size = 0, 0
        for m in self.members:
            for root, _dirs, names in os.walk(m.dir / "data"):
                for name in names:
                    if name == "myid":
                        continue
                    try:
                        size += os.path.getsize(os.path.join(root, name))
                        files += 1
                    except OSError:
                        pass
        return {"data_dir_files": files, "data_dir_bytes": size}

    def stop(self) -> None:
        for m in self.members:
            m.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

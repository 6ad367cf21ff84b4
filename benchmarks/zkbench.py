"""Shared helpers for the zookapter benchmarks (run.py, memory.py).

Starts Apache ZooKeeper (Debian's 3.8 jars) and zookapter as throw-away
standalone servers on free ports, builds and runs the native load generator
(zkload.c), and reads process memory from /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
BIN_DIR = BENCH_DIR / "bin"
ZKLOAD = BIN_DIR / "zkload"
RESULTS_DIR = BENCH_DIR / "results"

JAVA_DIR = Path("/usr/share/java")
ZK_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"

SERVERS = ("apache", "zookapter")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# build


def build_zkload(force: bool = False) -> Path:
    """Compile zkload.c into benchmarks/bin/zkload if missing or stale."""
    src = BENCH_DIR / "zkload.c"
    if not force and ZKLOAD.exists() and ZKLOAD.stat().st_mtime >= src.stat().st_mtime:
        return ZKLOAD
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-g", "-Wall", "-Wextra", "-std=gnu11", "-o", str(ZKLOAD), str(src),
           "-lzookeeper_mt", "-lpthread"]
    log("building: " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    return ZKLOAD


# ---------------------------------------------------------------------------
# servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on port {port} within {timeout}s")


def write_cfg(workdir: Path, port: int, extra: dict[str, str] | None = None) -> Path:
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "zoo.cfg"
    # Plain standalone config understood by both servers; forceSync left at
    # its default (yes), snapCount at its default (100000).
    cfg.write_text(
        "tickTime=2000\n"
        f"dataDir={data}\n"
        f"clientPort={port}\n"
        "clientPortAddress=127.0.0.1\n"
        "maxClientCnxns=0\n"
        # no AdminServer: zookapter would bind 8080 (Apache's classpath here lacks it)
        "admin.enableServer=false\n"
        + "".join(f"{k}={v}\n" for k, v in (extra or {}).items())
    )
    return cfg


def apache_classpath() -> str:
    # zookeeper.jar's manifest pulls in its runtime deps (netty, jute, ...);
    # slf4j-simple supplies a logger binding (level set via system property).
    jars = [JAVA_DIR / "zookeeper.jar", JAVA_DIR / "slf4j-simple.jar"]
    for j in jars:
        if not j.exists():
            raise FileNotFoundError(f"missing {j}: is the Debian zookeeper package installed?")
    return ":".join(str(j) for j in jars)


def apache_available() -> tuple[bool, str]:
    if not shutil.which("java"):
        return False, "java not found"
    try:
        apache_classpath()
    except FileNotFoundError as e:
        return False, str(e)
    return True, ""


def zookapter_command() -> list[str] | None:
    exe = shutil.which("zookapter")
    if exe:
        return [exe]
    return None


def zookapter_available() -> tuple[bool, str]:
    cmd = zookapter_command()
    if cmd is None:
        return False, "`zookapter` executable not found (cd /work/main && pip install -e .)"
    try:
        r = subprocess.run(cmd + ["server", "--help"], check=False, capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`zookapter server --help` failed: {e}"
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return False, f"`zookapter server --help` exited {r.returncode}: {' | '.join(tail)}"
    return True, ""


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen
    workdir: Path
    logfile: Path
    cmd: list[str] = field(default_factory=list)
    keep: bool = False

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_server(kind: str, xmx: str = "1g", extra_env: dict | None = None,
                 keep: bool = False, extra_cfg: dict[str, str] | None = None) -> Server:
    """extra_cfg: more zoo.cfg lines (key=value), e.g. {"forceSync": "no"}."""
    workdir = Path(tempfile.mkdtemp(prefix=f"zkbench-{kind}-"))
    port = free_port()
    cfg = write_cfg(workdir, port, extra_cfg)
    logfile = workdir / "server.log"
    env = dict(os.environ)
    if kind == "apache":
        cmd = [
            "java", f"-Xmx{xmx}",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", apache_classpath(), ZK_MAIN, str(cfg),
        ]
    elif kind == "zookapter":
        base = zookapter_command()
        if base is None:
            raise RuntimeError("zookapter not installed")
        cmd = base + ["server", str(cfg)]
        env["PYTHONUNBUFFERED"] = "1"
    else:
        raise ValueError(kind)
    if extra_env:
        env.update(extra_env)
    with open(logfile, "wb") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env,
                                cwd=workdir, start_new_session=True)
    srv = Server(kind, port, proc, workdir, logfile, cmd, keep)
    try:
        wait_port(port, proc)
    except Exception:
        log(f"{kind} failed to start; log tail:\n{srv.log_tail()}")
        srv.keep = True
        srv.stop()
        raise
    return srv


# ---------------------------------------------------------------------------
# load generator


def run_zkload(hostport: str, op: str, *, sessions: int = 8, outstanding: int = 8,
               duration: float = 10, warmup: float = 3, size: int = 100,
               sequential: bool = False, fill_count: int | None = None,
               fill_parents: int = 10, timeout: float | None = None,
               on_marker=None, pin: bool = False) -> dict:
    """Runs bin/zkload and returns its JSON result.

    on_marker(name) is called when zkload starts ("measure-start") and ends
    ("measure-end") its measured window, e.g. to sample server CPU time.
    pin: hostport is a comma-separated ensemble list and session i connects
    only to its (i % n)-th member (zkload -R), for an even spread.
    """
    cmd = [str(ZKLOAD), "-h", hostport, "-o", op, "-n", str(sessions),
           "-k", str(outstanding), "-d", str(duration), "-w", str(warmup),
           "-s", str(size)]
    if sequential:
        cmd.append("-S")
    if pin:
        cmd.append("-R")
    if fill_count is not None:
        cmd += ["-N", str(fill_count), "-P", str(fill_parents)]
    if timeout is None:
        timeout = warmup + duration + 120
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("#measure-"):
                if on_marker is not None:
                    on_marker(line.strip()[1:])
            else:
                err_lines.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.wait()
        reader.join(10)
    finally:
        killer.cancel()
    stderr = "".join(err_lines).strip()
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"zkload {op} failed (exit {proc.returncode}): {stderr[-2000:]}")
    res = json.loads(line)
    res["exit_code"] = proc.returncode
    if proc.returncode != 0:
        res["stderr"] = stderr[-2000:]
    return res


# ---------------------------------------------------------------------------
# memory


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def rss_kb(pid: int, include_children: bool = True) -> int:
    """VmRSS of pid (plus its descendants, e.g. worker processes), in KiB."""
    pids = [pid] + (descendants(pid) if include_children else [])
    total = 0
    for p in pids:
        try:
            total += _status_kb(p, "VmRSS")
        except OSError:
            pass
    return total


def hwm_kb(pid: int) -> int:
    try:
        return _status_kb(pid, "VmHWM")
    except OSError:
        return 0


def data_dir_usage(srv: Server) -> dict:
    """Files/bytes the server wrote under its dataDir (0 => nothing persisted)."""
    files, size = 0, 0
    for root, _dirs, names in os.walk(srv.workdir / "data"):
        for n in names:
            try:
                size += os.path.getsize(os.path.join(root, n))
                files += 1
            except OSError:
                pass
    return {"data_dir_files": files, "data_dir_bytes": size}


# ---------------------------------------------------------------------------
# output


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def host_info() -> dict:
    info = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["kernel"] = os.uname().release
    except AttributeError:
        pass
    try:
        r = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True, timeout=30)
        info["java"] = (r.stderr or r.stdout).splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        pass
    return info


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"

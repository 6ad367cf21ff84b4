"""Four-letter words on the client port, with ZooKeeper's output formats.

Each command is a function (server, conn) -> text. Only whitelisted commands run
(4lw.commands.whitelist; ZooKeeper's default is `srvr`, plus `isro` in read-only mode);
others get ZooKeeper's "not in the whitelist" line.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from ..server.connection import ClientConnection
    from ..server.standalone import StandaloneServer

VERSION_LINE = f"Zookeeper version: 3.9.4-zookapter-{__version__}, built on 01/01/2026 00:00 GMT"


def _mode(server: StandaloneServer) -> str:
    return "standalone"


def _latency(server: StandaloneServer) -> tuple[str, str, str]:
    st = server.core.stats  # type: ignore[union-attr]
    avg = st.total_latency / st.count if st.count else 0.0
    return f"{st.min_latency:g}", f"{avg:.4f}", f"{st.max_latency:g}"


def _connections(server: StandaloneServer) -> list[ClientConnection]:
    assert server.core is not None
    return list(server.core.connections)  # type: ignore[arg-type]


def _cons_line(c: ClientConnection, brief: bool) -> str:
    ip, port = c.peer
    base = f" /{ip}:{port}[{1 if c.handshake_done else 0}](queued={len(c.pending)}," \
           f"recved={c.received},sent={c.sent}"
    if brief:
        return base + ")"
    return (base + f",sid=0x{c.session_id & 0xFFFFFFFFFFFFFFFF:x},lop={c.last_op},"
            f"est={c.established},to={_timeout(c)},lcxid=0x{c.last_cxid & 0xFFFFFFFF:x},"
            f"lzxid=0x{c.last_zxid & 0xFFFFFFFFFFFFFFFF:x},lresp=0,llat=0,minlat=0,avglat=0,"
            "maxlat=0)")


def _timeout(c: ClientConnection) -> int:
    s = c.core.sessions.get(c.session_id)
    return s.timeout_ms if s else 0


def srvr(server: StandaloneServer, conn: ClientConnection, with_clients: bool = False
         ) -> str:
    core = server.core
    assert core is not None
    lo, avg, hi = _latency(server)
    lines = [VERSION_LINE]
    if with_clients:
        lines.append("Clients:")
        lines.extend(_cons_line(c, True) for c in _connections(server))
        lines.append("")
    lines += [
        f"Latency min/avg/max: {lo}/{avg}/{hi}",
        f"Received: {core.stats.packets_received}",
        f"Sent: {core.stats.packets_sent}",
        f"Connections: {len(core.connections)}",
        f"Outstanding: {core._in_flight}",
        f"Zxid: 0x{core.last_zxid:x}",
        f"Mode: {_mode(server)}",
        f"Node count: {core.tree.node_count()}",
    ]
    return "\n".join(lines) + "\n"


def stat(server: StandaloneServer, conn: ClientConnection) -> str:
    return srvr(server, conn, True)


def ruok(server: StandaloneServer, conn: ClientConnection) -> str:
    return "imok"


def isro(server: StandaloneServer, conn: ClientConnection) -> str:
    return "rw"


def _fd_counts() -> tuple[int, int]:
    try:
        n = len(os.listdir("/proc/self/fd"))
    except OSError:
        n = 0
    return n, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def mntr(server: StandaloneServer, conn: ClientConnection) -> str:
    core = server.core
    assert core is not None
    st = core.stats
    avg = st.total_latency / st.count if st.count else 0.0
    open_fds, max_fds = _fd_counts()
    eph = sum(len(v) for v in core.tree.ephemerals.values())
    items: list[tuple[str, object]] = [
        ("version", VERSION_LINE.split(": ", 1)[1]),
        ("server_state", _mode(server)),
        ("avg_latency", float(avg)),
        ("max_latency", int(st.max_latency)),
        ("min_latency", int(st.min_latency)),
        ("packets_received", st.packets_received),
        ("packets_sent", st.packets_sent),
        ("num_alive_connections", len(core.connections)),
        ("outstanding_requests", core._in_flight),
        ("znode_count", core.tree.node_count()),
        ("watch_count", core.watches.watch_count()),
        ("ephemerals_count", eph),
        ("approximate_data_size", core.tree.approximate_data_size()),
        ("open_file_descriptor_count", open_fds),
        ("max_file_descriptor_count", max_fds),
        ("uptime", int((time.time() - server.started_at) * 1000)),
        ("global_sessions", len(core.sessions.sessions)),
        ("local_sessions", 0),
        ("auth_failed_count", st.auth_failed),
        ("last_zxid", core.last_zxid),
    ]
    return "".join(f"zk_{k}\t{v}\n" for k, v in items)


def conf(server: StandaloneServer, conn: ClientConnection) -> str:
    cfg = server.config
    lines = [
        f"clientPort={server.port if server.port is not None else 0}",
        f"secureClientPort={server.secure_port if server.secure_port is not None else -1}",
        f"dataDir={os.path.join(os.path.abspath(cfg.data_dir), 'version-2')}",
        f"dataDirSize={_dir_size(cfg.data_dir)}",
        "dataLogDir=" + os.path.join(os.path.abspath(cfg.data_log_dir or cfg.data_dir),
                                     "version-2"),
        f"dataLogSize={_dir_size(cfg.data_log_dir or cfg.data_dir)}",
        f"tickTime={cfg.tick_time}",
        f"maxClientCnxns={cfg.max_client_cnxns}",
        f"minSessionTimeout={cfg.min_timeout}",
        f"maxSessionTimeout={cfg.max_timeout}",
        f"clientPortListenBacklog={cfg.listen_backlog}",
        f"serverId={cfg.server_id}",
    ]
    return "\n".join(lines) + "\n"


def _dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def cons(server: StandaloneServer, conn: ClientConnection) -> str:
    return "".join(_cons_line(c, False) + "\n" for c in _connections(server)) + "\n"


def crst(server: StandaloneServer, conn: ClientConnection) -> str:
    for c in _connections(server):
        c.received = c.sent = 0
    return "Connection stats reset.\n"


def srst(server: StandaloneServer, conn: ClientConnection) -> str:
    server.core.stats.reset()  # type: ignore[union-attr]
    return "Server stats reset.\n"


def envi(server: StandaloneServer, conn: ClientConnection) -> str:
    env = [
        ("zookeeper.version", VERSION_LINE.split(": ", 1)[1]),
        ("host.name", socket.gethostname()),
        ("python.version", sys.version.split()[0]),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", os.environ.get("USER", "")),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in env)


def wchs(server: StandaloneServer, conn: ClientConnection) -> str:
    w = server.core.watches  # type: ignore[union-attr]
    return (f"{len(w.by_watcher)} connections watching {len(set(w.watched_paths()))} paths\n"
            f"Total watches:{w.watch_count()}\n")


def wchc(server: StandaloneServer, conn: ClientConnection) -> str:
    out = []
    for c, paths in server.core.watches.paths_by_watcher().items():  # type: ignore[union-attr]
        out.append(f"0x{getattr(c, 'session_id', 0) & 0xFFFFFFFFFFFFFFFF:x}\n")
        out.extend(f"\t{p}\n" for p in sorted(paths))
    return "".join(out)


def wchp(server: StandaloneServer, conn: ClientConnection) -> str:
    out = []
    for p, ws in sorted(server.core.watches.watchers_by_path().items()):  # type: ignore
        out.append(f"{p}\n")
        out.extend(f"\t0x{c.session_id & 0xFFFFFFFFFFFFFFFF:x}\n" for c in ws)
    return "".join(out)


def dirs(server: StandaloneServer, conn: ClientConnection) -> str:
    cfg = server.config
    return (f"datadir_size: {_dir_size(cfg.data_dir)}\n"
            f"logdir_size: {_dir_size(cfg.data_log_dir or cfg.data_dir)}\n")


def dump(server: StandaloneServer, conn: ClientConnection) -> str:
    core = server.core
    assert core is not None
    lines = ["SessionTracker dump:", f"Session Sets ({len(core.sessions.sessions)}):"]
    for s in core.sessions.sessions.values():
        lines.append(f"0x{s.session_id & 0xFFFFFFFFFFFFFFFF:x}")
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(core.tree.ephemerals)}):")
    for sid, paths in core.tree.ephemerals.items():
        lines.append(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}:")
        lines.extend(f"\t{p}" for p in sorted(paths))
    lines.append("Connections dump:")
    return "\n".join(lines) + "\n"


COMMANDS: dict[str, Callable[[StandaloneServer, ClientConnection], str]] = {
    "ruok": ruok, "srvr": srvr, "stat": stat, "mntr": mntr, "conf": conf, "cons": cons,
    "crst": crst, "envi": envi, "wchs": wchs, "wchc": wchc, "wchp": wchp, "dirs": dirs,
    "isro": isro, "srst": srst, "dump": dump,
}


def run(word: str, server: StandaloneServer, conn: ClientConnection) -> str:
    allowed = server.config.fourlw_whitelist
    if "*" not in allowed and word not in allowed:
        return f"{word} is not executed because it is not in the whitelist.\n"
    fn = COMMANDS.get(word)
    if fn is None:
        return f"{word} is not executed because it is not in the whitelist.\n"
    return fn(server, conn)

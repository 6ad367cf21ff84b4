"""Four-letter words on the client port, with ZooKeeper's output formats.

Each command is a function (server, conn) -> text. Only whitelisted commands run
(4lw.commands.whitelist; ZooKeeper's default is `srvr`, plus `isro` in read-only mode);
others get ZooKeeper's "not in the whitelist" line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import serverinfo as info

if TYPE_CHECKING:
    from ..server.connection import ClientConnection
    from ..server.standalone import StandaloneServer

VERSION_LINE = f"Zookeeper version: {info.FULL_VERSION}"


def _mode(server: StandaloneServer) -> str:
    return info.server_state(server)


def _latency(server: StandaloneServer) -> tuple[str, str, str]:
    lo, avg, hi = info.latency(server)
    return f"{lo}", info.java_double(avg), f"{hi}"


def _connections(server: StandaloneServer) -> list[ClientConnection]:
    return info.connections(server)


def _cons_line(c: ClientConnection, brief: bool) -> str:
    ip, port = c.peer
    base = f" /{ip}:{port}[{1 if c.handshake_done else 0}](queued={len(c.pending)}," \
           f"recved={c.received},sent={c.sent}"
    if brief:
        return base + ")"
    lo, avg, hi = info.conn_latency(c)
    return (base + f",sid=0x{c.session_id & 0xFFFFFFFFFFFFFFFF:x},lop={info.last_op(c)},"
            f"est={c.established},to={info.session_timeout(c)},"
            f"lcxid=0x{c.last_cxid & 0xFFFFFFFF:x},lzxid=0x{c.last_zxid & 0xFFFFFFFFFFFFFFFF:x},"
            f"lresp={c.last_response_time},llat={c.last_latency},minlat={lo},avglat={avg},"
            f"maxlat={hi})")


def srvr(server: StandaloneServer, conn: ClientConnection, with_clients: bool = False
         ) -> str:
    core = server.core
    assert core is not None
    lo, avg, hi = _latency(server)
    lines = [VERSION_LINE]
    if info.read_only(server):
        lines.append("READ-ONLY mode; serving only read-only clients")
    if with_clients:
        lines.append("Clients:")
        lines.extend(_cons_line(c, True) for c in _connections(server))
        lines.append("")
    lines += [
        f"Latency min/avg/max: {lo}/{avg}/{hi}",
        f"Received: {core.stats.packets_received}",
        f"Sent: {core.stats.packets_sent}",
        f"Connections: {len(core.connections)}",
        f"Outstanding: {info.outstanding_requests(server)}",
        f"Zxid: 0x{core.last_zxid:x}",
        f"Mode: {_mode(server)}",
        f"Node count: {info.node_count(core)}",
    ]
    proposals = info.proposal_stats(server)
    if proposals is not None:
        lines.append(f"Proposal sizes last/min/max: {proposals}")
    return "\n".join(lines) + "\n"


def stat(server: StandaloneServer, conn: ClientConnection) -> str:
    return srvr(server, conn, True)


def ruok(server: StandaloneServer, conn: ClientConnection) -> str:
    return "imok"


def isro(server: StandaloneServer, conn: ClientConnection) -> str:
    """"null" while no server core runs (an ensemble member without a quorum)."""
    if server.core is None:
        return "null"
    return "ro" if info.read_only(server) else "rw"


def mntr(server: StandaloneServer, conn: ClientConnection) -> str:
    return "".join(f"zk_{k}\t{v}\n" for k, v in info.monitor_values(server))


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
    return "\n".join(lines) + "\n" + info.quorum_conf(server)


def _dir_size(path: str) -> int:
    return info.dir_size(path)


def cons(server: StandaloneServer, conn: ClientConnection) -> str:
    return "".join(_cons_line(c, False) + "\n" for c in _connections(server)) + "\n"


def crst(server: StandaloneServer, conn: ClientConnection) -> str:
    info.reset_connection_stats(server)
    return "Connection stats reset.\n"


def srst(server: StandaloneServer, conn: ClientConnection) -> str:
    info.reset_server_stats(server)
    return "Server stats reset.\n"


def envi(server: StandaloneServer, conn: ClientConnection) -> str:
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in info.environment())


# wchs/wchc/wchp report the data-watch table, as ZooKeeper's DataTree.getWatches*().
def wchs(server: StandaloneServer, conn: ClientConnection) -> str:
    s = info.watch_summary(server)
    return (f"{s['num_connections']} connections watching {s['num_paths']} paths\n"
            f"Total watches:{s['num_total_watches']}\n")


def wchc(server: StandaloneServer, conn: ClientConnection) -> str:
    out = []
    for sid, paths in info.watches_by_session(server).items():
        out.append(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}\n")
        out.extend(f"\t{p}\n" for p in paths)
    return "".join(out)


def wchp(server: StandaloneServer, conn: ClientConnection) -> str:
    out = []
    for p, sids in info.watches_by_path(server).items():
        out.append(f"{p}\n")
        out.extend(f"\t0x{sid & 0xFFFFFFFFFFFFFFFF:x}\n" for sid in sids)
    return "".join(out)


def dirs(server: StandaloneServer, conn: ClientConnection) -> str:
    return (f"datadir_size: {info.data_dir_size(server)}\n"
            f"logdir_size: {info.log_dir_size(server)}\n")


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


def allowed(word: str, server: StandaloneServer) -> bool:
    enabled = server.config.fourlw_whitelist
    return "*" in enabled or word in enabled


def run(word: str, server: StandaloneServer, conn: ClientConnection) -> str:
    if not allowed(word, server):
        return f"{word} is not executed because it is not in the whitelist.\n"
    fn = COMMANDS.get(word)
    if fn is None:
        return f"{word} is not executed because it is not in the whitelist.\n"
    return fn(server, conn)

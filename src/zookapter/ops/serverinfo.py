"""What the operations surface reports about a running server, gathered in one place.

The four-letter words (text), the AdminServer (JSON) and the Prometheus endpoint show the
same facts in different shapes, as ZooKeeper's ServerStats, ZooKeeperServerConf, DataTree
watch reports and ServerCnxn connection info do for its 4lw, AdminServer and metrics
provider. Every function here reads live server state on the event-loop thread and returns
plain Python values; the callers only format them.

Watch reports (`watch_summary`, `watches_by_session`, `watches_by_path`) cover the data-watch
table only, as ZooKeeper's DataTree.getWatches*(); `watch_count` counts both tables.

An ensemble member (quorum/shell.py) has a `quorum_view` (quorum/opsview.py) that adds what
its role reports (peer state, leader gauges, proposal sizes, conf's quorum lines); its
methods return None / nothing where ZooKeeper answers as for a standalone server.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..protocol.consts import Op
from ..storage.digest import DIGEST_VERSION
from ..storage.files import SNAPSHOT_PREFIX, VERSION_DIR, sorted_files

if TYPE_CHECKING:
    from ..server.connection import ClientConnection
    from ..server.core import ServerCore
    from ..server.standalone import StandaloneServer

FULL_VERSION = f"3.9.4-zookapter-{__version__}, built on 01/01/2026 00:00 GMT"

# ServerCnxn's lastOp names (FinalRequestProcessor), by opcode.
LAST_OP_NAMES: dict[int, str] = {
    Op.PING: "PING", Op.CREATE_SESSION: "SESS", Op.MULTI: "MULT", Op.MULTI_READ: "MLTR",
    Op.CREATE: "CREA", Op.CREATE2: "CREA", Op.CREATE_TTL: "CREA", Op.CREATE_CONTAINER: "CREA",
    Op.DELETE: "DELE", Op.DELETE_CONTAINER: "DELE", Op.SET_DATA: "SETD", Op.RECONFIG: "RECO",
    Op.SET_ACL: "SETA", Op.CLOSE_SESSION: "CLOS", Op.SYNC: "SYNC", Op.CHECK: "CHEC",
    Op.EXISTS: "EXIS", Op.GET_DATA: "GETD", Op.SET_WATCHES: "SETW", Op.SET_WATCHES2: "STW2",
    Op.ADD_WATCH: "ADDW", Op.GET_ACL: "GETA", Op.GET_CHILDREN: "GETC",
    Op.GET_CHILDREN2: "GETC", Op.GET_ALL_CHILDREN_NUMBER: "GETACN", Op.CHECK_WATCHES: "CHKW",
    Op.REMOVE_WATCHES: "REMW", Op.WHO_AM_I: "HOMI", Op.GET_EPHEMERALS: "GETE",
}

# ZooTrace's default text trace mask (client ping, request, and server ping masks)
DEFAULT_TRACE_MASK = 306


def core_of(server: StandaloneServer) -> ServerCore:
    core = server.core
    if core is None:
        raise AssertionError("server not started")
    return core


def server_state(server: StandaloneServer) -> str:
    """standalone, or a quorum role's name once a quorum server reports one."""
    return str(getattr(server, "server_state", "standalone"))


def quorum_view(server: StandaloneServer) -> Any:
    """The ensemble member's QuorumView, None for a standalone server."""
    return getattr(server, "quorum_view", None)


def read_only(server: StandaloneServer) -> bool:
    view = quorum_view(server)
    return bool(view is not None and view.read_only)


def proposal_stats(server: StandaloneServer) -> Any:
    """The leader's proposal sizes (str() is "last/min/max"), else None."""
    view = quorum_view(server)
    return None if view is None else view.proposal_stats()


def quorum_conf(server: StandaloneServer) -> str:
    """`conf`'s lines after serverId for an ensemble member ("" when standalone)."""
    view = quorum_view(server)
    return "" if view is None else view.conf_tail()


def node_count(core: ServerCore) -> int:
    """DataTree.getNodeCount(): Java's node map holds the root twice ("" and "/")."""
    return core.tree.node_count() + 1


def java_double(value: float) -> str:
    """Double.toString for the averages ops print (4 decimals at most, see `latency`)."""
    return repr(float(value))


def uptime_ms(server: StandaloneServer) -> int:
    return int((time.time() - server.started_at) * 1000)


# --- latency and traffic ---------------------------------------------------------------------

def latency(server: StandaloneServer) -> tuple[int, float, int]:
    """Request latency in ms since the last reset: (min, avg, max)."""
    st = core_of(server).stats
    avg = st.total_latency / st.count if st.count else 0.0
    return int(st.min_latency), round(float(avg), 4), int(st.max_latency)  # as Java rounds


def client_response_stats(server: StandaloneServer) -> dict[str, int]:
    st = core_of(server).stats
    return {"last_buffer_size": st.last_response_size,
            "min_buffer_size": st.min_response_size,
            "max_buffer_size": st.max_response_size}


def fd_counts() -> tuple[int, int]:
    """(open, max) file descriptors of this process (Java's OSMXBean counts)."""
    try:
        n = len(os.listdir("/proc/self/fd"))
    except OSError:
        n = 0
    return n, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def outstanding_requests(server: StandaloneServer) -> int:
    return int(core_of(server)._in_flight)


def ephemerals_count(server: StandaloneServer) -> int:
    return sum(len(v) for v in core_of(server).tree.ephemerals.values())


# --- directories -------------------------------------------------------------------------------

def dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def snap_dir(server: StandaloneServer) -> str:
    return os.path.join(os.path.abspath(server.config.data_dir), VERSION_DIR)


def log_dir(server: StandaloneServer) -> str:
    cfg = server.config
    return os.path.join(os.path.abspath(cfg.data_log_dir or cfg.data_dir), VERSION_DIR)


def data_dir_size(server: StandaloneServer) -> int:
    return dir_size(snap_dir(server))


def log_dir_size(server: StandaloneServer) -> int:
    return dir_size(log_dir(server))


def last_snapshot(server: StandaloneServer) -> tuple[int, int]:
    """(zxid, mtime in seconds) of the newest snapshot file, (-1, -1) if there is none."""
    for zxid, path in sorted_files(snap_dir(server), SNAPSHOT_PREFIX, newest_first=True):
        try:
            return zxid, int(path.stat().st_mtime)
        except OSError:
            continue
    return -1, -1


# --- gauges, as ZooKeeperServer.registerMetrics registers them ------------------------------

def gauges(server: StandaloneServer) -> list[tuple[str, int | float]]:
    core = core_of(server)
    lo, avg, hi = latency(server)
    open_fds, max_fds = fd_counts()
    resp = client_response_stats(server)
    return [
        ("avg_latency", avg), ("max_latency", hi), ("min_latency", lo),
        ("packets_received", core.stats.packets_received),
        ("packets_sent", core.stats.packets_sent),
        ("num_alive_connections", len(core.connections)),
        ("outstanding_requests", outstanding_requests(server)),
        ("uptime", uptime_ms(server)),
        ("znode_count", node_count(core)),
        ("watch_count", core.watches.watch_count()),
        ("ephemerals_count", ephemerals_count(server)),
        ("approximate_data_size", core.tree.approximate_data_size()),
        ("global_sessions", getattr(core, "global_session_count", len(core.sessions.sessions))),
        ("local_sessions", getattr(core, "local_session_count", 0)),
        ("open_file_descriptor_count", open_fds),
        ("max_file_descriptor_count", max_fds),
        ("connection_drop_probability", 0.0),
        ("last_client_response_size", resp["last_buffer_size"]),
        ("max_client_response_size", resp["max_buffer_size"]),
        ("min_client_response_size", resp["min_buffer_size"]),
        ("outstanding_tls_handshake", 0),
        ("auth_failed_count", core.stats.auth_failed),
        ("non_mtls_remote_conn_count", 0),
        ("non_mtls_local_conn_count", 0),
        *(view.gauges() if (view := quorum_view(server)) is not None else ()),
    ]


def monitor_values(server: StandaloneServer) -> Iterator[tuple[str, Any]]:
    """mntr / AdminServer monitor: version and state, the gauges, then every metric."""
    yield "version", FULL_VERSION
    yield "server_state", server_state(server)
    view = quorum_view(server)
    if view is not None:
        yield from view.monitor_values()
    yield from gauges(server)
    yield from core_of(server).metrics.dump()


def reset_server_stats(server: StandaloneServer) -> None:
    """srst: latency, packet counts, response sizes and all metrics (ServerStats.reset)."""
    core = core_of(server)
    core.stats.reset()
    core.metrics.reset()


def server_stats(server: StandaloneServer) -> dict[str, Any]:
    """ZooKeeper's ServerStats bean as Jackson serializes it (AdminServer srvr/stat)."""
    core = core_of(server)
    lo, avg, hi = latency(server)
    return {
        "packets_sent": core.stats.packets_sent,
        "packets_received": core.stats.packets_received,
        "fsync_threshold_exceed_count": 0,
        "client_response_stats": client_response_stats(server),
        "data_dir_size": data_dir_size(server),
        "log_dir_size": log_dir_size(server),
        "provider_null": False,
        "server_state": server_state(server),
        "last_processed_zxid": core.last_zxid,
        "outstanding_requests": outstanding_requests(server),
        "avg_latency": avg,
        "max_latency": hi,
        "min_latency": lo,
        "num_alive_client_connections": len(core.connections),
        "uptime": uptime_ms(server),
        "auth_failed_count": core.stats.auth_failed,
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
    }


# --- connections -------------------------------------------------------------------------------

def connections(server: StandaloneServer, secure: bool | None = None) -> list[ClientConnection]:
    conns = list(core_of(server).connections)
    if secure is not None:
        conns = [c for c in conns if bool(getattr(c, "secure", False)) == secure]
    return conns  # type: ignore[return-value]


def last_op(conn: ClientConnection) -> str:
    op = getattr(conn, "last_opcode", None)
    return LAST_OP_NAMES.get(op, "NA") if op is not None else "NA"


def conn_latency(conn: ClientConnection) -> tuple[int, int, int]:
    """(min, avg, max) reply latency of one connection; avg is a whole number as in Java."""
    count = getattr(conn, "latency_count", 0)
    lo = getattr(conn, "min_latency", -1)
    avg = getattr(conn, "total_latency", 0) // count if count else 0
    return (lo if lo >= 0 else 0), avg, getattr(conn, "max_latency", 0)


def session_timeout(conn: ClientConnection) -> int:
    s = conn.core.sessions.get(conn.session_id)
    return s.timeout_ms if s else 0


def connection_info(conn: ClientConnection, brief: bool) -> dict[str, Any]:
    """ServerCnxn.getConnectionInfo: five fields, or all of them when not brief."""
    ip, port = conn.peer
    info: dict[str, Any] = {
        "remote_socket_address": f"{ip}:{port}",
        "interest_ops": 0 if conn.closing else 1,
        "outstanding_requests": len(conn.pending),
        "packets_received": conn.received,
        "packets_sent": conn.sent,
    }
    if brief:
        return info
    lo, avg, hi = conn_latency(conn)
    info.update({
        "session_id": conn.session_id,
        "last_operation": last_op(conn),
        "established": conn.established,
        "session_timeout": session_timeout(conn),
        "last_cxid": conn.last_cxid,
        "last_zxid": conn.last_zxid,
        "last_response_time": getattr(conn, "last_response_time", 0),
        "last_latency": getattr(conn, "last_latency", 0),
        "min_latency": lo,
        "avg_latency": avg,
        "max_latency": hi,
    })
    return info


def reset_connection_stats(server: StandaloneServer) -> None:
    for c in connections(server):
        reset = getattr(c, "reset_stats", None)
        if reset is not None:
            reset()


# --- configuration and environment -------------------------------------------------------------

def configuration(server: StandaloneServer) -> dict[str, Any]:
    """ZooKeeperServerConf.toMap()."""
    cfg = server.config
    return {
        "client_port": server.port if server.port is not None else -1,
        "data_dir": snap_dir(server),
        "data_log_dir": log_dir(server),
        "tick_time": cfg.tick_time,
        "max_client_cnxns": cfg.max_client_cnxns,
        "min_session_timeout": cfg.min_timeout,
        "max_session_timeout": cfg.max_timeout,
        "server_id": cfg.server_id,
        "client_port_listen_backlog": cfg.listen_backlog,
    }


def environment() -> list[tuple[str, str]]:
    """ZooKeeper's Environment.list(), with the Python runtime where Java names the JVM."""
    return [
        ("zookeeper.version", FULL_VERSION),
        ("host.name", socket.gethostname()),
        ("python.version", sys.version.split()[0]),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("python.path", os.pathsep.join(sys.path)),
        ("java.io.tmpdir", tempfile.gettempdir()),
        ("os.name", platform.system()),
        ("os.arch", java_os_arch()),
        ("os.version", platform.release()),
        ("user.name", _user_name()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
    ]


def java_os_arch() -> str:
    """os.arch as a JVM names it (x86_64 is "amd64" there)."""
    machine = platform.machine()
    return {"x86_64": "amd64", "AMD64": "amd64", "i686": "x86", "i386": "x86"}.get(machine,
                                                                                  machine)


def _user_name() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "")


def system_properties(server: StandaloneServer) -> dict[str, str]:
    """The Java-style system properties the server runs with (zoo.cfg's zookeeper.* keys
    and -D flags), plus the platform ones that have a Python counterpart; sorted by name."""
    props = {
        "file.encoding": sys.getdefaultencoding().upper().replace("UTF8", "UTF-8"),
        "file.separator": os.sep,
        "line.separator": os.linesep,
        "path.separator": os.pathsep,
        "java.io.tmpdir": tempfile.gettempdir(),
        "os.arch": java_os_arch(),
        "os.name": platform.system(),
        "os.version": platform.release(),
        "user.dir": os.getcwd(),
        "user.home": os.path.expanduser("~"),
        "user.name": _user_name(),
    }
    props.update(server.config.props)
    return dict(sorted(props.items()))


# --- watches, sessions and ephemerals -------------------------------------------------------------

def _data_watchers(server: StandaloneServer) -> dict[str, list[Any]]:
    return {path: list(entry) for path, entry in core_of(server).watches.data.items() if entry}


def watch_summary(server: StandaloneServer) -> dict[str, int]:
    by_path = _data_watchers(server)
    watchers = {w for ws in by_path.values() for w in ws}
    return {"num_connections": len(watchers), "num_paths": len(by_path),
            "num_total_watches": sum(len(ws) for ws in by_path.values())}


def watches_by_session(server: StandaloneServer) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for path, ws in sorted(_data_watchers(server).items()):
        for w in ws:
            out.setdefault(getattr(w, "session_id", 0), []).append(path)
    return out


def watches_by_path(server: StandaloneServer) -> dict[str, list[int]]:
    return {path: [getattr(w, "session_id", 0) for w in ws]
            for path, ws in sorted(_data_watchers(server).items())}


def session_expiry_map(server: StandaloneServer) -> dict[int, list[int]]:
    """Expiry bucket (ms, rounded to tickTime) -> the sessions that expire then."""
    out: dict[int, list[int]] = {}
    for s in core_of(server).sessions.sessions.values():
        out.setdefault(s.expires_at, []).append(s.session_id)
    return dict(sorted(out.items()))


def ephemerals(server: StandaloneServer) -> dict[int, list[str]]:
    return {sid: sorted(paths) for sid, paths in core_of(server).tree.ephemerals.items()}


def digest_log(server: StandaloneServer) -> list[dict[str, int]]:
    """The tree digest every 128 txns (the newest 1024), as DataTree.getDigestLog."""
    return [{"zxid": zxid, "digest_version": DIGEST_VERSION, "digest": digest}
            for zxid, digest in core_of(server).digest_log]

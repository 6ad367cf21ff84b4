"""The AdminServer's commands: names, aliases and JSON bodies, as ZooKeeper 3.8's Commands.

Each command has a primary name (the one listed on /commands and echoed in the "command"
key) and aliases (`mntr` runs `monitor`). `run_command` returns the response object that
ZooKeeper's CommandResponse.toMap() builds: the command's fields, then "command" and
"error" (an error set by the command itself moves "error" first, as a Java LinkedHashMap
keeps the position of the first put). Map keys that are numbers in Java (session ids, expiry
times) become JSON strings there; Python's json does the same with int keys.

The quorum commands (leader, voting_view, zabstate, observers) ask an ensemble member's
`quorum_view` (quorum/opsview.py); a standalone or read-only server, or a view answering
None, gets ZooKeeper's answers for a server that is not part of a quorum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import serverinfo as info

if TYPE_CHECKING:
    from ..server.standalone import StandaloneServer

Body = dict[str, Any]
Handler = Callable[["StandaloneServer", dict[str, str]], Body]

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]  # primary name first
    handler: Handler
    server_required: bool = True

    @property
    def primary(self) -> str:
        return self.names[0]


# --- handlers ---------------------------------------------------------------------------------

def _empty(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {}


def _crst(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    info.reset_connection_stats(server)
    return {}


def _srst(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    info.reset_server_stats(server)
    return {}


def _conf(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return info.configuration(server)


def _conn_lists(server: StandaloneServer, brief: bool) -> Body:
    return {
        "connections": [info.connection_info(c, brief)
                        for c in info.connections(server, secure=False)],
        "secure_connections": [info.connection_info(c, brief)
                               for c in info.connections(server, secure=True)],
    }


def _cons(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return _conn_lists(server, brief=False)


def _dirs(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"datadir_size": info.data_dir_size(server), "logdir_size": info.log_dir_size(server)}


def _dump(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"expiry_time_to_session_ids": info.session_expiry_map(server),
            "session_id_to_ephemeral_paths": info.ephemerals(server)}


def _envi(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return dict(info.environment())


def _hash(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"digests": info.digest_log(server)}


def _gtmk(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"tracemask": info.DEFAULT_TRACE_MASK}


def _icfg(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"initial_configuration": getattr(server, "initial_config", None)}


def _isro(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"read_only": info.read_only(server)}


def _quorum_answer(server: StandaloneServer, name: str) -> Body | None:
    view = info.quorum_view(server)
    return None if view is None else getattr(view, name)()


def _lsnp(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    zxid, timestamp = info.last_snapshot(server)
    return {"zxid": f"{zxid & 0xFFFFFFFFFFFFFFFF:x}", "timestamp": timestamp}


def _lead(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return _quorum_answer(server, "leader") or {"error": "server is not initialized"}


def _mntr(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return dict(info.monitor_values(server))


def _obsr(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return _quorum_answer(server, "observers") or {"synced_observers": 0, "observers": []}


def _stmk(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    """set_trace_mask validates its argument as ZooKeeper does; zookapter has no trace
    levels, so the mask is echoed and otherwise unused."""
    value = kwargs.get("traceMask")
    if value is None:
        return {"error": "setTraceMask requires long traceMask argument"}
    try:
        mask = int(value)
    except ValueError:
        return {"error": f"setTraceMask requires long traceMask argument, got {value}"}
    return {"tracemask": mask}


def _srvr(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    body: Body = {
        "version": info.FULL_VERSION,
        "read_only": info.read_only(server),
        "server_stats": info.server_stats(server),
        "client_response": info.client_response_stats(server),
    }
    proposals = info.proposal_stats(server)
    if proposals is not None:  # the leader's
        body["proposal_stats"] = proposals.as_dict()
    body["node_count"] = info.node_count(info.core_of(server))
    return body


def _stat(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    body = _srvr(server, kwargs)
    body.update(_conn_lists(server, brief=True))
    return body


def _sysp(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return dict(info.system_properties(server))


def _voting_view(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return _quorum_answer(server, "voting_view") or {"current_config": {}}


def _wchc(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"session_id_to_watched_paths": info.watches_by_session(server)}


def _wchp(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return {"path_to_session_ids": info.watches_by_path(server)}


def _wchs(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return info.watch_summary(server)


def _zabstate(server: StandaloneServer, kwargs: dict[str, str]) -> Body:
    return _quorum_answer(server, "zabstate") or {"voting": False, "zabstate": ""}


# --- the table ---------------------------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command(("connection_stat_reset", "crst"), _crst),
    Command(("configuration", "conf", "config"), _conf),
    Command(("connections", "cons"), _cons),
    Command(("hash",), _hash),
    Command(("dirs",), _dirs),
    Command(("dump",), _dump),
    Command(("environment", "env", "envi"), _envi, server_required=False),
    Command(("get_trace_mask", "gtmk"), _gtmk, server_required=False),
    Command(("initial_configuration", "icfg"), _icfg),
    Command(("is_read_only", "isro"), _isro),
    Command(("last_snapshot", "lsnp"), _lsnp),
    Command(("leader", "lead"), _lead),
    Command(("monitor", "mntr"), _mntr, server_required=False),
    Command(("observer_connection_stat_reset", "orst"), _empty),
    Command(("ruok",), _empty),
    Command(("set_trace_mask", "stmk"), _stmk, server_required=False),
    Command(("server_stats", "srvr"), _srvr),
    Command(("stats", "stat"), _stat),
    Command(("stat_reset", "srst"), _srst),
    Command(("observers", "obsr"), _obsr),
    Command(("system_properties", "sysp"), _sysp, server_required=False),
    Command(("voting_view",), _voting_view),
    Command(("watches", "wchc"), _wchc),
    Command(("watches_by_path", "wchp"), _wchp),
    Command(("watch_summary", "wchs"), _wchs),
    Command(("zabstate",), _zabstate, server_required=False),
)

BY_NAME: dict[str, Command] = {name: c for c in COMMANDS for name in c.names}
PRIMARY_NAMES: tuple[str, ...] = tuple(sorted(c.primary for c in COMMANDS))


def response(command: str, body: Body, error: str | None = None) -> Body:
    """CommandResponse.toMap(): body fields, then command and error (see module doc)."""
    out = dict(body)
    out["command"] = command
    if "error" not in out:
        out["error"] = error
    return out


def run_command(name: str, server: StandaloneServer | None, kwargs: dict[str, str]) -> Body:
    command = BY_NAME.get(name)
    if command is None:
        return response(name, {}, f"Unknown command: {name}")
    serving = server is not None and server.core is not None and not server.stopped.is_set()
    if command.server_required and not serving:
        return response(name, {}, NOT_SERVING)
    assert server is not None
    return response(command.primary, command.handler(server, kwargs))

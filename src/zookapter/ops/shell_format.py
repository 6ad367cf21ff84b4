"""Text formats of the shell, byte for byte as zkCli (ZooKeeperMain 3.8) prints them.

Scripts parse zkCli's output, so the shell keeps its quirks: stats as `cZxid = 0x...` lines
with java.util.Date times, an ACL id printed as jute's record dump (`'world,'anyone` plus a
newline, so `getAcl` shows the perms on the next line after `: `), watch events as Java's
WatchedEvent.toString, and the error sentences of CliWrapperException. Pure: no I/O.
"""

from __future__ import annotations

import time

from ..client.errors import (
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    NewConfigNoQuorumError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NotReadOnlyError,
    QuotaExceededError,
    ReconfigInProgressError,
    ZookeeperError,
)
from ..protocol.consts import Err, EventType, KeeperState, Perm
from ..protocol.records import ACL, Id, Stat

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def java_date(ms: int) -> str:
    """java.util.Date.toString: `Thu Jan 01 00:00:00 UTC 1970`, in local time, English names
    whatever the locale (Java's Date.toString is locale-independent)."""
    t = time.localtime(ms // 1000)
    return (f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_zone} {t.tm_year}")


def hex_long(v: int) -> str:
    """Long.toHexString: two's complement for negatives (container/TTL ephemeralOwner)."""
    return format(v & 0xFFFFFFFFFFFFFFFF, "x")


def stat_lines(stat: Stat) -> list[str]:
    """StatPrinter's eleven lines."""
    return [
        f"cZxid = 0x{hex_long(stat.czxid)}",
        f"ctime = {java_date(stat.ctime)}",
        f"mZxid = 0x{hex_long(stat.mzxid)}",
        f"mtime = {java_date(stat.mtime)}",
        f"pZxid = 0x{hex_long(stat.pzxid)}",
        f"cversion = {stat.cversion}",
        f"dataVersion = {stat.version}",
        f"aclVersion = {stat.aversion}",
        f"ephemeralOwner = 0x{hex_long(stat.ephemeralOwner)}",
        f"dataLength = {stat.dataLength}",
        f"numChildren = {stat.numChildren}",
    ]


def java_list(items: list[str]) -> str:
    """List.toString: `[a, b]`."""
    return "[" + ", ".join(items) + "]"


# -- ACLs -----------------------------------------------------------------------------------

_ESCAPES = {"\0": "%00", "\n": "%0A", "\r": "%0D", ",": "%2C", "}": "%7D", "%": "%25"}


def _jute_string(s: str) -> str:
    return "'" + "".join(_ESCAPES.get(c, c) for c in s)


def id_text(ident: Id) -> str:
    """Id.toString, i.e. jute's ToStringOutputArchive dump of the record (ends in a newline)."""
    return f"{_jute_string(ident.scheme)},{_jute_string(ident.id)}\n"


def perm_string(perms: int) -> str:
    """ZKUtil.getPermString: letters in the order c, d, r, w, a."""
    order = ((Perm.CREATE, "c"), (Perm.DELETE, "d"), (Perm.READ, "r"), (Perm.WRITE, "w"),
             (Perm.ADMIN, "a"))
    return "".join(ch for bit, ch in order if perms & bit)


_PERM_LETTERS = {"r": Perm.READ, "w": Perm.WRITE, "c": Perm.CREATE, "d": Perm.DELETE,
                 "a": Perm.ADMIN}


def parse_acl(text: str, warnings: list[str]) -> list[ACL]:
    """AclParser: `scheme:id:perms[,...]`; the id may itself hold colons (digest). Malformed
    entries are skipped and unknown perm letters ignored, each with a warning, as zkCli does."""
    out: list[ACL] = []
    for entry in text.split(","):
        first, last = entry.find(":"), entry.rfind(":")
        if first == -1 or first == last:
            warnings.append(f"{entry} does not have the form scheme:id:perm")
            continue
        perms = 0
        for ch in entry[last + 1:]:
            bit = _PERM_LETTERS.get(ch)
            if bit is None:
                warnings.append(f"Unknown perm type: {ch}")
            else:
                perms |= bit
        out.append(ACL(perms, Id(entry[:first], entry[first + 1:last])))
    return out


# -- watch events ---------------------------------------------------------------------------

_STATE_NAMES = {
    KeeperState.UNKNOWN: "Unknown", KeeperState.DISCONNECTED: "Disconnected",
    KeeperState.NO_SYNC_CONNECTED: "NoSyncConnected", KeeperState.SYNC_CONNECTED: "SyncConnected",
    KeeperState.AUTH_FAILED: "AuthFailed", KeeperState.CONNECTED_READ_ONLY: "ConnectedReadOnly",
    KeeperState.SASL_AUTHENTICATED: "SaslAuthenticated", KeeperState.CLOSED: "Closed",
    KeeperState.EXPIRED: "Expired",
}
_TYPE_NAMES = {
    EventType.NONE: "None", EventType.NODE_CREATED: "NodeCreated",
    EventType.NODE_DELETED: "NodeDeleted", EventType.NODE_DATA_CHANGED: "NodeDataChanged",
    EventType.NODE_CHILDREN_CHANGED: "NodeChildrenChanged",
    EventType.DATA_WATCH_REMOVED: "DataWatchRemoved",
    EventType.CHILD_WATCH_REMOVED: "ChildWatchRemoved",
    EventType.PERSISTENT_WATCH_REMOVED: "PersistentWatchRemoved",
}


def event_text(event_type: int, state: int, path: str | None) -> str:
    """WatchedEvent.toString."""
    return (f"WatchedEvent state:{_STATE_NAMES.get(state, state)} "  # type: ignore[call-overload]
            f"type:{_TYPE_NAMES.get(event_type, event_type)} "  # type: ignore[call-overload]
            f"path:{'null' if path is None else path}")


def watcher_block(event_type: int, state: int, path: str | None) -> str:
    """What ZooKeeperMain's default watcher prints: two printMessage calls, each a blank line
    then the message."""
    return f"\nWATCHER::\n\n{event_text(event_type, state, path)}\n"


# -- errors ---------------------------------------------------------------------------------

_CODE_MESSAGES = {
    Err.OK: "ok", Err.SYSTEM_ERROR: "SystemError",
    Err.RUNTIME_INCONSISTENCY: "RuntimeInconsistency",
    Err.DATA_INCONSISTENCY: "DataInconsistency", Err.CONNECTION_LOSS: "ConnectionLoss",
    Err.MARSHALLING_ERROR: "MarshallingError", Err.NEW_CONFIG_NO_QUORUM: "NewConfigNoQuorum",
    Err.RECONFIG_IN_PROGRESS: "ReconfigInProgress", Err.UNIMPLEMENTED: "Unimplemented",
    Err.OPERATION_TIMEOUT: "OperationTimeout", Err.BAD_ARGUMENTS: "BadArguments",
    Err.API_ERROR: "APIError", Err.NO_NODE: "NoNode", Err.NO_AUTH: "NoAuth",
    Err.BAD_VERSION: "BadVersion", Err.NO_CHILDREN_FOR_EPHEMERALS: "NoChildrenForEphemerals",
    Err.NODE_EXISTS: "NodeExists", Err.INVALID_ACL: "InvalidACL",
    Err.AUTH_FAILED: "AuthFailed", Err.NOT_EMPTY: "Directory not empty",
    Err.SESSION_EXPIRED: "Session expired", Err.INVALID_CALLBACK: "Invalid callback",
    Err.SESSION_MOVED: "Session moved", Err.NOT_READ_ONLY: "Not a read-only call",
    Err.EPHEMERAL_ON_LOCAL_SESSION: "Ephemeral node on local session",
    Err.NO_WATCHER: "No such watcher", Err.RECONFIG_DISABLED: "Reconfig is disabled",
    Err.SESSION_CLOSED_REQUIRE_SASL_AUTH:
        "Session closed because client failed to authenticate",
    Err.QUOTA_EXCEEDED: "Quota has exceeded", Err.THROTTLED_OP: "Op throttled due to high load",
}


def keeper_message(code: int, path: str | None) -> str:
    """KeeperException.getMessage: `KeeperErrorCode = NoAuth for /x`."""
    text = _CODE_MESSAGES.get(code, f"Unknown error {code}")  # type: ignore[call-overload]
    return f"KeeperErrorCode = {text}" + (f" for {path}" if path else "")


# CliWrapperException's sentences, by exception class; `{}` is the path ("null" if unknown).
_WRAPPED: tuple[tuple[type[ZookeeperError], str], ...] = (
    (NoNodeError, "Node does not exist: {}"),
    (NoChildrenForEphemeralsError, "Ephemerals cannot have children: {}"),
    (NodeExistsError, "Node already exists: {}"),
    (NotEmptyError, "Node not empty: {}"),
    (NotReadOnlyError, "Not a read-only call: {}"),
    (InvalidACLError, "Acl is not valid : {}"),
    (NoAuthError, "Insufficient permission : {}"),
    (BadArgumentsError, "Arguments are not valid : {}"),
    (BadVersionError, "version No is not valid : {}"),
    (QuotaExceededError, "Quota has exceeded : {}"),
)


def error_message(exc: ZookeeperError) -> str:
    """The line zkCli prints for a failed operation."""
    if isinstance(exc, ReconfigInProgressError):
        return ("Another reconfiguration is in progress -- concurrent reconfigs not supported "
                "(yet)")
    if isinstance(exc, NewConfigNoQuorumError):
        return ("No quorum of new config is connected and up-to-date with the leader of last "
                "commmitted config - try invoking reconfiguration after new servers are "
                "connected and synced")
    for cls, text in _WRAPPED:
        if isinstance(exc, cls):
            return text.format("null" if exc.path is None else exc.path)
    return keeper_message(int(exc.code), exc.path)


# -- paths ----------------------------------------------------------------------------------

def _bad_char(c: str) -> bool:
    o = ord(c)
    return (0 < o <= 0x1F or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xF8FF
            or 0xFFF0 <= o <= 0xFFFF)


def path_error(path: str, sequential: bool = False) -> str | None:
    """PathUtils.validatePath's IllegalArgumentException message, or None if `path` is valid;
    zkCli prints it as is (`Path must start with / character`)."""
    checked = path + "1" if sequential else path
    if not checked:
        return "Path length must be > 0"
    if checked[0] != "/":
        return "Path must start with / character"
    if len(checked) == 1:
        return None
    if checked[-1] == "/":
        return "Path must not end with / character"
    reason = _path_reason(checked)
    if reason is None:
        return None
    return f'Invalid path string "{checked}" caused by {reason}'


def _path_reason(path: str) -> str | None:
    last = "/"
    for i in range(1, len(path)):
        c = path[i]
        nxt_ends = i + 1 == len(path) or path[i + 1] == "/"
        if c == "\0":
            return f"null character not allowed @{i}"
        if c == "/" and last == "/":
            return f"empty node name specified @{i}"
        if c == "." and last == "." and path[i - 2] == "/" and nxt_ends:
            return f"relative paths not allowed @{i}"
        if c == "." and last != "." and path[i - 1] == "/" and nxt_ends:
            return f"relative paths not allowed @{i}"
        if _bad_char(c):
            return f"invalid character @{i}"
        last = c
    return None

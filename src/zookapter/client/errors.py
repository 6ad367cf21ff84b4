"""Client exceptions, one class per ZooKeeper error code (KeeperException.Code).

Every class carries its wire `code` and registers itself in `_BY_CODE` when defined, so a
reply's `err` turns into an exception with one table lookup (`error_for(code, path)`). The
names follow kazoo's (NoNodeError, NodeExistsError, ...), which Python users already know.

Three kinds of error exist only on the client side: `ConnectionLossError` (-4, the TCP
connection went away with the request outstanding — it may or may not have been applied),
`ConnectionClosedError` (the client was stopped; a SessionExpiredError because the session is
gone for good) and `ProtocolError` (the server sent bytes that break the protocol; the
connection is dropped and the pending requests see ConnectionLossError).
"""

from __future__ import annotations

from ..protocol.consts import Err

_BY_CODE: dict[int, type[ZookeeperError]] = {}


class ZookeeperError(Exception):
    """Base of every error a ZooKeeper operation can raise. `code` is the wire error code;
    `path` the (client-side) path of the failed operation, when known."""

    code: int = Err.SYSTEM_ERROR

    def __init__(self, message: str | None = None, path: str | None = None) -> None:
        self.path = path
        if message is None:
            message = type(self).__name__
            if path is not None:
                message = f"{message}: {path}"
        super().__init__(message)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is not None and code not in _BY_CODE:
            _BY_CODE[int(code)] = cls


class ProtocolError(Exception):
    """The peer violated the client protocol (bad frame length, reply out of order, ...).
    `events` holds what the same input produced before the violation."""

    def __init__(self, message: str, events: list[object] | None = None) -> None:
        super().__init__(message)
        self.events: list[object] = events or []


# --- system errors (-1 .. -99) ---------------------------------------------------------------

class SystemZookeeperError(ZookeeperError):
    code = Err.SYSTEM_ERROR


class RuntimeInconsistencyError(ZookeeperError):
    """In a failed multi: this op was not attempted because an earlier one failed."""
    code = Err.RUNTIME_INCONSISTENCY


class DataInconsistencyError(ZookeeperError):
    code = Err.DATA_INCONSISTENCY


class ConnectionLossError(ZookeeperError):
    """The connection dropped while the request was outstanding; its outcome is unknown."""
    code = Err.CONNECTION_LOSS


ConnectionLoss = ConnectionLossError  # kazoo's other name for it


class MarshallingError(ZookeeperError):
    code = Err.MARSHALLING_ERROR


class UnimplementedError(ZookeeperError):
    code = Err.UNIMPLEMENTED


class OperationTimeoutError(ZookeeperError):
    code = Err.OPERATION_TIMEOUT


class BadArgumentsError(ZookeeperError):
    code = Err.BAD_ARGUMENTS


class InvalidPathError(BadArgumentsError, ValueError):
    """Raised locally, before sending, for a path ZooKeeper would reject."""


class UnknownSessionError(ZookeeperError):
    code = Err.UNKNOWN_SESSION


class NewConfigNoQuorumError(ZookeeperError):
    code = Err.NEW_CONFIG_NO_QUORUM


class ReconfigInProgressError(ZookeeperError):
    code = Err.RECONFIG_IN_PROGRESS


# --- API errors (-100 and below) -------------------------------------------------------------

class APIError(ZookeeperError):
    code = Err.API_ERROR


class NoNodeError(ZookeeperError):
    code = Err.NO_NODE


class NoAuthError(ZookeeperError):
    code = Err.NO_AUTH


class BadVersionError(ZookeeperError):
    code = Err.BAD_VERSION


class NoChildrenForEphemeralsError(ZookeeperError):
    code = Err.NO_CHILDREN_FOR_EPHEMERALS


class NodeExistsError(ZookeeperError):
    code = Err.NODE_EXISTS


class NotEmptyError(ZookeeperError):
    code = Err.NOT_EMPTY


class SessionExpiredError(ZookeeperError):
    code = Err.SESSION_EXPIRED


class ConnectionClosedError(SessionExpiredError):
    """The client was stopped (or never started); no session to send the request on."""


class InvalidCallbackError(ZookeeperError):
    code = Err.INVALID_CALLBACK


class InvalidACLError(ZookeeperError):
    code = Err.INVALID_ACL


class AuthFailedError(ZookeeperError):
    code = Err.AUTH_FAILED


class SessionMovedError(ZookeeperError):
    code = Err.SESSION_MOVED


class NotReadOnlyError(ZookeeperError):
    code = Err.NOT_READ_ONLY


class EphemeralOnLocalSessionError(ZookeeperError):
    code = Err.EPHEMERAL_ON_LOCAL_SESSION


class NoWatcherError(ZookeeperError):
    code = Err.NO_WATCHER


class RequestTimeoutError(ZookeeperError):
    code = Err.REQUEST_TIMEOUT


class ReconfigDisabledError(ZookeeperError):
    code = Err.RECONFIG_DISABLED


class SessionClosedRequireSaslAuthError(ZookeeperError):
    code = Err.SESSION_CLOSED_REQUIRE_SASL_AUTH


class QuotaExceededError(ZookeeperError):
    code = Err.QUOTA_EXCEEDED


class ThrottledOpError(ZookeeperError):
    code = Err.THROTTLED_OP


class RolledBackError(ZookeeperError):
    """In a failed multi: this op had succeeded provisionally and was rolled back (the
    ErrorResult with code 0)."""
    code = Err.OK


class UnknownError(ZookeeperError):
    """An error code this client does not know; `code` is set per instance."""

    def __init__(self, code: int, path: str | None = None) -> None:
        self.code = code
        super().__init__(f"unknown ZooKeeper error code {code}", path)


def error_for(code: int, path: str | None = None) -> ZookeeperError:
    """The exception instance for a non-zero reply error code."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return UnknownError(code, path)
    return cls(path=path)


def error_class(code: int) -> type[ZookeeperError] | None:
    return _BY_CODE.get(code)


# Registration invariant: every code ZooKeeper defines has its class.
_missing = [e for e in Err if e not in _BY_CODE]
if _missing:
    raise AssertionError(f"error codes without an exception class: {_missing}")

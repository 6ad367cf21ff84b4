"""multi: build a list of create/delete/setData/check ops, send them as one atomic request.

    tx = zk.transaction()
    tx.create("/a", b"x").set_data("/b", b"y", version=3).check("/c", 0).delete("/d")
    results = await tx.commit()

Results, one per op: create -> the created path, delete -> True, set_data -> Stat,
check -> True.

Failure (the server applied nothing): by default `commit()` raises, like the Java client,
the error of the op that failed (NoNodeError, BadVersionError, ...), with `.results` holding
every op's outcome: ops before it RolledBackError, the failing op its error, ops after it
RuntimeInconsistencyError. `commit(raise_on_error=False)` instead returns that list, errors as
exception instances in place (kazoo's style). An empty transaction returns [] locally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol.consts import CreateMode, Err, Op
from ..protocol.records import (
    OPEN_ACL_UNSAFE,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    SetDataRequest,
)
from .connection import MultiResult
from .errors import ProtocolError, ZookeeperError, error_for

if TYPE_CHECKING:
    from .api import ZooKeeperApi


def create_op(path: str, value: bytes, acl: Any, mode: CreateMode,
              ttl: int | None) -> tuple[int, CreateRequest]:
    """The (opcode, record) of a create in the given mode (CONTAINER and TTL modes need their
    own opcodes)."""
    if ttl is not None and not mode.ttl:
        if mode == CreateMode.PERSISTENT:
            mode = CreateMode.PERSISTENT_WITH_TTL
        elif mode == CreateMode.PERSISTENT_SEQUENTIAL:
            mode = CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL
        else:
            raise ValueError(f"ttl is only valid for persistent nodes, not {mode.name}")
    if mode.ttl and ttl is None:
        raise ValueError(f"{mode.name} needs a ttl")
    rec = CreateRequest(path, value, tuple(acl) if acl is not None else OPEN_ACL_UNSAFE,
                        int(mode), -1 if ttl is None else ttl)
    if mode.ttl:
        return Op.CREATE_TTL, rec
    if mode.container:
        return Op.CREATE_CONTAINER, rec
    return Op.CREATE, rec


class Transaction:
    """Collects ops; `await commit()` sends them as one multi. Also an async context manager
    that commits on a clean exit."""

    def __init__(self, client: ZooKeeperApi) -> None:
        self._client = client
        self.operations: list[tuple[int, Any]] = []
        self.committed = False

    def create(self, path: str, value: bytes = b"", acl: Any = None,
               mode: CreateMode = CreateMode.PERSISTENT, ttl: int | None = None,
               *, ephemeral: bool = False, sequence: bool = False) -> Transaction:
        mode = _combine_mode(mode, ephemeral, sequence)
        self._client._check_path(path, mode.sequential)
        _check_bytes(value)
        self.operations.append(create_op(path, value, acl, mode, ttl))
        return self

    def delete(self, path: str, version: int = -1) -> Transaction:
        self._client._check_path(path)
        self.operations.append((Op.DELETE, DeleteRequest(path, version)))
        return self

    def set_data(self, path: str, value: bytes, version: int = -1) -> Transaction:
        self._client._check_path(path)
        _check_bytes(value)
        self.operations.append((Op.SET_DATA, SetDataRequest(path, value, version)))
        return self

    set = set_data

    def check(self, path: str, version: int) -> Transaction:
        self._client._check_path(path)
        self.operations.append((Op.CHECK, CheckVersionRequest(path, version)))
        return self

    async def commit(self, raise_on_error: bool = True) -> list[Any]:
        if self.committed:
            raise ValueError("transaction already committed")
        self.committed = True
        if not self.operations:
            return []
        raw: list[MultiResult] = await self._client._call(Op.MULTI, list(self.operations))
        if len(raw) != len(self.operations):
            raise ProtocolError(f"multi of {len(self.operations)} ops got {len(raw)} results")
        results = [_result(r, rec.path)
                   for r, (_, rec) in zip(raw, self.operations, strict=True)]
        if raise_on_error:
            for r in results:
                if isinstance(r, ZookeeperError) and r.code != Err.OK:
                    r.results = results  # type: ignore[attr-defined]
                    raise r
        return results

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            await self.commit()


def _result(r: MultiResult, path: str) -> Any:
    if r.op == Op.ERROR:
        return error_for(r.err, path)
    if r.op in (Op.CREATE, Op.CREATE2):
        return r.body if r.op == Op.CREATE else r.body[0]
    if r.op in (Op.DELETE, Op.CHECK):
        return True
    return r.body  # SET_DATA: Stat


def _combine_mode(mode: CreateMode, ephemeral: bool, sequence: bool) -> CreateMode:
    mode = CreateMode(mode)
    if ephemeral or sequence:
        eph = ephemeral or mode.ephemeral
        seq = sequence or mode.sequential
        if mode not in (CreateMode.PERSISTENT, CreateMode.EPHEMERAL,
                        CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL):
            raise ValueError(f"ephemeral/sequence flags do not combine with {mode.name}")
        mode = CreateMode((1 if eph else 0) | (2 if seq else 0))
    return mode


def _check_bytes(value: object) -> None:
    if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")

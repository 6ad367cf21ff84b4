"""A sequential model of the ZooKeeper znode operations that the linearizability checker
replays: create, setData (with expected version), getData and delete (with expected version).

Each key is one znode path whose parent always exists, so keys are independent and the
checker can split a history by path (P-compositionality). The state of a path is None
(absent) or (data, version), where version is the znode's dataVersion: 0 on create, +1 per
successful setData; delete then create starts again at 0. Expected version -1 matches any.

Outputs are tuples headed by the ZooKeeper error code, so a real client's results compare
directly:
  create  (OK,) | (NODE_EXISTS,)
  set     (OK, new_version) | (BAD_VERSION,) | (NO_NODE,)
  get     (OK, data, version) | (NO_NODE,)
  delete  (OK,) | (BAD_VERSION,) | (NO_NODE,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.consts import Err

NO_NODE = int(Err.NO_NODE)
NODE_EXISTS = int(Err.NODE_EXISTS)
BAD_VERSION = int(Err.BAD_VERSION)
OK_CODE = int(Err.OK)

ZnodeState = tuple[bytes, int] | None
FUNCTIONS = ("create", "set", "get", "delete")
WRITES = frozenset({"create", "set", "delete"})


@dataclass(frozen=True, slots=True)
class ZnodeOp:
    f: str
    path: str
    data: bytes | None = None
    version: int = -1

    def __post_init__(self) -> None:
        if self.f not in FUNCTIONS:
            raise ValueError(f"unknown znode operation {self.f!r}")

    def __str__(self) -> str:
        args = [self.path]
        if self.data is not None:
            args.append(repr(self.data))
        if self.f in ("set", "delete"):
            args.append(f"v={self.version}")
        return f"{self.f}({', '.join(args)})"


def _create(state: ZnodeState, op: ZnodeOp) -> tuple[tuple[Any, ...], ZnodeState]:
    if state is not None:
        return (NODE_EXISTS,), state
    return (OK_CODE,), (op.data or b"", 0)


def _set(state: ZnodeState, op: ZnodeOp) -> tuple[tuple[Any, ...], ZnodeState]:
    if state is None:
        return (NO_NODE,), None
    if op.version != -1 and op.version != state[1]:
        return (BAD_VERSION,), state
    version = state[1] + 1
    return (OK_CODE, version), (op.data or b"", version)


def _get(state: ZnodeState, op: ZnodeOp) -> tuple[tuple[Any, ...], ZnodeState]:
    if state is None:
        return (NO_NODE,), None
    return (OK_CODE, state[0], state[1]), state


def _delete(state: ZnodeState, op: ZnodeOp) -> tuple[tuple[Any, ...], ZnodeState]:
    if state is None:
        return (NO_NODE,), None
    if op.version != -1 and op.version != state[1]:
        return (BAD_VERSION,), state
    return (OK_CODE,), None


_STEPS = {"create": _create, "set": _set, "get": _get, "delete": _delete}


def apply(state: ZnodeState, op: ZnodeOp) -> tuple[tuple[Any, ...], ZnodeState]:
    """The output `op` has in `state`, and the state after it."""
    return _STEPS[op.f](state, op)


def initial_state(path: str) -> ZnodeState:
    return None


def key_of(op: ZnodeOp) -> str:
    return op.path

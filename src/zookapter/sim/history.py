"""Client operation histories, as Jepsen/Knossos record them.

An `Operation` is one client call: invoked at some point, then completed with one status:
- OK: it happened, with `output` (a ZooKeeper error code such as NodeExists is an output:
  the server decided it, so it happened at a point in the total order);
- FAIL: it certainly did not happen (refused before it reached the ordering pipeline), so
  checkers drop it;
- INFO: unknown (timed out, connection lost, server crashed): it may have taken effect at
  any point after its invocation, or never.

Times are recorded twice: `call`/`ret` are positions in one global sequence of history events
(strictly increasing, so real-time precedence is never ambiguous, even within a virtual
millisecond), and `call_ms`/`ret_ms` are virtual times for humans. `zxid` is the
transaction id the server reported for a write, which the lost-write checker uses; it is not
part of the output that linearizability compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

OK = "ok"
FAIL = "fail"
INFO = "info"
PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a server (or a client's timeout) says about a request."""
    status: str
    value: Any = None
    zxid: int | None = None

    def __post_init__(self) -> None:
        if self.status not in (OK, FAIL, INFO):
            raise ValueError(f"bad outcome status {self.status!r}")


@dataclass(frozen=True, slots=True)
class Redirect:
    """The value of a FAIL outcome from a server that knows who could serve the request
    (a follower naming its leader); simulated clients go there next."""
    node: int


@dataclass(slots=True)
class Operation:
    id: int
    process: int
    input: Any
    call: int
    ret: int | None = None
    output: Any = None
    status: str = PENDING
    call_ms: int = 0
    ret_ms: int | None = None
    zxid: int | None = None
    node: int | None = None

    def __str__(self) -> str:
        end = "" if self.ret_ms is None else f"..{self.ret_ms}"
        out = "" if self.status != OK else f" -> {self.output}"
        where = "" if self.node is None else f" @{self.node}"
        return (f"#{self.id} p{self.process}{where} [{self.call_ms}{end}ms] {self.input}"
                f" {self.status}{out}")


class History:
    """Appends operations as a simulated run invokes and completes them."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []
        self._position = 0

    def _next(self) -> int:
        self._position += 1
        return self._position

    def invoke(self, process: int, request: Any, now_ms: int,
               node: int | None = None) -> Operation:
        op = Operation(len(self.ops), process, request, self._next(), call_ms=now_ms, node=node)
        self.ops.append(op)
        return op

    def complete(self, op: Operation, outcome: Outcome, now_ms: int) -> None:
        if op.status != PENDING:
            raise AssertionError(f"operation completed twice: {op}")
        op.status = outcome.status
        op.zxid = outcome.zxid
        if outcome.status == INFO:
            return  # its end is unknown: it stays open until the end of time
        op.output = outcome.value
        op.ret = self._next()
        op.ret_ms = now_ms

    def finish(self) -> None:
        """End of the run: whatever never completed has an unknown outcome."""
        for op in self.ops:
            if op.status == PENDING:
                op.status = INFO

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def acked_zxids(self) -> list[int]:
        return [op.zxid for op in self.ops if op.status == OK and op.zxid is not None]

    def counts(self) -> dict[str, int]:
        out = {OK: 0, FAIL: 0, INFO: 0, PENDING: 0}
        for op in self.ops:
            out[op.status] += 1
        return out


def format_ops(ops: Iterable[Operation]) -> str:
    return "\n".join(str(op) for op in ops)

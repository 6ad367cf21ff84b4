"""multiRead (opcode 22): several getData / getChildren reads in one request and one reply.

    results = await zk.read_transaction().get("/a").get_children("/b").commit()
    (data, stat), children = results

Unlike a write `multi`, a multiRead is not all-or-nothing: the server answers every read on
its own, so each entry of the result list is either that read's result (get -> (bytes, Stat),
get_children -> list of child names) or, for a read that failed, the exception instance of
its error (NoNodeError, NoAuthError, ...) in its place — the shape of Java's
`List<OpResult>` with `ErrorResult`s. `commit(raise_on_error=True)` raises the first failed
read's error instead, with `.results` holding the whole list.

All reads see the same snapshot of the tree (the server answers them in one go), which is
what distinguishes a multiRead from pipelined single reads. No watches are set this way: the
reads go out without the watch flag, as Java's `Op.getData` / `Op.getChildren` send them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol.consts import Op
from ..protocol.records import PathWatchRequest
from .connection import MultiResult
from .errors import ProtocolError, ZookeeperError, error_for

if TYPE_CHECKING:
    from .api import ZooKeeperApi


class ReadTransaction:
    """Collects reads; `await commit()` sends them as one multiRead."""

    def __init__(self, client: ZooKeeperApi) -> None:
        self._client = client
        self.operations: list[tuple[int, PathWatchRequest]] = []
        self.committed = False

    def get(self, path: str) -> ReadTransaction:
        """Read the node's data and Stat."""
        self._client._check_path(path)
        self.operations.append((Op.GET_DATA, PathWatchRequest(path, False)))
        return self

    get_data = get

    def get_children(self, path: str) -> ReadTransaction:
        """Read the node's child names (unordered)."""
        self._client._check_path(path)
        self.operations.append((Op.GET_CHILDREN, PathWatchRequest(path, False)))
        return self

    async def commit(self, raise_on_error: bool = False) -> list[Any]:
        if self.committed:
            raise ValueError("read transaction already committed")
        self.committed = True
        if not self.operations:
            return []
        raw: list[MultiResult] = await self._client._call(Op.MULTI_READ,
                                                          list(self.operations))
        if len(raw) != len(self.operations):
            raise ProtocolError(
                f"multiRead of {len(self.operations)} reads got {len(raw)} results")
        results = [_result(r, op, rec.path)
                   for r, (op, rec) in zip(raw, self.operations, strict=True)]
        if raise_on_error:
            for r in results:
                if isinstance(r, ZookeeperError):
                    r.results = results  # type: ignore[attr-defined]
                    raise r
        return results


def _result(r: MultiResult, op: int, path: str) -> Any:
    if r.op == Op.ERROR:
        return error_for(r.err, path)
    if r.op != op:
        raise ProtocolError(f"multiRead result of type {r.op} for a request of type {op}")
    return r.body

"""Typed forms of the client calls whose result type depends on a flag (`create` with
`include_stat`, `get_children` without it), so the recipes read as plainly as they are; and
`Retry`, the shape of the two retry policies the recipes choose between (`zk.retry`, bounded,
and `_holding.persist`, for as long as the caller waits).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from ..client.aio import AsyncZooKeeper
from ..client.watches import Callback
from ..protocol.records import Stat

# `retry(fn, *args, **kwargs)`: await fn until it does not fail with a connection error.
Retry = Callable[..., Awaitable[Any]]


async def children(zk: AsyncZooKeeper, path: str, watch: Callback | None = None) -> list[str]:
    """The child names of `path`."""
    return cast(list[str], await zk.get_children(path, watch=watch))


async def create_with_stat(zk: AsyncZooKeeper, path: str, value: bytes = b"",
                           **options: Any) -> tuple[str, Stat]:
    """`create(..., include_stat=True)`: the created path and its Stat."""
    return cast(tuple[str, Stat], await zk.create(path, value, include_stat=True, **options))


async def create_path(zk: AsyncZooKeeper, path: str, value: bytes = b"",
                      **options: Any) -> str:
    """`create(...)`: the created path (with the sequence suffix)."""
    return cast(str, await zk.create(path, value, **options))

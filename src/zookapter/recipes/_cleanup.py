"""Removing our own ephemeral nodes: promptly while connected, never hanging on a dead
connection, and never leaving one behind because a create was cancelled in flight.

Why the last point matters: cancelling a coroutine that awaits a create does not withdraw the
request; the server may still create the node, and nobody would know its name. A leftover
contender node owned by a live session blocks an election or a lock until that session ends.
So a recipe that gives up identifies its nodes by a unique prefix (or fixed name) and deletes
by that. The server handles one session's requests in order, so a listing sent after the
create sees the node if the create is ever applied.

The deletes take the caller's retry policy: `zk.retry` by default, `_holding.persist` for the
lock recipes, whose clean-ups go on until the connection comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.errors import NoNodeError, SessionExpiredError
from ._typed import Retry, children

T = TypeVar("T")

_BACKGROUND: set[asyncio.Task[Any]] = set()  # clean-ups left running (strong references)


async def delete_ephemeral(zk: AsyncZooKeeper, path: str, retry: Retry | None = None) -> bool:
    """Delete the ephemeral node `path`, retrying lost connections; False if it was already
    gone. It goes away with its session, so SessionExpiredError counts as gone too."""
    try:
        await (retry or zk.retry)(zk.delete, path)
        return True
    except (NoNodeError, SessionExpiredError):
        return False


async def delete_prefixed(zk: AsyncZooKeeper, parent: str, prefix: str,
                          retry: Retry | None = None) -> bool:
    """Delete every child of `parent` named `prefix...`; True if there was one."""
    if not prefix:
        raise AssertionError(f"deleting the children of {parent} by an empty prefix")
    try:
        names = [c for c in await (retry or zk.retry)(children, zk, parent)
                 if c.startswith(prefix)]
    except (NoNodeError, SessionExpiredError):
        return False
    deleted = [await delete_ephemeral(zk, f"{parent}/{name}", retry) for name in names]
    return any(deleted)


async def delete_contender(zk: AsyncZooKeeper, parent: str, prefix: str, node: str | None,
                           retry: Retry | None = None) -> bool:
    """Delete our contender node `node`, or, when its create never told us the name, any
    node with our `prefix`; True if one was deleted."""
    if node is not None:
        return await delete_ephemeral(zk, f"{parent}/{node}", retry)
    return await delete_prefixed(zk, parent, prefix, retry)


def in_background(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run a clean-up that must outlive the recipe object that started it: the loop keeps
    only weak references to tasks, so it is kept here until done. Its failure is dropped (the
    session cleans up); whoever awaits the task still sees it."""
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_forget)
    return task


async def without_hanging(zk: AsyncZooKeeper, work: Coroutine[Any, Any, T]) -> T | None:
    """Run a clean-up: wait for it while connected (at most the session timeout); otherwise
    leave it running in the background and return None."""
    task = in_background(work)
    wait = zk.timeout if zk.state == ConnectionState.CONNECTED else 0
    done, _ = await asyncio.wait({task}, timeout=wait)
    if task in done and not task.cancelled() and task.exception() is None:
        return task.result()
    return None


def _forget(task: asyncio.Task[Any]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failure only means the session removes the node


async def remove_ephemeral(zk: AsyncZooKeeper, path: str) -> bool | None:
    """Delete our ephemeral `path` (True: deleted, False: already gone, None: still going on
    in the background; the node goes with its session at the latest)."""
    return await without_hanging(zk, delete_ephemeral(zk, path))


async def remove_contender(zk: AsyncZooKeeper, parent: str, prefix: str,
                           node: str | None) -> bool | None:
    """`delete_contender`, without hanging (None: still going on in the background)."""
    return await without_hanging(zk, delete_contender(zk, parent, prefix, node))

"""Reading the identifiers that members keep in their nodes' data — lock contenders, election
candidates, semaphore lease holders, party members — the way kazoo's recipes list them.

The nodes are read concurrently after one listing; a node that goes away in between left
meanwhile and is skipped rather than failing the whole listing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..client.aio import AsyncZooKeeper
from ..client.errors import NoNodeError
from ._typed import Retry


async def identifiers_of(zk: AsyncZooKeeper, parent: str, names: Iterable[str],
                         retry: Retry) -> list[str]:
    """The data of `parent/<name>` for each of `names`, in that order, decoded as text
    (empty data as ''); `retry` is the caller's retry policy for each read."""
    replies = await asyncio.gather(*(retry(zk.get, f"{parent}/{name}") for name in names),
                                   return_exceptions=True)
    out = []
    for reply in replies:
        if isinstance(reply, NoNodeError):
            continue
        if isinstance(reply, BaseException):
            raise reply
        out.append((reply[0] or b"").decode("utf-8", "replace"))
    return out

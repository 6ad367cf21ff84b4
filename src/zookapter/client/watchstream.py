"""Persistent watches as async iterators: `stream = await zk.add_watch(path)`, then
`async for event in stream`. The stream is the watch's callback (it queues each event);
`close()` removes the watch (on the server too, once no other callback needs it)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..protocol.consts import WatcherType
from .errors import ProtocolError, ZookeeperError
from .watches import REMOVED_EVENT, WatchedEvent, WatchKind

if TYPE_CHECKING:
    from .aio import AsyncZooKeeper


class WatchStream:
    """The events of one persistent watch as an async iterator (add_watch without callback).
    Ends when closed or the watch is removed; raises SessionExpiredError if the session (and
    with it the watch) is lost."""

    def __init__(self, client: AsyncZooKeeper, path: str, kind: WatchKind) -> None:
        self._client = client
        self.path = path
        self.kind = kind
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._done = False
        self._push = self._on_event  # one bound method: the registry's key

    def _on_event(self, event: WatchedEvent) -> None:
        if event.type == REMOVED_EVENT[self.kind]:
            self._end(None)
        elif not self._done:
            self._queue.put_nowait(event)

    def _end(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            self._queue.put_nowait(error or StopAsyncIteration())
            self._client._streams.discard(self)

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchedEvent:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # stay ended
            raise item
        return item

    async def close(self) -> None:
        if self._done:
            return
        self._end(None)
        wtype = (WatcherType.PERSISTENT_RECURSIVE if self.kind == WatchKind.PERSISTENT_RECURSIVE
                 else WatcherType.PERSISTENT)
        try:
            await self._client.remove_watches(self.path, wtype, self._push)
        except (ZookeeperError, ProtocolError):
            pass

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

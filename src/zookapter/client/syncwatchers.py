"""Blocking twins of DataWatch and ChildrenWatch for `ZooKeeperClient` (kazoo's usage):

    def show(data, stat):
        print(data, stat)
    watch = SyncDataWatch(zk, "/config", show)   # returns after the first call of show
    ...
    watch.stop()

The follow loop is the asyncio one (watchers.py), run on the client's event loop. The user's
function runs on the client's callback thread, one call at a time and in order, so it may
make blocking calls on the client; its return value still counts (False stops the watch).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .watchers import ChildrenWatch, DataWatch, _NodeWatch, takes_event

if TYPE_CHECKING:
    from .sync import ZooKeeperClient

W = TypeVar("W", bound=_NodeWatch)
CALLBACK_THREAD_PREFIX = "zookapter-callbacks"  # sync.py names its callback executor so


class _SyncNodeWatch(Generic[W]):
    _async_class: type[_NodeWatch] = _NodeWatch

    def __init__(self, client: ZooKeeperClient, path: str,
                 func: Callable[..., Any] | None = None, *, send_event: bool | None = None,
                 allow_session_lost: bool = True) -> None:
        self._client = client
        self.path = path
        self._send_event = send_event
        self._allow_session_lost = allow_session_lost
        self._inner: W | None = None
        if func is not None:
            self._start(func)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator form: `@SyncDataWatch(zk, path)`."""
        if self._inner is not None:
            raise RuntimeError("this watch already has a callback")
        self._start(func)
        return func

    def _start(self, func: Callable[..., Any]) -> None:
        send_event = self._send_event
        if send_event is None:
            send_event = takes_event(func, self._async_class._plain_args)
        on_thread = _on_callback_thread(self._client, func)
        cls = self._async_class

        async def build() -> W:
            return cls(self._client.async_client, self.path, on_thread,  # type: ignore
                       send_event=send_event, allow_session_lost=self._allow_session_lost)

        self._inner = self._client._run(build())
        # Kazoo's contract: the first call has happened when the constructor returns. Not
        # when built from a callback: that call needs the callback thread we are blocking.
        if not threading.current_thread().name.startswith(CALLBACK_THREAD_PREFIX):
            self._client._run(self._inner.ready())

    @property
    def async_watch(self) -> W:
        assert self._inner is not None
        return self._inner

    @property
    def stopped(self) -> bool:
        return self._inner is not None and self._inner.stopped

    def stop(self) -> None:
        """Stop following; returns at once (also safe from inside the callback)."""
        inner, loop = self._inner, self._client._loop
        if inner is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(inner.stop)


class SyncDataWatch(_SyncNodeWatch[DataWatch]):
    """DataWatch for the blocking client: `func(data, stat)`; see watchers.py."""
    _async_class = DataWatch


class SyncChildrenWatch(_SyncNodeWatch[ChildrenWatch]):
    """ChildrenWatch for the blocking client: `func(children)`; see watchers.py."""
    _async_class = ChildrenWatch


def _on_callback_thread(client: ZooKeeperClient, func: Callable[..., Any]
                        ) -> Callable[..., Any]:
    """An async stand-in for `func` that runs it on the client's callback thread and returns
    its result."""
    async def call(*args: Any) -> Any:
        return await asyncio.wrap_future(client._callbacks.submit(func, *args))
    return call

"""How every recipe gets its blocking twin.

Each recipe is written once, as an asyncio class taking an `AsyncZooKeeper`. Its blocking
version wraps that object: it is built on the `ZooKeeperClient`'s private event loop (so its
futures and tasks live there) and each blocking method runs the matching coroutine there and
waits, exactly as `ZooKeeperClient` does for plain operations. User callbacks given to a
blocking recipe run on the client's callback thread (`wrap_callback`), never on the loop, so
they may call back into the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..client.aio import AsyncZooKeeper
from ..client.sync import ZooKeeperClient

R = TypeVar("R")
T = TypeVar("T")


class SyncRecipe(Generic[R]):
    """Base of the blocking recipes: owns the async recipe `self._inner`, built on the loop."""

    def __init__(self, client: ZooKeeperClient, factory: Callable[[AsyncZooKeeper], R]) -> None:
        self._client = client

        async def build() -> R:
            return factory(client.async_client)

        self._inner: R = client._run(build())

    def _run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run `coro` on the client's loop and wait for it (optionally at most `timeout` s)."""
        self._client._ensure_loop()
        return self._client._run_now(coro, timeout)

    def wrap_callback(self, callback: Callable[..., Any] | None) -> Callable[..., Any] | None:
        """`callback`, moved to the client's callback thread."""
        return self._client._cb(callback)

    @property
    def async_recipe(self) -> R:
        """The asyncio recipe this object drives."""
        return self._inner

"""Retrying operations whose outcome a lost connection left unknown (kazoo's KazooRetry).

    await retry(zk.get, "/a")        # or: await zk.retry(zk.get, "/a")
    retry_blocking(szk.get, "/a")    # the blocking client's twin: szk.retry(szk.get, "/a")

Retries on ConnectionLossError and OperationTimeoutError with jittered exponential backoff;
anything else (including SessionExpiredError) propagates at once. A retried write may have
been applied the first time (a create can then fail with NodeExistsError): only retry what is
idempotent or check the outcome yourself.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import ConnectionLossError, OperationTimeoutError

T = TypeVar("T")

RETRYABLE: tuple[type[BaseException], ...] = (ConnectionLossError, OperationTimeoutError)


async def retry(fn: Callable[..., Awaitable[T]], *args: Any, max_tries: int = 20,
                delay: float = 0.05, max_delay: float = 1.0, deadline: float | None = 30.0,
                **kwargs: Any) -> T:
    """Await `fn(*args, **kwargs)` until it does not raise a retryable error, at most
    `max_tries` times and for at most `deadline` seconds."""
    if max_tries < 1:
        raise ValueError("max_tries must be >= 1")
    give_up_at = None if deadline is None else time.monotonic() + deadline
    for attempt in range(1, max_tries + 1):
        try:
            return await fn(*args, **kwargs)
        except RETRYABLE:
            if attempt == max_tries or (give_up_at is not None
                                        and time.monotonic() + delay > give_up_at):
                raise
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


def retry_blocking(fn: Callable[..., T], *args: Any, max_tries: int = 20, delay: float = 0.05,
                   max_delay: float = 1.0, deadline: float | None = 30.0, **kwargs: Any) -> T:
    """`retry` for blocking callables (ZooKeeperClient methods): same policy, sleeping the
    calling thread between attempts."""
    if max_tries < 1:
        raise ValueError("max_tries must be >= 1")
    give_up_at = None if deadline is None else time.monotonic() + deadline
    for attempt in range(1, max_tries + 1):
        try:
            return fn(*args, **kwargs)
        except RETRYABLE:
            if attempt == max_tries or (give_up_at is not None
                                        and time.monotonic() + delay > give_up_at):
                raise
        time.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")

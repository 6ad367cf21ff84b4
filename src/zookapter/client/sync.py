"""Blocking facade: `ZooKeeperClient` runs an AsyncZooKeeper on a private event loop in a
daemon thread and waits for each call's result.

    zk = ZooKeeperClient("127.0.0.1:2181")
    zk.start()
    zk.create("/a", b"v")
    data, stat = zk.get("/a", watch=lambda ev: print(ev))
    zk.stop()

Watch callbacks and state listeners given to this client run on a separate callback thread,
one at a time and in order, so they may themselves make blocking calls on the client (which
would deadlock if they ran on the loop thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..protocol.consts import CreateMode, WatcherType
from ..protocol.records import ACL, Stat
from .aio import AsyncZooKeeper, ConnectionState, WatchStream
from .connection import ClientInfo
from .readtransaction import ReadTransaction
from .retry import retry_blocking
from .syncwatchers import CALLBACK_THREAD_PREFIX, SyncChildrenWatch, SyncDataWatch
from .transaction import Transaction
from .watches import WatchedEvent

log = logging.getLogger("zookapter.client")
T = TypeVar("T")
Callback = Callable[[WatchedEvent], Any]


class ZooKeeperClient:
    """Thread-safe blocking ZooKeeper client; same methods as AsyncZooKeeper."""

    def __init__(self, hosts: str = "127.0.0.1:2181", timeout: float = 10.0,
                 auth: list[tuple[str, str | bytes]] | None = None, read_only: bool = False,
                 ssl: Any = None, **options: Any) -> None:
        self._args = dict(hosts=hosts, timeout=timeout, auth=auth, read_only=read_only,
                          ssl=ssl, **options)
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AsyncZooKeeper | None = None
        self._callbacks = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=CALLBACK_THREAD_PREFIX)
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()

                def run() -> None:
                    loop = asyncio.new_event_loop()
                    asyncio.set_event_loop(loop)
                    self._loop = loop
                    ready.set()
                    loop.run_forever()
                    loop.close()

                self._thread = threading.Thread(target=run, name="zookapter-client",
                                                daemon=True)
                self._thread.start()
                ready.wait()
                assert self._loop is not None
                self._client = self._run_now(self._make_client())
            return self._loop

    async def _make_client(self) -> AsyncZooKeeper:
        return AsyncZooKeeper(**self._args)

    def _run_now(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        assert self._loop is not None
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking ZooKeeperClient call from its own event loop thread")
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coro, self._loop)  # type: ignore[arg-type]
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def _run(self, coro: Awaitable[T]) -> T:
        self._ensure_loop()
        return self._run_now(coro)

    @property
    def async_client(self) -> AsyncZooKeeper:
        self._ensure_loop()
        assert self._client is not None
        return self._client

    def _cb(self, callback: Callback | None) -> Callback | None:
        """Run `callback` on the callback thread instead of the loop thread."""
        return None if callback is None else _ThreadCallback(callback, self._callbacks)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        self._run(self.async_client.start(timeout))

    def stop(self) -> None:
        if self._loop is None:
            return
        self._run(self.async_client.stop())

    def close(self) -> None:
        """Stop the session and the background thread."""
        self.stop()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5)
        self._callbacks.shutdown(wait=False)

    def __enter__(self) -> ZooKeeperClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def state(self) -> ConnectionState:
        return self.async_client.state

    @property
    def connected(self) -> bool:
        return self.async_client.connected

    @property
    def session_id(self) -> int:
        return self.async_client.session_id

    @property
    def session_passwd(self) -> bytes:
        return self.async_client.session_passwd

    @property
    def negotiated_timeout_ms(self) -> int:
        return self.async_client.negotiated_timeout_ms

    @property
    def last_zxid(self) -> int:
        return self.async_client.last_zxid

    @property
    def connected_read_only(self) -> bool:
        return self.async_client.connected_read_only

    @property
    def read_only(self) -> bool:
        return self.async_client.read_only

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return self.async_client.hosts

    @property
    def chroot(self) -> str | None:
        return self.async_client.chroot

    def add_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        self.async_client.add_listener(self._cb(listener))  # type: ignore[arg-type]

    def remove_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        self.async_client.remove_listener(self._cb(listener))  # type: ignore[arg-type]

    def add_auth(self, scheme: str, credential: str | bytes) -> None:
        self._run(self.async_client.add_auth(scheme, credential))

    # -- operations -----------------------------------------------------------------------

    def create(self, path: str, value: bytes = b"", acl: list[ACL] | None = None,
               mode: CreateMode = CreateMode.PERSISTENT, ttl: int | None = None,
               makepath: bool = False, include_stat: bool = False, *,
               ephemeral: bool = False, sequence: bool = False) -> str | tuple[str, Stat]:
        return self._run(self.async_client.create(
            path, value, acl, mode, ttl, makepath, include_stat, ephemeral=ephemeral,
            sequence=sequence))

    def ensure_path(self, path: str, acl: list[ACL] | None = None) -> bool:
        return self._run(self.async_client.ensure_path(path, acl))

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        return self._run(self.async_client.delete(path, version, recursive))

    def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        return self._run(self.async_client.set(path, value, version))

    set_data = set

    def set_acl(self, path: str, acls: list[ACL], version: int = -1) -> Stat:
        return self._run(self.async_client.set_acl(path, acls, version))

    def get(self, path: str, watch: Callback | None = None) -> tuple[bytes, Stat]:
        return self._run(self.async_client.get(path, self._cb(watch)))

    def exists(self, path: str, watch: Callback | None = None) -> Stat | None:
        return self._run(self.async_client.exists(path, self._cb(watch)))

    def get_children(self, path: str, watch: Callback | None = None,
                     include_stat: bool = False) -> list[str] | tuple[list[str], Stat]:
        return self._run(self.async_client.get_children(path, self._cb(watch), include_stat))

    def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        return self._run(self.async_client.get_acl(path))

    def get_all_children_number(self, path: str = "/") -> int:
        return self._run(self.async_client.get_all_children_number(path))

    def get_ephemerals(self, prefix: str = "/") -> list[str]:
        return self._run(self.async_client.get_ephemerals(prefix))

    def sync(self, path: str = "/") -> str:
        return self._run(self.async_client.sync(path))

    def who_am_i(self) -> list[ClientInfo]:
        return self._run(self.async_client.who_am_i())

    def add_watch(self, path: str, callback: Callback | None = None,
                  recursive: bool = False) -> SyncWatchStream | None:
        """With a callback: register it. Without: return a blocking iterator of events
        (`close()` removes the watch)."""
        stream = self._run(self.async_client.add_watch(path, self._cb(callback), recursive))
        return None if stream is None else SyncWatchStream(self, stream)

    def remove_watches(self, path: str, watcher_type: WatcherType = WatcherType.ANY,
                       callback: Callback | None = None, local: bool = False) -> None:
        self._run(self.async_client.remove_watches(path, watcher_type, self._cb(callback),
                                                   local))

    def transaction(self) -> SyncTransaction:
        return SyncTransaction(self, self.async_client.transaction())

    def read_transaction(self) -> SyncReadTransaction:
        return SyncReadTransaction(self, self.async_client.read_transaction())

    def check_watches(self, path: str, watcher_type: WatcherType = WatcherType.ANY) -> bool:
        return self._run(self.async_client.check_watches(path, watcher_type))

    def get_config(self, watch: Callback | None = None) -> tuple[bytes, Stat]:
        return self._run(self.async_client.get_config(self._cb(watch)))

    def reconfig(self, joining: str | Iterable[str] | None = None,
                 leaving: str | Iterable[str] | None = None,
                 new_members: str | Iterable[str] | None = None,
                 from_config: int = -1) -> tuple[bytes, Stat]:
        return self._run(self.async_client.reconfig(joining, leaving, new_members,
                                                    from_config))

    def retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` (a blocking call), retried on connection loss (retry.py)."""
        return retry_blocking(fn, *args, **kwargs)

    def data_watch(self, path: str, func: Callable[..., Any] | None = None, *,
                   send_event: bool | None = None, allow_session_lost: bool = True
                   ) -> SyncDataWatch:
        """Follow `path`'s data: `func(data, stat)` now (before this returns) and after every
        change; see watchers.py. Without `func`, a decorator."""
        return SyncDataWatch(self, path, func, send_event=send_event,
                             allow_session_lost=allow_session_lost)

    def children_watch(self, path: str, func: Callable[..., Any] | None = None, *,
                       send_event: bool | None = None, allow_session_lost: bool = True
                       ) -> SyncChildrenWatch:
        """Follow `path`'s child list: `func(children)` now and after every change."""
        return SyncChildrenWatch(self, path, func, send_event=send_event,
                                 allow_session_lost=allow_session_lost)


class _ThreadCallback:
    """A callback handed to the callback thread. Equal to (and hashing like) any other
    wrapper of the same callable, so the watch registry dedupes and removes by the user's
    callable."""

    __slots__ = ("callback", "executor")

    def __init__(self, callback: Callback, executor: concurrent.futures.Executor) -> None:
        self.callback = callback
        self.executor = executor

    def __call__(self, event: Any) -> None:
        try:
            self.executor.submit(_call_logged, self.callback, event)
        except RuntimeError:  # executor shut down: the client is closed
            pass

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ThreadCallback) and other.callback == self.callback

    def __hash__(self) -> int:
        return hash(self.callback)


def _call_logged(callback: Callback, event: Any) -> None:
    try:
        callback(event)
    except Exception:
        log.exception("callback %r failed", callback)


class SyncTransaction:
    """A Transaction whose commit() blocks; also a context manager committing on exit."""

    def __init__(self, client: ZooKeeperClient, tx: Transaction) -> None:
        self._client = client
        self._tx = tx

    @property
    def operations(self) -> list[tuple[int, Any]]:
        return self._tx.operations

    def create(self, *args: Any, **kwargs: Any) -> SyncTransaction:
        self._tx.create(*args, **kwargs)
        return self

    def delete(self, path: str, version: int = -1) -> SyncTransaction:
        self._tx.delete(path, version)
        return self

    def set_data(self, path: str, value: bytes, version: int = -1) -> SyncTransaction:
        self._tx.set_data(path, value, version)
        return self

    set = set_data

    def check(self, path: str, version: int) -> SyncTransaction:
        self._tx.check(path, version)
        return self

    def commit(self, raise_on_error: bool = True) -> list[Any]:
        return self._client._run(self._tx.commit(raise_on_error))

    def __enter__(self) -> SyncTransaction:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()


class SyncReadTransaction:
    """A ReadTransaction whose commit() blocks."""

    def __init__(self, client: ZooKeeperClient, tx: ReadTransaction) -> None:
        self._client = client
        self._tx = tx

    @property
    def operations(self) -> list[tuple[int, Any]]:
        return list(self._tx.operations)

    def get(self, path: str) -> SyncReadTransaction:
        self._tx.get(path)
        return self

    get_data = get

    def get_children(self, path: str) -> SyncReadTransaction:
        self._tx.get_children(path)
        return self

    def commit(self, raise_on_error: bool = False) -> list[Any]:
        return self._client._run(self._tx.commit(raise_on_error))


class SyncWatchStream:
    """Blocking iterator over a persistent watch's events."""

    def __init__(self, client: ZooKeeperClient, stream: WatchStream) -> None:
        self._client = client
        self._stream = stream

    def __iter__(self) -> Iterator[WatchedEvent]:
        return self

    def __next__(self) -> WatchedEvent:
        return self.next()

    def next(self, timeout: float | None = None) -> WatchedEvent:
        try:
            return self._client._run_now(self._stream.__anext__(), timeout)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._client._run(self._stream.close())

    def __enter__(self) -> SyncWatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

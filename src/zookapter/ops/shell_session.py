"""The shell's ZooKeeper session: an AsyncZooKeeper on a private event loop thread, driven
from the shell's blocking read-eval-print loop.

zkCli's ZooKeeper object connects in the background: the shell prompts at once (showing
CONNECTING), commands typed meanwhile wait for the connection, and every connection change
and watch notification goes to one default watcher that prints `WATCHER::` blocks. This
module gives the same shape: `connect()` returns once the client is running (not connected),
`run()` blocks on one request, and the default watcher prints from the loop thread while
the shell thread waits.

Ordering: the server sends a watch notification before the reply of the request that
triggered it, and the client queues the notification for its dispatcher before resolving the
reply. `settle()` lets the dispatcher run after each command, so a command's events are
printed before the next command starts, as zkCli's event thread usually manages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..client.aio import AsyncZooKeeper, ConnectionState
from ..client.watches import WatchedEvent
from ..protocol.consts import EventType, KeeperState
from .shell_format import watcher_block

T = TypeVar("T")

START_WAIT_S = 1e9  # start() waits this long for the first connection: "for ever"
SETTLE_ROUNDS = 5  # event-loop turns that let queued watch callbacks run

# The Java client's state names (ZooKeeper.States), shown in the prompt.
_STATE_NAMES = {
    ConnectionState.CONNECTED: "CONNECTED",
    ConnectionState.CONNECTED_RO: "CONNECTEDREADONLY",
    ConnectionState.SUSPENDED: "CONNECTING",
    ConnectionState.LOST: "CONNECTING",
}
# The default watcher's event for each connection change.
_STATE_EVENTS = {
    ConnectionState.CONNECTED: KeeperState.SYNC_CONNECTED,
    ConnectionState.CONNECTED_RO: KeeperState.CONNECTED_READ_ONLY,
    ConnectionState.SUSPENDED: KeeperState.DISCONNECTED,
    ConnectionState.LOST: KeeperState.EXPIRED,
}


class Console:
    """stdout/stderr writes from two threads (the shell and the client's loop), each call
    written and flushed whole. Looks up sys.stdout per call, so prompt-toolkit's
    patch_stdout can redirect it while a prompt is shown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def write(self, text: str, *, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        with self._lock:
            stream.write(text)
            stream.flush()

    def out(self, line: str) -> None:
        self.write(line + "\n")

    def err(self, line: str) -> None:
        self.write(line + "\n", err=True)


class ShellSession:
    """At most one live AsyncZooKeeper at a time (`connect` replaces it, as zkCli's)."""

    def __init__(self, console: Console, print_watches: Callable[[], bool]) -> None:
        self.console = console
        self._print_watches = print_watches
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="zookapter-shell",
                                        daemon=True)
        self._thread.start()
        self.zk: AsyncZooKeeper | None = None
        self._starter: asyncio.Task[None] | None = None  # zk.start(), until connected
        self._closed = True
        self._auth_failed = False

    # -- state ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """ZooKeeper.States.isAlive: anything but closed or failed authentication."""
        return self.zk is not None and not self._closed and not self._auth_failed

    @property
    def state_name(self) -> str:
        if self._auth_failed:
            return "AUTH_FAILED"
        if self.zk is None or self._closed:
            return "CLOSED"
        return _STATE_NAMES[self.zk.state]

    @property
    def connected(self) -> bool:
        return self.alive and self.zk is not None and self.zk.connected

    # -- lifecycle ------------------------------------------------------------------------

    def connect(self, hosts: str, timeout_ms: int, read_only: bool) -> None:
        """Close the current session (if any) and start a new one in the background. Raises
        ValueError for a malformed connect string."""
        if self.alive:
            self.close()
        zk = AsyncZooKeeper(hosts, timeout=max(timeout_ms, 1) / 1000.0, read_only=read_only)
        zk.add_listener(self._on_state)
        self.zk, self._closed, self._auth_failed = zk, False, False
        self.run(self._launch(zk))

    async def _launch(self, zk: AsyncZooKeeper) -> None:
        """Start `zk` without waiting for the connection: once start() has run its first step
        the client accepts (queues) requests."""
        task = asyncio.get_running_loop().create_task(zk.start(START_WAIT_S))
        task.add_done_callback(_ignore_result)
        self._starter = task
        await asyncio.sleep(0)

    async def _stop(self, zk: AsyncZooKeeper) -> None:
        """Stop `zk`, and its start() if it never connected (it would wait for ever)."""
        await zk.stop()
        starter, self._starter = self._starter, None
        if starter is not None and not starter.done():
            starter.cancel()
            await asyncio.gather(starter, return_exceptions=True)

    def wait_connected(self, timeout_s: float) -> bool:
        """-waitforconnection: block until connected, at most `timeout_s`."""
        async def wait() -> bool:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while self.zk is not None and not self.zk.connected:
                if loop.time() >= deadline:
                    return False
                await asyncio.sleep(0.02)
            return self.zk is not None
        return self.run(wait())

    def close(self) -> None:
        """zk.close(): end the session; the default watcher sees Closed."""
        zk = self.zk
        if zk is None or self._closed:
            return
        self._closed = True
        self.run(self._stop(zk))
        self._watch_event(EventType.NONE, KeeperState.CLOSED, None)

    def auth_failed(self) -> None:
        """The server refused an addauth: like the Java client, the session is done for."""
        zk = self.zk
        self._auth_failed = True
        self._watch_event(EventType.NONE, KeeperState.AUTH_FAILED, None)
        if zk is not None:
            self.run(self._stop(zk))

    def shutdown(self) -> None:
        """Leave: close the session quietly and stop the loop thread."""
        zk, self.zk = self.zk, None
        if zk is not None and not self._closed:
            self._closed = True
            try:
                self.run(self._stop(zk), timeout=10.0)
            except Exception:  # noqa: BLE001 - leaving anyway
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- requests -------------------------------------------------------------------------

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for it (at most `timeout`); Ctrl-C or the timeout
        cancels it."""
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coro, self._loop)  # type: ignore[arg-type]
        try:
            return fut.result(timeout)
        except (KeyboardInterrupt, concurrent.futures.TimeoutError):
            fut.cancel()
            raise

    @property
    def client(self) -> AsyncZooKeeper:
        """The current client, for making requests (coroutines) to `run`."""
        if self.zk is None:
            raise RuntimeError("no session")
        return self.zk

    def settle(self) -> None:
        """Let the watch callbacks queued so far run (and print)."""
        async def turns() -> None:
            for _ in range(SETTLE_ROUNDS):
                await asyncio.sleep(0)
        self.run(turns())

    # -- the default watcher --------------------------------------------------------------

    def watcher(self, event: WatchedEvent) -> None:
        """The one callback given for every watch (so duplicate registrations collapse, as
        for zkCli's single Watcher object)."""
        self._watch_event(event.type, event.state, event.path)

    def _on_state(self, state: ConnectionState) -> None:
        if self._closed or self._auth_failed:
            return
        self._watch_event(EventType.NONE, _STATE_EVENTS[state], None)

    def _watch_event(self, event_type: int, state: int, path: str | None) -> None:
        if self._print_watches():
            self.console.write(watcher_block(event_type, state, path))


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()

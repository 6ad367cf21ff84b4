"""The asyncio client: a session kept alive over a sequence of TCP connections.

    async with AsyncZooKeeper("h1:2181,h2:2181/app", timeout=10.0) as zk:
        await zk.create("/x", b"v", mode=CreateMode.EPHEMERAL)
        data, stat = await zk.get("/x", watch=print)

How it works (Java's ClientCnxn, minus its threads):

- `_run()` is the connection manager. It tries the hosts in shuffled order; for each it opens a
  TCP (or TLS) connection, drives a fresh `ClientProtocolCore` through the handshake with the
  session id and password it holds (0 for a new session), re-sends the auth it was given and
  re-registers its watches with setWatches/setWatches2, then serves the connection until it
  drops. A failed attempt backs off (doubling, jittered, capped by `max_backoff`).
- Requests are pipelined: each gets an xid and a Future (`_pending[xid]`); replies come back
  in request order and resolve them. Frames written in one event-loop turn leave in one
  send. Requests made while disconnected wait in `_queue` and are sent after the next
  handshake; if a whole round of hosts fails they get ConnectionLossError, like Java's
  outgoing queue.
- While connected, `_pinger` sends a ping after the connection has been idle for 1/3 of the
  negotiated session timeout and drops the connection when nothing arrived for 2/3 of it.
- A dropped connection fails the requests in flight with ConnectionLossError (their outcome is
  unknown) and moves the state to SUSPENDED. The server answering a reconnect with timeout 0
  means the session expired: queued requests get SessionExpiredError, watches are forgotten,
  the state goes to LOST and the client starts a new session (kazoo's behaviour; the Java
  client would stay dead).
- Watch notifications are matched to callbacks by `WatchRegistry` and handed to one dispatcher
  task, which calls them in order (awaiting coroutine callbacks), so a slow callback delays
  later callbacks but never the connection. A watch is registered when the reply that sets it
  arrives (before any later notification is read), as in Java.
- A ProtocolError from the core (bad frame, reply out of order) drops the connection; the
  session is then resumed on a new one.
- With `read_only=True` a server that lost its quorum is accepted (state CONNECTED_RO; it
  answers writes with NotReadOnlyError). A session it creates is provisional, so later
  handshakes ask for a new session (watches are kept and re-registered), and meanwhile
  rwsearch.py probes the other hosts; one answering `rw` gets the session next.

Connection state listeners get ConnectionState values: LOST (initial, session expired or
client stopped), CONNECTED, CONNECTED_RO (read-only server), SUSPENDED (disconnected, session
possibly still alive).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import ssl as ssl_module
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, NamedTuple

from ..protocol.consts import Err, EventType, KeeperState, Op
from ..protocol.jute import JUTE_MAXBUFFER_DEFAULT
from .api import ZooKeeperApi
from .connection import (
    AuthReply,
    ClientProtocolCore,
    ConnectResponse,
    PingReply,
    Reply,
    SetWatchesReply,
    WatchEvent,
)
from .errors import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLossError,
    OperationTimeoutError,
    ProtocolError,
    SessionExpiredError,
    ZookeeperError,
    error_for,
)
from .hosts import parse_hosts
from .rwsearch import find_read_write
from .watches import Callback, WatchedEvent, WatchKind, WatchRegistry
from .watchstream import WatchStream

log = logging.getLogger("zookapter.client")

QUEUED_REQUESTS_MAX = 100_000  # requests waiting for a connection before new ones fail
CLOSE_TIMEOUT_S = 5.0
BACKOFF_MIN_S = 0.05


class ConnectionState(str, Enum):
    """kazoo's KazooState, plus CONNECTED_RO (Java's CONNECTEDREADONLY): connected to a
    server without a quorum, which serves reads and answers writes with NotReadOnlyError."""
    CONNECTED = "CONNECTED"
    CONNECTED_RO = "CONNECTED_RO"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"


class _Request(NamedTuple):
    op: int
    record: Any
    future: asyncio.Future[Any]
    watch: tuple[WatchKind, Callback] | None


class _Connection(asyncio.Protocol):
    """One TCP connection: feeds its bytes to the client, remembers when it last read and
    wrote (for pings and the read timeout)."""

    def __init__(self, client: AsyncZooKeeper, core: ClientProtocolCore) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[ConnectResponse] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.auth_waiters: deque[asyncio.Future[int]] = deque()
        self.last_recv = self.last_send = self.loop.time()
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_recv = self.loop.time()
        self.client._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        futures: list[asyncio.Future[Any]] = [self.handshake, *self.auth_waiters]
        for fut in futures:
            _fail_quietly(fut, ConnectionLossError("connection lost"))
        self.auth_waiters.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, frame: bytes) -> None:
        """Queue a frame; the frames of one event-loop turn go out in one send (pipelined
        requests would otherwise cost a system call each)."""
        if not self._out:
            self.loop.call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
            self.last_send = self.loop.time()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class AsyncZooKeeper(ZooKeeperApi):
    """A ZooKeeper session for asyncio code. See the module docstring."""

    def __init__(self, hosts: str = "127.0.0.1:2181", timeout: float = 10.0,
                 auth: list[tuple[str, str | bytes]] | None = None, read_only: bool = False,
                 ssl: ssl_module.SSLContext | None = None, *, max_backoff: float = 1.0,
                 randomize_hosts: bool = True, max_frame: int = JUTE_MAXBUFFER_DEFAULT,
                 connect_timeout: float | None = None) -> None:
        self.hosts, self.chroot = parse_hosts(hosts)
        self.timeout = float(timeout)
        self._auth: list[tuple[str, bytes]] = [(s, _as_bytes(c)) for s, c in (auth or [])]
        self.read_only = read_only
        self._ssl = ssl
        self._max_backoff = max_backoff
        self._randomize = randomize_hosts
        self._max_frame = max_frame
        self._connect_timeout = connect_timeout
        self.session_id = 0
        self.session_passwd = b"\x00" * 16
        self.negotiated_timeout_ms = 0
        self.connected_read_only = False
        # False while session_id is the provisional id a read-only server gave a new session:
        # no quorum knows it, so the next handshake asks for a new session instead.
        self._session_global = False
        self._rw_server: tuple[str, int] | None = None  # found by the read-write search
        self.state = ConnectionState.LOST
        self._last_zxid = 0
        self._next_xid = 1
        self._pending: dict[int, _Request] = {}
        self._queue: deque[_Request] = deque()
        self._watches = WatchRegistry()
        self._streams: set[WatchStream] = set()
        self._listeners: list[Callable[[ConnectionState], Any]] = []
        self._conn: _Connection | None = None  # the connection being set up or served
        self._live: _Connection | None = None  # set once requests may be sent on it
        self._run_task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Any] | None = None
        self._first_connect: asyncio.Future[None] | None = None
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Connect and establish the session; raise OperationTimeoutError if that takes more
        than `timeout` (default: the session timeout), AuthFailedError if auth is refused."""
        if self._run_task is not None:
            return
        loop = asyncio.get_running_loop()
        self._closing = False
        self._events = asyncio.Queue()
        self._first_connect = loop.create_future()
        self._dispatcher = loop.create_task(self._dispatch_loop())
        self._run_task = loop.create_task(self._run())
        wait = self.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(self._first_connect), wait)
        except asyncio.TimeoutError:
            await self.stop()
            raise OperationTimeoutError(f"could not connect to {self._hosts_text()} in {wait}s")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the session (ephemeral nodes go away) and the connection."""
        if self._run_task is None:
            return
        self._closing = True
        live = self._live
        if live is not None:
            fut = asyncio.get_running_loop().create_future()
            self._send(live, _Request(Op.CLOSE_SESSION, None, fut, None))
            try:
                await asyncio.wait_for(fut, min(CLOSE_TIMEOUT_S, self.timeout))
            except (ZookeeperError, asyncio.TimeoutError):
                pass
        if self._conn is not None:
            self._conn.abort()
        task, self._run_task = self._run_task, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        closed = ConnectionClosedError("client stopped")
        self._fail_queue(closed)
        for req in list(self._pending.values()):
            _fail(req, closed)
        self._pending.clear()
        self._forget_session(closed)
        self._set_state(ConnectionState.LOST)
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None and self._events is not None:
            self._events.put_nowait(None)  # run the callbacks already queued, then end
            if dispatcher is not asyncio.current_task():  # stop() called from a callback
                await asyncio.gather(dispatcher, return_exceptions=True)

    async def close(self) -> None:
        await self.stop()

    async def __aenter__(self) -> AsyncZooKeeper:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        """True while requests can be sent (read-only connections included)."""
        return self.state in (ConnectionState.CONNECTED, ConnectionState.CONNECTED_RO)

    @property
    def last_zxid(self) -> int:
        conn = self._conn
        if conn is not None and conn.core.last_zxid > self._last_zxid:
            self._last_zxid = conn.core.last_zxid
        return self._last_zxid

    def add_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        """Call `listener(state)` on every state change (in the event loop; a coroutine
        function's result is run as a task)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        self._listeners.remove(listener)

    async def add_auth(self, scheme: str, credential: str | bytes) -> None:
        """Authenticate this connection (and every later one of the session)."""
        conn = self._live
        if conn is None:
            raise ConnectionLossError("not connected")
        cred = _as_bytes(credential)
        fut = asyncio.get_running_loop().create_future()
        conn.auth_waiters.append(fut)
        conn.write(conn.core.auth_request(scheme, cred))
        err = await fut
        if err:
            raise error_for(err)
        self._auth.append((scheme, cred))

    # -- requests -------------------------------------------------------------------------

    def _call(self, op: int, record: Any, watch: tuple[WatchKind, Callback] | None = None
              ) -> Awaitable[Any]:
        """Send (or queue) a request; return the Future of its decoded reply body. A plain
        function returning the Future, not a coroutine: every caller awaits it at once, and
        a coroutine per request would only add a frame to create and resume. The Future
        comes from the live connection's loop: asyncio.get_running_loop() costs a getpid()
        system call on Python < 3.12."""
        if self._run_task is None or self._closing:
            raise ConnectionClosedError("client is not running")
        live = self._live
        if live is not None:
            req = _Request(op, record, live.loop.create_future(), watch)
            self._send(live, req)
        elif len(self._queue) >= QUEUED_REQUESTS_MAX:
            raise ConnectionLossError("not connected and the request queue is full")
        else:
            req = _Request(op, record, asyncio.get_running_loop().create_future(), watch)
            self._queue.append(req)
        return req.future

    def _send(self, conn: _Connection, req: _Request) -> None:
        try:
            xid, frame = conn.core.send_request(req.op, req.record)
        except Exception as e:  # encoding failed: the request never left
            _fail(req, e)
            return
        self._pending[xid] = req
        conn.write(frame)

    def _on_data(self, conn: _Connection, data: bytes) -> None:
        error = None
        try:
            events = conn.core.receive_data(data)
        except ProtocolError as e:
            error, events = e, e.events
        for ev in events:
            if type(ev) is Reply:  # nearly every event: skip the table lookup
                self._on_reply(conn, ev)
                continue
            handler = _HANDLERS.get(type(ev))
            if handler is not None:
                handler(self, conn, ev)
        if error is not None:
            log.warning("protocol error from server, dropping connection: %s", error)
            conn.abort()

    def _on_reply(self, conn: _Connection, ev: Reply) -> None:
        req = self._pending.pop(ev.xid, None)
        if req is None:
            return
        fut = req.future
        if fut.done():  # cancelled by its caller: the reply (and any watch) is not wanted
            return
        err = ev.err
        if req.watch is not None:
            kind, callback = req.watch
            if err == Err.OK:
                self._watches.add(kind, ev.path or "/", callback)
            elif err == Err.NO_NODE and ev.op == Op.EXISTS:
                self._watches.add(WatchKind.EXIST, ev.path or "/", callback)
        if err:
            fut.set_exception(error_for(err, ev.path))
        else:
            fut.set_result(ev.body)

    def _on_watch_event(self, conn: _Connection, ev: WatchEvent) -> None:
        if ev.path is None:
            return
        callbacks = self._watches.materialize(ev.type, ev.path)
        if callbacks:
            self._dispatch(callbacks, WatchedEvent(_enum(EventType, ev.type),
                                                   _enum(KeeperState, ev.state), ev.path))

    def _on_connect_response(self, conn: _Connection, ev: ConnectResponse) -> None:
        if not conn.handshake.done():
            conn.handshake.set_result(ev)

    def _on_auth_reply(self, conn: _Connection, ev: AuthReply) -> None:
        if conn.auth_waiters:
            fut = conn.auth_waiters.popleft()
            if not fut.done():
                fut.set_result(ev.err)

    def _on_quiet(self, conn: _Connection, ev: Any) -> None:
        pass  # pings and setWatches replies only prove the connection is alive

    # -- watches --------------------------------------------------------------------------

    def _dispatch(self, callbacks: list[Callback], event: WatchedEvent) -> None:
        if self._events is not None:
            self._events.put_nowait((callbacks, event))

    async def _dispatch_loop(self) -> None:
        assert self._events is not None
        while True:
            item = await self._events.get()
            if item is None:
                return
            callbacks, event = item
            for cb in callbacks:
                try:
                    result = cb(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("watch callback %r failed", cb)

    def _new_watch_stream(self, path: str, kind: WatchKind) -> WatchStream:
        stream = WatchStream(self, path, kind)
        self._streams.add(stream)
        return stream

    def _remove_local_watches(self, path: str, watcher_type: int,
                              callback: Callback | None) -> bool:
        removed = self._watches.remove(path, watcher_type, callback)
        for cb, etype in removed:
            self._dispatch([cb], WatchedEvent(etype, KeeperState.SYNC_CONNECTED, path))
        return bool(removed)

    def _has_local_watches(self, path: str, watcher_type: int) -> bool:
        return self._watches.remaining(path, watcher_type)

    def _has_other_local_watches(self, path: str, watcher_type: int) -> bool:
        return self._watches.remaining_except(path, watcher_type)

    # -- connection management ------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.0
        try:
            while not self._closing:
                hosts = list(self.hosts)
                if self._randomize:
                    random.shuffle(hosts)
                served = False
                while hosts:
                    if self._closing:
                        return
                    host, port = self._next_host(hosts)
                    if await self._attempt(host, port):
                        served, backoff = True, 0.0
                        continue
                    backoff = min(max(backoff * 2, BACKOFF_MIN_S), self._max_backoff)
                    await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                if not served:
                    self._fail_queue(ConnectionLossError(
                        f"could not connect to {self._hosts_text()}"))
        except AuthFailedError as e:
            self._fatal(e)

    def _next_host(self, hosts: list[tuple[str, int]]) -> tuple[str, int]:
        """The next host of this round, or first the read-write server the background search
        found while the session was on a read-only one."""
        found, self._rw_server = self._rw_server, None
        if found is None:
            return hosts.pop(0)
        if found in hosts:
            hosts.remove(found)
        return found

    async def _attempt(self, host: str, port: int) -> bool:
        """One connection: True if a session was established on it (then served until the
        connection dropped), False if the attempt failed."""
        try:
            return await self._connect_and_serve(host, port)
        except (OSError, asyncio.TimeoutError, ConnectionLossError, ProtocolError) as e:
            log.debug("connection to %s:%d failed: %r", host, port, e)
            return False

    async def _connect_and_serve(self, host: str, port: int) -> bool:
        loop = asyncio.get_running_loop()
        wait = self._connect_timeout or max(self.timeout / len(self.hosts), 1.0)
        core = ClientProtocolCore(self.chroot, max_frame=self._max_frame,
                                  first_xid=self._next_xid)
        conn = _Connection(self, core)
        self._conn = conn
        try:
            await asyncio.wait_for(loop.create_connection(
                lambda: conn, host, port, ssl=self._ssl,
                server_hostname=host if self._ssl is not None else None), wait)
            # A provisional session from a read-only server is not resumed (no quorum knows
            # it; Java's seenRwServerBefore): ask for a new one, keeping the watches.
            session_id = self.session_id if self._session_global else 0
            conn.write(core.connect_request(
                int(self.timeout * 1000), session_id,
                self.session_passwd if session_id else b"\x00" * 16, self.last_zxid,
                self.read_only))
            resp = await asyncio.wait_for(asyncio.shield(conn.handshake), wait)
            if resp.expired:
                self._session_expired()
                return True  # try again at once, with a new session
            resumed = self.session_id != 0
            self._adopt_session(resp, session_id)
            await self._authenticate(conn, wait)
            if resumed and len(self._watches):
                self._resend_watches(conn)
            self._go_live(conn)
            helpers = [loop.create_task(self._pinger(conn))]
            if resp.read_only:
                helpers.append(loop.create_task(self._seek_read_write(conn, (host, port))))
            try:
                await conn.closed
            finally:
                for task in helpers:
                    task.cancel()
            return True
        finally:
            self._connection_done(conn)

    def _adopt_session(self, resp: ConnectResponse, requested_id: int) -> None:
        if self.session_id and resp.session_id != self.session_id:
            log.info("provisional read-only session 0x%x replaced by session 0x%x",
                     self.session_id, resp.session_id)
        self.session_id, self.session_passwd = resp.session_id, resp.passwd
        self.negotiated_timeout_ms = resp.timeout_ms
        self.connected_read_only = resp.read_only
        self._session_global = requested_id != 0 or not resp.read_only
        if resp.read_only and not self.read_only:
            log.error("a client without read_only=True got connected to a read-only server")

    async def _seek_read_write(self, conn: _Connection, here: tuple[str, int]) -> None:
        """While connected read-only, look for a read-write server among the other hosts;
        when one is found, drop this connection: `_run` connects to that one next."""
        others = [h for h in self.hosts if h != here]
        if not others:
            return
        self._rw_server = await find_read_write(others, self._ssl)
        conn.abort()

    async def _authenticate(self, conn: _Connection, wait: float) -> None:
        waiters = []
        for scheme, cred in self._auth:
            fut = asyncio.get_running_loop().create_future()
            conn.auth_waiters.append(fut)
            waiters.append(fut)
            conn.write(conn.core.auth_request(scheme, cred))
        for fut in waiters:
            err = await asyncio.wait_for(asyncio.shield(fut), wait)
            if err:
                raise AuthFailedError("authentication refused by the server")

    def _resend_watches(self, conn: _Connection) -> None:
        w = self._watches
        for frame in conn.core.set_watches_requests(
                self.last_zxid, w.paths(WatchKind.DATA), w.paths(WatchKind.EXIST),
                w.paths(WatchKind.CHILD), w.paths(WatchKind.PERSISTENT),
                w.paths(WatchKind.PERSISTENT_RECURSIVE)):
            conn.write(frame)

    def _go_live(self, conn: _Connection) -> None:
        self._live = conn
        queued, self._queue = self._queue, deque()
        for req in queued:
            if not req.future.done():
                self._send(conn, req)
        self._set_state(ConnectionState.CONNECTED_RO if self.connected_read_only
                        else ConnectionState.CONNECTED)
        if self._first_connect is not None and not self._first_connect.done():
            self._first_connect.set_result(None)

    def _connection_done(self, conn: _Connection) -> None:
        if self._live is conn:
            self._live = None
            self.connected_read_only = False
        if self._conn is conn:
            self._conn = None
        conn.abort()
        self._next_xid = conn.core.next_xid
        if conn.core.last_zxid > self._last_zxid:
            self._last_zxid = conn.core.last_zxid
        conn.core.connection_lost()
        # Requests only ever go out on the live connection, so every one still pending was
        # sent on this one (including any whose reply a protocol error left undelivered).
        pending, self._pending = self._pending, {}
        for req in pending.values():
            _fail(req, ConnectionLossError(path=getattr(req.record, "path", None)))
        for fut in conn.auth_waiters:
            _fail_quietly(fut, ConnectionLossError("connection lost"))
        conn.auth_waiters.clear()
        if not self._closing and self.state in (ConnectionState.CONNECTED,
                                                ConnectionState.CONNECTED_RO):
            self._set_state(ConnectionState.SUSPENDED)

    async def _pinger(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        timeout_s = self.negotiated_timeout_ms / 1000.0
        ping_every, read_timeout = timeout_s / 3, timeout_s * 2 / 3
        while not conn.closed.done():
            now = loop.time()
            if now - conn.last_recv >= read_timeout:
                log.info("no reply from the server in %.1fs, reconnecting", read_timeout)
                conn.abort()
                return
            if now - conn.last_send >= ping_every:
                conn.write(conn.core.ping())
            due = min(conn.last_send + ping_every, conn.last_recv + read_timeout)
            await asyncio.sleep(max(due - loop.time(), 0.01))

    def _session_expired(self) -> None:
        log.warning("session 0x%x expired", self.session_id)
        self._forget_session(SessionExpiredError("session expired"))
        self._fail_queue(SessionExpiredError("session expired"))
        self._set_state(ConnectionState.LOST)

    def _forget_session(self, error: BaseException) -> None:
        self.session_id = 0
        self.session_passwd = b"\x00" * 16
        self._watches.clear()
        for stream in list(self._streams):
            stream._end(error)

    def _fatal(self, error: BaseException) -> None:
        log.error("giving up: %s", error)
        self._closing = True
        self._fail_queue(error)
        if self._first_connect is not None and not self._first_connect.done():
            self._first_connect.set_exception(error)
        self._set_state(ConnectionState.LOST)

    def _fail_queue(self, error: BaseException) -> None:
        queued, self._queue = self._queue, deque()
        for req in queued:
            _fail(req, error)

    def _set_state(self, state: ConnectionState) -> None:
        if state == self.state:
            return
        log.info("connection state %s -> %s", self.state.value, state.value)
        self.state = state
        for listener in list(self._listeners):
            try:
                result = listener(state)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception:
                log.exception("state listener %r failed", listener)

    def _hosts_text(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.hosts)


_HANDLERS: dict[type, Callable[[AsyncZooKeeper, _Connection, Any], None]] = {
    Reply: AsyncZooKeeper._on_reply,
    WatchEvent: AsyncZooKeeper._on_watch_event,
    ConnectResponse: AsyncZooKeeper._on_connect_response,
    AuthReply: AsyncZooKeeper._on_auth_reply,
    PingReply: AsyncZooKeeper._on_quiet,
    SetWatchesReply: AsyncZooKeeper._on_quiet,
}


def _fail(req: _Request, error: BaseException) -> None:
    if not req.future.done():
        req.future.set_exception(error)


def _fail_quietly(fut: asyncio.Future[Any], error: BaseException) -> None:
    """Fail a future nobody may await any more without asyncio logging it as unretrieved."""
    if not fut.done():
        fut.set_exception(error)
        fut.exception()


def _as_bytes(v: str | bytes) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


def _enum(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        return value

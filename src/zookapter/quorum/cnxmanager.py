"""The election connections of one server, on asyncio: ZooKeeper's QuorumCnxManager.

Every pair of servers keeps at most one TCP connection between their election ports, and the
rule that picks it is Java's, so a zookapter server and Java servers agree on it:

- The dialing side writes its initial message (protocol version, its id, its election
  address). If the dialer's id is the smaller one, it closes the connection right after: the
  other side, seeing a smaller id, dials back (QuorumCnxManager.startConnection /
  handleConnection). So the surviving connection is always the one the larger id opened.
- The accepting side reads the initial message; a smaller id is closed and dialed back, an
  equal or larger id replaces any older connection to that server. An observer that sent
  OBSERVER_ID gets a made-up negative id for the life of the connection, as in Java.
- Outgoing messages are kept in a one-slot queue per peer (Java's CircularBlockingQueue of
  capacity 1: only the newest vote matters). A new connection first carries the queued
  message or, if none, the last message sent to that peer, which the peer may have missed.
- Connecting times out after `connect_timeout` (Java's cnxTimeout, 5 s); a failed dial is
  simply forgotten: election re-sends (and so re-dials) when its own timeout fires.

Notifications received are handed to `on_message(sid, notification)`; undecodable input
closes that connection with a log line, never anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .election_wire import (
    OBSERVER_ID,
    PROTOCOL_VERSION_V1,
    ChannelDecoder,
    ElectionWireError,
    InitialMessage,
    Notification,
    frame,
)

log = logging.getLogger("zookapter.quorum")

CONNECT_TIMEOUT_S = 5.0


class _Channel(asyncio.Protocol):
    """One election connection; `sid` is known at once when dialed, after the hello when
    accepted."""

    def __init__(self, mgr: ElectionConnections, sid: int | None) -> None:
        self.mgr = mgr
        self.sid = sid
        self.decoder = ChannelDecoder(expect_initial=sid is None)
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            items = self.decoder.feed(data)
        except ElectionWireError as e:
            log.warning("closing election connection from sid %s: %s", self.sid, e)
            self.close()
            return
        for item in items:
            if self.closed:
                return
            if isinstance(item, InitialMessage):
                self.mgr._hello(self, item)
                continue
            try:
                n = Notification.decode(item)
            except ElectionWireError as e:
                log.warning("dropping a bad notification from sid %s: %s", self.sid, e)
                continue
            assert self.sid is not None
            self.mgr.on_message(self.sid, n)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.mgr._lost(self)

    def write(self, payload: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(frame(payload))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.mgr._lost(self)


class ElectionConnections:
    """All election connections of server `my_id`; `peers` maps id -> election address."""

    def __init__(self, my_id: int, my_address: tuple[str, int],
                 peers: dict[int, tuple[str, int]],
                 on_message: Callable[[int, Notification], None],
                 protocol_version: int = PROTOCOL_VERSION_V1,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.my_id = my_id
        self.my_address = my_address
        self.peers = dict(peers)
        self.on_message = on_message
        self.protocol_version = protocol_version
        self.connect_timeout = connect_timeout
        self._conns: dict[int, _Channel] = {}
        self._queued: dict[int, bytes] = {}
        self._last_sent: dict[int, bytes] = {}
        self._dialing: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.base_events.Server | None = None
        self._next_observer_id = -1
        self._stopped = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str | None = None) -> None:
        """Listen on our election port (`host` overrides the configured address, e.g. to
        bind the wildcard as quorumListenOnAllIPs)."""
        loop = asyncio.get_running_loop()
        bind_host = self.my_address[0] if host is None else host
        self._server = await loop.create_server(lambda: _Channel(self, None), bind_host,
                                                self.my_address[1], reuse_address=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stopped = True
        if self._server is not None:
            self._server.close()
        for ch in list(self._conns.values()):
            ch.close()
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except (TimeoutError, OSError):
                pass

    def connected(self, sid: int) -> bool:
        ch = self._conns.get(sid)
        return ch is not None and not ch.closed

    # --- sending -------------------------------------------------------------------------

    def send(self, sid: int, n: Notification) -> None:
        """Queue `n` for `sid` (replacing anything not yet sent) and send it when we can."""
        payload = n.encode()
        ch = self._conns.get(sid)
        if ch is not None and not ch.closed:
            self._last_sent[sid] = payload
            ch.write(payload)
            return
        self._queued[sid] = payload
        self._dial(sid)

    def _dial(self, sid: int) -> None:
        if self._stopped or sid in self._dialing or sid not in self.peers:
            return
        self._dialing.add(sid)
        task = asyncio.get_running_loop().create_task(self._connect(sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, sid: int) -> None:
        host, port = self.peers[sid]
        loop = asyncio.get_running_loop()
        try:
            _, ch = await asyncio.wait_for(
                loop.create_connection(lambda: _Channel(self, sid), host, port),
                self.connect_timeout)
        except (OSError, TimeoutError) as e:
            log.debug("cannot open election channel to sid %d at %s:%d: %s", sid, host, port,
                      e)
            return
        finally:
            self._dialing.discard(sid)
        assert ch.transport is not None
        hello = InitialMessage(self.my_id, (self.my_address,), self.protocol_version)
        ch.transport.write(hello.encode())
        if sid > self.my_id:
            # They win the challenge and dial us back (QuorumCnxManager.startConnection).
            ch.transport.close()
            ch.closed = True
            return
        self._adopt(sid, ch)

    def _adopt(self, sid: int, ch: _Channel) -> None:
        old = self._conns.get(sid)
        self._conns[sid] = ch
        if old is not None and old is not ch:
            old.close()
        payload = self._queued.pop(sid, None) or self._last_sent.get(sid)
        if payload is not None:
            self._last_sent[sid] = payload
            ch.write(payload)

    # --- callbacks from channels ---------------------------------------------------------

    def _hello(self, ch: _Channel, msg: InitialMessage) -> None:
        sid = msg.sid
        if sid == OBSERVER_ID:
            sid = self._next_observer_id
            self._next_observer_id -= 1
        ch.sid = sid
        if sid < self.my_id and sid >= 0:
            # We win the challenge: drop theirs and dial them ourselves.
            ch.close()
            if msg.addresses and sid not in self.peers:
                self.peers[sid] = msg.addresses[0]
            self._dial(sid)
            return
        self._adopt(sid, ch)

    def _lost(self, ch: _Channel) -> None:
        if ch.sid is not None and self._conns.get(ch.sid) is ch:
            del self._conns[ch.sid]

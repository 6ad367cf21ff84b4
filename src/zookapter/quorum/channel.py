"""One leader-learner connection (the quorum port) on asyncio.

The stream carries back-to-back QuorumPackets with no framing beyond their own jute layout,
except right after a SNAP packet, where the leader writes a raw snapshot and its signature
(see snapstream.py). `QuorumChannel` splits the stream into `on_packet(channel, packet)`
calls and, for a SNAP sync, one `on_snapshot(channel, body)` call between the SNAP packet and
the packets that follow it (`body`: the snapshot without its checked signature, for
`storage.snapshot.parse_wire_snapshot(body, signed=False)`). Undecodable input closes the connection with a log
line; `on_closed(channel)` is called exactly once however the connection ends.

Writes are coalesced: packets sent during one turn of the event loop leave in one
`transport.write` (one syscall, one wakeup of the peer) when the turn ends, as Java's
learner handler flushes its buffered stream only once its queue is empty. Under load a
leader's PROPOSALs and COMMITs, and a follower's ACKs and forwarded requests, go out in
batches. Order is kept (raw snapshot bytes go through the same buffer), and `close()` writes
what is buffered first. `paused` tells the shell that the peer is not reading (asyncio flow
control), so it can stop feeding proposals to a stuck learner as Java's bounded queues do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..protocol.jute import JuteError
from ..storage.snapshot import WIRE_SIGNATURE_BYTES, SnapshotError
from .packets import PacketDecoder, PacketError, QuorumPacket
from .snapstream import SnapshotScanner, SnapshotStreamError

log = logging.getLogger("zookapter.quorum")


class QuorumChannel(asyncio.Protocol):
    """See the module docstring. `peer` is free for the shell (e.g. the learner's sid)."""

    def __init__(self, on_packet: Callable[[QuorumChannel, QuorumPacket], None],
                 on_snapshot: Callable[[QuorumChannel, bytes], None],
                 on_closed: Callable[[QuorumChannel], None]) -> None:
        self.on_packet = on_packet
        self.on_snapshot = on_snapshot
        self.on_closed = on_closed
        self.decoder = PacketDecoder()
        self.scanner: SnapshotScanner | None = None
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self.closed = False
        self.paused = False
        self._out: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # called when a read has been handled, e.g. to flush what it caused at once
        self.on_batch_end: Callable[[], None] | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        try:
            self._feed(data)
        except (PacketError, SnapshotStreamError, SnapshotError, JuteError) as e:
            log.warning("closing quorum connection to %s: %s", self.peer, e)
            self.close()
        if self.on_batch_end is not None:
            self.on_batch_end()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    # --- stream handling -----------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        while data and not self.closed:
            if self.scanner is not None:
                end = self.scanner.feed(data)
                if end is None:
                    return
                buf = self.scanner.buf
                self.scanner = None
                sig = len(WIRE_SIGNATURE_BYTES)
                if bytes(buf[end - sig:end]) != WIRE_SIGNATURE_BYTES:
                    raise SnapshotError("SNAP sync without the BenWasHere signature")
                self.on_snapshot(self, bytes(buf[:end - sig]))
                data = bytes(buf[end:])
                continue
            for pkt in self.decoder.feed(data):
                if self.closed:
                    return
                self.on_packet(self, pkt)
            data = b""
            if self.decoder.stopped_at_snap:
                self.scanner = SnapshotScanner()
                data = self.decoder.take_remaining()

    # --- writing -------------------------------------------------------------------------

    def send(self, pkt: QuorumPacket) -> None:
        self._buffer(pkt.encode())

    def send_raw(self, data: bytes) -> None:
        """Bytes outside packet framing: the snapshot a leader streams after SNAP."""
        self._buffer(data)

    def _buffer(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            return
        if not self._out:
            assert self._loop is not None
            self._loop.call_soon(self.flush)
        self._out.append(data)

    def flush(self) -> None:
        """Write what was sent since the last flush (called at the end of the loop turn)."""
        out, self._out = self._out, []
        if out and self.transport is not None and not self.closed:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)  # uvloop: one writev, no joined copy

    def close(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()
        self._closed()

    def _closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed(self)


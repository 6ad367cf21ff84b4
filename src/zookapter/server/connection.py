"""Per-client connection: framing, the handshake and four-letter words over asyncio.

`FrameDecoder` is the sans-I/O part: bytes in, complete frames (or a 4lw command) out, with
ZooKeeper's limits (a frame length < 0 or > jute.maxbuffer closes the connection). The
asyncio `ClientConnection` feeds it and forwards frames to the ServerCore; replies written
in one event-loop iteration leave in one `write()` call.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol.consts import XID_AUTH, Perm
from ..protocol.jute import JuteError, Reader, Writer
from ..protocol.records import ConnectRequest, ConnectResponse, Id
from . import replies
from .acl import check_acl

if TYPE_CHECKING:
    from .core import ServerCore

log = logging.getLogger("zookapter.server")

LEN = struct.Struct(">i")
HDR = struct.Struct(">ii")

FOUR_LETTER_WORDS = frozenset({
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "envi", "wchs", "wchc", "wchp",
    "dirs", "isro", "srst", "dump", "gtmk", "stmk", "hash", "reqs", "kill",
})
FOUR_LETTER_CODES = {LEN.unpack(w.encode("ascii"))[0]: w for w in FOUR_LETTER_WORDS}


class FrameError(Exception):
    pass


class FrameDecoder:
    """Splits a byte stream into length-prefixed frames; detects a 4lw as first bytes."""

    __slots__ = ("buf", "first", "max_len")

    def __init__(self, max_len: int) -> None:
        self.buf = bytearray()
        self.max_len = max_len
        self.first = True

    def feed(self, data: bytes) -> list[bytes | str]:
        """Frames (bytes) in order; a str item is a four-letter word (connection ends)."""
        self.buf += data
        out: list[bytes | str] = []
        buf = self.buf
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (length,) = LEN.unpack_from(buf, pos)
            if self.first:
                word = FOUR_LETTER_CODES.get(length)
                if word is not None:
                    out.append(word)
                    del buf[:]
                    return out
            if length < 0 or length > self.max_len:
                raise FrameError(f"Len error {length}")
            if n - pos - 4 < length:
                break
            out.append(bytes(buf[pos + 4:pos + 4 + length]))
            pos += 4 + length
            self.first = False
        if pos:
            del buf[:pos]
        return out


class ClientConnection(asyncio.Protocol):
    """One client TCP (or TLS) connection bound to the server core."""

    def __init__(self, core: ServerCore, server: object,
                 fourlw: Callable[[str, ClientConnection], str], secure: bool = False) -> None:
        self.core = core
        self.server = server
        self.fourlw = fourlw
        self.secure = secure
        self.decoder = FrameDecoder(core.config.jute_maxbuffer)
        self.transport: asyncio.Transport | None = None
        self.session_id = 0
        self.auth_ids: list[Id] = []
        self.pending: deque = deque()
        self.handshake_done = False
        self.closing = False
        self.peer = ("?", 0)
        self.has_read_only = True
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self.loop = asyncio.get_event_loop()
        self.received = 0
        self.sent = 0
        self.established = 0
        self.last_op = "NA"
        self.last_cxid = 0
        self.last_zxid = 0
        # per-connection reply statistics (cons / AdminServer connections), see response_sent
        self.last_opcode: int | None = None
        self.last_response_time = 0
        self.last_latency = 0
        self.min_latency = -1
        self.max_latency = 0
        self.total_latency = 0
        self.latency_count = 0
        self.sasl_server: object | None = None

    def __hash__(self) -> int:
        return id(self)

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = (peer[0], peer[1])
        self.auth_ids.append(Id("ip", self.peer[0]))
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            self._x509_auth(sslobj)
        if not self.server.accept(self):  # type: ignore[attr-defined]
            self.closing = True
            transport.close()
            return
        self.core.connections.add(self)

    def _x509_auth(self, sslobj: object) -> None:
        try:
            from .tls import client_x509_id
            dn = client_x509_id(sslobj)
        except Exception:  # pragma: no cover - optional TLS module
            dn = None
        if dn:
            self.auth_ids.append(Id("x509", dn))
            superuser = self.core.config_super_x509
            if superuser and dn == superuser:
                self.auth_ids.append(Id("super", dn))

    # Backpressure: a client that does not read its replies stops being read from, so one
    # slow or hostile client cannot grow the server's buffers without bound.
    def pause_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.core.connection_lost(self)
        self.server.released(self)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            frames = self.decoder.feed(data)
        except FrameError as e:
            log.warning("closing connection from %s: %s", self.peer[0], e)
            self.close()
            return
        for frame in frames:
            if self.closing:
                return
            if isinstance(frame, str):
                self._four_letter(frame)
                return
            if self.handshake_done:
                self._request(frame)
            else:
                self._handshake(frame)

    # --- protocol -----------------------------------------------------------------------------

    def _four_letter(self, word: str) -> None:
        try:
            text = self.fourlw(word, self)
        except Exception:
            log.exception("four letter word %s failed", word)
            text = ""
        self.send(text.encode("utf-8"))
        self.close()

    def _handshake(self, frame: bytes) -> None:
        try:
            req = ConnectRequest.read(Reader(frame, 0, self.core.config.jute_maxbuffer))
        except JuteError as e:
            log.warning("malformed ConnectRequest from %s: %s", self.peer[0], e)
            self.close()
            return
        self.has_read_only = req.has_read_only
        self.handshake_done = True
        self.core.metrics.inc("connection_request_count")
        if not self.core.connect(self, req):
            self.close()

    def connect_done(self, resp: ConnectResponse) -> None:
        if self.closing:
            return
        if not self.has_read_only:
            resp = ConnectResponse(resp.protocolVersion, resp.timeOut, resp.sessionId,
                                   resp.passwd, False, False)
        w = Writer()
        resp.write(w)
        body = bytes(w.buf)
        self.send(LEN.pack(len(body)) + body)
        self.established = self.core.clock()
        if resp.timeOut == 0:
            self.close()

    def _request(self, frame: bytes) -> None:
        if len(frame) < 8:
            log.warning("short request header from %s", self.peer[0])
            self.close()
            return
        xid, op = HDR.unpack_from(frame, 0)
        self.received += 1
        self.core.metrics.inc("bytes_received_count", len(frame) + 4)
        self.last_cxid = xid
        self.core.submit(self, xid, op, Reader(frame, 8, self.core.config.jute_maxbuffer * 2))

    # --- output -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closing or self.transport is None:
            return
        self._out.append(data)
        self.sent += 1
        self.core.stats.packets_sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            out = self._out
            self._out = []
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def response_sent(self, op: int, zxid: int, latency_ms: int, now_ms: int) -> None:
        """Called by the core for each answered request (ServerCnxn.updateStatsForResponse)."""
        self.last_opcode = op
        self.last_zxid = zxid
        self.last_response_time = now_ms
        self.last_latency = latency_ms
        if self.min_latency < 0 or latency_ms < self.min_latency:
            self.min_latency = latency_ms
        self.max_latency = max(self.max_latency, latency_ms)
        self.total_latency += latency_ms
        self.latency_count += 1

    def reset_stats(self) -> None:
        """`crst`: as ServerCnxn.resetStats."""
        self.received = self.sent = 0
        self.last_opcode = None
        self.last_op = "NA"
        self.last_cxid = self.last_zxid = -1
        self.last_response_time = self.last_latency = 0
        self.min_latency = -1
        self.max_latency = self.total_latency = self.latency_count = 0

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        self.send(replies.notification(event_type, path, zxid))

    def can_read(self, acl: tuple) -> bool:
        return check_acl(acl, Perm.READ, self.auth_ids, self.core.config.skip_acl)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.transport is not None:
            if self._out:
                out = self._out
                self._out = []
                if not self.transport.is_closing():
                    self.transport.write(b"".join(out))
            self.transport.close()


__all__ = ["FOUR_LETTER_WORDS", "XID_AUTH", "ClientConnection", "FrameDecoder"]

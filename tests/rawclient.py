"""A tiny blocking raw-socket ZooKeeper client for protocol-level tests (bad input, exact
bytes). It speaks only what the tests need; real client behaviour is tested with kazoo."""

from __future__ import annotations

import socket
import struct

from zookapter.protocol.jute import Reader, Writer
from zookapter.protocol.records import ConnectRequest, ConnectResponse

LEN = struct.Struct(">i")
REPLY = struct.Struct(">iqi")


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.session_id = 0
        self.passwd = b"\x00" * 16
        self.xid = 0

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(LEN.pack(len(payload)) + payload)

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("connection closed")
            out += chunk
        return out

    def recv_frame(self) -> bytes:
        (n,) = LEN.unpack(self.recv_exact(4))
        return self.recv_exact(n)

    def connect(self, timeout_ms: int = 10000, session_id: int = 0,
                passwd: bytes = b"\x00" * 16, read_only: bool | None = False
                ) -> ConnectResponse:
        req = ConnectRequest(0, 0, timeout_ms, session_id, passwd, bool(read_only),
                             read_only is not None)
        w = Writer()
        req.write(w)
        self.send_frame(bytes(w.buf))
        resp = ConnectResponse.read(Reader(self.recv_frame()))
        self.session_id, self.passwd = resp.sessionId, resp.passwd
        return resp

    def request(self, op: int, body: bytes = b"", xid: int | None = None
                ) -> tuple[int, int, int, bytes]:
        """Send one request; return (xid, zxid, err, body) of the next non-event reply."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send_frame(struct.pack(">ii", xid, op) + body)
        while True:
            frame = self.recv_frame()
            rxid, zxid, err = REPLY.unpack_from(frame, 0)
            if rxid != -1:
                return rxid, zxid, err, frame[16:]

    def is_closed(self, wait: float = 2.0) -> bool:
        self.sock.settimeout(wait)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def four_letter(host: str, port: int, word: str) -> str:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(word.encode("ascii"))
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return out.decode("utf-8")

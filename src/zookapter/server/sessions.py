"""Session tracking: id allocation, passwords, timeouts and expiry, without clocks.

Mirrors ZooKeeper's SessionTrackerImpl: ids start at `((now << 24) >>> 8) | (serverId << 56)`
and count up; deadlines are rounded up to the next tickTime boundary (expiry "buckets"), so a
tracker only needs to be looked at once per tick. Time is passed in by the caller (ms).

The session password is java.util.Random(sessionId ^ 0xB3415C00).nextBytes(16), exactly as
ZooKeeper derives it, so sessions stay valid when a client moves between our server and a
Java one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MULT = 0x5DEECE66D
_MASK48 = (1 << 48) - 1
SUPER_SECRET = 0xB3415C00
CONTAINER_SESSION_MARKER = -0x8000000000000000


def java_random_bytes(seed: int, n: int) -> bytes:
    """java.util.Random(seed).nextBytes(n)."""
    s = (seed ^ _MULT) & _MASK48
    out = bytearray()
    while len(out) < n:
        s = (s * _MULT + 0xB) & _MASK48
        r = (s >> 16) & 0xFFFFFFFF
        for _ in range(min(4, n - len(out))):
            out.append(r & 0xFF)
            r >>= 8
    return bytes(out)


def session_password(session_id: int) -> bytes:
    return java_random_bytes(session_id ^ SUPER_SECRET, 16)


def timeout_bounds(tick_ms: int, min_ms: int, max_ms: int) -> tuple[int, int]:
    """Negotiable session timeouts: unset (<= 0) bounds default to 2x and 20x tickTime."""
    return (min_ms if min_ms > 0 else 2 * tick_ms, max_ms if max_ms > 0 else 20 * tick_ms)


def to_signed64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def initial_session_id(now_ms: int, server_id: int) -> int:
    """SessionTrackerImpl.initializeNextSessionId."""
    nxt = ((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
    nxt |= (server_id << 56) & 0xFFFFFFFFFFFFFFFF
    if nxt == 0x8000000000000000:
        nxt += 1
    return to_signed64(nxt)


@dataclass(slots=True)
class Session:
    session_id: int
    timeout_ms: int
    password: bytes
    expires_at: int = 0
    closing: bool = False
    owner: Any = None  # the connection currently bound to the session (server-defined type)


class SessionTracker:
    """Live sessions and their expiry deadlines."""

    def __init__(self, tick_ms: int, server_id: int = 0, now_ms: int = 0) -> None:
        self.tick_ms = tick_ms
        self.sessions: dict[int, Session] = {}
        self.next_id = initial_session_id(now_ms, server_id)

    def round_up(self, t: int) -> int:
        return (t // self.tick_ms + 1) * self.tick_ms

    def allocate_id(self) -> int:
        sid = self.next_id
        nxt = to_signed64(sid + 1)
        if nxt == CONTAINER_SESSION_MARKER:
            nxt += 1
        self.next_id = nxt
        return sid

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> Session:
        s = self.sessions.get(session_id)
        if s is None:
            s = Session(session_id, timeout_ms, session_password(session_id))
            self.sessions[session_id] = s
        s.timeout_ms = timeout_ms
        s.expires_at = self.round_up(now_ms + timeout_ms)
        return s

    def touch(self, session_id: int, now_ms: int) -> bool:
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        s.expires_at = self.round_up(now_ms + s.timeout_ms)
        return True

    def get(self, session_id: int) -> Session | None:
        return self.sessions.get(session_id)

    def set_closing(self, session_id: int) -> None:
        s = self.sessions.get(session_id)
        if s is not None:
            s.closing = True

    def remove(self, session_id: int) -> Session | None:
        return self.sessions.pop(session_id, None)

    def expired(self, now_ms: int) -> list[Session]:
        """Sessions whose deadline passed; they are marked closing (expiry is a txn)."""
        out = [s for s in self.sessions.values() if not s.closing and s.expires_at <= now_ms]
        for s in out:
            s.closing = True
        return out

    def next_deadline(self) -> int | None:
        live = [s.expires_at for s in self.sessions.values() if not s.closing]
        return min(live) if live else None

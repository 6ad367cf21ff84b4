"""maxClientCnxns: the per-client-address connection limit, shared by the standalone server
and ensemble members (ZooKeeper's ServerCnxnFactory does the same count for both)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("zookapter.server")


class ConnectionLimiter:
    """Counts open connections per client IP; `limit` <= 0 means no limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.per_ip: dict[str, int] = {}

    def admit(self, conn: Any) -> bool:
        """Count `conn` in, or refuse it (logged as ZooKeeper does) when its address is full."""
        ip = conn.peer[0]
        n = self.per_ip.get(ip, 0)
        if self.limit > 0 and n >= self.limit:
            log.warning("Too many connections from /%s - max is %d", ip, self.limit)
            return False
        self.per_ip[ip] = n + 1
        conn.counted = True
        return True

    def release(self, conn: Any) -> None:
        """Count a closed connection out (once, and only if it was admitted)."""
        if getattr(conn, "counted", False):
            conn.counted = False
            ip = conn.peer[0]
            n = self.per_ip.get(ip, 1) - 1
            if n <= 0:
                self.per_ip.pop(ip, None)
            else:
                self.per_ip[ip] = n

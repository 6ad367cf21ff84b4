"""Looking for a read-write server while the session sits on a read-only one.

A server that has lost its quorum can keep serving reads (readonlymode.enabled); a client
created with `read_only=True` accepts such a server and reaches state CONNECTED_RO. Like
Java's ClientCnxn (pingRwServer) and kazoo, it then keeps probing the other servers in the
background with the `isro` four-letter word: a server that is part of a working quorum answers
`rw`, a read-only one `ro` (and one without a running ZooKeeper server `null`). As soon as one
answers `rw` the client drops the read-only connection and moves the session there.

The probing backs off between rounds (doubling from RW_SEARCH_MIN_S up to RW_SEARCH_MAX_S), so
a long partition costs a handful of short TCP connections per minute. Java caps its interval at
60 s and kazoo probes about every second; 10 s is in between: a healed partition is noticed
quickly without hammering servers that are still down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module

log = logging.getLogger("zookapter.client")

RW_PROBE_TIMEOUT_S = 1.0  # Java's pingRwServer socket timeout
RW_SEARCH_MIN_S = 0.1
RW_SEARCH_MAX_S = 10.0
ISRO_REPLY_MAX = 64


async def is_read_write(host: str, port: int, ssl: ssl_module.SSLContext | None = None,
                        timeout: float = RW_PROBE_TIMEOUT_S) -> bool:
    """True if the server at host:port answers `isro` with `rw`; False if it answers anything
    else or cannot be reached in `timeout` seconds."""
    try:
        return await asyncio.wait_for(_isro(host, port, ssl), timeout) == "rw"
    except (OSError, asyncio.TimeoutError, EOFError) as e:
        log.debug("isro probe of %s:%d failed: %r", host, port, e)
        return False


async def _isro(host: str, port: int, ssl: ssl_module.SSLContext | None) -> str:
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ssl, server_hostname=host if ssl is not None else None)
    try:
        writer.write(b"isro")
        await writer.drain()
        reply = await reader.read(ISRO_REPLY_MAX)  # the server answers and closes
        return reply.decode("ascii", "replace").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl_module.SSLError):
            await writer.wait_closed()


async def find_read_write(hosts: list[tuple[str, int]],
                          ssl: ssl_module.SSLContext | None = None, *,
                          first_delay: float = RW_SEARCH_MIN_S,
                          max_delay: float = RW_SEARCH_MAX_S) -> tuple[str, int]:
    """Probe `hosts` in rounds until one answers `rw`, and return it. Waits `first_delay`
    before the first round and doubles the wait after each fruitless one, up to `max_delay`.
    Runs until it finds one or is cancelled."""
    delay = first_delay
    while True:
        await asyncio.sleep(delay)
        for host, port in hosts:
            if await is_read_write(host, port, ssl):
                log.info("read-write server found at %s:%d", host, port)
                return host, port
        delay = min(delay * 2, max_delay)

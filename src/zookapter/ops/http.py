"""A small aiohttp listener shared by the AdminServer and the Prometheus endpoint.

Both run on the server's own event loop, so their handlers read live server state on the
same thread that changes it (no locks, no torn reads). aiohttp is imported only when one of
them is enabled; its access log is off (ZooKeeper's Jetty logs no requests either).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("zookapter.ops")


class StartupError(Exception):
    """An operations endpoint could not start; ZooKeeper then exits with `exit_code`."""

    exit_code = 1


# Seconds a stopping listener waits for requests still being answered.
SHUTDOWN_GRACE_S = 1.0


class HttpListener:
    """One aiohttp application bound to host:port; `port` is the bound port once started."""

    def __init__(self, app: web.Application, host: str, port: int,
                 idle_timeout_ms: int | None = None) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.idle_timeout_ms = idle_timeout_ms
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Bind and serve; raises OSError when the address cannot be bound."""
        from aiohttp import web
        kwargs: dict[str, object] = {"access_log": None, "shutdown_timeout": SHUTDOWN_GRACE_S}
        if self.idle_timeout_ms is not None:
            kwargs["keepalive_timeout"] = max(self.idle_timeout_ms, 0) / 1000.0
        runner = web.AppRunner(self.app, **kwargs)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.requested_port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = _bound_port(runner, self.requested_port)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await runner.cleanup()
            except Exception:
                log.exception("stopping the HTTP listener on port %s failed", self.port)


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested

"""The AdminServer: ZooKeeper 3.5+'s HTTP command interface (JettyAdminServer), on aiohttp.

    GET <commandURL>            links to every command (HTML fragments, one per line)
    GET <commandURL>/<name>     the command's JSON; aliases work (mntr == monitor)

Settings are ZooKeeper's system properties (zoo.cfg keys `admin.*` become them):
`zookeeper.admin.enableServer` (on unless exactly "false"), `.serverAddress` (0.0.0.0),
`.serverPort` (8080), `.commandURL` (/commands), `.idleTimeout` (30000 ms). Every command
answers 200 with a JSON object, errors included ("Unknown command: x"), as ZooKeeper's
CommandServlet does; paths outside the command URL are 404. A port that cannot be bound
fails the server start (ZooKeeper exits with code 4, ERROR_STARTING_ADMIN_SERVER).
Commands take no authentication (3.8 has none; 3.9's snapshot/restore are not offered).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from .admin_commands import PRIMARY_NAMES, run_command
from .http import HttpListener, StartupError

if TYPE_CHECKING:
    from aiohttp import web

    from ..server.standalone import StandaloneServer

log = logging.getLogger("zookapter.admin")

DEFAULT_ADDRESS = "0.0.0.0"
DEFAULT_PORT = 8080
DEFAULT_COMMAND_URL = "/commands"
DEFAULT_IDLE_TIMEOUT_MS = 30000
ERROR_STARTING_ADMIN_SERVER = 4  # ZooKeeper's ExitCode for a failed AdminServer start


class AdminServerError(StartupError):
    """The AdminServer could not start; the server exits with `exit_code`."""

    exit_code = ERROR_STARTING_ADMIN_SERVER


class AdminServer:
    """The HTTP command interface of one server, served from that server's event loop."""

    def __init__(self, server: StandaloneServer, address: str = DEFAULT_ADDRESS,
                 port: int = DEFAULT_PORT, command_url: str = DEFAULT_COMMAND_URL,
                 idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS) -> None:
        self.server = server
        self.address = address
        self.command_url = command_url.rstrip("/") or ""
        self.listener = HttpListener(self._app(), address, port, idle_timeout_ms)

    @property
    def port(self) -> int | None:
        return self.listener.port

    def _app(self) -> web.Application:
        from aiohttp import web
        app = web.Application()
        base = self.command_url
        app.router.add_get(base or "/", self._links)
        if base:
            app.router.add_get(base + "/", self._links)
        app.router.add_get(base + "/{name:.+}", self._command)
        return app

    async def start(self) -> None:
        try:
            port = await self.listener.start()
        except OSError as e:
            raise AdminServerError(
                f"Problem starting AdminServer on address {self.address}, port "
                f"{self.listener.requested_port} and command URL {self.command_url}: {e}"
            ) from e
        log.info("Started AdminServer on address %s, port %d and command URL %s",
                 self.address, port, self.command_url)

    async def stop(self) -> None:
        await self.listener.stop()

    # --- handlers ---------------------------------------------------------------------------

    async def _links(self, request: web.Request) -> web.Response:
        from aiohttp import web
        body = "".join(f'<a href="{self.command_url}/{name}">{name}</a>\n<br/>\n'
                       for name in PRIMARY_NAMES)
        return web.Response(text=body, content_type="text/html")

    async def _command(self, request: web.Request) -> web.Response:
        from aiohttp import web
        name = request.match_info["name"]
        kwargs = {k: request.query.getone(k) for k in request.query}
        try:
            result = run_command(name, self.server, kwargs)
            text = json.dumps(result, indent=2, default=_json_default)
        except Exception:
            log.exception("AdminServer command %s failed", name)
            text = '{"error": "Exception writing command response to JSON"}'
        return web.Response(text=text, content_type="application/json")


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def admin_server_for(server: StandaloneServer) -> AdminServer | None:
    """The AdminServer the server's configuration asks for, or None when disabled."""
    cfg = server.config
    if not cfg.admin_enabled:
        return None
    return AdminServer(server, cfg.admin_address, cfg.admin_port, cfg.admin_command_url,
                       cfg.admin_idle_timeout_ms)

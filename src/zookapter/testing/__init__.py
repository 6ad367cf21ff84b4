"""An in-process zookapter server for tests: no JVM, no subprocess.

    from zookapter.testing import ZookapterServer

    with ZookapterServer() as zk:          # listens on 127.0.0.1:<free port>
        client = KazooClient(hosts=zk.hosts)

The server runs on its own event loop in a daemon thread, so it works from synchronous test
code and from async code on another loop alike. pytest fixtures (`zookapter_server`, a fresh
server per test, and `zookapter_server_session`, one per test session) are provided by
`zookapter.testing.fixtures`; enable them with `pytest_plugins = ["zookapter.testing.fixtures"]`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from typing import Any

from ..server.config import ServerConfig
from ..server.standalone import StandaloneServer

__all__ = ["ZookapterServer"]


class ZookapterServer:
    """A real zookapter server on a free loopback port, running in a background thread."""

    def __init__(self, *, tick_time: int = 2000, extended_types: bool = True,
                 super_digest: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 fourlw_whitelist: str = "*", props: dict[str, str] | None = None,
                 data_dir: str | None = None, **config: Any) -> None:
        self._tmp = None if data_dir else tempfile.mkdtemp(prefix="zookapter-test-")
        cfg = ServerConfig(tick_time=tick_time, data_dir=data_dir or self._tmp or "",
                           client_port=port, client_port_address=host, max_client_cnxns=0)
        for k, v in config.items():
            setattr(cfg, k, v)
        cfg.props["zookeeper.4lw.commands.whitelist"] = fourlw_whitelist
        # No AdminServer unless asked for (props): its default port 8080 would collide
        # between servers that tests run side by side.
        cfg.props["zookeeper.admin.enableServer"] = "false"
        if extended_types:
            cfg.props["zookeeper.extendedTypesEnabled"] = "true"
        if super_digest:
            cfg.props["zookeeper.DigestAuthenticationProvider.superDigest"] = super_digest
        cfg.props.update(props or {})
        self.config = cfg
        self.host = host
        self.port = 0
        self.server: StandaloneServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ZookapterServer:
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.server = StandaloneServer(self.config)
                loop.run_until_complete(self.server.start())
                self.port = self.server.port or 0
            except BaseException as e:  # surfaced to the caller of start()
                error.append(e)
                ready.set()
                return
            ready.set()
            loop.run_until_complete(self.server.stopped.wait())
            loop.run_until_complete(self.server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="zookapter-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if error:
            raise error[0]
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop thread and return its result."""
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(_wrap(fn, *args), self.loop)
        return fut.result(10)

    def stop(self) -> None:
        if self.server is not None and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.server.stopped.set)
        if self._thread is not None:
            self._thread.join(10)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> ZookapterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _wrap(fn: Any, *args: Any) -> Any:
    return fn(*args)

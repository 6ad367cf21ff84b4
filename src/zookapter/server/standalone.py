"""The standalone server: asyncio listeners, timers and the core wired together.

This is the I/O shell around `ServerCore`: it owns the listening sockets (plain and TLS),
passes the wall clock in, runs the session-expiry tick and the container/TTL reaper, and
enforces maxClientCnxns per client address.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..ops import fourletter
from ..ops.adminserver import AdminServer
from ..ops.endpoints import start_endpoints, stop_endpoints
from ..protocol.txns import Txn
from ..storage.database import Database
from ..storage.persister import TxnLogPersister
from ..storage.purge import purge
from .acl import AuthProviders
from .cnxlimit import ConnectionLimiter
from .config import ServerConfig
from .connection import ClientConnection
from .containers import ContainerReaper
from .core import CoreConfig, ServerCore
from .sasl import SaslServerFactory

if TYPE_CHECKING:
    from ..ops.prometheus import PrometheusEndpoint

log = logging.getLogger("zookapter.server")


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class StandaloneServer:
    def __init__(self, config: ServerConfig, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.clock = clock
        self.core: ServerCore | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self.limiter = ConnectionLimiter(config.max_client_cnxns)
        self.started_at = time.time()
        self.port: int | None = None
        self.secure_port: int | None = None
        self._tasks: list[asyncio.Task] = []
        self.stopped = asyncio.Event()
        self.database: Database | None = None
        self.initial_config: str | None = None  # zoo.cfg as read at start (AdminServer icfg)
        self.admin: AdminServer | None = None
        self.metrics_endpoint: PrometheusEndpoint | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        # A standalone ZooKeeperServer allocates session ids as server 1.
        core_cfg = CoreConfig(tick_time=cfg.tick_time, min_session_timeout=cfg.min_timeout,
                              max_session_timeout=cfg.max_timeout,
                              extended_types=cfg.extended_types, skip_acl=cfg.skip_acl,
                              enforce_quota=cfg.enforce_quota,
                              server_id=cfg.server_id or 1, jute_maxbuffer=cfg.jute_maxbuffer,
                              reconfig_enabled=cfg.raw.get("reconfigEnabled", "").strip()
                              .lower() == "true")
        self.database = database = Database(
            cfg.data_dir, cfg.data_log_dir, snap_count=cfg.snap_count,
            force_sync=cfg.force_sync, prealloc_size_kb=cfg.prealloc_size_kb,
            # nodes serialized per event-loop turn by a fuzzy snapshot (tests make it tiny)
            snapshot_chunk=int(cfg.prop("zookapter.snapshot.chunkNodes", "500") or 500))
        loaded = database.load()
        persister = database.open_log(loop, self._fatal)
        self.core = core = ServerCore(core_cfg, self.clock, schedule=loop.call_soon,
                                      tree=loaded.tree, tree_digest=loaded.digest.value,
                                      persister=_SnapshottingPersister(
                                          persister, database, self, loop))
        now = self.clock()
        for sid, timeout in loaded.sessions.items():
            core.sessions.add(sid, timeout, now)
        database.snapshot_sync(core.tree, self.session_timeouts())
        core.auth_providers = AuthProviders(
            cfg.super_digest, cfg.prop("zookeeper.DigestAuthenticationProvider.digestAlg",
                                       "SHA1") or "SHA1",
            (cfg.prop("zookeeper.DigestAuthenticationProvider.enabled", "true") or "true")
            .lower() != "false")
        core.sasl = SaslServerFactory(cfg.props)
        core.config_super_x509 = cfg.prop("zookeeper.X509AuthenticationProvider.superUser")
        core.server = self  # type: ignore[attr-defined]
        os.makedirs(cfg.data_dir, exist_ok=True)
        backlog = cfg.listen_backlog if cfg.listen_backlog > 0 else 100
        if cfg.client_port is not None:
            srv = await loop.create_server(lambda: self._protocol(False),
                                           cfg.client_port_address, cfg.client_port,
                                           backlog=backlog, reuse_address=True)
            self.servers.append(srv)
            self.port = srv.sockets[0].getsockname()[1]
            log.info("binding to port %s:%d", cfg.client_port_address, self.port)
        if cfg.secure_client_port is not None:
            from .tls import build_server_context
            ctx = build_server_context(cfg.ssl_props)
            addr = cfg.secure_client_port_address or cfg.client_port_address
            srv = await loop.create_server(lambda: self._protocol(True), addr,
                                           cfg.secure_client_port, ssl=ctx, backlog=backlog,
                                           reuse_address=True)
            self.servers.append(srv)
            self.secure_port = srv.sockets[0].getsockname()[1]
            log.info("binding to secure port %s:%d", addr, self.secure_port)
        self.reaper = ContainerReaper(core, cfg.container_max_per_minute)
        self._tasks.append(loop.create_task(self._session_ticker()))
        self._tasks.append(loop.create_task(self._container_ticker()))
        log.info("autopurge.snapRetainCount set to %d", cfg.snap_retain_count)
        log.info("autopurge.purgeInterval set to %d", cfg.purge_interval)
        if cfg.autopurge_interval_ms > 0:
            self._tasks.append(loop.create_task(
                self._purge_ticker(cfg.autopurge_interval_ms / 1000.0)))
        else:
            log.info("Purge task is not scheduled.")
        await self._start_ops()

    async def _start_ops(self) -> None:
        """The AdminServer and the Prometheus endpoint; a failure stops the whole server
        (ZooKeeper exits when either cannot start)."""
        self.initial_config = _read_text(self.config.config_path)
        await start_endpoints(self)

    def session_timeouts(self) -> dict[int, int]:
        assert self.core is not None
        return {sid: s.timeout_ms for sid, s in self.core.sessions.sessions.items()}

    def _fatal(self, exc: BaseException) -> None:
        log.critical("stopping: the txn log cannot be written (%s)", exc)
        self.stopped.set()

    def _protocol(self, secure: bool) -> ClientConnection:
        assert self.core is not None
        return ClientConnection(self.core, self, self._four_letter, secure)

    async def stop(self) -> None:
        await stop_endpoints(self)
        for t in self._tasks:
            t.cancel()
        for srv in self.servers:
            srv.close()
        if self.core is not None:
            for conn in list(self.core.connections):
                conn.close()
        for srv in self.servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except (TimeoutError, Exception):
                pass
        if self.database is not None:
            self.database.close()
            self.database = None
        self.stopped.set()

    # --- connection accounting ------------------------------------------------------------------

    def accept(self, conn: ClientConnection) -> bool:
        return self.limiter.admit(conn)

    def released(self, conn: ClientConnection) -> None:
        self.limiter.release(conn)

    def _four_letter(self, word: str, conn: ClientConnection) -> str:
        return fourletter.run(word, self, conn)

    # --- timers -------------------------------------------------------------------------------

    async def _session_ticker(self) -> None:
        """Expiry runs on tickTime boundaries, as ZooKeeper's expiry buckets."""
        assert self.core is not None
        tick = self.config.tick_time
        while True:
            now = self.clock()
            await asyncio.sleep(max(0.001, (tick - now % tick) / 1000.0))
            try:
                self.core.expire_sessions()
            except Exception:
                log.exception("session expiry failed")

    async def _container_ticker(self) -> None:
        interval = self.config.container_check_interval_ms / 1000.0
        while True:
            await asyncio.sleep(interval)
            try:
                self.reaper.check()
            except Exception:
                log.exception("container reaper failed")

    async def _purge_ticker(self, interval: float) -> None:
        """autopurge, as ZooKeeper's DatadirCleanupManager: a purge at start, then one every
        interval (fixed rate), in a worker thread."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                result = await loop.run_in_executor(None, purge, cfg.data_dir,
                                                     cfg.data_log_dir, cfg.snap_retain_count)
                for p in result.deleted:
                    log.info("Purge task: removed %s", p)
                log.info("Purge task completed: removed %d snapshots and %d txn logs",
                         len(result.deleted_snapshots), len(result.deleted_logs))
            except Exception:
                log.exception("purge task failed")
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))


class _SnapshottingPersister:
    """The txn log persister, plus a snapshot check once each batch is applied."""

    def __init__(self, persister: TxnLogPersister, database: Database,
                 server: StandaloneServer, loop: asyncio.AbstractEventLoop) -> None:
        self.persister = persister
        self.database = database
        self.server = server
        self.loop = loop

    def persist(self, txns: list[Txn], done: Callable[[], None]) -> None:
        def applied() -> None:
            done()
            core = self.server.core
            if core is not None and self.server.database is not None:
                self.database.logged(len(txns), core.tree, self.server.session_timeouts,
                                     self.loop, core.applied_digest)
        self.persister.persist(txns, applied)


def _read_text(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


async def serve(config: ServerConfig) -> None:
    """Run until cancelled (Ctrl-C / SIGTERM handled by the CLI)."""
    server = StandaloneServer(config)
    await server.start()
    try:
        await server.stopped.wait()
    finally:
        await server.stop()

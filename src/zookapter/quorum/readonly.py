"""When an ensemble member serves read-only: ZooKeeper's QuorumPeer with
`readonlymode.enabled=true` (QuorumPeer.run, LOOKING branch).

Each time the peer starts LOOKING, a timer of max(2 s, tickTime) starts; if the peer is still
LOOKING when it fires, a read-only server (server/readonly.py) starts serving clients over
the peer's in-memory database. When the election ends (the peer leads, follows or
observes), the timer is cancelled and the read-only server is shut down: its clients are
disconnected, its local sessions forgotten. The database itself is never changed by it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..server.readonly import ReadOnlyCore
from .election_wire import ServerState

if TYPE_CHECKING:
    from .shell import QuorumServer

log = logging.getLogger("zookapter.quorum")

MIN_GRACE_MS = 2000


class ReadOnlyMode:
    """Starts and stops `server.core = ReadOnlyCore(...)` as the peer's state changes."""

    def __init__(self, server: QuorumServer) -> None:
        self.server = server
        self.enabled = server.config.readonly_mode
        self.grace_ms = max(MIN_GRACE_MS, server.config.tick_time)
        self._timer: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return isinstance(self.server.core, ReadOnlyCore)

    def looking(self) -> None:
        """The peer (re)starts an election: serve read-only if it lasts past the grace."""
        if not self.enabled:
            return
        self.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.grace_ms / 1000.0,
                                                            self._grace_over)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def leave(self) -> None:
        """The election is over (or the server stops): no read-only server any more. The
        caller closes the client connections."""
        self.cancel()
        if self.active:
            log.info("server %d: shutting down the read-only server", self.server.my_id)
            self.server.core = None

    def _grace_over(self) -> None:
        self._timer = None
        server = self.server
        if server.state != ServerState.LOOKING or server.core is not None or \
                server.stopped.is_set():
            return
        core = ReadOnlyCore(server.core_config(), server.clock, tree=server.tree,
                            global_sessions=server.sessions,
                            schedule=asyncio.get_running_loop().call_soon)
        server.equip(core)
        server.core = core
        log.info("server %d: read-only server started at zxid 0x%x", server.my_id,
                 core.last_zxid)


__all__ = ["ReadOnlyMode"]

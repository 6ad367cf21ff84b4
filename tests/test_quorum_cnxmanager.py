"""ElectionConnections (QuorumCnxManager on asyncio) carrying our Election core over real
loopback sockets: the one-connection-per-pair rule, re-sends on reconnect, and elections."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from zookapter.quorum.cnxmanager import ElectionConnections
from zookapter.quorum.config import verifier_from_properties
from zookapter.quorum.election import Elected, Election, Send
from zookapter.quorum.election_wire import InitialMessage, ServerState

HOST = "127.0.0.1"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Node:
    """An Election core on ElectionConnections, with a timer task for its deadlines."""

    def __init__(self, sid: int, ports: dict[int, int], last_zxid: int = 0) -> None:
        props = {f"server.{i}": f"{HOST}:{p + 1000}:{p}" for i, p in ports.items()}
        self.core = Election(sid, verifier_from_properties(props), last_zxid, 0,
                             finalize_wait_ms=100)
        self.t0 = time.monotonic()
        self.result: Elected | None = None
        self.cnx = ElectionConnections(
            sid, (HOST, ports[sid]), {i: (HOST, p) for i, p in ports.items() if i != sid},
            self._on_message)
        self._timer: asyncio.Task | None = None

    def now(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)

    def _apply(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.cnx.send(a.to, a.notification)
            elif isinstance(a, Elected):
                self.result = a

    def _on_message(self, sid: int, n) -> None:
        self._apply(self.core.step(sid, n, self.now()))

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            if self.core.running:
                self._apply(self.core.tick(self.now()))

    async def start(self) -> None:
        await self.cnx.start()
        self._apply(self.core.start(self.now()))
        self._timer = asyncio.get_running_loop().create_task(self._ticks())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.cnx.stop()


async def _until(pred, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_three_servers_elect_the_highest_id_over_one_connection_per_pair() -> None:
    async def run() -> None:
        ports = dict(zip((1, 2, 3), _free_ports(3)))
        nodes = [Node(i, ports) for i in (1, 2, 3)]
        try:
            for n in nodes:
                await n.start()
            await _until(lambda: all(n.result for n in nodes))
            assert {n.result.vote.leader for n in nodes} == {3}
            assert nodes[2].result.state == ServerState.LEADING
            assert [n.result.state for n in nodes[:2]] == [ServerState.FOLLOWING] * 2
            await _until(lambda: all(n.cnx.connected(j) for n in nodes
                                     for j in (1, 2, 3) if j != n.core.my_id))
        finally:
            for n in nodes:
                await n.stop()
    asyncio.run(run())


def test_late_server_joins_the_established_leader() -> None:
    async def run() -> None:
        ports = dict(zip((1, 2, 3), _free_ports(3)))
        nodes = {i: Node(i, ports, last_zxid=5 if i == 1 else 0) for i in (1, 2, 3)}
        try:
            await nodes[1].start()
            await nodes[2].start()
            await _until(lambda: nodes[1].result and nodes[2].result)
            assert nodes[1].result.vote.leader == 1, "the most recent zxid wins"
            await nodes[3].start()
            await _until(lambda: nodes[3].result is not None)
            assert nodes[3].result.vote.leader == 1
            assert nodes[3].result.state == ServerState.FOLLOWING
        finally:
            for n in nodes.values():
                await n.stop()
    asyncio.run(run())


def test_smaller_id_dialer_is_dropped_and_called_back() -> None:
    async def run() -> None:
        ports = dict(zip((1, 2), _free_ports(2)))
        got: list[tuple[int, object]] = []
        big = ElectionConnections(2, (HOST, ports[2]), {1: (HOST, ports[1])},
                                  lambda s, n: got.append((s, n)))
        await big.start()
        try:
            # A raw "server 1" dials server 2: 2 must hang up and dial 1's election port.
            listener = socket.create_server((HOST, ports[1]))
            listener.setblocking(False)
            loop = asyncio.get_running_loop()
            r, w = await asyncio.open_connection(HOST, ports[2])
            w.write(InitialMessage(1, ((HOST, ports[1]),)).encode())
            assert await asyncio.wait_for(r.read(), 5) == b"", "2 closes 1's connection"
            conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)
            head = await asyncio.wait_for(loop.sock_recv(conn, 4096), 5)
            assert head.startswith(InitialMessage(2, ((HOST, ports[2]),)).encode()[:16])
            conn.close()
            listener.close()
            w.close()
        finally:
            await big.stop()
    asyncio.run(run())

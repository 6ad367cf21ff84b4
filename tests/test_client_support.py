"""Shared helpers of the client tests (test_client_*.py): a server fixture parametrized over
zookapter and Apache ZooKeeper, a way to run async tests without a pytest plugin, a TCP proxy
that can cut the network, and a zookapter server subprocess that can be killed and restarted
on the same port and dataDir.

Import what you need: `from test_client_support import aiotest, zk_server, ...` (fixtures
must be imported into the test module's namespace to be found).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support import free_port, terminate

from zookapter.testing import ZookapterServer

from oracle import ApacheZooKeeper, apache_zookeeper_available

SRC = Path(__file__).resolve().parent.parent / "src"
TEST_TIMEOUT_S = 30.0


def aiotest(fn, timeout: float = TEST_TIMEOUT_S):
    """Run an `async def` test with asyncio.run (fixtures still resolve by name), failing it
    after `timeout` seconds."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout))
    return wrapper


def unique_path(prefix: str = "t") -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:12]}"


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture(scope="module")
def zookapter_module_server():
    with ZookapterServer() as server:
        yield server


@pytest.fixture(params=["zookapter", "apache"])
def zk_server(request):
    """A running server (shared within the module / session): zookapter or Apache."""
    if request.param == "zookapter":
        return request.getfixturevalue("zookapter_module_server")
    return request.getfixturevalue("apache_zk")


# --- short-tick servers for session timeout tests ----------------------------------------

@pytest.fixture(scope="module")
def fast_zookapter():
    with ZookapterServer(tick_time=200) as server:
        yield server


@pytest.fixture(scope="module")
def fast_apache():
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper oracle unavailable")
    server = ApacheZooKeeper(tick_time_ms=200).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["zookapter", "apache"])
def fast_server(request):
    """A server with tickTime 200 ms, so sessions of 400 ms..4 s are allowed."""
    return request.getfixturevalue(f"fast_{request.param}")


# --- a TCP proxy that can cut the network ------------------------------------------------

class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target. `cut()` drops every connection and refuses new
    ones (accepted and closed at once); `stall()` swallows all bytes; `heal()` restores
    service. Runs on its own event loop thread."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.down = False
        self.stalled = False
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def connections(self) -> int:
        """Connections being forwarded (two sockets each)."""
        return len(self._writers) // 2

    def cut(self) -> None:
        self.down = True
        self._call(self._drop_all())

    def heal(self) -> None:
        self.down = False
        self.stalled = False

    def stall(self) -> None:
        """Keep connections open but forward nothing (a hung server or network)."""
        self.stalled = True

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._drop_all()

    async def _drop_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        forward = self._forwarding()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       replies: bool) -> None:
            try:
                while data := await src.read(65536):
                    if forward(data, replies):
                        dst.write(data)
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    def _forwarding(self) -> Callable[[bytes, bool], bool]:
        """For one connection: whether to pass on a chunk (`replies`: the server's side).
        Subclasses look at or drop traffic here."""
        return lambda data, replies: not self.stalled


@pytest.fixture
def proxy_for():
    proxies: list[TcpProxy] = []

    def make(server) -> TcpProxy:
        host, port = server.hosts.split(":")
        proxy = TcpProxy(host, int(port)).start()
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.stop()


# --- a zookapter server subprocess --------------------------------------------------------

class ZookapterProcess:
    """`python -m zookapter.cli server zoo.cfg` on a fixed port and dataDir: kill() it with
    SIGKILL and start() it again to simulate a crash and a restart."""

    def __init__(self, workdir: Path, tick_time_ms: int = 500) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.cfg = workdir / "zoo.cfg"
        self.cfg.write_text(f"tickTime={tick_time_ms}\ndataDir={workdir / 'data'}\n"
                            f"clientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                            f"maxClientCnxns=0\nforceSync=no\n4lw.commands.whitelist=*\n"
                            "admin.enableServer=false\n")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.starts += 1
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
        log = open(self.workdir / f"server-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "zookapter.cli", "server",
                                      str(self.cfg)], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"ruok")
                    if s.recv(16) == b"imok":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not serving: {self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.proc = None

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("server-*.log"))
        return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no log)"

"""Apache ZooKeeper as a test oracle: start a real standalone server in a subprocess.

The Debian package ships Apache ZooKeeper 3.8 as jars under /usr/share/java; the manifest of
`zookeeper.jar` carries a Class-Path with every runtime dependency, so the classpath here is
just that jar plus an SLF4J backend (slf4j-simple, logging to a file in the temp dir).

`ApacheZooKeeper` writes a zoo.cfg into a fresh temp dir, picks a free loopback port, runs
`ZooKeeperServerMain` with a small JVM, and `start()` returns only once the server answers the
`ruok` four-letter word with `imok` *and* a client handshake (ConnectRequest) yields a session.
The server is configured the way the differential tests need it: extended types (TTL nodes)
enabled, a digest super user (`super:test`), all four-letter words allowed, no AdminServer, and
a container/TTL reaper interval long enough that it never runs during a test (its timing would
otherwise make results nondeterministic).

`apache_zookeeper_available()` lets tests skip cleanly when java or the jars are missing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from support import free_port, terminate

JAVA_DIR = Path(os.environ.get("ZK_ORACLE_JAVA_DIR", "/usr/share/java"))
ZOOKEEPER_JAR = JAVA_DIR / "zookeeper.jar"
JUTE_JAR = JAVA_DIR / "zookeeper-jute.jar"
SLF4J_BACKEND_JARS = ("slf4j-simple.jar", "slf4j-nop.jar")
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"

# Digest of "super:test" (base64 of SHA-1 over "super:test").
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def _is_real_java(path: Path) -> bool:
    """A java launcher binary, not a wrapper script (tests/conformance/bin/java is a shim that
    runs zookapter instead, and it may be first on PATH)."""
    try:
        with open(path, "rb") as fh:
            return os.access(path, os.X_OK) and fh.read(2) != b"#!"
    except OSError:
        return False


def _java_binary() -> str | None:
    candidates = []
    if os.environ.get("ZK_ORACLE_JAVA"):
        candidates.append(Path(os.environ["ZK_ORACLE_JAVA"]))
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    candidates.extend(Path(d or ".") / "java" for d in os.environ.get("PATH", "").split(os.pathsep))
    candidates.append(Path("/usr/bin/java"))
    for candidate in candidates:
        if _is_real_java(candidate):
            return str(candidate)
    return None


def _classpath() -> str:
    jars = [str(ZOOKEEPER_JAR), str(JUTE_JAR)]
    for name in SLF4J_BACKEND_JARS:
        if (JAVA_DIR / name).exists():
            jars.append(str(JAVA_DIR / name))
            break
    return os.pathsep.join(jars)


def apache_zookeeper_available() -> bool:
    """True when a java binary and the Apache ZooKeeper jars are present."""
    return _java_binary() is not None and ZOOKEEPER_JAR.exists() and JUTE_JAR.exists()


_free_port = free_port  # the name other test modules import it under


def four_letter_word(host: str, port: int, word: str, timeout_s: float = 2.0) -> str:
    """Send a four-letter word and return the whole reply (the server closes afterwards)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _recv_exact(sock: socket.socket, length: int) -> bytes:
    buf = bytearray()
    while len(buf) < length:
        chunk = sock.recv(length - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf.extend(chunk)
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!i", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def client_handshake(host: str, port: int, timeout_s: float = 5.0) -> int:
    """Open a session with a raw ConnectRequest, close it again, return the session id.

    ConnectRequest = protocolVersion:int, lastZxidSeen:long, timeOut:int, sessionId:long,
    passwd:buffer, readOnly:bool; a closeSession request (xid 1, type -11) ends it cleanly.
    """
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        body = struct.pack("!iqiqi", 0, 0, 30000, 0, 16) + b"\0" * 16 + b"\0"
        sock.sendall(struct.pack("!i", len(body)) + body)
        reply = _recv_frame(sock)
        _proto, _timeout, session_id = struct.unpack_from("!iiq", reply, 0)
        if session_id == 0:
            raise ConnectionError("server refused the session")
        close = struct.pack("!ii", 1, -11)
        sock.sendall(struct.pack("!i", len(close)) + close)
        _recv_frame(sock)
    return session_id


class ApacheZooKeeper:
    """A standalone Apache ZooKeeper server in a subprocess, on a free loopback port."""

    def __init__(
        self,
        *,
        tick_time_ms: int = 2000,
        extra_config: dict[str, str] | None = None,
        extra_jvm_props: dict[str, str] | None = None,
        log_level: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        extra_jars: tuple[str, ...] = (),
    ) -> None:
        self.host = "127.0.0.1"
        # more jars from JAVA_DIR, e.g. servlet-api.jar, which the AdminServer (Jetty) needs
        # and zookeeper.jar's manifest does not name
        self.extra_jars = tuple(extra_jars)
        self.port: int | None = None
        self.tick_time_ms = tick_time_ms
        self.extra_config = dict(extra_config or {})
        self.extra_jvm_props = dict(extra_jvm_props or {})
        self.log_level = log_level or os.environ.get("ZK_ORACLE_LOG_LEVEL", "warn")
        # An existing dataDir to serve (kept on stop); None = a fresh one inside the temp dir.
        self._given_data_dir = None if data_dir is None else Path(data_dir)
        self.tmpdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file = None

    # -- public API ------------------------------------------------------------------------

    @property
    def hosts(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path | None:
        """The server's dataDir (snapshots and logs live in its `version-2/`). A temp dir is
        removed by stop() (unless ZK_ORACLE_KEEP_DIR is set); a dir given to __init__ is kept."""
        if self._given_data_dir is not None:
            return self._given_data_dir
        return None if self.tmpdir is None else self.tmpdir / "data"

    @property
    def log_path(self) -> Path | None:
        return None if self.tmpdir is None else self.tmpdir / "server.log"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ApacheZooKeeper:
        if self.process is not None:
            raise RuntimeError("already started")
        java = _java_binary()
        if java is None or not apache_zookeeper_available():
            raise RuntimeError("java or the Apache ZooKeeper jars are missing")
        self.tmpdir = Path(tempfile.mkdtemp(prefix="apache-zk-"))
        self.port = _free_port()
        cfg_path = self._write_config()
        self._log_file = open(self.tmpdir / "server.log", "wb")
        self.process = subprocess.Popen(
            [java, *self._jvm_args(), "-cp", self._full_classpath(), MAIN_CLASS,
             str(cfg_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.tmpdir,
        )
        atexit.register(self.stop)
        try:
            self._wait_until_serving(timeout_s)
        except BaseException:
            log_tail = self._log_tail()
            self.stop()
            raise RuntimeError(f"Apache ZooKeeper did not start; log tail:\n{log_tail}")
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.tmpdir is not None and not os.environ.get("ZK_ORACLE_KEEP_DIR"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def four_letter_word(self, word: str) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return four_letter_word(self.host, self.port, word)

    def __enter__(self) -> ApacheZooKeeper:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _write_config(self) -> Path:
        assert self.tmpdir is not None
        data_dir = self.data_dir
        assert data_dir is not None
        data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "tickTime": str(self.tick_time_ms),
            "dataDir": str(data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            # Tests never need durability across a crash; skipping fsync keeps writes fast.
            "forceSync": "no",
            **self.extra_config,
        }
        cfg_path = self.tmpdir / "zoo.cfg"
        cfg_path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        return cfg_path

    def _full_classpath(self) -> str:
        return os.pathsep.join([_classpath(), *(str(JAVA_DIR / j) for j in self.extra_jars)])

    def _jvm_args(self) -> list[str]:
        props = {
            "zookeeper.extendedTypesEnabled": "true",
            "zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST,
            "zookeeper.admin.enableServer": "false",
            # Keep the container/TTL reaper out of the way (1 day).
            "znode.container.checkIntervalMs": "86400000",
            "org.slf4j.simpleLogger.defaultLogLevel": self.log_level,
            "zookeeper.jmx.log4j.disable": "true",
            **self.extra_jvm_props,
        }
        return [
            "-Xmx256m",
            "-Xss512k",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:-UsePerfData",
            "-Xshare:auto",
            *(f"-D{k}={v}" for k, v in props.items()),
        ]

    def _wait_until_serving(self, timeout_s: float) -> None:
        assert self.process is not None and self.port is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"java exited with code {self.process.returncode}")
            try:
                if self.four_letter_word("ruok").strip() == "imok":
                    client_handshake(self.host, self.port)
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer on {self.hosts} within {timeout_s}s")
            time.sleep(0.1)

    def _log_tail(self, max_chars: int = 4000) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return path.read_text(errors="replace")[-max_chars:]

"""maxClientCnxns over TCP: connections from one address beyond the limit are closed without
a reply (as ZooKeeper), on a standalone server and on an ensemble member alike, and the
count goes down when a connection closes."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from ensemble import Ensemble
from support import free_port, terminate

HOST = "127.0.0.1"
CONNECT = struct.pack("!iqiqi", 0, 0, 30000, 0, 16) + b"\0" * 16 + b"\0"


def _open_session(port: int) -> socket.socket | None:
    """Send a ConnectRequest; the socket if a session came back, None if the server closed."""
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.sendall(struct.pack("!i", len(CONNECT)) + CONNECT)
    try:
        head = sock.recv(4)
    except ConnectionResetError:
        head = b""
    if len(head) < 4:
        sock.close()
        return None
    (length,) = struct.unpack("!i", head)
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    assert struct.unpack_from("!iiq", body, 0)[2] != 0
    return sock


def _session_when_free(port: int, timeout_s: float = 10.0) -> socket.socket:
    """A session, retried until the server has counted out closed connections (probes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock = _open_session(port)
        if sock is not None:
            return sock
        time.sleep(0.05)
    raise AssertionError("no connection place became free")


def _check_limit_of_two(port: int) -> None:
    first, second = _session_when_free(port), _session_when_free(port)
    assert _open_session(port) is None, "a third connection from 127.0.0.1 is refused"
    first.close()
    third = _session_when_free(port)  # a closed connection frees its place
    for s in (second, third):
        s.close()


def _wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not listening")


def test_standalone_server_limits_connections_per_address(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path}/data\nclientPort={port}\n"
                   f"clientPortAddress={HOST}\nmaxClientCnxns=2\nadmin.enableServer=false\n")
    proc = subprocess.Popen([sys.executable, "-m", "zookapter", "server", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_port(port)
        _check_limit_of_two(port)
    finally:
        terminate(proc)


def test_ensemble_member_limits_connections_per_address() -> None:
    with Ensemble(3, kinds="zzz", extra_config={"maxClientCnxns": "2"}) as e:
        _check_limit_of_two(e.ports[1].client)

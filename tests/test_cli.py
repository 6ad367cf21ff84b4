"""The `zookapter server` command: zoo.cfg + -D flags, unknown keys ignored, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from kazoo.client import KazooClient
from support import free_port

from rawclient import four_letter


def _wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not listening")


def test_server_with_zoo_cfg_and_java_flags(tmp_path):
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"""# a ZooKeeper config, as users have them
tickTime=2000
initLimit=10
syncLimit=5
dataDir={tmp_path}/data
clientPort={port}
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=ruok, srvr, conf, mntr
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
admin.enableServer=false
someUnknownKey=whatever
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zookapter.cli", "server", str(cfg),
         "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
         "-Dreadonlymode.enabled=true", "-Dzookeeper.extendedTypesEnabled=true",
         "-Dlog4j.configuration=file:/nonexistent", "-Djava.awt.headless=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_port(port)
        assert four_letter("127.0.0.1", port, "ruok") == "imok"
        conf = four_letter("127.0.0.1", port, "conf")
        assert f"clientPort={port}" in conf and "tickTime=2000" in conf
        assert "whitelist" in four_letter("127.0.0.1", port, "wchs")
        zk = KazooClient(hosts=f"127.0.0.1:{port}", auth_data=[("digest", "super:test")])
        zk.start(timeout=10)
        zk.create("/cli", b"x")
        zk.stop()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "ignoring" in out and "serverCnxnFactory" in out and "someUnknownKey" in out
    assert "Traceback" not in out

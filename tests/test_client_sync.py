"""The blocking client (ZooKeeperClient) and the `Zookeeper` facade, against both servers.
The facade snippet from the README runs as written, in a subprocess, with only the hosts
string substituted."""

# Fixtures are imported from test_client_support and then named as test parameters:
# ruff: noqa: F811
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from test_client_support import (  # noqa: F401  (fixtures are used by name)
    SRC,
    unique_path,
    zk_server,
    zookapter_module_server,
)

from zookapter.client import ConnectionState, EventType, ZooKeeperClient
from zookapter.client import errors as e
from zookapter.zookapter import Zookeeper

SNIPPET = """\
from zookapter.zookapter import Zookeeper
zk = Zookeeper(hosts='127.0.0.1:2181')
zk.start()
zk.create('/test', b'Hello, Zookeeper!', Zookeeper.EPHEMERAL)
data = zk.get('/test')
zk.delete('/test')
zk.stop()
"""


def test_facade_snippet_runs_as_written(zk_server):
    code = SNIPPET.replace("127.0.0.1:2181", zk_server.hosts)
    code += "print(data[0].decode())\n"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello, Zookeeper!\n"


def test_facade_in_process(zk_server):
    zk = Zookeeper(hosts=zk_server.hosts)
    zk.start()
    try:
        base = unique_path()
        zk.ensure_path(base)
        assert zk.create(f"{base}/e", b"x", Zookeeper.EPHEMERAL) == f"{base}/e"
        assert zk.get(f"{base}/e")[1].ephemeralOwner == zk.session_id
        assert zk.create(f"{base}/s-", b"", Zookeeper.PERSISTENT_SEQUENTIAL) == (
            f"{base}/s-0000000001")
        assert zk.create(f"{base}/t", b"", Zookeeper.TTL, ttl=5000) == f"{base}/t"
        assert zk.create(f"{base}/c", b"", Zookeeper.CONTAINER) == f"{base}/c"
        zk.set(f"{base}/t", b"y")
        assert zk.exists(f"{base}/t").version == 1
        assert sorted(zk.get_children(base)) == ["c", "e", "s-0000000001", "t"]
        zk.delete(base, recursive=True)
        assert zk.exists(base) is None
    finally:
        zk.stop()
        zk.close()


def test_sync_client(zk_server):
    with ZooKeeperClient(zk_server.hosts) as zk:
        assert zk.state == ConnectionState.CONNECTED
        base = unique_path()
        zk.create(base, b"0")
        with pytest.raises(e.NodeExistsError):
            zk.create(base)
        with pytest.raises(e.NoNodeError):
            zk.get(f"{base}/missing")

        # a watch callback runs on the callback thread and may block on the client
        fired = threading.Event()
        seen = []

        def on_change(event):
            seen.append((event.type, zk.get(event.path)[0]))
            fired.set()

        zk.get(base, watch=on_change)
        zk.set(base, b"1")
        assert fired.wait(5)
        assert seen == [(EventType.NODE_DATA_CHANGED, b"1")]

        tx = zk.transaction().create(f"{base}/a").set_data(base, b"2").check(base, 2)
        assert tx.commit()[0] == f"{base}/a"
        with zk.transaction() as tx2:
            tx2.delete(f"{base}/a")
        with pytest.raises(e.NoNodeError):
            zk.transaction().delete(f"{base}/a").commit()

        with zk.add_watch(base, recursive=True) as stream:
            zk.create(f"{base}/b")
            ev = stream.next(timeout=5)
            assert (ev.type, ev.path) == (EventType.NODE_CREATED, f"{base}/b")

        counts = []
        zk.add_watch(base, counts.append)
        zk.set(base, b"3")
        zk.sync(base)
        zk.remove_watches(base, callback=counts.append)
        assert zk.get_all_children_number(base) == 1
        assert zk.who_am_i()[0].auth_scheme == "ip"
        zk.delete(base, recursive=True)


def test_sync_listener(zk_server):
    zk = ZooKeeperClient(zk_server.hosts)
    states = []
    done = threading.Event()

    def listener(state):
        states.append(state)
        if state == ConnectionState.LOST:
            done.set()

    zk.add_listener(listener)
    zk.start()
    zk.stop()
    assert done.wait(5)
    assert states == [ConnectionState.CONNECTED, ConnectionState.LOST]
    with pytest.raises(e.ConnectionClosedError):
        zk.get("/")
    zk.close()

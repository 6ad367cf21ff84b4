"""The AdminServer (HTTP commands) against Apache ZooKeeper 3.8's JettyAdminServer.

Both servers get the same zoo.cfg settings (AdminServer on a free loopback port) and the same
client activity (a persistent and an ephemeral znode, data watches, a child watch); then every
command is fetched from both and the JSON bodies are compared by shape: the same keys (in the
same order, except `monitor`, whose order is a Java hash map's), the same JSON value types,
recursively. Values that differ between any two servers (ports, paths, ids, times, versions)
are not compared. The Apache side needs servlet-api.jar next to Debian's zookeeper.jar (its
manifest does not name it); without it Apache silently starts no AdminServer.

Known differences, not compared: `environment` and `system_properties` describe the runtime,
a JVM there and Python here, so only their ZooKeeper and platform keys are; `monitor`'s
per-namespace summary sets (`avg_<ns>_read_per_namespace`, ...) are not kept by zookapter.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kazoo.client import KazooClient

from zookapter.ops.admin_commands import COMMANDS, PRIMARY_NAMES
from zookapter.server.config import load_config
from zookapter.testing import ZookapterServer

from oracle import (
    JAVA_DIR,
    ApacheZooKeeper,
    _free_port,
    apache_zookeeper_available,
    four_letter_word,
)

pytestmark = pytest.mark.timeout(120)

SERVLET_JAR = "servlet-api.jar"
HOST = "127.0.0.1"
# Maps whose keys are data (session ids, expiry times, paths), not field names.
DATA_MAPS = {("dump", "expiry_time_to_session_ids"), ("dump", "session_id_to_ephemeral_paths"),
             ("watches", "session_id_to_watched_paths"),
             ("watches_by_path", "path_to_session_ids")}
# Runtime descriptions: only these keys are expected on both sides.
COMMON_ENV_KEYS = {"zookeeper.version", "host.name", "java.io.tmpdir", "os.name", "os.arch",
                   "os.version", "user.name", "user.home", "user.dir"}
COMMON_SYSPROP_KEYS = {"file.separator", "line.separator", "path.separator", "java.io.tmpdir",
                       "os.arch", "os.name", "os.version", "user.dir", "user.home", "user.name"}
# Commands run last, in this order, because they reset what others report.
RESETS = ("connection_stat_reset", "stat_reset", "observer_connection_stat_reset")


def _admin_settings(port: int) -> dict[str, str]:
    return {"admin.enableServer": "true", "admin.serverPort": str(port),
            "admin.serverAddress": HOST, "admin.idleTimeout": "20000"}


@pytest.fixture(scope="module")
def apache_admin() -> Iterator[tuple[ApacheZooKeeper, int]]:
    if not apache_zookeeper_available() or not (JAVA_DIR / SERVLET_JAR).exists():
        pytest.skip("Apache ZooKeeper or servlet-api.jar (for its AdminServer) unavailable")
    port = _free_port()
    server = ApacheZooKeeper(extra_config=_admin_settings(port), extra_jars=(SERVLET_JAR,))
    server.start()
    try:
        _wait_http(port)
        yield server, port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def zookapter_admin(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[ZookapterServer, int]]:
    port = _free_port()
    settings = _admin_settings(port)
    cfg_path = tmp_path_factory.mktemp("zookapter-admin") / "zoo.cfg"
    cfg_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    props = {f"zookeeper.{k}": v for k, v in settings.items()}
    props["zookeeper.forceSync"] = "no"
    with ZookapterServer(props=props, config_path=str(cfg_path)) as server:
        _wait_http(port)
        yield server, port


def _wait_http(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _activity(hosts: str) -> KazooClient:
    """The same client state on both servers; the client stays connected."""
    client = KazooClient(hosts=hosts, timeout=15)
    client.start(timeout=30)
    client.create("/admin-a", b"x")
    client.create("/admin-e", b"y", ephemeral=True)
    client.get("/admin-a", watch=lambda event: None)
    client.exists("/admin-missing", watch=lambda event: None)
    client.get_children("/", watch=lambda event: None)
    # past zxid 0x80, where both servers log a tree digest for `hash`
    for result in [client.create_async(f"/admin-n{i}") for i in range(130)]:
        result.get(timeout=30)
    return client


async def _fetch_all(port: int, paths: list[str]) -> dict[str, tuple[int, str, str]]:
    out = {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for path in paths:
            async with session.get(f"http://{HOST}:{port}{path}") as resp:
                out[path] = (resp.status, resp.content_type, await resp.text())
    return out


def _command_paths() -> list[str]:
    names = [n for n in PRIMARY_NAMES if n not in RESETS] + list(RESETS)
    paths = [f"/commands/{n}" for n in names]
    return ["/commands", "/commands/mntr", "/commands/stat", "/commands/nosuch",
            "/commands/set_trace_mask?traceMask=oops", "/nothing"] + paths


@pytest.fixture(scope="module")
def answers(apache_admin, zookapter_admin) -> dict[str, dict[str, tuple[int, str, str]]]:
    out = {}
    for name, (server, port) in (("apache", apache_admin), ("zookapter", zookapter_admin)):
        client = _activity(server.hosts)
        try:
            out[name] = asyncio.run(_fetch_all(port, _command_paths()))
        finally:
            client.stop()
            client.close()
    return out


# --- shape comparison --------------------------------------------------------------------------

def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise AssertionError(f"unexpected JSON value {value!r}")


def _shape(value: Any, command: str, key: str = "") -> Any:
    """Keys and value types, recursively. A list becomes the distinct shapes of its elements,
    and so does a data map (its values; empty lists left out)."""
    if isinstance(value, dict):
        if (command, key) in DATA_MAPS:
            return _distinct([_shape(v, command) for v in value.values() if v != []])
        return {k: _shape(v, command, k) for k, v in value.items()}
    if isinstance(value, list):
        return _distinct([_shape(v, command) for v in value])
    return _kind(value)


def _distinct(shapes: list[Any]) -> list[Any]:
    unique = {json.dumps(s, sort_keys=True): s for s in shapes}
    return [unique[k] for k in sorted(unique)]


def _diff(a: Any, b: Any, where: str, ordered: bool = True) -> list[str]:
    """Where two shapes differ; an empty list on either side matches any list. Key order is
    compared at the top only: nested Java beans come out in reflection order."""
    if isinstance(a, dict) and isinstance(b, dict):
        if (list(a) != list(b)) if ordered else (a.keys() != b.keys()):
            return [f"{where}: keys only in Apache {sorted(a.keys() - b.keys())}, only in "
                    f"zookapter {sorted(b.keys() - a.keys())}, or in another order"]
        return [d for k in a for d in _diff(a[k], b[k], f"{where}.{k}", False)]
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return []
        if len(a) == len(b) == 1:
            return _diff(a[0], b[0], where + "[]", False)
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _body(answers: dict, side: str, path: str) -> dict[str, Any]:
    status, ctype, text = answers[side][path]
    assert status == 200, (side, path, status, text)
    assert ctype == "application/json", (side, path, ctype)
    return json.loads(text)


@pytest.mark.oracle
@pytest.mark.parametrize("name", [c.primary for c in COMMANDS])
def test_command_shape_matches_apache(answers, name: str) -> None:
    path = f"/commands/{name}"
    java, ours = _body(answers, "apache", path), _body(answers, "zookapter", path)
    assert ours["command"] == java["command"] == name
    if name in ("environment", "system_properties"):
        _check_runtime_description(name, java, ours)
        return
    if name == "monitor":
        java = {k: v for k, v in java.items() if not k.endswith("_per_namespace")}
        java, ours = dict(sorted(java.items())), dict(sorted(ours.items()))
    assert _diff(_shape(java, name), _shape(ours, name), name) == []


def _check_runtime_description(name: str, java: dict, ours: dict) -> None:
    common = COMMON_ENV_KEYS if name == "environment" else COMMON_SYSPROP_KEYS
    assert common <= java.keys() and common <= ours.keys()
    for body in (java, ours):
        assert all(isinstance(v, str) for k, v in body.items() if k not in ("command", "error"))
    assert list(ours)[-2:] == list(java)[-2:] == ["command", "error"]
    if name == "system_properties":
        for key in ("os.name", "os.arch", "file.separator", "path.separator", "line.separator"):
            assert ours[key] == java[key], key
        # zoo.cfg's admin.* keys become zookeeper.admin.* system properties on both
        for key in ("zookeeper.admin.enableServer", "zookeeper.admin.serverAddress",
                    "zookeeper.admin.idleTimeout", "zookeeper.4lw.commands.whitelist"):
            assert ours[key] == java[key], key
        names = [k for k in ours if k not in ("command", "error")]
        assert sorted(names) == names


@pytest.mark.oracle
def test_values_that_both_servers_agree_on(answers) -> None:
    def body(side: str, name: str) -> dict[str, Any]:
        return _body(answers, side, f"/commands/{name}")

    for name, key in (("watch_summary", None), ("is_read_only", "read_only"),
                      ("voting_view", "current_config"), ("zabstate", None),
                      ("observers", None), ("leader", None),
                      ("get_trace_mask", "tracemask"), ("ruok", None)):
        java, ours = body("apache", name), body("zookapter", name)
        assert (ours if key is None else ours[key]) == (java if key is None else java[key]), name
    for name in ("watches", "watches_by_path", "dump"):
        java, ours = body("apache", name), body("zookapter", name)
        for field, value in java.items():
            if isinstance(value, dict) and name != "dump":
                assert _sorted_values(ours[field]) == _sorted_values(value), name
    zxids = [[d["zxid"] for d in body(side, "hash")["digests"]] for side in ("apache", "zookapter")]
    assert zxids[0] == zxids[1] == [128]
    dump_java, dump_ours = body("apache", "dump"), body("zookapter", "dump")
    assert _sorted_values(dump_ours["session_id_to_ephemeral_paths"]) == \
        _sorted_values(dump_java["session_id_to_ephemeral_paths"]) == [["/admin-e"]]
    conf_java, conf_ours = body("apache", "configuration"), body("zookapter", "configuration")
    for key in ("tick_time", "max_client_cnxns", "min_session_timeout", "max_session_timeout",
                "server_id", "client_port_listen_backlog"):
        assert conf_ours[key] == conf_java[key], key
    assert body("zookapter", "initial_configuration")["initial_configuration"].startswith(
        "admin.enableServer=true\n")


def _sorted_values(mapping: dict[str, list]) -> list:
    return sorted(sorted(v) if all(isinstance(x, str) for x in v) else [len(v)]
                  for v in mapping.values())


@pytest.mark.oracle
def test_listing_aliases_errors_and_other_paths(answers) -> None:
    for side in ("apache", "zookapter"):
        status, _, text = answers[side]["/commands"]
        assert status == 200
        links = [line for line in text.splitlines() if line.startswith("<a ")]
        assert links == [f'<a href="/commands/{n}">{n}</a>' for n in PRIMARY_NAMES], side
        assert _body(answers, side, "/commands/mntr")["command"] == "monitor"
        assert _body(answers, side, "/commands/stat")["command"] == "stats"
        assert answers[side]["/nothing"][0] == 404
    for path in ("/commands/nosuch", "/commands/set_trace_mask?traceMask=oops"):
        assert _body(answers, "zookapter", path) == _body(answers, "apache", path)
    assert list(_body(answers, "zookapter", "/commands/nosuch")) == ["command", "error"]


@pytest.mark.oracle
def test_resets_clear_what_they_should(answers) -> None:
    for side in ("apache", "zookapter"):
        stats = _body(answers, side, "/commands/stats")
        assert stats["server_stats"]["packets_received"] > 0, side
        assert stats["connections"], side


@pytest.mark.oracle
def test_mntr_word_lists_what_monitor_does(apache_admin, zookapter_admin) -> None:
    """The 4lw `mntr` and the `monitor` command share their source, on both servers."""
    def keys(server: Any) -> list[str]:
        text = four_letter_word(HOST, server.port, "mntr")
        names = [line.split("\t", 1)[0] for line in text.splitlines() if line]
        return sorted(n for n in names if not n.endswith("_per_namespace"))

    java, ours = keys(apache_admin[0]), keys(zookapter_admin[0])
    assert ours == java
    assert all(n.startswith("zk_") for n in ours)


# --- zookapter only ----------------------------------------------------------------------------

def test_crst_and_srst_reset_counters(zookapter_admin) -> None:
    server, port = zookapter_admin
    client = _activity_light(server.hosts)
    try:
        def get(name: str) -> dict[str, Any]:
            return json.loads(asyncio.run(_fetch_all(port, [f"/commands/{name}"]))[
                f"/commands/{name}"][2])
        assert get("connections")["connections"][0]["packets_received"] > 0
        assert get("server_stats")["server_stats"]["packets_received"] > 0
        get("crst")
        get("srst")
        cons = get("connections")["connections"]
        assert all(c["packets_received"] == 0 and c["last_operation"] == "NA" for c in cons)
        monitor = get("mntr")
        assert monitor["packets_received"] == 0 and monitor["cnt_readlatency"] == 0
    finally:
        client.stop()
        client.close()


def _activity_light(hosts: str) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=15)
    client.start(timeout=30)
    client.exists("/")
    return client


def test_harness_and_config_defaults(tmp_path: Path) -> None:
    with ZookapterServer() as server:
        assert server.server is not None and server.server.admin is None
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=2181\n")
    defaults = load_config(str(cfg))
    assert defaults.admin_enabled and defaults.admin_port == 8080
    assert (defaults.admin_address, defaults.admin_command_url) == ("0.0.0.0", "/commands")
    assert defaults.admin_idle_timeout_ms == 30000
    cfg.write_text(f"dataDir={tmp_path}\nadmin.serverPort=9090\nadmin.enableServer=FALSE\n"
                   "admin.commandURL=/zk\nadmin.idleTimeout=x\n")
    custom = load_config(str(cfg))
    # only exactly "false" disables; a bad number falls back, as Integer.getInteger does
    assert custom.admin_enabled and custom.admin_port == 9090
    assert custom.admin_command_url == "/zk" and custom.admin_idle_timeout_ms == 30000
    assert not load_config(None, {"zookeeper.admin.enableServer": "false"}).admin_enabled


def test_custom_command_url(tmp_path: Path) -> None:
    port = _free_port()
    props = {"zookeeper.admin.enableServer": "true", "zookeeper.admin.serverPort": str(port),
             "zookeeper.admin.serverAddress": HOST, "zookeeper.admin.commandURL": "/zk/"}
    with ZookapterServer(props=props):
        got = asyncio.run(_fetch_all(port, ["/zk", "/zk/ruok", "/commands/ruok"]))
    assert got["/zk"][0] == 200 and '<a href="/zk/ruok">ruok</a>' in got["/zk"][2]
    assert json.loads(got["/zk/ruok"][2]) == {"command": "ruok", "error": None}
    assert got["/commands/ruok"][0] == 404


def test_busy_admin_port_stops_the_server_with_exit_code_4(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen(1)
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"dataDir={tmp_path / 'data'}\nclientPort={_free_port()}\n"
                       f"clientPortAddress={HOST}\nadmin.serverAddress={HOST}\n"
                       f"admin.serverPort={busy.getsockname()[1]}\n")
        src = str(Path(__file__).resolve().parent.parent / "src")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH")) if p))
        proc = subprocess.run([sys.executable, "-m", "zookapter.cli", "server", str(cfg)],
                              capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Problem starting AdminServer" in proc.stderr

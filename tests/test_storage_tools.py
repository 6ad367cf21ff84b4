"""Storage tools: `zookapter purge` (PurgeTxnLog), autopurge in the server, and the
`zookapter txnlog` / `zookapter snapshot` inspectors, on data directories written by a real
zookapter server."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from zookapter.server.config import ServerConfig, load_config
from zookapter.storage.files import LOG_PREFIX, SNAPSHOT_PREFIX, sorted_files
from zookapter.storage.purge import plan_purge, purge, select_for_purge
from zookapter.storage.snapshot import find_snapshots
from zookapter.testing import ZookapterServer

SRC = str(Path(__file__).resolve().parent.parent / "src")
BINARY = b"\x00\xff\x01"
N_NODES = 80
AUTH = [("digest", "u:p")]  # may read /app and /secret


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "zookapter.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60)


def snaps(d: Path) -> list[str]:
    return [p.name for _z, p in sorted_files(d / "version-2", SNAPSHOT_PREFIX)]


def logs(d: Path) -> list[str]:
    return [p.name for _z, p in sorted_files(d / "version-2", LOG_PREFIX)]


def dump_tree(zk: KazooClient, path: str = "/") -> dict[str, bytes]:
    out = {}
    for child in zk.get_children(path):
        p = path.rstrip("/") + "/" + child
        if p == "/zookeeper":
            continue
        out[p] = zk.get(p)[0]
        out.update(dump_tree(zk, p))
    return out


def write_workload(zk: KazooClient, n: int = N_NODES) -> None:
    zk.create("/app", b"hello world")
    zk.create("/bin", BINARY)
    zk.create("/keep", BINARY)
    t = zk.transaction()
    t.create("/m1", b"a")
    t.set_data("/app", b"v2")
    t.delete("/bin")
    t.commit()
    t = zk.transaction()
    t.create("/m2", b"a")
    t.delete("/missing")  # fails: the multi is logged with an error sub-txn
    t.commit()
    zk.create("/secret", b"s", acl=[make_digest_acl("u", "p", all=True)])
    zk.create("/eph", b"e", ephemeral=True)
    zk.create("/d/n", b"", makepath=True)
    for i in range(n):
        zk.create(f"/d/n/c{i}", str(i).encode())
    zk.delete("/d/n/c0")
    zk.set_acls("/app", [make_digest_acl("u", "p", read=True)])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A dataDir with several snapshots and logs, the tree it holds and the session that owns
    /eph (left open: the last snapshot, taken by a restart, holds it)."""
    data = tmp_path_factory.mktemp("built") / "data"
    with ZookapterServer(data_dir=str(data), props={"zookeeper.snapCount": "20"}) as s:
        zk = KazooClient(hosts=s.hosts, timeout=30, auth_data=AUTH)
        zk.start()
        write_workload(zk)
        expected = dump_tree(zk)
        sid = zk.client_id[0]
    # A restart takes a snapshot of the whole state, including the still-open session.
    with ZookapterServer(data_dir=str(data)):
        pass
    zk.stop()
    zk.close()
    return data, expected, sid


@pytest.fixture
def datadir(built, tmp_path):
    data, expected, sid = built
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    return copy, expected, sid


def check_tree(data_dir: Path, expected: dict[str, bytes], **config) -> None:
    with ZookapterServer(data_dir=str(data_dir), **config) as s:
        zk = KazooClient(hosts=s.hosts, auth_data=AUTH)
        zk.start()
        try:
            got = dump_tree(zk)
        finally:
            zk.stop()
            zk.close()
    got.pop("/eph", None)  # its session may have expired meanwhile
    want = dict(expected)
    want.pop("/eph", None)
    assert got == want


# --- txnlog ----------------------------------------------------------------------------------

def test_txnlog_human(datadir):
    data, _expected, sid = datadir
    r = cli("txnlog", data)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ZooKeeper Transactional Log File ")
    assert "with dbid 0 txnlog format version 2" in lines[0]
    txns = [ln for ln in lines if " zxid 0x" in ln]
    assert lines[-1] == f"EOF reached after {len(txns)} txns."
    zxids = [int(ln.split(" zxid ")[1].split()[0], 16) for ln in txns]
    assert zxids == list(range(1, len(zxids) + 1))
    first = txns[0].split()
    assert first[1:3] == ["session", f"0x{sid:x}"] and first[7] == "createSession"
    assert first[0].endswith("Z") and "T" in first[0]
    out = r.stdout
    assert ('create path=/app data="hello world" acl=[world:anyone:cdrwa] ephemeral=false '
            'parentCVersion=1') in out
    assert "create path=/bin data=#00ff01 " in out
    assert "ephemeral=true" in out
    assert 'multi txns=[create path=/m1 data="a"' in out
    assert 'setData path=/app data="v2" version=1; delete path=/bin]' in out
    assert "error err=-101(NO_NODE)]" in out
    assert "acl=[digest:u:" in out and ":cdrwa]" in out
    assert "setACL path=/app acl=[digest:u:" in out and ":r] version=1" in out
    assert "delete path=/d/n/c0" in out
    # one header per log file
    assert sum(ln.startswith("ZooKeeper Transactional Log File") for ln in lines) == len(
        logs(data))


def test_txnlog_json_and_from_zxid(datadir):
    data, _expected, sid = datadir
    r = cli("txnlog", data / "version-2", "--json")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(ln) for ln in r.stdout.splitlines()]
    end, txns = objs[-1], objs[:-1]
    assert end == {"event": "end", "status": "ok", "txns": len(txns)}
    assert txns[0]["type"] == "createSession" and txns[0]["session"] == f"0x{sid:x}"
    assert isinstance(txns[0]["timeout"], int) and txns[0]["typeCode"] == -10
    by_path = {}
    for t in txns:
        assert {"time", "timeMs", "session", "cxid", "zxid", "type", "file", "offset"} <= set(t)
        by_path.setdefault((t["type"], t.get("path")), t)
    app = by_path[("create", "/app")]
    assert app["data"] == "hello world" and app["dataEncoding"] == "utf-8"
    assert app["acl"] == [{"perms": 31, "permsText": "cdrwa", "scheme": "world",
                           "id": "anyone"}]
    assert app["ephemeral"] is False and app["parentCVersion"] == 1
    binary = by_path[("create", "/bin")]
    assert binary["dataEncoding"] == "base64"
    assert base64.b64decode(binary["data"]) == BINARY
    assert by_path[("create", "/eph")]["ephemeral"] is True
    multis = [t for t in txns if t["type"] == "multi"]
    assert [s["type"] for s in multis[0]["txns"]] == ["create", "setData", "delete"]
    assert multis[1]["txns"][-1] == {"type": "error", "typeCode": -1, "err": -101,
                                     "errName": "NO_NODE"}
    assert by_path[("setACL", "/app")]["acl"][0]["scheme"] == "digest"

    # --from-zxid, on the directory and on a single file
    middle = int(txns[len(txns) // 2]["zxid"], 16)
    r = cli("txnlog", data, "--json", "--from-zxid", hex(middle))
    later = [json.loads(ln) for ln in r.stdout.splitlines()][:-1]
    assert [t["zxid"] for t in later] == [t["zxid"] for t in txns
                                          if int(t["zxid"], 16) >= middle]
    last_log = data / "version-2" / logs(data)[-1]
    r = cli("txnlog", last_log, "--json")
    assert r.returncode == 0
    one = [json.loads(ln) for ln in r.stdout.splitlines()][:-1]
    assert one and all(t["file"] == last_log.name for t in one)
    r = cli("txnlog", last_log, "--json", "--from-zxid", str(int(one[-1]["zxid"], 16)))
    assert len(r.stdout.splitlines()) == 2


def test_txnlog_torn_tail_and_corruption(datadir, tmp_path):
    data, _expected, _sid = datadir
    first = data / "version-2" / logs(data)[0]
    raw = first.read_bytes()
    used = len(raw.rstrip(b"\0"))
    torn = tmp_path / "torn" / first.name
    torn.parent.mkdir()
    torn.write_bytes(raw[:used - 7])
    r = cli("txnlog", torn)
    assert r.returncode == 0
    assert r.stdout.splitlines()[-1].startswith("EOF reached after ")
    assert "torn tail in" in r.stdout.splitlines()[-1]
    r = cli("txnlog", torn, "--json")
    end = json.loads(r.stdout.splitlines()[-1])
    assert end["status"] == "torn" and end["file"] == str(torn) and end["offset"] > 16
    assert end["txns"] == len(r.stdout.splitlines()) - 1

    bad = bytearray(raw)
    bad[40] ^= 0xFF  # inside the first record's payload
    corrupt = tmp_path / "corrupt" / first.name
    corrupt.parent.mkdir()
    corrupt.write_bytes(bytes(bad))
    r = cli("txnlog", corrupt)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1].startswith(f"CORRUPT: {corrupt} at offset 16: ")
    r = cli("txnlog", corrupt, "--json")
    assert r.returncode == 1
    end = json.loads(r.stdout.splitlines()[-1])
    assert end["status"] == "corrupt" and end["offset"] == 16 and end["txns"] == 0

    assert cli("txnlog", tmp_path / "nope").returncode == 2


# --- snapshot --------------------------------------------------------------------------------

def test_snapshot_human(datadir):
    data, _expected, sid = datadir
    newest = find_snapshots(data / "version-2", limit=1)[0]
    r = cli("snapshot", newest, "--data")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"ZooKeeper snapshot {newest.name} (magic ZKSN, format "
                               "version 2, dbid -1)")
    count = int(lines[1].split("count=")[1].rstrip("):"))
    assert count == sum(1 for ln in lines if ln == "----") - 3
    i = lines.index("/app")
    block = lines[i:i + 14]
    assert "  dataVersion = 1" in block and "  aclVersion = 1" in block
    assert "  dataLength = 2" in block and '  data = "v2"' in block
    assert any(ln.startswith("  acl = ") and "digest:u:" in ln and ln.endswith(":r]")
               for ln in block)
    i = lines.index("/keep")
    assert "  data = #00ff01" in lines[i:i + 14]
    assert lines[lines.index("/") + 10] == "  acl = -1 [world:anyone:cdrwa]"
    assert "Session Details (sid, timeout, ephemeralCount):" in lines
    assert any(ln.startswith(f"0x{sid:x}, ") and ln.endswith(", 1") for ln in lines)
    assert any(ln.startswith("ACL cache (count=") for ln in lines)
    assert any(ln.startswith("Digest: ") for ln in lines)
    assert lines[-1].startswith("Last processed zxid: ")
    # without --data, no data lines; a directory means its newest snapshot
    r2 = cli("snapshot", data)
    assert r2.returncode == 0 and "  data = " not in r2.stdout
    assert r2.stdout.splitlines()[0] == lines[0]


def test_snapshot_json(datadir):
    data, expected, sid = datadir
    newest = find_snapshots(data / "version-2", limit=1)[0]
    r = cli("snapshot", newest, "--json", "--data")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "zookapter-snapshot" and doc["formatVersion"] == 1
    assert doc["header"] == {"magic": "ZKSN", "version": 2, "dbid": -1}
    assert doc["zxid"] == "0x" + newest.name.split(".")[1]
    nodes = {n["path"]: n for n in doc["nodes"]}
    assert doc["nodes"][0]["path"] == "/"
    user = {p: n for p, n in nodes.items() if p != "/" and not p.startswith("/zookeeper")}
    assert set(user) == set(expected)
    for path, value in expected.items():
        n = user[path]
        got = (base64.b64decode(n["data"]) if n.get("dataEncoding") == "base64"
               else (n["data"] or "").encode())
        assert got == value and n["dataLength"] == len(value), path
    assert nodes["/eph"]["ephemeralOwner"] == f"0x{sid:x}"
    assert {"czxid", "mzxid", "pzxid", "ctime", "mtime", "version", "cversion", "aversion",
            "aclIndex"} <= set(nodes["/app"])
    assert {"id": f"0x{sid:x}", "timeout": doc["sessions"][0]["timeout"],
            "ephemeralCount": 1} in doc["sessions"]
    indexes = {a["index"] for a in doc["acls"]}
    assert all(n["aclIndex"] in indexes or n["aclIndex"] == -1 for n in doc["nodes"])
    secret_acl = next(a["acl"] for a in doc["acls"] if a["index"] == nodes["/secret"]["aclIndex"])
    assert secret_acl[0]["scheme"] == "digest" and secret_acl[0]["perms"] == 31
    assert doc["digest"] is None or doc["digest"]["verified"] is not False
    r = cli("snapshot", newest, "--json")
    assert "data" not in json.loads(r.stdout)["nodes"][1]


def test_snapshot_errors(datadir, tmp_path):
    data, _expected, _sid = datadir
    newest = find_snapshots(data / "version-2", limit=1)[0]
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / newest.name
    bad.write_bytes(bytes(raw))
    r = cli("snapshot", bad)
    assert r.returncode == 1 and "invalid snapshot" in r.stderr
    assert cli("snapshot", tmp_path / "missing").returncode == 2


# --- purge -----------------------------------------------------------------------------------

def test_select_for_purge_rule():
    P = Path
    snaps_ = [(z, P(f"snapshot.{z:x}"), True) for z in (0x0, 0x10, 0x20, 0x30, 0x40)]
    logs_ = [(z, P(f"log.{z:x}")) for z in (0x1, 0x11, 0x1a, 0x25, 0x41)]
    kept, least, drop_s, drop_l = select_for_purge(snaps_, logs_, 3)
    assert least == 0x20 and kept == [P("snapshot.40"), P("snapshot.30"), P("snapshot.20")]
    assert drop_s == [P("snapshot.0"), P("snapshot.10")]
    assert drop_l == [P("log.1"), P("log.11")]  # log.1a may hold txns after 0x20: kept
    # a log starting exactly at the snapshot's zxid is the boundary
    kept, least, drop_s, drop_l = select_for_purge(snaps_, logs_ + [(0x20, P("log.20"))], 3)
    assert drop_l == [P("log.1"), P("log.11"), P("log.1a")]
    # invalid snapshots do not count, and older invalid ones are deleted too
    bad = [(z, p, z != 0x30) for z, p, _v in snaps_]
    kept, least, drop_s, _ = select_for_purge(bad, logs_, 3)
    assert least == 0x10 and drop_s == [P("snapshot.0")]
    # fewer snapshots than retained: nothing older than the oldest valid one survives
    assert select_for_purge(snaps_[:2], logs_, 3)[1] == 0x0
    assert select_for_purge([], logs_, 3) == ([], None, [], [])
    with pytest.raises(ValueError):
        select_for_purge(snaps_, logs_, 2)


def test_purge_cli_then_restart(datadir):
    data, expected, _sid = datadir
    before_snaps, before_logs = snaps(data), logs(data)
    assert len(before_snaps) > 4 and len(before_logs) > 3
    plan = plan_purge(data, None, 3)
    r = cli("purge", data, "-n", "3", "--dry-run")
    assert r.returncode == 0 and snaps(data) == before_snaps
    assert r.stdout.count("Would remove file: ") == len(plan.delete_snapshots) + len(
        plan.delete_logs)
    r = cli("purge", data, "-n", "3")
    assert r.returncode == 0, r.stderr
    removed = [ln.split(": ", 1)[1] for ln in r.stdout.splitlines()
               if ln.startswith("Removing file: ")]
    assert sorted(removed) == sorted(str(p) for p in plan.delete_snapshots + plan.delete_logs)
    assert snaps(data) == before_snaps[-3:]
    oldest = int(before_snaps[-3].split(".")[1], 16)
    log_zxids = [int(n.split(".")[1], 16) for n in before_logs]
    boundary = max(z for z in log_zxids if z <= oldest)
    assert logs(data) == [n for n, z in zip(before_logs, log_zxids, strict=True)
                          if z >= boundary]
    assert r.stdout.splitlines()[-1].startswith("kept 3 snapshots")
    # purging again changes nothing; too small a count is refused
    assert cli("purge", data / "version-2", "-n", "3").stdout.count("Removing") == 0
    r = cli("purge", data, "-n", "2")
    assert r.returncode == 2 and "greater than or equal to 3" in r.stderr
    check_tree(data, expected)


def test_purge_separate_log_dir(tmp_path):
    data, log_dir = tmp_path / "data", tmp_path / "txnlogs"
    with ZookapterServer(data_dir=str(data), data_log_dir=str(log_dir),
                         props={"zookeeper.snapCount": "20"}) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        for i in range(100):
            zk.create(f"/s{i}", str(i).encode())
        expected = dump_tree(zk)
        zk.stop()
        zk.close()
    assert not logs(data) and not snaps(log_dir)
    n_logs = len(logs(log_dir))
    result = purge(data, log_dir, 4)
    assert snaps(data) == [p.name for p in reversed(result.plan.retained_snapshots)]
    assert len(snaps(data)) == 4 and result.deleted_snapshots and result.deleted_logs
    assert len(logs(log_dir)) == n_logs - len(result.deleted_logs)
    assert all(p.parent == log_dir / "version-2" for p in result.deleted_logs)
    check_tree(data, expected, data_log_dir=str(log_dir))


# --- autopurge -------------------------------------------------------------------------------

def test_autopurge_config():
    assert ServerConfig().autopurge_interval_ms == 0
    assert ServerConfig().snap_retain_count == 3
    cfg = ServerConfig(raw={"autopurge.purgeInterval": "2", "autopurge.snapRetainCount": "1"})
    assert cfg.autopurge_interval_ms == 2 * 3600 * 1000 and cfg.snap_retain_count == 3
    cfg = ServerConfig(raw={"autopurge.purgeInterval": "0", "autopurge.snapRetainCount": "7"},
                       props={"zookapter.autopurge.intervalMs": "250"})
    assert cfg.autopurge_interval_ms == 250 and cfg.snap_retain_count == 7


def test_autopurge_config_file(tmp_path):
    from zookapter.server.config import ConfigError
    cfg_file = tmp_path / "zoo.cfg"
    cfg_file.write_text(f"dataDir={tmp_path}\nautopurge.snapRetainCount=5\n"
                        "autopurge.purgeInterval=1\n")
    cfg = load_config(str(cfg_file))
    assert cfg.snap_retain_count == 5 and cfg.autopurge_interval_ms == 3600 * 1000
    assert "zookeeper.autopurge.purgeInterval" not in cfg.props
    cfg_file.write_text("autopurge.purgeInterval=soon\n")
    with pytest.raises(ConfigError):
        load_config(str(cfg_file))


def test_autopurge_timer(tmp_path):
    data = tmp_path / "data"
    props = {"zookeeper.snapCount": "20", "zookapter.autopurge.intervalMs": "100"}
    with ZookapterServer(data_dir=str(data), props=props,
                         raw={"autopurge.snapRetainCount": "3"}) as s:
        zk = KazooClient(hosts=s.hosts)
        zk.start()
        for i in range(150):
            zk.create(f"/a{i}", str(i).encode())
        expected = dump_tree(zk)
        zk.stop()
        zk.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            valid = find_snapshots(data / "version-2")
            if len(valid) <= 3 and "log.1" not in logs(data):
                break
            time.sleep(0.05)
        assert len(find_snapshots(data / "version-2")) <= 3, snaps(data)
        assert "log.1" not in logs(data) and "snapshot.0" not in snaps(data)
    check_tree(data, expected)


# --- against Apache ZooKeeper ----------------------------------------------------------------

def _java_purge(log_dir: Path, snap_dir: Path, count: int) -> subprocess.CompletedProcess[str]:
    from oracle import _classpath, _java_binary
    return subprocess.run([_java_binary() or "java", "-cp", _classpath(),
                           "org.apache.zookeeper.server.PurgeTxnLog", str(log_dir),
                           str(snap_dir), "-n", str(count)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.oracle
def test_purge_matches_java_purgetxnlog(built, tmp_path):
    from oracle import apache_zookeeper_available
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper jars / java unavailable")
    data, _expected, _sid = built
    cases = {"plain": None, "invalid-snapshot": -2}
    for name, spoil in cases.items():
        ours, java = tmp_path / name / "ours", tmp_path / name / "java"
        shutil.copytree(data, ours)
        shutil.copytree(data, java)
        if spoil is not None:  # an unsealed (invalid) snapshot does not count as retained
            for d in (ours, java):
                victim = d / "version-2" / snaps(d)[spoil]
                victim.write_bytes(victim.read_bytes()[:-20])
        for n in (3, 4):
            assert cli("purge", ours, "-n", n).returncode == 0
            r = _java_purge(java, java, n)
            assert r.returncode == 0, r.stdout + r.stderr
            assert sorted(os.listdir(ours / "version-2")) == sorted(
                os.listdir(java / "version-2")), (name, n)


@pytest.mark.oracle
def test_tools_on_apache_zookeeper_datadir(tmp_path):
    from oracle import ApacheZooKeeper, apache_zookeeper_available
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper unavailable")
    data = tmp_path / "data"
    with ApacheZooKeeper(data_dir=data, extra_jvm_props={"zookeeper.snapCount": "20"}) as zkj:
        zk = KazooClient(hosts=zkj.hosts, auth_data=AUTH)
        zk.start()
        write_workload(zk, 60)
        expected = dump_tree(zk)
        zk.stop()
        zk.close()
    r = cli("txnlog", data, "--json")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert objs[-1]["status"] == "ok"
    txns = objs[:-1]
    # 3.8 logs a digest with every txn but the error txns of failed single writes
    assert all(t["digest"]["version"] == 2 for t in txns if t["type"] != "error")
    assert any(t["type"] == "create" and t.get("path") == "/app" for t in txns)
    for snap in find_snapshots(data / "version-2"):
        r = cli("snapshot", snap, "--json")
        assert r.returncode == 0, r.stderr
        if snap.name == "snapshot.0":
            # only the start-up snapshot is exact: Java's later ones are fuzzy, and their
            # digest section may name a txn that was mid-apply when serialization ended
            assert json.loads(r.stdout)["digest"]["verified"] is not False
    assert len(snaps(data)) > 3
    assert cli("purge", data, "-n", "3").returncode == 0
    assert len(snaps(data)) == 3
    with ApacheZooKeeper(data_dir=data) as zkj:
        zk = KazooClient(hosts=zkj.hosts, auth_data=AUTH)
        zk.start()
        got = dump_tree(zk)
        zk.stop()
        zk.close()
    got.pop("/eph", None)
    expected.pop("/eph", None)
    assert got == expected

"""Mixed dataDirs: the snapshot written by one server, the newer logs by the other.

What happens when a user switches between Apache ZooKeeper 3.8 and zookapter on one dataDir:
server A writes (fuzzy snapshots and rolled logs: snapCount is 20) and stops; server B starts,
takes its start-up snapshot (as ZooKeeper does at every start), writes more, rolls its own logs
and snapshots, and stops. Then the dataDir is read back in three shapes, each by both servers:

- "as left": exactly what B left (B's newest snapshot, B's logs);
- "without B's snapshots": B's snapshots deleted, so A's snapshot is the newest and the
  replay crosses from A's logs into B's logs;
- "strict": only A's snapshot taken at the switch point (A restarted on a copy, so that its
  start-up snapshot has the zxid B's first log starts after) plus B's logs, nothing else.

Every shape must serve exactly the tree B served before it stopped (data, full stats, ACLs),
and B's first view must be exactly A's last one. A last test switches after SIGKILL under
write load instead of a clean stop, both ways, and checks every acknowledged write.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError
from kazoo.security import make_acl, make_digest_acl
from support import dump_server

from zookapter.protocol.consts import Op
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import OPEN_ACL_UNSAFE, CreateRequest
from zookapter.testing import ZookapterServer

from oracle import ApacheZooKeeper, apache_zookeeper_available
from rawclient import RawClient

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not apache_zookeeper_available(),
                                 reason="Apache ZooKeeper oracle unavailable")]

SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test
PROPS = {"zookeeper.snapCount": "20", "zookeeper.preAllocSize": "64"}
SESSION_TIMEOUT_S = 40  # the maximum with tickTime 2000: sessions outlive every switch here
TTL_MODE, CONTAINER_MODE = 5, 4


@contextlib.contextmanager
def serving(kind: str, data_dir: Path, force_sync: bool = False) -> Iterator[str]:
    if kind == "apache":
        props = {"zookeeper.DigestAuthenticationProvider.superDigest": SUPER, **PROPS}
        with ApacheZooKeeper(data_dir=data_dir, extra_jvm_props=props,
                             extra_config={"forceSync": "yes" if force_sync else "no"}) as a:
            yield a.hosts
    else:
        with ZookapterServer(data_dir=str(data_dir), super_digest=SUPER, props=PROPS) as z:
            yield z.hosts


def _client(hosts: str, timeout: float = SESSION_TIMEOUT_S) -> KazooClient:
    zk = KazooClient(hosts=hosts, auth_data=[("digest", "super:test")], timeout=timeout)
    zk.start(timeout=30)
    return zk


def _raw_create(hosts: str, path: str, data: bytes, op: int, mode: int,
                ttl: int | None = None) -> None:
    host, port = hosts.rsplit(":", 1)
    c = RawClient(host, int(port))
    try:
        c.connect(timeout_ms=SESSION_TIMEOUT_S * 1000)
        w = Writer()
        CreateRequest(path, data, OPEN_ACL_UNSAFE, mode, -1 if ttl is None else ttl).write(
            w, ttl is not None)
        _xid, _zxid, err, _body = c.request(op, bytes(w.buf))
        assert err == 0, (path, err)
        c.request(Op.CLOSE_SESSION)
    finally:
        c.close()


def _phase(hosts: str, tag: str, prev: str | None) -> KazooClient:
    """A varied workload under /<tag> (and changes to /<prev>, the other server's nodes).
    Returns the client, left open: its ephemeral and session must survive the switch."""
    zk = _client(hosts)
    base = f"/{tag}"
    zk.create(f"{base}/cfg", b"v1", makepath=True)
    zk.set(f"{base}/cfg", b"v2")
    for i in range(25):
        zk.create(f"{base}/q/item-", b"%d" % i, sequence=True, makepath=True)
    zk.delete(f"{base}/q/item-0000000003")
    zk.create(f"{base}/secret", b"s", acl=[make_digest_acl("alice", "pw", all=True)])
    zk.set_acls(f"{base}/cfg", [make_digest_acl("bob", "pw", read=True, write=True),
                                make_acl("world", "anyone", read=True)])
    t = zk.transaction()
    t.create(f"{base}/multi", b"m")
    t.create(f"{base}/multi/child", b"c")
    t.set_data(f"{base}/q", b"q-data")
    assert not any(isinstance(r, Exception) for r in t.commit())
    t = zk.transaction()
    t.create(f"{base}/never")
    t.check(f"{base}/multi", 7)
    assert isinstance(t.commit()[1], BadVersionError)
    with pytest.raises(NoNodeError):
        zk.delete(f"{base}/nonexistent")
    zk.create(f"{base}/big", bytes(range(256)) * 200)
    zk.create(f"{base}/\u00fc-\u00df", "\u00fcn\u00ef-\U0001f600".encode())
    _raw_create(hosts, f"{base}/container", b"c", Op.CREATE_CONTAINER, CONTAINER_MODE)
    zk.create(f"{base}/container/kid", b"k")
    _raw_create(hosts, f"{base}/ttl", b"t", Op.CREATE_TTL, TTL_MODE, ttl=3_600_000)
    for r in [zk.create_async(f"{base}/p{i}", b"p" * i) for i in range(30)]:
        r.get(timeout=30)
    zk.create(f"{base}/eph", b"e", ephemeral=True)
    other = _client(hosts)
    other.create(f"{base}/gone", b"", ephemeral=True)
    other.stop()  # closeSession deletes it
    other.close()
    if prev is not None:  # the second server changes what the first one wrote
        zk.set(f"/{prev}/cfg", b"changed by the next server")
        zk.delete(f"/{prev}/q/item-0000000010")
        zk.create(f"/{prev}/multi/child2", b"c2")
        zk.set_acls(f"/{prev}/big", [make_acl("world", "anyone", all=True)])
        zk.delete(f"/{prev}/p7")
    return zk


def _dump(hosts: str) -> dict[str, tuple]:
    return dump_server(hosts, acls=True, auth_data=[("digest", "super:test")],
                       timeout=10)


def _diff(expected: dict, got: dict) -> list[str]:
    out = [f"missing {p}" for p in sorted(set(expected) - set(got))]
    out += [f"unexpected {p}" for p in sorted(set(got) - set(expected))]
    out += [f"{p}: {expected[p]!r:.300} != {got[p]!r:.300}"
            for p in sorted(set(expected) & set(got)) if expected[p] != got[p]]
    return out


def _files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "version-2").iterdir()}


def _zxid(name: str) -> int:
    return int(name.split(".")[1], 16)


def _copy(src: Path, dst: Path, names: set[str] | None = None) -> Path:
    (dst / "version-2").mkdir(parents=True)
    for name in names if names is not None else _files(src):
        shutil.copy2(src / "version-2" / name, dst / "version-2" / name)
    return dst


def _switch(tmp: Path, first: str, second: str) -> None:
    data = tmp / "data"
    data.mkdir()
    with serving(first, data) as hosts:
        c1 = _phase(hosts, "p1", None)
        dump1 = _dump(hosts)
    c1.stop()
    c1.close()
    by_first = _files(data)
    last_first_zxid = max(_zxid(n) for n in by_first if n.startswith("log."))
    assert sum(n.startswith("log.") for n in by_first) >= 2, by_first  # the log rolled
    # The first server's own start-up snapshot at the switch point (for the strict shape).
    restarted = _copy(data, tmp / "first-restarted")
    with serving(first, restarted):
        pass
    # Its name is the last zxid; a periodic snapshot taken right after the last write can
    # already have that name (then the start-up one overwrote it), so take the newest.
    switch_snaps = {max((n for n in _files(restarted) if n.startswith("snapshot.")),
                        key=_zxid)}

    with serving(second, data) as hosts:
        seen = _dump(hosts)
        assert not _diff(dump1, seen), (f"{second} reading {first}'s dataDir", _diff(dump1, seen))
        c2 = _phase(hosts, "p2", "p1")
        dump2 = _dump(hosts)
    c2.stop()
    c2.close()
    by_second = _files(data) - by_first
    second_logs = {n for n in by_second if n.startswith("log.")}
    assert len(second_logs) >= 2 and min(_zxid(n) for n in second_logs) > last_first_zxid
    (switch_snap,) = switch_snaps
    assert min(_zxid(n) for n in second_logs) == _zxid(switch_snap) + 1
    assert switch_snap in _files(data)  # B's start-up snapshot has the same name

    def strict(d: Path) -> None:
        _copy(restarted, d, switch_snaps)
        for name in second_logs:
            shutil.copy2(data / "version-2" / name, d / "version-2" / name)

    shapes = {
        "as left": lambda d: _copy(data, d),
        f"without {second}'s snapshots": lambda d: _copy(
            data, d, {n for n in _files(data) if not (n in by_second and n.startswith("snap"))}),
        "strict": strict,
    }
    for shape, make in shapes.items():
        for reader in (first, second):
            d = tmp / f"{shape}-{reader}".replace(" ", "_").replace("'", "")
            make(d)
            before = _files(d)
            with serving(reader, d) as hosts:
                got = _dump(hosts)
            diff = _diff(dump2, got)
            assert not diff, (f"{reader} on {shape} ({sorted(before)}), after {first} then "
                              f"{second}", diff[:20])


def test_apache_then_zookapter(tmp_path):
    """(a) Apache writes and stops, zookapter continues; Apache must serve the result."""
    _switch(tmp_path, "apache", "zookapter")


def test_zookapter_then_apache(tmp_path):
    """(b) zookapter writes and stops, Apache continues; zookapter must serve the result."""
    _switch(tmp_path, "zookapter", "apache")


# --- switching after a crash ----------------------------------------------------------------

class AckRecorder:
    """One kazoo client writing in a thread, recording what was acknowledged."""

    def __init__(self, hosts: str, tag: str, seed: int) -> None:
        self.zk = KazooClient(hosts=hosts, timeout=10)
        self.zk.start(timeout=30)
        self.tag = tag
        self.rng = random.Random(seed)
        self.created: dict[str, bytes] = {}
        self.versions: dict[str, tuple[int, bytes]] = {}
        self.tried: dict[str, set[bytes]] = {}
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.zk.ensure_path(f"/{tag}")
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, SessionExpiredError
        from kazoo.handlers.threading import KazooTimeoutError
        unknown = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, KazooTimeoutError)
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                data = f"{self.tag}-{i}".encode() + b"x" * self.rng.choice((0, 50, 2000))
                if self.created and self.rng.random() < 0.4:
                    path = self.rng.choice(sorted(self.created))
                    self.tried.setdefault(path, set()).add(data)
                    stat = self.zk.set_async(path, data).get(timeout=10)
                    self.versions[path] = (stat.version, data)
                else:
                    path = f"/{self.tag}/n{i}"
                    self.tried.setdefault(path, set()).add(data)
                    self.zk.create_async(path, data).get(timeout=10)
                    self.created[path] = data
        except unknown:
            pass  # the server is gone; the write in flight has an unknown outcome
        except Exception as e:  # noqa: BLE001 - anything else is a server bug
            self.failures.append(repr(e))

    def finish(self) -> None:
        self.stop.set()
        self.zk.stop()  # fails whatever is still waiting for the dead server
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.zk.close()

    def check(self, hosts: str) -> None:
        zk = _client(hosts, timeout=10)
        try:
            for path, data in self.created.items():
                got, stat = zk.get(path)
                acked = self.versions.get(path, (0, data))
                assert stat.version >= acked[0], (path, stat.version, acked)
                if stat.version == acked[0]:
                    assert got == acked[1], path
                else:
                    assert got in self.tried[path], path
        finally:
            zk.stop()
            zk.close()


def _kill_zookapter_under_load(tmp: Path, data: Path, tag: str, rng: random.Random) -> AckRecorder:
    from test_crash import ServerProcess
    server = ServerProcess(tmp, data)
    server.start()
    try:
        w = AckRecorder(f"127.0.0.1:{server.port}", tag, rng.randrange(1 << 30))
        time.sleep(rng.uniform(0.3, 1.0))
    finally:
        server.kill()
    w.finish()
    return w


def _kill_apache_under_load(data: Path, tag: str, rng: random.Random) -> AckRecorder:
    props = {"zookeeper.DigestAuthenticationProvider.superDigest": SUPER, **PROPS}
    a = ApacheZooKeeper(data_dir=data, extra_jvm_props=props, extra_config={"forceSync": "yes"})
    a.start()
    try:
        w = AckRecorder(a.hosts, tag, rng.randrange(1 << 30))
        time.sleep(rng.uniform(0.5, 1.5))
    finally:
        assert a.process is not None
        a.process.kill()  # SIGKILL
        a.process.wait(30)
        a.stop()
    w.finish()
    return w


@pytest.mark.parametrize("first", ("apache", "zookapter"))
def test_switch_after_sigkill(tmp_path, first):
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    data = tmp_path / "data"
    data.mkdir()
    order = [first, "zookapter" if first == "apache" else "apache", first]
    writers: list[AckRecorder] = []
    for step, kind in enumerate(order):
        tag = f"s{step}"
        if kind == "apache":
            w = _kill_apache_under_load(data, tag, rng)
        else:
            w = _kill_zookapter_under_load(tmp_path, data, tag, rng)
        assert not w.failures, (seed, w.failures)
        assert len(w.created) > 5, (seed, kind, len(w.created))
        writers.append(w)
        # Whoever comes next (and finally both) must have every acknowledged write.
        for reader in ("apache", "zookapter"):
            copy = _copy(data, tmp_path / f"check-{step}-{reader}")
            with serving(reader, copy) as hosts:
                for ww in writers:
                    try:
                        ww.check(hosts)
                    except AssertionError as e:
                        raise AssertionError(f"seed {seed}: {reader} after {order[:step + 1]} "
                                             f"killed: {e}") from e

"""Dynamic reconfiguration (`reconfig`, reconfigEnabled=true) in replicated ensembles of real
processes: zookapter alone, and mixed with Apache ZooKeeper 3.8 under either kind of leader,
so that COMMITANDACTIVATE / INFORMANDACTIVATE and the config text are checked against Java.

What kazoo's TestReconfig does against a 3-server cluster: refused without super
(NoAuth), refused for a malformed server spec (BadArguments), an observer that never runs
added and removed again (the reply and /zookeeper/config on every member show it), a stale
config version refused (BadVersion).
"""

from __future__ import annotations

import socket

import pytest

from zookapter.client import ZooKeeperClient
from zookapter.client.errors import (
    BadArgumentsError,
    BadVersionError,
    NoAuthError,
    ReconfigDisabledError,
    UnimplementedError,
)
from zookapter.testing import ZookapterServer

from ensemble import Ensemble
from oracle import ApacheZooKeeper, apache_zookeeper_available

# super:test, as kazoo's harness configures it
SUPER = {"reconfigEnabled": "true",
         "DigestAuthenticationProvider.superDigest": "super:D/InIHSb7yEEbrWz8b9l71RjZJU="}


def _free_ports(n: int) -> tuple[list[socket.socket], list[int]]:
    """Bound but not listening: a connection attempt is refused at once (ZOOKEEPER-2202)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("", 0))
        socks.append(s)
    return socks, [s.getsockname()[1] for s in socks]


def _version(config: bytes) -> int:
    last = config.decode().split("\n")[-1]
    assert last.startswith("version="), config
    return int(last.split("=")[1], 16)


def _configs(e: Ensemble) -> dict[int, bytes]:
    """/zookeeper/config as each member shows it (after catching up with the leader)."""
    out = {}
    for sid in e.peers:
        c = ZooKeeperClient(e.hosts([sid]), timeout=20.0)
        c.start(20)
        try:
            c.sync("/")
            out[sid] = c.get_config()[0]
        finally:
            c.close()
    return out


def _config_files(e: Ensemble, sid: int) -> dict[str, str]:
    """zoo.cfg, its backup and the dynamic files of member `sid`, its own dir masked."""
    d = e.peers[sid].dir
    return {f.name: f.read_text().replace(str(d), "<dir>")
            for f in sorted(d.iterdir()) if f.name.startswith("zoo.cfg")}


def _expected_initial(e: Ensemble, version: int) -> bytes:
    lines = [f"server.{sid}=127.0.0.1:{p.quorum}:{p.election}:participant;127.0.0.1:{p.client}"
             for sid, p in sorted(e.ports.items())]
    return ("\n".join(lines) + f"\nversion={version:x}").encode()


def _scenario(e: Ensemble) -> None:
    before = _configs(e)
    assert len(set(before.values())) == 1, before
    initial = before[1]
    # the first reconfig-enabled leader stamps the config with its first zxid
    assert initial == _expected_initial(e, _version(initial))
    assert _version(initial) & 0xFFFFFFFF == 0 and _version(initial) > 0

    plain = ZooKeeperClient(e.hosts(), timeout=20.0)
    admin = ZooKeeperClient(e.hosts(), timeout=20.0)
    plain.start(20)
    admin.start(20)
    socks, (p1, p2, p3) = _free_ports(3)
    try:
        admin.add_auth("digest", "super:test")
        with pytest.raises(NoAuthError):
            plain.reconfig(joining="server.999=0.0.0.0:1234:2345:observer;3456")
        with pytest.raises(BadArgumentsError):
            plain.reconfig(joining="some thing")

        joining = f"server.100=0.0.0.0:{p1}:{p2}:observer;0.0.0.0:{p3}"
        added, stat = admin.reconfig(joining=joining)
        assert joining.encode() in added
        assert added.startswith(initial.rpartition(b"\n")[0] + b"\n")
        assert stat.mzxid == _version(added) and stat.version == -1
        seen = _configs(e)
        assert set(seen.values()) == {added}, seen

        removed, _ = admin.reconfig(leaving="100", from_config=_version(added))
        assert joining.encode() not in removed
        assert removed.rpartition(b"\n")[0] == initial.rpartition(b"\n")[0]
        with pytest.raises(BadVersionError):
            admin.reconfig(joining=joining, from_config=_version(removed) + 1)
        seen = _configs(e)
        assert set(seen.values()) == {removed}, seen
        # the ensemble still replicates under its new configuration
        admin.create("/after-reconfig", b"ok")
        assert plain.get("/after-reconfig")[0] == b"ok"
    finally:
        for s in socks:
            s.close()
        plain.close()
        admin.close()


def test_zookapter_ensemble_reconfig() -> None:
    with Ensemble(3, kinds="zzz", extra_config=SUPER) as e:
        _scenario(e)


def test_zookapter_ensemble_restarts_with_its_new_configuration() -> None:
    with Ensemble(3, kinds="zzz", extra_config=SUPER) as e:
        admin = ZooKeeperClient(e.hosts(), timeout=20.0)
        admin.start(20)
        socks, (p1, p2, p3) = _free_ports(3)
        try:
            admin.add_auth("digest", "super:test")
            added, _ = admin.reconfig(joining=f"server.7=0.0.0.0:{p1}:{p2}:observer;{p3}")
        finally:
            admin.close()
            for s in socks:
                s.close()
        assert set(_configs(e).values()) == {added}
        for peer in e.peers.values():
            peer.stop()
        for peer in e.peers.values():
            peer.start()
        e.wait_for_quorum(60)
        assert set(_configs(e).values()) == {added}


needs_java = pytest.mark.skipif(not apache_zookeeper_available(),
                                reason="Apache ZooKeeper (Debian package) not installed")


@needs_java
@pytest.mark.parametrize("kinds", ["jjz", "zjj"])
def test_mixed_ensemble_reconfig(kinds: str) -> None:
    """"jjz": zookapter (sid 3, up first) leads Java followers; "zjj": a Java member leads
    and the zookapter one follows (whoever leads, members must agree byte for byte)."""
    with Ensemble(3, kinds=kinds, extra_config=SUPER) as e:
        leader = e.leader()
        assert leader is not None
        print(f"{kinds}: leader {leader} ({e.kinds[leader - 1]})")
        _scenario(e)
        # each version on disk as ZooKeeper writes it: zoo.cfg.dynamic.<version>, zoo.cfg
        # rewritten to point at the newest, the original kept as zoo.cfg.bak
        files = {sid: _config_files(e, sid) for sid in e.peers}
        assert files[1] == files[2] == files[3], files
        assert len([n for n in files[1] if ".dynamic." in n]) == 3
        assert e.leader() == leader  # the reconfig kept its leader


@needs_java
@pytest.mark.parametrize("enabled", [True, False])
def test_standalone_server_refuses_reconfig_as_zookeeper_does(enabled: bool) -> None:
    """reconfigEnabled=true on a standalone server: Unimplemented (only a leader
    reconfigures); without it: ReconfigDisabled."""
    extra = {"reconfigEnabled": "true"} if enabled else {}
    expected = UnimplementedError if enabled else ReconfigDisabledError
    apache = ApacheZooKeeper(extra_config=extra).start()
    try:
        with ZookapterServer(raw=dict(extra)) as ours:
            for hosts in (apache.hosts, ours.hosts):
                c = ZooKeeperClient(hosts, timeout=20.0)
                c.start(20)
                try:
                    with pytest.raises(expected):
                        c.reconfig(joining="server.5=127.0.0.1:2888:3888;2181")
                finally:
                    c.close()
    finally:
        apache.stop()

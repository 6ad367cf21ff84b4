"""Ensemble configuration: server.N specs, quorum verifiers, their text form, zoo.cfg's quorum
keys and myid. The last tests run the same inputs through Apache ZooKeeper's own classes
(QuorumServer, QuorumPeerConfig.parseDynamicConfig) in a JVM and compare."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from zookapter.quorum.config import (
    ConfigError,
    HierarchicalQuorumVerifier,
    LearnerType,
    QuorumServer,
    parse_dynamic_config,
    parse_myid,
    parse_quorum_peer_config,
    parse_server,
    verifier_from_text,
    version_from_filename,
)
from zookapter.server.config import parse_properties

from oracle import _classpath, _java_binary, apache_zookeeper_available

THREE = "server.1=h1:2881:3881\nserver.2=h2:2882:3882\nserver.3=h3:2883:3883\n"


# --- server.N ------------------------------------------------------------------------------

def test_server_spec_forms() -> None:
    s = parse_server(1, "10.0.0.1:2888:3888")
    assert s == QuorumServer(1, (("10.0.0.1", 2888, 3888),))
    assert s.to_string() == "10.0.0.1:2888:3888:participant"
    s = parse_server(2, "zk2:2888:3888:Observer;2181")
    assert s.type is LearnerType.OBSERVER and s.client_addr == ("0.0.0.0", 2181)
    assert s.to_string() == "zk2:2888:3888:observer;0.0.0.0:2181"
    s = parse_server(3, "[::1]:2888:3888:participant;[::1]:2181")
    # IP literals are printed the way Java prints an InetAddress
    assert s.addrs == (("0:0:0:0:0:0:0:1", 2888, 3888),)
    assert s.to_string() == "[0:0:0:0:0:0:0:1]:2888:3888:participant;[0:0:0:0:0:0:0:1]:2181"
    assert parse_server(4, "h:2888:3888;").client_addr is None  # trailing ';' is dropped


def test_multi_address() -> None:
    with pytest.raises(ConfigError, match="Multiple address feature is disabled"):
        parse_server(1, "b:1:2|a:3:4")
    s = parse_server(1, "b:1:2|a:3:4:observer", multi_address_enabled=True)
    assert s.type is LearnerType.OBSERVER
    assert s.election_addrs == (("b", 2), ("a", 4))
    assert s.to_string() == "a:3:4|b:1:2:observer"  # sorted by host when printed
    with pytest.raises(ConfigError, match="similar roles"):
        parse_server(1, "a:1:2:observer|b:3:4:participant", multi_address_enabled=True)


@pytest.mark.parametrize("spec", [
    "h:2888", "h:2888:3888:observer:x", "h:2888:2888", "h:x:3888", "h:2888:3888:leader",
    "h:2888:3888;a:b:2181", "h:2888:3888;x", "h:70000:3888", "[::1]:2888", "[::1:2888:3888",
    "h:1:2;3;4",
])
def test_bad_server_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_server(1, spec)


# --- verifiers and their text --------------------------------------------------------------

def test_majority_quorum() -> None:
    qv = verifier_from_text(THREE + "server.4=h4:2884:3884:observer\n")
    assert sorted(qv.voting_members) == [1, 2, 3] and sorted(qv.observing_members) == [4]
    assert qv.contains_quorum({1, 2}) and not qv.contains_quorum({1})
    assert not qv.contains_quorum({1, 4})  # observers do not count
    assert qv.weight(4) == 1  # QuorumMaj weighs everyone 1


def test_text_form_and_java_hashmap_order() -> None:
    text = ("server.3=c:1:2\nserver.17=a:1:2:observer;a:9\nserver.1=b:1:2;7\n"
            "server.2=d:1:2\nversion=100000000")
    qv = verifier_from_text(text)
    assert qv.version == 0x100000000
    assert qv.to_string() == (
        "server.1=b:1:2:participant;0.0.0.0:7\n"
        "server.17=a:1:2:observer;a:9\n"  # bucket 1 of 16, right after 1
        "server.2=d:1:2:participant\n"
        "server.3=c:1:2:participant\n"
        "version=100000000")
    assert verifier_from_text(qv.to_string()).to_string() == qv.to_string()
    assert qv.dynamic_file_text() == (
        "server.17=a:1:2:observer;a:9\nserver.1=b:1:2:participant;0.0.0.0:7\n"
        "server.2=d:1:2:participant\nserver.3=c:1:2:participant")


def test_config_text_rejects_other_keys() -> None:
    with pytest.raises(ConfigError, match="Unrecognised parameter: tickTime"):
        verifier_from_text(THREE + "tickTime=2000\n")


def test_hierarchical_quorum() -> None:
    qv = verifier_from_text(THREE + "server.4=h4:1:2\nserver.5=h5:1:2\n"
                            "group.1=1:2:3\ngroup.2=4:5\nweight.1=2\nweight.5=0\n")
    assert isinstance(qv, HierarchicalQuorumVerifier)
    assert qv.weight(1) == 2 and qv.weight(2) == 1 and qv.weight(5) == 0
    # group weights: {1,2,3} -> 2+1+1 = 4, {4,5} -> 1+0 = 1; both groups need > half
    assert qv.contains_quorum({1, 2, 4})
    assert not qv.contains_quorum({1, 4})  # 2 of 4 is not more than half
    assert not qv.contains_quorum({1})
    assert not qv.contains_quorum({2, 3, 4})  # group 1: 2 of 4 is not more than half
    assert not qv.contains_quorum({1, 5})  # group 2: 0 of 1
    assert qv.to_string().endswith("group.1=1:2:3\ngroup.2=4:5\nweight.1=2\nweight.2=1\n"
                                   "weight.3=1\nweight.4=1\nweight.5=0\nversion=0")
    with pytest.raises(ConfigError, match="is not in a group"):
        verifier_from_text(THREE + "group.1=1:2\n")
    with pytest.raises(ConfigError, match="multiple groups"):
        verifier_from_text(THREE + "group.1=1:2:3\ngroup.2=3\n")


def test_version_from_dynamic_file_name() -> None:
    assert version_from_filename("/x/zoo.cfg.dynamic.100000000") == 0x100000000
    assert version_from_filename("zoo.cfg.dynamic") is None


# --- zoo.cfg + myid --------------------------------------------------------------------------

def test_myid_like_java() -> None:
    assert parse_myid("3\n") == 3
    assert parse_myid("12\r\nrest") == 12
    for bad in ("", " 3", "3 ", "three", "0x3"):
        with pytest.raises(ConfigError, match="is not a number"):
            parse_myid(bad)


def _cfg(text: str, myid: str | None = "1", **kw):
    return parse_quorum_peer_config(parse_properties(text), myid, **kw)


def test_quorum_peer_config_static() -> None:
    cfg = _cfg("tickTime=2000\ninitLimit=10\nsyncLimit=5\nclientPort=2181\n" + THREE)
    assert cfg.is_distributed and cfg.my_id == 1 and cfg.init_limit_ms == 20000
    assert cfg.client_port_address == ("0.0.0.0", 2181)
    # our own client address came from clientPort: attached, but not printed
    assert cfg.me.client_addr == ("0.0.0.0", 2181) and cfg.me.client_from_static
    assert cfg.verifier.to_string().startswith("server.1=h1:2881:3881:participant\n")


def test_quorum_peer_config_checks() -> None:
    with pytest.raises(ConfigError, match="initLimit is not set"):
        _cfg("syncLimit=5\n" + THREE)
    with pytest.raises(ConfigError, match="syncLimit is not set"):
        _cfg("initLimit=5\n" + THREE)
    with pytest.raises(ConfigError, match="myid file is missing"):
        _cfg("initLimit=5\nsyncLimit=2\n" + THREE, None)
    with pytest.raises(ConfigError, match="Only 3 is supported"):
        _cfg("electionAlg=1\n" + THREE)
    with pytest.raises(ConfigError, match="is different from client address"):
        _cfg("initLimit=5\nsyncLimit=2\nclientPort=2181\n"
             "server.1=h1:1:2;2182\nserver.2=h2:1:2\n")
    # one server and standaloneEnabled: not distributed, no limits needed
    assert not _cfg("server.1=h1:1:2\n").is_distributed
    assert _cfg("standaloneEnabled=false\ninitLimit=5\nsyncLimit=2\nserver.1=h1:1:2\n"
                ).is_distributed
    with pytest.raises(ConfigError, match="Observers w/o participants"):
        _cfg("server.1=h1:1:2:observer\n")


def test_peer_type_follows_the_server_list() -> None:
    cfg = _cfg("initLimit=5\nsyncLimit=2\npeerType=participant\n" + THREE +
               "server.4=h4:1:2:observer\n", "4")
    assert cfg.peer_type is LearnerType.OBSERVER


def test_dynamic_config_file() -> None:
    static = "initLimit=5\nsyncLimit=2\ndynamicConfigFile=/c/zoo.cfg.dynamic.100000000\n"
    cfg = _cfg(static, "2", dynamic_props=parse_properties(THREE))
    assert cfg.verifier.version == 0x100000000 and cfg.my_id == 2
    with pytest.raises(ConfigError, match="separate dynamic config file"):
        _cfg(static + THREE, dynamic_props=parse_properties(THREE))
    with pytest.raises(ConfigError, match="shouldn't have version"):
        _cfg(static, dynamic_props=parse_properties(THREE + "version=5\n"))


# --- the same inputs through Apache ZooKeeper's classes --------------------------------------

PROBE = r"""
import java.io.*;
import java.util.*;
import org.apache.zookeeper.server.quorum.QuorumPeer.QuorumServer;
import org.apache.zookeeper.server.quorum.QuorumPeerConfig;
import org.apache.zookeeper.server.quorum.flexible.QuorumVerifier;

/** Reads tab-separated requests on stdin, answers OK<TAB>result or ERR<TAB>exception. */
public class QuorumProbe {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (String line; (line = in.readLine()) != null; ) {
            String[] f = line.split("\t", -1);
            try {
                if (f[0].equals("server")) {
                    System.setProperty("zookeeper.multiAddress.enabled", f[3]);
                    out.println("OK\t" + new QuorumServer(Long.parseLong(f[1]), f[2]));
                } else {
                    Properties p = new Properties();
                    p.load(new StringReader(f[1].replace("\\n", "\n")));
                    boolean zooCfg = f[0].equals("static");  // backward-compatible mode
                    QuorumVerifier qv =
                        QuorumPeerConfig.parseDynamicConfig(p, 3, false, zooCfg, null);
                    StringBuilder sb = new StringBuilder(qv.toString().replace("\n", "\\n"));
                    for (int i = 2; i < f.length; i++) {
                        Set<Long> ids = new HashSet<>();
                        for (String x : f[i].split(",")) {
                            if (!x.isEmpty()) ids.add(Long.parseLong(x));
                        }
                        sb.append("\t").append(qv.containsQuorum(ids));
                    }
                    out.println("OK\t" + sb);
                }
            } catch (Throwable t) {
                out.println("ERR\t" + t.getClass().getSimpleName() + ": " + t.getMessage());
            }
        }
    }
}
"""

SERVER_SPECS = [
    ("127.0.0.1:2888:3888", False), ("h:2888:3888:observer", False),
    ("h:2888:3888:Participant", False), ("h:2888:3888;2181", False),
    ("h:2888:3888;10.0.0.1:2181", False), ("[::1]:2888:3888:participant;[::1]:2181", False),
    ("[2001:db8::1]:2888:3888", False), ("h:2888:3888;", False), (" h:2888:3888", False),
    ("h:+2888:3888", False), ("h:2888:3888:observer;0.0.0.0:2181", False),
    ("b:1:2|a:3:4:observer", True), ("a:1:2|a:3:4", True),
    ("h:2888:2888", False), ("h:2888", False), ("h:2888:3888:observer:x", False),
    ("h:2888:3888:leader", False), ("a:1:2|b:3:4", False),
    ("a:1:2:observer|b:3:4:participant", True), ("h:2888:3888;a:b:2181", False),
    ("h:x:3888", False), ("h:2888:3888;x", False), ("h:70000:3888", False),
    ("[::1]:2888", False), ("[::1:2888:3888", False), ("h:1:2;3;4", False),
]

CONFIGS = [
    (THREE + "server.17=a:1:2:observer;a:9\nversion=100000000", ["1,2", "1", "2,3", "1,2,3"]),
    ("".join(f"server.{i}=h:1:{i + 2}\n" for i in (1, 5, 9, 12, 13, 16, 20, 33, 40)),
     ["1,5,9,12,13", "1,5,9,12"]),
    (THREE + "server.4=h4:1:2\nserver.5=h5:1:2\ngroup.1=1:2:3\ngroup.2=4:5\n"
     "weight.1=2\nweight.5=0\n", ["1,4", "1", "2,3,4", "1,5", "1,2,4,5"]),
    ("server.1=h:1:2\nserver.2=h:3:4\ngroup.7=2\ngroup.3=1\n", ["1", "1,2"]),
    ("".join(f"server.{i}=h:1:{i + 2}\n" for i in (1, 17, 33, 49, 2, 18, 3, 4, 5, 6, 7, 8, 9, 65)),
     ["1,17,33,49,2,18,3,4"]),
    (THREE + "tickTime=2000\n", []),
    ("server.x=h:1:2\n", []),
    (THREE + "group.1=1:2\n", []),
]


# zoo.cfg files: every key counts for the Properties table (and so for the member order)
STATIC_CONFIGS = [
    ("tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/d\nclientPort=2181\n"
     "4lw.commands.whitelist=*\nadmin.enableServer=false\nreconfigEnabled=true\n"
     + "".join(f"server.{i}=h:1:{i + 2}\n" for i in (33, 1, 17, 49, 2, 18)), ["1,17,33"]),
    ("a=1\nb=2\nc=3\nd=4\ne=5\nf=6\ng=7\nh=8\ni=9\nj=10\n"
     + "".join(f"server.{i}=h:1:{i + 2}\n" for i in (1, 17, 33, 49, 65, 81, 97, 113)), []),
]


def _java_probe(requests: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "QuorumProbe.java"
        src.write_text(PROBE)
        proc = subprocess.run([_java_binary(), "-cp", _classpath(), str(src)],
                              input="\n".join(requests) + "\n", capture_output=True,
                              text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(requests), proc.stderr[-3000:]
    return lines


def _ours_server(spec: str, multi: bool) -> str:
    try:
        return "OK\t" + parse_server(1, spec, multi).to_string()
    except ConfigError:
        return "ERR"


def _ours_config(text: str, sets: list[str], zoo_cfg: bool = False) -> str:
    try:
        qv = parse_dynamic_config(parse_properties(text), backward_compatible=zoo_cfg)
    except ConfigError:
        return "ERR"
    parts = [qv.to_string().replace("\n", "\\n")]
    parts += [str(qv.contains_quorum({int(x) for x in s.split(",") if x})).lower()
              for s in sets]
    return "OK\t" + "\t".join(parts)


@pytest.mark.oracle
@pytest.mark.skipif(not apache_zookeeper_available(), reason="java or ZooKeeper jars missing")
def test_same_as_apache_zookeeper() -> None:
    requests = [f"server\t1\t{spec}\t{str(multi).lower()}" for spec, multi in SERVER_SPECS]
    requests += ["config\t" + "\t".join([text.replace("\n", "\\n"), *sets])
                 for text, sets in CONFIGS]
    requests += ["static\t" + "\t".join([text.replace("\n", "\\n"), *sets])
                 for text, sets in STATIC_CONFIGS]
    java = _java_probe(requests)
    ours = [_ours_server(s, m) for s, m in SERVER_SPECS] + \
        [_ours_config(t, sets) for t, sets in CONFIGS] + \
        [_ours_config(t, sets, zoo_cfg=True) for t, sets in STATIC_CONFIGS]
    for req, j, o in zip(requests, java, ours, strict=True):
        j_short = "ERR" if j.startswith("ERR") else j
        assert o == j_short, f"{req!r}: java says {j!r}"

"""Fast checks of the kazoo conformance tooling (no ZooKeeper is started).

Covers tests/conformance/bin/java (the shim), scripts/kazoo-suite's parsing
helpers and the validity of tests/conformance/ci-subset.txt.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHIM = HERE / "bin" / "java"
SCRIPT = REPO / "scripts" / "kazoo-suite"


def _load_script():
    loader = importlib.machinery.SourceFileLoader("kazoo_suite_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = mod  # dataclasses look the module up
    loader.exec_module(mod)
    return mod


ks = _load_script()


def _exe(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_path(tmp_path):
    """PATH = shim dir, then a dir with a fake `zookapter` and a fake `java`."""
    other = tmp_path / "other"
    other.mkdir()
    _exe(other / "zookapter", 'for a in "$@"; do printf "<%s>" "$a"; done; echo\n')
    _exe(other / "java", 'printf "REAL"; for a in "$@"; do printf " %s" "$a"; done; echo\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOOKAPTER_")}
    env["PATH"] = os.pathsep.join([str(SHIM.parent), str(other), "/usr/bin", "/bin"])
    return env


def _run(env, *args):
    return subprocess.run(
        ["java", *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_shim_translates_quorum_peer_main(fake_path, tmp_path):
    cfg = tmp_path / "zoo.cfg"
    r = _run(fake_path, "-cp", "a.jar:b.jar", "-Dfile.encoding=UTF-8", "-Xmx1g",
             "-Dx.y=a b", "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"<server><{cfg}><-Dfile.encoding=UTF-8><-Dx.y=a b>"


def test_shim_translates_standalone_main(fake_path):
    r = _run(fake_path, "-Da=1", "org.apache.zookeeper.server.ZooKeeperServerMain", "c.cfg")
    assert r.stdout.strip() == "<server><c.cfg><-Da=1>"


def test_shim_passes_other_invocations_to_real_java(fake_path):
    assert _run(fake_path, "-version").stdout.strip() == "REAL -version"
    r = _run(fake_path, "-cp", "x.jar", "org.example.Main", "arg")
    assert r.stdout.strip() == "REAL -cp x.jar org.example.Main arg"
    assert _run(fake_path, "-jar", "app.jar").stdout.strip() == "REAL -jar app.jar"


def test_shim_honours_zookapter_cmd(fake_path):
    env = dict(fake_path, ZOOKAPTER_CMD="echo custom")
    r = _run(env, "-Dk=v", "org.apache.zookeeper.server.quorum.QuorumPeerMain", "z.cfg")
    assert r.stdout.strip() == "custom server z.cfg -Dk=v"


def test_shim_python_fallback(fake_path, tmp_path):
    (tmp_path / "other" / "zookapter").unlink()
    env = dict(fake_path, ZOOKAPTER_PYTHON="echo")
    r = _run(env, "org.apache.zookeeper.server.quorum.QuorumPeerMain", "z.cfg")
    assert r.stdout.strip() == "-m zookapter.cli server z.cfg"


def test_shim_sends_server_output_to_log4j_file(fake_path, tmp_path):
    log = tmp_path / "zookeeper.log"
    props = tmp_path / "log4j.properties"
    props.write_text(
        "log4j.rootLogger=INFO, ROLLINGFILE\n"
        f"log4j.appender.ROLLINGFILE.File={log}\n"
    )
    r = _run(fake_path, f"-Dlog4j.configuration=file:{props}",
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", "z.cfg")
    assert r.stdout == ""
    assert log.read_text().strip() == f"<server><z.cfg><-Dlog4j.configuration=file:{props}>"


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("test_lock", "kazoo.tests.test_lock"),
        ("test_lock.py", "kazoo.tests.test_lock"),
        ("kazoo/tests/test_lock.py::KazooLockTests", "kazoo.tests.test_lock::KazooLockTests"),
        ("kazoo.tests.test_client::TestClient::test_create",
         "kazoo.tests.test_client::TestClient::test_create"),
        ("test_retry::test_call", "kazoo.tests.test_retry::test_call"),
    ],
)
def test_normalize_test_arg(arg, expected):
    assert ks.normalize_test_arg(arg) == expected


def test_junit_parsing_and_results_roundtrip(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        '<testcase classname="kazoo.tests.test_client.TestClient" name="test_a" time="1.5"/>'
        '<testcase classname="kazoo.tests.test_client.TestClient" name="test_b" time="2">'
        '<failure message="AssertionError: boom">tb</failure></testcase>'
        '<testcase classname="kazoo.tests.test_retry" name="test_call" time="0.01">'
        '<skipped message="nope"/></testcase>'
        '<testcase classname="kazoo.tests.test_lock.KazooLockTests" name="test_c" time="3">'
        '<error message="teardown broke"/></testcase>'
        "</testsuite></testsuites>"
    )
    res = ks.parse_junit(xml)
    assert {k: v.outcome for k, v in res.items()} == {
        "kazoo.tests.test_client::TestClient::test_a": "passed",
        "kazoo.tests.test_client::TestClient::test_b": "failed",
        "kazoo.tests.test_retry::test_call": "skipped",
        "kazoo.tests.test_lock::KazooLockTests::test_c": "error",
    }
    run = ks.RunResult(target="t", results=res, runtime=12.5)
    out = tmp_path / "results.txt"
    ks.write_results(run, out, ["header"])
    back = ks.read_results(out)
    assert {k: (v.outcome, v.message) for k, v in back.results.items()} == {
        k: (v.outcome, v.message if v.outcome != "passed" else "") for k, v in res.items()
    }
    assert back.runtime == 12.5
    assert back.counts() == {"passed": 1, "failed": 1, "error": 1, "skipped": 1}


def test_compare_lists_apache_only_passes(capsys):
    def run(**outcomes):
        return ks.RunResult(
            target="x",
            results={k: ks.TestResult(k, v) for k, v in outcomes.items()},
        )

    apache = run(a="passed", b="passed", c="failed", d="passed")
    zk = run(a="passed", b="failed", c="passed")  # d not selected
    assert ks.compare(apache, zk) == 1
    out = capsys.readouterr().out
    assert "passing on Apache but not on zookapter: 1" in out
    assert out.strip().splitlines()[-1] == "compare: 1 passed, 1 failed"


@pytest.mark.parametrize("size", sorted(ks.CI_SUBSETS))
def test_ci_subset_entries_exist(size):
    pytest.importorskip("kazoo")
    select, deselect = ks.read_subset(ks.CI_SUBSETS[size])
    assert select
    for ident in select + deselect:
        module, *rest = ident.split("::")
        obj = importlib.import_module(module)
        for name in rest:
            obj = getattr(obj, name)


@pytest.mark.parametrize("size", sorted(ks.BASELINES))
def test_apache_baseline_is_readable(size):
    base = ks.BASELINES[size]
    if not base.exists():
        pytest.skip("no baseline recorded yet")
    run = ks.read_results(base)
    assert len(run.results) > 100
    assert run.runtime > 0


def test_cluster_size_sets_the_harness_env():
    env = ks.target_env("zookapter", 23000, "3.9.2", None, 3)
    assert env["ZOOKEEPER_CLUSTER_SIZE"] == "3"
    assert env["ZOOKEEPER_PORT_OFFSET"] == "23000"
    assert ks.target_env("apache", 22000, "3.8.0", None)["ZOOKEEPER_CLUSTER_SIZE"] == "1"

"""The scripts in examples/ run to completion against a zookapter server (in-process, on a
free port, passed with --hosts), with short settings, and report success."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zookapter.testing import ZookapterServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def server():
    with ZookapterServer(tick_time=200) as s:  # sessions as short as 0.4 s are allowed
        yield s


def run_example(name: str, *args: str, hosts: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args, "--hosts", hosts],
                          capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_config_demo(server):
    out = run_example("config_demo.py", "--iterations", "4", "--interval", "0.05",
                      "--path", "/examples/config", hosts=server.hosts)
    assert "[reader-1] workers: 4 -> 5" in out and "[reader-2] workers: 4 -> 5" in out
    assert "compare_and_set(workers, 5, 6): " in out
    assert "both readers agree" in out


def test_membership_demo(server):
    out = run_example("membership_demo.py", "--members", "3", "--session-timeout", "1",
                      hosts=server.hosts)
    assert "observer: 3 members ['member-1', 'member-2', 'member-3']" in out
    assert "observer: 2 members ['member-2', 'member-3']" in out  # member-1 killed
    assert "observer: 3 members ['member-2', 'member-3', 'member-4']" in out
    assert out.rstrip().endswith("done: every member came and went as expected")


def test_lock_demo(server):
    out = run_example("lock_demo.py", "--workers", "3", "--iterations", "5",
                      hosts=server.hosts)
    assert out.count("token=") == 15
    assert "final counter: 15 (expected 15); fencing tokens increase with every hold: True" in out

"""Shared pytest fixtures for zookapter's own test-suite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
_SRC_DIR = _TESTS_DIR.parent / "src"

# Let the suite run from a plain checkout (no `pip install -e .`): the package lives in src/.
if importlib.util.find_spec("zookapter") is None and _SRC_DIR.is_dir():
    sys.path.insert(0, str(_SRC_DIR))
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

# The server fixtures every module may name: `zk_server` (each test runs on zookapter and on
# Apache ZooKeeper), `fast_server` (tickTime 200 ms, for short sessions), `proxy_for`.
from test_client_support import (  # noqa: E402, F401
    fast_apache,
    fast_server,
    fast_zookapter,
    proxy_for,
    zk_server,
    zookapter_module_server,
)

from oracle import ApacheZooKeeper, apache_zookeeper_available  # noqa: E402


@pytest.fixture(scope="session")
def apache_zk():
    """A started Apache ZooKeeper 3.8 standalone server (the differential oracle)."""
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper oracle unavailable (java or /usr/share/java jars missing)")
    server = ApacheZooKeeper().start()
    try:
        yield server
    finally:
        server.stop()


def pytest_addoption(parser):
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite the expected output of transcript tests (tests/testdata/) instead of "
        "checking it, and re-capture recorded samples where a test knows how",
    )


@pytest.fixture
def rewrite(request) -> bool:
    """True when pytest runs with --rewrite (transcript tests regenerate their files)."""
    return bool(request.config.getoption("--rewrite"))

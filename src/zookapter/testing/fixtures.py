"""pytest fixtures for an in-process zookapter server.

Enable in a conftest.py with `pytest_plugins = ["zookapter.testing.fixtures"]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import ZookapterServer


@pytest.fixture
def zookapter_server() -> Iterator[ZookapterServer]:
    """A fresh server for one test."""
    with ZookapterServer() as server:
        yield server


@pytest.fixture(scope="session")
def zookapter_server_session() -> Iterator[ZookapterServer]:
    """One server shared by the whole test session (use unique paths per test)."""
    with ZookapterServer() as server:
        yield server

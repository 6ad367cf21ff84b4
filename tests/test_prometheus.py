"""The Prometheus endpoint (metricsProvider.className=...PrometheusMetricsProvider).

Debian packages no zookeeper-prometheus-metrics jar (nor the simpleclient jars it needs), so
Apache cannot be run with this provider here. The differential part is against the metric
names compiled into Apache's own zookeeper.jar instead: every family zookapter exports (but
the process_* ones, which Java's client exports too) must be a string constant of
ServerMetrics.class or ZooKeeperServer.class, read from the jar's constant pools. The types
follow ZooKeeper's PrometheusMetricsProvider: gauges for what ZooKeeperServer.registerMetrics
registers, summaries (quantile 0.5; 0.5/0.9/0.99 for the "advanced" ones) and counters, whose
samples carry the family name without `_total` (simpleclient 0.9).
"""

from __future__ import annotations

import asyncio
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from zookapter.server.config import load_config
from zookapter.testing import ZookapterServer

from oracle import ZOOKEEPER_JAR, _free_port

pytestmark = pytest.mark.timeout(120)

PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
HOST = "127.0.0.1"
# ZooKeeperServer.registerMetrics (3.8), the gauges
GAUGES = {
    "avg_latency", "max_latency", "min_latency", "packets_received", "packets_sent",
    "num_alive_connections", "outstanding_requests", "uptime", "znode_count", "watch_count",
    "ephemerals_count", "approximate_data_size", "global_sessions", "local_sessions",
    "open_file_descriptor_count", "max_file_descriptor_count", "connection_drop_probability",
    "last_client_response_size", "max_client_response_size", "min_client_response_size",
    "outstanding_tls_handshake", "auth_failed_count", "non_mtls_remote_conn_count",
    "non_mtls_local_conn_count",
}
# ServerMetrics summaries registered with DetailLevel.ADVANCED (three quantiles)
ADVANCED = {
    "readlatency", "updatelatency", "propagation_latency", "dead_watchers_cleaner_latency",
    "prep_processor_queue_time_ms", "close_session_prep_time", "read_commitproc_time_ms",
    "write_commitproc_time_ms", "local_write_committed_time_ms",
    "server_write_committed_time_ms", "om_proposal_process_time_ms",
    "om_commit_process_time_ms", "read_final_proc_time_ms", "write_final_proc_time_ms",
    "proposal_latency", "proposal_ack_creation_latency", "commit_propagation_latency",
    "sync_processor_queue_and_flush_time_ms", "sync_processor_queue_time_ms",
    "sync_processor_queue_flush_time_ms", "quorum_ack_latency",
    "request_throttle_queue_time_ms", "jvm_pause_time_ms",
}
# a few of ServerMetrics' basic summaries and counters, as spot checks of the rest
BASIC = {"fsynctime", "snapshottime", "dbinittime", "prep_process_time", "sync_process_time"}
COUNTERS = {"bytes_received_count", "response_bytes", "connection_request_count",
            "digest_mismatches_count", "revalidate_count", "watch_bytes"}
PROCESS = {"process_cpu_seconds_total", "process_open_fds", "process_max_fds",
           "process_start_time_seconds", "process_virtual_memory_bytes",
           "process_resident_memory_bytes"}


def _jar_names() -> set[str]:
    """String constants of ZooKeeper's ServerMetrics and ZooKeeperServer classes."""
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("Apache ZooKeeper's zookeeper.jar is not installed")
    names: set[str] = set()
    with zipfile.ZipFile(ZOOKEEPER_JAR) as jar:
        for cls in ("ServerMetrics", "ZooKeeperServer"):
            names |= _utf8_constants(jar.read(f"org/apache/zookeeper/server/{cls}.class"))
    return names


def _utf8_constants(data: bytes) -> set[str]:
    """The Utf8 entries of a class file's constant pool (JVM spec 4.4)."""
    sizes = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2,
             17: 4, 18: 4, 19: 2, 20: 2}
    (count,) = struct.unpack_from(">H", data, 8)
    pos, index, out = 10, 1, set()
    while index < count:
        tag = data[pos]
        pos += 1
        if tag == 1:
            (length,) = struct.unpack_from(">H", data, pos)
            out.add(data[pos + 2:pos + 2 + length].decode("utf-8", "replace"))
            pos += 2 + length
        else:
            pos += sizes[tag]
        index += 2 if tag in (5, 6) else 1  # longs and doubles take two slots
    return out


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[tuple[ZookapterServer, int]]:
    port = _free_port()
    with ZookapterServer(metrics_provider_class=PROVIDER,
                         metrics_provider_config={"httpPort": str(port),
                                                  "httpHost": HOST}) as server:
        yield server, port


async def _get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(f"http://{HOST}:{port}{path}") as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def _scrape(port: int) -> str:
    status, ctype, text = asyncio.run(_get(port, "/metrics"))
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    return text


def _types(text: str) -> dict[str, str]:
    """# TYPE lines: family name -> type."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out[name] = kind
    return out


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_families_are_zookeepers_names_and_types(metrics_server) -> None:
    _, port = metrics_server
    text = _scrape(port)
    list(text_string_to_metric_families(text))  # valid exposition text
    types = _types(text)
    ours = set(types) - PROCESS
    assert ours - _jar_names() == set(), "families ZooKeeper 3.8 does not have"
    assert GAUGES | ADVANCED | BASIC | COUNTERS <= ours
    for name, kind in types.items():
        expected = ("gauge" if name in GAUGES else "summary" if name in ADVANCED | BASIC
                    else "counter" if name in COUNTERS else None)
        if expected is not None:
            assert kind == expected, name
    samples = _samples(text)
    for name in ADVANCED:
        assert {f'{name}{{quantile="{q}"}}' for q in ("0.5", "0.9", "0.99")} <= samples.keys()
    for name in BASIC:
        assert f'{name}{{quantile="0.5"}}' in samples and f'{name}{{quantile="0.9"}}' \
            not in samples
    for name in COUNTERS:
        assert name in samples and f"{name}_total" not in samples
    assert PROCESS <= set(types)


def test_values_follow_the_server(metrics_server) -> None:
    server, port = metrics_server
    before = _samples(_scrape(port))
    client = KazooClient(hosts=server.hosts, timeout=15)
    client.start(timeout=30)
    try:
        for i in range(3):
            client.create(f"/prom-{i}", b"12345")
        client.get("/prom-0", watch=lambda event: None)
        client.create("/prom-eph", ephemeral=True)
        after = _samples(_scrape(port))
    finally:
        client.stop()
        client.close()
    assert after["znode_count"] == before["znode_count"] + 4
    assert after["ephemerals_count"] == before["ephemerals_count"] + 1
    assert after["watch_count"] >= 1 and after["num_alive_connections"] >= 1
    assert after["updatelatency_count"] >= before["updatelatency_count"] + 4
    assert after["readlatency_count"] >= before["readlatency_count"] + 1
    assert after["packets_received"] > before["packets_received"]
    assert after["bytes_received_count"] > before["bytes_received_count"]
    assert after["approximate_data_size"] >= before["approximate_data_size"] + 15
    assert after["last_client_response_size"] > 0 and after["uptime"] > 0


def test_only_metrics_path_is_served(metrics_server) -> None:
    _, port = metrics_server
    assert asyncio.run(_get(port, "/"))[0] == 404


def test_zoo_cfg_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nmetricsProvider.className={PROVIDER}\n"
                   "metricsProvider.httpPort=7001\nmetricsProvider.httpHost=127.0.0.1\n"
                   "metricsProvider.exportJvmInfo=false\n")
    loaded = load_config(str(cfg))
    assert loaded.metrics_provider_class == PROVIDER
    assert loaded.metrics_provider_config == {"httpPort": "7001", "httpHost": "127.0.0.1",
                                              "exportJvmInfo": "false"}
    assert not any(k.startswith("zookeeper.metricsProvider") for k in loaded.props)


def test_other_providers_and_a_busy_port() -> None:
    with ZookapterServer(metrics_provider_class="com.example.OtherProvider") as server:
        assert server.server is not None and server.server.metrics_endpoint is None
    port = _free_port()
    with ZookapterServer(metrics_provider_class=PROVIDER,
                         metrics_provider_config={"httpPort": str(port), "httpHost": HOST,
                                                  "exportJvmInfo": "false"}) as first:
        assert first.server is not None and first.server.metrics_endpoint is not None
        assert "process_open_fds" not in _types(_scrape(port))
        second = ZookapterServer(metrics_provider_class=PROVIDER,
                                 metrics_provider_config={"httpPort": str(port),
                                                          "httpHost": HOST})
        with pytest.raises(Exception, match="Cannot boot MetricsProvider"):
            second.start()
        second.stop()

"""Prometheus /metrics on ensemble members (zoo.cfg's metricsProvider.* keys, as ZooKeeper):
every member of a 3-member zookapter ensemble serves its own endpoint, with the server gauges
of test_prometheus.py plus the quorum ones ZooKeeper's roles register (quorum_size on every
member; learners and synced_followers on the leader), and follows the data."""

from __future__ import annotations

import urllib.request

from zookapter.client import ZooKeeperClient

from ensemble import Ensemble, wait_for
from oracle import _free_port

PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
WAIT_S = 60.0


class MetricsEnsemble(Ensemble):
    """An Ensemble whose members each export /metrics on a port of their own."""

    def prepare(self) -> None:
        super().prepare()
        self.metrics_ports = {sid: _free_port() for sid in self.peers}
        for sid, peer in self.peers.items():
            with open(peer.cfg_path, "a", encoding="utf-8") as f:
                f.write(f"metricsProvider.className={PROVIDER}\n"
                        f"metricsProvider.httpHost=127.0.0.1\n"
                        f"metricsProvider.httpPort={self.metrics_ports[sid]}\n")

    def scrape(self, sid: int) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_ports[sid]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = reply.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                samples[key] = float(value)
        return samples


def test_every_member_exports_its_metrics() -> None:
    with MetricsEnsemble(3, kinds="zzz") as e:
        leader = e.wait_for_quorum(WAIT_S)
        client = ZooKeeperClient(e.hosts(sorted(e.peers)), timeout=15.0)
        client.start(WAIT_S)
        try:
            for i in range(5):
                client.create(f"/metrics-{i}", b"x")
            client.sync("/")
        finally:
            client.close()

        def counted() -> bool:
            return all(e.scrape(sid).get("znode_count", 0) >= 5 + 2 for sid in e.peers)
        wait_for(counted, WAIT_S, "znode_count on every member", e.peers.values())
        for sid in e.peers:
            samples = e.scrape(sid)
            assert samples["quorum_size"] == 3.0
            assert "packets_received" in samples and "process_cpu_seconds_total" in samples
            if sid == leader:
                assert samples["learners"] == 2.0 and samples["synced_followers"] == 2.0
            else:
                assert "learners" not in samples

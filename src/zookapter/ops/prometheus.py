"""Prometheus metrics, as ZooKeeper 3.6+'s PrometheusMetricsProvider exports them.

Enabled by `metricsProvider.className=org.apache.zookeeper.metrics.prometheus.
PrometheusMetricsProvider` in zoo.cfg; `metricsProvider.httpHost` (0.0.0.0) and
`metricsProvider.httpPort` (7000) place the `/metrics` endpoint. `exportJvmInfo` (on by
default) adds the process_* families that Java's client also exports; there is no JVM to
describe beyond that.

A custom prometheus_client collector reads the live server at scrape time, on the server's
event loop: the gauges ZooKeeperServer registers (znode_count, watch_count, latency, ...),
every ServerMetrics counter, and the summaries (quantile 0.5 for basic ones; 0.5, 0.9 and
0.99 for advanced ones such as readlatency, as ZooKeeper configures them). The text is
Prometheus format 0.0.4 written the way ZooKeeper's simpleclient 0.9 writes it: a counter's
sample carries the family name (`bytes_received_count`, not `..._total`), so dashboards
built for ZooKeeper find the same series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from . import serverinfo as info
from .http import HttpListener, StartupError
from .metrics import (
    ADVANCED_SUMMARIES,
    BASIC_SUMMARIES,
    PROMETHEUS_ADVANCED_QUANTILES,
    PROMETHEUS_BASIC_QUANTILES,
    Summary,
)

if TYPE_CHECKING:
    from aiohttp import web

    from ..server.standalone import StandaloneServer

log = logging.getLogger("zookapter.metrics")

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
# Providers that mean "no HTTP endpoint": ZooKeeper's default and its null provider.
BUILTIN_PROVIDERS = ("org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
                     "org.apache.zookeeper.metrics.impl.NullMetricsProvider")
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 7000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsProviderError(StartupError):
    """The metrics provider could not start (ZooKeeper: "Cannot boot MetricsProvider")."""

    exit_code = 1


class ZooKeeperCollector(Collector):
    """Reads one server's gauges, counters and summaries when Prometheus scrapes."""

    def __init__(self, server: StandaloneServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        if self.server.core is None:
            return
        for name, value in info.gauges(self.server):
            yield _single(name, "gauge", value)
        metrics = self.server.core.metrics
        for name, count in metrics.counters.items():
            yield _single(name, "counter", count)
        for names, quantiles in ((BASIC_SUMMARIES, PROMETHEUS_BASIC_QUANTILES),
                                 (ADVANCED_SUMMARIES, PROMETHEUS_ADVANCED_QUANTILES)):
            for name in names:
                yield _summary(name, metrics.summaries[name], quantiles)


def _single(name: str, kind: str, value: float) -> Metric:
    metric = Metric(name, name, kind)
    metric.add_sample(name, {}, float(value))
    return metric


def _summary(name: str, summary: Summary, quantiles: tuple[float, ...]) -> Metric:
    metric = Metric(name, name, "summary")
    for q, v in zip(quantiles, summary.quantiles(quantiles), strict=True):
        metric.add_sample(name, {"quantile": floatToGoString(q)}, float(v))
    metric.add_sample(name + "_count", {}, float(summary.count))
    metric.add_sample(name + "_sum", {}, float(summary.total))
    return metric


def exposition(families: Iterable[Metric]) -> str:
    """Prometheus text format 0.0.4. Unlike prometheus_client.generate_latest, a counter
    keeps its own sample names (ZooKeeper's simpleclient 0.9 adds no `_total`); a family
    whose samples all end in `_total` (process_cpu_seconds_total) is named after them."""
    out: list[str] = []
    for metric in families:
        name = metric.name
        if metric.type == "counter" and metric.samples and all(
                s.name == name + "_total" for s in metric.samples):
            name += "_total"
        kind = "untyped" if metric.type == "unknown" else metric.type
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for s in metric.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels.items())
            out.append(f"{s.name}{{{labels}}} " if labels else f"{s.name} ")
            out.append(floatToGoString(s.value) + "\n")
    return "".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class PrometheusEndpoint:
    """GET /metrics on httpHost:httpPort, answered from the server's event loop."""

    def __init__(self, server: StandaloneServer, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, export_process_info: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ZooKeeperCollector(server))
        if export_process_info:
            from prometheus_client import ProcessCollector
            ProcessCollector(registry=self.registry)
        self.host = host
        self.listener = HttpListener(self._app(), host, port)

    @property
    def port(self) -> int | None:
        return self.listener.port

    def _app(self) -> web.Application:
        from aiohttp import web
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web
        body = exposition(self.registry.collect())
        return web.Response(body=body.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        try:
            port = await self.listener.start()
        except OSError as e:
            raise MetricsProviderError(
                f"Cannot boot MetricsProvider {PROMETHEUS_PROVIDER}: cannot start /metrics "
                f"server on {self.host}:{self.listener.requested_port}: {e}") from e
        log.info("Starting /metrics HTTP endpoint at host: %s, port: %d", self.host, port)

    async def stop(self) -> None:
        await self.listener.stop()


def metrics_endpoint_for(server: StandaloneServer) -> PrometheusEndpoint | None:
    """The /metrics endpoint zoo.cfg asks for, or None (no provider, or the default one)."""
    cfg = server.config
    provider = cfg.metrics_provider_class
    if not provider or provider in BUILTIN_PROVIDERS:
        return None
    if provider != PROMETHEUS_PROVIDER:
        log.warning("ignoring metricsProvider.className=%s: only %s is implemented",
                    provider, PROMETHEUS_PROVIDER)
        return None
    conf = cfg.metrics_provider_config
    try:
        port = int(conf.get("httpPort", str(DEFAULT_PORT)))
    except ValueError:
        raise MetricsProviderError(f"metricsProvider.httpPort: not a number: "
                                   f"{conf.get('httpPort')!r}") from None
    export = conf.get("exportJvmInfo", "true").strip().lower() == "true"
    return PrometheusEndpoint(server, conf.get("httpHost", DEFAULT_HOST), port, export)

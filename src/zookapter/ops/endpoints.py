"""The HTTP endpoints a server runs beside its client port: the Prometheus `/metrics`
endpoint (when zoo.cfg names the provider) and the AdminServer. One start/stop for the
standalone server and ensemble members: ZooKeeper exits when either cannot start, so a
failure stops the whole server and is raised."""

from __future__ import annotations

from typing import Any

from .adminserver import admin_server_for


async def start_endpoints(server: Any) -> None:
    """Start `server.metrics_endpoint` and `server.admin` as its config asks; on failure,
    `await server.stop()` and re-raise."""
    try:
        if server.config.metrics_provider_class:
            from .prometheus import metrics_endpoint_for  # prometheus_client
            server.metrics_endpoint = metrics_endpoint_for(server)
        if server.metrics_endpoint is not None:
            await server.metrics_endpoint.start()
        server.admin = admin_server_for(server)
        if server.admin is not None:
            await server.admin.start()
    except BaseException:
        await server.stop()
        raise


async def stop_endpoints(server: Any) -> None:
    for endpoint in (server.admin, server.metrics_endpoint):
        if endpoint is not None:
            await endpoint.stop()
    server.admin = server.metrics_endpoint = None

"""The ERP connector's own small HTTP server: /livez, /readyz and /metrics.

Ready once the group gave the connector its partitions (maybe none) and the broker
answers. Whether the ERP answers is reported, but never makes the connector unready: it
retries an ERP that is down, and a restart would not bring the ERP back.
"""

from __future__ import annotations

from aiohttp import web
from mode import Service

from connectors.erp.metrics import connector_registry
from connectors.erp.sink import ErpSink
from streams.ops.health import (
    LIVENESS_PATH,
    READINESS_PATH,
    Check,
    HealthMonitor,
    aiokafka_view,
    broker_request,
    verdict,
)
from streams.ops.metrics import CONTENT_TYPE, METRICS_PATH, render
from streams.ops.settings import Settings


def connector_readiness(sink: ErpSink, monitor: HealthMonitor) -> list[Check]:
    owned = sink.snapshot()["owned_partitions"]
    erp = {None: "no ERP call yet", True: "the last call reached the ERP"}.get(
        sink.erp_up, "the last call did not reach the ERP"
    )
    return [
        Check(
            "assignment",
            sink.joined,
            f"{len(owned)} partitions owned"
            if sink.joined
            else f"waiting for the group {sink.group}",
        ),
        monitor.broker.check(),
        Check("erp", sink.erp_up is not False, erp, required=False),
    ]


class ConnectorWeb(Service):
    """Serves the sink's health and metrics on connector_web_host:connector_web_port; start
    it beside the sink (the sink is not its dependency, so either can run alone)."""

    def __init__(self, settings: Settings, sink: ErpSink) -> None:
        super().__init__()
        self._host = settings.connector_web_host
        self.port = settings.connector_web_port
        self._sink = sink
        self.monitor = HealthMonitor(
            [aiokafka_view(sink.group, sink.consumer)],
            lambda: broker_request(sink.consumer()),
            stall_seconds=settings.health_stall_seconds,
            loop_blocked_seconds=settings.health_loop_blocked_seconds,
        )
        self.add_dependency(self.monitor)
        self._registry = connector_registry(sink, lambda: self.monitor.samples)
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get(LIVENESS_PATH, self._livez)
        app.router.add_get(READINESS_PATH, self._readyz)
        app.router.add_get(METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self.port).start()

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _livez(self, request: web.Request) -> web.Response:
        status, body = verdict(self.monitor.liveness())
        return web.json_response(body, status=status)

    async def _readyz(self, request: web.Request) -> web.Response:
        status, body = verdict(connector_readiness(self._sink, self.monitor))
        return web.json_response(body, status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self._registry), headers={"Content-Type": CONTENT_TYPE})

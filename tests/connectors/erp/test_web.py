"""The ERP connector's /readyz and /metrics after real commands ran in the real Tryton."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from connectors.erp.sink import ErpSink
from connectors.erp.web import ConnectorWeb
from streams.health import LIVENESS_PATH, READINESS_PATH
from streams.settings import Settings
from streams.topics import ERP_COMMANDS, TopicCatalog
from tests.connectors.erp.records import publish, sample_commands, wait_results
from tests.streams.test_metrics import get, samples
from tests.support import RunningService, free_port, wait_for


def serve(running: RunningService[ErpSink], settings: Settings) -> ConnectorWeb:
    """The connector's web server beside the running sink, on the sink's event loop."""

    async def start() -> ConnectorWeb:
        web = ConnectorWeb(settings, running.service)
        await web.start()
        return web

    return running.run(start())


def readiness(port: int) -> tuple[int, dict[str, Any]]:
    status, body = get(port, READINESS_PATH)
    return status, json.loads(body)


def test_metrics_count_the_commands_run_in_the_erp_and_show_it_up(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
) -> None:
    commands = sample_commands(seed=521, orders=1)
    ids = [c.command_id for c in commands]
    settings = connector_settings.model_copy(update={"connector_web_port": free_port()})
    running = start_sink()
    web = serve(running, settings)
    try:
        port = settings.connector_web_port
        wait_for(lambda: readiness(port)[0] == 200, timeout=30, what="the connector ready")
        publish(connector_settings, erp_topics, list(commands))
        answered = wait_results(connector_settings, erp_topics, ids)
        assert all(r[0]["status"] == "SUCCEEDED" for r in answered.values())
        status, body = readiness(port)
        assert status == 200
        assert body["checks"]["erp"]["ok"] and body["checks"]["assignment"]["ok"]
        assert get(port, LIVENESS_PATH)[0] == 200

        metrics = samples(port)

        def value(name: str, **labels: str) -> float | None:
            return metrics.get((name, frozenset(labels.items())))

        for kind, n in Counter(c.kind.value for c in commands).items():
            labels = {"target": "tryton", "kind": kind}
            assert value("erpbridge_connector_commands_total", **labels, outcome="succeeded") == n
            # At least one attempt each (a shipment may retry until its sale is there).
            count = value("erpbridge_connector_erp_request_seconds_count", **labels)
            assert count is not None and count >= n
        assert value("erpbridge_connector_erp_up", target="tryton") == 1
        assert value("erpbridge_connector_in_flight", target="tryton") == 0
        topic = erp_topics.physical(ERP_COMMANDS)
        group = running.service.group
        lag = wait_for(
            lambda: (
                {
                    int(dict(labels)["partition"]): v
                    for (name, labels), v in samples(port).items()
                    if name == "erpbridge_consumer_lag"
                    and dict(labels) | {"partition": "*"}
                    == {"group": group, "topic": topic, "partition": "*"}
                }
                or None
            ),
            timeout=10,
            what="the connector's lag per partition",
        )
        assert lag == {p: 0 for p in range(erp_topics.partitions(ERP_COMMANDS))}
    finally:
        running.run(web.stop())

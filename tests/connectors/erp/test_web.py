"""The ERP connector's /readyz and /metrics after real commands ran in the real Tryton."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from connectors.erp.adapters import adapter_for
from connectors.erp.sink import ErpSink
from connectors.erp.web import ConnectorWeb
from streams.contracts.topics import ERP_COMMANDS, TopicCatalog
from streams.local.kafka import running_broker
from streams.ops.health import LIVENESS_PATH, READINESS_PATH
from streams.ops.metrics import CONNECTOR_METRICS
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from tests.connectors.erp.records import CODEC, publish, sample_commands, wait_results
from tests.streams.test_metrics import get, samples, scraped_families
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
        assert scraped_families(port) == set(CONNECTOR_METRICS)
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


def test_a_lost_broker_makes_the_connector_unready_and_it_still_stops(
    connector_settings: Settings,
) -> None:
    """On a broker of its own, which then goes away: /readyz turns 503 naming the broker
    while the partitions stay assigned, /livez stays 200 (a restart would not bring the
    broker back), and the connector still stops, each shutdown step bounded."""
    with running_broker() as broker:
        assert broker.stop is not None, "the test needs a broker this process runs"
        settings = connector_settings.model_copy(
            update={
                "kafka_bootstrap_servers": broker.bootstrap_servers,
                "connector_web_port": free_port(),
            }
        )
        catalog = TopicCatalog.from_settings(settings)
        ensure_topics(settings.confluent_config(), catalog)
        running = RunningService(lambda: ErpSink(settings, catalog, CODEC, adapter_for(settings)))
        web = serve(running, settings)
        port = settings.connector_web_port
        wait_for(lambda: readiness(port)[0] == 200, timeout=30, what="the connector ready")

        broker.stop()
        _, body = wait_for(
            lambda: (answer := readiness(port))[0] == 503 and answer,
            timeout=30,
            what="the connector unready",
        )
        assert not body["checks"]["broker"]["ok"], body
        assert body["checks"]["assignment"]["ok"], body
        assert get(port, LIVENESS_PATH)[0] == 200

        # Raises if the stop fails or takes over 60 s. Before each step was bounded,
        # aiokafka's closing fetcher cut it short (CancelledError), or a last commit waited
        # for the lost coordinator without end.
        running.run(web.stop())
        running.stop()

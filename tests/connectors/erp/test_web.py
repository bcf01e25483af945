"""The ERP connector's /readyz and /metrics after real commands ran in the real Tryton."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from connectors.erp.adapters import adapter_for
from connectors.erp.sink import ErpSink
from connectors.erp.web import ConnectorWeb
from streams.contracts.topics import ERP_COMMANDS, TopicCatalog
from streams.domain.commands import Kind
from streams.local.kafka import running_broker
from streams.local.tryton import Tryton
from streams.ops.health import LIVENESS_PATH, READINESS_PATH
from streams.ops.metrics import CONNECTOR_METRICS
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from tests.connectors.erp.proxy import Answer, ErpProxy, Request, serving
from tests.connectors.erp.records import CODEC, publish, sample_commands, wait_results
from tests.streams.topology.test_metrics import get, samples, scraped_families
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


class FailFirst:
    """Answers 500 to the first request that names `marker`, as an ERP failing once would."""

    def __init__(self, marker: str) -> None:
        self._marker = marker.encode()
        self._failed = False

    def __call__(self, request: Request) -> Answer | None:
        if self._failed or self._marker not in request.body:
            return None
        self._failed = True
        return Answer(500)


def test_metrics_hold_what_a_known_run_did_in_the_erp(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    tryton: Tryton,
) -> None:
    """Sales orders and journal entries that succeed; the first ERP request of one sale
    answered 500 by a proxy in front of Tryton (one retry); a sale for a customer Tryton does
    not know (failed there); an unbalanced entry (refused before sending). /metrics holds
    exactly those counts, and the ERP calls it times per kind are the attempts erp.results
    reports."""
    good = [
        c
        for c in sample_commands(seed=521, orders=2)
        if c.kind in (Kind.CREATE_SALES_ORDER, Kind.POST_JOURNAL_ENTRY)
    ]
    sale = next(c for c in good if c.kind is Kind.CREATE_SALES_ORDER)
    entry_command = next(c for c in good if c.kind is Kind.POST_JOURNAL_ENTRY)
    nobody = replace(
        sale,
        command_id="ORD-METRICS-NOBODY/sales-order/1",
        body={
            **sale.body,
            "order_id": "ORD-METRICS-NOBODY",
            "customer": {**sale.body["customer"], "customer_id": "CUST-NOBODY"},
        },
    )
    entry = dict(entry_command.body["entries"][0])
    entry["entry_id"] = "metrics-unbalanced"
    entry["lines"] = [dict(line) for line in entry["lines"]]
    entry["lines"][0]["debit"] += Decimal("1.00")
    unbalanced = replace(
        entry_command, command_id="metrics-unbalanced/post", body={"entries": [entry]}
    )
    commands = [*good, nobody, unbalanced]
    ids = [c.command_id for c in commands]
    settings = connector_settings.model_copy(update={"connector_web_port": free_port()})
    with serving(ErpProxy(tryton.url, FailFirst(sale.command_id))) as proxy:
        running = start_sink(erp_url=proxy.url)
        web = serve(running, settings)
        try:
            port = settings.connector_web_port
            wait_for(lambda: readiness(port)[0] == 200, timeout=30, what="the connector ready")
            publish(connector_settings, erp_topics, list(commands))
            answered = wait_results(connector_settings, erp_topics, ids)
            assert [status for _, status in proxy.traffic.refusals] == [500]
            status, body = readiness(port)
            assert status == 200
            assert body["checks"]["erp"]["ok"] and body["checks"]["assignment"]["ok"]
            assert get(port, LIVENESS_PATH)[0] == 200
            metrics = samples(port)
            assert scraped_families(port) == set(CONNECTOR_METRICS)
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

    def value(name: str, **labels: str) -> float | None:
        return metrics.get((name, frozenset(labels.items())))

    target = {"target": "tryton"}
    results = [r for c in ids for r in answered[c]]
    assert len(results) == len(ids)
    outcomes = Counter((r["kind"], r["status"].lower()) for r in results)
    assert outcomes == {
        ("CreateSalesOrder", "succeeded"): sum(c.kind is Kind.CREATE_SALES_ORDER for c in good),
        ("CreateSalesOrder", "failed"): 1,
        ("PostJournalEntry", "succeeded"): sum(c.kind is Kind.POST_JOURNAL_ENTRY for c in good),
        ("PostJournalEntry", "failed"): 1,
    }
    counted = {
        (dict(labels)["kind"], dict(labels)["outcome"]): n
        for (name, labels), n in metrics.items()
        if name == "erpbridge_connector_commands_total"
    }
    assert counted == outcomes
    assert {
        dict(labels)["reason"]: n
        for (name, labels), n in metrics.items()
        if name == "erpbridge_connector_retries_total"
    } == {"http-500": 1}
    # One timed ERP call per attempt; the unbalanced entry was refused before any.
    attempts: Counter[str] = Counter()
    for r in results:
        attempts[r["kind"]] += r["attempts"]
    assert attempts["CreateSalesOrder"] == outcomes["CreateSalesOrder", "succeeded"] + 2
    for kind, n in attempts.items():
        assert value("erpbridge_connector_erp_request_seconds_count", **target, kind=kind) == n
    assert value("erpbridge_connector_erp_up", **target) == 1
    assert value("erpbridge_connector_in_flight", **target) == 0


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

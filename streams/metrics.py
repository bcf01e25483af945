"""Prometheus metrics of the stream worker, and what the worker and the ERP connector share.

Counts come from what the process keeps anyway (the event accounting, the dispatcher's
figures, the results agent's answers, the alert tables), read when Prometheus scrapes:
custom collectors, not counters kept twice. Histograms are observed where the time passes
(the dispatcher). Gauges of state (open alerts, lag) describe only what this process owns.

Each process has its own registry (`prometheus_client.CollectorRegistry`), so a worker
and a connector in one process (`erpbridge demo`) never register a name twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from streams.accounting import EventAccounting, Later, Outcome
from streams.domain import statejson
from streams.domain.alerts import AlertBook
from streams.health import PartitionSample

if TYPE_CHECKING:
    from streams.agents.dispatch import Dispatcher
    from streams.agents.results import ResultsAgent
    from streams.tables import Tables

# A `<histogram>_created` gauge per label set says nothing Prometheus does not know.
disable_created_metrics()  # type: ignore[no-untyped-call]

METRICS_PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CONSUMER_LAG = "erpbridge_consumer_lag"
WORKER_METRICS = (
    "erpbridge_events_consumed_total",
    "erpbridge_events_applied_total",
    "erpbridge_events_duplicate_total",
    "erpbridge_events_dead_lettered_total",
    "erpbridge_erp_commands_emitted_total",
    "erpbridge_erp_commands_acknowledged_total",
    "erpbridge_erp_commands_failed_total",
    "erpbridge_dispatch_queue_depth",
    "erpbridge_dispatch_wait_seconds",
    "erpbridge_erp_calls_saved_total",
    "erpbridge_reconciliation_alerts_open",
    "erpbridge_reconciliation_alert_oldest_open_seconds",
    "erpbridge_event_to_command_seconds",
    CONSUMER_LAG,
)
CONNECTOR_METRICS = (
    "erpbridge_connector_commands_total",
    "erpbridge_connector_retries_total",
    "erpbridge_connector_erp_request_seconds",
    "erpbridge_connector_in_flight",
    "erpbridge_connector_erp_up",
    CONSUMER_LAG,
)

# Seconds: from a few milliseconds (a free limiter) to an hour (a backlog behind a slow ERP).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def exported_metric_names() -> frozenset[str]:
    """Every metric family erpbridge exports, named as a scrape shows them (counters with
    their `_total`; histograms by their base name)."""
    return frozenset(WORKER_METRICS + CONNECTOR_METRICS)


def counter(name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    # prometheus_client adds `_total` to a counter family's name itself.
    return CounterMetricFamily(name.removesuffix("_total"), documentation, labels=labels)


def consumer_lag(samples: Mapping[str, Iterable[PartitionSample]]) -> GaugeMetricFamily:
    """Per consumer group of this process, highwater - position of each partition it owns."""
    family = GaugeMetricFamily(
        CONSUMER_LAG,
        "Records on the broker not yet fetched, per partition this process owns.",
        labels=["group", "topic", "partition"],
    )
    for group, partitions in samples.items():
        for s in partitions:
            if s.lag is not None:
                family.add_metric([group, s.topic, str(s.partition)], s.lag)
    return family


class _Collect:
    """A collector from a function, for a registry."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


def registry_of(*collects: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collect in collects:
        registry.register(_Collect(collect))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def event_families(
    accounting: EventAccounting, dispatcher_dead_letters: Mapping[tuple[str, str], int]
) -> Iterator[Metric]:
    """Per topic (logical name): consumed, applied (at once or after waiting), duplicate and
    dead-lettered by reason (at once or after waiting); plus the dispatcher's dead letters,
    `dispatcher_dead_letters` by (topic, reason)."""
    consumed = counter("erpbridge_events_consumed_total", "Events consumed, per topic.", ["topic"])
    applied = counter(
        "erpbridge_events_applied_total",
        "Events applied to state, at once or after waiting, per topic.",
        ["topic"],
    )
    duplicate = counter(
        "erpbridge_events_duplicate_total", "Events seen before and skipped, per topic.", ["topic"]
    )
    dead = counter(
        "erpbridge_events_dead_lettered_total",
        "Events sent to the topic's dead-letter topic, per topic and reason.",
        ["topic", "reason"],
    )
    for topic, account in sorted(accounting.topics().items()):
        consumed.add_metric([topic], account.consumed)
        applied.add_metric(
            [topic], account.outcomes[Outcome.APPLIED] + account.later[Later.APPLIED]
        )
        duplicate.add_metric([topic], account.outcomes[Outcome.DUPLICATE])
        for reason, n in sorted(account.dead_letter_reasons.items()):
            dead.add_metric([topic, reason], n)
    for (topic, reason), n in sorted(dispatcher_dead_letters.items()):
        dead.add_metric([topic, reason], n)
    return iter((consumed, applied, duplicate, dead))


def dispatch_families(dispatcher: Dispatcher, results: ResultsAgent) -> Iterator[Metric]:
    emitted = counter(
        "erpbridge_erp_commands_emitted_total",
        "ERP commands the dispatcher published to erp.commands.",
        ["target", "kind"],
    )
    acknowledged = counter(
        "erpbridge_erp_commands_acknowledged_total",
        "ERP results read back from erp.results that succeeded.",
        ["target", "kind"],
    )
    failed = counter(
        "erpbridge_erp_commands_failed_total",
        "ERP results read back from erp.results that failed.",
        ["target", "kind"],
    )
    depth = GaugeMetricFamily(
        "erpbridge_dispatch_queue_depth",
        "ERP commands waiting for the rate limiter in this worker.",
        labels=["target"],
    )
    saved = counter("erpbridge_erp_calls_saved_total", "ERP calls saved by coalescing.", ["target"])
    for target, figures in sorted(dispatcher.figures().items()):
        for sent_kind, n in sorted(figures.emitted.items()):
            emitted.add_metric([target, sent_kind.value], n)
        depth.add_metric([target], figures.waiting)
        saved.add_metric([target], figures.saved)
    for (target, kind, succeeded), n in sorted(results.answers.items()):
        (acknowledged if succeeded else failed).add_metric([target, kind], n)
    yield from (emitted, acknowledged, failed, depth, saved)
    yield from dispatcher.wait_seconds.collect()
    yield from dispatcher.event_to_command_seconds.collect()


def alert_families(tables: Tables, now_ms: Callable[[], int]) -> Iterator[Metric]:
    """Open alerts by type in the alert tables' partitions this worker actively owns, and
    the age of the oldest, by the topology's clock."""
    open_alerts = GaugeMetricFamily(
        "erpbridge_reconciliation_alerts_open",
        "Open reconciliation alerts in the partitions this worker owns, per type.",
        labels=["type"],
    )
    oldest_age = GaugeMetricFamily(
        "erpbridge_reconciliation_alert_oldest_open_seconds",
        "Age of the oldest open reconciliation alert in the partitions this worker owns.",
        labels=["type"],
    )
    count: dict[str, int] = {}
    oldest: dict[str, int] = {}
    for table in (tables.order_alerts, tables.stock_alerts, tables.command_alerts):
        # Faust iterates the active partitions' stores only: standbys are not counted.
        for data in table.values():
            for alert in AlertBook.from_json(statejson.loads(data)).alerts.values():
                if alert.resolved_ms is None:
                    count[alert.alert_type] = count.get(alert.alert_type, 0) + 1
                    seen = oldest.get(alert.alert_type, alert.first_seen_ms)
                    oldest[alert.alert_type] = min(seen, alert.first_seen_ms)
    now = now_ms()
    for alert_type, n in sorted(count.items()):
        open_alerts.add_metric([alert_type], n)
        oldest_age.add_metric([alert_type], max(0, now - oldest[alert_type]) / 1000)
    return iter((open_alerts, oldest_age))


def worker_registry(
    accounting: EventAccounting,
    dispatcher: Dispatcher,
    results: ResultsAgent,
    tables: Tables,
    now_ms: Callable[[], int],
    lag: Callable[[], Mapping[str, Iterable[PartitionSample]]],
) -> CollectorRegistry:
    def events() -> Iterator[Metric]:
        return event_families(accounting, dispatcher.dead_letters())

    def dispatch() -> Iterator[Metric]:
        return dispatch_families(dispatcher, results)

    def alerts() -> Iterator[Metric]:
        return alert_families(tables, now_ms)

    def lags() -> Iterator[Metric]:
        yield consumer_lag(lag())

    return registry_of(events, dispatch, alerts, lags)

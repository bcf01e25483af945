"""Prometheus collectors of the stream worker: counts read from what the topology keeps
anyway (the event accounting, the dispatcher's figures, the results agent's answers, the
alert tables) when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from streams.domain.statecodec import decode_alerts
from streams.ops.health import PartitionSample
from streams.ops.metrics import consumer_lag, counter, registry_of
from streams.topology.accounting import EventAccounting, Later, Outcome

if TYPE_CHECKING:
    from streams.topology.agents.dispatch import Dispatcher
    from streams.topology.agents.results import ResultsAgent
    from streams.topology.tables import Tables


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
    for table in tables.alert_tables:
        # Faust iterates the active partitions' stores only: standbys are not counted.
        for data in table.values():
            for alert in decode_alerts(data).alerts.values():
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

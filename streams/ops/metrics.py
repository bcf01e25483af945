"""What the worker's, the ERP connector's and the webhooks connector's Prometheus metrics
share: the exported names, the text format, consumer lag, and registries of custom
collectors.

Counts come from what each process keeps anyway, read when Prometheus scrapes: custom
collectors, not counters kept twice (the worker's are in streams.topology.metrics).

Each process has its own registry (`prometheus_client.CollectorRegistry`), so a worker
and a connector in one process (`erpbridge demo`) never register a name twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from streams.ops.health import PartitionSample

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

WEBHOOK_METRICS = (
    "erpbridge_webhooks_requests_total",
    "erpbridge_webhooks_events_total",
    "erpbridge_webhooks_reordered_total",
    "erpbridge_webhooks_request_seconds",
)

# Seconds: from a few milliseconds (a free limiter) to an hour (a backlog behind a slow ERP).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def exported_metric_names() -> frozenset[str]:
    """Every metric family erpbridge exports, named as a scrape shows them (counters with
    their `_total`; histograms by their base name)."""
    return frozenset(WORKER_METRICS + CONNECTOR_METRICS + WEBHOOK_METRICS)


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

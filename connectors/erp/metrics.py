"""Prometheus metrics of the ERP connector, read from the sink when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from connectors.erp.sink import ErpSink
from streams.ops.health import PartitionSample
from streams.ops.metrics import consumer_lag, counter, registry_of


def connector_families(sink: ErpSink) -> Iterator[Metric]:
    target = sink.target
    commands = counter(
        "erpbridge_connector_commands_total",
        "Commands the connector answered, by kind and outcome (succeeded, failed).",
        ["target", "kind", "outcome"],
    )
    for (kind, succeeded), n in sorted(sink.answered.items()):
        commands.add_metric([target, kind.value, "succeeded" if succeeded else "failed"], n)
    retries = counter(
        "erpbridge_connector_retries_total",
        "Attempts retried after a transient failure, by its code.",
        ["target", "reason"],
    )
    for reason, n in sorted(sink.retry_reasons.items()):
        retries.add_metric([target, reason], n)
    in_flight = GaugeMetricFamily(
        "erpbridge_connector_in_flight", "Commands running in the ERP now.", labels=["target"]
    )
    in_flight.add_metric([target], sink.running)
    up = GaugeMetricFamily(
        "erpbridge_connector_erp_up",
        "1 when the last ERP call reached the ERP, 0 when it did not (absent before the first).",
        labels=["target"],
    )
    if sink.erp_up is not None:
        up.add_metric([target], int(sink.erp_up))
    yield from (commands, retries, in_flight, up)
    yield from sink.request_seconds.collect()


def connector_registry(
    sink: ErpSink, lag: Callable[[], Mapping[str, Iterable[PartitionSample]]]
) -> CollectorRegistry:
    def families() -> Iterator[Metric]:
        return connector_families(sink)

    def lags() -> Iterator[Metric]:
        yield consumer_lag(lag())

    return registry_of(families, lags)

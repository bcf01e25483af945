"""The webhooks connector's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from streams.ops.metrics import LATENCY_BUCKETS

REQUESTS = "erpbridge_webhooks_requests"
EVENTS = "erpbridge_webhooks_events"
REORDERED = "erpbridge_webhooks_reordered"
SECONDS = "erpbridge_webhooks_request_seconds"


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            REQUESTS,
            "Webhook requests by route and outcome: published, ignored (a topic not ingested, "
            "an echo of erpbridge's own push), dead_lettered, unauthentic, rejected (4xx), "
            "unavailable (503, the broker did not confirm).",
            ["provider", "route", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            EVENTS,
            "Input events published, per input topic.",
            ["provider", "route", "topic"],
            registry=self.registry,
        )
        self.reordered = Counter(
            REORDERED,
            "Events older, by the provider's time, than one already delivered for their key.",
            ["provider", "route"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            SECONDS,
            "From the request's arrival to its answer.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

"""The worker's /readyz, /livez and /metrics on the real broker, and the metric names."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.contracts.codec import Codec
from streams.contracts.topics import AGENT_SOURCES, INVENTORY, ORDERS, PAYMENTS, TopicCatalog
from streams.ops.health import LIVENESS_PATH, READINESS_PATH
from streams.ops.metrics import METRICS_PATH, WORKER_METRICS
from streams.ops.settings import Settings
from tests.streams.topology.agents.test_intake import valid_records
from tests.support import STORE, WorkerProcess, wait_for


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape of /metrics, by name and labels."""
    status, body = get(port, METRICS_PATH)
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def scraped_families(port: int) -> set[str]:
    status, body = get(port, METRICS_PATH)
    assert status == 200
    return {
        f"{f.name}_total" if f.type == "counter" else f.name
        for f in text_string_to_metric_families(body.decode())
    }


def test_the_worker_is_ready_after_recovery_and_assignment_and_counts_what_it_consumed(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    worker = start_worker()
    answers: list[tuple[int, dict[str, Any]]] = []

    def ready() -> bool:
        status, body = get(worker.web_port, READINESS_PATH)
        answers.append((status, json.loads(body)))
        return status == 200

    wait_for(ready, timeout=60, what="the worker's /readyz to answer 200")
    # The web server answers before the worker has its partitions and tables: not ready yet.
    status, body = answers[0]
    assert status == 503, answers
    assert {"recovery", "assignment", "dispatch_assignment", "broker"} == set(body["checks"])
    assert not all(c["ok"] for c in body["checks"].values())
    assert all(c["ok"] for c in answers[-1][1]["checks"].values())
    assert get(worker.web_port, LIVENESS_PATH)[0] == 200

    codec = Codec(STORE)
    good = valid_records(codec, topics)
    bad = [b"\x07garbage that is no framing", b"\xc3\x01" + bytes(8) + b"\x02", b""]
    producer = Producer(settings.producer_config())
    for topic, key, value in good:
        producer.produce(topic, key=key, value=value)
    for i, value in enumerate(bad):
        producer.produce(topics.physical(ORDERS), key=f"bad-{i}".encode(), value=value)
    assert producer.flush(30) == 0

    def settled() -> bool:
        totals = worker.accounting()["totals"]
        return bool(
            totals["consumed"]
            == len(good) + len(bad)
            == totals["applied"] + totals["dead_lettered"]
        )

    wait_for(settled, timeout=60, what="every record consumed and accounted for")
    metrics = samples(worker.web_port)

    def value(name: str, **labels: str) -> float | None:
        return metrics.get((name, frozenset(labels.items())))

    assert value("erpbridge_events_consumed_total", topic=ORDERS) == 1 + len(bad)
    assert value("erpbridge_events_applied_total", topic=ORDERS) == 1
    for topic in (INVENTORY, PAYMENTS):
        assert value("erpbridge_events_consumed_total", topic=topic) == 1
        assert value("erpbridge_events_applied_total", topic=topic) == 1
        assert value("erpbridge_events_duplicate_total", topic=topic) == 0
    for reason in ("unknown-framing", "unknown-fingerprint", "empty"):
        assert value("erpbridge_events_dead_lettered_total", topic=ORDERS, reason=reason) == 1
    # Every family the worker declares shows, and no other (deploy/k8s reads the names).
    assert scraped_families(worker.web_port) == set(WORKER_METRICS)

    # Lag of every stream partition the worker owns (it owns them all), caught up.
    def lag() -> dict[tuple[str, int], float]:
        return {
            (dict(labels)["topic"], int(dict(labels)["partition"])): v
            for (name, labels), v in samples(worker.web_port).items()
            if name == "erpbridge_consumer_lag" and dict(labels)["group"] == settings.app_id
        }

    expected = {
        (topics.physical(name), p) for name in AGENT_SOURCES for p in range(topics.partitions(name))
    }
    lags = wait_for(
        lambda: (found := lag()) and set(found) == expected and found,
        timeout=30,
        what="lag of every owned partition",
    )
    assert set(lags.values()) == {0}

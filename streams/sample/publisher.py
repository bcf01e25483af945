"""The Kafka side of the sample: `erpbridge sample --format kafka` and `erpbridge demo` use it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import INPUTS, TopicCatalog
from streams.ops.settings import Settings
from streams.sample.generator import DEFAULT_START, Catalogue, generate

_MAX_REPORTED = 5


class PublishError(RuntimeError):
    """The sample could not be published, or the broker did not confirm every event."""

    def __init__(self, message: str, *, delivered: int = 0, failed: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.failed = failed


@dataclass
class Pacer:
    """Spaces events 1/rate seconds apart from the first one; rate 0 never waits.

    Due times are counted from the start rather than from the previous event, so a slow
    moment is caught up on instead of lowering the rate for good.
    """

    rate: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def delay(self, index: int) -> float:
        """Seconds until event `index` (counted from 0) is due; <= 0 when it is."""
        if self.rate <= 0:
            return 0.0
        return self.started + index / self.rate - self.clock()


@dataclass
class _Deliveries:
    delivered: int = 0
    errors: list[str] = field(default_factory=list)

    def report(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            key = (message.key() or b"").decode(errors="replace")
            self.errors.append(f"{message.topic()} key {key}: {error.str()}")


def publish_sample(
    settings: Settings,
    seed: int,
    orders: int,
    rate: float,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    *,
    start: datetime = DEFAULT_START,
    timeout: float = 60.0,
) -> int:
    """Publish `generate(seed, orders, Catalogue.default(), start)` to the input topics.

    `rate` is events per second (0: as fast as the broker takes them); `progress` gets the
    number of events the broker has confirmed so far, often; setting `stop` ends the run
    early. Returns the number of confirmed events, or raises PublishError if any failed.
    """
    catalog = TopicCatalog.from_settings(settings)
    physical = {name: catalog.physical(name) for name in INPUTS}
    codec = codec_from_settings(settings)
    producer = Producer(
        {
            **settings.producer_config(),
            # librdkafka then fails undelivered events itself, each with a delivery report.
            "message.timeout.ms": int(timeout * 1000),
        }
    )
    _require_topics(producer, list(physical.values()), timeout)
    deliveries = _Deliveries()
    pacer = Pacer(rate)
    sent = 0

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    for index, event in enumerate(generate(seed, orders, Catalogue.default(), start)):
        while (delay := pacer.delay(index)) > 0 and not stopped():
            producer.poll(min(delay, 0.1))
            if progress is not None:
                progress(deliveries.delivered)
        if stopped():
            break
        topic = physical[event.topic]
        value = codec.encode(event.schema_name, event.datum, topic=topic)
        while True:
            try:
                producer.produce(
                    topic, key=event.key.encode(), value=value, on_delivery=deliveries.report
                )
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.5)
        sent += 1
        producer.poll(0)
        if progress is not None:
            progress(deliveries.delivered)
    unconfirmed = producer.flush(timeout + 10)
    if progress is not None:
        progress(deliveries.delivered)
    failed = len(deliveries.errors) + unconfirmed
    if failed:
        details = deliveries.errors[:_MAX_REPORTED]
        if unconfirmed:
            details.append(f"{unconfirmed} still unconfirmed after {timeout + 10:.0f}s")
        raise PublishError(
            f"{failed} of {sent} events were not confirmed by the broker: " + "; ".join(details),
            delivered=deliveries.delivered,
            failed=failed,
        )
    return deliveries.delivered


def _require_topics(producer: Producer, topics: list[str], timeout: float) -> None:
    try:
        metadata = producer.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise PublishError(f"cannot reach Kafka: {exc}") from exc
    missing = [
        t for t in topics if t not in metadata.topics or metadata.topics[t].error is not None
    ]
    if missing:
        raise PublishError(
            f"topics {', '.join(missing)} do not exist; run `erpbridge topics create`"
        )

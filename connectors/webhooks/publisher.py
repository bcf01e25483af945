"""Records to Kafka, answered only once the broker confirmed them (or could not).

An idempotent producer with acks=all (Settings.producer_config). Each record's delivery
timeout is the webhook's acknowledgement timeout: a record the broker did not confirm in
time fails in librdkafka as well and is never written later, so the provider's retry (the
503 makes it retry) is the only copy that stays (one written after all, while in flight
when the time ran out, has the same event id and the topology drops it as a duplicate).
"""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaException

from streams.ops.async_producer import AsyncProducer
from streams.ops.records import Outgoing


class NotConfirmed(Exception):
    """The broker did not confirm every record in time: the webhook gets a 503."""


class Publisher:
    """The event loop's librdkafka producer (streams.ops.async_producer) with a webhook's
    deadline: `publish` returns once the broker confirmed every record, or raises
    NotConfirmed."""

    def __init__(self, config: dict[str, str | bool], ack_timeout: float) -> None:
        self._ack_timeout = ack_timeout
        self._config = {
            **config,
            "message.timeout.ms": int(ack_timeout * 1000),
            # A webhook is one small request: send at once rather than wait for company.
            "linger.ms": 1,
        }
        self._producer: AsyncProducer | None = None

    def start(self) -> None:
        self._producer = AsyncProducer(self._config)

    def stop(self) -> None:
        """Blocks: call it off the event loop."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(self._ack_timeout)

    @property
    def _live(self) -> AsyncProducer:
        if self._producer is None:
            raise ConnectionError("the publisher is stopped")
        return self._producer

    def metadata(self, timeout: float) -> None:
        """A metadata request (a probe of the broker); ConnectionError if none answered."""
        self._live.metadata(timeout)

    async def publish(self, records: list[Outgoing]) -> None:
        try:
            sent = self._live.send(
                (r.topic, r.key, r.value, r.partition, list(r.headers), False) for r in records
            )
            # librdkafka fails a record itself at the timeout; the margin covers its timer.
            await asyncio.wait_for(sent.confirmed(), self._ack_timeout + 1.0)
        except (KafkaException, ConnectionError) as error:
            raise NotConfirmed(f"the broker did not confirm: {error}") from None
        except TimeoutError:
            raise NotConfirmed(f"the broker did not confirm within {self._ack_timeout}s") from None

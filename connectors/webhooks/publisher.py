"""Records to Kafka, answered only once the broker confirmed them (or could not).

An idempotent producer with acks=all (Settings.producer_config). Each record's delivery
timeout is the webhook's acknowledgement timeout: a record the broker did not confirm in
time fails in librdkafka as well and is never written later, so the provider's retry (the
503 makes it retry) is the only copy that stays (one written after all, while in flight
when the time ran out, has the same event id and the topology drops it as a duplicate).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.ops.records import Outgoing

_POLL_SECONDS = 0.05


class NotConfirmed(Exception):
    """The broker did not confirm every record in time: the webhook gets a 503."""


class Publisher:
    """One confluent-kafka producer, polled on a thread of its own; `publish` awaits the
    broker's confirmation of a batch of records on the event loop."""

    def __init__(self, config: dict[str, str | bool], ack_timeout: float) -> None:
        self._ack_timeout = ack_timeout
        self._producer: Producer | None = Producer(
            {
                **config,
                "message.timeout.ms": int(ack_timeout * 1000),
                # A webhook is one small request: send at once rather than wait for company.
                "linger.ms": 1,
            }
        )
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._poll, name="webhooks-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
        producer, self._producer = self._live, None
        producer.flush(self._ack_timeout)
        # Dropped here, not when garbage is next collected: its threads would go on
        # reconnecting to the brokers meanwhile.
        del producer

    @property
    def _live(self) -> Producer:
        if self._producer is None:
            raise ConnectionError("the publisher is stopped")
        return self._producer

    def _poll(self) -> None:
        while self._running.is_set():
            self._live.poll(_POLL_SECONDS)

    def metadata(self, timeout: float) -> None:
        """A metadata request (a probe of the broker); ConnectionError if none answered."""
        try:
            self._live.list_topics(timeout=timeout)
        except KafkaException as error:
            raise ConnectionError(str(error)) from None

    async def publish(self, records: Sequence[Outgoing]) -> None:
        loop = asyncio.get_running_loop()
        confirmations: list[asyncio.Future[None]] = []
        for record in records:
            confirmed: asyncio.Future[None] = loop.create_future()
            confirmations.append(confirmed)
            try:
                self._live.produce(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=list(record.headers),
                    on_delivery=_reporter(loop, confirmed),
                )
            except (BufferError, KafkaException, ConnectionError) as error:
                raise NotConfirmed(f"cannot queue {record.label}: {error}") from None
        try:
            # librdkafka fails a record itself at the timeout; the margin covers its timer.
            await asyncio.wait_for(asyncio.gather(*confirmations), self._ack_timeout + 1.0)
        except TimeoutError:
            raise NotConfirmed(f"the broker did not confirm within {self._ack_timeout}s") from None


def _reporter(
    loop: asyncio.AbstractEventLoop, confirmed: asyncio.Future[None]
) -> Callable[[KafkaError | None, Any], None]:
    def report(error: KafkaError | None, message: Any) -> None:
        # Called on the poll thread: hand the outcome to the event loop.
        loop.call_soon_threadsafe(_settle, confirmed, error)

    return report


def _settle(confirmed: asyncio.Future[None], error: KafkaError | None) -> None:
    if confirmed.done():
        return
    if error is None:
        confirmed.set_result(None)
    else:
        confirmed.set_exception(NotConfirmed(f"the broker did not confirm: {error.str()}"))

"""A confluent-kafka producer for an event loop: a batch of records handed to librdkafka in
order, the broker's confirmations awaited together.

What the worker's agents and the webhooks connector write goes through it. aiokafka's
`send` costs about 15 µs of CPU per record in the event loop's thread (a coroutine, a
future and the accumulator in Python per record); librdkafka's `produce` about 6 µs,
batching and sending on its own threads without the GIL (`python -m bench.producers`).
One callback object per batch counts the confirmations and wakes the batch once, from the
thread that polls delivery reports.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

POLL_SECONDS = 0.1
"""How long the delivery thread blocks in one poll; it returns at once on a report."""


class _Confirmations:
    """The delivery reports of one batch: the first error, the highest offset per tracked
    topic-partition, and a wake-up once all are in.

    Reports arrive on the polling thread while the batch is still being produced, so no
    count is shared: each report appends to a list (atomic), and the batch's size is set
    once it is known. Whichever side completes the pair second sees it complete."""

    __slots__ = ("done", "error", "expected", "loop", "offsets", "reports")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.reports: list[None] = []
        self.expected = -1
        self.error: KafkaError | None = None
        self.offsets: dict[tuple[str, int], int] = {}

    def plain(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and self.error is None:
            self.error = error
        self._report()

    def tracked(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            if self.error is None:
                self.error = error
        else:
            # A confirmed message always has its topic, partition and offset.
            where = (cast(str, message.topic()), cast(int, message.partition()))
            offset = cast(int, message.offset())
            if offset > self.offsets.get(where, -1):
                self.offsets[where] = offset
        self._report()

    def _report(self) -> None:
        self.reports.append(None)
        if len(self.reports) == self.expected:
            self.loop.call_soon_threadsafe(self._wake)

    def all_produced(self, count: int) -> bool:
        """Set the batch's size; whether every report is in already."""
        self.expected = count
        return len(self.reports) == count

    def _wake(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


Headers = list[tuple[str, bytes]]
ProducerRecord = tuple[str, bytes | None, bytes | None, int | None, Headers | None, bool]
"""topic, key, value, partition (None: by the key), headers, whether its offset is tracked."""


class AsyncProducer:
    """Produces batches of records and waits for all of their confirmations. `config`:
    librdkafka settings (`Settings.producer_config` and the user's tuning)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._producer: Producer | None = Producer(dict(config))
        self._polling = threading.Event()
        self._polling.set()
        self._poller = threading.Thread(
            target=self._poll, args=(self._producer,), name="erpbridge-delivery", daemon=True
        )
        self._poller.start()

    def _poll(self, producer: Producer) -> None:
        while self._polling.is_set():
            producer.poll(POLL_SECONDS)

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for what is on its way (its reports are served),
        then stop polling and drop the producer, so its threads stop reconnecting; the
        number of records left unconfirmed. Blocks: call it off the event loop."""
        producer = self._live
        left = producer.flush(timeout)
        self._polling.clear()
        self._poller.join()
        self._producer = None
        return left

    @property
    def _live(self) -> Producer:
        if self._producer is None:
            raise ConnectionError("the producer is closed")
        return self._producer

    def metadata(self, timeout: float) -> None:
        """A metadata request (a probe of the broker); ConnectionError if none answered.
        Blocks: call it off the event loop."""
        try:
            self._live.list_topics(timeout=timeout)
        except KafkaException as error:
            raise ConnectionError(str(error)) from None

    def send(self, records: Iterable[ProducerRecord]) -> Sent:
        """Hand `records` to librdkafka in order, all of them before returning (another
        batch's records never come in between); `Sent.confirmed` waits for the broker.
        Raises KafkaException for a record librdkafka refuses outright (too large)."""
        producer = self._live
        confirmations = _Confirmations(asyncio.get_running_loop())
        produce = producer.produce
        count = 0
        for topic, key, value, partition, record_headers, tracked in records:
            # confluent-kafka's stubs take only lists of str | bytes | None values (invariant).
            headers = cast(list[tuple[str, str | bytes | None]] | None, record_headers)
            callback = confirmations.tracked if tracked else confirmations.plain
            count += 1
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key, headers=headers, on_delivery=callback)
                    else:
                        produce(topic, value, key, partition, headers=headers, on_delivery=callback)
                    break
                except BufferError:
                    # librdkafka's queue is full: wait for room here, so that the batch's
                    # records stay together and in order.
                    producer.poll(POLL_SECONDS)
        return Sent(confirmations, count)

    async def deliver(self, records: Iterable[ProducerRecord]) -> dict[tuple[str, int], int]:
        """`send`, and wait for the confirmations."""
        return await self.send(records).confirmed()


class Sent:
    """A batch's records handed to the producer."""

    def __init__(self, confirmations: _Confirmations, count: int) -> None:
        self._confirmations = confirmations
        self._count = count

    async def confirmed(self) -> dict[tuple[str, int], int]:
        """Wait until the broker has confirmed every record; the highest offset per
        topic-partition of the tracked ones. Raises KafkaException with the first delivery
        error."""
        confirmations = self._confirmations
        if not confirmations.all_produced(self._count):
            await confirmations.done
        if confirmations.error is not None:
            raise KafkaException(confirmations.error)
        return confirmations.offsets

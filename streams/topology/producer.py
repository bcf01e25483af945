"""The worker's producer for everything its agents write: librdkafka through confluent-kafka.

A batch hands all its records over at once and waits for the broker to confirm every one
(streams.topology.agents.batch). aiokafka's `send` costs about 12 µs of CPU per record in
the event loop's thread (a coroutine, a future and the accumulator in Python per record);
librdkafka's `produce` about 3 µs, batching and sending on its own threads without the
GIL (docs/benchmarks.md). One callback object per batch counts the confirmations and wakes
the batch once, from the thread that polls delivery reports.

Idempotent, acknowledged by all replicas, murmur2-partitioned like Faust and the Java
clients (`Settings.producer_config`), so keys land where Faust's producer put them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from mode import Service

POLL_SECONDS = 0.1
"""How long the delivery thread blocks in one poll; it returns at once on a report."""
STOP_FLUSH_SECONDS = 10.0
"""How long stopping waits for records still on their way."""
TUNING = {
    # A batch's records are produced in one go; a millisecond gathers them into few
    # requests without adding to a batch's wait.
    "linger.ms": 5,
    # A batch of 1,000 inputs causes a few thousand records; several agents flush at once.
    "queue.buffering.max.messages": 1_000_000,
}


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
Outgoing = tuple[str, bytes | None, bytes | None, int | None, Headers | None, bool]
"""topic, key, value, partition (None: by the key), headers, whether its offset is tracked."""


class RecordProducer(Service):
    """Produces batches of records and waits for all of their confirmations."""

    def __init__(self, config: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._config = {**TUNING, **config}
        self._producer: Producer | None = None
        self._polling = threading.Event()
        self._poller: threading.Thread | None = None

    async def on_start(self) -> None:
        self._producer = Producer(self._config)
        self._polling.set()
        self._poller = threading.Thread(
            target=self._poll, args=(self._producer,), name="erpbridge-delivery", daemon=True
        )
        self._poller.start()

    def _poll(self, producer: Producer) -> None:
        while self._polling.is_set():
            producer.poll(POLL_SECONDS)

    async def on_stop(self) -> None:
        if self._producer is None:
            return
        # Delivery reports still due are served by flush; then the poller may end.
        left = await asyncio.to_thread(self._producer.flush, STOP_FLUSH_SECONDS)
        if left:
            self.log.warning("%d records were not confirmed by the broker at stop", left)
        self._polling.clear()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        self._producer = None

    async def deliver(self, records: Iterable[Outgoing]) -> dict[tuple[str, int], int]:
        """Produce `records` in order and wait until the broker has confirmed all of them;
        the highest offset per topic-partition of the tracked ones. Raises KafkaException
        with the first delivery error."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("the record producer is not started")
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
                    # librdkafka's queue is full: wait (off the loop) for room.
                    await asyncio.to_thread(producer.poll, POLL_SECONDS)
        if not confirmations.all_produced(count):
            await confirmations.done
        if confirmations.error is not None:
            raise KafkaException(confirmations.error)
        return confirmations.offsets

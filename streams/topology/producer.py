"""The producer the worker's batches are written with (streams.ops.async_producer), started
and stopped with the app and tuned for batches: idempotent, acknowledged by all replicas,
murmur2-partitioned like Faust and the Java clients (`Settings.producer_config`), so keys
land where Faust's producer put them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from mode import Service

from streams.ops.async_producer import AsyncProducer, ProducerRecord

STOP_FLUSH_SECONDS = 10.0
"""How long stopping waits for records still on their way."""
TUNING = {
    # librdkafka sends a request per partition; 1 ms lets the agents' flushes that come
    # together share them. 5 ms gave the same rate but added 5 ms to every hop of a quiet
    # pipeline, 0 a lower rate (`python -m bench.producers --round-trip`, docs/benchmarks.md).
    "linger.ms": 1,
    # A batch of 1,000 inputs causes a few thousand records; several agents flush at once.
    "queue.buffering.max.messages": 1_000_000,
}


class RecordProducer(Service):
    def __init__(self, config: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._config = {**TUNING, **config}
        self._producer: AsyncProducer | None = None

    async def on_start(self) -> None:
        self._producer = AsyncProducer(self._config)

    async def on_stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        left = await asyncio.to_thread(producer.close, STOP_FLUSH_SECONDS)
        if left:
            self.log.warning("%d records were not confirmed by the broker at stop", left)

    async def deliver(self, records: Iterable[ProducerRecord]) -> dict[tuple[str, int], int]:
        """Every record of a batch, in order; the highest changelog offsets confirmed
        (`AsyncProducer.deliver`)."""
        if self._producer is None:
            raise RuntimeError("the record producer is not started")
        return await self._producer.deliver(records)

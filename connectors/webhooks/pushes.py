"""Reads storefront.stock-pushes into `Echoes`, on a thread of its own, from the topic's
start and then as pushes arrive; no consumer group, nothing committed (every replica reads
it all)."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from connectors.webhooks.echoes import Echoes
from streams.contracts.groups import PUSHES_GROUP_PREFIX, reader_group
from streams.contracts.stock_pushes import Push

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


class PushReader:
    def __init__(self, config: dict[str, str], topic: str, echoes: Echoes) -> None:
        self._consumer = Consumer(
            {
                **config,
                "group.id": reader_group(PUSHES_GROUP_PREFIX),
                "enable.auto.commit": False,
            }
        )
        self._topic = topic
        self._echoes = echoes
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.caught_up = threading.Event()
        """Set once every push on the topic when the reader started is read."""
        self._ends: dict[int, int] = {}

    def start(self, timeout: float) -> None:
        """Assign every partition; KafkaException if the topic's metadata does not come."""
        metadata = self._consumer.list_topics(self._topic, timeout=timeout).topics[self._topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        partitions = sorted(metadata.partitions)
        for partition in partitions:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), timeout=timeout
            )
            if high > low:
                self._ends[partition] = high
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        if not self._ends:
            self.caught_up.set()
        self._running.set()
        self._thread = threading.Thread(target=self._read, name="webhooks-pushes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
        self._consumer.close()

    def _read(self) -> None:
        while self._running.is_set():
            message = self._consumer.poll(_POLL_SECONDS)
            if message is None or message.error() is not None:
                continue
            value = message.value()
            if value is not None:
                try:
                    self._echoes.pushed(Push.from_json(value))
                except ValueError as error:
                    log.warning("skipped a record of %s: %s", self._topic, error)
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                if self._ends.get(partition, 0) <= offset + 1:
                    self._ends.pop(partition, None)
                if not self._ends:
                    self.caught_up.set()

"""Dead letters: a record the topology cannot use goes to `<topic>.dlq` with its reason, in
the batch that read it, so it is on the broker before the record's offset is committed."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from faust.types import Message

from streams.contracts.deadletter import SourceRecord
from streams.contracts.topics import TopicCatalog, dead_letter_of
from streams.topology.agents.batch import Batch
from streams.topology.agents.logcontext import about_record

log = logging.getLogger(__name__)


def source_of(message: Message) -> SourceRecord:
    headers = message.headers or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((k, v or b"") for k, v in pairs),
    )


class DeadLetters:
    def __init__(self, catalog: TopicCatalog) -> None:
        self._catalog = catalog

    def send(
        self, batch: Batch, name: str, record: SourceRecord, stage: str, reason: str, error: str
    ) -> None:
        """A dead letter keeps its source partition (a dead-letter topic has its source's
        partition count), so operators can replay a partition in order."""
        topic = self._catalog.physical(dead_letter_of(name))
        letter = record.dead_letter(topic, stage=stage, reason=reason, error=error)
        batch.send(
            topic, letter.key, letter.value, partition=letter.partition, headers=letter.headers
        )
        with about_record(name, record.partition, record.offset, record.key):
            log.warning(
                "dead-lettered %s[%d]@%d (%s): %s",
                record.topic,
                record.partition,
                record.offset,
                reason,
                error,
            )

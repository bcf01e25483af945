"""Sending records to `<topic>.dlq`, waiting for the broker's ack before going on, so a
record's offset is never committed before its dead letter is safe."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import faust
from faust.types import Message

from streams.contracts.deadletter import SourceRecord
from streams.contracts.topics import TopicCatalog, dead_letter_of
from streams.topology.agents.context import catalog_topic

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
    def __init__(self, app: faust.App, catalog: TopicCatalog, names: tuple[str, ...]) -> None:
        # A dead-letter topic has its source's partition count: records keep their partition.
        self._topics = {name: catalog_topic(app, catalog, dead_letter_of(name)) for name in names}

    async def send(
        self, name: str, record: SourceRecord, stage: str, reason: str, error: str
    ) -> None:
        topic = self._topics[name]
        letter = record.dead_letter(topic.get_topic_name(), stage=stage, reason=reason, error=error)
        delivery = await topic.send(
            key=letter.key, value=letter.value, partition=letter.partition, headers=letter.headers
        )
        await delivery
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            error,
        )

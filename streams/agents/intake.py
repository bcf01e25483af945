"""Intake of the three input topics: decode every record or dead-letter it, and count both.

Decoded events are only counted for now: the business agents of issue 3 apply them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import faust
from faust import StreamT

from streams.accounting import EventAccounting, Outcome
from streams.codec import Codec, DecodeError
from streams.deadletter import dead_letter
from streams.topics import INPUTS, TopicCatalog, dead_letter_of, spec

log = logging.getLogger(__name__)

Agent = Callable[[StreamT[bytes]], Coroutine[Any, Any, None]]


def register(
    app: faust.App, catalog: TopicCatalog, codec: Codec, accounting: EventAccounting
) -> None:
    for name in INPUTS:
        source = app.topic(catalog.physical(name), partitions=catalog.partitions(name))
        dlq = app.topic(catalog.physical(dead_letter_of(name)), partitions=catalog.partitions(name))
        app.agent(source, name=f"intake.{name}")(_intake(name, dlq, codec, accounting))


def _intake(name: str, dlq: faust.TopicT, codec: Codec, accounting: EventAccounting) -> Agent:
    schema = spec(name).value_schema

    async def agent(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            accounting.consumed(name)
            try:
                codec.decode(message.value, expected=schema)
            except DecodeError as error:
                letter = dead_letter(
                    dlq_topic=dlq.get_topic_name(),
                    source_topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    value=message.value,
                    headers=list(message.headers or ()),
                    stage="decode",
                    reason=error.reason,
                    error=str(error),
                )
                # Wait for the broker's ack so the source offset can't be committed first.
                delivery = await dlq.send(
                    key=letter.key,
                    value=letter.value,
                    partition=letter.partition,
                    headers=letter.headers,
                )
                await delivery
                accounting.outcome(name, Outcome.DEAD_LETTERED, error.reason)
                log.warning(
                    "dead-lettered %s[%d]@%d: %s",
                    message.topic,
                    message.partition,
                    message.offset,
                    error,
                )
                continue
            accounting.outcome(name, Outcome.DECODED)

    return agent

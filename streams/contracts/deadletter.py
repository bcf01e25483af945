"""What a dead-letter record carries: the original key, value and headers, plus why and where from.

Dead-letter topics are `<source topic>.dlq`; a record keeps its source partition number so
operators can replay a partition in order.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HEADER_PREFIX = "erpbridge.dlq."
REASON = HEADER_PREFIX + "reason"
ERROR = HEADER_PREFIX + "error"
STAGE = HEADER_PREFIX + "stage"
SOURCE_TOPIC = HEADER_PREFIX + "source.topic"
SOURCE_PARTITION = HEADER_PREFIX + "source.partition"
SOURCE_OFFSET = HEADER_PREFIX + "source.offset"


@dataclass(frozen=True)
class SourceRecord:
    """Where a consumed record came from and its bytes, kept so it can be dead-lettered later."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": _b64(self.key),
            "value": _b64(self.value),
            "headers": [[k, _b64(v)] for k, v in self.headers],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceRecord:
        return cls(
            topic=data["topic"],
            partition=data["partition"],
            offset=data["offset"],
            key=_unb64(data["key"]),
            value=_unb64(data["value"]),
            headers=tuple((k, _unb64(v) or b"") for k, v in data["headers"]),
        )

    def dead_letter(self, dlq_topic: str, *, stage: str, reason: str, error: str) -> DeadLetter:
        return dead_letter(
            dlq_topic=dlq_topic,
            source_topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
            value=self.value,
            headers=self.headers,
            stage=stage,
            reason=reason,
            error=error,
        )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(
    *,
    dlq_topic: str,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
    stage: str,
    reason: str,
    error: str,
) -> DeadLetter:
    """`reason` is a short machine-readable code, `error` the human explanation.

    Nothing in it depends on when it is written, so the copy a redelivered record causes is
    identical to the first; when it failed is the dead letter's own record timestamp."""
    ours = [
        (REASON, reason),
        (ERROR, error),
        (STAGE, stage),
        (SOURCE_TOPIC, source_topic),
        (SOURCE_PARTITION, str(partition)),
        (SOURCE_OFFSET, str(offset)),
    ]
    # Earlier dead-letter headers are replaced, so a replayed record that fails again says why now.
    kept = original_headers(headers)
    return DeadLetter(dlq_topic, partition, key, value, kept + [(k, v.encode()) for k, v in ours])


def original_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A dead letter's headers without the dead-letter ones: the original record's."""
    return [(k, v) for k, v in headers if not k.startswith(HEADER_PREFIX)]


def of_consumed(record: Any, dlq_topic: str, *, stage: str, reason: str, error: str) -> DeadLetter:
    """The dead letter of an aiokafka ConsumerRecord (topic, partition, offset, key, value,
    headers), as the services outside Faust (dispatcher, ERP connector) read them."""
    return dead_letter(
        dlq_topic=dlq_topic,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=record.headers or (),
        stage=stage,
        reason=reason,
        error=error,
    )


def describe(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """The dead-letter headers of a record, decoded, for tools and tests."""
    return {
        k: (v or b"").decode(errors="replace") for k, v in headers if k.startswith(HEADER_PREFIX)
    }

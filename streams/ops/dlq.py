"""Dead letters as an operator sees them (streams.contracts.deadletter), which ones
`erpbridge dlq replay` sends back, and where to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from streams.contracts import deadletter
from streams.ops.records import Outgoing, PartitionReader, Record, RecordsError


@dataclass(frozen=True)
class StoredDeadLetter:
    record: Record
    """As stored on the dead-letter topic."""
    headers: dict[str, str]
    """Its erpbridge.dlq.* headers, decoded."""

    @property
    def reason(self) -> str:
        return self.headers.get(deadletter.REASON, "?")

    @property
    def error(self) -> str:
        return self.headers.get(deadletter.ERROR, "?")

    @property
    def failed_at(self) -> str:
        """When it was written: its record timestamp (the header holds nothing time-bound,
        so that a redelivered record's copy is identical to the first)."""
        millis = self.record.timestamp_ms
        if millis is None:
            return "?"
        return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")

    @property
    def source_offset(self) -> str:
        return self.headers.get(deadletter.SOURCE_OFFSET, "?")

    def original(self, source_topic: str) -> Outgoing:
        """The record as it was, back onto `source_topic` at its source partition; a dead
        letter from elsewhere, or without erpbridge's headers, is refused."""
        where = f"{self.record.topic} partition {self.record.partition} offset {self.record.offset}"
        came_from = self.headers.get(deadletter.SOURCE_TOPIC)
        partition = self.headers.get(deadletter.SOURCE_PARTITION, "")
        if came_from is None or not partition.isdigit():
            raise RecordsError(
                f"{where} lacks the {deadletter.SOURCE_TOPIC} and {deadletter.SOURCE_PARTITION} "
                "headers erpbridge writes: not a dead letter of erpbridge; nothing re-sent"
            )
        if came_from != source_topic:
            raise RecordsError(
                f"{where} came from {came_from}, not {source_topic}; nothing re-sent"
            )
        return Outgoing(
            source_topic,
            int(partition),
            self.record.key,
            self.record.value,
            tuple(deadletter.original_headers(self.record.headers)),
            f"dead letter {self.record.partition}:{self.record.offset}",
        )


def read_dead_letters(reader: PartitionReader, topic: str) -> list[StoredDeadLetter]:
    """Every record of dead-letter topic `topic`, by partition and offset."""
    return [
        StoredDeadLetter(record, deadletter.describe(record.headers))
        for partition in reader.partitions(topic)
        for record in reader.read(topic, partition, *reader.watermarks(topic, partition))
    ]


def choose(
    letters: list[StoredDeadLetter],
    topic: str,
    *,
    offsets: Collection[tuple[int, int]] = (),
    partitions: Collection[int] = (),
    reason: str | None = None,
) -> list[StoredDeadLetter]:
    """The dead letters at `offsets` (each must exist among `topic`'s `partitions`), or
    those with `reason` (at least one), or all of them when neither is given."""
    if offsets:
        at = {(d.record.partition, d.record.offset): d for d in letters}
        for partition, offset in offsets:
            if partition not in partitions:
                raise RecordsError(
                    f"{topic} has partitions 0..{len(partitions) - 1}; "
                    f"partition {partition} does not exist"
                )
            if (partition, offset) not in at:
                held = sorted(o for p, o in at if p == partition)
                holds = f"dead letters at offsets {held[0]}..{held[-1]}" if held else "none"
                raise RecordsError(
                    f"{topic} has no dead letter at partition {partition} offset {offset} "
                    f"(partition {partition} holds {holds})"
                )
        return [at[key] for key in sorted(set(offsets))]
    if reason is not None:
        chosen = [d for d in letters if d.reason == reason]
        if not chosen:
            reasons = Counter(d.reason for d in letters)
            there = ", ".join(f"{r} ({n})" for r, n in sorted(reasons.items())) or "none"
            raise RecordsError(
                f"{topic} has no dead letter with reason {reason!r}; reasons there: {there}"
            )
        return chosen
    return letters

"""Which stored records `erpbridge replay` re-sends: a time range, an offset range of one
partition, or keys, and only records the topology still recognises as already seen."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

from streams.ops.records import PartitionReader, Record, RecordsError


@dataclass(frozen=True)
class Selection:
    since: datetime | None = None
    until: datetime | None = None
    """Excluded, like `to` in a half-open time range."""
    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    """Included."""
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Span:
    """Offsets start..end-1 of one partition."""

    partition: int
    start: int
    end: int

    @property
    def offsets(self) -> str:
        return f"offsets {self.start}..{self.end - 1}" if self.end > self.start else "no records"

    def __str__(self) -> str:
        return f"partition {self.partition} {self.offsets}"


def spans(
    reader: PartitionReader, topic: str, selection: Selection, key_partitions: Collection[int]
) -> list[Span]:
    """The offsets to read in each partition, the ends as they are now (so the copies a
    replay appends are never read again); `key_partitions` limits them to the keys' ones."""
    partitions = reader.partitions(topic)
    if selection.partition is not None:
        if selection.partition not in partitions:
            raise RecordsError(
                f"{topic} has partitions 0..{len(partitions) - 1}; "
                f"partition {selection.partition} does not exist"
            )
        partitions = [selection.partition]
    if selection.keys:
        partitions = [p for p in partitions if p in key_partitions]
    found = []
    for partition in partitions:
        low, high = reader.watermarks(topic, partition)
        start = (
            low if selection.since is None else reader.offset_at(topic, partition, selection.since)
        )
        end = (
            high if selection.until is None else reader.offset_at(topic, partition, selection.until)
        )
        for offset in (selection.from_offset, selection.to_offset):
            if offset is not None and not low <= offset < high:
                held = f"offsets {low}..{high - 1}" if high > low else "no records"
                raise RecordsError(
                    f"{topic} partition {partition} holds {held}; offset {offset} does not exist"
                )
        if selection.from_offset is not None:
            start = selection.from_offset
        if selection.to_offset is not None:
            end = selection.to_offset + 1
        found.append(Span(partition, max(start, low), end))
    return found


def forgotten(
    reader: PartitionReader, topic: str, chosen: list[Span], before: datetime
) -> list[Span]:
    """The parts of `chosen` written before `before`: the topology remembers event ids for
    ERPBRIDGE_DEDUP_TTL_HOURS from when it first saw them, never before they were written, so
    records written since are certainly still recognised as duplicates."""
    old = []
    for span in chosen:
        if span.end <= span.start:
            continue
        cutoff = reader.offset_at(topic, span.partition, before)
        if span.start < cutoff:
            old.append(Span(span.partition, span.start, min(cutoff, span.end)))
    return old


def selected(
    reader: PartitionReader, topic: str, chosen: list[Span], keys: Collection[str]
) -> Iterator[Record]:
    """The records of the spans, only those of `keys` when there are any, in offset order."""
    wanted = {key.encode() for key in keys}
    for span in chosen:
        for record in reader.read(topic, span.partition, span.start, span.end):
            if not wanted or record.key in wanted:
                yield record

"""What an agent does with one batch of records: group them, and write everything they cause
at once.

An agent takes a batch of events (`Stream.take_events`), handles them partition by
partition and key by key, reading each key's state once and writing it once, and collects
every record the batch causes — state changes, internal messages, outputs, dead letters —
in one `Batch`. `Batch.flush` hands them all to the producer without waiting for each, then
waits for the broker to confirm every one; only then are the batch's offsets committable
(streams.topology.cursors). So a crash re-reads, never skips, and a dead letter is on the
broker before its input's offset is committed.

State goes to the table's store and its changelog directly (not through Faust's table
layer, which queues changelog records one at a time in its send buffer): the same records
Faust would write, and once the broker has confirmed them the state and the same persisted
offsets in RocksDB.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from faust.stores.rocksdb import Store
from faust.streams import Stream, _current_event
from faust.types import TP, EventT, StoreT, StreamT, TableT
from rocksdict import Rdict, WriteBatch

from streams.ops.async_producer import Headers, ProducerRecord
from streams.topology.faust_app import StreamApp

log = logging.getLogger(__name__)

EXIT_BATCH_FAILED = 70
"""The worker's exit status when a batch could not be handled (EX_SOFTWARE)."""
BATCH_SIZE = 1000
"""Events per batch at most: enough to amortise a flush, few enough to keep a batch's
latency under the p99 target at full speed."""
BATCH_WITHIN = 0.02
"""Seconds a partly filled batch waits for more before it is handled. Under a backlog Faust
fills a batch at its own per-event pace, about 110 events in 5 ms: 20 ms makes batches four
times larger, so the wait for the broker's confirmations and the per-batch work are shared
by more events (the reference run 1,761 -> 2,441 events/s, docs/benchmarks.md); a quiet
hop waits up to 20 ms longer for company (p99 28 -> 50 ms at 100 events/s)."""


@dataclass
class Batch:
    """The records one batch causes, sent together by `flush`."""

    app: StreamApp
    _records: list[ProducerRecord] = field(default_factory=list)
    _tables: dict[str, TableT[bytes, bytes]] = field(default_factory=dict)
    """The tables whose changelogs the batch writes, by changelog topic."""
    _writes: dict[tuple[int, int], tuple[Rdict, WriteBatch]] = field(default_factory=dict)
    """The state the batch writes, per store and partition."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Queue a record; without a partition the producer's murmur2 partitioner picks it."""
        self._records.append((topic, key, value, partition, headers, False))

    def put_state(
        self, table: TableT[bytes, bytes], partition: int, key: bytes, value: bytes | None
    ) -> None:
        """Write a key's state (None deletes it) to the partition's RocksDB database and
        the table's changelog.

        The database's writes of a batch go in one RocksDB write batch once the broker has
        confirmed the batch's records (one write to its log instead of one per key, and
        none of Faust's per-key bookkeeping): agents read each key once, before they write
        it, so nothing in a batch reads what the batch wrote, and each table is written by
        one agent, whose next batch starts after this one is flushed."""
        store = cast(Store, table.data)
        database = store._db_for_partition(partition)
        writes = self._writes.get((id(store), partition))
        if writes is None:
            writes = self._writes[id(store), partition] = (database, WriteBatch(raw_mode=True))
        if value is None:
            if database.get(key) is None:
                return
            writes[1].delete(key)
        else:
            writes[1].put(key, value)
        topic = table.changelog_topic.get_topic_name()
        self._tables[topic] = table
        self._records.append((topic, key, value, partition, None, True))

    def __len__(self) -> int:
        return len(self._records)

    async def flush(self) -> None:
        """Send every queued record without waiting for each, then wait for all; then write
        the state to the tables' stores, with the changelog offsets they now hold."""
        records, self._records = self._records, []
        tables, self._tables = self._tables, {}
        writes, self._writes = self._writes, {}
        offsets = await self.app.records.deliver(records)
        # Only once the broker has the changelog records: a worker killed before that
        # restarts with state no newer than its changelog, so the batch's inputs, read
        # again, are applied again instead of being taken for duplicates of a state the
        # changelog never got.
        for database, pending in writes.values():
            database.write(pending)
        for (topic, partition), offset in offsets.items():
            # What Faust's changelog callback does: recovery then reads only what follows.
            cast(StoreT[bytes, bytes], tables[topic].data).set_persisted_offset(
                TP(topic, partition), offset
            )


async def run_in_batches(
    app: StreamApp,
    stream: StreamT[bytes],
    handle: Callable[[Batch, Sequence[EventT[bytes]]], None],
) -> None:
    """An agent's loop: each batch of the stream's events handled into one `Batch`, flushed
    before the next is taken. Only each partition's next records are handled, in offset
    order (`Cursors`); their offsets may be committed once the broker confirmed everything
    they caused."""
    cursors = app.cursors
    async for taken in cast(Stream[bytes], stream).take_events(BATCH_SIZE, BATCH_WITHIN):
        batch = Batch(app)
        try:
            if new := cursors.unknown(taken):
                await app.start_cursors(new)
            events, holes = cursors.admit(taken)
            handle(batch, events)
            await batch.flush()
            cursors.handled(events)
            await app.seek_back(holes, "records before these were not delivered")
        except Exception as exc:
            # An exception leaving this loop would end the agent while the worker runs on
            # without it (a state write on a full disk). Exit at once instead: the batch's
            # offsets are not committable (`Cursors`), so the worker's next start reads it
            # again.
            log.critical(
                "stopping: a batch of %d records could not be handled (%s: %s); its offsets "
                "are not committed, so it is read again when the worker starts once the "
                "cause is fixed",
                len(taken),
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            logging.shutdown()
            os._exit(EXIT_BATCH_FAILED)


def per_partition(events: Sequence[EventT[bytes]]) -> Iterator[tuple[int, list[EventT[bytes]]]]:
    """The batch's events per partition number, in arrival order, each group handled with
    table reads and writes going to its partition (`on_partition`). The topics an agent
    reads are co-partitioned, so one partition number holds every record about a key."""
    groups: dict[int, list[EventT[bytes]]] = {}
    for event in events:
        groups.setdefault(event.message.partition, []).append(event)
    for partition, group in groups.items():
        with on_partition(group[0]):
            yield partition, group


@contextmanager
def on_partition(event: EventT[bytes]) -> Iterator[None]:
    """Table reads go to the partition of `event`.

    Faust's stores find a key's partition through the current event, which in a batch is
    whichever event the stream took last; every partition's keys are handled under an event
    of their own partition instead. (`Batch.put_state` is told the partition.)"""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)

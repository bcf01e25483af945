"""A minimal app on erpbridge's StreamApp and batch loop, run as a real worker by
test_holes: it drops chosen records the way Faust drops records around a rebalance (a
processor raising Skip: the stream acknowledges the record and never delivers it), and
writes what its agent handled to an output topic, as "partition:offset".

Configured from the environment: HOLES_APP_ID, HOLES_SOURCE, HOLES_OUTPUT, HOLES_PARTITIONS,
HOLES_DROP (offsets dropped the first time they come, comma-separated),
KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from faust.exceptions import Skip
from faust.streams import current_event
from faust.types import EventT, StreamT

from streams.topology.agents.batch import Batch, run_in_batches
from streams.topology.faust_app import StreamApp

PARTITIONS = int(os.environ["HOLES_PARTITIONS"])
SOURCE = os.environ["HOLES_SOURCE"]
OUTPUT = os.environ["HOLES_OUTPUT"]
DROP = {int(offset) for offset in os.environ["HOLES_DROP"].split(",") if offset}

app = StreamApp(
    os.environ["HOLES_APP_ID"],
    stream_topics=frozenset({SOURCE}),
    producer_config={"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]},
    stall_look_seconds=1.0,
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    topic_partitions=PARTITIONS,
    consumer_auto_offset_reset="earliest",
    key_serializer="raw",
    value_serializer="raw",
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    autodiscover=False,
)
source = app.topic(SOURCE, partitions=PARTITIONS)
dropped: set[tuple[int, int]] = set()


def drop_once(value: bytes) -> bytes:
    event = current_event()
    assert event is not None
    message = event.message
    where = (message.partition, message.offset)
    if message.offset in DROP and where not in dropped:
        dropped.add(where)
        raise Skip()
    return value


def handle(batch: Batch, events: Sequence[EventT[bytes]]) -> None:
    for event in events:
        message = event.message
        batch.send(OUTPUT, None, f"{message.partition}:{message.offset}".encode(), partition=0)


@app.agent(source)
async def consume(stream: StreamT[bytes]) -> None:
    stream.add_processor(drop_once)
    await run_in_batches(app, stream, handle)

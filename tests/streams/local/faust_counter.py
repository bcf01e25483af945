"""A minimal Faust app, run as a real worker by test_faust_on_broker: counts messages by key.

Configured from the environment so each test gets its own app id, topic and state:
COUNTER_APP_ID, COUNTER_TOPIC, COUNTER_PARTITIONS, COUNTER_STORE, KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import os

import faust
from faust.web import Request, Response, View

PARTITIONS = int(os.environ.get("COUNTER_PARTITIONS", "4"))

app = faust.App(
    os.environ.get("COUNTER_APP_ID", "faust-counter"),
    broker=f"kafka://{os.environ.get('KAFKA_BOOTSTRAP_SERVERS', '127.0.0.1:9092')}",
    store=os.environ.get("COUNTER_STORE", "memory://"),
    topic_partitions=PARTITIONS,
    consumer_auto_offset_reset="earliest",
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
)
source = app.topic(
    os.environ.get("COUNTER_TOPIC", "faust-counter-source"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
)
# key -> {"count": n, "offset": source offset last counted}, one write per event.
counts = app.Table("counts", partitions=PARTITIONS)


@app.agent(source)
async def count(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        key, offset = event.key.decode(), event.message.offset
        seen = counts.get(key) or {"count": 0, "offset": -1}
        # Faust processes again, after a rebalance, what it processed since its last offset
        # commit (faust-streaming issue #502). A key always lands in the same partition, so
        # an offset not above the last one counted is such a repeat.
        if offset > seen["offset"]:
            counts[key] = {"count": seen["count"] + 1, "offset": offset}


@app.page("/state/")
async def state(web: View, request: Request) -> Response:
    """Source partitions this worker owns, whether it is in a rebalance, and its counts.

    The web server answers from the worker's start, before any assignment or recovery;
    `rebalancing` stays true until recovery has finished ("Worker ready").
    """
    actives = app.assignor.assigned_actives()
    partitions = sorted(tp.partition for tp in actives if tp.topic == source.get_topic_name())
    return web.json(
        {
            "partitions": partitions,
            "rebalancing": app.rebalancing,
            "counts": {key: value["count"] for key, value in counts.items()},
        }
    )

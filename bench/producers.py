"""What a produced record costs: aiokafka's `send` against the worker's librdkafka producer
(streams.ops.async_producer), side by side on one broker.

`python -m bench.producers [--records N] [--batch N] [--topics N] [--rounds N]
[--linger-ms N]` sends N records of 300 bytes in batches (each batch produced at once,
then awaited as a whole, as the agents do) spread over N topics of 6 partitions (the worker
writes about ten), the two producers alternating round by round, both idempotent with
acks=all. It prints per record the CPU time of this process (all its threads) and of the
local broker, and the records/s. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from aiokafka import AIOKafkaProducer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench.cluster import admin
from bench.machine import listening_pid, process_cpu_seconds
from streams.local.kafka import running_broker
from streams.ops.async_producer import AsyncProducer, ProducerRecord
from streams.ops.settings import Settings

VALUE = b"x" * 300


def batches(topics: list[str], records: int, batch: int) -> list[list[tuple[str, bytes]]]:
    """The records as (topic, key), in batches; keys and topics interleaved."""
    keyed = [(topics[i % len(topics)], b"k%d" % i) for i in range(records)]
    return [keyed[start : start + batch] for start in range(0, records, batch)]


async def aiokafka_run(bootstrap: str, work: list[list[tuple[str, bytes]]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    try:
        for batch in work:
            sent = [await producer.send(topic, VALUE, key=key) for topic, key in batch]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def librdkafka_run(
    settings: Settings, linger_ms: int, work: list[list[tuple[str, bytes]]]
) -> None:
    producer = AsyncProducer({**settings.producer_config(), "linger.ms": linger_ms})
    try:
        for batch in work:
            outgoing: list[ProducerRecord] = [
                (topic, key, VALUE, None, None, False) for topic, key in batch
            ]
            await producer.deliver(outgoing)
    finally:
        producer.close(30)


def measured(run: Callable[[], Awaitable[None]], broker_pid: int | None) -> tuple[float, ...]:
    """This process's CPU seconds, the broker's, and the wall seconds of one run (the
    producer's start and stop included)."""
    broker = process_cpu_seconds(broker_pid) if broker_pid else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run())  # type: ignore[arg-type]
    broker_after = process_cpu_seconds(broker_pid) if broker_pid else 0.0
    return (
        time.process_time() - cpu,
        (broker_after or 0.0) - (broker or 0.0),
        time.perf_counter() - wall,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=3_000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--linger-ms", type=int, default=1)
    args = parser.parse_args()
    with running_broker() as broker:
        port = int(broker.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        broker_pid = listening_pid(port) if broker.kind == "local-jvm" else None
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers)
        client = admin(settings)
        figures: dict[str, list[tuple[float, ...]]] = {"aiokafka": [], "librdkafka": []}
        for _ in range(args.rounds):
            for name in figures:
                run_id = uuid.uuid4().hex[:8]
                topics = [f"bench-producers-{run_id}-{n}" for n in range(args.topics)]
                for future in client.create_topics([NewTopic(t, 6, 1) for t in topics]).values():
                    future.result(timeout=30)
                work = batches(topics, args.records, args.batch)
                run: Callable[[], Awaitable[None]] = (
                    partial(aiokafka_run, broker.bootstrap_servers, work)
                    if name == "aiokafka"
                    else partial(librdkafka_run, settings, args.linger_ms, work)
                )
                figures[name].append(measured(run, broker_pid))
                client.delete_topics(topics)
        print(
            f"{args.records:,} records of {len(VALUE)} bytes in batches of {args.batch:,} over "
            f"{args.topics} topics of 6 partitions, librdkafka's linger.ms={args.linger_ms}; "
            f"medians of {args.rounds} alternating rounds:"
        )
        for name, runs in figures.items():
            own, broker_cpu, wall = (statistics.median(r[i] for r in runs) for i in range(3))
            print(
                f"  {name:<11} {own / args.records * 1e6:5.1f} us of CPU per record here, "
                f"{broker_cpu / args.records * 1e6:5.1f} us in the broker, "
                f"{args.records / wall:>9,.0f} records/s"
            )


if __name__ == "__main__":
    main()

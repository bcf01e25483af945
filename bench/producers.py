"""What a produced record costs the worker: aiokafka's `send` against the worker's
librdkafka producer (streams.topology.producer), side by side on one broker.

`python -m bench.producers [--records N] [--batch N] [--rounds N]` sends N records of 300
bytes in batches (each batch produced at once, then awaited as a whole, as the agents
do), alternating the two producers for each round, both idempotent with acks=all. It
prints the CPU time of this process (all its threads) per record and the records/s.
Not a test: it asserts nothing.
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
from streams.local.kafka import running_broker
from streams.ops.settings import Settings
from streams.topology.producer import Outgoing, RecordProducer

VALUE = b"x" * 300


async def aiokafka_batches(bootstrap: str, topic: str, records: int, batch: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    try:
        for start in range(0, records, batch):
            sent = [
                await producer.send(topic, VALUE, key=b"k%d" % i)
                for i in range(start, start + batch)
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def librdkafka_batches(settings: Settings, topic: str, records: int, batch: int) -> None:
    producer = RecordProducer(settings.producer_config())
    await producer.start()
    try:
        for start in range(0, records, batch):
            outgoing: list[Outgoing] = [
                (topic, b"k%d" % i, VALUE, None, None, False) for i in range(start, start + batch)
            ]
            await producer.deliver(outgoing)
    finally:
        await producer.stop()


def measured(run: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """CPU seconds and wall seconds of one run (the producer's start and stop included)."""
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run())  # type: ignore[arg-type]
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with running_broker() as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers)
        client = admin(settings)
        figures: dict[str, list[tuple[float, float]]] = {"aiokafka": [], "librdkafka": []}
        for _ in range(args.rounds):
            for name in figures:
                topic = f"bench-producers-{uuid.uuid4().hex[:8]}"
                for future in client.create_topics([NewTopic(topic, 6, 1)]).values():
                    future.result(timeout=30)
                run: Callable[[], Awaitable[None]] = (
                    partial(
                        aiokafka_batches, broker.bootstrap_servers, topic, args.records, args.batch
                    )
                    if name == "aiokafka"
                    else partial(librdkafka_batches, settings, topic, args.records, args.batch)
                )
                figures[name].append(measured(run))
                client.delete_topics([topic])
        print(
            f"{args.records:,} records of {len(VALUE)} bytes in batches of {args.batch:,}, "
            f"medians of {args.rounds} alternating rounds:"
        )
        for name, runs in figures.items():
            cpu = statistics.median(c for c, _ in runs) / args.records * 1e6
            rate = args.records / statistics.median(w for _, w in runs)
            print(f"  {name:<11} {cpu:5.1f} us of CPU per record  {rate:>9,.0f} records/s")


if __name__ == "__main__":
    main()

"""What a produced record costs: aiokafka's `send` against the worker's librdkafka producer
(streams.ops.async_producer), side by side on one broker.

`python -m bench.producers [--records N] [--batch N] [--topics N] [--rounds N]
[--linger-ms N]` sends N records of 300 bytes in batches (each batch produced at once,
then awaited as a whole, as the agents do) spread over N topics of 6 partitions (the worker
writes about ten), the two producers alternating round by round, both idempotent with
acks=all. It prints per record the CPU time of this process (all its threads) and of the
local broker, and the records/s.

`--round-trip` times instead what a hop of the topology waits when it is not busy: small
batches (`--batch`, 30 by default there) produced and confirmed one at a time, 10 ms apart,
by aiokafka and by librdkafka at linger.ms 5, 1 and 0, alternating; it prints the p50, p95
and p99 of a batch's round trip. Not a test: it asserts nothing.
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
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench.cluster import admin
from bench.machine import listening_pid, process_cpu_seconds
from streams.local.kafka import running_broker
from streams.ops.async_producer import AsyncProducer, ProducerRecord
from streams.ops.settings import Settings

VALUE = b"x" * 300
THROUGHPUT_BATCH = 3_000


def batches(topics: list[str], records: int, batch: int) -> list[list[tuple[str, bytes]]]:
    """The records as (topic, key), in batches; keys and topics interleaved."""
    keyed = [(topics[i % len(topics)], b"k%d" % i) for i in range(records)]
    return [keyed[start : start + batch] for start in range(0, records, batch)]


async def aiokafka_run(
    bootstrap: str, work: list[list[tuple[str, bytes]]], pause: float = 0.0
) -> list[float]:
    """Each batch sent and awaited in turn, `pause` seconds apart; each batch's round trip."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    times = []
    try:
        for batch in work:
            started = time.perf_counter()
            sent = [await producer.send(topic, VALUE, key=key) for topic, key in batch]
            await asyncio.gather(*sent)
            times.append(time.perf_counter() - started)
            if pause:
                await asyncio.sleep(pause)
    finally:
        await producer.stop()
    return times


async def librdkafka_run(
    settings: Settings, linger_ms: int, work: list[list[tuple[str, bytes]]], pause: float = 0.0
) -> list[float]:
    """As `aiokafka_run`, through the worker's producer."""
    producer = AsyncProducer({**settings.producer_config(), "linger.ms": linger_ms})
    times = []
    try:
        for batch in work:
            started = time.perf_counter()
            outgoing: list[ProducerRecord] = [
                (topic, key, VALUE, None, None, False) for topic, key in batch
            ]
            await producer.deliver(outgoing)
            times.append(time.perf_counter() - started)
            if pause:
                await asyncio.sleep(pause)
    finally:
        producer.close(30)
    return times


def fresh_topics(client: AdminClient, count: int) -> list[str]:
    """`count` new topics of 6 partitions, for one run."""
    run_id = uuid.uuid4().hex[:8]
    topics = [f"bench-producers-{run_id}-{n}" for n in range(count)]
    for future in client.create_topics([NewTopic(t, 6, 1) for t in topics]).values():
        future.result(timeout=30)
    return topics


ROUND_TRIP_BATCH = 30
ROUND_TRIP_BATCHES = 300
ROUND_TRIP_PAUSE = 0.01
ROUND_TRIP_WARM_UP = 50
"""Batches of each round left out: the first requests find partitions without a leader."""
ROUND_TRIP_LINGERS = (5, 1, 0)


def round_trips(broker_servers: str, settings: Settings, args: argparse.Namespace) -> None:
    client = admin(settings)
    batch = args.batch or ROUND_TRIP_BATCH
    producers: dict[str, int | None] = {"aiokafka": None} | {
        f"librdkafka linger.ms={linger}": linger for linger in ROUND_TRIP_LINGERS
    }
    times: dict[str, list[float]] = {name: [] for name in producers}
    for _ in range(args.rounds):
        for name, linger in producers.items():
            topics = fresh_topics(client, args.topics)
            work = batches(topics, ROUND_TRIP_BATCHES * batch, batch)
            run = (
                aiokafka_run(broker_servers, work, ROUND_TRIP_PAUSE)
                if linger is None
                else librdkafka_run(settings, linger, work, ROUND_TRIP_PAUSE)
            )
            times[name] += asyncio.run(run)[ROUND_TRIP_WARM_UP:]
            client.delete_topics(topics)
    print(
        f"round trip of a batch of {batch} records over {args.topics} topics of 6 partitions, "
        f"produced and confirmed one at a time, {args.rounds} alternating rounds:"
    )
    for name, found in times.items():
        cuts = [cut * 1000 for cut in statistics.quantiles(found, n=100)]
        print(
            f"  {name:<26} p50 {cuts[49]:5.1f} ms  p95 {cuts[94]:5.1f} ms  p99 {cuts[98]:5.1f} ms"
        )


def measured(run: Callable[[], Awaitable[object]], broker_pid: int | None) -> tuple[float, ...]:
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
    parser.add_argument(
        "--batch", type=int, help=f"{THROUGHPUT_BATCH}, or {ROUND_TRIP_BATCH} for --round-trip"
    )
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--linger-ms", type=int, default=1)
    parser.add_argument("--round-trip", action="store_true")
    args = parser.parse_args()
    with running_broker() as broker:
        port = int(broker.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        broker_pid = listening_pid(port) if broker.kind == "local-jvm" else None
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers)
        if args.round_trip:
            round_trips(broker.bootstrap_servers, settings, args)
            return
        client = admin(settings)
        batch = args.batch or THROUGHPUT_BATCH
        figures: dict[str, list[tuple[float, ...]]] = {"aiokafka": [], "librdkafka": []}
        for _ in range(args.rounds):
            for name in figures:
                topics = fresh_topics(client, args.topics)
                work = batches(topics, args.records, batch)
                run: Callable[[], Awaitable[list[float]]] = (
                    partial(aiokafka_run, broker.bootstrap_servers, work)
                    if name == "aiokafka"
                    else partial(librdkafka_run, settings, args.linger_ms, work)
                )
                figures[name].append(measured(run, broker_pid))
                client.delete_topics(topics)
        print(
            f"{args.records:,} records of {len(VALUE)} bytes in batches of {batch:,} over "
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

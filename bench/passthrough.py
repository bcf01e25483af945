"""The raw pass-through: the most a single Python process can move through the broker.

It consumes the three input topics with one confluent-kafka consumer, decodes every
record with the codec (as the worker must), and produces it (its original bytes, or the
decoded value re-encoded with --reencode) to one output topic. No state, no Faust.

Run by bench.throughput as `python -m bench.passthrough`, in its own process so that it
owns a core as the worker would; it prints one JSON line with its measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

from confluent_kafka import Consumer, KafkaError, Message, Producer

from streams.contracts.codec import DecodeError, codec_from_settings
from streams.contracts.topics import INPUTS, TopicCatalog, spec
from streams.ops.settings import Settings

_BATCH = 1000


@dataclass
class PassThroughResult:
    consumed: int
    delivered: int
    decode_errors: int
    delivery_errors: int
    seconds: float
    """From the first consumed batch to the last event confirmed by the broker."""
    cpu_seconds: float
    """This process's CPU time (all threads) over the same window."""
    cpu_total: float
    """... and over its whole life, start-up included."""
    completed: bool

    @property
    def rate(self) -> float:
        return self.consumed / self.seconds if self.seconds > 0 else 0.0


def run(
    settings: Settings, output: str, group: str, expect: int, reencode: bool, deadline: float
) -> PassThroughResult:
    catalog = TopicCatalog.from_settings(settings)
    sources = {catalog.physical(name): spec(name).value_schema for name in INPUTS}
    codec = codec_from_settings(settings)
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            # Background commits every 5 s, as a Faust worker commits every 2.8 s.
            "enable.auto.commit": True,
        }
    )
    producer = Producer(settings.producer_config())
    delivered = 0
    delivery_errors = 0

    def report(error: KafkaError | None, _message: Message) -> None:
        nonlocal delivered, delivery_errors
        if error is None:
            delivered += 1
        else:
            delivery_errors += 1

    consumer.subscribe(list(sources))
    consumed = decode_errors = 0
    started: float | None = None
    cpu_started = 0.0
    give_up = time.monotonic() + deadline
    try:
        while consumed < expect and time.monotonic() < give_up:
            batch = consumer.consume(num_messages=_BATCH, timeout=0.5)
            if not batch:
                continue
            if started is None:
                started = time.monotonic()
                cpu_started = cpu_seconds()
            for message in batch:
                if message.error() is not None:
                    continue
                topic = message.topic()
                assert topic is not None
                value = message.value()
                consumed += 1
                try:
                    decoded = codec.decode(value, expected=sources[topic])
                except DecodeError:
                    decode_errors += 1
                    continue
                if reencode:
                    value = codec.encode(decoded.schema_name, decoded.datum, topic=output)
                while True:
                    try:
                        producer.produce(output, key=message.key(), value=value, on_delivery=report)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
        remaining = producer.flush(max(1.0, give_up - time.monotonic()))
        finished = time.monotonic()
    finally:
        consumer.close()
    if started is None:
        return PassThroughResult(0, 0, 0, 0, 0.0, 0.0, cpu_seconds(), False)
    return PassThroughResult(
        consumed=consumed,
        delivered=delivered,
        decode_errors=decode_errors,
        delivery_errors=delivery_errors,
        seconds=finished - started,
        cpu_seconds=cpu_seconds() - cpu_started,
        cpu_total=cpu_seconds(),
        completed=consumed >= expect and remaining == 0 and delivered == consumed - decode_errors,
    )


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="physical output topic")
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--expect", type=int, required=True, help="events to move, then stop")
    parser.add_argument(
        "--reencode", action="store_true", help="re-encode instead of forwarding bytes"
    )
    parser.add_argument(
        "--deadline", type=float, default=600.0, help="give up after this many seconds"
    )
    args = parser.parse_args(argv)
    # Broker, prefix and partitions come from the environment, as for the worker.
    result = run(Settings(), args.output, args.group, args.expect, args.reencode, args.deadline)
    print(json.dumps(asdict(result)), flush=True)
    return 0 if result.completed else 1


if __name__ == "__main__":
    sys.exit(main())

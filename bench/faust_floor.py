"""The Faust floor: how fast one Faust agent takes the input events when it does nothing else.

One faust.App (the aiokafka driver, as the worker) with one agent on the three input
topics; it takes batches with `Stream.take_events`, as the topology's agents do, decodes
every record with the codec and only counts. No state, no output. Whatever the topology
does costs on top of this, so it bounds what any Faust topology can reach on the machine.

Run by bench.throughput as `python -m bench.faust_floor`, in its own process; it prints
one JSON line (a PassThroughResult: nothing is produced, so delivered = consumed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import asdict

import faust
from faust.types import StreamT

from bench.passthrough import PassThroughResult, cpu_seconds
from streams.contracts.codec import DecodeError, codec_from_settings
from streams.contracts.topics import INPUTS, TopicCatalog, spec
from streams.ops.kafka_security import faust_credentials
from streams.ops.settings import Settings
from streams.topology.app import broker_urls

_BATCH = 500
_WINDOW_S = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", required=True, help="Faust app id (consumer group)")
    parser.add_argument("--expect", type=int, required=True, help="events to take, then stop")
    parser.add_argument(
        "--deadline", type=float, default=600.0, help="give up after this many seconds"
    )
    args = parser.parse_args(argv)
    # Giving up is dying without a result, which bench.throughput reports with the log.
    signal.alarm(int(args.deadline))
    settings = Settings()
    catalog = TopicCatalog.from_settings(settings)
    codec = codec_from_settings(settings)
    schemas = {catalog.physical(name): spec(name).value_schema for name in INPUTS}
    app = faust.App(
        args.group,
        broker=broker_urls(settings.require_bootstrap()),
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        store="memory://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        autodiscover=False,
    )
    topic = app.topic(*schemas, partitions=settings.partitions)
    counts = {"consumed": 0, "decode_errors": 0}
    started: list[float] = []

    async def take(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(_BATCH, within=_WINDOW_S):  # type: ignore[attr-defined]
            if not started:
                started.extend((time.monotonic(), cpu_seconds()))
            for event in events:
                counts["consumed"] += 1
                try:
                    codec.decode(event.message.value, expected=schemas[event.message.topic])
                except DecodeError:
                    counts["decode_errors"] += 1
            if counts["consumed"] >= args.expect:
                finish()

    def finish() -> None:
        consumed = counts["consumed"]
        result = PassThroughResult(
            consumed=consumed,
            delivered=consumed - counts["decode_errors"],
            decode_errors=counts["decode_errors"],
            delivery_errors=0,
            seconds=time.monotonic() - started[0],
            cpu_seconds=cpu_seconds() - started[1],
            cpu_total=cpu_seconds(),
            completed=True,
        )
        # Straight to fd 1: the Faust worker redirects sys.stdout into its log.
        os.write(1, (json.dumps(asdict(result)) + "\n").encode())
        # A Faust worker has no "stop after N"; its orderly shutdown takes seconds and
        # measures nothing, so the process ends here, its result printed.
        os._exit(0)

    app.agent(topic, name="floor")(take)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
    return 1


if __name__ == "__main__":
    sys.exit(main())

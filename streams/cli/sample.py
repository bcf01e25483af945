"""`erpbridge sample`: the deterministic sample of commerce events, to Kafka or as JSON lines."""

from __future__ import annotations

import json
import time
from datetime import datetime

import click

from streams.cli.app import connect, main, settings_of
from streams.contracts.jsonlines import JsonLineError, from_datum, parse_timestamp
from streams.contracts.schema_store import SchemaStore
from streams.contracts.topics import INPUTS, TopicCatalog
from streams.sample.generator import DEFAULT_START, Catalogue, generate
from streams.sample.publisher import Pacer, PublishError, publish_sample

_PROGRESS_EVERY = 2.0


class _Progress:
    """Prints a progress line to stderr at most every couple of seconds."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = self.started

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_EVERY:
            self.last = now
            elapsed = now - self.started
            click.echo(f"[{elapsed:6.1f}s] {count:>8} events ({count / elapsed:8.1f}/s)", err=True)


def _start(ctx: click.Context, param: click.Parameter, value: str) -> datetime:
    try:
        return parse_timestamp(value)
    except JsonLineError as exc:
        raise click.BadParameter(exc.reason) from None


@main.command("sample")
@click.option("--seed", default=7, show_default=True, help="The same seed gives the same events.")
@click.option(
    "--orders",
    default=1000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Orders to place; their payments, shipments, returns and payouts follow.",
)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Events per second; 0 = as fast as possible.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["kafka", "jsonl"]),
    default="kafka",
    show_default=True,
    help="kafka: Avro onto the input topics; jsonl: JSON lines on stdout.",
)
@click.option(
    "--start",
    default=DEFAULT_START.isoformat(),
    show_default=True,
    callback=_start,
    help="Simulated time of the first event, ISO 8601 with a timezone.",
)
@click.pass_context
def sample(
    ctx: click.Context, seed: int, orders: int, rate: float, output_format: str, start: datetime
) -> None:
    """Generate a realistic mix of order, payment and inventory events over the default
    catalogue (20 SKUs, 3 warehouses, 30 customers; USD, EUR and GBP): opening stock, then
    orders with their payments, fulfilments, cancellations, returns and gateway payouts.

    --format kafka publishes to commerce.orders, commerce.inventory and commerce.payments
    (with ERPBRIDGE_TOPIC_PREFIX; the topics must exist) and fails unless the broker
    confirms every event. --format jsonl prints {"topic", "key", "value"} objects, the
    value in the friendly form `erpbridge produce` reads.

    \b
    Examples:
      erpbridge sample --orders 200 --rate 50
      erpbridge sample --format jsonl --orders 10 --seed 3 > sample.jsonl
    """
    settings = settings_of(ctx)
    progress = _Progress()
    if output_format == "jsonl":
        store = SchemaStore.from_directory(settings.schemas_dir)
        pacer = Pacer(rate)
        written = 0
        for event in generate(seed, orders, Catalogue.default(), start):
            delay = pacer.delay(written)
            if delay > 0:
                time.sleep(delay)
            value = from_datum(store.current(event.schema_name), event.datum)
            click.echo(json.dumps({"topic": event.topic, "key": event.key, "value": value}))
            written += 1
            progress(written)
        click.echo(f"wrote {written} events in {progress.elapsed():.1f}s", err=True)
        return

    connect(ctx)
    try:
        published = publish_sample(settings, seed, orders, rate, progress, start=start)
    except PublishError as exc:
        if exc.failed:
            click.echo(f"published {exc.delivered} events; {exc.failed} failed", err=True)
        raise click.ClickException(str(exc)) from exc
    catalog = TopicCatalog.from_settings(settings)
    topics = ", ".join(catalog.physical(name) for name in INPUTS)
    elapsed = progress.elapsed()
    click.echo(
        f"published {published} events to {topics} in {elapsed:.1f}s "
        f"({published / max(elapsed, 1e-9):.0f}/s)"
    )

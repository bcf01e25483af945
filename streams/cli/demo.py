"""`erpbridge demo`: the whole local loop in one command, with live progress."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
from confluent_kafka import Producer

from streams import worker
from streams.app import create_topology
from streams.cli.app import main, settings_of
from streams.local.kafka import running_broker
from streams.sample_publisher import publish_sample
from streams.settings import Settings
from streams.tables import changelog_sources
from streams.topic_admin import ensure_topics
from streams.topics import ORDERS, TopicCatalog

# Records no producer should ever write, so every run shows dead-lettering at work.
_UNDECODABLE = (
    b"not avro at all",
    b"\xc3\x01" + b"\x00" * 8 + b"\x02",  # single-object header, fingerprint nobody knows
    b"\xc3\x01",  # truncated header
)


class Feed(threading.Thread):
    """Publishes the sample in the background while the worker consumes it."""

    def __init__(self, settings: Settings, seed: int, orders: int, rate: float) -> None:
        super().__init__(name="sample-feed", daemon=True)
        self.settings, self.seed, self.orders, self.rate = settings, seed, orders, rate
        self.published = 0
        self.stop_requested = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.published = publish_sample(
                self.settings,
                seed=self.seed,
                orders=self.orders,
                rate=self.rate,
                progress=self._count,
                stop=self.stop_requested,
            )
            if not self.stop_requested.is_set():
                self._publish_undecodable()
        except BaseException as exc:  # reported by the progress line, not lost in a thread
            self.error = exc

    def _count(self, published: int) -> None:
        self.published = published

    def _publish_undecodable(self) -> None:
        producer = Producer(self.settings.producer_config())
        topic = TopicCatalog.from_settings(self.settings).physical(ORDERS)
        for i, value in enumerate(_UNDECODABLE):
            producer.produce(topic, key=f"demo-bad-{i}".encode(), value=value)
        if producer.flush(30) != 0:
            raise RuntimeError("undecodable demo records were not delivered")
        self.published += len(_UNDECODABLE)


def _erp_commands(snapshot: dict[str, Any]) -> str:
    """The dispatcher's figures over every ERP target: what the rate limit let through."""
    targets = snapshot["targets"].values()
    sent = sum(t["sent"] for t in targets)
    waiting = sum(t["held"] for t in targets)
    saved = sum(t["calls_saved"] for t in targets)
    return f"erp commands sent {sent:>6}, waiting {waiting:>6}, calls saved {saved:>5}"


@main.command("demo")
@click.option("--orders", default=1000, show_default=True, help="Orders in the sample.")
@click.option("--rate", default=100.0, show_default=True, help="Events per second; 0 = flat out.")
@click.option("--seed", default=7, show_default=True)
@click.option("--exit-when-done", is_flag=True, help="Stop once every published event is consumed.")
@click.pass_context
def demo(ctx: click.Context, orders: int, rate: float, seed: int, exit_when_done: bool) -> None:
    """Start a broker (unless KAFKA_BOOTSTRAP_SERVERS is set), create the topics, run the
    stream worker and feed it a realistic sample, printing progress. Ctrl-C stops it all."""
    base = settings_of(ctx)
    with running_broker() as broker, tempfile.TemporaryDirectory(prefix="erpbridge-") as data:
        settings = base.model_copy(
            update={"kafka_bootstrap_servers": broker.bootstrap_servers, "data_dir": Path(data)}
        )
        click.echo(f"broker: {broker.kind} at {broker.bootstrap_servers}")
        report = ensure_topics(
            settings.confluent_config(),
            TopicCatalog.from_settings(settings),
            changelogs=changelog_sources(settings.app_id),
        )
        click.echo(f"topics: {report}")
        topology = create_topology(settings)
        feed = Feed(settings, seed, orders, rate)
        started = time.monotonic()

        async def progress() -> None:
            totals = topology.accounting.totals()
            elapsed = time.monotonic() - started
            click.echo(
                f"[{elapsed:6.1f}s] published {feed.published:>7} | consumed {totals['consumed']:>7}"
                f" ({totals['consumed'] / elapsed:7.1f}/s) | applied {totals['applied']:>7}"
                f" | duplicate {totals['duplicate']:>3} | waiting {totals['waiting']:>3}"
                f" | dead-lettered {totals['dead_lettered']:>3}"
                f" | lag {feed.published - totals['consumed']:>6}"
                f" | {_erp_commands(topology.dispatcher.snapshot())}"
            )
            if feed.error is not None:
                click.echo(f"sample feed failed: {feed.error!r}", err=True)
                os.kill(os.getpid(), signal.SIGTERM)
            elif (
                exit_when_done
                and not feed.is_alive()
                and topology.accounting.settled(feed.published)
            ):
                os.kill(os.getpid(), signal.SIGTERM)

        topology.app.timer(interval=2.0)(progress)
        feed.start()
        try:
            worker.run(topology, quiet=True)
        except SystemExit:
            pass
        finally:
            feed.stop_requested.set()
            feed.join(timeout=30)
        totals = topology.accounting.totals()
        click.echo(f"final: published {feed.published}, accounting {totals}")
        if feed.error is not None or not topology.accounting.settled(totals["consumed"]):
            raise SystemExit(1)

"""`erpbridge demo`: the whole local loop in one command, with live progress."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from confluent_kafka import Producer
from pydantic import SecretStr

from connectors.erp.adapters import reader_for
from connectors.erp.audit import Audit
from connectors.erp.sink import ErpSink
from connectors.erp.source import MasterDataSource
from connectors.erp.tryton import TrytonAdapter
from connectors.erp.web import ConnectorWeb
from connectors.storefront.adapters import http_client, storefront_adapters
from connectors.storefront.audit import StorefrontAudit
from connectors.storefront.levels import pushing_routes
from connectors.storefront.medusa import MedusaStorefront
from connectors.storefront.sink import StorefrontSink
from streams.cli.app import check_kafka, main, settings_of
from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import (
    ERP_CATALOG,
    ERP_CUSTOMERS,
    ERP_RESULTS,
    INPUTS,
    ORDERS,
    TopicCatalog,
)
from streams.domain.commands import order_of_sales_order, sales_order_id
from streams.domain.statecodec import decode_alerts, decode_order, decode_sku
from streams.local.kafka import running_broker
from streams.local.medusa import Medusa, running_medusa
from streams.local.tryton import running_tryton
from streams.ops.records import Sender
from streams.ops.settings import Settings, WebhookRoute
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import Catalogue
from streams.sample.publisher import publish_sample
from streams.topology import worker
from streams.topology.app import Topology, create_topology

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
        click.echo(
            f"feed: {len(_UNDECODABLE)} undecodable records published on purpose; the worker "
            f"dead-letters them with a warning each (erpbridge dlq list {ORDERS})"
        )


class Loop:
    """The whole loop's figures for the progress line, and whether it has drained."""

    def __init__(self, topology: Topology, sink: ErpSink, feed: Feed) -> None:
        self.topology, self.sink, self.feed = topology, sink, feed
        self.started = time.monotonic()
        self._last: tuple[int, ...] | None = None

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        inputs = self.topology.accounting.totals(INPUTS)
        dispatch = self.topology.dispatcher.snapshot()["targets"].values()
        erp = self.sink.snapshot()
        return (
            f"[{elapsed:6.1f}s] events {self.feed.published:>6} published,"
            f" {inputs['consumed']:>6} consumed ({inputs['consumed'] / elapsed:5.1f}/s),"
            f" lag {self.feed.published - inputs['consumed']:>5},"
            f" dead-lettered {inputs['dead_lettered']:>3}"
            f" | erp commands sent {sum(t['sent'] for t in dispatch):>5},"
            f" waiting {sum(t['held'] for t in dispatch):>5},"
            f" calls saved {sum(t['calls_saved'] for t in dispatch):>4}"
            f" | ERP calls {erp['calls']:>5} ({erp['calls'] / elapsed:4.1f}/s),"
            f" done {erp['succeeded']:>5}, failed {erp['failed']:>3}, retries {erp['retries']:>3}"
            f" | open alerts {self.open_alerts():>3}"
        )

    def open_alerts(self) -> int:
        tables = self.topology.tables
        return sum(
            1
            for table in tables.alert_tables
            for data in table.values()
            for alert in decode_alerts(data).alerts.values()
            if alert.resolved_ms is None
        )

    def drained(self) -> bool:
        """Every event consumed, every command sent, executed and its result consumed, and
        nothing moved since the last look (a record may be between two topics)."""
        accounting = self.topology.accounting
        dispatch = self.topology.dispatcher.snapshot()
        sent = sum(t["sent"] for t in dispatch["targets"].values())
        erp = self.sink.snapshot()
        answered = erp["succeeded"] + erp["failed"]
        figures = (self.feed.published, sent, answered, accounting.totals()["consumed"])
        quiet = (
            not self.feed.is_alive()
            and accounting.settled(self.feed.published, INPUTS)
            and all(t["held"] == 0 for t in dispatch["targets"].values())
            and dispatch["in_flight"] == 0
            and self.sink.held() == 0
            and answered + erp["ignored"] == sent
            and accounting.settled(answered, (ERP_RESULTS,))
        )
        stable, self._last = figures == self._last, figures
        return quiet and stable

    def available_at(self, warehouse: str) -> dict[str, int]:
        """erpbridge's available per SKU at `warehouse`, from this worker's tables."""
        return {
            stock.sku: stock.warehouses[warehouse].available
            for stock in (decode_sku(v) for v in self.topology.tables.stock.values())
            if warehouse in stock.warehouses
        }

    async def audit(self, adapter: TrytonAdapter) -> Audit:
        """erpbridge's orders and stock, read from this worker's tables, beside the ERP's."""
        tables = self.topology.tables
        orders = [decode_order(v) for v in tables.orders.values()]
        expected = frozenset(o.order_id for o in orders if sales_order_id(o.order_id) in o.issued)
        ours = {
            (stock.sku, warehouse): level.on_hand
            for stock in (decode_sku(v) for v in tables.stock.values())
            for warehouse, level in stock.warehouses.items()
        }
        # Asked for every order erpbridge knows, so a sale it never sent shows up too.
        by_reference = await adapter.sales_by_reference(sales_order_id(o.order_id) for o in orders)
        erp_sales: Counter[str] = Counter()
        for reference, count in by_reference.items():
            order_id = order_of_sales_order(reference)
            if order_id is not None:
                erp_sales[order_id] += count
        skus = {sku for sku, _ in ours}
        warehouses = {warehouse for _, warehouse in ours}
        return Audit(expected, erp_sales, ours, await adapter.stock_levels(skus, warehouses))


@main.command("demo")
@click.option("--orders", default=100, show_default=True, help="Orders in the sample.")
@click.option("--rate", default=100.0, show_default=True, help="Events per second; 0 = flat out.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--keep-running", is_flag=True, help="Keep running once the loop drained (Ctrl-C stops)."
)
@click.option(
    "--storefront/--no-storefront",
    default=True,
    show_default=True,
    help="A live Medusa storefront beside the ERP: its stock levels and products kept as "
    "erpbridge and the ERP have them, and checked too.",
)
@click.pass_context
def demo(
    ctx: click.Context, orders: int, rate: float, seed: int, keep_running: bool, storefront: bool
) -> None:
    """The whole loop on this machine: a Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set)
    and a Tryton ERP of its own, the stream worker fed a realistic sample, the ERP connector
    executing the rate-limited commands, printing progress; with a Medusa storefront whose
    products the ERP's catalog sets and whose stock erpbridge's availability sets. Once
    everything drained, a check that the ERP holds every order exactly once and erpbridge's
    stock, and that the storefront sells erpbridge's available at the ERP's prices. Ctrl-C
    stops it all."""
    base = settings_of(ctx)
    with ExitStack() as stack:
        broker = stack.enter_context(running_broker())
        click.echo(f"broker: {broker.kind} at {broker.bootstrap_servers}")
        click.echo("ERP: starting Tryton (the first run installs it and prepares its database)")
        tryton = stack.enter_context(running_tryton())
        click.echo(f"ERP: Tryton at {tryton.url}")
        shop = None
        if storefront:
            click.echo("storefront: starting Medusa (the first run installs it and its store)")
            shop = stack.enter_context(running_medusa())
            click.echo(f"storefront: Medusa at {shop.url}")
        data = stack.enter_context(tempfile.TemporaryDirectory(prefix="erpbridge-"))
        settings = base.model_copy(
            update={
                "kafka_bootstrap_servers": broker.bootstrap_servers,
                "data_dir": Path(data),
                "erp_target": TrytonAdapter.name,
                "erp_url": tryton.url,
                "erp_login": tryton.login,
                "erp_password": SecretStr(tryton.password),
                **({} if shop is None else _storefront_settings(shop)),
            }
        )
        check_kafka(settings)
        catalog = TopicCatalog.from_settings(settings)
        report = ensure_topics(
            settings.confluent_config(), catalog, changelogs=changelog_sources(settings.app_id)
        )
        click.echo(f"topics: {report}")
        if shop is not None:
            _publish_catalog(settings, catalog)
        topology = create_topology(settings)
        adapter = TrytonAdapter(
            tryton.url, tryton.login, tryton.password, timeout=settings.erp_timeout_seconds
        )
        sink = ErpSink(settings, catalog, codec_from_settings(settings), adapter)
        feed = Feed(settings, seed, orders, rate)
        loop = Loop(topology, sink, feed)
        verdict: list[Audit | StorefrontAudit] = []
        shop_check = None if shop is None else stack.enter_context(_ShopCheck(settings, shop))

        async def progress() -> None:
            click.echo(loop.line())
            if feed.error is not None:
                click.echo(f"sample feed failed: {feed.error!r}", err=True)
                os.kill(os.getpid(), signal.SIGTERM)
            elif not verdict and loop.drained():
                shop_audit = None
                if shop_check is not None:
                    shop_audit = await shop_check.audit(loop)
                    if shop_audit is None:
                        return  # the storefront is a level or a price behind: next tick
                audit = await loop.audit(adapter)
                verdict.append(audit)
                executed = sink.snapshot()["executed"]
                click.echo(
                    "executed in the ERP: " + ", ".join(f"{n} {k}" for k, n in executed.items())
                )
                click.echo(audit.render())
                if shop_audit is not None:
                    verdict.append(shop_audit)
                    click.echo(shop_audit.render())
                if not keep_running:
                    os.kill(os.getpid(), signal.SIGTERM)

        topology.app.timer(interval=2.0)(progress)
        feed.start()
        try:
            # Each serves its own health and metrics: the worker on web_port, the connector
            # on connector_web_port, from registries of their own.
            worker.run(topology, sink, ConnectorWeb(settings, sink), quiet=True)
        except SystemExit:
            pass
        finally:
            feed.stop_requested.set()
            feed.join(timeout=30)
        totals = topology.accounting.totals(INPUTS)
        click.echo(f"final: published {feed.published}, accounting {totals}")
        if not verdict:
            click.echo("stopped before the loop drained: no ERP check")
        if feed.error is not None or not topology.accounting.settled(totals["consumed"], INPUTS):
            raise SystemExit(1)
        if any(not audit.ok for audit in verdict):
            raise SystemExit(2)


_ROUTE = "medusa"
_SETTLE_SECONDS = 60.0
"""How long the check waits for the storefront to catch up with the drained loop."""


def _storefront_settings(shop: Medusa) -> dict[str, Any]:
    """The demo's Medusa as a route whose stock and products erpbridge keeps."""
    key = shop.secret_key("erpbridge demo")
    route = WebhookRoute(
        provider="medusa",
        warehouses={shop.stock_location_id: shop.warehouse_id},
        admin_url=shop.url,
        push_stock=True,
        push_catalog=True,
    )
    return {
        "webhook_routes": {_ROUTE: route},
        "webhook_admin_tokens": SecretStr(json.dumps({_ROUTE: key})),
    }


def _publish_catalog(settings: Settings, catalog: TopicCatalog) -> None:
    """The ERP's products onto erp.catalog once, as `connector erp-source` does."""
    # Right after the topics are made, the broker may still be loading what hands out
    # producer ids: librdkafka retries and warns, which is no news in a first run's output.
    sender = Sender({**settings.producer_config(), "log_level": "3"})
    source = MasterDataSource(
        reader_for(settings), codec_from_settings(settings), sender,
        catalog_topic=catalog.physical(ERP_CATALOG),
        customers_topic=catalog.physical(ERP_CUSTOMERS),
        overlap=timedelta(seconds=settings.erp_source_overlap_seconds),
    )  # fmt: skip
    try:
        polled = asyncio.run(source.poll())
    finally:
        sender.close()
    click.echo("ERP source: " + ", ".join(f"{p.published} {p.kind}" for p in polled)
               + " onto erp.catalog and erp.customers")  # fmt: skip


class _ShopCheck:
    """The storefront sink on a thread of its own, and the storefront's check."""

    def __init__(self, settings: Settings, shop: Medusa) -> None:
        self._shop = shop
        self._client = http_client()
        routes = pushing_routes(settings.webhook_routes)
        self._adapter = storefront_adapters(settings, routes, self._client)[_ROUTE]
        self._sink = StorefrontSink(
            settings, TopicCatalog.from_settings(settings), codec_from_settings(settings),
            routes, {_ROUTE: self._adapter},
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sink.run, args=(self._stop,), daemon=True)
        self._first: float | None = None
        self._erp = reader_for(settings)

    def __enter__(self) -> _ShopCheck:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()

    async def audit(self, loop: Loop) -> StorefrontAudit | None:
        """The check, or None while the storefront is behind and there is time left."""
        assert isinstance(self._adapter, MedusaStorefront)
        currency = Catalogue.default().base_currency
        location, warehouse = self._shop.stock_location_id, self._shop.warehouse_id
        items = await self._erp.products(None)
        selling = self._adapter.selling()
        audit = StorefrontAudit(
            route=_ROUTE,
            warehouse=warehouse,
            currency=currency,
            our_available={sku: max(0, n) for sku, n in loop.available_at(warehouse).items()},
            shop_available={sku: n for (sku, at), n in selling.items() if at == location},
            erp_prices={
                item.sku: price.amount
                for item in items
                if item.active
                for price in item.list_prices
                if price.currency == currency
            },
            shop_prices=self._adapter.prices(currency),
        )
        now = time.monotonic()
        self._first = self._first or now
        if not audit.ok and now - self._first < _SETTLE_SECONDS:
            return None
        return audit

"""`erpbridge connector ...`: the services between Kafka and outside systems."""

from __future__ import annotations

import asyncio
import signal
import threading
from datetime import timedelta

import click
from mode import Worker

from connectors.erp.adapter import ErpError
from connectors.erp.adapters import adapter_for, reader_for
from connectors.erp.master import MasterDataReader
from connectors.erp.sink import ErpSink
from connectors.erp.source import MasterDataSource, Polled, SourceError
from connectors.erp.web import ConnectorWeb
from connectors.webhooks.service import WebhookService
from streams.cli.app import connect, counted, main, settings_of
from streams.contracts.codec import EncodeError, codec_from_settings
from streams.contracts.topics import ERP_CATALOG, ERP_CUSTOMERS, TopicCatalog
from streams.ops.logs import configure_logging
from streams.ops.records import PartitionReader, RecordsError, Sender


@main.group("connector")
def connector() -> None:
    """Run a connector: a service that carries erpbridge's topics to an outside system."""


@connector.command("erp")
@click.option("--target", help="The ERP to serve (default ERPBRIDGE_ERP_TARGET).")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
def erp(ctx: click.Context, target: str | None, loglevel: str) -> None:
    """Execute erp.commands in the ERP and publish what it did on erp.results.

    Connects to ERPBRIDGE_ERP_URL as ERPBRIDGE_ERP_LOGIN / ERPBRIDGE_ERP_PASSWORD; serves
    /livez, /readyz and /metrics on ERPBRIDGE_CONNECTOR_WEB_HOST:ERPBRIDGE_CONNECTOR_WEB_PORT. Scale by
    running more connectors with the same ERPBRIDGE_APP_ID: they share erp.commands'
    partitions, and each holds to its share of the ERP's rate limit.
    """
    settings = settings_of(ctx)
    try:
        adapter = adapter_for(settings, target)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    connect(ctx)
    sink = ErpSink(
        settings, TopicCatalog.from_settings(settings), codec_from_settings(settings), adapter
    )
    configure_logging(loglevel, settings=settings)
    # Logging is ours (JSON lines, secrets redacted), not mode's.
    Worker(
        sink, ConnectorWeb(settings, sink), loglevel=loglevel, override_logging=False
    ).execute_from_commandline()


@connector.command("webhooks")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
def webhooks(ctx: click.Context, loglevel: str) -> None:
    """Receive storefront and payment webhooks into commerce.orders, commerce.payments and
    commerce.inventory.

    Serves POST /webhooks/<provider>/<route> for each route of ERPBRIDGE_WEBHOOK_ROUTES
    (signed with the route's ERPBRIDGE_WEBHOOK_SECRETS), and /livez, /readyz and /metrics,
    on ERPBRIDGE_WEBHOOK_WEB_HOST:ERPBRIDGE_WEBHOOK_WEB_PORT. A webhook is answered 200 once
    the broker has confirmed its events, 503 if it cannot within
    ERPBRIDGE_WEBHOOK_ACK_TIMEOUT_SECONDS (the provider retries), 401 if its signature does
    not verify. Scale by running more replicas behind one address: they share nothing but
    the broker.
    """
    settings = settings_of(ctx)
    if not settings.webhook_routes:
        raise click.UsageError("no webhook routes: set ERPBRIDGE_WEBHOOK_ROUTES")
    connect(ctx)
    try:
        service = WebhookService(
            settings, TopicCatalog.from_settings(settings), codec_from_settings(settings)
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    configure_logging(loglevel, settings=settings)
    Worker(service, loglevel=loglevel, override_logging=False).execute_from_commandline()


@connector.command("erp-source")
@click.option("--once", is_flag=True, help="One poll, then exit (for a scheduled job).")
@click.option(
    "--resync",
    is_flag=True,
    help="The first poll reads everything the ERP has, publishes what differs from the "
    "topics and a tombstone for each SKU or customer the ERP no longer has.",
)
@click.pass_context
def erp_source(ctx: click.Context, once: bool, resync: bool) -> None:
    """Publish the ERP's products on erp.catalog and its customers on erp.customers
    (compacted, the latest per SKU and per customer id), polling for changes every
    ERPBRIDGE_ERP_SOURCE_INTERVAL_SECONDS.

    Reads ERPBRIDGE_ERP_TARGET at ERPBRIDGE_ERP_URL as ERPBRIDGE_ERP_LOGIN. The topics are
    the watermark: a restart reads them and asks the ERP only for what changed since the
    newest change they hold (less ERPBRIDGE_ERP_SOURCE_OVERLAP_SECONDS), and a record is
    published only when it differs from the topic's, so nothing is published twice. With
    --once, exits 1 naming the problem when the ERP or the broker fails; running, it tries
    again at the next poll.
    """
    settings = settings_of(ctx)
    try:
        reader = reader_for(settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    connect(ctx)
    catalog = TopicCatalog.from_settings(settings)
    source = MasterDataSource(
        reader,
        codec_from_settings(settings),
        Sender(settings.producer_config()),
        catalog_topic=catalog.physical(ERP_CATALOG),
        customers_topic=catalog.physical(ERP_CUSTOMERS),
        overlap=timedelta(seconds=settings.erp_source_overlap_seconds),
    )
    try:
        with PartitionReader(settings.confluent_config()) as topics:
            held = source.load(topics)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"{reader.source}: the topics hold {counted(held['products'], 'product')} and "
        f"{counted(held['customers'], 'customer')}"
    )
    asyncio.run(_poll(source, reader, settings.erp_source_interval_seconds, once, resync))


async def _poll(
    source: MasterDataSource, reader: MasterDataReader, interval: float, once: bool, resync: bool
) -> None:
    while True:
        try:
            for polled in await source.poll(resync=resync):
                click.echo(_polled_line(polled))
            resync = False
        except (ErpError, SourceError, EncodeError) as error:
            if once:
                raise click.ClickException(f"{reader.source}: {error}") from None
            click.echo(f"{reader.source}: {error}; trying again in {interval:g} s", err=True)
        if once:
            return
        await asyncio.sleep(interval)


def _polled_line(polled: Polled) -> str:
    removed = f", {polled.removed} removed" if polled.removed else ""
    return (
        f"{polled.kind}: {polled.read} read, {polled.published} published "
        f"(the rest unchanged){removed}"
    )


@connector.command("storefront")
@click.pass_context
def storefront(ctx: click.Context) -> None:
    """Set the storefronts' stock levels from inventory.availability for every route of
    ERPBRIDGE_WEBHOOK_ROUTES with push_stock, and show the fulfilments of
    storefront.fulfilments on the orders of every route with push_tracking (Shopify,
    WooCommerce, Medusa); publish what each did on storefront.results and
    storefront.fulfilment-results.

    A route pushes the available stock of the warehouses its `warehouses` map to its
    locations, less its stock_buffer (or a SKU's stock_buffers entry), the latest per SKU,
    with its admin_url and ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry. Runs until Ctrl-C or SIGTERM.
    """
    # The platforms' clients load only for this command.
    from connectors.storefront.adapters import http_client, storefront_adapters
    from connectors.storefront.levels import pushing_routes
    from connectors.storefront.sink import SinkError, StorefrontSink

    settings = settings_of(ctx)
    routes = pushing_routes(settings.webhook_routes)
    if not routes:
        raise click.UsageError(
            "no route of ERPBRIDGE_WEBHOOK_ROUTES has push_stock or push_tracking"
        )
    client = http_client()
    try:
        adapters = storefront_adapters(settings, routes, client)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    connect(ctx)
    sink = StorefrontSink(
        settings, TopicCatalog.from_settings(settings), codec_from_settings(settings),
        routes, adapters,
    )  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"serving {', '.join(sorted(routes))}")
    try:
        sink.run(stop)
    except SinkError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()

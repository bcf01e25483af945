"""`erpbridge connector ...`: the services between Kafka and outside systems."""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import click
import httpx
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
from streams.contracts.topics import (
    ERP_CATALOG,
    ERP_CUSTOMERS,
    POLL_WATERMARKS,
    WEBHOOKS_DLQ,
    TopicCatalog,
)
from streams.ops.logs import configure_logging
from streams.ops.records import PartitionReader, RecordsError, Sender

_MEDUSA_TIMEOUT_SECONDS = 30.0


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


@connector.command("medusa-source")
@click.option("--once", is_flag=True, help="One poll of each route, then exit.")
@click.option(
    "--since",
    metavar="TIME",
    help="Read each route's orders, payments and customers changed from TIME (ISO 8601 with its offset) "
    "instead of from its watermark: a new route's history, or what was dead-lettered once "
    "its cause is fixed. What was published before is published with the same event ids, "
    "which the topology drops.",
)
@click.pass_context
def medusa_source(ctx: click.Context, once: bool, since: str | None) -> None:
    """Publish the orders, payments and customer accounts of every Medusa route of
    ERPBRIDGE_WEBHOOK_ROUTES on commerce.orders, commerce.payments and commerce.customers, polling its Admin API (admin_url, with the
    route's ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry: a secret API key) every
    ERPBRIDGE_MEDUSA_POLL_SECONDS.

    Medusa sends no webhooks. Each route's watermark on webhooks.poll-watermarks moves only
    after the broker confirmed the events before it; a route's first poll starts now (or
    at --since). An order part that cannot be mapped (a location with no warehouse, a line
    without a SKU) goes to webhooks.dlq with its reason. With --once, exits 1 naming the
    problem when Medusa or the broker fails; running, it tries again at the next poll.
    """
    from connectors.webhooks.intake import encode
    from connectors.webhooks.medusa.admin import MedusaAdmin, MedusaError
    from connectors.webhooks.medusa.poll import MedusaPoll, PollError, Watermark
    from connectors.webhooks.references import References

    settings = settings_of(ctx)
    routes = {
        name: (route, settings.webhook_admin_token(name))
        for name, route in settings.webhook_routes.items()
        if route.provider == "medusa"
    }
    if not routes:
        raise click.UsageError("no route of ERPBRIDGE_WEBHOOK_ROUTES has provider medusa")
    lacking = sorted(
        name for name, (route, token) in routes.items() if not (route.admin_url and token)
    )
    if lacking:
        raise click.UsageError(
            f"route {', '.join(lacking)} needs its admin_url and an "
            "ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry (a Medusa secret API key)"
        )
    start = datetime.now(UTC)
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise click.BadParameter(
                f"{since!r} is no ISO 8601 time", param_hint="--since"
            ) from None
        if start.tzinfo is None:
            raise click.BadParameter(
                f"{since!r} has no offset (add Z or +00:00)", param_hint="--since"
            )
    connect(ctx)
    catalog = TopicCatalog.from_settings(settings)
    codec = codec_from_settings(settings)
    watermark_topic = catalog.physical(POLL_WATERMARKS)
    try:
        with PartitionReader(settings.confluent_config()) as topics:
            held = {
                k.decode(): Watermark.from_json(v) for k, v in topics.table(watermark_topic).items()
            }
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    sender = Sender(settings.producer_config())
    client = httpx.Client(timeout=_MEDUSA_TIMEOUT_SECONDS)
    polls = {}
    watermarks = {}
    for name, (route, token) in sorted(routes.items()):
        assert route.admin_url is not None and token is not None  # checked above
        references = References(route.warehouses, route.skus, channel=route.channel, route=name)
        polls[name] = MedusaPoll(
            name, MedusaAdmin(client, route.admin_url, token), references,
            lambda item: encode(item, catalog, codec), sender,
            watermark_topic=watermark_topic,
            dlq_topic=catalog.physical(WEBHOOKS_DLQ),
            overlap=timedelta(seconds=settings.medusa_poll_overlap_seconds),
        )  # fmt: skip
        kept = held.get(name)
        watermarks[name] = kept if kept is not None and since is None else Watermark.starting(start)
        click.echo(f"{name}: reading from {watermarks[name].orders.start.isoformat()}")
    stop = threading.Event()
    if not once:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    swept: dict[str, float] = {}
    try:
        while not stop.is_set():
            for name, poll in polls.items():
                now = time.monotonic()
                sweep = now - swept.get(name, -math.inf) >= settings.medusa_address_sweep_seconds
                try:
                    polled = poll.poll(watermarks[name], sweep)
                except (MedusaError, PollError) as error:
                    if once:
                        raise click.ClickException(f"{name}: {error}") from None
                    click.echo(
                        f"{name}: {error}; trying again in {settings.medusa_poll_seconds:g} s",
                        err=True,
                    )
                    continue
                watermarks[name] = polled.watermark
                if sweep:
                    swept[name] = now
                if polled.orders or polled.accounts or once:
                    letters = (
                        f", {counted(polled.dead_letters, 'dead letter')}"
                        if polled.dead_letters
                        else ""
                    )
                    accounts = (
                        f"; {counted(polled.accounts, 'customer account')} published"
                        if polled.accounts
                        else ""
                    )
                    click.echo(
                        f"{name}: {counted(polled.orders, 'order')} read, "
                        f"{counted(polled.events, 'event')} published{letters}{accounts}"
                    )
            if once:
                return
            stop.wait(settings.medusa_poll_seconds)
    finally:
        client.close()

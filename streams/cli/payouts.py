"""`erpbridge payouts sync`: the payouts no webhook brings (Shopify Payments'), read from the
shops into commerce.payments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import httpx

from connectors.webhooks.inputs import Input, Unmappable
from connectors.webhooks.intake import encode
from connectors.webhooks.payout_sync import SyncError, read_watermarks, sync_route
from connectors.webhooks.shopify.admin import ShopifyAdmin, ShopifyError
from streams.cli.app import connect, counted, main
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import PAYOUT_WATERMARKS, TopicCatalog
from streams.ops.records import Outgoing, PartitionReader, RecordsError, Sender

_TIMEOUT_SECONDS = 30.0


@main.group("payouts")
def payouts() -> None:
    """Payouts that no webhook brings: Shopify Payments'."""


@payouts.command("sync")
@click.option(
    "--route",
    "names",
    multiple=True,
    help="Only this Shopify route of ERPBRIDGE_WEBHOOK_ROUTES (repeatable; default: every "
    "Shopify route with an admin_url and an ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry).",
)
@click.option(
    "--since-days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="How far back a route's first run reads.",
)
@click.pass_context
def sync(ctx: click.Context, names: tuple[str, ...], since_days: int) -> None:
    """Publish each Shopify route's paid Shopify Payments payouts on commerce.payments: a
    PaymentSettled per payment a payout settled, with Shopify's fee, keyed by its order.

    Shopify sends no webhook for a payout; run this on a schedule (deploy/k8s runs it as a
    CronJob). Each run starts where the route's last one stopped (its watermark on
    webhooks.payout-watermarks) and reads the Admin API with the route's admin_url and
    ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry (read_shopify_payments_payouts access). A payout's
    events are confirmed by the broker before its watermark moves, and keep Shopify's ids,
    so a run that fails and runs again doubles nothing. Exits 1 naming the route and the
    payout when one cannot be read or mapped; the routes before it keep what they published.
    """
    settings = connect(ctx)
    shopify = {
        name: route
        for name, route in settings.webhook_routes.items()
        if route.provider == "shopify" and (not names or name in names)
    }
    unknown = set(names) - set(shopify)
    if unknown:
        raise click.UsageError(
            f"no Shopify route {', '.join(sorted(unknown))} in ERPBRIDGE_WEBHOOK_ROUTES"
        )
    usable = {
        name: (route.admin_url, settings.webhook_admin_token(name))
        for name, route in shopify.items()
    }
    lacking = sorted(name for name, (url, token) in usable.items() if not (url and token))
    if names and lacking:
        raise click.UsageError(
            f"route {', '.join(lacking)} needs its admin_url and an ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry"
        )
    if not usable or len(lacking) == len(usable):
        raise click.UsageError(
            "no Shopify route has an admin_url and an ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry"
        )
    catalog = TopicCatalog.from_settings(settings)
    codec = codec_from_settings(settings)
    topic = catalog.physical(PAYOUT_WATERMARKS)
    try:
        with PartitionReader(settings.confluent_config()) as reader:
            watermarks = read_watermarks(reader, topic)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    since = (datetime.now(UTC) - timedelta(days=since_days)).isoformat(timespec="seconds")

    def encoded(item: Input) -> Outgoing:
        return encode(item, catalog, codec)

    sender = Sender(settings.producer_config())
    with httpx.Client(timeout=_TIMEOUT_SECONDS) as client:
        for name, (url, token) in sorted(usable.items()):
            if not (url and token):
                click.echo(f"{name}: skipped, no admin_url or admin token")
                continue
            admin = ShopifyAdmin(client, url, token)
            try:
                synced = sync_route(
                    name, admin, watermarks.get(name), since, encoded, sender, topic
                )
            except (ShopifyError, httpx.HTTPError, Unmappable, SyncError) as error:
                raise click.ClickException(f"{name}: {error}") from None
            where = (
                f"; the next run reads from {synced.watermark.issued_at}"
                if synced.watermark is not None
                else f"; none paid since {since}"
            )
            click.echo(
                f"{name}: published {counted(synced.settlements, 'settlement')} of "
                f"{counted(synced.payouts, 'payout')}{where}"
            )

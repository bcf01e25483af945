"""`erpbridge webhooks register`: the webhook subscriptions each shop needs, made idempotently."""

from __future__ import annotations

import click
import httpx

from connectors.webhooks.adyen.mapping import EVENT_CODES as ADYEN_EVENTS
from connectors.webhooks.routes import routes_of
from connectors.webhooks.shopify.admin import ShopifyError
from connectors.webhooks.shopify.mapping import TOPICS as SHOPIFY_TOPICS
from connectors.webhooks.shopify.subscriptions import ShopifySubscriptions
from connectors.webhooks.stripe.mapping import TYPES as STRIPE_EVENTS
from connectors.webhooks.subscriptions import SubscriptionApi, plan
from connectors.webhooks.woocommerce.mapping import TOPICS as WOOCOMMERCE_TOPICS
from connectors.webhooks.woocommerce.subscriptions import (
    WooCommerceError,
    WooCommerceSubscriptions,
)
from streams.cli.app import main, settings_of
from streams.ops.settings import Settings, WebhookRoute

_TIMEOUT_SECONDS = 30.0


@main.group("webhooks")
def webhooks() -> None:
    """Manage the storefronts' webhook subscriptions to the webhooks connector."""


@webhooks.command("register")
@click.option(
    "--route",
    "names",
    multiple=True,
    help="Only this route of ERPBRIDGE_WEBHOOK_ROUTES (repeatable; default: every route).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be created; create nothing.")
@click.pass_context
def register(ctx: click.Context, names: tuple[str, ...], dry_run: bool) -> None:
    """Create the webhook subscriptions each Shopify and WooCommerce route needs, pointing at
    ERPBRIDGE_WEBHOOK_PUBLIC_URL/webhooks/<provider>/<route>, and check those it has.

    Idempotent: a subscription already delivering that topic to that URL is kept. Prints
    what it created, kept, and would remove (subscriptions to that URL for topics erpbridge
    does not ingest, paused or disabled ones, second copies; erpbridge removes nothing).
    Each route needs its admin_url and its ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry: Shopify's
    Admin API access token, WooCommerce's "consumer_key:consumer_secret". Stripe and Adyen
    endpoints are set up in their dashboards; the command prints their URLs and events.
    """
    settings = settings_of(ctx)
    unknown = set(names) - set(settings.webhook_routes)
    if unknown:
        raise click.UsageError(f"no such webhook route: {', '.join(sorted(unknown))}")
    if not settings.webhook_public_url:
        raise click.UsageError("ERPBRIDGE_WEBHOOK_PUBLIC_URL is not set")
    try:
        routes = routes_of(settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    with httpx.Client(timeout=_TIMEOUT_SECONDS) as client:
        for (provider, name), route in routes.items():
            if names and name not in names:
                continue
            url = settings.webhook_public_url.rstrip("/") + route.path
            if provider not in ("shopify", "woocommerce"):
                events = STRIPE_EVENTS if provider == "stripe" else ADYEN_EVENTS
                click.echo(
                    f"{name}: set up {url} in the {provider} dashboard for {', '.join(events)}"
                )
                continue
            api = _api(client, settings, name, settings.webhook_routes[name])
            wanted = SHOPIFY_TOPICS if provider == "shopify" else WOOCOMMERCE_TOPICS
            try:
                _register(name, api, wanted, url, dry_run)
            except (ShopifyError, WooCommerceError, httpx.HTTPError) as error:
                raise click.ClickException(f"{name}: {error}") from None


def _api(
    client: httpx.Client, settings: Settings, name: str, route: WebhookRoute
) -> SubscriptionApi:
    token = settings.webhook_admin_token(name)
    if not route.admin_url or not token:
        raise click.UsageError(
            f"route {name!r} needs its admin_url and an ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry"
        )
    if route.provider == "shopify":
        return ShopifySubscriptions(client, route.admin_url, token)
    key, separator, secret = token.partition(":")
    if not separator:
        raise click.UsageError(
            f"route {name!r}: the WooCommerce token is consumer_key:consumer_secret"
        )
    # WooCommerce signs its deliveries with the secret given here: the route's newest.
    signing = settings.webhook_secrets_of(name)[0].decode()
    return WooCommerceSubscriptions(client, route.admin_url, key, secret, signing)


def _register(
    name: str, api: SubscriptionApi, wanted: tuple[str, ...], url: str, dry_run: bool
) -> None:
    steps = plan(wanted, url, api.subscriptions())
    for topic in steps.create:
        if dry_run:
            click.echo(f"{name}: would create {topic} -> {url}")
        else:
            created = api.subscribe(topic, url)
            click.echo(f"{name}: created {topic} -> {url} ({created.id})")
    for kept in steps.keep:
        click.echo(f"{name}: kept {kept.topic} -> {url} ({kept.id})")
    for extra in steps.remove:
        state = "" if extra.active else ", not active"
        click.echo(f"{name}: would remove {extra.topic} -> {url} ({extra.id}{state})")

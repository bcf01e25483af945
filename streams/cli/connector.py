"""`erpbridge connector ...`: the services between Kafka and outside systems."""

from __future__ import annotations

import click
from mode import Worker

from connectors.erp.adapters import adapter_for
from connectors.erp.sink import ErpSink
from connectors.erp.web import ConnectorWeb
from connectors.webhooks.service import WebhookService
from streams.cli.app import connect, main, settings_of
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import TopicCatalog
from streams.ops.logs import configure_logging


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

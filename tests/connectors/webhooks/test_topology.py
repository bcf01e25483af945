"""Retried and reordered webhooks through the real worker: one order, one sales order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectors.webhooks.service import WebhookService
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import ERP_COMMANDS, TopicCatalog
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from tests.connectors.webhooks.hooks import CODEC, Hooks
from tests.connectors.webhooks.shopify.test_mapping import ORDER_1001_EVENT_ID
from tests.connectors.webhooks.vendor import shopify, stripe, stripe_event
from tests.streams.topology.agents.pipeline import quiesce, read_all
from tests.support import RunningService, spawn_worker, wait_for

ONE_SALES_ORDER = {("450789469/sales-order/1", "450789469")}


def _sales_orders(settings: Settings, topics: TopicCatalog) -> set[tuple[str, str]]:
    """(command id, order id) of the CreateSalesOrder commands on erp.commands. A command may
    be there more than once (a duplicate input re-sends what it caused, in case that was
    lost); the ERP connector executes a command id once."""
    found = set()
    for message in read_all(settings, topics.physical(ERP_COMMANDS)):
        datum = CODEC.decode(message.value(), expected="erpbridge.ErpCommand").datum
        name, command = datum["command"]
        if name == "erpbridge.CreateSalesOrder":
            found.add((datum["command_id"], command["order_id"]))
    return found


def test_retried_and_reordered_deliveries_give_one_order_and_one_sales_order(
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
    tmp_path: Path,
) -> None:
    ensure_topics(
        webhook_settings.confluent_config(),
        webhook_topics,
        changelogs=changelog_sources(webhook_settings.app_id),
    )
    start_webhooks()
    hooks = Hooks(webhook_settings.webhook_web_port)
    # Order #1001's full amount captured on Stripe, for the order Shopify names 450789469.
    intent = stripe("payment_intent") | {
        "metadata": {"order_id": "450789469"},
        "amount_received": 40994,
    }
    captured = stripe_event("payment_intent.succeeded", intent)
    order = shopify("order.json")

    # The payment overtakes the order; each provider then re-sends its event, as it does
    # when an answer is lost.
    assert hooks.stripe(captured).status_code == 200
    assert hooks.shopify("orders/create", order, ORDER_1001_EVENT_ID).status_code == 200
    assert hooks.shopify("orders/create", order, ORDER_1001_EVENT_ID).status_code == 200
    assert hooks.stripe(captured).status_code == 200

    worker = spawn_worker(webhook_settings, tmp_path / "worker.log")
    try:
        wait_for(
            lambda: worker.accounting()["totals"]["consumed"] == 4,
            timeout=180,
            what="the worker to consume the four deliveries",
        )
        wait_for(
            lambda: _sales_orders(webhook_settings, webhook_topics) == ONE_SALES_ORDER,
            timeout=120,
            what="one CreateSalesOrder for order 450789469",
        )
        quiesce(webhook_settings, webhook_topics)
        totals = worker.accounting()["totals"]
        assert (totals["applied"], totals["duplicate"], totals["dead_lettered"]) == (2, 2, 0)
        assert _sales_orders(webhook_settings, webhook_topics) == ONE_SALES_ORDER
    finally:
        worker.stop()

"""Webhooks through the real worker: retried and reordered deliveries give one order and
one sales order; the order's fulfilments go back to its storefront, but not its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from connectors.webhooks.service import WebhookService
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import ERP_COMMANDS, ORDERS, STOREFRONT_FULFILMENTS, TopicCatalog
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import SampleEvent
from tests.connectors.webhooks.hooks import CODEC, Hooks
from tests.connectors.webhooks.shopify.test_mapping import ORDER_1001_EVENT_ID
from tests.connectors.webhooks.vendor import shopify, stripe, stripe_event
from tests.streams.topology.agents.pipeline import produce, quiesce, read_all
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


def test_a_fulfilment_the_storefront_did_not_report_goes_back_to_it_once(
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
    tmp_path: Path,
) -> None:
    routes = dict(webhook_settings.webhook_routes)
    routes["main"] = routes["main"].model_copy(update={"push_tracking": True})
    settings = webhook_settings.model_copy(update={"webhook_routes": routes})
    ensure_topics(
        settings.confluent_config(), webhook_topics, changelogs=changelog_sources(settings.app_id)
    )
    start_webhooks(webhook_routes=routes)
    hooks = Hooks(settings.webhook_web_port)
    assert hooks.shopify("orders/create", shopify("order.json"), ORDER_1001_EVENT_ID).is_success
    # Shopify's own fulfilment of the green iPod: the storefront knows it already.
    own = shopify("fulfillment.json") | {"location_id": 905684977}
    assert hooks.shopify("fulfillments/create", own, "fulfilment-webhook-1").is_success
    # The warehouse ships the red one with a tracking number Shopify does not know yet.
    shipped = {
        "event_id": "wms:FUL-WMS-1",
        "occurred_at": datetime(2008, 1, 11, 9, 30, tzinfo=UTC),
        "source": "wms",
        "order_id": "450789469",
        "event": (
            "erpbridge.OrderFulfilled",
            {
                "fulfillment_id": "FUL-WMS-1",
                "warehouse_id": "WH-EAST",
                "lines": [{"sku": "IPOD2008RED", "quantity": 1}],
                "carrier": "UPS",
                "tracking_number": "1Z999AA10123456784",
            },
        ),
    }
    produce(
        settings,
        webhook_topics,
        CODEC,
        [SampleEvent(ORDERS, "450789469", "erpbridge.OrderEvent", shipped)] * 2,  # and again
    )

    worker = spawn_worker(settings, tmp_path / "worker.log")
    try:
        wait_for(
            lambda: worker.accounting()["totals"]["consumed"] == 4,
            timeout=180,
            what="the worker to consume the order and the three fulfilments",
        )
        quiesce(settings, webhook_topics)
        assert worker.accounting()["totals"]["dead_lettered"] == 0
        records = read_all(settings, webhook_topics.physical(STOREFRONT_FULFILMENTS))
    finally:
        worker.stop()
    pushes = [CODEC.decode(r.value(), expected="erpbridge.StorefrontFulfilment") for r in records]
    assert {r.key() for r in records} == {b"450789469"}
    # Sent once, and again identically for the redelivered event (a duplicate input sends
    # what it caused again, in case that was lost).
    assert len(records) == 2 and len({r.value() for r in records}) == 1
    assert pushes[0].datum == {
        "event_id": "450789469/storefront-fulfilment/FUL-WMS-1",
        "occurred_at": datetime(2008, 1, 11, 9, 30, tzinfo=UTC),
        "source": "erpbridge",
        "route": "main",
        "order_id": "450789469",
        "fulfillment_id": "FUL-WMS-1",
        "warehouse_id": "WH-EAST",
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "lines": [{"sku": "IPOD2008RED", "quantity": 1}],
    }

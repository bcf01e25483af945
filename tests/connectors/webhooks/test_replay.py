"""`erpbridge dlq list|replay webhooks` on the session broker: webhooks the service
dead-lettered, mapped again once the route can map them, their events as written by hand."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from pydantic import SecretStr

from connectors.webhooks.service import WebhookService
from streams.contracts.deadletter import dead_letter
from streams.contracts.topics import (
    INVENTORY,
    ORDERS,
    PAYMENTS,
    WEBHOOKS,
    WEBHOOKS_DLQ,
    TopicCatalog,
)
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.webhooks.doubles import STRIPE_KEY, WOO_KEY, stripe_api, woocommerce_admin
from tests.connectors.webhooks.doubles import WOO_SECRET as WOO_API_SECRET
from tests.connectors.webhooks.hooks import (
    SHOPIFY_SECRETS,
    Hooks,
    b64_hmac,
    body_of,
    dead_letters,
    stored,
)
from tests.connectors.webhooks.stripe.test_mapping import SETTLED, settled_transactions
from tests.connectors.webhooks.test_service import by_key, datum
from tests.connectors.webhooks.vendor import shopify, stripe, stripe_event, woocommerce_listed_order
from tests.connectors.webhooks.woocommerce.test_mapping import (
    COMPLETED_723,
    REFUNDS_723,
    refunds_of_723,
)
from tests.support import RunningService, run, settings_env

LEVEL = {
    "event_id": "shopify:evt-level", "occurred_at": "2018-05-07T15:51:26-04:00",
    "source": "shopify", "sku": "IPOD2008GREEN",
    "event": {"type": "StockSnapshot", "warehouse_id": "WH-EAST", "on_hand": 6,
              "as_of": "2018-05-07T15:51:26-04:00"},
}  # fmt: skip
"""Shopify's sample inventory level (available 6 at location 905684977), once the route
maps that location to WH-EAST."""


def _env(settings: Settings, kafka_broker: Any) -> dict[str, str | None]:
    return {
        **settings_env(settings),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }


def _routes(settings: Settings, **changed: WebhookRoute) -> dict[str, WebhookRoute]:
    return {**settings.webhook_routes, **changed}


def test_dead_lettered_webhooks_replayed_once_the_route_maps_them_land_as_written_by_hand(
    kafka_broker: Any,
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
) -> None:
    # The shop opened a location the route does not know, and the payments route has no
    # API key to read what a payout settles: both verify, neither maps.
    no_location = WebhookRoute(provider="shopify", skus={"808950810": "IPOD2008GREEN"})
    unmapped = webhook_settings.model_copy(
        update={"webhook_routes": _routes(webhook_settings, main=no_location)}
    )
    start_webhooks(webhook_routes=unmapped.webhook_routes)
    hooks = Hooks(webhook_settings.webhook_web_port)
    level = shopify("inventory_level.json")
    assert hooks.shopify("inventory_levels/update", level, "evt-level").status_code == 200
    assert hooks.stripe(stripe_event("payout.paid", stripe("payout"))).status_code == 200
    # On partitions of their own, so read in no set order.
    assert sorted(d["erpbridge.dlq.reason"] for d in dead_letters(
        webhook_settings, webhook_topics, WEBHOOKS_DLQ)) == [
        "no-api-key", "unmapped-location"]  # fmt: skip
    dlq = webhook_topics.physical(WEBHOOKS_DLQ)

    listed = run(["dlq", "list", WEBHOOKS], _env(unmapped, kafka_broker))
    assert listed.exit_code == 0, listed.output
    header, first, second, total = listed.stdout.splitlines()
    assert header.split()[:4] == ["partition", "offset", "route", "reason"]
    assert first.split()[:4] == ["0", "0", "/webhooks/shopify/main", "unmapped-location"]
    assert first.endswith(
        "inventory item 808950810: location 905684977 has no warehouse in the route's warehouses"
    )
    assert second.split()[:4] == ["1", "0", "/webhooks/stripe/payments", "no-api-key"]
    assert total == f"2 dead letters in {dlq}"

    # Unchanged, nothing maps yet: both named with the reason of now, nothing published.
    again = run(["dlq", "replay", WEBHOOKS, "--all"], _env(unmapped, kafka_broker))
    assert again.exit_code == 1
    assert "still unmappable: unmapped-location" in again.stderr
    assert "still unmappable: no-api-key" in again.stderr
    assert f"2 dead letters of {dlq} still cannot be published" in again.stderr
    assert stored(webhook_settings, webhook_topics, INVENTORY) == []

    with stripe_api() as api:
        api.transactions["po_1Pgc79B7WZ01zgkWu1KToYf4"] = settled_transactions()
        fixed = webhook_settings.model_copy(
            update={
                "webhook_routes": _routes(
                    webhook_settings, payments=WebhookRoute(provider="stripe", admin_url=api.url)
                ),
                "webhook_admin_tokens": SecretStr(json.dumps({"payments": STRIPE_KEY})),
            }
        )
        dry = run(["dlq", "replay", WEBHOOKS, "--all", "--dry-run"], _env(fixed, kafka_broker))
        assert dry.exit_code == 0, dry.output
        assert dry.stdout.splitlines() == [
            "would publish partition 0 offset 0 (unmapped-location, /webhooks/shopify/main): "
            f"1 event to {webhook_topics.physical(INVENTORY)}",
            "would publish partition 1 offset 0 (no-api-key, /webhooks/stripe/payments): "
            f"2 events to {webhook_topics.physical(PAYMENTS)}",
            f"dry run: 2 dead letters of {dlq} would be published; nothing sent",
        ]
        assert stored(webhook_settings, webhook_topics, INVENTORY) == []

        chosen = run(["dlq", "replay", WEBHOOKS, "--reason", "unmapped-location"],
                     _env(fixed, kafka_broker))  # fmt: skip
        assert chosen.exit_code == 0, chosen.output
        assert chosen.stdout.splitlines()[-1] == f"published 1 dead letter of {dlq}"
        assert stored(webhook_settings, webhook_topics, INVENTORY) == [datum(LEVEL, INVENTORY)]

        every = run(["dlq", "replay", WEBHOOKS, "--all"], _env(fixed, kafka_broker))
        assert every.exit_code == 0, every.output
    assert by_key(stored(webhook_settings, webhook_topics, PAYMENTS)) == by_key(
        [datum(record, PAYMENTS) for record in SETTLED]
    )
    # Published again, each keeps the provider's event id: the topology keeps one.
    assert stored(webhook_settings, webhook_topics, INVENTORY) == [datum(LEVEL, INVENTORY)] * 2
    # The dead letters stay where they were.
    assert len(dead_letters(webhook_settings, webhook_topics, WEBHOOKS_DLQ)) == 2


def _write_letter(settings: Settings, topics: TopicCatalog, route: str, hmac: str) -> None:
    """A dead letter of Shopify's sample inventory level, written by someone other than the
    connector, signed with `hmac`."""
    body = body_of(shopify("inventory_level.json"))
    letter = dead_letter(
        dlq_topic=topics.physical(WEBHOOKS_DLQ),
        source_topic=route,
        partition=-1,
        offset=-1,
        key=hashlib.sha256(body).hexdigest().encode(),
        value=body,
        headers=[
            ("X-Shopify-Topic", b"inventory_levels/update"),
            ("X-Shopify-Hmac-Sha256", hmac.encode()),
            ("X-Shopify-Event-Id", b"evt-forged"),
        ],
        stage="webhook",
        reason="unmapped-location",
        error="location 905684977 has no warehouse",
    )
    producer = Producer(settings.producer_config())
    producer.produce(letter.topic, key=letter.key, value=letter.value, headers=letter.headers)
    assert producer.flush(30) == 0


def test_a_dead_letter_that_does_not_verify_or_whose_route_is_gone_is_not_published(
    kafka_broker: Any, webhook_settings: Settings, webhook_topics: TopicCatalog
) -> None:
    body = body_of(shopify("inventory_level.json"))
    _write_letter(webhook_settings, webhook_topics, "/webhooks/shopify/main",
                  b64_hmac("not-the-secret", body))  # fmt: skip
    _write_letter(webhook_settings, webhook_topics, "/webhooks/shopify/closed",
                  b64_hmac(SHOPIFY_SECRETS[0], body))  # fmt: skip

    result = run(["dlq", "replay", WEBHOOKS, "--all"], _env(webhook_settings, kafka_broker))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "partition 0 offset 0 (unmapped-location, /webhooks/shopify/main): its signature does "
        f"not verify with the route's secrets (mismatch); it stays on {webhook_topics.physical(WEBHOOKS_DLQ)}",
        "partition 0 offset 1 (unmapped-location, /webhooks/shopify/closed): no route "
        f"'/webhooks/shopify/closed' is configured now; it stays on {webhook_topics.physical(WEBHOOKS_DLQ)}",
        f"Error: 2 dead letters of {webhook_topics.physical(WEBHOOKS_DLQ)} still cannot be published",
    ]
    assert stored(webhook_settings, webhook_topics, INVENTORY) == []


def test_an_updated_orders_refund_lines_come_from_woocommerces_api_or_wait_for_a_replay(
    kafka_broker: Any,
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
) -> None:
    expected = [
        {key: value for key, value in record.items() if key not in ("topic", "key")}
        for record in [COMPLETED_723, *REFUNDS_723]
    ]
    with woocommerce_admin() as api:
        api.refunds[723] = refunds_of_723()
        woo = WebhookRoute(
            provider="woocommerce",
            warehouses={"default": "WH-WEST"},
            skus={"87": "WOO-ALBUM", "34": "WOO-CAP"},
            admin_url=api.url,
        )
        settings = webhook_settings.model_copy(
            update={
                "webhook_routes": _routes(webhook_settings, woo=woo),
                "webhook_admin_tokens": SecretStr(
                    json.dumps({"woo": f"{WOO_KEY}:{WOO_API_SECRET}"})
                ),
            }
        )
        start_webhooks(
            webhook_routes=settings.webhook_routes,
            webhook_admin_tokens=settings.webhook_admin_tokens,
        )
        hooks = Hooks(webhook_settings.webhook_web_port)
        # WooCommerce never re-sends a delivery: one whose refunds cannot be read is kept.
        api.failing = True
        assert hooks.woocommerce("order.updated", woocommerce_listed_order(723)).status_code == 200
        (letter,) = dead_letters(webhook_settings, webhook_topics, WEBHOOKS_DLQ)
        assert letter["erpbridge.dlq.reason"] == "refunds-unreadable"
        assert letter["erpbridge.dlq.error"] == (
            "listing the refunds of order 723: WooCommerce answered 500"
        )
        assert stored(webhook_settings, webhook_topics, ORDERS) == []

        api.failing = False
        replayed = run(["dlq", "replay", WEBHOOKS, "--all"], _env(settings, kafka_broker))
        assert replayed.exit_code == 0, replayed.output
        assert by_key(stored(webhook_settings, webhook_topics, ORDERS)) == by_key(
            [datum(record, ORDERS) for record in expected]
        )
        # The next delivery of the order reads them at once; the same events, the same ids.
        assert hooks.woocommerce("order.updated", woocommerce_listed_order(723)).status_code == 200
    assert by_key(stored(webhook_settings, webhook_topics, ORDERS)) == by_key(
        [datum(record, ORDERS) for record in expected * 2]
    )
    assert ("GET", "/wp-json/wc/v3/orders/723/refunds?per_page=100&page=1", None) in api.requests

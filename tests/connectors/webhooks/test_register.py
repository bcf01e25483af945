"""`erpbridge webhooks register` against HTTP doubles that hold to the documented request
shapes (Shopify's schema, WooCommerce's API index): it creates what is missing, keeps what
is there, lists what is ours but unwanted, and is idempotent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from connectors.webhooks.shopify.admin import ShopifyError
from connectors.webhooks.shopify.mapping import TOPICS as SHOPIFY_TOPICS
from connectors.webhooks.shopify.subscriptions import ShopifySubscriptions, enum_of
from connectors.webhooks.woocommerce.mapping import TOPICS as WOOCOMMERCE_TOPICS
from streams.cli import main
from tests.connectors.webhooks.doubles import (
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    Double,
    shopify_admin,
    woocommerce_admin,
)

PUBLIC = "https://hooks.example.com"
SHOP_URL = f"{PUBLIC}/webhooks/shopify/main"
WOO_URL = f"{PUBLIC}/webhooks/woocommerce/woo"


@pytest.fixture
def shopify() -> Iterator[Double]:
    with shopify_admin() as double:
        yield double


@pytest.fixture
def woo() -> Iterator[Double]:
    with woocommerce_admin() as double:
        yield double


def register(shopify: Double, woo: Double, *args: str) -> Result:
    routes: dict[str, Any] = {
        "main": {"provider": "shopify", "admin_url": shopify.url},
        "woo": {"provider": "woocommerce", "admin_url": woo.url},
        "payments": {"provider": "stripe"},
    }
    env = {
        "ERPBRIDGE_WEBHOOK_ROUTES": json.dumps(routes),
        "ERPBRIDGE_WEBHOOK_SECRETS": json.dumps(
            {"main": ["shpss_x"], "woo": ["woo-signing", "woo-old"], "payments": ["whsec_x"]}
        ),
        "ERPBRIDGE_WEBHOOK_ADMIN_TOKENS": json.dumps(
            {"main": SHOPIFY_TOKEN, "woo": f"{WOO_KEY}:{WOO_SECRET}"}
        ),
        "ERPBRIDGE_WEBHOOK_PUBLIC_URL": PUBLIC,
    }
    return CliRunner().invoke(main, ["webhooks", "register", *args], env=env)


def test_creates_what_each_shop_needs_then_keeps_it(shopify: Double, woo: Double) -> None:
    first = register(shopify, woo)
    assert first.exit_code == 0, first.output
    assert shopify.refused == [] and woo.refused == []
    lines = first.output.splitlines()
    for topic in SHOPIFY_TOPICS:
        assert any(line.startswith(f"main: created {topic} -> {SHOP_URL}") for line in lines)
    for topic in WOOCOMMERCE_TOPICS:
        assert any(line.startswith(f"woo: created {topic} -> {WOO_URL}") for line in lines)
    stripe = f"payments: set up {PUBLIC}/webhooks/stripe/payments in the stripe dashboard for "
    assert any(line.startswith(stripe) and "payout.paid" in line for line in lines)
    assert sorted(s["topic"] for s in shopify.subscriptions) == sorted(map(enum_of, SHOPIFY_TOPICS))
    # Storefront accounts, for the ERP's customers.
    assert {"CUSTOMERS_CREATE", "CUSTOMERS_UPDATE"} <= {s["topic"] for s in shopify.subscriptions}
    assert {"customer.created", "customer.updated"} <= {s["topic"] for s in woo.subscriptions}
    # WooCommerce signs with the route's newest secret, which it is given once, here.
    posted = [body for method, _, body in woo.requests if method == "POST"]
    assert {(b["topic"], b["delivery_url"], b["secret"], b["status"]) for b in posted} == {
        (topic, WOO_URL, "woo-signing", "active") for topic in WOOCOMMERCE_TOPICS
    }

    again = register(shopify, woo)
    assert again.exit_code == 0, again.output
    assert ": created " not in again.output
    assert len(shopify.subscriptions) == len(SHOPIFY_TOPICS)
    assert len(woo.subscriptions) == len(WOOCOMMERCE_TOPICS)
    assert again.output.count("main: kept ") == len(SHOPIFY_TOPICS)
    assert again.output.count("woo: kept ") == len(WOOCOMMERCE_TOPICS)


def test_lists_what_is_ours_but_unwanted_and_leaves_others_alone(
    shopify: Double, woo: Double
) -> None:
    shopify.subscriptions += [
        {"id": "gid://shopify/WebhookSubscription/901", "topic": "PRODUCTS_UPDATE", "uri": SHOP_URL},
        {"id": "gid://shopify/WebhookSubscription/902", "topic": "ORDERS_CREATE",
         "uri": "https://another-app.example.com/hooks"},
    ]  # fmt: skip
    woo.subscriptions.append(
        {"id": 55, "name": "old", "status": "disabled", "topic": "order.created",
         "delivery_url": WOO_URL}
    )  # fmt: skip
    result = register(shopify, woo, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        f"main: would remove PRODUCTS_UPDATE -> {SHOP_URL} (gid://shopify/WebhookSubscription/901)"
        in lines
    )
    assert f"woo: would remove order.created -> {WOO_URL} (55, not active)" in lines
    assert f"woo: would create order.created -> {WOO_URL}" in lines
    assert not any("another-app" in line for line in lines)
    # A dry run creates nothing.
    assert [b for m, _, b in woo.requests if m == "POST"] == []
    assert not any("mutation" in b["query"] for _, _, b in shopify.requests)
    assert len(shopify.subscriptions) == 2 and len(woo.subscriptions) == 1


def test_only_the_named_route_and_clear_errors(shopify: Double, woo: Double) -> None:
    result = register(shopify, woo, "--route", "woo")
    assert result.exit_code == 0, result.output
    assert shopify.requests == []
    unknown = register(shopify, woo, "--route", "nowhere")
    assert unknown.exit_code == 2
    assert "no such webhook route: nowhere" in unknown.output


def test_the_shopify_double_refuses_what_shopify_would(shopify: Double) -> None:
    with httpx.Client() as client:
        api = ShopifySubscriptions(client, shopify.url, SHOPIFY_TOKEN)
        with pytest.raises(ShopifyError, match="ORDERS_CREATED"):
            api.subscribe("orders/created", SHOP_URL)  # no such topic
        with pytest.raises(ShopifyError, match="401"):
            ShopifySubscriptions(client, shopify.url, "wrong").subscriptions()
    assert shopify.subscriptions == []

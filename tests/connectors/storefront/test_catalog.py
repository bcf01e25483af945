"""The ERP's products to a WooCommerce shop (the double, which checks every product argument
against WooCommerce's API index and keeps SKUs unique): created, updated where they differ,
archived, left alone when shown already, refused and dead-lettered when they cannot be
priced in the shop's currency."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.erp.master import ProductAttribute
from connectors.storefront.adapter import Status, SyncStatus
from connectors.storefront.levels import StockLevel
from connectors.storefront.products import Product
from connectors.storefront.woocommerce import WooCommerceStock
from streams.contracts.topics import ERP_CATALOG, STOREFRONT_CATALOG_RESULTS
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.storefront.flow import (
    ATTRIBUTES_NOW,
    catalog_item,
    dead_letters,
    drain,
    new_sink,
    produce,
    push_attributes,
    push_each,
    push_group,
    sink_settings,
    statuses,
)
from tests.connectors.webhooks.doubles import WOO_KEY, WOO_SECRET, Double, woocommerce_admin
from tests.support import wait_for


@pytest.fixture
def shop() -> Iterator[Double]:
    with woocommerce_admin() as double:
        double.products[11] = {"id": 11, "sku": "SKU-A", "name": "Old name", "description": "",
                               "regular_price": "10.00", "status": "publish"}  # fmt: skip
        double.products[12] = {"id": 12, "sku": "SKU-GONE", "name": "Gone", "description": "",
                               "regular_price": "5.00", "status": "publish"}  # fmt: skip
        yield double


def _settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double) -> Settings:
    route = WebhookRoute(
        provider="woocommerce", admin_url=shop.url, push_catalog=True, currency="USD"
    )
    return sink_settings(kafka_broker, topic_prefix, tmp_path, {"woo": route},
                         {"woo": f"{WOO_KEY}:{WOO_SECRET}"})  # fmt: skip


def test_the_erps_products_are_created_updated_and_archived_once(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    records = [
        catalog_item("SKU-A", "Merino Wool Beanie", {"USD": "24.9000", "EUR": "22.5000"}),
        catalog_item("SKU-NEW", "Waxed Canvas Tote", {"USD": "59.0000"}),
        catalog_item("SKU-GONE", "Gone", {"USD": "5.0000"}, active=False),
        catalog_item("SKU-NEVER", "Never sold", {"USD": "1.0000"}, active=False),
        catalog_item("SKU-EUR", "Euro only", {"EUR": "9.0000"}),
    ]
    sink = new_sink(settings)
    produce(settings, records, ERP_CATALOG)
    sink.start()
    try:
        first = drain(sink, settings, 5, STOREFRONT_CATALOG_RESULTS)
        produce(settings, records[:3], ERP_CATALOG)  # the same again: nothing to change
        results = drain(sink, settings, 8, STOREFRONT_CATALOG_RESULTS)
    finally:
        sink.close()

    # Per SKU in the order answered (one key, one partition).
    assert statuses(results, "sku") == {
        "SKU-A": ["UPDATED", "UNCHANGED"], "SKU-NEW": ["CREATED", "UNCHANGED"],
        "SKU-GONE": ["UPDATED", "UNCHANGED"], "SKU-NEVER": ["UNCHANGED"], "SKU-EUR": ["FAILED"],
    }  # fmt: skip
    products = {p["sku"]: p for p in shop.products.values()}
    assert {k: products["SKU-A"][k] for k in ("name", "regular_price", "status")} == {
        "name": "Merino Wool Beanie", "regular_price": "24.90", "status": "publish"
    }  # fmt: skip
    new = products["SKU-NEW"]
    assert (new["regular_price"], new["status"], new["manage_stock"], new["type"]) == (
        "59.00", "publish", True, "simple"
    )  # fmt: skip
    assert (products["SKU-GONE"]["status"], products["SKU-GONE"]["name"]) == ("draft", "Gone")
    assert "SKU-NEVER" not in products and "SKU-EUR" not in products
    (failed,) = [r for r in first if r["status"] == "FAILED"]
    assert failed["permanent"] and "no list price in the route's currency" in failed["message"]
    # Sent with its result, confirmed with it: there by the time the batch committed.
    ((key, reason, error),) = wait_for(
        lambda: dead_letters(settings, ERP_CATALOG), timeout=30, what="the dead letter"
    )
    assert (key, reason) == ("SKU-EUR", "storefront-refused") and "route woo" in error


def test_the_erps_attributes_are_the_products_list_of_attributes(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    assert push_attributes(settings, "SKU-AT") == ["CREATED", "UPDATED", "UNCHANGED"]
    (product,) = [p for p in shop.products.values() if p["sku"] == "SKU-AT"]
    assert [(a["name"], a["options"], a["visible"]) for a in product["attributes"]] == [
        (label, [value], True) for _, (label, value) in sorted(ATTRIBUTES_NOW.items())
    ]


def test_attributes_are_compared_as_woocommerce_keeps_them(shop: Double) -> None:
    """WooCommerce cleans an attribute's name and keeps a custom attribute's options joined
    by " | ", split again when read: a value holding "|" is several options, and pushing it
    again changes nothing. The merchant's own attributes give way to the ERP's."""
    shop.products[1] = {"id": 1, "sku": "SKU-AT", "name": "Attributed", "status": "publish",
                        "description": "", "regular_price": "10.00", "manage_stock": True,
                        "attributes": [{"id": 0, "name": "Gift wrap", "position": 0,
                                        "visible": True, "variation": False,
                                        "options": ["Yes"]}]}  # fmt: skip
    product = Product("woo", "SKU-AT", True, "Attributed", None, (("USD", Decimal("10")),),
                      attributes=(ProductAttribute("colours", "Colours  on offer", " Red | Blue "),
                                  ProductAttribute("empty", "Empty", " | ")))  # fmt: skip
    with httpx.Client() as client:
        adapter = WooCommerceStock(client, shop.url, f"{WOO_KEY}:{WOO_SECRET}")
        assert adapter.set_product(product).status is SyncStatus.UPDATED
        assert adapter.set_product(product).status is SyncStatus.UNCHANGED
    assert [(a["name"], a["options"]) for a in shop.products[1]["attributes"]] == [
        ("Colours on offer", ["Red", "Blue"])
    ]


def _variable(shop: Double, handle: str) -> dict[str, Any]:
    """The variable product of `handle` as the double holds it: status, its option's values,
    per variation SKU its price, visibility, option value, the ERP's attributes and stock."""
    (parent,) = [p for p in shop.products.values() if p["sku"] == handle]
    return {
        "type": parent["type"], "name": parent["name"], "status": parent["status"],
        "options": [(a["name"], a["options"], a["variation"]) for a in parent["attributes"]],
        "variations": {
            v["sku"]: (v["regular_price"], v["status"],
                       [(a["name"], a["option"]) for a in v["attributes"]],
                       json.loads(v["meta_data"][0]["value"])["size"]["value"],
                       v.get("stock_quantity"))
            for v in shop.products.values() if v.get("parent_id") == parent["id"]
        },
    }  # fmt: skip


def test_the_skus_of_one_erp_product_are_variations_of_one_variable_product(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    small, large = "TEE-S-w1", "TEE-L-w1"
    said, (made, changed, _, back) = push_group(
        settings, "w1", lambda: copy.deepcopy(_variable(shop, "erpbridge-group-tpl-w1"))
    )
    assert said == {
        small: ["CREATED", "UPDATED", "UNCHANGED", "UPDATED"],
        large: ["CREATED", "UPDATED", "UNCHANGED"],
    }
    option = [("Variant", ["Red / L", "Red / S"], True)]
    assert made == {
        "type": "variable", "name": "Tee w1", "status": "publish", "options": option,
        "variations": {small: ("10.00", "publish", [("Variant", "Red / S")], "S", None),
                       large: ("12.00", "publish", [("Variant", "Red / L")], "L", None)},
    }  # fmt: skip
    # Off sale alone: private, the product still sold with its other variation, whose new
    # value its option offers.
    assert changed["variations"][small][1] == "private"
    assert changed["variations"][large] == (
        "13.00", "publish", [("Variant", "Red / XL")], "XL", None
    )  # fmt: skip
    assert changed["options"] == [("Variant", ["Red / S", "Red / XL"], True)]
    assert back["variations"][small][:2] == ("11.00", "publish")

    # A variation's stock goes to its parent's variations.
    levels = [StockLevel("woo", sku, "WH-1", "default", n) for sku, n in ((small, 7), ("SKU-A", 3))]
    with httpx.Client() as client:
        stock = WooCommerceStock(client, shop.url, f"{WOO_KEY}:{WOO_SECRET}")
        outcomes = stock.set_levels(levels, {})
    assert [o.status for o in outcomes] == [Status.SET, Status.SET]
    assert _variable(shop, "erpbridge-group-tpl-w1")["variations"][small][4] == 7
    assert shop.products[11]["stock_quantity"] == 3


def test_a_variation_of_the_merchants_own_product_gets_only_its_price_and_status(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    size = {"id": 0, "name": "Size", "position": 0, "visible": True, "variation": True,
            "options": ["M", "L"]}  # fmt: skip
    shop.products[20] = {"id": 20, "sku": "SHIRT", "type": "variable", "name": "Shirt",
                         "status": "publish", "attributes": [size]}  # fmt: skip
    shop.products[21] = {"id": 21, "sku": "SHIRT-M", "type": "variation", "parent_id": 20,
                         "status": "publish", "regular_price": "30.00",
                         "attributes": [{"id": 0, "name": "Size", "option": "M"}]}  # fmt: skip
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    records = [
        catalog_item("SHIRT-M", "Shirt", {"USD": "32.0000"}, group=("tpl-9", "Shirt")),
        catalog_item(
            "SHIRT-M", "Shirt", {"USD": "32.0000"}, active=False, group=("tpl-9", "Shirt")
        ),
    ]
    assert push_each(settings, records) == {"SHIRT-M": ["UPDATED", "UPDATED"]}
    assert (shop.products[21]["regular_price"], shop.products[21]["status"]) == ("32.00", "private")
    assert shop.products[21]["attributes"] == [{"id": 0, "name": "Size", "option": "M"}]
    assert shop.products[20]["attributes"] == [size]
    assert not [p for p in shop.products.values() if str(p["sku"]).startswith("erpbridge-group")]

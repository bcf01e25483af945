"""Which level each storefront gets (pure)."""

from __future__ import annotations

from typing import Any

from connectors.storefront.levels import StockLevel, latest, levels_of, pushing_routes
from streams.ops.settings import WebhookRoute

SHOP = WebhookRoute(
    provider="shopify",
    warehouses={"gid://shopify/Location/1": "WH-EAST", "gid://shopify/Location/2": "WH-WEST"},
    push_stock=True,
    stock_buffer=2,
    stock_buffers={"SKU-RARE": 0},
)
WOO = WebhookRoute(provider="woocommerce", warehouses={"default": "WH-EAST"}, push_stock=True)


def _availability(sku: str, **available: int) -> dict[str, Any]:
    return {
        "sku": sku,
        "warehouses": [
            {"warehouse_id": w, "on_hand": n, "reserved": 0, "available": n}
            for w, n in available.items()
        ],
    }


def test_each_route_gets_its_warehouses_less_its_buffer_never_below_zero() -> None:
    levels = levels_of(_availability("SKU-1", **{"WH-EAST": 10, "WH-WEST": 1}), {"shop": SHOP})
    assert [(lv.location, lv.warehouse_id, lv.quantity) for lv in levels] == [
        ("gid://shopify/Location/1", "WH-EAST", 8),
        ("gid://shopify/Location/2", "WH-WEST", 0),
    ]
    (rare,) = levels_of(_availability("SKU-RARE", **{"WH-EAST": 1}), {"woo": WOO})
    assert rare == StockLevel("woo", "SKU-RARE", "WH-EAST", "default", 1)
    # The SKU's own buffer applies on the route that names it.
    east = levels_of(_availability("SKU-RARE", **{"WH-EAST": 1}), {"shop": SHOP})[0]
    assert east.quantity == 1


def test_a_warehouse_the_record_no_longer_lists_is_set_to_zero() -> None:
    levels = levels_of(_availability("SKU-1", **{"WH-EAST": 5}), {"shop": SHOP})
    assert {lv.warehouse_id: lv.quantity for lv in levels} == {"WH-EAST": 3, "WH-WEST": 0}


def test_only_the_routes_that_push_stock_push() -> None:
    quiet = WebhookRoute(provider="woocommerce", warehouses={"default": "WH-EAST"})
    assert pushing_routes({"shop": SHOP, "quiet": quiet}) == {"shop": SHOP}


def test_the_latest_level_per_route_sku_and_warehouse_wins() -> None:
    first = StockLevel("shop", "SKU-1", "WH-EAST", "loc", 5)
    other = StockLevel("woo", "SKU-1", "WH-EAST", "default", 4)
    newer = StockLevel("shop", "SKU-1", "WH-EAST", "loc", 3)
    assert latest([first, other, newer]) == [other, newer]

"""Which stock level each storefront gets (pure): erpbridge's availability per SKU and
warehouse, less the route's safety buffer, for the warehouses the route maps to its
locations; the latest per SKU and location wins."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.ops.settings import WebhookRoute


@dataclass(frozen=True, slots=True)
class StockLevel:
    """A level to set: `quantity` of `sku` at the storefront's `location` (the route's id
    for erpbridge's `warehouse_id`)."""

    route: str
    sku: str
    warehouse_id: str
    location: str
    quantity: int

    @property
    def key(self) -> str:
        return f"{self.route}:{self.sku}@{self.warehouse_id}"


def pushing_routes(routes: Mapping[str, WebhookRoute]) -> dict[str, WebhookRoute]:
    """The routes the storefront sink serves: stock, tracking, the catalog, customers, or
    several."""
    return {
        name: route
        for name, route in routes.items()
        if route.push_stock or route.push_tracking or route.push_catalog or route.push_customers
    }


def levels_of(
    availability: Mapping[str, Any], routes: Mapping[str, WebhookRoute]
) -> list[StockLevel]:
    """The levels one inventory.availability record sets on the pushing `routes`.

    A warehouse the record no longer lists holds nothing available: a route's mapped
    warehouse missing from it is pushed 0, so a storefront never keeps stock erpbridge lost.
    """
    sku = availability["sku"]
    available = {w["warehouse_id"]: w["available"] for w in availability["warehouses"]}
    levels = []
    for name, route in routes.items():
        if not route.push_stock:
            continue
        buffer = route.stock_buffers.get(sku, route.stock_buffer)
        for location, warehouse in sorted(route.warehouses.items()):
            quantity = max(0, available.get(warehouse, 0) - buffer)
            levels.append(StockLevel(name, sku, warehouse, location, quantity))
    return levels


def latest(levels: Iterable[StockLevel]) -> list[StockLevel]:
    """The last level per route, SKU and warehouse, in the order of their last arrival: what a
    batch that waited (on the storefront's rate limit) still needs to push."""
    found: dict[str, StockLevel] = {}
    for level in levels:
        found.pop(level.key, None)
        found[level.key] = level
    return list(found.values())

"""How a route's provider ids become erpbridge's: warehouses, SKUs, order references.

Given by configuration (a WebhookRoute); an id it lacks is Unmappable naming the id, so a
new location or product shows up in webhooks.dlq rather than as stock at a guessed place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.webhooks.inputs import Unmappable


@dataclass(frozen=True)
class References:
    warehouses: Mapping[str, str] = field(default_factory=dict)
    """Provider location id -> erpbridge warehouse."""
    skus: Mapping[str, str] = field(default_factory=dict)
    """Provider inventory item id -> SKU, where stock webhooks name no SKU."""
    order_reference: str = "order_id"
    """The gateway metadata key that holds erpbridge's order id (Stripe)."""
    channel: str = "web"
    route: str | None = None
    """The route's name: the storefront its orders were placed on (OrderPlaced.storefront)."""

    def warehouse(self, location_id: str | int | None, owner: str) -> str:
        """The warehouse of `owner`'s location (`owner` names the record, for the error)."""
        if location_id is None:
            raise Unmappable("missing-location", f"{owner} names no location")
        try:
            return self.warehouses[str(location_id)]
        except KeyError:
            raise Unmappable(
                "unmapped-location",
                f"{owner}: location {location_id} has no warehouse in the route's warehouses",
            ) from None

    def sku(self, inventory_item_id: str | int) -> str:
        try:
            return self.skus[str(inventory_item_id)]
        except KeyError:
            raise Unmappable(
                "unmapped-inventory-item",
                f"inventory item {inventory_item_id} has no SKU in the route's skus",
            ) from None

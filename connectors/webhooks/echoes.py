"""Loop suppression: a storefront's stock webhook that only echoes what erpbridge itself
pushed to the storefront is not a new stock change.

Neither Shopify's `inventory_levels/update` nor WooCommerce's `product.updated` says who
changed the level, so the marker is erpbridge's own record of each push: before it sets a
level on a storefront, the pusher writes a `Push` (SKU, warehouse, quantity, when) to the
compacted topic storefront.stock-pushes, keyed by SKU and warehouse. Every webhooks
replica reads that topic (from its start: compaction keeps the latest push per key) into
`Echoes`. A stock webhook is an echo when the latest push of its SKU and warehouse set
exactly the level the webhook reports, no longer than the echo window ago. A level that
differs (a sale landed in between), or an old push, is a real change and is ingested.
"""

from __future__ import annotations

from streams.contracts.stock_pushes import Push


class Echoes:
    """The latest push per SKU and warehouse, and whether a reported level echoes it."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._latest: dict[tuple[str, str], Push] = {}

    def pushed(self, push: Push) -> None:
        key = (push.sku, push.warehouse_id)
        known = self._latest.get(key)
        if known is None or push.pushed_ms >= known.pushed_ms:
            self._latest[key] = push

    def echoes(self, sku: str, warehouse_id: str, level: int, now_ms: int) -> bool:
        push = self._latest.get((sku, warehouse_id))
        return (
            push is not None
            and push.quantity == level
            and 0 <= now_ms - push.pushed_ms <= self.window_ms
        )

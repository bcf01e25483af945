"""An order's refunds with their lines, read from WooCommerce's REST API: what an
`order.updated` webhook does not carry (the order lists each refund's id and total only).

GET /wp-json/wc/v3/orders/<id>/refunds, page by page (X-WP-TotalPages), with the route's
consumer key and secret (a read-only key is enough)."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.webhooks.inputs import Unmappable

_PAGE = 100


async def order_refunds(
    client: httpx.AsyncClient, shop_url: str, token: str, order_id: str
) -> list[dict[str, Any]]:
    """Every refund of order `order_id`. Unmappable when WooCommerce does not list them: it
    never re-sends a delivery, so the webhook waits on webhooks.dlq for a replay."""
    key, _, secret = token.partition(":")
    url = f"{shop_url.rstrip('/')}/wp-json/wc/v3/orders/{order_id}/refunds"
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        try:
            response = await client.get(
                url, params={"per_page": _PAGE, "page": page}, auth=(key, secret)
            )
        except httpx.HTTPError as error:
            raise Unmappable(
                "refunds-unreadable", f"listing the refunds of order {order_id}: {error!r}"
            ) from None
        if response.status_code != 200:
            raise Unmappable(
                "refunds-unreadable",
                f"listing the refunds of order {order_id}: WooCommerce answered "
                f"{response.status_code}",
            )
        found += response.json()
        if page >= int(response.headers.get("X-WP-TotalPages", "1")):
            return found
        page += 1

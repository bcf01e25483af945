"""The balance transactions a Stripe payout paid out, read from Stripe's API: what the
payout.paid webhook does not carry (the payments it settles and their fees).

GET /v1/balance_transactions?payout=po_… with each transaction's source (the charge)
expanded, page by page; the route's API key (a restricted key that may read balance
transactions and charges is enough)."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.webhooks.inputs import Unavailable

API_URL = "https://api.stripe.com"
_PAGE = 100


class StripeApiError(Unavailable):
    """Stripe did not list the transactions now: the webhook gets a 503 and comes again."""


async def payout_transactions(
    client: httpx.AsyncClient, api_url: str, key: str, payout_id: str
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"payout": payout_id, "limit": _PAGE, "expand[]": "data.source"}
    while True:
        try:
            response = await client.get(
                f"{api_url.rstrip('/')}/v1/balance_transactions", params=params, auth=(key, "")
            )
        except httpx.HTTPError as error:
            raise StripeApiError(f"listing payout {payout_id}: {error!r}") from None
        if response.status_code != 200:
            raise StripeApiError(
                f"listing payout {payout_id}: Stripe answered {response.status_code}"
            )
        page = response.json()
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]

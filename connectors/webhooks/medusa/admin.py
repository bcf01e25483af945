"""Medusa 2's Admin API as the poll reads it: with a secret API key (HTTP Basic, the
key as user), JSON numbers as Decimal, an answer other than 200 raised with what Medusa
said."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from connectors.webhooks.medusa.mapping import CUSTOMER_FIELDS, ORDER_FIELDS, RECEIPTS
from streams.contracts.jsonlines import format_timestamp

PAGE = 100
SWEEP_PAGE = 500
"""Customers per page of the address sweep: fewer, larger pages cost Medusa less in all."""
# What identifies a changed order, payment or customer, and the order a payment belongs to.
_LISTED = {
    "orders": "id,updated_at",
    "payments": "id,updated_at,payment_collection.order.id",
    "customers": "id,updated_at",
}


class MedusaError(RuntimeError):
    """What Medusa answered instead of the data, or that it did not answer."""


@dataclass(frozen=True)
class Changed:
    """An order, payment or customer whose `updated_at` is in the range asked for."""

    id: str
    updated_at: datetime
    order_id: str | None
    """The order it is or belongs to; None for a customer."""


class MedusaAdmin:
    def __init__(self, client: httpx.Client, url: str, secret_key: str) -> None:
        self._client = client
        self.url = url.rstrip("/")
        self._auth = (secret_key, "")

    def changed(self, kind: str, since: datetime) -> list[Changed]:
        """Every order, payment or customer (`kind`) updated at or after `since`, oldest first."""
        found: list[Changed] = []
        while True:
            page = self._get(
                f"/admin/{kind}",
                {
                    "updated_at[$gte]": format_timestamp(since),
                    "order": "updated_at",
                    "fields": _LISTED[kind],
                    "limit": PAGE,
                    "offset": len(found),
                },
            )
            rows = page[kind]
            found += [_changed(kind, row) for row in rows]
            if not rows or len(found) >= page["count"]:
                return found

    def readdressed(self, since: datetime) -> list[Changed]:
        """Every customer with an address added or changed at or after `since` after the
        customer's own last change, as of that address's time, oldest first.

        Medusa moves no customer's `updated_at` for its addresses, and its customer list
        takes no filter on them, so every customer is read (keyset-paged by id)."""
        found: list[Changed] = []
        after = ""
        while True:
            params: dict[str, Any] = {
                "order": "id",
                "fields": "id,updated_at,addresses.updated_at",
                "limit": SWEEP_PAGE,
            }
            if after:
                params["id[$gt]"] = after
            rows = self._get("/admin/customers", params)["customers"]
            for row in rows:
                changed = _readdressed(row)
                if changed is not None and changed.updated_at >= since:
                    found.append(changed)
            if len(rows) < SWEEP_PAGE:
                return sorted(found, key=lambda row: row.updated_at)
            after = str(rows[-1]["id"])

    def order(self, order_id: str) -> tuple[dict[str, Any], bytes]:
        """The order with everything its mapping reads, parsed and as Medusa sent it."""
        return self._one("order", order_id, ORDER_FIELDS)

    def receipts(self, order_id: str) -> list[dict[str, Any]]:
        """The order's confirmed return receipts, with the units each received."""
        found: list[dict[str, Any]] = self._get(f"/admin/orders/{order_id}/changes", RECEIPTS)[
            "order_changes"
        ]
        return found

    def customer(self, customer_id: str) -> tuple[dict[str, Any], bytes]:
        """The customer with everything its mapping reads, parsed and as Medusa sent it."""
        return self._one("customer", customer_id, CUSTOMER_FIELDS)

    def _one(self, kind: str, id: str, fields: str) -> tuple[dict[str, Any], bytes]:
        answer, body = self._call(f"/admin/{kind}s/{id}", {"fields": fields})
        found: dict[str, Any] = answer[kind]
        return found, body

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._call(path, params)[0]

    def _call(self, path: str, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        try:
            response = self._client.get(self.url + path, params=params, auth=self._auth)
        except httpx.HTTPError as error:
            raise MedusaError(f"GET {self.url}{path}: {error}") from None
        if response.status_code != 200:
            raise MedusaError(
                f"GET {self.url}{path} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            answer: dict[str, Any] = json.loads(response.content, parse_float=Decimal)
        except ValueError as error:
            raise MedusaError(f"GET {self.url}{path} answered no JSON: {error}") from None
        return answer, response.content


def _readdressed(row: dict[str, Any]) -> Changed | None:
    try:
        own = datetime.fromisoformat(row["updated_at"])
        newest = max(
            (datetime.fromisoformat(a["updated_at"]) for a in row.get("addresses") or []),
            default=own,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise MedusaError(f"a listed customer is not what Medusa's API serves: {error}") from None
    return Changed(str(row["id"]), newest, None) if newest > own else None


def _changed(kind: str, row: dict[str, Any]) -> Changed:
    try:
        order = ((row.get("payment_collection") or {}).get("order") or {}).get("id")
        return Changed(
            str(row["id"]),
            datetime.fromisoformat(row["updated_at"]),
            str(row["id"]) if kind == "orders" else order,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise MedusaError(
            f"a listed {kind[:-1]} is not what Medusa's API serves: {error}"
        ) from None

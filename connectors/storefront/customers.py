"""Which customers each storefront holds (pure): the ERP's customer of an erp.customers
record, for every route with push_customers.

The storefront's account keeps the ERP's customer id (`MARK`), by which it is found again,
whatever its email becomes. A customer the ERP deactivates or deletes (a tombstone) is
left as the storefront has it: the account, its logins and its orders are the customer's.
The ERP keeps one name per customer; it goes whole into the account's first name, since
no rule splits a name (or a company's) into first and last reliably.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.erp.master import Address
from streams.ops.settings import WebhookRoute

MARK = "erpbridge_customer_id"
"""The key under which a storefront account keeps the ERP's customer id (its metadata)."""


@dataclass(frozen=True, slots=True)
class Customer:
    route: str
    customer_id: str
    name: str
    email: str | None
    """None: nothing a storefront account can be made of (SKIPPED)."""
    phone: str | None
    address: Address | None
    """The ERP's first address of the customer."""

    @property
    def key(self) -> str:
        return f"{self.route}:{self.customer_id}"


def customers_of(
    customer_id: str, datum: Mapping[str, Any] | None, routes: Mapping[str, WebhookRoute]
) -> list[Customer]:
    """The customers one erp.customers record (an erpbridge.ErpCustomer datum, or None for
    a tombstone of `customer_id`) pushes to the `routes` with push_customers."""
    if datum is None or not datum["active"]:
        return []
    addresses = datum["addresses"]
    address = Address(**addresses[0]) if addresses else None
    return [
        Customer(name, customer_id, datum["name"], datum["email"], datum["phone"], address)
        for name, route in sorted(routes.items())
        if route.push_customers
    ]

"""Which customers each storefront holds (pure): the ERP's customer of an erp.customers
record, for every route with push_customers.

The storefront's account keeps the ERP's customer id (`MARK`), by which it is found again,
whatever its email becomes. A customer the ERP deactivates or deletes (a tombstone) is
left as the storefront has it: the account, its logins and its orders are the customer's.
The ERP keeps one name per customer; it goes whole into the account's first name, since
no rule splits a name (or a company's) into first and last reliably.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


Account = Mapping[str, Any]
"""A storefront's account as its API shows it."""


def account_of(
    mark: str,
    by_email: Sequence[Account],
    others: Sequence[Account],
    mark_of: Callable[[Account], str | None],
) -> tuple[Account | None, str | None]:
    """The customer's storefront account among those of its email and `others` found for
    it: the one carrying `mark` (the ERP's id kept on it), else the unmarked one of its
    email (the customer's own, to be marked). And, when the account of its email carries
    another ERP customer's mark instead, no account and that mark: platforms keep one
    account per email, so it cannot be the customer's."""
    for account in [*by_email, *others]:
        if mark_of(account) == mark:
            return account, None
    for account in by_email:
        other = mark_of(account)
        return (None, other) if other is not None else (account, None)
    return None, None

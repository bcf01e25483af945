"""Which customers each storefront holds (pure): the ERP's customer of an erp.customers
record, for every route with push_customers.

The storefront's account keeps the ERP's customer id (`MARK`), by which it is found again,
whatever its email becomes. A customer the ERP deactivates or deletes (a tombstone) is
left as the storefront has it: the account, its logins and its orders are the customer's.
The ERP keeps one name per customer; it goes whole into the account's first name, since
no rule splits a name (or a company's) into first and last reliably.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.erp.master import Address
from streams.ops.settings import WebhookRoute

MARK = "erpbridge_customer_id"
"""The key under which a storefront account keeps the ERP's customer id: Medusa's
`metadata`, WooCommerce's `meta_data`."""
CUSTOMER_TAG = "erpbridge-customer-"
"""Shopify keeps the ERP's customer id in a tag, `erpbridge-customer-<id>` (`customer_tag`)."""
TAG_LIMIT = 40
"""Characters in a Shopify tag."""


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
    price_list: str | None = None
    """The ERP's price list the customer buys at (products.Contract); None: list prices."""

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
        Customer(
            name,
            customer_id,
            datum["name"],
            datum["email"],
            datum["phone"],
            address,
            datum.get("price_list"),
        )
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


def customer_tag(customer_id: str) -> str:
    """The Shopify tag that holds the ERP's customer id (hashed when too long)."""
    tag = CUSTOMER_TAG + customer_id
    if len(tag) <= TAG_LIMIT:
        return tag
    return CUSTOMER_TAG + hashlib.sha256(customer_id.encode()).hexdigest()[:24]


def tagged_customer_id(tags: Iterable[str]) -> str | None:
    """The ERP's customer id a Shopify account's tags hold (`customer_tag`), None when no tag
    is erpbridge's. A hashed tag cannot be read back: its suffix, the hash, is returned as
    it is, which `customer_tag` of the right id gives again."""
    for tag in tags:
        if tag.startswith(CUSTOMER_TAG):
            return tag.removeprefix(CUSTOMER_TAG)
    return None


def marked_in(meta_data: Iterable[Mapping[str, Any]]) -> str | None:
    """The ERP's customer id among a WooCommerce account's `meta_data` ({key, value}), if any."""
    for meta in meta_data:
        if meta.get("key") == MARK and meta.get("value") not in (None, ""):
            return str(meta["value"])
    return None

"""Which product each storefront shows (pure): the ERP's product of an erp.catalog record,
for every route with push_catalog, priced in the route's currency where it has one.

A product the ERP no longer sells (active false), or no longer has (a tombstone), is to be
archived: the storefront keeps it, unsold, with what it showed.

The ERP's attributes are the product's whole set: each storefront keeps them where they are
erpbridge's alone (Shopify's metafields of the `erpbridge` namespace, Medusa's metadata key
`erpbridge_attributes`) or, where a product has one list of attributes (WooCommerce), as
that list.

The SKUs of one ERP product (their `group` on erp.catalog) are the variants of one
storefront product, found by its handle (`group_handle`): each variant has the one option
`VARIANT_OPTION`, valued by its attributes' values (`variant_label`). A SKU the storefront
already sells as a product of its own stays one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connectors.erp.master import ProductAttribute, ProductGroup
from streams.ops.settings import WebhookRoute


@dataclass(frozen=True, slots=True)
class Contract:
    """What one of the ERP's price lists charges for the product, in one currency."""

    price_list: str
    """The ERP's id of the price list (Customer.price_list of its customers)."""
    name: str
    currency: str
    tiers: tuple[tuple[int, Decimal], ...]
    """(from quantity, unit price), the first from 0."""


VARIANT_OPTION = "Variant"
"""The one option of a storefront product whose variants are an ERP product's SKUs."""


def group_handle(group_id: str) -> str:
    """The handle (unique, URL-safe) of the storefront product of the ERP's product."""
    return "erpbridge-group-" + re.sub(r"[^a-z0-9]+", "-", group_id.lower()).strip("-")


def contract_title(price_list: str) -> str:
    """How a storefront's price list (and Shopify's catalog) of the ERP's price list is known:
    neither platform keeps metadata on them."""
    return f"erpbridge price list {price_list}"


@dataclass(frozen=True, slots=True)
class Product:
    route: str
    sku: str
    active: bool
    name: str | None
    """None for a product the ERP no longer has: only its archiving is pushed."""
    description: str | None
    prices: tuple[tuple[str, Decimal], ...]
    """(ISO currency, list price of one unit), sorted by currency."""
    contracts: tuple[Contract, ...] = ()
    """The ERP's price lists' prices in the route's currency, by price list."""
    attributes: tuple[ProductAttribute, ...] = ()
    """By name."""
    group: ProductGroup | None = None
    """The ERP's product it is a variant of: the storefront product it is made in."""

    @property
    def key(self) -> str:
        return f"{self.route}:{self.sku}"

    @property
    def variant_label(self) -> str:
        """Its value of VARIANT_OPTION: its attributes' values, or its SKU without any."""
        return " / ".join(a.value for a in self.attributes if a.value) or self.sku


def products_of(
    sku: str, item: Mapping[str, Any] | None, routes: Mapping[str, WebhookRoute]
) -> list[Product]:
    """The products one erp.catalog record (an erpbridge.CatalogItem datum, or None for a
    tombstone of `sku`) pushes to the `routes` with push_catalog."""
    found = []
    for name, route in sorted(routes.items()):
        if not route.push_catalog:
            continue
        if item is None or not item["active"]:
            found.append(Product(name, sku, False, None, None, ()))
            continue
        prices = tuple(
            (price["currency"], Decimal(price["amount"]))
            for price in item["list_prices"]
            if route.currency is None or price["currency"] == route.currency
        )
        contracts = tuple(
            Contract(
                prices["price_list"],
                prices["name"],
                prices["currency"],
                tuple((t["min_quantity"], Decimal(t["unit_price"])) for t in prices["tiers"]),
            )
            for prices in item.get("price_lists") or ()
            if route.currency is None or prices["currency"] == route.currency
        )
        attributes = tuple(
            ProductAttribute(a["name"], a["label"], a["value"])
            for a in sorted(item.get("attributes") or (), key=lambda a: a["name"])
        )
        group = item.get("group")
        found.append(
            Product(
                name, sku, True, item["name"], item["description"], prices, contracts, attributes,
                None if group is None else ProductGroup(group["id"], group["name"]),
            )
        )  # fmt: skip
    return found

"""An ERP's master data as erpbridge publishes it: products on erp.catalog and customers on
erp.customers, and the read side each ERP adapter offers for them.

A reader answers "what changed since", never "what is new to you": the source
(connectors.erp.source) compares each answer with what the topics already hold, so a
reader may return a row more than once and an overlap in its window costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

CATALOG_SCHEMA = "erpbridge.CatalogItem"
CUSTOMER_SCHEMA = "erpbridge.ErpCustomer"


@dataclass(frozen=True, slots=True)
class ListPrice:
    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PriceTier:
    min_quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class PriceListPrice:
    """What one of the ERP's price lists charges for a product, by quantity break."""

    price_list: str
    name: str
    currency: str
    tiers: tuple[PriceTier, ...]


@dataclass(frozen=True, slots=True)
class ProductAttribute:
    name: str
    label: str
    value: str
    """As text (erpbridge.ProductAttribute)."""


@dataclass(frozen=True, slots=True)
class ProductGroup:
    """The ERP's product a SKU is a variant of (erpbridge.ProductGroup)."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CatalogItem:
    sku: str
    name: str
    description: str | None
    unit: str
    active: bool
    list_prices: tuple[ListPrice, ...]
    erp_id: str
    updated_at: datetime
    price_lists: tuple[PriceListPrice, ...] = ()
    attributes: tuple[ProductAttribute, ...] = ()
    group: ProductGroup | None = None

    @property
    def key(self) -> str:
        return self.sku


@dataclass(frozen=True, slots=True)
class Address:
    name: str | None
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None


@dataclass(frozen=True, slots=True)
class ErpCustomer:
    customer_id: str
    name: str
    email: str | None
    phone: str | None
    active: bool
    addresses: tuple[Address, ...]
    erp_id: str
    updated_at: datetime
    price_list: str | None = None
    """The id of the price list the customer buys at; None: list prices."""

    @property
    def key(self) -> str:
        return self.customer_id


class MasterDataReader(Protocol):
    """One ERP's products and customers, as changed since a time (everything for None).

    `updated_at` of what it returns is the ERP's own change time; rows whose key the ERP
    lacks (a product without a code) are left out, since nothing else could name them.
    """

    source: str
    """The `source` of what it publishes, e.g. erp:tryton."""

    async def products(self, since: datetime | None) -> Sequence[CatalogItem]: ...

    async def customers(self, since: datetime | None) -> Sequence[ErpCustomer]: ...


def catalog_datum(item: CatalogItem, source: str) -> dict[str, Any]:
    """`item` as erpbridge.CatalogItem's Avro datum."""
    return {
        "sku": item.sku,
        "name": item.name,
        "description": item.description,
        "unit": item.unit,
        "active": item.active,
        "list_prices": [
            {"currency": price.currency, "amount": price.amount}
            for price in sorted(item.list_prices, key=lambda price: price.currency)
        ],
        "price_lists": [
            {
                "price_list": prices.price_list,
                "name": prices.name,
                "currency": prices.currency,
                "tiers": [
                    {"min_quantity": tier.min_quantity, "unit_price": tier.unit_price}
                    for tier in prices.tiers
                ],
            }
            for prices in sorted(item.price_lists, key=lambda prices: prices.price_list)
        ],
        "attributes": [
            {"name": a.name, "label": a.label, "value": a.value}
            for a in sorted(item.attributes, key=lambda a: a.name)
        ],
        "group": None if item.group is None else {"id": item.group.id, "name": item.group.name},
        "source": source,
        "erp_id": item.erp_id,
        "updated_at": item.updated_at,
    }


def customer_datum(customer: ErpCustomer, source: str) -> dict[str, Any]:
    """`customer` as erpbridge.ErpCustomer's Avro datum."""
    return {
        "customer_id": customer.customer_id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "active": customer.active,
        "addresses": [
            {
                "name": address.name,
                "street": address.street,
                "city": address.city,
                "region": address.region,
                "postal_code": address.postal_code,
                "country": address.country,
            }
            for address in customer.addresses
        ],
        "price_list": customer.price_list,
        "source": source,
        "erp_id": customer.erp_id,
        "updated_at": customer.updated_at,
    }

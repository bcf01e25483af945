"""Tryton's products and customers, for erp.catalog and erp.customers (the read side of the
Tryton adapter).

A product is a `product.product` with a code (the SKU); its name, description, unit and
list price (per company) live on its template, so a change to either counts. The template
is its group: the variants of one template share it. A customer is a `party.party` with a
code, other than the company's own party; its addresses and contact mechanisms count as its
changes.
Tryton hides inactive records unless asked (`active_test`), and erpbridge must see a
product or customer go inactive, so it asks.

Price lists (`product.price_list`, with the sale_price_list module that gives a customer
one) are Tryton's contract prices: for each, what it charges for each product at each
quantity break of its lines, as Tryton itself computes it for a sale (`sale_price_uom` in
the price list's context), kept where it differs from the list price. A price list's change
moves no product's write date, so any change to one re-reads every product (the source
publishes only those whose record changed), and a priced product's change time counts its
price list's.

Attributes (`product.attribute`, with the product_attribute module: a variant's
`attributes` dict) go out with their labels, a choice by its label; an attribute's
definition changing (its label, its choices) re-reads every product, as a price list's
does.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connectors.erp.master import (
    Address,
    CatalogItem,
    ErpCustomer,
    ListPrice,
    PriceListPrice,
    PriceTier,
    ProductAttribute,
    ProductGroup,
)
from connectors.erp.tryton.rpc import TrytonRpc

SOURCE = "erp:tryton"
_PAGE = 500
_ALL = {"active_test": False}

_PRODUCT_FIELDS = [
    "code", "name", "description", "active", "list_price_used", "default_uom.symbol", "template",
    "write_date", "create_date", "template.active", "template.write_date",
    "template.create_date", "template.salable", "template.name", "attributes",
]  # fmt: skip
_ATTRIBUTE_FIELDS = ["name", "string", "type_", "selection", "write_date", "create_date"]
# A new list price is written through its template (product.list_price itself is not
# readable over RPC), which moves the template's write_date.
_PRODUCT_CHANGES = ("write_date", "create_date", "template.write_date", "template.create_date")
_PARTY_FIELDS = [
    "code", "name", "email", "phone", "active", "sale_price_list", "write_date", "create_date",
]  # fmt: skip
_PARTY_CHANGES = (
    "write_date", "create_date", "addresses.write_date", "addresses.create_date",
    "contact_mechanisms.write_date", "contact_mechanisms.create_date",
)  # fmt: skip
_ADDRESS_FIELDS = [
    "party", "party_name", "street", "city", "postal_code", "country.code", "subdivision.code",
    "sequence", "active", "write_date", "create_date",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _PriceList:
    id: int
    name: str
    breaks: tuple[float, ...]
    """0 and the quantities from which its lines apply, ascending."""
    changed: datetime
    """Its newest change, its lines' included."""


def changed_since(fields: Sequence[str], since: datetime | None) -> list[Any]:
    """A domain: any of `fields` at or after `since` (Tryton keeps UTC without a zone)."""
    if since is None:
        return []
    naive = since.astimezone(UTC).replace(tzinfo=None)
    return ["OR", *([field, ">=", naive] for field in fields)]


def _utc(*stamps: datetime | None) -> datetime:
    """The newest of `stamps`; Tryton's own are naive UTC."""
    return max(s if s.tzinfo else s.replace(tzinfo=UTC) for s in stamps if s is not None)


def attribute_value(value: Any, definition: dict[str, Any]) -> str | None:
    """An attribute's value as erpbridge.ProductAttribute's text (None: no value)."""
    if value is None or value == [] or value == "":
        return None
    kind = definition["type_"]
    if kind in ("selection", "multiselection"):
        labels = {
            key.strip(): label.strip()
            for key, label in (
                line.split(":", 1) for line in (definition["selection"] or "").splitlines()
                if ":" in line
            )
        }  # fmt: skip
        chosen = value if kind == "multiselection" else [value]
        return ", ".join(labels.get(key, key) for key in chosen)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return str(value)


def product_attributes(
    values: dict[str, Any] | None, definitions: dict[str, dict[str, Any]]
) -> tuple[ProductAttribute, ...]:
    """A product's `attributes` dict as ProductAttributes, by name; a name with no definition
    (deleted since) is left out."""
    found = []
    for name, value in sorted((values or {}).items()):
        definition = definitions.get(name)
        text = None if definition is None else attribute_value(value, definition)
        if definition is not None and text is not None:
            found.append(ProductAttribute(name, definition["string"] or name, text))
    return tuple(found)


def catalog_item(
    row: dict[str, Any],
    currency: str,
    price_lists: Sequence[PriceListPrice] = (),
    priced_at: datetime | None = None,
    attributes: dict[str, dict[str, Any]] | None = None,
) -> CatalogItem:
    """A product.product row (with `_PRODUCT_FIELDS`) as a CatalogItem, with what the
    price lists charge for it and when they last changed, and its attributes labelled by
    their `attributes` definitions (by name)."""
    template = row["template."]
    # The product's own price where it has one, else its template's.
    price: Decimal | None = row["list_price_used"]
    return CatalogItem(
        sku=row["code"],
        name=row["name"],
        description=row["description"] or None,
        unit=row["default_uom."]["symbol"],
        active=bool(row["active"] and template["active"]),
        list_prices=() if price is None else (ListPrice(currency, price),),
        price_lists=tuple(price_lists),
        attributes=product_attributes(row.get("attributes"), attributes or {}),
        group=ProductGroup(str(row["template"]), template["name"]),
        erp_id=str(row["id"]),
        updated_at=_utc(
            row["write_date"],
            row["create_date"],
            template["write_date"],
            template["create_date"],
            priced_at,
        ),
    )


def price_list_price(
    price_list: int,
    name: str,
    currency: str,
    by_break: Sequence[tuple[float, Decimal | None]],
    list_price: Decimal | None,
) -> PriceListPrice | None:
    """What a price list charges for a product, from its price at each quantity break
    (ascending): a tier only where the price changes; None where it charges the list price
    at every quantity, or nothing."""
    tiers: list[PriceTier] = []
    for quantity, price in by_break:
        if price is not None and (not tiers or tiers[-1].unit_price != price):
            tiers.append(PriceTier(math.ceil(quantity), price))
    if not tiers or (len(tiers) == 1 and tiers[0].unit_price == list_price):
        return None
    return PriceListPrice(str(price_list), name, currency, tuple(tiers))


def address(row: dict[str, Any]) -> Address:
    country, region = row["country."], row["subdivision."]
    return Address(
        name=row["party_name"] or None,
        street=row["street"] or None,
        city=row["city"] or None,
        # Tryton's subdivision codes are ISO 3166-2 (US-CA), as erpbridge's are.
        region=region["code"] if region else None,
        postal_code=row["postal_code"] or None,
        country=country["code"] if country else None,
    )


def customer(row: dict[str, Any], addresses: Sequence[dict[str, Any]]) -> ErpCustomer:
    """A party.party row (with `_PARTY_FIELDS`) and its active address rows as an ErpCustomer."""
    ordered = sorted(addresses, key=lambda a: (a["sequence"] is None, a["sequence"], a["id"]))
    return ErpCustomer(
        customer_id=row["code"],
        name=row["name"],
        email=row["email"] or None,
        phone=row["phone"] or None,
        active=bool(row["active"]),
        addresses=tuple(address(a) for a in ordered if a["active"]),
        price_list=None if row["sale_price_list"] is None else str(row["sale_price_list"]),
        erp_id=str(row["id"]),
        updated_at=_utc(
            row["write_date"],
            row["create_date"],
            *(a["write_date"] for a in addresses),
            *(a["create_date"] for a in addresses),
        ),
    )


class TrytonMasterData:
    """Tryton's products and customers through JSON-RPC, as the company of the login sees them."""

    source = SOURCE

    def __init__(self, rpc: TrytonRpc) -> None:
        self.rpc = rpc
        self._company: dict[str, Any] | None = None
        self._attribute_names: set[str] = set()
        """The attributes the last read of products knew, to tell when one is deleted."""

    async def products(self, since: datetime | None) -> list[CatalogItem]:
        currency = (await self._company_row())["currency."]["code"]
        price_lists = await self._price_lists()
        if any(since is None or price_list.changed >= since for price_list in price_lists):
            since = None  # every product's price may have changed
        attributes = {
            row["name"]: row
            for row in await self.rpc.search_read(
                "product.attribute", [], _ATTRIBUTE_FIELDS, context=_ALL
            )
        }
        if since is not None and (
            any(_utc(r["write_date"], r["create_date"]) >= since for r in attributes.values())
            or not self._attribute_names <= set(attributes)
        ):
            since = None  # every product's attributes may read otherwise (or one is gone)
        self._attribute_names = set(attributes)
        domain = [["code", "!=", None], changed_since(_PRODUCT_CHANGES, since)]
        rows = [row async for row in self._pages("product.product", domain, _PRODUCT_FIELDS)]
        priced: dict[int, list[tuple[PriceListPrice, datetime]]] = {row["id"]: [] for row in rows}
        # Only what Tryton sells has a sale price (and a sale unit to price it in).
        salable = [row for row in rows if row["template."]["salable"]]
        for price_list in price_lists:
            breaks = [
                await self._prices(price_list, quantity, [row["id"] for row in salable])
                for quantity in price_list.breaks
            ]
            for row in salable:
                prices = price_list_price(
                    price_list.id, price_list.name, currency,
                    [(q, at[row["id"]]) for q, at in zip(price_list.breaks, breaks, strict=True)],
                    row["list_price_used"],
                )  # fmt: skip
                if prices is not None:
                    priced[row["id"]].append((prices, price_list.changed))
        return [
            catalog_item(
                row,
                currency,
                [prices for prices, _ in priced[row["id"]]],
                max((at for _, at in priced[row["id"]]), default=None),
                attributes,
            )
            for row in rows
        ]

    async def _price_lists(self) -> list[_PriceList]:
        """The company's price lists, with their quantity breaks and newest change."""
        company = (await self._company_row())["id"]
        lists = await self.rpc.search_read(
            "product.price_list", [["company", "=", company]],
            ["name", "write_date", "create_date"], order=[["id", "ASC"]], context=_ALL,
        )  # fmt: skip
        lines: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in lists}
        for line in await self.rpc.search_read(
            "product.price_list.line", [["price_list", "in", list(lines)]],
            ["price_list", "quantity", "write_date", "create_date"],
        ):  # fmt: skip
            lines[line["price_list"]].append(line)
        return [
            _PriceList(
                row["id"],
                row["name"],
                tuple(sorted({0.0, *(line["quantity"] or 0.0 for line in lines[row["id"]])})),
                _utc(
                    row["write_date"],
                    row["create_date"],
                    *(line["write_date"] for line in lines[row["id"]]),
                    *(line["create_date"] for line in lines[row["id"]]),
                ),
            )
            for row in lists
        ]

    async def _prices(
        self, price_list: _PriceList, quantity: float, products: list[int]
    ) -> dict[int, Decimal | None]:
        """Each product's unit price under `price_list` for `quantity` units, as Tryton
        prices a sale line."""
        found: dict[int, Decimal | None] = {}
        context = {**_ALL, "price_list": price_list.id, "quantity": quantity}
        for chunk in _chunks(products, _PAGE):
            rows = await self.rpc.model(
                "product.product", "read", chunk, ["sale_price_uom"], context=context
            )
            found.update((row["id"], row["sale_price_uom"]) for row in rows)
        return found

    async def customers(self, since: datetime | None) -> list[ErpCustomer]:
        company = await self._company_row()
        domain = [
            ["code", "!=", None],
            ["id", "!=", company["party"]],
            changed_since(_PARTY_CHANGES, since),
        ]
        parties = [row async for row in self._pages("party.party", domain, _PARTY_FIELDS)]
        by_party: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in parties}
        for chunk in _chunks(list(by_party), _PAGE):
            for row in await self.rpc.search_read(
                "party.address", [["party", "in", chunk]], _ADDRESS_FIELDS, context=_ALL
            ):
                by_party[row["party"]].append(row)
        return [customer(row, by_party[row["id"]]) for row in parties]

    async def _company_row(self) -> dict[str, Any]:
        if self._company is None:
            await self.rpc.open()
            rows = await self.rpc.search_read(
                "company.company", [["id", "=", self.rpc.context.get("company")]],
                ["id", "party", "currency.code"],
            )  # fmt: skip
            if not rows:
                raise RuntimeError(f"the Tryton login {self.rpc.login!r} has no company")
            self._company = rows[0]
        return self._company

    async def _pages(
        self, model: str, domain: list[Any], fields: list[str]
    ) -> AsyncIterator[dict[str, Any]]:
        # Pages by id rather than offset: rows changing meanwhile cannot shift a page.
        after = 0
        while True:
            rows = await self.rpc.search_read(
                model, [*domain, ["id", ">", after]], fields,
                order=[["id", "ASC"]], limit=_PAGE, context=_ALL,
            )  # fmt: skip
            for row in rows:
                yield row
            if len(rows) < _PAGE:
                return
            after = rows[-1]["id"]


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

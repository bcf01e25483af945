"""Tryton's products and customers, for erp.catalog and erp.customers (the read side of the
Tryton adapter).

A product is a `product.product` with a code (the SKU); its name, description, unit and
list price (per company) live on its template, so a change to either counts. A customer is a `party.party` with a code, other than
the company's own party; its addresses and contact mechanisms count as its changes.
Tryton hides inactive records unless asked (`active_test`), and erpbridge must see a
product or customer go inactive, so it asks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors.erp.master import Address, CatalogItem, ErpCustomer, ListPrice
from connectors.erp.tryton.rpc import TrytonRpc

SOURCE = "erp:tryton"
_PAGE = 500
_ALL = {"active_test": False}

_PRODUCT_FIELDS = [
    "code", "name", "description", "active", "list_price_used", "default_uom.symbol",
    "write_date", "create_date", "template.active", "template.write_date",
    "template.create_date",
]  # fmt: skip
# A new list price is written through its template (product.list_price itself is not
# readable over RPC), which moves the template's write_date.
_PRODUCT_CHANGES = ("write_date", "create_date", "template.write_date", "template.create_date")
_PARTY_FIELDS = ["code", "name", "email", "phone", "active", "write_date", "create_date"]
_PARTY_CHANGES = (
    "write_date", "create_date", "addresses.write_date", "addresses.create_date",
    "contact_mechanisms.write_date", "contact_mechanisms.create_date",
)  # fmt: skip
_ADDRESS_FIELDS = [
    "party", "party_name", "street", "city", "postal_code", "country.code", "subdivision.code",
    "sequence", "active", "write_date", "create_date",
]  # fmt: skip


def changed_since(fields: Sequence[str], since: datetime | None) -> list[Any]:
    """A domain: any of `fields` at or after `since` (Tryton keeps UTC without a zone)."""
    if since is None:
        return []
    naive = since.astimezone(UTC).replace(tzinfo=None)
    return ["OR", *([field, ">=", naive] for field in fields)]


def _utc(*stamps: datetime | None) -> datetime:
    return max(stamp for stamp in stamps if stamp is not None).replace(tzinfo=UTC)


def catalog_item(row: dict[str, Any], currency: str) -> CatalogItem:
    """A product.product row (with `_PRODUCT_FIELDS`) as a CatalogItem."""
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
        erp_id=str(row["id"]),
        updated_at=_utc(
            row["write_date"], row["create_date"], template["write_date"], template["create_date"]
        ),
    )


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

    async def products(self, since: datetime | None) -> list[CatalogItem]:
        currency = (await self._company_row())["currency."]["code"]
        domain = [["code", "!=", None], changed_since(_PRODUCT_CHANGES, since)]
        return [
            catalog_item(row, currency)
            async for row in self._pages("product.product", domain, _PRODUCT_FIELDS)
        ]

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
                ["party", "currency.code"],
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

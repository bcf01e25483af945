"""Reading back from the session's Tryton what the connector made there."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from connectors.erp.tryton import TrytonAdapter
from streams.local.tryton import Tryton
from tests.support import TrytonLogin, on_tryton


def sales(tryton: Tryton, command_ids: list[str]) -> Counter[str]:
    """Sales orders per sales-order command id (their reference)."""
    return Counter(on_tryton(tryton, lambda a: a.sales_by_reference(command_ids)))


def journal_entries(tryton: Tryton, entry_ids: list[str]) -> Counter[str]:
    """Account moves per journal entry id (their description)."""

    async def moves(adapter: TrytonAdapter) -> Counter[str]:
        rows = await adapter.rpc.search_read(
            "account.move", [["description", "in", entry_ids]], ["description"]
        )
        return Counter(row["description"] for row in rows)

    return on_tryton(tryton, moves)


def parties(tryton: Tryton, externals: list[str]) -> Counter[str]:
    """Parties per storefront account (the code of their identifier)."""

    async def identified(adapter: TrytonAdapter) -> Counter[str]:
        rows = await adapter.rpc.search_read(
            "party.identifier", [["code", "in", externals]], ["code"]
        )
        return Counter(row["code"] for row in rows)

    return on_tryton(tryton, identified)


DOCUMENTS = {
    "sale.sale": "reference",
    "stock.shipment.out": "reference",
    "stock.shipment.out.return": "reference",
    "account.invoice": "reference",
    "stock.shipment.internal": "reference",
    "account.move": "description",
}
"""Each kind of document erpbridge makes in Tryton, and the field holding erpbridge's id."""


@dataclass(frozen=True)
class Books:
    """Every document of a Tryton database, its stock and its ledger, read over JSON-RPC
    without erpbridge's adapter logic (only its client, for the login)."""

    documents: dict[str, dict[str, list[str]]]
    """Per model: erpbridge's id -> the state of each document carrying it."""
    comments: dict[str, str]
    """Sales orders' comments by reference (cancellations are noted there)."""
    ledger: dict[str, tuple[Decimal, Decimal]]
    """Per account code: total debit and credit of every move line."""
    receivables: dict[str, Decimal]
    """Per party code: debit - credit of the move lines naming the party."""
    stock: dict[tuple[str, str], int]
    """On hand per (SKU, warehouse code): quantity in the warehouse's storage."""


def books(tryton: TrytonLogin, skus: Iterable[str], warehouses: Iterable[str]) -> Books:
    codes = sorted(skus)

    async def read(adapter: TrytonAdapter) -> Books:
        rpc = adapter.rpc
        documents: dict[str, dict[str, list[str]]] = {}
        for model, field in DOCUMENTS.items():
            found: dict[str, list[str]] = {}
            for row in await rpc.search_read(model, [], [field, "state"]):
                found.setdefault(row[field] or "", []).append(row["state"])
            documents[model] = found
        comments = {
            row["reference"]: row["comment"] or ""
            for row in await rpc.search_read("sale.sale", [], ["reference", "comment"])
        }
        ledger: dict[str, tuple[Decimal, Decimal]] = {}
        for row in await rpc.search_read(
            "account.move.line", [], ["account.code", "debit", "credit"]
        ):
            debit, credit = ledger.get(row["account."]["code"], (Decimal(0), Decimal(0)))
            ledger[row["account."]["code"]] = (debit + row["debit"], credit + row["credit"])
        receivables: dict[str, Decimal] = {}
        for row in await rpc.search_read(
            "account.move.line", [["party", "!=", None]], ["party.code", "debit", "credit"]
        ):
            code = row["party."]["code"]
            receivables[code] = receivables.get(code, Decimal(0)) + row["debit"] - row["credit"]
        stock: dict[tuple[str, str], int] = {}
        for code in sorted(warehouses):
            (warehouse,) = await rpc.search_read(
                "stock.location",
                [["code", "=", code], ["type", "=", "warehouse"]],
                ["storage_location"],
            )
            for row in await rpc.search_read(
                "product.product",
                [["code", "in", codes]],
                ["code", "quantity"],
                context={"locations": [warehouse["storage_location"]], "with_childs": True},
            ):
                stock[row["code"], code] = int(row["quantity"])
        return Books(documents, comments, ledger, receivables, stock)

    return on_tryton(tryton, read)

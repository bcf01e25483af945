"""streams.local.tryton: a real Tryton on PostgreSQL with the sample catalogue and its opening
stock, spoken to with the connector's own JSON-RPC client."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest

from connectors.erp.adapter import PermanentError
from connectors.erp.tryton.rpc import TrytonRpc
from streams.local.tryton import Tryton
from streams.sample.generator import Catalogue
from tests.support import on_tryton

FINANCE = Path(__file__).resolve().parents[3] / "config" / "finance.json"
T = TypeVar("T")


def test_the_catalogue_is_there_with_its_opening_stock(tryton: Tryton) -> None:
    catalogue = Catalogue.default()
    codes = [sku.code for sku in catalogue.skus]
    warehouses = [w.warehouse_id for w in catalogue.warehouses]

    async def scenario(rpc: TrytonRpc) -> None:
        products = await rpc.search_read("product.product", [["code", "in", codes]], ["code"])
        assert sorted(p["code"] for p in products) == sorted(codes)
        parties = await rpc.search_read(
            "party.party", [["code", "in", [c.customer_id for c in catalogue.customers]]], ["id"]
        )
        assert len(parties) == len(catalogue.customers)
        currencies = await rpc.search_read("currency.currency", [], ["code"])
        assert set(catalogue.currencies) <= {c["code"] for c in currencies}

        # Read from the opening inventories themselves: other tests move stock afterwards.
        storage = {
            row["storage_location"]: row["code"]
            for row in await rpc.search_read(
                "stock.location",
                [["code", "in", warehouses], ["type", "=", "warehouse"]],
                ["code", "storage_location"],
            )
        }
        inventories = await rpc.search_read(
            "stock.inventory", [["state", "=", "done"]], ["location"]
        )
        lines = await rpc.search_read(
            "stock.inventory.line",
            [["inventory", "in", [i["id"] for i in inventories]]],
            ["product.code", "quantity", "inventory"],
        )
        location = {i["id"]: i["location"] for i in inventories}
        opening = {
            (line["product."]["code"], storage[location[line["inventory"]]]): line["quantity"]
            for line in lines
        }
        assert opening == {
            (sku.code, w): sku.target_stock for sku in catalogue.skus for w in warehouses
        }

    on_tryton(tryton, lambda erp: scenario(erp.rpc))


def test_finance_accounts_exist_and_an_unbalanced_move_is_refused(tryton: Tryton) -> None:
    finance = json.loads(FINANCE.read_text(encoding="utf-8"))

    async def scenario(rpc: TrytonRpc) -> None:
        accounts = await rpc.search_read(
            "account.account", [["code", "in", list(finance["accounts"])]], ["code"]
        )
        assert sorted(a["code"] for a in accounts) == sorted(finance["accounts"])
        by_code = {a["code"]: a["id"] for a in accounts}
        (journal,) = await rpc.search_read("account.journal", [["code", "=", "MISC"]], ["id"])
        today = date.today()
        (period,) = await rpc.search_read(
            "account.period",
            [["start_date", "<=", today], ["end_date", ">=", today], ["type", "=", "standard"]],
            ["id"],
        )

        async def move(debit: Decimal, credit: Decimal) -> int:
            (move_id,) = await rpc.create("account.move", [{
                "journal": journal["id"], "period": period["id"], "date": today,
                "lines": [["create", [
                    {"account": by_code["1010"], "debit": debit, "credit": Decimal(0)},
                    {"account": by_code["4000"], "debit": Decimal(0), "credit": credit},
                ]]],
            }])  # fmt: skip
            return move_id

        unbalanced = await move(Decimal("10.00"), Decimal("7.00"))
        with pytest.raises(PermanentError) as refused:
            await rpc.model("account.move", "post", [unbalanced])
        assert refused.value.code == "UserError"
        assert "must balance" in refused.value.message

        # The same accounts and journal post when balanced: the refusal was about the balance.
        balanced = await move(Decimal("10.00"), Decimal("10.00"))
        await rpc.model("account.move", "post", [balanced])
        (posted,) = await rpc.model("account.move", "read", [balanced], ["state"])
        assert posted["state"] == "posted"

    on_tryton(tryton, lambda erp: scenario(erp.rpc))

"""streams.local.tryton: a real Tryton on PostgreSQL with the sample catalogue, over JSON-RPC."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.local.tryton import Tryton, running_tryton
from streams.sample import Catalogue

FINANCE = Path(__file__).resolve().parents[3] / "config" / "finance.json"


class RpcError(Exception):
    """Tryton answered with `{"error": [name, payload]}`."""


class Client:
    """A minimal JSON-RPC client: one login, one session, the company in every context."""

    def __init__(self, tryton: Tryton) -> None:
        self.url = tryton.url
        self.http = httpx.Client(timeout=60)
        self.ids = 0
        user_id, token = self.call(
            "common.db.login", tryton.login, {"password": tryton.password}, "en"
        )[:2]
        session = base64.b64encode(f"{tryton.login}:{user_id}:{token}".encode()).decode()
        self.http.headers["Authorization"] = f"Session {session}"
        self.context: dict[str, Any] = self.call("model.res.user.get_preferences", True, {})

    def call(self, method: str, *params: Any) -> Any:
        self.ids += 1
        body = json.dumps(
            {"id": self.ids, "method": method, "params": list(params)}, default=_encode
        )
        response = self.http.post(
            self.url, content=body, headers={"Content-Type": "application/json"}
        )
        response.raise_for_status()
        answer = response.json()
        if answer.get("error"):
            raise RpcError(answer["error"])
        return answer["result"]

    def model(self, model: str, method: str, *args: Any) -> Any:
        return self.call(f"model.{model}.{method}", *args, self.context)

    def search_read(self, model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.model(
            model, "search_read", domain, 0, None, None, fields
        )
        return result

    def one(self, model: str, domain: list[Any], fields: list[str] | None = None) -> dict[str, Any]:
        (record,) = self.search_read(model, domain, fields or ["id"])
        return record


def _encode(value: object) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(f"not JSON-RPC encodable: {value!r}")


@pytest.fixture(scope="module")
def tryton(request: pytest.FixtureRequest) -> Iterator[Tryton]:
    with running_tryton(keep_log=lambda: request.session.testsfailed > 0) as running:
        yield running


@pytest.fixture
def client(tryton: Tryton) -> Iterator[Client]:
    rpc = Client(tryton)
    yield rpc
    rpc.http.close()


def test_catalogue_is_there_and_a_sale_confirms(client: Client) -> None:
    catalogue = Catalogue.default()
    codes = [sku.code for sku in catalogue.skus]
    products = client.search_read(
        "product.product", [["code", "in", codes]], ["code", "default_uom"]
    )
    assert sorted(p["code"] for p in products) == sorted(codes)

    warehouses = client.search_read("stock.location", [["type", "=", "warehouse"]], ["code"])
    assert {w.warehouse_id for w in catalogue.warehouses} <= {w["code"] for w in warehouses}

    customer = catalogue.customers[0]
    party = client.one("party.party", [["code", "=", customer.customer_id]])
    address = client.one("party.address", [["party", "=", party["id"]]])
    product = next(p for p in products if p["code"] == codes[0])
    warehouse = next(w for w in warehouses if w["code"] == catalogue.warehouses[0].warehouse_id)
    company = client.model("company.company", "read", [client.context["company"]], ["currency"])[0]
    (sale_id,) = client.model("sale.sale", "create", [{
        "party": party["id"], "invoice_address": address["id"], "shipment_address": address["id"],
        "warehouse": warehouse["id"], "currency": company["currency"], "reference": "T-ORDER-1",
        "lines": [["create", [{
            "type": "line", "product": product["id"], "quantity": 2.0,
            "unit": product["default_uom"], "unit_price": catalogue.skus[0].price("USD"),
        }]]],
    }])  # fmt: skip
    client.model("sale.sale", "quote", [sale_id])
    client.model("sale.sale", "confirm", [sale_id])
    (sale,) = client.model("sale.sale", "read", [sale_id], ["state", "shipments", "invoices"])
    # Without a queue worker, confirm processes at once: a shipment and a draft invoice.
    assert sale["state"] == "processing"
    assert len(sale["shipments"]) == 1
    assert len(sale["invoices"]) == 1


def test_finance_accounts_exist_and_an_unbalanced_move_is_refused(client: Client) -> None:
    finance = json.loads(FINANCE.read_text(encoding="utf-8"))
    accounts = client.search_read(
        "account.account", [["code", "in", list(finance["accounts"])]], ["code"]
    )
    assert sorted(a["code"] for a in accounts) == sorted(finance["accounts"])
    by_code = {a["code"]: a["id"] for a in accounts}

    journal = client.search_read("account.journal", [["type", "=", "general"]], ["code"])[0]
    today = date.today()
    period = client.one(
        "account.period",
        [["start_date", "<=", today], ["end_date", ">=", today], ["type", "=", "standard"]],
    )

    def move(debit: Decimal, credit: Decimal) -> int:
        (move_id,) = client.model("account.move", "create", [{
            "journal": journal["id"], "period": period["id"], "date": today,
            "lines": [["create", [
                {"account": by_code["1010"], "debit": debit, "credit": Decimal(0)},
                {"account": by_code["4000"], "debit": Decimal(0), "credit": credit},
            ]]],
        }])  # fmt: skip
        return int(move_id)

    unbalanced = move(Decimal("10.00"), Decimal("7.00"))
    with pytest.raises(RpcError) as refused:
        client.model("account.move", "post", [unbalanced])
    assert refused.value.args[0][0] == "UserError"
    assert "must balance" in str(refused.value.args[0][1])

    # The same accounts and journal post when balanced: the refusal was about the balance.
    balanced = move(Decimal("10.00"), Decimal("10.00"))
    client.model("account.move", "post", [balanced])
    (posted,) = client.model("account.move", "read", [balanced], ["state"])
    assert posted["state"] == "posted"

"""erpbridge's commands executed in Tryton (8.0 LTS) over JSON-RPC.

Every command is idempotent through a searchable field of the document it creates, looked
up before anything is created; a redelivery finishes whatever workflow a crash interrupted:

- CreateSalesOrder: `sale.sale` with `reference` = command id, then `quote` and `confirm`.
  `invoice_method` is "manual": erpbridge's own finance journal (PostJournalEntry) is the
  ledger, and invoices posted by Tryton would book the revenue a second time.
  `shipment_method` is "manual" too: erpbridge says what shipped, from which warehouse
  (RecordShipment), so Tryton must not plan shipments of its own. Line prices are net of
  the line's discount (Tryton's sale line has none), tax is not repeated (the journal books
  it), shipping is a line without product. The sale's warehouse is only Tryton's required
  default (`sale_warehouse`); shipments name their own.
- CancelSalesOrder: a draft or quoted sale is cancelled (`cancel`). A confirmed sale cannot
  be in Tryton; the faithful equivalent is Tryton's own: the unshipped rest goes on a
  shipment (`manual_shipment`), open shipments are cancelled and the cancelled moves are
  ignored with the "handle shipment exception" wizard, leaving nothing to ship. The
  cancellation's command id and reason are appended to the sale's `comment`.
- RecordShipment: `stock.shipment.out` with `reference` = command id, moves linked to the
  sale's lines (`origin`), forced through assignment (erpbridge allows overselling and
  alerts on it itself, so Tryton must mirror the stock, negative or not) to done.
- CreateCreditNote: a draft `account.invoice` (type out, negative quantities) with
  `reference` = command id, validated but never posted: erpbridge's journal books the credit
  note. Restocked goods come back on a done `stock.shipment.out.return` with the same
  reference (its moves have no origin: a sale line origin would count as shipped).
- The order's purchase-order number is the sale's `description` ("PO ..."), and ends the
  description of its credit notes and journal lines; a shipment has no free field but its
  `reference`, and reaches it through its moves' sale lines.
- AdjustInventory: `stock.move` has no searchable free field in Tryton 8.0, so each part is
  a `stock.shipment.internal` with `reference` = the part's command id, between the
  warehouse's storage and Lost and Found, forced to done. Parts already there are skipped.
- PostJournalEntry: one `account.move` per entry on the general journal, `description` =
  entry id (exact, searchable; the entry's own description goes on its lines), then `post`.
  A line naming its party (the receivable) gets the order's customer on an account that is
  marked "party required": the party of the order's sale, else the party whose code is the
  line's party, else the one holding it as a storefront account's external id; an account
  that is not marked takes no party (Tryton refuses one there). An entry whose party is not
  in Tryton yet is retried (transient), one whose line there names none is refused
  (permanent), each once the command's other entries are posted.
- UpsertCustomer: the `party.party` holding a `party.identifier` (no type) whose code is the
  account's external id (`<storefront>:<account id>`); else the party the account is marked
  with (by code), or the one party with the account's e-mail, given that identifier; else a
  new party with the identifier, the account's name, e-mail, phone and addresses (its code
  from Tryton's party sequence). A sales order's customer is the party whose code is the
  order's customer id, else its storefront account's, found or made the same way from the
  order's customer and ship-to (the order may reach Tryton before its account does). A
  company's buyer (`company_id`) orders for the company: the sale's party is the party whose
  code is the company id, and its `contact` the company's e-mail contact mechanism for the
  buyer, added (named after the buyer) the first time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx

from connectors.erp.adapter import Document, PermanentError, TransientError
from connectors.erp.tryton.rpc import TrytonRpc
from streams.domain.accounts import external_id, order_account
from streams.domain.commands import Command, Kind, sales_order_id

_PRICE = Decimal("0.0001")  # sale.line and move unit_price digits (price_digits)
_SHIP_STEPS = ("wait", "assign_force", "pick", "pack", "do")
_SHIP_NEXT = {"draft": 0, "waiting": 1, "assigned": 2, "picked": 3, "packed": 4, "shipped": 4}
_INTERNAL_STEPS = ("wait", "assign_force", "do")
_INTERNAL_NEXT = {"draft": 0, "waiting": 1, "assigned": 2}


@dataclass(frozen=True, slots=True)
class _Account:
    id: int
    party_required: bool


@dataclass(frozen=True, slots=True)
class _Warehouse:
    id: int
    storage: int
    input: int
    output: int


def unit_price_for(quantity: int, line_amount: Decimal, digits: int) -> Decimal:
    """The 4-decimal unit price whose amount, as Tryton rounds it, is `line_amount`."""
    if quantity == 0:
        return line_amount.quantize(_PRICE)
    money = Decimal(1).scaleb(-digits)
    target = line_amount.quantize(money, ROUND_HALF_EVEN)
    base = (line_amount / quantity).quantize(_PRICE)
    for step in sorted(range(-quantity, quantity + 1), key=abs):
        price = base + step * _PRICE
        if (price * quantity).quantize(money, ROUND_HALF_EVEN) == target:
            return price
    return base


def _money(amount: Decimal, digits: int, entry_id: str) -> Decimal:
    """`amount` at the currency's digits, which Tryton insists on; never rounded silently."""
    exact = amount.quantize(Decimal(1).scaleb(-digits))
    if exact != amount:
        raise PermanentError(
            "sub-unit-amount", f"{entry_id}: {amount} has more than {digits} decimals"
        )
    return exact


def _with_po(text: str, document: dict[str, Any]) -> str:
    """A description with the order's purchase-order number, which Tryton's credit notes and
    move lines have no field of their own for."""
    po = document.get("purchase_order_number")
    return f"{text} (PO {po})" if po else text


def _party_missing(entry: dict[str, Any], accounts: dict[str, _Account]) -> bool:
    """Whether a line on an account marked "party required" names no customer: a mapping
    error (config/finance.json puts another component there), or an entry of a release
    before lines named their party."""
    return any(
        accounts[line["account"]].party_required and line.get("party") is None
        for line in entry["lines"]
    )


def _line_party(
    entry: dict[str, Any],
    line: dict[str, Any],
    accounts: dict[str, _Account],
    parties: dict[tuple[str | None, str], int],
) -> int | None:
    """The Tryton party of a journal line: on an account marked "party required" only."""
    if not accounts[line["account"]].party_required:
        return None
    return parties.get((entry["order_id"], line["party"]))


def _resolved(
    entry: dict[str, Any], accounts: dict[str, _Account], parties: dict[tuple[str | None, str], int]
) -> bool:
    """Whether every line that needs a party has one in Tryton."""
    return all(
        (entry["order_id"], line["party"]) in parties
        for line in entry["lines"]
        if accounts[line["account"]].party_required
    )


class TrytonAdapter:
    """One Tryton database; `open` logs in once, the session is kept."""

    name = "tryton"

    def __init__(
        self,
        url: str,
        login: str,
        password: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sale_warehouse: str | None = None,
        journal: str = "MISC",
    ) -> None:
        self.rpc = TrytonRpc(url, login, password, timeout=timeout, transport=transport)
        self.sale_warehouse = sale_warehouse
        self.journal_code = journal
        # Master data ids never change under us: looked up once.
        self._ids: dict[tuple[str, str], int] = {}
        self._products: dict[str, dict[str, Any]] = {}
        self._warehouses: dict[str, _Warehouse] = {}
        self._account_rows: dict[str, _Account] = {}
        self._digits: dict[int, int] = {}

    async def open(self) -> None:
        await self.rpc.open()

    async def close(self) -> None:
        await self.rpc.close()

    async def execute(self, command: Command) -> Document:
        match command.kind:
            case Kind.CREATE_SALES_ORDER:
                return await self._create_sales_order(command)
            case Kind.CANCEL_SALES_ORDER:
                return await self._cancel_sales_order(command)
            case Kind.RECORD_SHIPMENT:
                return await self._record_shipment(command)
            case Kind.CREATE_CREDIT_NOTE:
                return await self._create_credit_note(command)
            case Kind.ADJUST_INVENTORY:
                return await self._adjust_inventory(command)
            case Kind.POST_JOURNAL_ENTRY:
                return await self._post_journal_entry(command)
            case Kind.UPSERT_CUSTOMER:
                return await self._upsert_customer(command)

    # --- reading what erpbridge compares --------------------------------------------------

    async def stock_levels(
        self, skus: Iterable[str], warehouses: Iterable[str]
    ) -> dict[tuple[str, str], int]:
        """On-hand per (SKU, warehouse): product quantity in each warehouse's storage."""
        codes = list(skus)
        levels: dict[tuple[str, str], int] = {}
        for code in warehouses:
            warehouse = await self._warehouse(code)
            rows = await self.rpc.search_read(
                "product.product", [["code", "in", codes]], ["code", "quantity"],
                context={"locations": [warehouse.storage], "with_childs": True},
            )  # fmt: skip
            for row in rows:
                levels[row["code"], code] = int(row["quantity"])
        return levels

    async def sales_by_reference(self, references: Iterable[str]) -> dict[str, int]:
        """How many sales carry each reference (command id): 1 each when exactly once."""
        rows = await self.rpc.search_read(
            "sale.sale", [["reference", "in", list(references)]], ["reference"]
        )
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["reference"]] = counts.get(row["reference"], 0) + 1
        return counts

    # --- sales orders ---------------------------------------------------------------------

    async def _create_sales_order(self, command: Command) -> Document:
        body = command.body
        found = await self._find("sale.sale", [["reference", "=", command.command_id]], ["state"])
        if found is None:
            sale_id, state = await self._new_sale(command.command_id, body), "draft"
        else:
            sale_id, state = found["id"], found["state"]
        # A redelivery of a sale a crash left in draft or quotation finishes the workflow.
        if state == "draft":
            await self.rpc.model("sale.sale", "quote", [sale_id])
        if state in ("draft", "quotation"):
            await self.rpc.model("sale.sale", "confirm", [sale_id])
        return Document("sale.sale", str(sale_id))

    async def _new_sale(self, reference: str, body: dict[str, Any]) -> int:
        buyer = body["customer"]
        company = buyer.get("company_id")
        customer = company or buyer["customer_id"]
        party = await self._find("party.party", [["code", "=", customer]], ["addresses"])
        account = None if company else order_account(body)
        if party is None and account is not None:
            found = await self._account_customer(account)
            party = await self._find("party.party", [["id", "=", found]], ["addresses"])
        if party is None or not party["addresses"]:
            raise PermanentError("unknown-customer", f"no Tryton party with code {customer!r}")
        contact = await self._buyer_contact(party["id"], buyer) if company else None
        products = await self._product_rows([line["sku"] for line in body["lines"]])
        currency = await self._currency(body["currency"])
        digits = await self._currency_digits(currency)
        lines: list[dict[str, Any]] = []
        for line in body["lines"]:
            product = products[line["sku"]]
            amount = line["quantity"] * line["unit_price"] - line["discount"]
            lines.append({
                "type": "line", "product": product["id"], "unit": product["default_uom"],
                "quantity": float(line["quantity"]),
                "unit_price": unit_price_for(line["quantity"], amount, digits),
            })  # fmt: skip
        shipping = body.get("shipping")
        if shipping and shipping["amount"]:
            lines.append({
                "type": "line", "description": f"Shipping ({shipping['method']})",
                "quantity": 1.0, "unit_price": shipping["amount"].quantize(_PRICE),
            })  # fmt: skip
        address = party["addresses"][0]
        po = body.get("purchase_order_number")
        (sale_id,) = await self.rpc.create("sale.sale", [{
            "party": party["id"], "invoice_address": address, "shipment_address": address,
            "currency": currency, "warehouse": await self._sale_warehouse(),
            "reference": reference, "description": f"PO {po}" if po else body["order_id"],
            "contact": contact, "invoice_method": "manual", "shipment_method": "manual",
            "lines": [["create", lines]],
        }])  # fmt: skip
        return sale_id

    async def _buyer_contact(self, company: int, buyer: dict[str, Any]) -> int | None:
        """The company's contact mechanism for the buyer's e-mail, found or added (named
        after the buyer); None for a buyer without an e-mail."""
        email = buyer.get("email")
        if not email:
            return None
        # Two orders of one company may add the buyer at once: the first one made is the one.
        found = await self.rpc.search_read(
            "party.contact_mechanism",
            [["party", "=", company], ["type", "=", "email"], ["value", "=", email]],
            ["id"], order=[["id", "ASC"]], limit=1,
        )  # fmt: skip
        if found:
            return int(found[0]["id"])
        (contact,) = await self.rpc.create("party.contact_mechanism", [{
            "party": company, "type": "email", "value": email,
            "name": buyer.get("name") or buyer["customer_id"],
        }])  # fmt: skip
        return contact

    async def _sale(self, order_id: str, fields: list[str]) -> dict[str, Any]:
        sale = await self._find("sale.sale", [["reference", "=", sales_order_id(order_id)]], fields)
        if sale is None:
            raise TransientError("no-sales-order", f"no sales order for {order_id} in Tryton yet")
        return sale

    async def _cancel_sales_order(self, command: Command) -> Document:
        body = command.body
        sale = await self._sale(body["order_id"], ["state", "comment", "to_ship", "shipments"])
        sale_id = sale["id"]
        marker = f"Cancelled by erpbridge ({command.command_id})"
        if marker in (sale["comment"] or ""):
            return Document("sale.sale", str(sale_id))
        if sale["state"] in ("draft", "quotation"):
            await self.rpc.model("sale.sale", "cancel", [sale_id])
        elif sale["state"] != "cancelled":
            await self._close_unshipped(sale)
        note = f"{marker}: {body['reason']}" if body.get("reason") else marker
        comment = f"{sale['comment']}\n{note}" if sale["comment"] else note
        await self.rpc.model("sale.sale", "write", [sale_id], {"comment": comment})
        return Document("sale.sale", str(sale_id))

    async def _close_unshipped(self, sale: dict[str, Any]) -> None:
        """Tryton's way to stop shipping a confirmed sale: cancel its open shipments and
        ignore the cancelled moves, so nothing is left to ship."""
        sale_id = sale["id"]
        if sale["to_ship"]:
            await self.rpc.model("sale.sale", "manual_shipment", [sale_id])
        (sale,) = await self.rpc.model("sale.sale", "read", [sale_id], ["shipments"])
        shipments = await self.rpc.model("stock.shipment.out", "read", sale["shipments"], ["state"])
        open_ids = [s["id"] for s in shipments if s["state"] not in ("done", "cancelled")]
        if open_ids:
            await self.rpc.model("stock.shipment.out", "cancel", open_ids)
            await self.rpc.model("sale.sale", "process", [sale_id])
        lines = await self.rpc.search_read(
            "sale.line", [["sale", "=", sale_id]], ["moves_ignored", "moves_recreated"]
        )
        handled = {m for line in lines for m in (*line["moves_ignored"], *line["moves_recreated"])}
        cancelled = await self.rpc.search_read(
            "stock.move",
            [["origin.sale", "=", sale_id, "sale.line"], ["state", "=", "cancelled"]],
            ["id"],
        )
        ignore = [m["id"] for m in cancelled if m["id"] not in handled]
        if ignore:
            await self._wizard(
                "sale.handle.shipment.exception", "sale.sale", sale_id, "handle",
                {"ask": {"domain_moves": ignore, "ignore_moves": ignore, "recreate_moves": []}},
            )  # fmt: skip

    async def _wizard(
        self, wizard: str, model: str, record: int, state: str, data: dict[str, Any]
    ) -> None:
        context = {**self.rpc.context, "active_model": model, "active_id": record,
                   "active_ids": [record]}  # fmt: skip
        session, _, _ = await self.rpc.call(f"wizard.{wizard}.create", context)
        try:
            await self.rpc.call(f"wizard.{wizard}.execute", session, data, state, context)
        finally:
            await self.rpc.call(f"wizard.{wizard}.delete", session, context)

    # --- shipments and stock --------------------------------------------------------------

    async def _record_shipment(self, command: Command) -> Document:
        body = command.body
        model = "stock.shipment.out"
        found = await self._find(model, [["reference", "=", command.command_id]], ["state"])
        if found is None:
            sale = await self._sale(body["order_id"], ["party", "shipment_address", "currency"])
            shipment_id = await self._new_shipment(command.command_id, body, sale)
            state = "draft"
        else:
            shipment_id, state = found["id"], found["state"]
        if state in _SHIP_NEXT:
            for step in _SHIP_STEPS[_SHIP_NEXT[state] :]:
                await self.rpc.model(model, step, [shipment_id])
        return Document(model, str(shipment_id))

    async def _new_shipment(
        self, reference: str, body: dict[str, Any], sale: dict[str, Any]
    ) -> int:
        warehouse = await self._warehouse(body["warehouse_id"])
        lines = await self.rpc.search_read(
            "sale.line", [["sale", "=", sale["id"]], ["type", "=", "line"]],
            ["product.code", "unit", "unit_price"],
        )  # fmt: skip
        by_sku = {line["product."]["code"]: line for line in lines if line.get("product.")}
        missing = sorted({i["sku"] for i in body["lines"]} - set(by_sku))
        if missing:
            raise PermanentError(
                "not-on-order", f"{', '.join(missing)} not on {body['order_id']}'s sales order"
            )
        customer = await self._customer_location(sale["party"])
        moves = [
            {
                "product": by_sku[item["sku"]]["product."]["id"],
                "unit": by_sku[item["sku"]]["unit"],
                "quantity": float(item["quantity"]),
                "from_location": warehouse.output,
                "to_location": customer,
                "unit_price": by_sku[item["sku"]]["unit_price"],
                "currency": sale["currency"],
                "origin": f"sale.line,{by_sku[item['sku']]['id']}",
            }
            for item in body["lines"]
            if item["quantity"] > 0
        ]
        (shipment_id,) = await self.rpc.create("stock.shipment.out", [{
            "customer": sale["party"], "delivery_address": sale["shipment_address"],
            "warehouse": warehouse.id, "warehouse_output": warehouse.output,
            "warehouse_storage": warehouse.storage, "reference": reference,
            "outgoing_moves": [["create", moves]],
        }])  # fmt: skip
        return shipment_id

    async def _adjust_inventory(self, command: Command) -> Document:
        body = command.body
        parts = body.get("parts") or [
            {"command_id": command.command_id, "delta": body["delta"], "reason": body["reason"]}
        ]
        model = "stock.shipment.internal"
        ids = [p["command_id"] for p in parts]
        found = {
            row["reference"]: row
            for row in await self.rpc.search_read(
                model, [["reference", "in", ids]], ["reference", "state"]
            )
        }
        # A part listed twice (copies the dispatcher merged after a redelivery) moves once.
        new = list(
            {
                p["command_id"]: p for p in parts if p["command_id"] not in found and p["delta"]
            }.values()
        )
        if new:
            warehouse = await self._warehouse(body["warehouse_id"])
            product = (await self._product_rows([body["sku"]]))[body["sku"]]
            lost_found = await self._lost_found()
            values = []
            for part in new:
                source, target = (
                    (lost_found, warehouse.storage) if part["delta"] > 0
                    else (warehouse.storage, lost_found)
                )  # fmt: skip
                values.append({
                    "reference": part["command_id"], "from_location": source,
                    "to_location": target, "moves": [["create", [{
                        "product": product["id"], "unit": product["default_uom"],
                        "quantity": float(abs(part["delta"])),
                        "from_location": source, "to_location": target,
                    }]]],
                })  # fmt: skip
            created = await self.rpc.create(model, values)
            for part, shipment_id in zip(new, created, strict=True):
                found[part["command_id"]] = {"id": shipment_id, "state": "draft"}
        for index, step in enumerate(_INTERNAL_STEPS):
            todo = [r["id"] for r in found.values() if _INTERNAL_NEXT.get(r["state"], 99) <= index]
            if todo:
                await self.rpc.model(model, step, todo)
        return Document(model, ",".join(str(found[i]["id"]) for i in ids if i in found))

    # --- money ----------------------------------------------------------------------------

    async def _create_credit_note(self, command: Command) -> Document:
        body = command.body
        reference = command.command_id
        sale = await self._sale(body["order_id"], ["party", "invoice_address", "currency"])
        found = await self._find(
            "account.invoice", [["type", "=", "out"], ["reference", "=", reference]], ["state"]
        )
        if found is None:
            invoice_id = await self._new_credit_note(reference, body, sale)
            state = "draft"
        else:
            invoice_id, state = found["id"], found["state"]
        if state == "draft":
            await self.rpc.model("account.invoice", "validate_invoice", [invoice_id])
        if body["restock"] and body.get("warehouse_id"):
            await self._restock(reference, body, sale)
        return Document("account.invoice", str(invoice_id))

    async def _new_credit_note(
        self, reference: str, body: dict[str, Any], sale: dict[str, Any]
    ) -> int:
        products = await self._product_rows([line["sku"] for line in body["lines"]])
        currency = await self._currency(body["currency"])
        digits = await self._currency_digits(currency)
        (party,) = await self.rpc.model(
            "party.party", "read", [sale["party"]], ["account_receivable", "customer_payment_term"]
        )
        receivable = party["account_receivable"] or await self._default_receivable()
        lines = []
        for line in body["lines"]:
            product = products[line["sku"]]
            # A refund of an amount alone (no units back) is one unit at that amount.
            quantity = line["quantity"] or 1
            lines.append({
                "type": "line", "product": product["id"], "unit": product["default_uom"],
                "quantity": -float(quantity), "currency": currency,
                "unit_price": unit_price_for(quantity, line["amount"], digits),
                "account": product["account_category."]["account_revenue"],
                "description": f"Refund {body['refund_id']}: {line['sku']}",
            })  # fmt: skip
        (invoice_id,) = await self.rpc.create("account.invoice", [{
            "type": "out", "party": sale["party"], "invoice_address": sale["invoice_address"],
            "currency": currency, "journal": await self._journal("revenue"),
            "account": receivable, "payment_term": party["customer_payment_term"],
            "reference": reference,
            "description": _with_po(
                f"Credit note: order {body['order_id']}, refund {body['refund_id']}", body
            ),
            "lines": [["create", lines]],
        }])  # fmt: skip
        return invoice_id

    async def _restock(self, reference: str, body: dict[str, Any], sale: dict[str, Any]) -> None:
        model = "stock.shipment.out.return"
        found = await self._find(model, [["reference", "=", reference]], ["state"])
        if found is None:
            warehouse = await self._warehouse(body["warehouse_id"])
            products = await self._product_rows([line["sku"] for line in body["lines"]])
            customer = await self._customer_location(sale["party"])
            moves = [
                {
                    "product": products[line["sku"]]["id"],
                    "unit": products[line["sku"]]["default_uom"],
                    "quantity": float(line["quantity"]),
                    "from_location": customer,
                    "to_location": warehouse.input,
                    "unit_price": (line["amount"] / line["quantity"]).quantize(_PRICE),
                    "currency": sale["currency"],
                }
                for line in body["lines"]
                if line["quantity"] > 0
            ]
            if not moves:
                return
            (return_id,) = await self.rpc.create(model, [{
                "customer": sale["party"], "contact_address": sale["invoice_address"],
                "warehouse": warehouse.id, "warehouse_input": warehouse.input,
                "warehouse_storage": warehouse.storage, "reference": reference,
                "incoming_moves": [["create", moves]],
            }])  # fmt: skip
            found = {"id": return_id, "state": "draft"}
        if found["state"] == "draft":
            await self.rpc.confirming(model, "receive", [found["id"]])
        if found["state"] in ("draft", "received"):
            await self.rpc.confirming(model, "do", [found["id"]])

    async def _post_journal_entry(self, command: Command) -> Document:
        entries: list[dict[str, Any]] = command.body["entries"]
        journal = await self._journal("general", self.journal_code)
        digits = await self._currency_digits(await self._company_currency())
        ids = [entry["entry_id"] for entry in entries]
        found = {
            row["description"]: row
            for row in await self.rpc.search_read(
                "account.move",
                [["journal", "=", journal], ["description", "in", ids]],
                ["description", "state"],
            )
        }
        # An entry listed twice (copies the dispatcher merged after a redelivery) posts once.
        new = list({e["entry_id"]: e for e in entries if e["entry_id"] not in found}.values())
        waiting: list[str] = []
        refused: list[str] = []
        if new:
            accounts = await self._accounts({line["account"] for e in new for line in e["lines"]})
            refused = [e["entry_id"] for e in new if _party_missing(e, accounts)]
            new = [e for e in new if e["entry_id"] not in refused]
            parties = await self._parties(new, accounts)
            ready = [e for e in new if _resolved(e, accounts, parties)]
            waiting = [e["entry_id"] for e in new if e not in ready]
            values = [
                await self._move(entry, journal, accounts, parties, digits) for entry in ready
            ]
            for entry, move_id in zip(
                ready, await self.rpc.create("account.move", values) if values else [], strict=True
            ):
                found[entry["entry_id"]] = {"id": move_id, "state": "draft"}
        drafts = [row["id"] for row in found.values() if row["state"] == "draft"]
        if drafts:
            await self.rpc.model("account.move", "post", drafts)
        # The entries that could post have: only the others are answered for.
        if refused:
            raise PermanentError(
                "party-required",
                f'{", ".join(refused)}: a line on an account Tryton marks "party required" '
                "names no customer",
            )
        if waiting:
            raise TransientError(
                "unknown-party",
                f"{', '.join(waiting)}: the customer of its receivable is not in Tryton yet (no "
                "sale for the order, no party with the customer id as its code or its "
                "storefront account's external id)",
            )
        return Document("account.move", ",".join(str(found[i]["id"]) for i in ids))

    async def _parties(
        self, entries: list[dict[str, Any]], accounts: dict[str, _Account]
    ) -> dict[tuple[str | None, str], int]:
        """(order id, customer id) -> the party of each line that needs one: the party of the
        order's sale, else the party whose code is the customer id."""
        wanted = {
            (entry["order_id"], line["party"])
            for entry in entries
            for line in entry["lines"]
            if line.get("party") is not None and accounts[line["account"]].party_required
        }
        if not wanted:
            return {}
        orders = sorted({order for order, _ in wanted if order is not None})
        sales = {
            row["reference"]: int(row["party"])
            for row in await self.rpc.search_read(
                "sale.sale",
                [["reference", "in", [sales_order_id(order) for order in orders]]],
                ["reference", "party"],
            )
        }
        # Looked up once per customer, however many of its orders have no sale.
        by_customer: dict[str, int | None] = {}
        parties: dict[tuple[str | None, str], int] = {}
        for order, customer in sorted(wanted, key=str):
            party = sales.get(sales_order_id(order)) if order is not None else None
            if party is None:
                if customer not in by_customer:
                    by_customer[customer] = await self._cached(
                        "party", customer, "party.party", [["code", "=", customer]]
                    ) or await self._account_party(customer)  # a storefront account's id
                party = by_customer[customer]
            if party is not None:
                parties[order, customer] = party
        return parties

    async def _move(
        self,
        entry: dict[str, Any],
        journal: int,
        accounts: dict[str, _Account],
        parties: dict[tuple[str | None, str], int],
        digits: int,
    ) -> dict[str, Any]:
        # A date once decoded from erp.commands; its ISO form while pending (statejson).
        raw = entry["posting_date"]
        posting = raw if isinstance(raw, date) else date.fromisoformat(raw)
        periods = await self.rpc.search_read(
            "account.period",
            [["start_date", "<=", posting], ["end_date", ">=", posting], ["type", "=", "standard"]],
            ["id"], limit=1,
        )  # fmt: skip
        if not periods:
            raise PermanentError(
                "no-period", f"{entry['entry_id']}: no Tryton period for {posting}"
            )
        lines = []
        for line in entry["lines"]:
            values = {
                "account": accounts[line["account"]].id,
                "debit": _money(line["functional_debit"], digits, entry["entry_id"]),
                "credit": _money(line["functional_credit"], digits, entry["entry_id"]),
                "description": _with_po(line.get("memo") or entry["description"], entry),
            }
            party = _line_party(entry, line, accounts, parties)
            if party is not None:
                values["party"] = party
            lines.append(values)
        return {
            "journal": journal, "period": periods[0]["id"], "date": posting,
            "description": entry["entry_id"], "lines": [["create", lines]],
        }  # fmt: skip

    # --- customers ------------------------------------------------------------------------

    async def _upsert_customer(self, command: Command) -> Document:
        return Document("party.party", str(await self._account_customer(command.body)))

    async def _account_customer(self, account: dict[str, Any]) -> int:
        """The party of a storefront account (an UpsertCustomer body), found or made."""
        external = external_id(account["storefront"], account["account_id"])
        party = await self._account_party(external)
        if party is None:
            party = await self._claimed_party(account)
            if party is None:
                (party,) = await self.rpc.create("party.party", [await self._new_party(account)])
            else:
                await self.rpc.create(
                    "party.identifier", [{"party": party, "type": None, "code": external}]
                )
        return party

    async def _account_party(self, external: str) -> int | None:
        row = await self._find(
            "party.identifier", [["type", "=", None], ["code", "=", external]], ["party"]
        )
        return None if row is None else int(row["party"])

    async def _claimed_party(self, body: dict[str, Any]) -> int | None:
        """The existing party the account belongs to: the one it is marked with, or the
        only one with its e-mail; None when there is none."""
        marked = body.get("erp_customer_id")
        if marked is not None:
            party = await self._find("party.party", [["code", "=", marked]], ["id"])
            if party is None:
                raise PermanentError(
                    "unknown-customer",
                    f"account {body['account_id']} of {body['storefront']} is marked with "
                    f"customer {marked!r}, and no Tryton party has that code",
                )
            return int(party["id"])
        email = body.get("email")
        if not email:
            return None
        rows = await self.rpc.search_read(
            "party.contact_mechanism", [["type", "=", "email"], ["value", "=", email]], ["party"]
        )
        parties = sorted({int(row["party"]) for row in rows})
        if len(parties) > 1:
            raise PermanentError(
                "ambiguous-customer",
                f"{len(parties)} Tryton parties ({', '.join(map(str, parties))}) have the e-mail "
                f"of account {body['account_id']} of {body['storefront']}; keep one",
            )
        return parties[0] if parties else None

    async def _new_party(self, body: dict[str, Any]) -> dict[str, Any]:
        mechanisms = [
            {"type": kind, "value": body[kind]} for kind in ("email", "phone") if body.get(kind)
        ]
        addresses = [await self._address(a) for a in body["addresses"]]
        external = external_id(body["storefront"], body["account_id"])
        party: dict[str, Any] = {
            "name": body["name"],
            "identifiers": [["create", [{"type": None, "code": external}]]],
            "contact_mechanisms": [["create", mechanisms]],
        }
        if addresses:  # else Tryton's default: one empty address
            party["addresses"] = [["create", addresses]]
        return party

    async def _address(self, address: dict[str, Any]) -> dict[str, Any]:
        """A party.address; a country or subdivision Tryton does not have is left empty."""
        values: dict[str, Any] = {
            "party_name": address.get("name"),
            "street": address.get("street"),
            "city": address.get("city"),
            "postal_code": address.get("postal_code"),
        }
        country, region = address.get("country"), address.get("region")
        if country:
            values["country"] = await self._cached(
                "country", country, "country.country", [["code", "=", country]]
            )
        if region and values.get("country"):
            values["subdivision"] = await self._cached(
                "subdivision", region, "country.subdivision", [["code", "=", region]]
            )
        return values

    # --- master data ----------------------------------------------------------------------

    async def _find(
        self, model: str, domain: list[Any], fields: list[str]
    ) -> dict[str, Any] | None:
        rows = await self.rpc.search_read(model, domain, fields, order=[["id", "ASC"]], limit=1)
        return rows[0] if rows else None

    async def _product_rows(self, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(skus) - set(self._products))
        if wanted:
            for row in await self.rpc.search_read(
                "product.product", [["code", "in", wanted]],
                ["code", "default_uom", "account_category.account_revenue"],
            ):  # fmt: skip
                self._products[row["code"]] = row
        unknown = sorted(set(skus) - set(self._products))
        if unknown:
            raise PermanentError("unknown-sku", f"no Tryton product with code {', '.join(unknown)}")
        return {sku: self._products[sku] for sku in skus}

    async def _cached(self, kind: str, key: str, model: str, domain: list[Any]) -> int | None:
        if (kind, key) not in self._ids:
            row = await self._find(model, domain, ["id"])
            if row is None:
                return None
            self._ids[kind, key] = row["id"]
        return self._ids[kind, key]

    async def _currency(self, code: str) -> int:
        found = await self._cached("currency", code, "currency.currency", [["code", "=", code]])
        if found is None:
            raise PermanentError("unknown-currency", f"no Tryton currency {code!r}")
        return found

    async def _company_currency(self) -> int:
        if ("company-currency", "") not in self._ids:
            company = self.rpc.context["company"]
            (row,) = await self.rpc.model("company.company", "read", [company], ["currency"])
            self._ids["company-currency", ""] = int(row["currency"])
        return self._ids["company-currency", ""]

    async def _currency_digits(self, currency: int) -> int:
        if currency not in self._digits:
            (row,) = await self.rpc.model("currency.currency", "read", [currency], ["digits"])
            self._digits[currency] = int(row["digits"])
        return self._digits[currency]

    async def _journal(self, kind: str, code: str | None = None) -> int:
        domain: list[Any] = [["type", "=", kind]] + ([["code", "=", code]] if code else [])
        found = await self._cached("journal", f"{kind}:{code}", "account.journal", domain)
        if found is None:
            raise PermanentError("no-journal", f"no Tryton {kind} journal {code or ''}".strip())
        return found

    async def _accounts(self, codes: set[str]) -> dict[str, _Account]:
        wanted = sorted(c for c in codes if c not in self._account_rows)
        if wanted:
            for row in await self.rpc.search_read(
                "account.account", [["code", "in", wanted]], ["code", "party_required"]
            ):
                self._account_rows[row["code"]] = _Account(row["id"], bool(row["party_required"]))
        unknown = sorted(c for c in codes if c not in self._account_rows)
        if unknown:
            raise PermanentError("unknown-account", f"no Tryton account {', '.join(unknown)}")
        return {c: self._account_rows[c] for c in codes}

    async def _warehouse(self, code: str) -> _Warehouse:
        if code not in self._warehouses:
            row = await self._find(
                "stock.location", [["code", "=", code], ["type", "=", "warehouse"]],
                ["storage_location", "input_location", "output_location"],
            )  # fmt: skip
            if row is None:
                raise PermanentError("unknown-warehouse", f"no Tryton warehouse {code!r}")
            self._warehouses[code] = _Warehouse(
                row["id"], row["storage_location"], row["input_location"], row["output_location"]
            )
        return self._warehouses[code]

    async def _sale_warehouse(self) -> int:
        if self.sale_warehouse is not None:
            return (await self._warehouse(self.sale_warehouse)).id
        # Tryton's own first warehouse, as its sale form would default to.
        found = await self._cached("warehouse", "", "stock.location", [["type", "=", "warehouse"]])
        if found is None:
            raise PermanentError("unknown-warehouse", "Tryton has no warehouse")
        return found

    async def _lost_found(self) -> int:
        found = await self._cached(
            "location", "lost_found", "stock.location", [["type", "=", "lost_found"]]
        )
        if found is None:
            raise PermanentError("no-lost-found", "Tryton has no Lost and Found location")
        return found

    async def _customer_location(self, party: int) -> int:
        (row,) = await self.rpc.model("party.party", "read", [party], ["customer_location"])
        return int(row["customer_location"])

    async def _default_receivable(self) -> int:
        (row,) = await self.rpc.model(
            "account.configuration", "read", [1], ["default_account_receivable"]
        )
        return int(row["default_account_receivable"])

"""connectors.erp.tryton against a real Tryton (the session's `tryton` fixture).

Commands come from the rules that issue them (order_commands, adjustment_command,
entry_command) and are checked against erpbridge.ErpCommand, so they carry what
erp.commands carries. Every test uses its own order ids: tests share one ERP database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from connectors.erp.adapter import Document, PermanentError, TransientError
from connectors.erp.tryton import TrytonAdapter
from connectors.erp.tryton.rpc import TrytonRpc, decode, encode
from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.domain.commands import (
    Command,
    CommandPolicy,
    Kind,
    adjustment_command,
    cancellation_id,
    order_commands,
)
from streams.domain.events import InputEvent
from streams.domain.finance import JournalEntry, JournalLine, entry_command
from streams.domain.orders import Order
from streams.local.tryton import Tryton
from streams.ops.settings import REPO_ROOT
from tests.connectors.erp.records import account_command
from tests.streams.domain.builders import (
    EAST,
    EU,
    MINUTE_MS,
    WEST,
    adjusted,
    apply,
    fulfilled,
    line,
    placed,
    refunded,
)
from tests.support import on_tryton

T = TypeVar("T")
POLICY = CommandPolicy(target="tryton")
CUSTOMER = "CUS-0001"
A, B = "SKU-0001", "SKU-0002"
CODEC = Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))
NOW = int(datetime.combine(date.today(), time(12), UTC).timestamp() * 1000)


def checked(command: Command) -> Command:
    """The command, once it encodes as the erp.commands value."""
    CODEC.encode("erpbridge.ErpCommand", command.to_datum(), topic="erp.commands")
    return command


def order_id() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


def on_account(oid: str, lines: Sequence[dict[str, Any]], **kwargs: Any) -> InputEvent:
    """An order on account (confirmable when placed) by a customer Tryton knows."""
    event = placed(
        oid, lines, payment_terms="ON_ACCOUNT", purchase_order_number=f"PO-{oid}", at=NOW, **kwargs
    )
    event.payload["customer"]["customer_id"] = CUSTOMER
    return event


def commands(oid: str, events: Sequence[InputEvent]) -> dict[Kind, list[Command]]:
    order = Order(oid)
    for event in events:
        apply(order, event)
    by_kind: dict[Kind, list[Command]] = {}
    for command in order_commands(order, POLICY):
        by_kind.setdefault(command.kind, []).append(checked(command))
    return by_kind


def sales_order(oid: str, lines: Sequence[dict[str, Any]], **kwargs: Any) -> Command:
    return commands(oid, [on_account(oid, lines, **kwargs)])[Kind.CREATE_SALES_ORDER][0]


def adjustment(sku: str, warehouse: str, delta: int) -> Command:
    event = adjusted(sku, warehouse, delta, at=NOW, reason="DAMAGE", event_id=uuid.uuid4().hex)
    command = adjustment_command(event, POLICY)
    assert command is not None
    return checked(command)


def journal(*entries: JournalEntry) -> Command:
    first = entry_command(entries[0], "tryton")
    body = {"entries": [entry_command(e, "tryton").body["entries"][0] for e in entries]}
    return checked(replace(first, body=body))


def entry(
    lines: Sequence[tuple[str, str, str]],
    entry_id: str | None = None,
    *,
    order: str | None = None,
    party: str | None = CUSTOMER,
) -> JournalEntry:
    """A USD entry of (account, debit, credit) lines; the receivable's (1200) owed by `party`."""
    return JournalEntry(
        entry_id=entry_id or f"JE-{uuid.uuid4().hex[:12]}",
        posted_ms=NOW,
        order_id=order,
        description="test entry",
        transaction_currency="USD",
        functional_currency="USD",
        exchange_rate=Decimal(1),
        lines=tuple(
            JournalLine(
                account, Decimal(d), Decimal(c), Decimal(d), Decimal(c),
                party=party if account == "1200" else None,
            )
            for account, d, c in lines
        ),
    )  # fmt: skip


async def read(erp: TrytonAdapter, model: str, ids: Sequence[int], fields: list[str]) -> Any:
    return await erp.rpc.model(model, "read", list(ids), fields)


def test_a_sales_order_is_created_confirmed_once_and_priced_net_of_discounts(
    tryton: Tryton,
) -> None:
    oid = order_id()
    command = sales_order(
        oid, [line("L1", A, 3, "10.00", discount="1.00"), line("L2", B, 1, "5.00")]
    )

    async def scenario(erp: TrytonAdapter) -> None:
        first = await erp.execute(command)
        assert first == await erp.execute(command)
        assert await erp.sales_by_reference([command.command_id]) == {command.command_id: 1}
        (sale,) = await read(erp, "sale.sale", [int(first.id)], ["state", "lines", "party.code",
                             "invoice_method", "shipment_method", "untaxed_amount"])  # fmt: skip
        assert sale["state"] == "processing"
        assert sale["party."]["code"] == CUSTOMER
        assert (sale["invoice_method"], sale["shipment_method"]) == ("manual", "manual")
        lines = await read(erp, "sale.line", sale["lines"], ["product.code", "quantity", "amount"])
        assert {(x["product."]["code"], x["quantity"], x["amount"]) for x in lines} == {
            (A, 3.0, Decimal("29.00")),
            (B, 1.0, Decimal("5.00")),
        }
        assert sale["untaxed_amount"] == Decimal("34.00")

    on_tryton(tryton, scenario)


def test_a_companys_buyers_order_for_the_company_each_named_as_the_contact(
    tryton: Tryton,
) -> None:
    """Two buyers of the company CUSTOMER: each sale is the company's, with the buyer's
    e-mail as its contact; a buyer's second order finds the contact the first one added."""
    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    orders = []
    for email in (f"{buyer}-1@example.com", f"{buyer}-2@example.com", f"{buyer}-1@example.com"):
        oid = order_id()
        event = on_account(oid, [line("L1", A, 1)])
        event.payload["customer"] = {
            "customer_id": email.split("@")[0], "email": email, "name": f"Buyer {email}",
            "kind": "BUSINESS", "group": None, "company_id": CUSTOMER,
        }  # fmt: skip
        apply(order := Order(oid), event)
        (command,) = [c for c in order_commands(order, POLICY) if c.kind is Kind.CREATE_SALES_ORDER]
        orders.append((email, checked(command)))

    async def scenario(erp: TrytonAdapter) -> None:
        contacts = []
        for email, command in orders:
            document = await erp.execute(command)
            (sale,) = await read(erp, "sale.sale", [int(document.id)],
                                 ["party.code", "contact.value", "contact.party", "contact"])  # fmt: skip
            assert sale["party."]["code"] == CUSTOMER
            assert sale["contact."]["value"] == email
            contacts.append(sale["contact"])
        assert contacts[0] == contacts[2] != contacts[1]

    on_tryton(tryton, scenario)


def test_a_sales_order_left_in_draft_is_finished_by_the_redelivery(tryton: Tryton) -> None:
    oid = order_id()
    command = sales_order(oid, [line("L1", A, 1)])

    async def scenario(erp: TrytonAdapter) -> None:
        # A crash between create and confirm: only the draft exists.
        sale_id = await erp._new_sale(command.command_id, command.body)
        assert await erp.execute(command) == Document("sale.sale", str(sale_id))
        (sale,) = await read(erp, "sale.sale", [sale_id], ["state"])
        assert sale["state"] == "processing"

    on_tryton(tryton, scenario)


def test_an_order_in_euros_is_sold_and_shipped_in_euros(tryton: Tryton) -> None:
    oid = order_id()
    by_kind = commands(oid, [
        on_account(oid, [line("L1", A, 3, "19.99", discount="0.01")], currency="EUR"),
        fulfilled(oid, "F1", EU, {A: 3}, at=NOW + MINUTE_MS),
    ])  # fmt: skip

    async def scenario(erp: TrytonAdapter) -> None:
        document = await erp.execute(by_kind[Kind.CREATE_SALES_ORDER][0])
        await erp.execute(by_kind[Kind.RECORD_SHIPMENT][0])
        (sale,) = await read(erp, "sale.sale", [int(document.id)],
                             ["currency.code", "untaxed_amount", "shipment_state"])  # fmt: skip
        assert sale["currency."]["code"] == "EUR"
        assert sale["untaxed_amount"] == Decimal("59.96")
        assert sale["shipment_state"] == "sent"

    on_tryton(tryton, scenario)


def test_unknown_customer_and_skus_are_permanent_errors(tryton: Tryton) -> None:
    oid = order_id()
    unknown_sku = sales_order(oid, [line("L1", "SKU-NOPE", 1), line("L2", "SKU-NADA", 1)])
    stranger = placed(oid, [line("L1", A, 1)], payment_terms="ON_ACCOUNT",
                      purchase_order_number="PO-1", at=NOW)  # fmt: skip
    unknown_customer = commands(oid, [stranger])[Kind.CREATE_SALES_ORDER][0]

    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(PermanentError) as sku:
            await erp.execute(unknown_sku)
        assert sku.value.code == "unknown-sku"
        assert "SKU-NADA" in sku.value.message and "SKU-NOPE" in sku.value.message
        with pytest.raises(PermanentError) as customer:
            await erp.execute(unknown_customer)
        assert customer.value.code == "unknown-customer" and "C-1" in customer.value.message
        assert await erp.sales_by_reference([unknown_sku.command_id]) == {}

    on_tryton(tryton, scenario)


def test_a_shipment_is_done_once_decreases_stock_and_waits_for_its_sale(tryton: Tryton) -> None:
    oid = order_id()
    events = [
        on_account(oid, [line("L1", A, 3), line("L2", B, 1)]),
        fulfilled(oid, "F1", WEST, {A: 2, B: 1}, at=NOW + MINUTE_MS),
    ]
    by_kind = commands(oid, events)
    (shipment,) = by_kind[Kind.RECORD_SHIPMENT]

    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(TransientError) as early:
            await erp.execute(shipment)
        assert early.value.code == "no-sales-order"
        before = await erp.stock_levels([A, B], [WEST])
        document = await erp.execute(by_kind[Kind.CREATE_SALES_ORDER][0])
        shipped = await erp.execute(shipment)
        assert shipped == await erp.execute(shipment)
        after = await erp.stock_levels([A, B], [WEST])
        assert after == {(A, WEST): before[A, WEST] - 2, (B, WEST): before[B, WEST] - 1}
        (done,) = await read(erp, "stock.shipment.out", [int(shipped.id)], ["state", "reference"])
        assert done["state"] == "done" and done["reference"] == shipment.command_id
        (sale,) = await read(erp, "sale.sale", [int(document.id)], ["shipment_state"])
        assert sale["shipment_state"] == "partially shipped"

    on_tryton(tryton, scenario)


def test_a_shipment_beyond_the_stock_is_forced_through(tryton: Tryton) -> None:
    oid = order_id()
    by_kind = commands(oid, [
        on_account(oid, [line("L1", B, 5000)]),
        fulfilled(oid, "F1", EAST, {B: 5000}, at=NOW + MINUTE_MS),
    ])  # fmt: skip

    async def scenario(erp: TrytonAdapter) -> None:
        before = await erp.stock_levels([B], [EAST])
        await erp.execute(by_kind[Kind.CREATE_SALES_ORDER][0])
        await erp.execute(by_kind[Kind.RECORD_SHIPMENT][0])
        assert await erp.stock_levels([B], [EAST]) == {(B, EAST): before[B, EAST] - 5000}
        # Put it back for the tests that follow.
        await erp.execute(adjustment(B, EAST, 5000))

    on_tryton(tryton, scenario)


@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "draft"])
def test_a_cancellation_leaves_nothing_to_ship_once(tryton: Tryton, confirmed: bool) -> None:
    oid = order_id()
    placement = on_account(oid, [line("L1", A, 2)])
    # The order agent issues the sales order first; cancelled later, the order issues this:
    create = commands(oid, [placement])[Kind.CREATE_SALES_ORDER][0]
    cancel = checked(replace(create, command_id=cancellation_id(oid),
                             kind=Kind.CANCEL_SALES_ORDER, created_ms=NOW + MINUTE_MS,
                             body={"order_id": oid, "reason": "customer_request"}))  # fmt: skip

    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(TransientError) as early:
            await erp.execute(cancel)
        assert early.value.code == "no-sales-order"
        if confirmed:
            document = await erp.execute(create)
        else:
            document = Document(
                "sale.sale", str(await erp._new_sale(create.command_id, create.body))
            )
        assert await erp.execute(cancel) == document
        assert await erp.execute(cancel) == document
        (sale,) = await read(erp, "sale.sale", [int(document.id)],
                             ["state", "to_ship", "shipment_state", "comment", "shipments"])  # fmt: skip
        assert sale["comment"].count(cancel.command_id) == 1
        assert "customer_request" in sale["comment"]
        if confirmed:
            # Tryton cannot cancel a confirmed sale: its shipment is cancelled, the moves ignored.
            assert sale["state"] == "processing" and not sale["to_ship"]
            assert sale["shipment_state"] == "none"
            shipments = await read(erp, "stock.shipment.out", sale["shipments"], ["state"])
            assert [s["state"] for s in shipments] == ["cancelled"]
        else:
            assert sale["state"] == "cancelled"

    on_tryton(tryton, scenario)


def test_a_credit_note_has_negative_lines_and_restocks_once(tryton: Tryton) -> None:
    oid = order_id()
    by_kind = commands(oid, [
        on_account(oid, [line("L1", A, 3, "10.00")]),
        fulfilled(oid, "F1", EAST, {A: 3}, at=NOW + MINUTE_MS),
        refunded(oid, "R1", {A: (2, "20.00")}, restock=True, warehouse=EAST, at=NOW + 2 * MINUTE_MS),
    ])  # fmt: skip
    (credit,) = by_kind[Kind.CREATE_CREDIT_NOTE]

    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(TransientError):
            await erp.execute(credit)
        await erp.execute(by_kind[Kind.CREATE_SALES_ORDER][0])
        await erp.execute(by_kind[Kind.RECORD_SHIPMENT][0])
        before = await erp.stock_levels([A], [EAST])
        document = await erp.execute(credit)
        assert document == await erp.execute(credit)
        assert await erp.stock_levels([A], [EAST]) == {(A, EAST): before[A, EAST] + 2}
        (invoice,) = await read(erp, "account.invoice", [int(document.id)],
                                ["state", "type", "total_amount", "lines", "party.code",
                                 "description"])  # fmt: skip
        assert (invoice["type"], invoice["state"]) == ("out", "validated")
        assert invoice["description"].endswith(f"(PO PO-{oid})")
        assert invoice["total_amount"] == Decimal("-20.00")
        assert invoice["party."]["code"] == CUSTOMER
        lines = await read(erp, "account.invoice.line", invoice["lines"], ["quantity"])
        assert [x["quantity"] for x in lines] == [-2.0]
        returns = await erp.rpc.search_read(
            "stock.shipment.out.return", [["reference", "=", credit.command_id]], ["state"]
        )
        assert [r["state"] for r in returns] == ["done"]

    on_tryton(tryton, scenario)


def test_an_adjustment_moves_stock_by_its_delta_once(tryton: Tryton) -> None:
    down, up = adjustment(A, WEST, -4), adjustment(A, WEST, 7)

    async def scenario(erp: TrytonAdapter) -> None:
        before = (await erp.stock_levels([A], [WEST]))[A, WEST]
        first = await erp.execute(down)
        assert first == await erp.execute(down)
        assert (await erp.stock_levels([A], [WEST]))[A, WEST] == before - 4
        await erp.execute(up)
        await erp.execute(up)
        assert (await erp.stock_levels([A], [WEST]))[A, WEST] == before + 3

    on_tryton(tryton, scenario)


def test_a_merged_adjustment_applies_only_the_parts_not_applied_yet(tryton: Tryton) -> None:
    one, two, three = (adjustment(B, EU, d) for d in (-1, -2, 5))
    parts = [
        {"command_id": c.command_id, "delta": c.body["delta"], "reason": c.body["reason"],
         "reference": c.body["reference"]}
        for c in (one, two, three)
    ]  # fmt: skip
    merged = checked(replace(three, body={**three.body, "delta": 2, "parts": parts}))

    async def scenario(erp: TrytonAdapter) -> None:
        before = (await erp.stock_levels([B], [EU]))[B, EU]
        applied = await erp.execute(one)
        document = await erp.execute(merged)
        assert document.id.split(",")[0] == applied.id
        assert len(document.id.split(",")) == 3
        assert (await erp.stock_levels([B], [EU]))[B, EU] == before + 2
        assert await erp.execute(merged) == document
        assert (await erp.stock_levels([B], [EU]))[B, EU] == before + 2

    on_tryton(tryton, scenario)


def test_journal_entries_are_posted_once_per_entry_with_their_amounts(tryton: Tryton) -> None:
    sale = entry([("1200", "107.25", "0"), ("4000", "0", "100.00"), ("2310", "0", "7.25")])
    fee = entry([("6150", "3.20", "0"), ("1110", "0", "3.20")])
    command = journal(sale, fee)

    async def scenario(erp: TrytonAdapter) -> None:
        # The first entry was posted by an earlier attempt: only the second is new.
        first = await erp.execute(journal(sale))
        document = await erp.execute(command)
        assert document == await erp.execute(command)
        ids = [int(i) for i in document.id.split(",")]
        assert ids[0] == int(first.id) and len(ids) == 2
        # Tryton's read does not promise the order of the ids asked for.
        rows = await read(erp, "account.move", ids, ["state", "description", "lines"])
        moves = sorted(rows, key=lambda m: ids.index(m["id"]))
        assert [m["state"] for m in moves] == ["posted", "posted"]
        assert [m["description"] for m in moves] == [sale.entry_id, fee.entry_id]
        lines = await read(erp, "account.move.line", moves[0]["lines"],
                           ["account.code", "debit", "credit"])  # fmt: skip
        assert sorted((x["account."]["code"], x["debit"], x["credit"]) for x in lines) == [
            ("1200", Decimal("107.25"), Decimal("0")),
            ("2310", Decimal("0"), Decimal("7.25")),
            ("4000", Decimal("0"), Decimal("100.00")),
        ]

    on_tryton(tryton, scenario)


def test_a_receivable_line_is_the_customers_and_one_without_a_customer_waits(
    tryton: Tryton,
) -> None:
    oid = order_id()
    sale = sales_order(oid, [line("L1", A, 1)])
    # A customer id that is no Tryton party's code (a storefront's): the order's sale says whose.
    by_sale = replace(
        entry([("1200", "12.00", "0"), ("4000", "0", "12.00")], order=oid, party="web-42"),
        purchase_order_number="PO-7",
    )
    by_code = entry([("1110", "5.00", "0"), ("1200", "0", "5.00")])
    nobody = entry([("1200", "3.00", "0"), ("4000", "0", "3.00")], order=order_id(), party="web-0")
    unmarked = entry([("6150", "1.00", "0"), ("1110", "0", "1.00")])

    async def scenario(erp: TrytonAdapter) -> None:
        await erp.execute(sale)
        with pytest.raises(TransientError) as waiting:
            await erp.execute(journal(by_sale, nobody, by_code, unmarked))
        assert waiting.value.code == "unknown-party" and nobody.entry_id in waiting.value.message
        assert by_sale.entry_id not in waiting.value.message
        ids = [by_sale.entry_id, nobody.entry_id, by_code.entry_id, unmarked.entry_id]
        lines = await erp.rpc.search_read(
            "account.move.line",
            [["move.description", "in", ids]],
            ["move.description", "move.state", "account.code", "party.code", "description"],
        )
        posted = {
            (x["move."]["description"], x["account."]["code"]): (x["party."] or {}).get("code")
            for x in lines
            if x["move."]["state"] == "posted"
        }
        assert all(
            x["description"].endswith("(PO PO-7)")
            for x in lines
            if x["move."]["description"] == by_sale.entry_id
        )
        assert posted == {
            (by_sale.entry_id, "1200"): CUSTOMER,
            (by_sale.entry_id, "4000"): None,
            (by_code.entry_id, "1110"): None,
            (by_code.entry_id, "1200"): CUSTOMER,
            (unmarked.entry_id, "6150"): None,
            (unmarked.entry_id, "1110"): None,
        }

    on_tryton(tryton, scenario)


def test_a_receivable_line_without_a_customer_is_refused_alone(tryton: Tryton) -> None:
    anonymous = entry([("1200", "2.00", "0"), ("4000", "0", "2.00")], party=None)
    named = entry([("1200", "2.00", "0"), ("4000", "0", "2.00")])

    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(PermanentError) as refused:
            await erp.execute(journal(anonymous, named))
        assert refused.value.code == "party-required"
        assert anonymous.entry_id in refused.value.message
        assert named.entry_id not in refused.value.message
        rows = await erp.rpc.search_read(
            "account.move", [["description", "in", [anonymous.entry_id, named.entry_id]]],
            ["description", "state"],
        )  # fmt: skip
        assert [(r["description"], r["state"]) for r in rows] == [(named.entry_id, "posted")]

    on_tryton(tryton, scenario)


def test_a_storefront_customers_receivable_is_its_accounts_party(tryton: Tryton) -> None:
    """A storefront order's customer is `<storefront>:<account id>` on the journal: with no
    sale yet (or ever, for an order cancelled before it), its party is the one holding that
    external id."""
    account_id = uuid.uuid4().hex[:12]
    upsert = account_command(account_id)
    external = f"{upsert.body['storefront']}:{account_id}"
    owed = entry([("1200", "4.00", "0"), ("4000", "0", "4.00")], order=order_id(), party=external)

    async def scenario(erp: TrytonAdapter) -> None:
        party = int((await erp.execute(upsert)).id)
        document = await erp.execute(journal(owed))
        (move,) = await read(erp, "account.move", [int(document.id)], ["lines"])
        lines = await read(erp, "account.move.line", move["lines"], ["account.code", "party"])
        assert {(x["account."]["code"], x["party"]) for x in lines} == {
            ("1200", party), ("4000", None),
        }  # fmt: skip

    on_tryton(tryton, scenario)


def test_copies_merged_into_one_command_apply_once(tryton: Tryton) -> None:
    """After a crash the topology re-sends its commands and the dispatcher may merge copies
    of one entry or adjustment into one command: each is still one document."""
    fee = entry([("6150", "1.10", "0"), ("1110", "0", "1.10")])
    twice = journal(fee, fee)
    down = adjustment(B, WEST, -3)
    part = {"command_id": down.command_id, "delta": -3, "reason": "DAMAGE",
            "reference": down.body["reference"]}  # fmt: skip
    doubled = checked(replace(down, body={**down.body, "delta": -6, "parts": [part, part]}))

    async def scenario(erp: TrytonAdapter) -> None:
        moves = await erp.execute(twice)
        rows = await erp.rpc.search_read(
            "account.move", [["description", "=", fee.entry_id]], ["state"]
        )
        assert [row["state"] for row in rows] == ["posted"]
        assert set(moves.id.split(",")) == {str(rows[0]["id"])}
        before = (await erp.stock_levels([B], [WEST]))[B, WEST]
        await erp.execute(doubled)
        assert (await erp.stock_levels([B], [WEST]))[B, WEST] == before - 3

    on_tryton(tryton, scenario)


def test_an_entry_on_an_unknown_account_is_refused(tryton: Tryton) -> None:
    # Unbalanced entries never reach an adapter: the sink refuses them (connectors.erp.checks).
    unknown = journal(entry([("9999", "1.00", "0"), ("4000", "0", "1.00")]))

    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(PermanentError) as account:
            await erp.execute(unknown)
        assert account.value.code == "unknown-account" and "9999" in account.value.message

    on_tryton(tryton, scenario)


def test_a_stopped_server_is_transient_and_the_adapter_recovers(tryton: Tryton) -> None:
    oid = order_id()
    command = sales_order(oid, [line("L1", A, 1)])

    async def scenario(erp: TrytonAdapter) -> None:
        await erp.stock_levels([A], [EAST])
        tryton.stop_server()
        try:
            with pytest.raises(TransientError) as down:
                await erp.execute(command)
            assert down.value.code == "unreachable"
        finally:
            tryton.start_server()
        document = await erp.execute(command)
        assert await erp.execute(command) == document

    on_tryton(tryton, scenario)


# --- the JSON-RPC client's mapping of Tryton's answers, without a server -----------------------


def fake_tryton(answer: Callable[[str, list[Any]], httpx.Response]) -> TrytonRpc:
    """A client whose server logs in as user 1 and answers every other call with `answer`."""

    def handle(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content, object_hook=decode)
        if call["method"] == "common.db.login":
            return httpx.Response(200, json={"id": call["id"], "result": [1, "token"]})
        if call["method"] == "model.res.user.get_preferences":
            return httpx.Response(200, json={"id": call["id"], "result": {"company": 1}})
        return answer(call["method"], call["params"])

    return TrytonRpc("http://tryton/db/rpc/", "admin", "pw", transport=httpx.MockTransport(handle))


def call_once(rpc: TrytonRpc) -> Any:
    async def main() -> Any:
        try:
            return await rpc.model("sale.sale", "read", [1], ["state"])
        finally:
            await rpc.close()

    return asyncio.run(main())


def error(*error: Any) -> Callable[[str, list[Any]], httpx.Response]:
    return lambda method, params: httpx.Response(200, json={"id": 1, "error": list(error)})


def test_decimals_and_dates_travel_tagged_both_ways() -> None:
    sent: list[Any] = []

    def echo(method: str, params: list[Any]) -> httpx.Response:
        sent.append(params)
        return httpx.Response(200, content=json.dumps({"id": 1, "result": params}, default=encode))

    values = [Decimal("10.0050"), date(2027, 1, 15), datetime(2027, 1, 15, 8, 30, 1, 5)]
    rpc = fake_tryton(echo)

    async def main() -> Any:
        try:
            return await rpc.model("m", "f", values)
        finally:
            await rpc.close()

    assert asyncio.run(main()) == [values, {"company": 1}]
    assert sent == [[values, {"company": 1}]]


@pytest.mark.parametrize(
    ("answer", "code", "message"),
    [
        (error("UserError", ["A value is required for field \"Party\".", "", None]),
         "UserError", "A value is required for field \"Party\"."),
        (error("UserWarning", ["key", "Stock moves have no origin.", ""]),
         "UserWarning", "Stock moves have no origin."),
        (error("AccessError", ["You are not allowed to read.", ""]),
         "AccessError", "You are not allowed to read."),
        (error("'foo'", "Traceback ..."), "server-error", "'foo'"),
        (lambda m, p: httpx.Response(422, text="Missing context argument"),
         "http-422", "Missing context argument"),
    ],
)  # fmt: skip
def test_what_a_retry_cannot_fix_is_permanent(
    answer: Callable[[str, list[Any]], httpx.Response], code: str, message: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        call_once(fake_tryton(answer))
    assert refused.value.code == code and message in refused.value.message


@pytest.mark.parametrize(
    ("answer", "code", "retry_after"),
    [
        (lambda m, p: httpx.Response(503, headers={"Retry-After": "7"}), "http-503", 7.0),
        (lambda m, p: httpx.Response(429), "http-429", None),
        (lambda m, p: httpx.Response(504), "http-504", None),
        (error("ConcurrencyException", "Records were modified in the meanwhile"),
         "concurrency", None),
        (error("could not serialize access due to concurrent update", ""), "concurrency", None),
    ],
)  # fmt: skip
def test_what_a_retry_may_fix_is_transient(
    answer: Callable[[str, list[Any]], httpx.Response], code: str, retry_after: float | None
) -> None:
    with pytest.raises(TransientError) as later:
        call_once(fake_tryton(answer))
    assert (later.value.code, later.value.retry_after) == (code, retry_after)


def test_network_failures_are_transient() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for transport, code in ((timeout, "timeout"), (refused, "unreachable")):
        rpc = TrytonRpc("http://tryton/db/rpc/", "a", "b", transport=httpx.MockTransport(transport))
        with pytest.raises(TransientError) as later:
            asyncio.run(rpc.open())
        assert later.value.code == code


def test_an_expired_session_logs_in_again_once() -> None:
    answers = iter([httpx.Response(401), httpx.Response(200, json={"id": 1, "result": "ok"})])
    assert call_once(fake_tryton(lambda m, p: next(answers))) == "ok"
    with pytest.raises(PermanentError) as refused:
        call_once(fake_tryton(lambda m, p: httpx.Response(401)))
    assert refused.value.code == "unauthorized"


# --- the same mapping of the answers a real Tryton gives ----------------------------------------


def test_a_real_tryton_refusal_is_permanent_and_names_the_field(tryton: Tryton) -> None:
    async def scenario(erp: TrytonAdapter) -> None:
        with pytest.raises(PermanentError) as missing:
            await erp.rpc.create("sale.sale", [{"description": "no party"}])
        assert missing.value.code == "UserError"
        assert missing.value.message == 'A value is required for field "Party" in "Sale".'
        with pytest.raises(PermanentError) as unknown:
            await erp.rpc.model("no.such.model", "read", [1], ["id"])
        # An internal error: its name is the message, its traceback is not passed on.
        assert (unknown.value.code, unknown.value.message) == ("server-error", "'no.such.model'")

    on_tryton(tryton, scenario)


def test_a_real_tryton_concurrent_edit_is_transient(tryton: Tryton) -> None:
    oid = order_id()
    command = sales_order(oid, [line("L1", A, 1)])

    async def scenario(erp: TrytonAdapter) -> None:
        sale_id = await erp._new_sale(command.command_id, command.body)
        # What a client that read the sale before someone else wrote it sends.
        stale = {"_timestamp": {f"sale.sale,{sale_id}": "2000-01-01 00:00:00.000000"}}
        with pytest.raises(TransientError) as later:
            await erp.rpc.model(
                "sale.sale", "write", [sale_id], {"description": "edited"}, context=stale
            )
        assert later.value.code == "concurrency"

    on_tryton(tryton, scenario)


def test_a_session_tryton_ended_is_opened_again(tryton: Tryton) -> None:
    async def scenario(erp: TrytonAdapter) -> None:
        await erp.rpc.call("common.db.logout")
        ended = erp.rpc._session
        (user,) = await erp.rpc.search_read("res.user", [["login", "=", tryton.login]], ["login"])
        assert user["login"] == tryton.login
        assert erp.rpc._session != ended

    on_tryton(tryton, scenario)

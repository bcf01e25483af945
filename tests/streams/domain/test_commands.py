"""Which ERP commands an order's facts call for, their ids, and their Avro form."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.domain.commands import (
    Command,
    CommandPolicy,
    Kind,
    Lane,
    adjustment_command,
    confirmed_at,
    issue,
    order_commands,
    order_of_sales_order,
    sales_order_id,
    shipment_id,
)
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping
from streams.domain.followups import follow_ups, request_cost
from streams.domain.messages import StockRequest
from streams.domain.orders import Order
from streams.domain.stock import SkuStock, WarehouseStock
from streams.ops.settings import REPO_ROOT
from tests.streams.domain.builders import (
    EAST,
    MINUTE_MS,
    T0,
    adjusted,
    apply,
    apply_all,
    authorized,
    cancelled,
    captured,
    fulfilled,
    line,
    payment_refunded,
    placed,
    refunded,
)

OID = "O-1"
A, B = "SKU-A", "SKU-B"
POLICY = CommandPolicy(target="tryton")
MAPPING = FinanceMapping.from_file(REPO_ROOT / "config" / "finance.json")


def two_lines(**kwargs: Any) -> InputEvent:
    """2 x A at 10.00 and 1 x B at 5.00: 25.00 USD."""
    return placed(OID, [line("L1", A, 2, "10.00"), line("L2", B, 1, "5.00")], **kwargs)


def commands_after(events: Sequence[InputEvent], policy: CommandPolicy = POLICY) -> list[Command]:
    """Apply the events one by one, issuing after each, as the order agent does."""
    order = Order(OID)
    issued: list[Command] = []
    for event in events:
        apply(order, event)
        issued += issue(order, order_commands(order, policy))
    return issued


def ids(commands: Sequence[Command]) -> list[str]:
    return [c.command_id for c in commands]


def test_a_prepaid_order_becomes_a_sales_order_when_its_captures_reach_the_total() -> None:
    issued = commands_after(
        [
            two_lines(at=T0),
            captured(OID, "10.00", at=T0 + MINUTE_MS),
            captured(OID, "15.00", at=T0 + 2 * MINUTE_MS, payment_id="PAY-2"),
        ]
    )
    assert ids(issued) == [sales_order_id(OID)]
    (sales_order,) = issued
    assert sales_order.kind is Kind.CREATE_SALES_ORDER and sales_order.lane is Lane.ORDERS
    assert sales_order.created_ms == T0 + 2 * MINUTE_MS  # the capture that reached the total
    assert sales_order.target == "tryton" and sales_order.dispatch_key == OID
    body = sales_order.body
    assert [(x["sku"], x["quantity"], x["unit_price"]) for x in body["lines"]] == [
        (A, 2, Decimal("10.00")),
        (B, 1, Decimal("5.00")),
    ]
    assert body["total"] == Decimal("25.00") and body["purchase_order_number"] is None


def test_the_confirmation_time_is_the_capture_that_reached_the_total_not_the_last_arrival() -> None:
    late_first = [
        captured(OID, "15.00", at=T0 + 2 * MINUTE_MS, payment_id="PAY-2"),
        two_lines(at=T0),
        captured(OID, "10.00", at=T0 + MINUTE_MS),
    ]
    order = Order(OID)
    apply_all(order, late_first)
    assert confirmed_at(order, POLICY) == T0 + 2 * MINUTE_MS


def test_authorization_confirms_only_when_the_policy_says_so() -> None:
    events = [two_lines(at=T0), authorized(OID, "25.00", at=T0 + 1)]
    assert commands_after(events) == []
    by_authorization = CommandPolicy(target="tryton", confirm_on="authorized")
    assert ids(commands_after(events, by_authorization)) == [sales_order_id(OID)]


def test_an_order_on_account_is_a_sales_order_at_once_and_carries_its_purchase_order() -> None:
    (sales_order,) = commands_after(
        [two_lines(payment_terms="ON_ACCOUNT", purchase_order_number="PO-77", at=T0)]
    )
    assert sales_order.created_ms == T0
    assert sales_order.body["purchase_order_number"] == "PO-77"


def test_an_order_cancelled_before_it_was_confirmable_never_reaches_the_erp() -> None:
    assert commands_after([two_lines(), cancelled(OID), captured(OID, "25.00")]) == []


def test_a_cancellation_after_the_sales_order_cancels_it() -> None:
    issued = commands_after(
        [two_lines(), captured(OID, "25.00"), cancelled(OID, at=T0 + MINUTE_MS)]
    )
    assert ids(issued) == [sales_order_id(OID), f"{OID}/cancel/1"]
    assert issued[1].kind is Kind.CANCEL_SALES_ORDER and issued[1].created_ms == T0 + MINUTE_MS


def test_a_shipment_before_payment_waits_for_the_sales_order() -> None:
    order = Order(OID)
    apply_all(order, [two_lines(), fulfilled(OID, "FUL-1", EAST, {A: 2}, at=T0 + 1)])
    assert issue(order, order_commands(order, POLICY)) == []
    apply(order, captured(OID, "25.00", at=T0 + 2))
    issued = issue(order, order_commands(order, POLICY))
    assert ids(issued) == [sales_order_id(OID), f"{OID}/shipment/FUL-1"]
    shipment = issued[1]
    assert shipment.kind is Kind.RECORD_SHIPMENT and shipment.lane is Lane.SHIPMENTS
    assert shipment.body["warehouse_id"] == EAST
    assert shipment.body["lines"] == [{"sku": A, "quantity": 2}]


def test_a_credit_note_waits_until_the_refund_succeeded() -> None:
    order = Order(OID)
    apply_all(
        order,
        [
            two_lines(),
            captured(OID, "25.00", at=T0 + 1),
            fulfilled(OID, "FUL-1", EAST, {A: 2, B: 1}, at=T0 + 2),
            refunded(OID, "RF-1", {A: (1, "10.00")}, restock=True, at=T0 + 3),
        ],
    )
    pending = ids(issue(order, order_commands(order, POLICY)))
    assert f"{OID}/credit-note/RF-1" not in pending  # the gateway has not paid it back yet
    apply(order, payment_refunded(OID, "10.00", "RF-1", at=T0 + 4))
    (credit_note,) = issue(order, order_commands(order, POLICY))
    assert credit_note.kind is Kind.CREATE_CREDIT_NOTE and credit_note.lane is Lane.ORDERS
    assert credit_note.created_ms == T0 + 4
    assert credit_note.body["restock"] is True
    assert credit_note.body["lines"] == [{"sku": A, "quantity": 1, "amount": Decimal("10.00")}]
    assert credit_note.body["total"] == Decimal("10.00")


def test_a_refund_of_an_order_on_account_is_credited_at_once() -> None:
    issued = commands_after(
        [
            two_lines(payment_terms="ON_ACCOUNT", purchase_order_number="PO-1"),
            refunded(OID, "RF-1", {B: (1, "5.00")}, at=T0 + 1),
        ]
    )
    assert ids(issued) == [sales_order_id(OID), f"{OID}/credit-note/RF-1"]


def test_the_purchase_order_number_is_on_every_document_and_journal_entry() -> None:
    order = Order(OID)
    apply_all(
        order,
        [
            two_lines(payment_terms="ON_ACCOUNT", purchase_order_number="PO-1", at=T0),
            fulfilled(OID, "F1", EAST, {A: 2, B: 1}, at=T0 + 1),
            refunded(OID, "RF-1", {B: (1, "5.00")}, restock=True, warehouse=EAST, at=T0 + 2),
        ],
    )
    handed_on = follow_ups(order, POLICY, MAPPING)
    assert {c.kind for c in handed_on.commands} == {
        Kind.CREATE_SALES_ORDER, Kind.RECORD_SHIPMENT, Kind.CREATE_CREDIT_NOTE,
    }  # fmt: skip
    assert {c.body["purchase_order_number"] for c in handed_on.commands} == {"PO-1"}
    assert handed_on.entries and {e.purchase_order_number for e in handed_on.entries} == {"PO-1"}
    # The cost of what shipped and came back is booked on the stock's side, from its requests.
    stock = SkuStock(B)
    stock.warehouses[EAST] = WarehouseStock(
        on_hand=5, unit_cost=Decimal("2.00"), cost_currency="USD"
    )
    costs = [request_cost(stock, r, MAPPING) for r in order.all_requests() if r.sku == B]
    assert [c.purchase_order_number for c in costs if c is not None] == ["PO-1", "PO-1"]
    assert all(StockRequest.from_json(r.to_json()) == r for r in order.all_requests())


def test_order_discounts_are_spread_over_the_lines_so_the_erp_total_matches() -> None:
    event = two_lines(
        total="22.00",
        discounts=[{"code": "WELCOME", "description": None, "amount": Decimal("3")}],
    )
    (sales_order,) = commands_after([event, captured(OID, "22.00")])
    lines = sales_order.body["lines"]
    assert sum(x["discount"] for x in lines) == Decimal("3")
    assert [x["discount"] for x in lines] == [Decimal("2.40"), Decimal("0.60")]  # 20 : 5
    erp_total = sum(x["quantity"] * x["unit_price"] - x["discount"] for x in lines)
    assert erp_total == sales_order.body["total"]


def test_commands_are_issued_once_and_their_ids_do_not_depend_on_arrival_order() -> None:
    history = [
        two_lines(at=T0),
        captured(OID, "25.00", at=T0 + 1),
        fulfilled(OID, "FUL-1", EAST, {A: 2}, at=T0 + 2),
        fulfilled(OID, "FUL-2", EAST, {B: 1}, at=T0 + 3),
        refunded(OID, "RF-1", {A: (1, "10.00")}, at=T0 + 4),
        payment_refunded(OID, "10.00", "RF-1", at=T0 + 5),
    ]
    reference = commands_after(history)
    assert len(reference) == len(set(ids(reference))) == 4
    for arrival in itertools.permutations(history):
        assert sorted(ids(commands_after(arrival))) == sorted(ids(reference)), arrival
        assert {c.command_id: c for c in commands_after(arrival)} == {
            c.command_id: c for c in reference
        }


def test_stock_changes_from_outside_the_erp_become_adjustments() -> None:
    wms = replace(adjusted(A, EAST, 5, at=T0), source="wms")
    command = adjustment_command(wms, POLICY)
    assert command is not None
    assert command.kind is Kind.ADJUST_INVENTORY and command.lane is Lane.BOOKKEEPING
    assert command.dispatch_key == f"{A}@{EAST}"
    assert (command.body["delta"], command.body["reason"]) == (5, "RECEIPT")
    assert command.command_id == f"{A}@{EAST}/adjust/{wms.event_id}"
    from_erp = replace(adjusted(A, EAST, 5, at=T0), source="erp:tryton")
    assert adjustment_command(from_erp, POLICY) is None


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))


def test_every_command_is_a_valid_erp_command_and_survives_the_pending_topic(
    codec: Codec,
) -> None:
    issued = commands_after(
        [
            two_lines(),
            captured(OID, "25.00"),
            fulfilled(OID, "FUL-1", EAST, {A: 2, B: 1}),
            refunded(OID, "RF-1", {A: (1, "10.00")}, restock=True),
            payment_refunded(OID, "10.00", "RF-1"),
        ]
    )
    damage = adjusted(A, EAST, -2, at=T0, reason="DAMAGE")
    adjustment = adjustment_command(replace(damage, source="wms"), POLICY)
    assert adjustment is not None
    for command in [*issued, adjustment]:
        assert Command.decode(command.encode()) == command
        data = codec.encode("erpbridge.ErpCommand", command.to_datum(), topic="erp.commands")
        decoded = codec.decode(data, expected="erpbridge.ErpCommand").datum
        assert decoded["command_id"] == command.command_id
        assert decoded["priority"] == command.lane
        assert decoded["command"][0] == f"erpbridge.{command.kind.value}"


def test_a_sales_order_command_id_names_its_order_and_no_other_does() -> None:
    assert order_of_sales_order(sales_order_id("ORD-1/a")) == "ORD-1/a"
    assert order_of_sales_order(shipment_id("ORD-1", "f-1")) is None
    assert order_of_sales_order("ORD-1/sales-order/2") is None

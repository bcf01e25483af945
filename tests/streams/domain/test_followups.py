"""What an order's change hands on, once, and again on a replay; rates checked up front."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from streams.domain.commands import CommandPolicy, Kind, order_commands, sales_order_id
from streams.domain.events import InputEvent, Rejection
from streams.domain.finance import FinanceMapping, Recognition, order_journal
from streams.domain.followups import follow_ups, request_cost, require_rate
from streams.domain.messages import RequestKind, StockRequest
from streams.domain.orders import Order
from streams.domain.stock import SkuStock
from streams.ops.settings import REPO_ROOT
from streams.sample.generator import DEFAULT_START, Catalogue, generate
from tests.streams.domain.builders import (
    EAST,
    RULES,
    T0,
    apply,
    captured,
    fulfilled,
    line,
    placed,
    snapshot,
)
from tests.streams.domain.builders import POLICY as RULE_POLICY

FINANCE = FinanceMapping.from_file(REPO_ROOT / "config" / "finance.json")
POLICY = CommandPolicy(target="tryton")
OID = "O-1"


def test_each_command_and_entry_is_handed_on_once_and_all_again_on_a_replay() -> None:
    order = Order(OID)
    apply(order, placed(OID, [line("L1", "SKU-A", 2, "10.00")]))
    assert follow_ups(order, POLICY, FINANCE).commands == []
    apply(order, captured(OID, "20.00", at=T0 + 1))
    paid = follow_ups(order, POLICY, FINANCE)
    assert [c.kind for c in paid.commands] == [Kind.CREATE_SALES_ORDER]
    assert [e.entry_id for e in paid.entries] == [f"{OID}/journal/capture/{_capture_id(order)}"]
    apply(order, fulfilled(OID, "FUL-1", EAST, {"SKU-A": 2}, at=T0 + 2))
    shipped = follow_ups(order, POLICY, FINANCE)
    assert [c.kind for c in shipped.commands] == [Kind.RECORD_SHIPMENT]
    assert [e.entry_id for e in shipped.entries] == [f"{OID}/journal/sale/FUL-1"]
    assert all(e.balanced for e in shipped.entries)
    assert follow_ups(order, POLICY, FINANCE) == type(shipped)([], [])
    replayed = follow_ups(order, POLICY, FINANCE, replay=True)
    assert {c.command_id for c in replayed.commands} == {
        c.command_id for c in paid.commands + shipped.commands
    }
    assert {e.entry_id for e in replayed.entries} == {
        e.entry_id for e in paid.entries + shipped.entries
    }


def _capture_id(order: Order) -> str:
    (payment,) = order.payments.values()
    (event_id,) = payment.captures
    return event_id


def test_an_event_in_a_currency_without_a_rate_is_rejected_before_it_applies() -> None:
    swiss = placed(OID, [line("L1", "SKU-A", 1, "10.00")], currency="CHF")
    with pytest.raises(Rejection) as rejected:
        require_rate(swiss, FINANCE)
    assert rejected.value.reason == "no-exchange-rate"
    assert "CHF" in rejected.value.detail
    require_rate(replace(swiss, payload={**swiss.payload, "currency": "EUR"}), FINANCE)
    # An unknown code is left to the rules, which name it as such.
    require_rate(replace(swiss, payload={**swiss.payload, "currency": "XYZ"}), FINANCE)


def test_a_shipment_costs_the_goods_at_the_warehouse_unit_cost() -> None:
    stock = SkuStock("SKU-A")
    ship = StockRequest(RequestKind.SHIP, OID, "SKU-A", "FUL-1", T0, quantity=2, warehouse=EAST)
    assert request_cost(stock, ship, FINANCE) is None  # no cost known yet: nothing to post
    stock.apply_event(
        snapshot("SKU-A", EAST, 10, T0 - 1, unit_cost="4.25", currency="USD"),
        RULES,
        RULE_POLICY,
        T0,
    )
    entry = request_cost(stock, ship, FINANCE)
    assert entry is not None and entry.balanced
    assert entry.entry_id == f"{OID}/journal/cogs/FUL-1/SKU-A"
    assert (
        sum(x.debit for x in entry.lines) == sum(x.credit for x in entry.lines) == Decimal("8.50")
    )
    release = StockRequest(RequestKind.RELEASE, OID, "SKU-A", "", T0)
    assert request_cost(stock, release, FINANCE) is None


@pytest.mark.parametrize("recognition", ["shipment", "confirmation"])
def test_deriving_only_what_is_new_hands_on_what_deriving_everything_would(
    recognition: str,
) -> None:
    """Follow-ups skip what an order already issued; over a whole sample, what they hand on
    event by event is exactly what deriving everything from the final facts gives."""
    mapping = replace(FINANCE, revenue_recognition=Recognition(recognition))
    policy = CommandPolicy()
    orders: dict[str, Order] = {}
    handed: dict[str, dict[str, object]] = {}
    for item in generate(3, 60, Catalogue.default(), DEFAULT_START):
        if item.topic == "commerce.inventory":
            continue
        event = InputEvent.from_datum(item.datum, "order_id")
        order = orders.setdefault(event.key, Order(event.key))
        try:
            order.apply_event(event, dict, RULES, RULE_POLICY, event.occurred_ms)
        except Rejection:
            continue
        done = follow_ups(order, policy, mapping)
        seen = handed.setdefault(event.key, {})
        for command in done.commands:
            assert command.command_id not in seen, f"{command.command_id} handed on twice"
            seen[command.command_id] = command
        for entry in done.entries:
            assert entry.entry_id not in seen, f"{entry.entry_id} handed on twice"
            seen[entry.entry_id] = entry
    assert sum(map(len, handed.values())) > 100
    for order_id, order in orders.items():
        everything = {c.command_id: c for c in order_commands(order, policy, replay=True)}
        confirmed = order.issued.get(sales_order_id(order_id))
        everything |= {e.entry_id: e for e in order_journal(order, mapping, confirmed)}
        assert handed.get(order_id, {}) == everything, order_id
        replayed = follow_ups(order, policy, mapping, replay=True)
        assert {c.command_id for c in replayed.commands} | {
            e.entry_id for e in replayed.entries
        } == set(everything)

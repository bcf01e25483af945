"""The reference model over the deterministic sample stream, and over bad input."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from streams.contracts.topics import INVENTORY, ORDERS, PAYMENTS, spec
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping
from streams.domain.model import ReferenceModel
from streams.domain.orders import Status
from streams.domain.policy import HOUR_MS, Policy
from streams.domain.routing import RoutingRules
from streams.ops.settings import REPO_ROOT
from streams.sample.generator import DEFAULT_START, Catalogue, SampleEvent, generate
from tests.streams.domain.builders import (
    EAST,
    NEW_YORK,
    RULES,
    T0,
    WEST,
    adjusted,
    captured,
    fulfilled,
    line,
    placed,
    snapshot,
)

FINANCE = FinanceMapping.from_file(REPO_ROOT / "config" / "finance.json")
SEED = 7
ORDER_COUNT = 120


def as_input(sample: SampleEvent) -> InputEvent:
    return InputEvent.from_datum(sample.datum, spec(sample.topic).key)


@pytest.fixture(scope="module")
def sample() -> list[SampleEvent]:
    return list(generate(SEED, ORDER_COUNT, Catalogue.default(), DEFAULT_START))


def reserved_by_stock(model: ReferenceModel) -> dict[tuple[str, str], int]:
    return {
        (sku, warehouse): w.reserved
        for sku, stock in model.stock.items()
        for warehouse, w in stock.warehouses.items()
        if w.reserved
    }


def reserved_by_claims(model: ReferenceModel) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for sku, stock in model.stock.items():
        for claim in stock.claims.values():
            for claim_line in claim.lines.values():
                for warehouse, quantity in claim_line.reserved.items():
                    totals[sku, warehouse] += quantity
    return {key: total for key, total in totals.items() if total}


def backordered_by_stock(model: ReferenceModel) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for sku, stock in model.stock.items():
        for order_id, claim in stock.claims.items():
            totals[order_id, sku] += sum(line.backordered for line in claim.lines.values())
    return {key: total for key, total in totals.items() if total}


def backordered_by_orders(model: ReferenceModel) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for order in model.orders.values():
        for order_line in order.lines.values():
            totals[order.order_id, order_line.sku] += order_line.backordered
    return {key: total for key, total in totals.items() if total}


def test_the_clean_sample_runs_through_the_model(
    sample: list[SampleEvent], configured_rules: RoutingRules
) -> None:
    model = ReferenceModel(configured_rules, FINANCE)
    most_reserved = 0
    for item in sample:
        event = as_input(item)
        model.feed(item.topic, event, event.occurred_ms)
        # After every event, the stock's reservations are exactly its claims', and the
        # orders' view of their backorders (all they keep of a reservation) is the stock's.
        by_stock = reserved_by_stock(model)
        assert by_stock == reserved_by_claims(model), event.event_id
        assert backordered_by_stock(model) == backordered_by_orders(model), event.event_id
        most_reserved = max(most_reserved, sum(by_stock.values()))

    # Every event is accounted for, and nothing in the clean sample is dead-lettered.
    assert sum(model.outcomes.values()) == len(sample)
    assert model.dead_letters == []
    assert model.outcomes["dead_lettered"] == 0
    assert all(not order.waiting for order in model.orders.values())
    # Reservations were made along the way, and every story ran to its end.
    assert most_reserved > 0
    assert reserved_by_stock(model) == {}

    placed_orders = {i.key for i in sample if i.datum["event"][0].endswith(".OrderPlaced")}
    assert set(model.orders) == placed_orders
    cancelled = {i.key for i in sample if i.datum["event"][0].endswith(".OrderCancelled")}
    assert cancelled, "the sample should cancel some orders"
    for order_id, order in model.orders.items():
        assert (order.status is Status.CANCELLED) == (order_id in cancelled), order_id
        assert order.transitions[0].previous is None
        assert order.transitions[-1].status is order.status
    assert Counter(order_id for order_id, _ in model.transitions) == Counter(
        {order_id: len(order.transitions) for order_id, order in model.orders.items()}
    )


def implied_on_hand(sample: list[SampleEvent]) -> dict[tuple[str, str], int]:
    """On hand per (SKU, warehouse) as the sample's own events tell it."""
    on_hand: dict[tuple[str, str], int] = defaultdict(int)
    snapshots_done = False
    for item in sample:
        name, body = item.datum["event"]
        kind = name.rsplit(".", 1)[-1]
        if kind == "StockSnapshot":
            # Opening stock only: every snapshot precedes every movement, so it simply sets.
            assert not snapshots_done, "the sample has a snapshot after movements"
            on_hand[item.key, body["warehouse_id"]] = body["on_hand"]
            continue
        if item.topic == INVENTORY or kind in ("OrderFulfilled", "OrderRefunded"):
            snapshots_done = True
        if kind == "StockAdjusted":
            on_hand[item.key, body["warehouse_id"]] += body["delta"]
        elif kind == "OrderFulfilled":
            for shipped in body["lines"]:
                on_hand[shipped["sku"], body["warehouse_id"]] -= shipped["quantity"]
        elif kind == "OrderRefunded" and body["restock"]:
            for returned in body["lines"]:
                on_hand[returned["sku"], body["warehouse_id"]] += returned["quantity"]
    return dict(on_hand)


def test_on_hand_is_what_the_sample_implies(
    sample: list[SampleEvent], configured_rules: RoutingRules
) -> None:
    model = ReferenceModel(configured_rules, FINANCE)
    for item in sample:
        event = as_input(item)
        model.feed(item.topic, event, event.occurred_ms)
    expected = implied_on_hand(sample)
    kinds = Counter(i.datum["event"][0] for i in sample)
    assert kinds["erpbridge.StockAdjusted"] > 0 and kinds["erpbridge.OrderFulfilled"] > 0
    actual = {
        (sku, warehouse): w.on_hand
        for sku, stock in model.stock.items()
        for warehouse, w in stock.warehouses.items()
    }
    assert actual == expected
    # The availability the model last emitted per SKU is its stock's current figure.
    assert set(model.availability) == set(model.stock)
    for sku, stock in model.stock.items():
        figures = model.availability[sku]
        assert figures == stock.availability()
        assert figures.on_hand == sum(q for (s, _), q in expected.items() if s == sku)
        assert figures.available == figures.on_hand - figures.reserved


def test_the_model_is_deterministic(
    sample: list[SampleEvent], configured_rules: RoutingRules
) -> None:
    runs = []
    for _ in range(2):
        model = ReferenceModel(configured_rules, FINANCE)
        for item in sample[:400]:
            event = as_input(item)
            model.feed(item.topic, event, event.occurred_ms)
        runs.append((model.transitions, model.availability, model.outcomes))
    assert runs[0] == runs[1]


# --- small streams ----------------------------------------------------------------------------


def test_competing_orders_share_the_last_units() -> None:
    model = ReferenceModel(RULES, FINANCE)
    model.feed(INVENTORY, snapshot("SKU-A", EAST, 3, T0 - 1), T0)
    model.feed(ORDERS, placed("O-1", [line("L1", "SKU-A", 2)], destination=NEW_YORK), T0)
    model.feed(ORDERS, placed("O-2", [line("L1", "SKU-A", 2)], destination=NEW_YORK), T0 + 1)
    claims = model.stock["SKU-A"].claims
    first, second = claims["O-1"].lines["L1"], claims["O-2"].lines["L1"]
    assert (first.reserved, first.backordered) == ({EAST: 2}, 0)
    assert (second.reserved, second.backordered) == ({EAST: 1}, 1)
    # The backordered order hears of it; the one reserved in full needs no answer.
    backordered = model.orders["O-2"].lines["L1"]
    assert (backordered.reserved, backordered.backordered) == ({EAST: 1}, 1)
    assert model.orders["O-1"].lines["L1"].backordered == 0
    assert model.availability["SKU-A"].available == 0
    # Goods arrive and the first order ships: on hand and reservations follow.
    model.feed(INVENTORY, adjusted("SKU-A", WEST, 5, at=T0 + 2), T0 + 2)
    model.feed(ORDERS, fulfilled("O-1", "FUL-1", EAST, {"SKU-A": 2}, at=T0 + 3), T0 + 3)
    # Shipped in full: the claim holds nothing and keeps no lines (it is settled).
    assert (claims["O-1"].closed, claims["O-1"].lines, claims["O-1"].settled) == (True, {}, ("L1",))
    figures = model.availability["SKU-A"]
    assert (figures.on_hand, figures.reserved, figures.available) == (6, 1, 5)
    assert model.outcomes == Counter({"applied": 5})


def test_the_model_dead_letters_bad_events_with_their_reasons() -> None:
    policy = Policy(max_wait_ms=HOUR_MS)
    model = ReferenceModel(RULES, FINANCE, policy)
    bad_warehouse = fulfilled("O-1", "FUL-1", "WH-MOON", {"SKU-A": 1})
    negative = snapshot("SKU-A", EAST, -4, T0)
    unknown_currency = captured("O-1", "1.00", currency="XYZ")
    orphan = fulfilled("O-2", "FUL-9", EAST, {"SKU-A": 1})
    unordered = fulfilled("O-3", "FUL-3", EAST, {"SKU-Z": 1})
    good = captured("O-1", "5.00")

    assert model.feed(ORDERS, bad_warehouse, T0) == "dead_lettered"
    assert model.feed(INVENTORY, negative, T0) == "dead_lettered"
    assert model.feed(PAYMENTS, unknown_currency, T0) == "dead_lettered"
    assert model.feed(PAYMENTS, good, T0) == "applied"
    assert model.feed(PAYMENTS, good, T0 + 1) == "duplicate"
    assert model.feed(ORDERS, orphan, T0) == "waiting"
    assert model.feed(ORDERS, unordered, T0) == "waiting"
    # The placement makes O-3's waiting fulfilment applicable, and it is not allowed.
    assert model.feed(ORDERS, placed("O-3", [line("L1", "SKU-A", 1)]), T0 + 1) == "applied"
    model.expire(T0 + HOUR_MS - 1)
    assert len(model.dead_letters) == 4
    model.expire(T0 + HOUR_MS)

    reasons = [(d.event.event_id, d.reason) for d in model.dead_letters]
    assert reasons == [
        (bad_warehouse.event_id, "unknown-warehouse"),
        (negative.event_id, "negative-quantity"),
        (unknown_currency.event_id, "unknown-currency"),
        (unordered.event_id, "sku-not-ordered"),
        (orphan.event_id, "order-not-placed"),
    ]
    assert "WH-MOON" in model.dead_letters[0].detail
    assert "waited 3600s" in model.dead_letters[-1].detail
    assert model.outcomes == Counter(
        {"dead_lettered": 3, "applied": 2, "duplicate": 1, "waiting": 2}
    )
    assert sum(model.outcomes.values()) == 8
    assert model.orders["O-1"].captured == Decimal("5.00")
    assert model.orders["O-2"].waiting == []


def test_the_model_dead_letters_a_redelivered_bad_event_again() -> None:
    # As the agents do: a rejected event leaves no trace, so its redelivery is no duplicate.
    model = ReferenceModel(RULES, FINANCE)
    model.feed(ORDERS, placed("O-1", [line("L1", "SKU-A", 2)], destination=NEW_YORK), T0)
    too_many = fulfilled("O-1", "FUL-1", EAST, {"SKU-A": 3}, at=T0 + 1)
    assert model.feed(ORDERS, too_many, T0 + 1) == "dead_lettered"
    assert model.feed(ORDERS, too_many, T0 + 2) == "dead_lettered"
    assert [(d.event, d.reason) for d in model.dead_letters] == [
        (too_many, "over-fulfilment"),
        (too_many, "over-fulfilment"),
    ]
    assert model.orders["O-1"].lines["L1"].fulfilled == 0
    assert model.outcomes == Counter({"applied": 1, "dead_lettered": 2})

"""One order's lifecycle: transitions, the stock requests each event sends, out-of-order arrival,
waiting and expiry, de-duplication, allocations, bad input and persistence."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from streams.domain import statecodec, statejson
from streams.domain.commands import CommandPolicy, confirmed_at
from streams.domain.events import InputEvent, Rejection
from streams.domain.messages import AllocationUpdate, LineReservation, RequestKind, StockRequest
from streams.domain.orders import (
    Order,
    OrderEffect,
    Status,
    Transition,
    Verdict,
    Waiting,
)
from streams.domain.policy import HOUR_MS, PRUNE_EVERY_MS, Policy
from streams.domain.routing import Destination
from tests.streams.domain.builders import (
    CALIFORNIA,
    EAST,
    EU,
    NEW_YORK,
    POLICY,
    T0,
    WEST,
    apply,
    apply_all,
    approved,
    authorized,
    cancelled,
    captured,
    fulfilled,
    line,
    payment_failed,
    payment_refunded,
    placed,
    refunded,
    rejected,
    settled,
)

OID = "O-1"
A, B = "SKU-A", "SKU-B"


def two_lines(**kwargs: Any) -> InputEvent:
    """2 x A at 10.00 and 1 x B at 5.00: 25.00 USD, shipped to California."""
    return placed(OID, [line("L1", A, 2, "10.00"), line("L2", B, 1, "5.00")], **kwargs)


def kinds(requests: Sequence[StockRequest]) -> list[tuple[RequestKind, str]]:
    return [(r.kind, r.sku) for r in requests]


# --- lifecycle --------------------------------------------------------------------------------


def test_the_whole_lifecycle_of_a_prepaid_order(order: Order) -> None:
    steps = [
        (two_lines(at=T0), Status.PLACED),
        (captured(OID, "10.00", at=T0 + 1), None),  # part of the total: still placed
        (captured(OID, "15.00", at=T0 + 2), Status.PAID),
        (fulfilled(OID, "FUL-1", WEST, {A: 2}, at=T0 + 3), Status.PARTLY_FULFILLED),
        (fulfilled(OID, "FUL-2", WEST, {B: 1}, at=T0 + 4), Status.CLOSED),
        (refunded(OID, "RF-1", {A: (1, "10.00")}, at=T0 + 5), Status.PARTLY_REFUNDED),
        (refunded(OID, "RF-2", {A: (1, "10.00"), B: (1, "5.00")}, at=T0 + 6), Status.REFUNDED),
    ]
    expected: list[Transition] = []
    previous: Status | None = None
    for event, status in steps:
        effect = apply(order, event)
        assert effect.verdict is Verdict.APPLIED
        if status is None:
            assert effect.transitions == []
            continue
        transition = Transition(
            previous, status, event.event_id, event.occurred_ms, len(expected) + 1
        )
        assert effect.transitions == [transition]
        expected.append(transition)
        previous = status
        assert order.status is status
    assert order.transitions == expected
    assert order.captured == Decimal("25.00")
    assert order.refunded_to_customer == Decimal("25.00")


def test_an_order_on_account_is_fulfilled_before_it_is_paid(order: Order) -> None:
    apply(order, two_lines(payment_terms="ON_ACCOUNT", purchase_order_number="PO-77"))
    assert order.placement is not None
    assert order.placement.purchase_order_number == "PO-77"
    shipment = fulfilled(OID, "FUL-1", EAST, {A: 2, B: 1}, at=T0 + 1)
    effect = apply(order, shipment)
    assert effect.transitions == [
        Transition(Status.PLACED, Status.FULFILLED, shipment.event_id, T0 + 1, 2)
    ]
    effect = apply(order, captured(OID, "25.00", at=T0 + 2))
    assert [(t.previous, t.status) for t in effect.transitions] == [
        (Status.FULFILLED, Status.CLOSED)
    ]


@pytest.mark.parametrize("shipped_first", [False, True])
def test_cancellation(order: Order, shipped_first: bool) -> None:
    apply(order, two_lines())
    if shipped_first:
        apply(order, fulfilled(OID, "FUL-1", EAST, {A: 1}, at=T0 + 1))
    cancel = cancelled(OID, "fraud_suspected", at=T0 + 2)
    effect = apply(order, cancel)
    assert effect.transitions[0].status is Status.CANCELLED
    assert effect.transitions[0].cause_event_id == cancel.event_id
    assert order.cancel_reason == "fraud_suspected"
    assert order.status is Status.CANCELLED


def test_a_cancelled_order_stays_cancelled_when_refunded(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00"), cancelled(OID, at=T0 + 1)])
    effect = apply(order, refunded(OID, "RF-1", {A: (2, "20.00"), B: (1, "5.00")}, at=T0 + 2))
    assert effect.verdict is Verdict.APPLIED
    assert effect.transitions == []
    assert order.status is Status.CANCELLED


def test_payment_events_that_do_not_change_the_status(order: Order) -> None:
    apply(order, two_lines())
    effects = apply_all(
        order,
        [
            authorized(OID, "25.00"),
            payment_failed(OID, "25.00", payment_id="PAY-0"),
            captured(OID, "25.00"),
            settled(OID, "25.00", "1.03"),
        ],
    )
    assert [bool(e.transitions) for e in effects] == [False, False, True, False]
    assert order.authorized == Decimal("25.00")
    assert order.payments["PAY-0"].failures == 1
    assert order.payments["PAY-1"].fees == Decimal("1.03")
    assert order.payments["PAY-1"].settled == Decimal("25.00")


def test_payments_in_another_currency_do_not_pay_the_order(order: Order) -> None:
    apply(order, two_lines())
    apply(order, captured(OID, "25.00", payment_id="PAY-EUR", currency="EUR"))
    assert order.captured == 0
    assert order.status is Status.PLACED


# --- stock requests ---------------------------------------------------------------------------


def test_placement_reserves_per_sku_with_the_destination(order: Order) -> None:
    event = placed(
        OID,
        [line("L1", B, 1), line("L2", A, 2), line("L3", A, 3)],
        at=T0 + 7,
    )
    effect = apply(order, event)
    assert effect.requests == [
        StockRequest(
            RequestKind.RESERVE,
            OID,
            A,
            "",
            T0 + 7,
            lines=(("L2", 2), ("L3", 3)),
            destination=CALIFORNIA,
        ),
        StockRequest(
            RequestKind.RESERVE,
            OID,
            B,
            "",
            T0 + 7,
            lines=(("L1", 1),),
            destination=CALIFORNIA,
        ),
    ]


def test_cancellation_releases_every_sku(order: Order) -> None:
    apply(order, two_lines())
    cancel = cancelled(OID, at=T0 + 5)
    effect = apply(order, cancel)
    assert effect.requests == [
        StockRequest(RequestKind.RELEASE, OID, A, "", T0 + 5),
        StockRequest(RequestKind.RELEASE, OID, B, "", T0 + 5),
    ]


def test_cancellation_before_placement_neither_reserves_nor_releases(order: Order) -> None:
    assert apply(order, cancelled(OID)).requests == []
    effect = apply(order, two_lines(at=T0 + 1))
    assert effect.requests == []
    assert order.placement is not None and not order.placement.reserved
    assert order.status is Status.CANCELLED
    assert order.all_requests() == []


def test_fulfilment_ships_per_sku_from_its_warehouse(order: Order) -> None:
    apply(order, two_lines())
    effect = apply(order, fulfilled(OID, "FUL-1", EAST, {B: 1, A: 1}, at=T0 + 3))
    assert [(r.kind, r.sku, r.ref, r.quantity, r.warehouse, r.at_ms) for r in effect.requests] == [
        (RequestKind.SHIP, A, "FUL-1", 1, EAST, T0 + 3),
        (RequestKind.SHIP, B, "FUL-1", 1, EAST, T0 + 3),
    ]


def test_the_same_sku_twice_in_a_fulfilment_ships_once_with_the_sum(order: Order) -> None:
    apply(order, placed(OID, [line("L1", A, 2), line("L2", A, 3)]))
    event = fulfilled(OID, "FUL-1", EAST, {A: 1})
    event.payload["lines"].append({"sku": A, "quantity": 3})
    effect = apply(order, event)
    assert [(r.sku, r.quantity) for r in effect.requests] == [(A, 4)]
    assert [order.lines["L1"].fulfilled, order.lines["L2"].fulfilled] == [2, 2]


def test_refund_with_restock_returns_goods_to_the_named_warehouse(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00"), fulfilled(OID, "FUL-1", WEST, {A: 2})])
    refund = refunded(OID, "RF-1", {A: (2, "20.00")}, restock=True, warehouse=EAST, at=T0 + 9)
    effect = apply(order, refund)
    assert effect.requests == [
        StockRequest(RequestKind.RESTOCK, OID, A, "RF-1", T0 + 9, quantity=2, warehouse=EAST)
    ]
    assert order.lines["L1"].restocked == 2


@pytest.mark.parametrize(
    ("destination", "shipped_from", "first_choice"),
    [(CALIFORNIA, EAST, WEST), (NEW_YORK, WEST, EAST), (NEW_YORK, EU, EAST)],
)
def test_refund_with_restock_and_no_warehouse_goes_to_the_first_choice_warehouse(
    order: Order, destination: Destination, shipped_from: str, first_choice: str
) -> None:
    # Not to the warehouse that shipped it: with split shipments that would depend on which
    # fulfilment arrived first. The first choice for the order's destination does not.
    shipment = fulfilled(OID, "FUL-1", shipped_from, {A: 2})
    apply_all(order, [two_lines(destination=destination), captured(OID, "25.00"), shipment])
    effect = apply(order, refunded(OID, "RF-1", {A: (1, "10.00")}, restock=True))
    assert [(r.kind, r.quantity, r.warehouse) for r in effect.requests] == [
        (RequestKind.RESTOCK, 1, first_choice)
    ]
    assert order.refunds["RF-1"].warehouses == {A: first_choice}


def test_refund_without_restock_sends_nothing_to_stock(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00"), fulfilled(OID, "FUL-1", WEST, {A: 2})])
    effect = apply(order, refunded(OID, "RF-1", {A: (2, "20.00")}, restock=False))
    assert effect.requests == []
    assert order.lines["L1"].refunded == 2
    assert order.lines["L1"].restocked == 0


def test_refund_lines_of_zero_units_restock_nothing(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00"), fulfilled(OID, "FUL-1", WEST, {A: 2})])
    effect = apply(order, refunded(OID, "RF-1", {A: (0, "3.00")}, restock=True, warehouse=WEST))
    assert effect.verdict is Verdict.APPLIED
    assert effect.requests == []
    assert order.refunded_to_customer == Decimal("3.00")


# --- out-of-order arrival ---------------------------------------------------------------------


def test_payment_before_the_order(order: Order) -> None:
    effect = apply(order, captured(OID, "25.00"))
    assert effect.verdict is Verdict.APPLIED
    assert effect.transitions == [] and order.status is None
    placement = two_lines(at=T0 + 1)
    effect = apply(order, placement)
    assert effect.transitions == [Transition(None, Status.PAID, placement.event_id, T0 + 1, 1)]


def test_fulfilment_before_placement_waits_and_applies_when_it_arrives(order: Order) -> None:
    early = fulfilled(OID, "FUL-1", WEST, {A: 2}, at=T0)
    effect = apply(order, early)
    assert effect.verdict is Verdict.WAITING
    assert effect.reason == "order-not-placed"
    assert effect.requests == [] and effect.transitions == []
    assert [w.event for w in order.waiting] == [early]
    assert order.status is None
    assert order.next_deadline(POLICY) == T0 + POLICY.max_wait_ms

    placement = two_lines(at=T0 + 1)
    effect = apply(order, placement)
    assert effect.verdict is Verdict.APPLIED
    assert [w.event for w in effect.resolved] == [early]
    assert kinds(effect.requests) == [
        (RequestKind.RESERVE, A),
        (RequestKind.RESERVE, B),
        (RequestKind.SHIP, A),
    ]
    assert effect.transitions == [
        Transition(None, Status.PARTLY_FULFILLED, placement.event_id, T0 + 1, 1)
    ]
    assert order.waiting == []
    assert order.next_deadline(POLICY) is None


def test_refund_before_placement_waits_for_it(order: Order) -> None:
    effect = apply(order, refunded(OID, "RF-1", {A: (1, "10.00")}))
    assert (effect.verdict, effect.reason) == (Verdict.WAITING, "order-not-placed")
    apply(order, captured(OID, "25.00"))
    effect = apply(order, two_lines(at=T0 + 1))
    assert len(effect.resolved) == 1
    assert order.status is Status.PARTLY_REFUNDED


def test_refund_beyond_the_captured_amount_waits_for_the_capture(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "10.00")])
    refund = refunded(OID, "RF-1", {A: (2, "20.00")}, at=T0 + 1)
    effect = apply(order, refund)
    assert (effect.verdict, effect.reason) == (Verdict.WAITING, "refund-exceeds-captured")
    assert "RF-1" in order.waiting[0].detail
    assert order.refunds == {}
    capture = captured(OID, "15.00", at=T0 + 2)
    effect = apply(order, capture)
    assert [w.event for w in effect.resolved] == [refund]
    assert effect.transitions == [
        Transition(Status.PLACED, Status.PARTLY_REFUNDED, capture.event_id, T0 + 2, 2)
    ]


def test_refund_of_an_order_on_account_does_not_wait_for_a_capture(order: Order) -> None:
    apply(order, two_lines(payment_terms="ON_ACCOUNT", purchase_order_number="PO-1"))
    effect = apply(order, refunded(OID, "RF-1", {A: (2, "20.00")}))
    assert effect.verdict is Verdict.APPLIED


def test_payment_refund_beyond_the_capture_waits_for_it(order: Order) -> None:
    apply(order, two_lines())
    effect = apply(order, payment_refunded(OID, "25.00", "PR-1"))
    assert (effect.verdict, effect.reason) == (Verdict.WAITING, "refund-exceeds-captured")
    effect = apply(order, captured(OID, "25.00", at=T0 + 1))
    assert len(effect.resolved) == 1
    assert order.payments["PAY-1"].refunded == Decimal("25.00")
    assert set(order.payments["PAY-1"].refunds) == {"PR-1"}


def test_restock_before_shipment_waits_for_the_shipment(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00")])
    refund = refunded(OID, "RF-1", {A: (1, "10.00")}, restock=True, at=T0 + 1)
    effect = apply(order, refund)
    assert (effect.verdict, effect.reason) == (Verdict.WAITING, "restock-before-shipment")
    effect = apply(order, fulfilled(OID, "FUL-1", EAST, {A: 2}, at=T0 + 2))
    assert [w.event for w in effect.resolved] == [refund]
    # Shipped from the east; the return names no warehouse, so it goes to California's first
    # choice, the west.
    assert [(r.kind, r.sku, r.quantity, r.warehouse) for r in effect.requests] == [
        (RequestKind.SHIP, A, 2, EAST),
        (RequestKind.RESTOCK, A, 1, WEST),
    ]


def test_a_waiting_event_that_turns_out_invalid_is_dead_lettered_on_retry(order: Order) -> None:
    apply(order, fulfilled(OID, "FUL-1", WEST, {"SKU-Z": 1}))
    effect = apply(order, two_lines(at=T0 + 1))
    assert effect.verdict is Verdict.APPLIED
    assert effect.resolved == []
    assert [d.rejection.reason for d in effect.dead] == ["sku-not-ordered"]
    assert "SKU-Z" in effect.dead[0].rejection.detail
    assert order.waiting == []
    assert order.status is Status.PLACED


def test_expire_dead_letters_events_that_waited_too_long(order: Order) -> None:
    policy = Policy(max_wait_ms=2 * HOUR_MS)
    early = fulfilled(OID, "FUL-1", WEST, {A: 2}, at=T0)
    apply(order, early, policy=policy)
    assert order.next_deadline(policy) == T0 + 2 * HOUR_MS
    effect = order.expire(T0 + 2 * HOUR_MS - 1, policy)
    assert effect.dead == [] and len(order.waiting) == 1
    effect = order.expire(T0 + 2 * HOUR_MS, policy)
    assert len(effect.dead) == 1
    dead = effect.dead[0]
    assert dead.waiting.event == early
    assert dead.waiting.record == {"topic": "test"}
    assert dead.rejection.reason == "order-not-placed"
    assert dead.rejection.detail == (
        "waited 7200s, longer than the limit of 7200s: "
        "a fulfilment arrived before the order was placed"
    )
    assert order.waiting == []
    assert order.next_deadline(policy) is None
    # Too late now: the placement applies, the fulfilment does not come back.
    effect = apply(order, two_lines(at=T0 + 3 * HOUR_MS), policy=policy)
    assert effect.resolved == [] and order.lines["L1"].fulfilled == 0


def test_expire_keeps_events_still_within_the_limit(order: Order) -> None:
    apply(order, fulfilled(OID, "FUL-1", WEST, {A: 1}), now=T0)
    apply(order, fulfilled(OID, "FUL-2", WEST, {A: 1}), now=T0 + HOUR_MS)
    effect = order.expire(T0 + POLICY.max_wait_ms, POLICY)
    assert [d.waiting.event.payload["fulfillment_id"] for d in effect.dead] == ["FUL-1"]
    assert [w.event.payload["fulfillment_id"] for w in order.waiting] == ["FUL-2"]
    assert order.next_deadline(POLICY) == T0 + HOUR_MS + POLICY.max_wait_ms


def letters(effect: OrderEffect) -> list[tuple[Waiting, str, str]]:
    return [(d.waiting, d.rejection.reason, d.rejection.detail) for d in effect.dead]


def test_a_redelivered_tick_sends_its_dead_letters_again_and_nothing_more(order: Order) -> None:
    """A crash may save the order without the event that expired and lose the dead letter:
    the tick comes again and must heal that, identically."""
    apply(order, fulfilled(OID, "FUL-1", WEST, {A: 1}), now=T0)
    apply(order, fulfilled(OID, "FUL-2", WEST, {A: 1}), now=T0 + HOUR_MS)
    tick = T0 + POLICY.max_wait_ms
    first = order.expire(tick, POLICY)
    assert first.verdict is Verdict.APPLIED and len(first.dead) == 1
    again = order.expire(tick, POLICY)
    assert again.verdict is Verdict.DUPLICATE
    assert letters(again) == letters(first)
    # A tick from a worker whose clock is behind expires nothing and re-sends nothing.
    behind = order.expire(tick - 1, POLICY)
    assert (behind.verdict, behind.dead) == (Verdict.DUPLICATE, [])
    assert [w.event.payload["fulfillment_id"] for w in order.waiting] == ["FUL-2"]
    later = order.expire(tick + HOUR_MS, POLICY)
    assert [d.waiting.event.payload["fulfillment_id"] for d in later.dead] == ["FUL-2"]


def test_a_redelivered_event_sends_again_the_dead_letters_it_caused(order: Order) -> None:
    apply(order, fulfilled(OID, "FUL-1", WEST, {"SKU-Z": 1}))
    placed = two_lines(at=T0 + 1)
    first = apply(order, placed)
    assert [d.rejection.reason for d in first.dead] == ["sku-not-ordered"]
    again = apply(order, placed)
    assert again.verdict is Verdict.DUPLICATE
    assert letters(again) == letters(first)


def test_dead_letters_are_kept_for_redelivery_only_as_long_as_event_ids(order: Order) -> None:
    apply(order, fulfilled(OID, "FUL-1", WEST, {A: 1}), now=T0)
    tick = T0 + POLICY.max_wait_ms
    order.expire(tick, POLICY)
    assert len(order.lapsed) == 1
    order.expire(tick + POLICY.dedup_ttl_ms - 1, POLICY)
    assert len(order.lapsed) == 1
    # Pruned with the event ids, at most once every PRUNE_EVERY_MS.
    order.expire(tick + POLICY.dedup_ttl_ms + PRUNE_EVERY_MS, POLICY)
    assert order.lapsed == []


# --- arrival order does not matter ------------------------------------------------------------


def comparable(order: Order) -> dict[str, Any]:
    state = statejson.plain(order)
    for bookkeeping in ("seen", "transitions", "pruned_ms"):
        del state[bookkeeping]
    return state


def stock_facts(requests: Sequence[StockRequest]) -> list[tuple[Any, ...]]:
    """What the requests ask of stock, whatever order they were sent in."""
    return sorted(
        (r.kind.value, r.sku, r.ref, r.lines, r.quantity, r.warehouse or "") for r in requests
    )


def label(event: InputEvent) -> str:
    p = event.payload
    return str(p.get("fulfillment_id") or p.get("refund_id") or event.kind)


def final_states(history: Sequence[InputEvent]) -> list[tuple[tuple[str, ...], Order]]:
    results = []
    for permutation in itertools.permutations(history):
        order = Order(OID)
        for event in permutation:
            apply(order, event, now=T0)
        results.append((tuple(label(e) for e in permutation), order))
    return results


def test_final_state_does_not_depend_on_arrival_order() -> None:
    history = [
        two_lines(at=T0),
        captured(OID, "25.00", at=T0 + 1),
        fulfilled(OID, "FUL-1", EAST, {A: 2}, at=T0 + 2),
        fulfilled(OID, "FUL-2", WEST, {B: 1}, at=T0 + 3),
        refunded(OID, "RF-1", {A: (1, "10.00")}, restock=True, at=T0 + 4),
        payment_refunded(OID, "10.00", "PR-1", at=T0 + 5),
    ]
    reference = Order(OID)
    apply_all(reference, history)
    assert reference.status is Status.PARTLY_REFUNDED
    # A shipped from the east; the return names no warehouse: California's first choice.
    assert reference.refunds["RF-1"].warehouses == {A: WEST}
    expected = comparable(reference)
    expected_requests = stock_facts(reference.all_requests())
    assert len(expected_requests) == 5  # 2 reserves, 2 shipments, 1 restock
    for arrival, order in final_states(history):
        assert comparable(order) == expected, arrival
        assert order.waiting == [], arrival
        assert stock_facts(order.all_requests()) == expected_requests, arrival


def test_restock_warehouse_does_not_depend_on_arrival_order() -> None:
    # One SKU shipped in two parts from two warehouses, then one unit returned without
    # naming a warehouse: which warehouse receives it must not depend on arrival order.
    history = [
        placed(OID, [line("L1", A, 2, "10.00")], at=T0),
        captured(OID, "20.00", at=T0 + 1),
        fulfilled(OID, "FUL-1", EAST, {A: 1}, at=T0 + 2),
        fulfilled(OID, "FUL-2", WEST, {A: 1}, at=T0 + 3),
        refunded(OID, "RF-1", {A: (1, "10.00")}, restock=True, at=T0 + 4),
    ]
    example: dict[str, tuple[str, ...]] = {}
    restocks: set[tuple[Any, ...]] = set()
    for arrival, order in final_states(history):
        example.setdefault(order.refunds["RF-1"].warehouses[A], arrival)
        restocks.update(
            (r.ref, r.quantity, r.warehouse)
            for r in order.all_requests()
            if r.kind is RequestKind.RESTOCK
        )
    assert len(example) == 1, f"restock warehouse by arrival order: {example}"
    # California's first choice, whichever shipment came first.
    assert set(example) == {WEST}
    assert restocks == {("RF-1", 1, WEST)}


def test_cancellation_arrival_order_changes_only_whether_stock_was_reserved() -> None:
    history = [
        two_lines(at=T0),
        captured(OID, "25.00", at=T0 + 1),
        cancelled(OID, at=T0 + 2),
        payment_refunded(OID, "25.00", "PR-1", at=T0 + 3),
    ]
    states = []
    for arrival, order in final_states(history):
        assert order.status is Status.CANCELLED, arrival
        assert order.waiting == [], arrival
        requests = order.all_requests()
        # Reservations are requested only if the placement came first, and then released.
        assert order.placement is not None
        assert kinds(requests) == (
            [(k, s) for k in (RequestKind.RESERVE, RequestKind.RELEASE) for s in (A, B)]
            if order.placement.reserved
            else []
        ), arrival
        state = comparable(order)
        state["placement"]["reserved"] = None
        states.append(state)
    assert all(state == states[0] for state in states)


# --- duplicates -------------------------------------------------------------------------------


def test_a_redelivered_event_replays_its_outputs(order: Order) -> None:
    capture = captured(OID, "25.00", at=T0 + 1)
    apply_all(order, [two_lines(), capture, fulfilled(OID, "FUL-1", EAST, {A: 2}, at=T0 + 2)])
    effect = apply(order, capture, now=T0 + 10)
    assert effect.verdict is Verdict.DUPLICATE
    assert effect.requests == order.all_requests()
    assert kinds(effect.requests) == [
        (RequestKind.RESERVE, A),
        (RequestKind.RESERVE, B),
        (RequestKind.SHIP, A),
    ]
    # What it caused, then the current status: the last status record must stay true.
    assert effect.transitions == [
        Transition(Status.PLACED, Status.PAID, capture.event_id, T0 + 1, 2),
        order.transitions[-1],
    ]
    assert order.transitions[-1].status is Status.PARTLY_FULFILLED
    assert order.captured == Decimal("25.00")  # not captured twice


def test_a_redelivered_event_without_a_transition_replays_the_current_status(
    order: Order,
) -> None:
    placement, auth = two_lines(), authorized(OID, "25.00")
    apply_all(order, [placement, auth])
    effect = apply(order, auth)
    assert effect.verdict is Verdict.DUPLICATE
    assert effect.transitions == [Transition(None, Status.PLACED, placement.event_id, T0, 1)]
    assert order.authorized == Decimal("25.00")


def test_a_redelivered_event_of_an_order_not_yet_placed_replays_no_status(
    order: Order,
) -> None:
    capture = captured(OID, "25.00")
    apply(order, capture)
    assert apply(order, capture).transitions == []


def test_redelivered_inputs_in_any_order_end_with_the_current_status() -> None:
    """The defect of issue 17: after a restart every input comes again, and whichever comes
    last used to re-send the transition it caused (`fulfilled`) though the order had moved on
    (`closed`). Each copy is its first copy; the last record is the current status."""
    events = [
        two_lines(at=T0),
        fulfilled(OID, "FUL-1", WEST, {A: 2, B: 1}, at=T0 + 1),
        captured(OID, "25.00", at=T0 + 2),
    ]
    for redelivery in itertools.permutations(events):
        order = Order(OID)
        first = [t for effect in apply_all(order, events) for t in effect.transitions]
        assert [t.status for t in first] == [Status.PLACED, Status.FULFILLED, Status.CLOSED]
        for event in redelivery:
            effect = apply(order, event, now=T0 + HOUR_MS)
            assert effect.verdict is Verdict.DUPLICATE
            assert all(t in first for t in effect.transitions)  # identical to a first copy
            assert effect.transitions[-1] == first[-1]
            assert effect.transitions[-1].status is order.status is Status.CLOSED


def test_transitions_are_numbered_per_order_and_keep_their_number(order: Order) -> None:
    capture = captured(OID, "25.00", at=T0 + 1)
    apply_all(order, [two_lines(), capture, fulfilled(OID, "FUL-1", EAST, {A: 2, B: 1})])
    assert [(t.sequence, t.status) for t in order.transitions] == [
        (1, Status.PLACED),
        (2, Status.PAID),
        (3, Status.CLOSED),
    ]
    assert [t.sequence for t in apply(order, capture).transitions] == [2, 3]
    refund = refunded(OID, "RF-1", {A: (1, "10.00")}, at=T0 + 5)
    assert [t.sequence for t in apply(order, refund).transitions] == [4]


def test_state_written_before_transitions_were_numbered_loads_numbered(order: Order) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00", at=T0 + 1)])
    numbered = list(order.transitions)
    order.transitions = [replace(t, sequence=0) for t in order.transitions]
    restored = statecodec.decode_order(statecodec.encode_order(order))
    assert [t.sequence for t in restored.transitions] == [1, 2]
    assert restored.transitions == numbered


def test_a_redelivered_waiting_event_stays_waiting_once(order: Order) -> None:
    early = fulfilled(OID, "FUL-1", WEST, {A: 2})
    apply(order, early)
    effect = apply(order, early)
    assert effect.verdict is Verdict.DUPLICATE
    assert effect.requests == []
    assert len(order.waiting) == 1


def test_all_requests_of_a_cancelled_order_release_what_they_reserve(order: Order) -> None:
    apply_all(
        order,
        [
            two_lines(),
            fulfilled(OID, "FUL-1", EAST, {A: 1}, at=T0 + 1),
            cancelled(OID, at=T0 + 2),
        ],
    )
    assert kinds(order.all_requests()) == [
        (RequestKind.RESERVE, A),
        (RequestKind.RESERVE, B),
        (RequestKind.SHIP, A),
        (RequestKind.RELEASE, A),
        (RequestKind.RELEASE, B),
    ]


def test_event_ids_are_forgotten_after_the_ttl_at_most_once_per_prune_interval(
    order: Order,
) -> None:
    policy = Policy(dedup_ttl_ms=HOUR_MS // 2)
    placement = two_lines(at=T0)
    apply(order, placement, policy=policy)
    assert order.pruned_ms == T0
    # Older than the TTL, but pruning ran less than PRUNE_EVERY_MS ago: still remembered.
    apply(order, authorized(OID, "25.00", at=T0 + PRUNE_EVERY_MS - 1), policy=policy)
    assert placement.event_id in order.seen
    capture = captured(OID, "25.00", at=T0 + PRUNE_EVERY_MS)
    apply(order, capture, policy=policy)
    assert order.pruned_ms == T0 + PRUNE_EVERY_MS
    assert placement.event_id not in order.seen
    assert capture.event_id in order.seen


@pytest.mark.parametrize(
    ("first", "again"),
    [
        (
            two_lines(),
            placed(OID, [line("L9", "SKU-Z", 9)]),
        ),
        (
            fulfilled(OID, "FUL-1", EAST, {A: 1}),
            fulfilled(OID, "FUL-1", EAST, {A: 1}),
        ),
        (
            refunded(OID, "RF-1", {A: (1, "10.00")}),
            refunded(OID, "RF-1", {A: (1, "10.00")}),
        ),
        (
            payment_refunded(OID, "5.00", "PR-1"),
            payment_refunded(OID, "5.00", "PR-1"),
        ),
        (
            settled(OID, "25.00", "1.00"),
            settled(OID, "25.00", "1.00"),
        ),
        (cancelled(OID), cancelled(OID, "another reason")),
    ],
    ids=["placement", "fulfilment", "refund", "payment-refund", "payout", "cancellation"],
)
def test_the_same_fact_under_a_new_event_id_is_a_duplicate(
    order: Order, first: InputEvent, again: InputEvent
) -> None:
    assert first.event_id != again.event_id
    if first.kind != "OrderPlaced":
        apply_all(order, [two_lines(), captured(OID, "25.00")])
    apply(order, first)
    before = statejson.plain(order)
    effect = apply(order, again)
    assert effect.verdict is Verdict.DUPLICATE
    assert effect.requests == [] and effect.transitions == []
    after = statejson.plain(order)
    del before["seen"], after["seen"]
    assert after == before


# --- allocations ------------------------------------------------------------------------------


def test_apply_allocation_keeps_the_latest_version(order: Order) -> None:
    apply(order, placed(OID, [line("L1", A, 5), line("L2", A, 1), line("L3", B, 1)]))
    order.apply_allocation(
        AllocationUpdate(
            OID,
            A,
            2,
            {
                "L1": LineReservation({WEST: 3, EAST: 1}, 1),
                "L2": LineReservation({WEST: 1}, 0),
                "L-unknown": LineReservation({WEST: 7}, 0),
            },
        )
    )
    assert (order.lines["L1"].reserved, order.lines["L1"].backordered) == ({WEST: 3, EAST: 1}, 1)
    assert order.lines["L1"].allocation_version == 2
    assert "L-unknown" not in order.lines
    # Older and equal versions arrive late: ignored, and told apart (a redelivery).
    assert not order.apply_allocation(AllocationUpdate(OID, A, 1, {"L1": LineReservation({}, 5)}))
    assert not order.apply_allocation(
        AllocationUpdate(OID, A, 2, {"L1": LineReservation({EU: 5}, 0)})
    )
    assert order.lines["L1"].reserved == {WEST: 3, EAST: 1}
    assert order.apply_allocation(AllocationUpdate(OID, A, 3, {"L1": LineReservation({}, 0)}))
    assert (order.lines["L1"].reserved, order.lines["L1"].backordered) == ({}, 0)
    assert order.lines["L2"].reserved == {WEST: 1}
    assert order.lines["L3"].allocation_version == 0


# --- bad input --------------------------------------------------------------------------------


NEEDS_NOTHING = [
    ("no-lines", placed(OID, []), "no lines"),
    ("no-lines", fulfilled(OID, "FUL-1", EAST, {}), "no lines"),
    ("negative-quantity", placed(OID, [line("L1", A, -1)]), "lines[0].quantity is -1"),
    ("negative-quantity", placed(OID, [line("L1", A, 0)]), "at least 1"),
    ("negative-quantity", fulfilled(OID, "F", EAST, {A: 0}), "lines[0].quantity is 0"),
    ("negative-quantity", fulfilled(OID, "F", EAST, {A: -2}), "lines[0].quantity is -2"),
    ("negative-quantity", refunded(OID, "R", {A: (-1, "0.00")}), "at least 0"),
    (
        "negative-amount",
        placed(OID, [line("L1", A, 1, "-1.00")], total="0.00"),
        "lines[0].unit_price",
    ),
    ("negative-amount", placed(OID, [line("L1", A, 1, discount="-1")]), "lines[0].discount"),
    (
        "negative-amount",
        placed(OID, [line("L1", A, 1, tax=["-0.10"])]),
        "lines[0].tax_lines[0].amount",
    ),
    ("negative-amount", placed(OID, [line("L1", A, 1)], total="-10.00"), "total is -10.00"),
    ("negative-amount", captured(OID, "-0.01"), "amount is -0.01"),
    ("negative-amount", refunded(OID, "R", {A: (1, "-5.00")}, total="0"), "lines[0].amount"),
    ("negative-amount", refunded(OID, "R", {A: (1, "5.00")}, total="-5.00"), "total"),
    (
        "negative-amount",
        refunded(OID, "R", {A: (1, "5.00")}, shipping_amount="-1.00", total="4.00"),
        "shipping_amount",
    ),
    ("negative-amount", settled(OID, "10.00", "-1.00", net="11.00"), "fee"),
    ("unknown-currency", two_lines(currency="XXX"), "'XXX'"),
    ("unknown-currency", captured(OID, "1.00", currency="usd"), "'usd'"),
    ("unknown-currency", refunded(OID, "R", {A: (1, "1.00")}, currency="ABC"), "'ABC'"),
    ("duplicate-line", placed(OID, [line("L1", A, 1), line("L1", B, 1)]), "['L1', 'L1']"),
    (
        "missing-purchase-order",
        two_lines(payment_terms="ON_ACCOUNT"),
        "purchase_order_number",
    ),
    (
        "missing-purchase-order",
        two_lines(payment_terms="ON_ACCOUNT", purchase_order_number=""),
        "purchase_order_number",
    ),
    ("unknown-warehouse", fulfilled(OID, "F", "WH-MOON", {A: 1}), "'WH-MOON'"),
    (
        "unknown-warehouse",
        refunded(OID, "R", {A: (1, "1.00")}, restock=True, warehouse="WH-MOON"),
        "'WH-MOON'",
    ),
    ("settlement-mismatch", settled(OID, "100.00", "3.00", net="96.00"), "net 96.00"),
    ("unknown-event", replace(captured(OID, "1.00"), kind="PaymentDisputed"), "PaymentDisputed"),
]


@pytest.mark.parametrize(
    ("reason", "bad", "named"),
    NEEDS_NOTHING,
    ids=[f"{r}-{i}" for i, (r, *_) in enumerate(NEEDS_NOTHING)],
)
def test_bad_events_are_rejected_on_sight(
    order: Order, reason: str, bad: InputEvent, named: str
) -> None:
    # The order is fully placed and paid, so nothing about the event could wait.
    apply_all(order, [two_lines(), captured(OID, "25.00")])
    before = statejson.plain(order)
    with pytest.raises(Rejection) as info:
        apply(order, bad)
    assert info.value.reason == reason
    assert named in info.value.detail
    assert statejson.plain(order) == before  # not even remembered as seen


def shipped_a(order: Order) -> None:
    apply(order, fulfilled(OID, "FUL-0", EAST, {A: 2}))


def refunded_a(order: Order) -> None:
    apply(order, refunded(OID, "RF-0", {A: (2, "20.00")}))


def refunded_20(order: Order) -> None:
    apply(order, refunded(OID, "RF-0", {A: (1, "20.00")}))


def cancel(order: Order) -> None:
    apply(order, cancelled(OID))


def ship_all(order: Order) -> None:
    apply(order, fulfilled(OID, "FUL-0", EAST, {A: 2, B: 1}))


def nothing(order: Order) -> None:
    pass


IN_CONTEXT = [
    ("sku-not-ordered", nothing, fulfilled(OID, "F", EAST, {"SKU-Z": 1}), "SKU-Z"),
    ("sku-not-ordered", nothing, refunded(OID, "R", {"SKU-Z": (1, "1.00")}), "SKU-Z"),
    ("over-fulfilment", nothing, fulfilled(OID, "F", EAST, {A: 3}), "ships 3 of SKU-A, but 2"),
    ("over-fulfilment", shipped_a, fulfilled(OID, "F", EAST, {A: 1}), "ships 1 of SKU-A, but 0"),
    ("over-refund", nothing, refunded(OID, "R", {A: (3, "1.00")}), "2 were ordered"),
    ("over-refund", refunded_a, refunded(OID, "R", {A: (1, "1.00")}), "2 already refunded"),
    ("refund-exceeds-order", nothing, refunded(OID, "R", {A: (1, "25.01")}), "25.00"),
    ("refund-exceeds-order", refunded_20, refunded(OID, "R", {B: (1, "5.01")}), "20.00"),
    ("currency-mismatch", nothing, refunded(OID, "R", {A: (1, "1.00")}, currency="EUR"), "EUR"),
    ("currency-mismatch", nothing, captured(OID, "1.00", currency="GBP"), "GBP"),
    ("order-cancelled", cancel, fulfilled(OID, "F", EAST, {A: 1}), "cancelled order"),
    ("already-fulfilled", ship_all, cancelled(OID), "cannot be cancelled"),
]


@pytest.mark.parametrize(
    ("reason", "history", "bad", "named"),
    IN_CONTEXT,
    ids=[f"{r}-{i}" for i, (r, *_) in enumerate(IN_CONTEXT)],
)
def test_events_the_business_does_not_allow_are_rejected(
    order: Order, reason: str, history: Any, bad: InputEvent, named: str
) -> None:
    apply_all(order, [two_lines(), captured(OID, "25.00")])
    history(order)
    status = order.status
    with pytest.raises(Rejection) as info:
        apply(order, bad)
    assert info.value.reason == reason
    assert named in info.value.detail
    assert order.status is status


def test_a_rejected_event_is_rejected_again_when_redelivered(order: Order) -> None:
    # The agents reload the order for every record and do not save it after a rejection, so
    # a redelivered bad event is rejected (and dead-lettered) again; the rules must agree,
    # or the reference model, which keeps its Order objects, calls it a duplicate instead.
    apply_all(order, [two_lines(), captured(OID, "25.00")])
    before = statejson.plain(order)
    too_many = fulfilled(OID, "FUL-1", EAST, {A: 3})
    for _ in range(2):
        with pytest.raises(Rejection) as info:
            apply(order, too_many)
        assert info.value.reason == "over-fulfilment"
    assert statejson.plain(order) == before


def test_a_refund_of_zero_units_is_allowed(order: Order) -> None:
    # Refund lines may be zero (a price adjustment); order and fulfilment lines may not.
    apply_all(order, [two_lines(), captured(OID, "25.00")])
    effect = apply(order, refunded(OID, "R", {A: (0, "2.00")}))
    assert effect.verdict is Verdict.APPLIED
    assert order.lines["L1"].refunded == 0


# --- persistence ------------------------------------------------------------------------------


def rich_order() -> Order:
    order = Order(OID)
    apply_all(
        order,
        [
            placed(
                OID,
                [
                    line("L1", A, 2, "10.00", discount="1.50", tax=["0.66", "0.10"]),
                    line("L2", B, 1, "5.00"),
                ],
                destination=CALIFORNIA,
            ),
            authorized(OID, "24.26"),
            payment_failed(OID, "24.26", payment_id="PAY-0"),
            captured(OID, "20.00", at=T0 + 1),
            fulfilled(OID, "FUL-1", WEST, {A: 2}, at=T0 + 2),
            refunded(OID, "RF-1", {A: (1, "9.63")}, restock=True, at=T0 + 3),
            payment_refunded(OID, "9.63", "PR-1", at=T0 + 4),
            settled(OID, "20.00", "0.88", at=T0 + 5),
            # Waits: more than captured and not yet refunded.
            payment_refunded(OID, "11.00", "PR-2", at=T0 + 6),
        ],
    )
    order.apply_allocation(AllocationUpdate(OID, B, 4, {"L2": LineReservation({EAST: 1}, 0)}))
    return order


def test_order_state_survives_being_stored() -> None:
    order = rich_order()
    assert len(order.waiting) == 1 and order.status is Status.PARTLY_REFUNDED
    assert order.lines["L1"].tax == Decimal("0.76")
    restored = statecodec.decode_order(statecodec.encode_order(order))
    assert restored == order
    assert isinstance(restored.lines["L1"].unit_price, Decimal)
    assert isinstance(restored.payments["PAY-1"].fees, Decimal)
    assert set(restored.payments["PAY-1"].refunds) == {"PR-1"}
    assert restored.waiting[0].event == order.waiting[0].event
    assert isinstance(restored.waiting[0].event.payload["amount"], Decimal)
    assert restored.status is Status.PARTLY_REFUNDED


def test_restored_order_goes_on_as_the_original() -> None:
    original = rich_order()
    restored = statecodec.decode_order(statecodec.encode_order(original))
    more = [captured(OID, "4.26", at=T0 + 7), fulfilled(OID, "FUL-2", EAST, {B: 1}, at=T0 + 8)]
    for order in (original, restored):
        effects = apply_all(order, more)
        assert len(effects[0].resolved) == 1  # the waiting payment refund
        assert order.payments["PAY-1"].refunded == Decimal("20.63")
    assert restored == original


# -- approval workflows ----------------------------------------------------------------------

LIMITS = replace(POLICY, approval_thresholds={"BUSINESS": {"USD": Decimal("25.00")}})


def business(total: str, *, group: str | None = None, currency: str = "USD") -> InputEvent:
    event = two_lines(total=total, currency=currency)
    event.payload["customer"] = {**event.payload["customer"], "kind": "BUSINESS", "group": group}
    return event


@pytest.mark.parametrize(
    ("event", "held"),
    [
        (business("25.00"), False),  # exactly the threshold: not over it
        (business("25.01"), True),
        (business("25.01", currency="EUR"), False),  # no threshold in euros
        (business("25.01", group="wholesale"), False),  # the group, not the kind, decides
        (two_lines(total="99.00"), False),  # consumers have no threshold here
        (two_lines(requires_approval=True), True),  # the storefront flags it
    ],
)
def test_an_order_over_its_groups_threshold_or_flagged_waits_for_approval(
    event: InputEvent, held: bool
) -> None:
    order = Order(OID)
    effect = apply(order, event, policy=LIMITS)
    assert (order.status is Status.HELD) is held
    assert bool(effect.requests) is not held  # a held order reserves nothing
    assert order.placement is not None and order.placement.reserved is not held


def test_an_approval_reserves_and_a_shipment_waits_for_it() -> None:
    order = Order(OID)
    apply(order, business("30.00"), policy=LIMITS)
    early = apply(order, fulfilled(OID, "F1", EAST, {A: 1}, at=T0 + 1), policy=LIMITS)
    assert early.verdict is Verdict.WAITING and early.reason == "awaiting-approval"
    effect = apply(order, approved(OID, at=T0 + 2), policy=LIMITS)
    assert kinds(effect.requests)[:2] == [(RequestKind.RESERVE, A), (RequestKind.RESERVE, B)]
    assert [w.event.kind for w in effect.resolved] == ["OrderFulfilled"]
    assert [(t.previous, t.status) for t in effect.transitions] == [
        (Status.HELD, Status.PARTLY_FULFILLED)
    ]
    assert order.approval is not None and order.approval.by == "buyer-admin"


def test_an_approval_before_its_order_lets_it_through_when_it_arrives() -> None:
    order = Order(OID)
    apply(order, approved(OID, at=T0 + 5), policy=LIMITS)
    effect = apply(order, business("30.00"), policy=LIMITS)
    assert order.status is Status.PLACED and kinds(effect.requests)
    # The sales order is due from the approval on, not from the placement.
    assert confirmed_at(order, CommandPolicy(target="tryton")) is None  # prepaid, unpaid
    apply(order, captured(OID, "30.00", at=T0 + 1), policy=LIMITS)
    assert confirmed_at(order, CommandPolicy(target="tryton")) == T0 + 5


def test_a_rejection_cancels_with_its_reason_and_releases_what_was_reserved() -> None:
    held = Order(OID)
    apply(held, business("30.00"), policy=LIMITS)
    effect = apply(held, rejected(OID, "no budget", at=T0 + 3), policy=LIMITS)
    assert held.status is Status.CANCELLED and effect.requests == []  # nothing was reserved
    assert held.cancel_reason == "rejected by buyer-admin: no budget"

    flagged_late = Order(OID)
    apply(flagged_late, two_lines(), policy=LIMITS)  # needs no approval: reserved at once
    effect = apply(flagged_late, rejected(OID, "duplicate order", at=T0 + 3), policy=LIMITS)
    assert {k for k, _ in kinds(effect.requests)} == {RequestKind.RELEASE}


def test_the_first_decision_stands() -> None:
    order = Order(OID)
    apply(order, business("30.00"), policy=LIMITS)
    apply(order, approved(OID, at=T0 + 1), policy=LIMITS)
    again = apply(order, approved(OID, "someone-else", at=T0 + 2), policy=LIMITS)
    assert again.verdict is Verdict.DUPLICATE
    with pytest.raises(Rejection) as refused:
        apply(order, rejected(OID, at=T0 + 3), policy=LIMITS)
    assert refused.value.reason == "already-decided" and "approved by buyer-admin" in str(
        refused.value
    )
    assert order.cancelled_ms is None


def test_a_rejection_of_an_order_that_shipped_in_full_is_refused_and_changes_nothing() -> None:
    order = Order(OID)
    apply_all(order, [two_lines(), fulfilled(OID, "F1", EAST, {A: 2, B: 1}, at=T0 + 1)])
    with pytest.raises(Rejection) as refused:
        apply(order, rejected(OID, at=T0 + 2))
    assert refused.value.reason == "already-fulfilled"
    assert order.approval is None and order.cancelled_ms is None


def test_approval_state_comes_back_from_the_table() -> None:
    order = Order(OID)
    apply_all(order, [two_lines(requires_approval=True), rejected(OID, at=T0 + 1)])
    assert statecodec.decode_order(statecodec.encode_order(order)) == order


def test_an_order_of_a_group_that_needs_a_purchase_order_number_is_refused_without_one() -> None:
    needs = replace(POLICY, po_required_groups=frozenset({"BUSINESS"}))
    order = Order(OID)
    with pytest.raises(Rejection) as refused:
        apply(order, business("10.00"), policy=needs)
    assert refused.value.reason == "po-number-required"
    assert "C-1 (BUSINESS)" in refused.value.detail and order.placement is None
    with_po = business("10.00")
    with_po.payload["purchase_order_number"] = "PO-1"
    apply(order, with_po, policy=needs)
    assert order.status is Status.PLACED
    # A consumer, or a business of another group, needs none.
    apply(Order("O-2"), two_lines(), policy=needs)
    apply(Order("O-3"), business("10.00", group="retail"), policy=needs)

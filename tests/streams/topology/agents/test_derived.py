"""The derived topics' values are functions of stored state, never of the input that happens
to re-send them: a re-sent record is byte for byte its first copy."""

from __future__ import annotations

from typing import Any

from streams.contracts.codec import Codec
from streams.domain.orders import Order, Status
from streams.domain.policy import HOUR_MS
from streams.domain.stock import SkuStock, Verdict
from streams.topology.agents import derived
from tests.streams.domain.builders import (
    EAST,
    NEW_YORK,
    T0,
    WEST,
    apply,
    apply_all,
    captured,
    fulfilled,
    line,
    placed,
    reserve,
    snapshot,
    stock_event,
    stock_request,
)
from tests.support import STORE

CODEC = Codec(STORE)
SKU = "SKU-A"


def encoded(schema: str, datum: dict[str, Any]) -> bytes:
    return CODEC.encode(schema, datum, topic="orders.status")


def status_record(order: Order, sequence: int) -> bytes:
    [transition] = [t for t in order.transitions if t.sequence == sequence]
    return encoded("erpbridge.OrderStatusChanged", derived.status_changed("O-1", transition))


def test_a_re_sent_transition_is_its_first_copy_with_its_sequence_number() -> None:
    order = Order("O-1")
    shipment = fulfilled("O-1", "FUL-1", WEST, {SKU: 2}, at=T0 + 1)
    effects = apply_all(
        order, [placed("O-1", [line("L1", SKU, 2, "10.00")]), shipment, captured("O-1", "20.00")]
    )
    first = [
        encoded("erpbridge.OrderStatusChanged", derived.status_changed("O-1", t))
        for effect in effects
        for t in effect.transitions
    ]
    assert [CODEC.decode(r).datum["sequence"] for r in first] == [1, 2, 3]
    assert CODEC.decode(first[-1]).datum["status"] == Status.CLOSED.value

    replay = apply(order, shipment, now=T0 + HOUR_MS)
    again = [
        encoded("erpbridge.OrderStatusChanged", derived.status_changed("O-1", t))
        for t in replay.transitions
    ]
    assert again == [first[1], first[2]] == [status_record(order, 2), status_record(order, 3)]


def availability_record(stock: SkuStock, cause: str, at_ms: int) -> bytes:
    """What the stock agent sends after an input: the current figures, and the input."""
    datum = derived.stock_availability(SKU, stock.availability(), cause, at_ms)
    return encoded("erpbridge.StockAvailability", datum)


def test_a_re_sent_availability_is_the_first_record_of_the_same_figures() -> None:
    stock = SkuStock(SKU)
    count = snapshot(SKU, EAST, 10, T0)
    stock_event(stock, count)
    claim = reserve("O-1", SKU, [("L1", 3)], NEW_YORK, at=T0 + 1)
    stock_request(stock, claim)
    latest = availability_record(stock, claim.cause, claim.at_ms)
    assert CODEC.decode(latest).datum["available"] == 7

    # The count redelivered: the agent sends the current figures again, with the count as
    # the input; the record is the one the figures were first sent with.
    assert stock_event(stock, count).verdict is Verdict.DUPLICATE
    assert availability_record(stock, count.event_id, count.occurred_ms) == latest


def test_figures_without_a_recorded_change_are_sent_with_the_input() -> None:
    """State kept before changes were recorded, until its next change."""
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0))
    stock.changed = None
    datum = CODEC.decode(availability_record(stock, "evt-1", T0 + 5)).datum
    assert datum["event_id"] == f"{SKU}:evt-1"
    assert datum["on_hand"] == 10

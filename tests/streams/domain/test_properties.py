"""Properties of the business rules over drawn commerce streams (see properties.py), and
what the strategy promises: consistent stories, scarce stock, every kind of event.

The suite runs each property under the `erpbridge-suite` profile (200 examples);
`python -m bench.properties --examples 5000` runs the same under a longer one.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings

from streams.contracts.codec import Codec
from streams.domain.events import InputEvent
from tests.streams.domain import builders as b
from tests.streams.domain import properties
from tests.streams.domain.strategies import (
    CommerceStream,
    as_sample,
    commerce_streams,
    stream_and_arrival,
)
from tests.support import STORE

SUITE = "erpbridge-suite"
settings.register_profile(SUITE, max_examples=200, deadline=None)


@settings(settings.get_profile(SUITE))
@given(drawn=stream_and_arrival())
def test_arrival_order_does_not_change_what_the_business_allows_it_not_to(
    drawn: tuple[CommerceStream, list[int]],
) -> None:
    properties.check_arrival_order_does_not_matter(*drawn)


@settings(settings.get_profile(SUITE))
@given(stream=commerce_streams())
def test_stock_is_conserved(stream: CommerceStream) -> None:
    properties.check_stock_is_conserved(stream)


@settings(settings.get_profile(SUITE))
@given(stream=commerce_streams())
def test_the_books_balance_and_say_what_the_events_imply(stream: CommerceStream) -> None:
    properties.check_the_books_balance_and_say_what_the_events_imply(stream)


@settings(settings.get_profile(SUITE))
@given(stream=commerce_streams())
def test_redelivery_changes_nothing(stream: CommerceStream) -> None:
    properties.check_redelivery_changes_nothing(stream)


def features(stream: CommerceStream) -> set[str]:
    """What a drawn stream exercises, as the model sees it."""
    model = properties.run(stream.deliveries)
    found = set()
    kinds = Counter(e.kind for e in stream.events)
    found |= {f"has {kind}" for kind in kinds}
    claimed = [
        line
        for stock in model.stock.values()
        for claim in stock.claims.values()
        for line in claim.lines.values()
    ]
    if any(line.backordered for line in claimed):
        found.add("a line backordered")
    if any(len(line.reserved) > 1 for line in claimed):
        found.add("a line split across warehouses")
    lines = [line for order in model.orders.values() for line in order.lines.values()]
    if any(0 < line.fulfilled < line.quantity for line in lines):
        found.add("a line shipped in part")
    if any(line.restocked for line in lines):
        found.add("a restock")
    if model.outcomes["waiting"]:
        found.add("an event waited")
    if stream.redelivered:
        found.add("a redelivery")
    if model.outcomes["duplicate"] > stream.redelivered:
        found.add("a fact re-sent under a new event id")
    if any(on_hand < 0 for on_hand in properties.on_hand(model).values()):
        found.add("on hand below zero")
    if len({o.placement.currency for o in model.orders.values() if o.placement}) > 1:
        found.add("several currencies")
    position = {e.event_id: i for i, e in reversed(list(enumerate(stream.deliveries)))}
    placed = {e.key: position[e.event_id] for e in stream.events if e.kind == "OrderPlaced"}
    if any(
        e.kind.startswith("Payment") and e.key in placed and position[e.event_id] < placed[e.key]
        for e in stream.events
    ):
        found.add("a payment before its order")
    statuses = {o.status for o in model.orders.values()}
    found |= {f"an order {status}" for status in statuses if status}
    return found


def test_the_strategy_draws_competing_orders_and_every_kind_of_event() -> None:
    """Most drawn streams make orders compete for stock, and every kind of event and story
    turns up often enough to matter."""
    seen: Counter[str] = Counter()
    examples = 300

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None)
    @given(stream=commerce_streams())
    def collect(stream: CommerceStream) -> None:
        seen.update(features(stream))
        seen["examples"] += 1

    collect()
    assert seen["examples"] == examples
    competing = seen["a line backordered"] + seen["a line split across warehouses"]
    assert competing >= examples // 3, seen
    wanted = [
        *(f"has {kind}" for kind in properties.INPUT_KINDS),
        "a line shipped in part",
        "a restock",
        "an event waited",
        "a redelivery",
        "a fact re-sent under a new event id",
        "a payment before its order",
        "several currencies",
        "on hand below zero",
        *(f"an order {status}" for status in properties.STATUSES),
    ]
    rare = {feature: seen[feature] for feature in wanted if seen[feature] < examples // 20}
    assert not rare, f"drawn too rarely in {examples} streams: {rare}"


@settings(max_examples=30, deadline=None)
@given(stream=commerce_streams())
def test_drawn_events_are_what_the_codec_decodes(stream: CommerceStream) -> None:
    """The topology reads the events through the codec: it must see what the model sees."""
    codec = Codec(STORE)
    for event in stream.deliveries:
        sample = as_sample(event)
        encoded = codec.encode(sample.schema_name, sample.datum, topic="t")
        decoded = InputEvent.from_datum(
            codec.decode(encoded).datum, "sku" if sample.topic.endswith("inventory") else "order_id"
        )
        assert decoded == event


def test_which_line_a_restock_is_booked_on_does_not_depend_on_the_refunds_order() -> None:
    placed = b.placed(
        "O-1",
        [b.line("L1", "SKU-A", 1), b.line("L2", "SKU-A", 1)],
        total="20.00",
        payment_terms="ON_ACCOUNT",
        purchase_order_number="PO-1",
    )
    shipped = b.fulfilled("O-1", "F-1", b.WEST, {"SKU-A": 1}, at=b.T0 + 1)
    back = b.refunded("O-1", "R-back", {"SKU-A": (1, "10.00")}, restock=True, at=b.T0 + 2)
    kept = b.refunded("O-1", "R-kept", {"SKU-A": (1, "10.00")}, at=b.T0 + 3)
    lines = []
    for events in ([placed, shipped, back, kept], [placed, shipped, kept, back]):
        order = properties.run(events).orders["O-1"]
        for line_id, line in order.lines.items():
            assert line.restocked <= line.fulfilled, (
                f"{line_id} restocked {line.restocked} of {line.fulfilled} shipped"
            )
        lines.append({i: line.restocked for i, line in order.lines.items()})
    assert lines[0] == lines[1]

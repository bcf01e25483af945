"""Stored state: state written by the release before this format restores into the objects
that release's own reader made, and the current format gives back exactly what it was given."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain import statecodec
from streams.domain.alerts import Alert, AlertBook, Severity
from streams.domain.events import InputEvent
from streams.domain.messages import ErpOutcome
from streams.domain.orders import (
    Fulfilment,
    Lapsed,
    Line,
    Movement,
    Order,
    Payment,
    Payout,
    Placement,
    Refund,
    Status,
    Transition,
    Waiting,
)
from streams.domain.stock import Claim, ClaimLine, SkuStock, WarehouseStock
from tests.streams.domain.stored import DECODERS, ENCODERS, changelog, describe, expected, format_1

# --- state written by the release before (format 0, JSON) --------------------------------------


@pytest.mark.parametrize("table", sorted(DECODERS))
def test_state_the_previous_release_wrote_restores_as_it_read_it(table: str) -> None:
    records = changelog(table)
    assert records and all(value.startswith(b"{") for _, value in records)
    decode = DECODERS[table]
    assert [describe(decode(value)) for _, value in records] == expected(table)


@pytest.mark.parametrize("table", sorted(DECODERS))
def test_restored_old_state_is_written_in_the_current_format_and_reads_back(table: str) -> None:
    for _, value in changelog(table):
        state = DECODERS[table](value)
        stored = ENCODERS[table](state)
        assert stored.startswith(b"\xeb\x01")
        assert describe(DECODERS[table](stored)) == describe(state)


def test_the_fixtures_cover_what_state_holds() -> None:
    """Guards the fixtures: if the sample changes what they hold, they prove less."""
    orders = [statecodec.decode_order(v) for _, v in changelog("orders")]
    final = orders[len(orders) // 2 :]
    assert any(o.placement and o.refunds and o.erp and len(o.fulfilments) > 1 for o in final)
    assert any(o.placement is None and len(o.waiting) > 1 for o in final)
    assert all(w.record["value"] for o in final for w in o.waiting)
    assert any(o.cancel_reason for o in final)
    assert any(isinstance(o.placement.document["total"], Decimal) for o in final if o.placement)
    skus = [statecodec.decode_sku(v) for _, v in changelog("stock")]
    claims = [c for s in skus for c in s.claims.values()]
    assert any(c.closed for c in claims) and any(not c.closed for c in claims)
    assert any(w.drift for s in skus for w in s.warehouses.values())
    assert any(w.horizon_ms for s in skus for w in s.warehouses.values())
    books = [
        statecodec.decode_alerts(v)
        for t in ("order-alerts", "stock-alerts")
        for _, v in changelog(t)
    ]
    statuses = {a.status for b in books for a in b.alerts.values()}
    assert statuses == {"OPEN", "RESOLVED"}


def test_state_written_before_drift_was_kept_still_loads() -> None:
    _, value = changelog("stock")[0]
    data = json.loads(value)
    for warehouse in data["warehouses"].values():
        del warehouse["drift"]
    stock = statecodec.decode_sku(json.dumps(data).encode())
    assert all(w.drift is None for w in stock.warehouses.values())


# --- the current format (1) ---------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(DECODERS))
def test_state_format_1_first_wrote_still_restores(table: str) -> None:
    # A Struct field moved or retyped, or a dataclass field renamed, breaks this: such a
    # change needs format 2, with format 1 still read.
    records = [(i, value) for t, i, value in format_1() if t == table]
    assert len(records) == len(changelog(table))
    for i, value in records:
        assert value.startswith(b"\xeb\x01")
        assert describe(DECODERS[table](value)) == expected(table)[i]


def test_bytes_of_no_known_format_are_refused() -> None:
    for data in (b"", b"\xeb\x02\x80", b"[1]", b"\x80"):
        with pytest.raises(ValueError, match="no known format"):
            statecodec.decode_sku(data)


def test_an_unknown_extension_type_is_refused() -> None:
    # As a later format might write one into a datum: format 1 must not guess at it.
    order = order_with_document({"x": msgspec.msgpack.Ext(7, b"?")})
    with pytest.raises(ValueError, match="extension type 7"):
        statecodec.decode_order(b"\xeb\x01" + msgspec.msgpack.encode(order))


@pytest.mark.parametrize(
    "value", [datetime(2026, 11, 2, 8, 0), timedelta(seconds=1), {1, 2}, object()]
)
def test_a_datum_value_that_would_not_come_back_as_it_was_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="cannot be stored exactly"):
        statecodec.encode_order(order_with_document({"nested": [{"value": value}]}))


def test_datums_keep_decimals_with_their_exponent_and_datetimes_to_the_microsecond() -> None:
    document = {
        "total": Decimal("12.3400"),
        "tiny": Decimal("1E-12"),
        "as_of": datetime(1987, 1, 5, 21, 10, 31, 624999, tzinfo=UTC),
        "lines": [{"amount": Decimal("-0.00")}, (1, "two")],
    }
    restored = statecodec.decode_order(statecodec.encode_order(order_with_document(document)))
    assert restored.placement is not None
    kept = restored.placement.document
    assert [str(kept["total"]), str(kept["tiny"]), str(kept["lines"][0]["amount"])] == [
        "12.3400",
        "1E-12",
        "-0.00",
    ]
    assert kept["as_of"] == document["as_of"] and kept["as_of"].tzinfo is not None
    assert kept["lines"][1] == [1, "two"]  # a tuple comes back a list, as from JSON


def test_a_datetime_in_another_zone_comes_back_as_the_same_instant_in_utc() -> None:
    berlin = datetime(2026, 11, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    restored = statecodec.decode_order(statecodec.encode_order(order_with_document({"at": berlin})))
    assert restored.placement is not None
    assert restored.placement.document["at"] == berlin
    assert restored.placement.document["at"].utcoffset() == timedelta(0)


def test_encoding_leaves_the_order_untouched() -> None:
    order = order_with_document({"total": Decimal("1.00")})
    order.waiting.append(
        Waiting(
            InputEvent("e", 1, "s", "O-1", "OrderFulfilled", {"x": Decimal("2")}), {}, 1, "r", "d"
        )
    )
    statecodec.encode_order(order)
    assert order.placement is not None
    assert type(order.placement.document["total"]) is Decimal
    assert type(order.waiting[0].event.payload["x"]) is Decimal


def order_with_document(document: dict[str, Any]) -> Order:
    placement = Placement(
        "e",
        1,
        "USD",
        Decimal("1.00"),
        "web",
        "C",
        "CONSUMER",
        "US",
        None,
        "PREPAID",
        None,
        True,
        document,
    )
    return Order("O-1", placement=placement)


# --- round trips of arbitrary state ----------------------------------------------------------------

ids = st.text(string.ascii_letters + string.digits + "-/", min_size=1, max_size=12)
texts = st.text(max_size=12)
counts = st.integers(min_value=-(2**31), max_value=2**31)
times = st.integers(min_value=-(2**62), max_value=2**62)
money = st.decimals(allow_nan=False, allow_infinity=False)
utc_times = st.datetimes(timezones=st.just(UTC))
datum_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | texts
    | st.binary(max_size=8)
    | money
    | utc_times
)
datums = st.dictionaries(
    texts,
    st.recursive(
        datum_leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=12,
    ),
    max_size=5,
)
statuses = st.sampled_from(Status)

movements = st.builds(Movement, amount=money, at_ms=times)
placements = st.builds(
    Placement,
    event_id=ids,
    placed_ms=times,
    currency=texts,
    total=money,
    channel=texts,
    customer_id=ids,
    customer_kind=texts,
    country=texts,
    region=st.none() | texts,
    payment_terms=texts,
    purchase_order_number=st.none() | texts,
    reserved=st.booleans(),
    document=datums,
)
lines = st.builds(
    Line,
    sku=ids,
    quantity=counts,
    unit_price=money,
    discount=money,
    tax=money,
    fulfilled=counts,
    refunded=counts,
    restocked=counts,
    reserved=st.dictionaries(ids, counts, max_size=3),
    backordered=counts,
    allocation_version=counts,
)
payments = st.builds(
    Payment,
    gateway=texts,
    currency=texts,
    failed=money,
    failures=counts,
    first_seen_ms=st.none() | times,
    authorizations=st.dictionaries(ids, movements, max_size=2),
    captures=st.dictionaries(ids, movements, max_size=2),
    refunds=st.dictionaries(ids, movements, max_size=2),
    payouts=st.dictionaries(
        ids, st.builds(Payout, gross=money, fee=money, net=money, at_ms=times), max_size=2
    ),
)
fulfilments = st.builds(
    Fulfilment,
    warehouse=ids,
    lines=st.dictionaries(ids, counts, max_size=3),
    at_ms=times,
    carrier=st.none() | texts,
    tracking_number=st.none() | texts,
)
refunds = st.builds(
    Refund,
    kind=texts,
    total=money,
    lines=st.dictionaries(ids, counts, max_size=3),
    restock=st.booleans(),
    warehouses=st.dictionaries(ids, ids, max_size=2),
    at_ms=times,
    amounts=st.dictionaries(ids, money, max_size=2),
    shipping_amount=st.none() | money,
)
waiting = st.builds(
    Waiting,
    event=st.builds(
        InputEvent,
        event_id=ids,
        occurred_ms=times,
        source=texts,
        key=ids,
        kind=texts,
        payload=datums,
    ),
    record=datums,
    first_seen_ms=times,
    reason=texts,
    detail=texts,
)
outcomes = st.builds(
    ErpOutcome,
    succeeded=st.booleans(),
    document_type=st.none() | texts,
    document_id=st.none() | texts,
    error=st.none() | texts,
    permanent=st.booleans(),
    at_ms=times,
)
orders = st.builds(
    Order,
    order_id=ids,
    placement=st.none() | placements,
    lines=st.dictionaries(ids, lines, max_size=3),
    cancelled_ms=st.none() | times,
    cancel_reason=st.none() | texts,
    payments=st.dictionaries(ids, payments, max_size=2),
    fulfilments=st.dictionaries(ids, fulfilments, max_size=2),
    refunds=st.dictionaries(ids, refunds, max_size=2),
    waiting=st.lists(waiting, max_size=2),
    seen=st.dictionaries(ids, times, max_size=3),
    status=st.none() | statuses,
    # Numbered by position, as the rules number them.
    transitions=st.lists(
        st.builds(
            Transition,
            previous=st.none() | statuses,
            status=statuses,
            cause_event_id=ids,
            at_ms=times,
        ),
        max_size=3,
    ).map(lambda ts: [replace(t, sequence=i) for i, t in enumerate(ts, 1)]),
    pruned_ms=times,
    issued=st.dictionaries(ids, times, max_size=3),
    erp=st.dictionaries(ids, outcomes, max_size=2),
    lapsed=st.lists(
        st.builds(Lapsed, waiting=waiting, reason=texts, detail=texts, cause=ids, at_ms=times),
        max_size=2,
    ),
    ticked_ms=times,
)
skus = st.builds(
    SkuStock,
    sku=ids,
    warehouses=st.dictionaries(
        ids,
        st.builds(
            WarehouseStock,
            on_hand=counts,
            reserved=counts,
            snapshot_as_of=st.none() | times,
            movements=st.lists(st.tuples(times, counts), max_size=3),
            horizon_ms=st.none() | times,
            unit_cost=st.none() | money,
            cost_currency=st.none() | texts,
            drift=st.none() | counts,
        ),
        max_size=3,
    ),
    claims=st.dictionaries(
        ids,
        st.builds(
            Claim,
            lines=st.dictionaries(
                ids,
                st.builds(
                    ClaimLine,
                    quantity=counts,
                    reserved=st.dictionaries(ids, counts, max_size=2),
                    backordered=counts,
                    shipped=counts,
                ),
                max_size=2,
            ),
            refs=st.sets(ids, max_size=3),
            released=st.booleans(),
            version=counts,
            updated_ms=times,
            settled=st.lists(ids, max_size=2).map(tuple),
        ),
        max_size=4,
    ),
    seen=st.dictionaries(ids, times, max_size=3),
    pruned_ms=times,
)
books = st.builds(
    AlertBook,
    entity_type=texts,
    entity_id=ids,
    alerts=st.dictionaries(
        ids,
        st.builds(
            Alert,
            alert_id=ids,
            alert_type=ids,
            entity_type=texts,
            entity_id=ids,
            severity=st.sampled_from(Severity),
            summary=texts,
            evidence=st.dictionaries(texts, texts, max_size=3),
            first_seen_ms=times,
            resolved_ms=st.none() | times,
        ),
        max_size=3,
    ),
    opened=st.dictionaries(ids, counts, max_size=3),
)


@given(orders)
def test_an_order_comes_back_exactly(order: Order) -> None:
    stored = statecodec.encode_order(order)
    assert stored[:2] == b"\xeb\x01"
    restored = statecodec.decode_order(stored)
    assert restored == order
    # Equality ignores a Decimal's exponent, an int standing for a bool and dict order.
    assert describe(restored) == describe(order)


@given(skus)
def test_a_skus_stock_comes_back_exactly(stock: SkuStock) -> None:
    restored = statecodec.decode_sku(statecodec.encode_sku(stock))
    assert restored == stock
    assert describe(restored) == describe(stock)


@given(books)
def test_an_alert_book_comes_back_exactly(book: AlertBook) -> None:
    restored = statecodec.decode_alerts(statecodec.encode_alerts(book))
    assert restored == book
    assert describe(restored) == describe(book)

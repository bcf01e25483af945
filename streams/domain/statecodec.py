"""How the tables store state: an order, a SKU's stock, an alert book as bytes, and back.

Format 1, the one written: the marker EB 01, then MessagePack (msgspec), typed by the
domain's own annotations on the way back. An order and an alert book are dataclasses,
each written as a map by field name; a SKU's stock is msgspec Structs, each written as an
array of its fields in order (see streams.domain.stock._Stored). Decimals go as their text
(exponent kept), enums by value, sets and tuples as arrays. The datums the rules keep as
received (a placement's document, a waiting event's payload and consumed record) are typed
Any, so inside them a Decimal is extension type 1 holding its text and a datetime is
MessagePack's timestamp; anything else that could not come back as it went raises.

A field added with a default (last, in a Struct) needs no new format: bytes without it
decode to the default; a dataclass's removed field is skipped. Renaming a dataclass's
field, moving a Struct's, or retyping either needs format 2, read beside format 1 here. A
release that only writes format 1 cannot be rolled back to one that only reads JSON once
it has written state.

Format 0, read only: the JSON through dicts (streams.domain.statejson) that releases up to
9b01a66 wrote, recognised by its opening brace, so a worker upgraded on a surviving RocksDB
directory, or restoring an older changelog, reads it; the next write of a key replaces it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from streams.domain import statejson
from streams.domain.alerts import Alert, AlertBook, Severity
from streams.domain.events import InputEvent
from streams.domain.messages import ErpOutcome
from streams.domain.orders import (
    Fulfilment,
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

FORMAT = 1
_HEADER = bytes([0xEB, FORMAT])
_JSON = b"{"
_DECIMAL = 1
"""MessagePack extension type of a Decimal inside a datum: its text, ASCII."""
_LEAVES = frozenset({str, int, float, bool, type(None), bytes})
"""Datum values MessagePack gives back as they were."""


def encode_order(order: Order) -> bytes:
    return _HEADER + _ENCODER.encode(_exact(order))


def decode_order(data: bytes) -> Order:
    if _is_current(data):
        return _numbered(_ORDER.decode(memoryview(data)[len(_HEADER) :]))
    return _numbered(_order_from_json(statejson.loads(data)))


def _numbered(order: Order) -> Order:
    """Transitions carry their position: state written before they did gets it here."""
    for position, transition in enumerate(order.transitions, 1):
        if transition.sequence != position:
            order.transitions[position - 1] = replace(transition, sequence=position)
    return order


def encode_sku(stock: SkuStock) -> bytes:
    return _HEADER + _ENCODER.encode(stock)


def decode_sku(data: bytes) -> SkuStock:
    if _is_current(data):
        return _SKU.decode(memoryview(data)[len(_HEADER) :])
    return _sku_from_json(statejson.loads(data))


def encode_alerts(book: AlertBook) -> bytes:
    return _HEADER + _ENCODER.encode(book)


def decode_alerts(data: bytes) -> AlertBook:
    if _is_current(data):
        return _ALERTS.decode(memoryview(data)[len(_HEADER) :])
    return _alerts_from_json(statejson.loads(data))


def _is_current(data: bytes) -> bool:
    """True for format 1, False for format 0 (JSON); raises for anything else."""
    if data[: len(_HEADER)] == _HEADER:
        return True
    if data[:1] == _JSON:
        return False
    raise ValueError(f"stored state starts with {data[:2].hex() or '(nothing)'}: no known format")


# -- format 1 -----------------------------------------------------------------------------


def _exact(order: Order) -> Order:
    """A copy of the order whose datums MessagePack keeps exact (the order is untouched):
    msgspec writes a Decimal as text, which an Any-typed field would read back as str."""
    placement = order.placement
    if placement is None and not order.waiting and not order.lapsed:
        return order
    return replace(
        order,
        placement=None
        if placement is None
        else replace(placement, document=_datum(placement.document)),
        waiting=[_exact_waiting(w) for w in order.waiting],
        lapsed=[replace(x, waiting=_exact_waiting(x.waiting)) for x in order.lapsed],
    )


def _exact_waiting(waiting: Waiting) -> Waiting:
    return replace(
        waiting,
        event=replace(waiting.event, payload=_datum(waiting.event.payload)),
        record=_datum(waiting.record),
    )


def _datum(value: Any) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:
        return {k: _datum(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_datum(v) for v in value]
    if kind is Decimal:
        return msgspec.msgpack.Ext(_DECIMAL, str(value).encode("ascii"))
    if kind is datetime and value.tzinfo is not None:
        return value
    raise TypeError(f"a {kind.__name__} ({value!r}) in a datum cannot be stored exactly")


def _ext(code: int, data: memoryview) -> Any:
    if code == _DECIMAL:
        return Decimal(bytes(data).decode("ascii"))
    raise ValueError(f"stored state holds MessagePack extension type {code}, unknown here")


_ENCODER = msgspec.msgpack.Encoder()
_ORDER = msgspec.msgpack.Decoder(Order, ext_hook=_ext)
_SKU = msgspec.msgpack.Decoder(SkuStock)
_ALERTS = msgspec.msgpack.Decoder(AlertBook)


# -- format 0: JSON through dicts, read only ---------------------------------------------


def _order_from_json(data: dict[str, Any]) -> Order:
    u = statejson.untag
    placement = data["placement"]
    return Order(
        order_id=data["order_id"],
        placement=None if placement is None else Placement(**u(placement)),
        lines={i: Line(**u(line)) for i, line in data["lines"].items()},
        cancelled_ms=data["cancelled_ms"],
        cancel_reason=data["cancel_reason"],
        payments={i: _payment_from_json(p) for i, p in data["payments"].items()},
        fulfilments={i: Fulfilment(**f) for i, f in data["fulfilments"].items()},
        refunds={i: Refund(**u(r)) for i, r in data["refunds"].items()},
        waiting=[
            Waiting(
                event=InputEvent(
                    event_id=w["event"]["event_id"],
                    occurred_ms=w["event"]["occurred_ms"],
                    source=w["event"]["source"],
                    key=w["event"]["key"],
                    kind=w["event"]["kind"],
                    payload=u(w["event"]["payload"]),
                ),
                record=w["record"],
                first_seen_ms=w["first_seen_ms"],
                reason=w["reason"],
                detail=w["detail"],
            )
            for w in data["waiting"]
        ],
        seen=dict(data["seen"]),
        status=None if data["status"] is None else Status(data["status"]),
        transitions=[
            Transition(
                previous=None if t["previous"] is None else Status(t["previous"]),
                status=Status(t["status"]),
                cause_event_id=t["cause_event_id"],
                at_ms=t["at_ms"],
            )
            for t in data["transitions"]
        ],
        pruned_ms=data["pruned_ms"],
        issued=dict(data["issued"]),
        erp={i: ErpOutcome(**o) for i, o in data["erp"].items()},
    )


def _payment_from_json(data: dict[str, Any]) -> Payment:
    p = statejson.untag(data)
    return Payment(
        **{
            **p,
            "captures": {i: Movement(**m) for i, m in p["captures"].items()},
            "authorizations": {i: Movement(**m) for i, m in p["authorizations"].items()},
            "refunds": {i: Movement(**m) for i, m in p["refunds"].items()},
            "payouts": {i: Payout(**m) for i, m in p["payouts"].items()},
        }
    )


def _sku_from_json(data: dict[str, Any]) -> SkuStock:
    return SkuStock(
        sku=data["sku"],
        warehouses={
            w: WarehouseStock(
                on_hand=s["on_hand"],
                reserved=s["reserved"],
                snapshot_as_of=s["snapshot_as_of"],
                movements=[(t, d) for t, d in s["movements"]],
                horizon_ms=s["horizon_ms"],
                unit_cost=None if s["unit_cost"] is None else Decimal(s["unit_cost"]),
                cost_currency=s["cost_currency"],
                drift=s.get("drift"),  # absent from state written before drift was kept
            )
            for w, s in data["warehouses"].items()
        },
        claims={
            o: Claim(
                lines={i: ClaimLine(q, dict(r), b, s) for i, (q, r, b, s) in c["lines"].items()},
                refs=set(c["refs"]),
                released=c["released"],
                version=c["version"],
                updated_ms=c["updated_ms"],
            )
            for o, c in data["claims"].items()
        },
        seen=dict(data["seen"]),
        pruned_ms=data["pruned_ms"],
    )


def _alerts_from_json(data: dict[str, Any]) -> AlertBook:
    return AlertBook(
        entity_type=data["entity_type"],
        entity_id=data["entity_id"],
        alerts={
            t: Alert(**{**a, "severity": Severity(a["severity"])})
            for t, a in data["alerts"].items()
        },
        opened=dict(data["opened"]),
    )

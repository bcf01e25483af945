"""The input events as the rules see them: one envelope per record, whatever its topic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.domain import statejson
from streams.domain.money import UnknownCurrencyError, minor_unit


class Rejection(Exception):
    """Input the business cannot accept, with a machine-readable reason for the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_ONLY_KIND = {"account": "erpbridge.AccountChanged"}
"""By key field, the input envelopes whose event union has a single branch, which the codec
(and a JSON line) gives bare, without its name."""


@dataclass(frozen=True, slots=True)
class InputEvent:
    event_id: str
    occurred_ms: int
    source: str
    key: str
    """order_id for orders and payments, sku for inventory."""
    kind: str
    """Short name of the union branch: OrderPlaced, PaymentCaptured, StockSnapshot, ..."""
    payload: dict[str, Any]

    @classmethod
    def from_datum(cls, datum: dict[str, Any], key_field: str) -> InputEvent:
        """The codec's datum of an OrderEvent, PaymentEvent, InventoryEvent or CustomerEvent."""
        event = datum["event"]
        full_name, payload = event if isinstance(event, tuple) else (_ONLY_KIND[key_field], event)
        return cls(
            event_id=datum["event_id"],
            occurred_ms=to_ms(datum["occurred_at"]),
            source=datum["source"],
            key=datum[key_field],
            kind=full_name.rsplit(".", 1)[-1],
            payload=payload,
        )


def to_ms(value: datetime | int) -> int:
    if isinstance(value, int):
        return value
    return statejson.millis(value)


def check_currency(currency: str) -> None:
    try:
        minor_unit(currency)
    except UnknownCurrencyError as exc:
        raise Rejection("unknown-currency", str(exc)) from None

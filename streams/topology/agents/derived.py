"""The derived topics' values: what storefronts and analysts read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.domain.orders import Transition
from streams.domain.stock import Availability

SOURCE = "erpbridge"


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def status_changed(order_id: str, transition: Transition) -> dict[str, Any]:
    """erpbridge.OrderStatusChanged: a function of the stored transition alone (stable event
    id, the cause's time, the order's sequence number), so a re-sent transition is identical
    to its first copy."""
    return {
        "event_id": f"{order_id}:{transition.cause_event_id}:{transition.status.value}",
        "occurred_at": _time(transition.at_ms),
        "source": SOURCE,
        "order_id": order_id,
        "previous_status": None if transition.previous is None else transition.previous.value,
        "status": transition.status.value,
        "cause_event_id": transition.cause_event_id,
        "sequence": transition.sequence,
    }


def stock_availability(
    sku: str, availability: Availability, cause: str, at_ms: int
) -> dict[str, Any]:
    """erpbridge.StockAvailability, per warehouse and in total.

    Its event id and time are those of the change that produced the figures, which the
    stock's state keeps with them: a redelivered input re-sends the current figures, and
    that record is then identical to their first one. `cause` and `at_ms`, the input being
    processed, stand in only for figures without a recorded change (state kept before
    changes were recorded, until its next change).
    """
    cause, at_ms = availability.changed or (cause, at_ms)
    return {
        "event_id": f"{sku}:{cause}",
        "occurred_at": _time(at_ms),
        "source": SOURCE,
        "sku": sku,
        "on_hand": availability.on_hand,
        "reserved": availability.reserved,
        "available": availability.available,
        "warehouses": [
            {"warehouse_id": w, "on_hand": on_hand, "reserved": reserved, "available": available}
            for w, on_hand, reserved, available in availability.warehouses
        ],
    }

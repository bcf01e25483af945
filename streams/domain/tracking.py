"""Fulfilments that go back to the storefront an order was placed on, with their carrier and
tracking number, for the customer to see there: one per fulfilment, issued once.

An order placed through a storefront route (OrderPlaced.storefront) whose route pushes
tracking gets every fulfilment the storefront did not report itself: a fulfilment with the
placement's source came from the storefront (its own fulfilment webhook) and telling it
back would create it twice; and the storefront's report of a fulfilment erpbridge told it
about is recognised as that one's echo (streams.domain.orders), not more goods shipped. Like an ERP command, a push is recorded in the order's
`issued` when first handed on, and a redelivery hands every push on again, identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.domain.commands import SOURCE
from streams.domain.orders import Fulfilment, Order, storefront_push_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TrackingPolicy:
    routes: frozenset[str] = frozenset()
    """The storefront routes that get their orders' fulfilments (`push_tracking`)."""


@dataclass(frozen=True, slots=True)
class TrackingPush:
    route: str
    order_id: str
    fulfillment_id: str
    fulfilment: Fulfilment

    @property
    def push_id(self) -> str:
        return storefront_push_id(self.order_id, self.fulfillment_id)

    def to_datum(self) -> dict[str, Any]:
        """The erpbridge.StorefrontFulfilment datum."""
        f = self.fulfilment
        return {
            "event_id": self.push_id,
            "occurred_at": _EPOCH + timedelta(milliseconds=f.at_ms),
            "source": SOURCE,
            "route": self.route,
            "order_id": self.order_id,
            "fulfillment_id": self.fulfillment_id,
            "warehouse_id": f.warehouse,
            "carrier": f.carrier,
            "tracking_number": f.tracking_number,
            "lines": [{"sku": sku, "quantity": n} for sku, n in sorted(f.lines.items())],
        }


def tracking_pushes(
    order: Order, policy: TrackingPolicy, *, replay: bool = False
) -> list[TrackingPush]:
    """The pushes that became due (recorded as issued), or with `replay` all due so far."""
    placement = order.placement
    route = None if placement is None else placement.document.get("storefront")
    if placement is None or route not in policy.routes:
        return []
    pushes = []
    for fulfillment_id, fulfilment in sorted(
        order.fulfilments.items(), key=lambda item: (item[1].at_ms, item[0])
    ):
        if fulfilment.source == placement.source:
            continue
        push = TrackingPush(route, order.order_id, fulfillment_id, fulfilment)
        if replay or push.push_id not in order.issued:
            order.issued.setdefault(push.push_id, fulfilment.at_ms)
            pushes.append(push)
    return pushes

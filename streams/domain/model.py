"""The reference model: the topology's business rules run sequentially over an event log.

It calls the same rules the agents call; what it adds is order and bookkeeping: a stock
request is applied the moment its order event is, where the topology sends it through an
internal topic to the SKU's partition. With stock to spare that makes no difference to
the final state; when orders compete for the last units, which order gets them depends on
arrival order in both, and only the order-independent figures can be compared exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from streams.domain.events import InputEvent, Rejection
from streams.domain.messages import StockRequest
from streams.domain.orders import Order, OrderEffect, Transition
from streams.domain.policy import Policy
from streams.domain.routing import RoutingRules
from streams.domain.stock import Availability, SkuStock
from streams.topics import INVENTORY


@dataclass
class DeadLettered:
    event: InputEvent
    reason: str
    detail: str


@dataclass
class ReferenceModel:
    rules: RoutingRules
    policy: Policy = field(default_factory=Policy)
    orders: dict[str, Order] = field(default_factory=dict)
    stock: dict[str, SkuStock] = field(default_factory=dict)
    availability: dict[str, Availability] = field(default_factory=dict)
    """The latest availability emitted per SKU, as the compacted topic keeps it."""
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    dead_letters: list[DeadLettered] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def feed(self, topic: str, event: InputEvent, now_ms: int) -> str:
        """Apply one decoded input event from logical `topic`; the outcome's name."""
        try:
            if topic == INVENTORY:
                stock = self._stock(event.key)
                effect = stock.apply_event(event, self.rules, self.policy, now_ms)
                self._emit_availability(stock)
                outcome = effect.verdict.value
            else:
                order = self.orders.setdefault(event.key, Order(event.key))
                order_effect = order.apply_event(event, dict, self.rules, self.policy, now_ms)
                self._follow(order.order_id, order_effect, now_ms)
                outcome = order_effect.verdict.value
        except Rejection as rejection:
            self.dead_letters.append(DeadLettered(event, rejection.reason, rejection.detail))
            outcome = "dead_lettered"
        self.outcomes[outcome] += 1
        return outcome

    def expire(self, now_ms: int) -> None:
        for order in self.orders.values():
            self._follow(order.order_id, order.expire(now_ms, self.policy), now_ms)

    def _follow(self, order_id: str, effect: OrderEffect, now_ms: int) -> None:
        self.transitions += [(order_id, t) for t in effect.transitions]
        for dead in effect.dead:
            self.dead_letters.append(
                DeadLettered(dead.waiting.event, dead.rejection.reason, dead.rejection.detail)
            )
        for request in effect.requests:
            self._request(request, now_ms)

    def _request(self, request: StockRequest, now_ms: int) -> None:
        stock = self._stock(request.sku)
        effect = stock.apply_request(request, self.rules, self.policy, now_ms)
        for update in effect.updates:
            self.orders[update.order_id].apply_allocation(update)
        self._emit_availability(stock)

    def _stock(self, sku: str) -> SkuStock:
        return self.stock.setdefault(sku, SkuStock(sku))

    def _emit_availability(self, stock: SkuStock) -> None:
        self.availability[stock.sku] = stock.availability()

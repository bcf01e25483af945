"""The reference model: the topology's business rules run sequentially over an event log.

It calls the same rules the agents call; what it adds is order and bookkeeping: a stock
request is applied the moment its order event is, where the topology sends it through an
internal topic to the SKU's partition. With stock to spare that makes no difference to
the final state; when orders compete for the last units, which order gets them depends on
arrival order in both, and only the order-independent figures can be compared exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.domain.accounts import ACCOUNT_CHANGED, Sent, account_command
from streams.domain.alerts import (
    SKU,
    Alert,
    AlertBook,
    AlertPolicy,
    Finding,
    order_alerts,
    stock_findings,
)
from streams.domain.commands import Command, CommandPolicy, adjustment_command
from streams.domain.events import InputEvent, Rejection
from streams.domain.finance import FinanceMapping, JournalEntry
from streams.domain.followups import follow_ups, request_cost, require_rate
from streams.domain.messages import ErpOutcome, StockRequest
from streams.domain.orders import Order, OrderEffect, Transition, Verdict
from streams.domain.policy import Policy
from streams.domain.routing import RoutingRules
from streams.domain.stock import INVENTORY_EVENTS, Availability, SkuStock
from streams.domain.tracking import TrackingPolicy, TrackingPush, tracking_pushes


@dataclass
class DeadLettered:
    event: InputEvent
    reason: str
    detail: str


@dataclass
class ReferenceModel:
    rules: RoutingRules
    finance: FinanceMapping
    policy: Policy = field(default_factory=Policy)
    command_policy: CommandPolicy = field(default_factory=CommandPolicy)
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)
    tracking_policy: TrackingPolicy = field(default_factory=TrackingPolicy)
    orders: dict[str, Order] = field(default_factory=dict)
    stock: dict[str, SkuStock] = field(default_factory=dict)
    availability: dict[str, Availability] = field(default_factory=dict)
    """The latest availability emitted per SKU, as the compacted topic keeps it."""
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    dead_letters: list[DeadLettered] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    commands: dict[str, Command] = field(default_factory=dict)
    """Every ERP command issued, by id (before the dispatcher coalesces any)."""
    journal: dict[str, JournalEntry] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    """The latest state of every alert, by id, as the compacted topic keeps it."""
    tracking: dict[str, TrackingPush] = field(default_factory=dict)
    """Every fulfilment told to a storefront (storefront.fulfilments), by push id."""
    sent: dict[str, Sent] = field(default_factory=dict)
    """The last UpsertCustomer per storefront account."""
    _books: dict[tuple[str, str], AlertBook] = field(default_factory=dict)

    def feed(self, topic: str, event: InputEvent, now_ms: int) -> str:
        """Apply one decoded input event from logical `topic`; the outcome's name."""
        try:
            require_rate(event, self.finance)
            if event.kind == ACCOUNT_CHANGED:
                command, sent = account_command(
                    event, self.command_policy, self.sent.get(event.key)
                )
                if sent is not None:
                    self.sent[event.key] = sent
                if command is not None:
                    self.commands[command.command_id] = command
                outcome = "applied" if command is not None else "duplicate"
            elif event.kind in INVENTORY_EVENTS:
                stock = self._stock(event.key)
                effect = stock.apply_event(event, self.rules, self.policy, now_ms)
                adjustment = adjustment_command(event, self.command_policy)
                if adjustment is not None:
                    self.commands[adjustment.command_id] = adjustment
                self._stock_changed(stock, now_ms)
                outcome = effect.verdict.value
            else:
                order = self.orders.setdefault(event.key, Order(event.key))
                order_effect = order.apply_event(event, dict, self.rules, self.policy, now_ms)
                self._follow(order, order_effect, now_ms)
                outcome = order_effect.verdict.value
        except Rejection as rejection:
            self.dead_letters.append(DeadLettered(event, rejection.reason, rejection.detail))
            outcome = "dead_lettered"
        self.outcomes[outcome] += 1
        return outcome

    def answer(self, order_id: str, command_id: str, outcome: ErpOutcome, now_ms: int) -> None:
        """The ERP's answer to one of the order's commands, as the results agent hands it on:
        the order records it and its alerts are reconciled (a confirmed sales order
        resolves a captured payment's alert)."""
        order = self.orders[order_id]
        if order.apply_erp_result(command_id, outcome):
            self._order_changed(order, now_ms)

    def expire(self, now_ms: int) -> None:
        for order in self.orders.values():
            self._follow(order, order.expire(now_ms, self.policy), now_ms)

    def _follow(self, order: Order, effect: OrderEffect, now_ms: int) -> None:
        self.transitions += [(order.order_id, t) for t in effect.transitions]
        # A redelivery's dead letters are copies of ones recorded already.
        for dead in effect.dead if effect.verdict is not Verdict.DUPLICATE else ():
            self.dead_letters.append(
                DeadLettered(dead.waiting.event, dead.rejection.reason, dead.rejection.detail)
            )
        self._order_changed(order, now_ms, facts_changed=effect.verdict is not Verdict.WAITING)
        for request in effect.requests:
            self._request(request, now_ms)

    def _order_changed(self, order: Order, now_ms: int, *, facts_changed: bool = False) -> None:
        if facts_changed:
            handed_on = follow_ups(order, self.command_policy, self.finance)
            self.commands.update((c.command_id, c) for c in handed_on.commands)
            self.journal.update((e.entry_id, e) for e in handed_on.entries)
            self.tracking.update(
                (p.push_id, p) for p in tracking_pushes(order, self.tracking_policy)
            )
        self._alert(
            "order", order.order_id, order_alerts(order, self.alert_policy, now_ms)[0], now_ms
        )

    def _request(self, request: StockRequest, now_ms: int) -> None:
        stock = self._stock(request.sku)
        effect = stock.apply_request(request, self.rules, self.policy, now_ms)
        cost = (
            request_cost(stock, request, self.finance)
            if effect.verdict.value == "applied"
            else None
        )
        if cost is not None:
            self.journal[cost.entry_id] = cost
        for update in effect.updates:
            order = self.orders[update.order_id]
            order.apply_allocation(update)
            self._order_changed(order, now_ms)
        self._stock_changed(stock, now_ms)

    def _stock(self, sku: str) -> SkuStock:
        return self.stock.setdefault(sku, SkuStock(sku))

    def _stock_changed(self, stock: SkuStock, now_ms: int) -> None:
        self.availability[stock.sku] = stock.availability()
        self._alert(SKU, stock.sku, stock_findings(stock, self.alert_policy), now_ms)

    def _alert(
        self, entity_type: str, entity_id: str, findings: Mapping[str, Finding], now_ms: int
    ) -> None:
        book = self._books.setdefault((entity_type, entity_id), AlertBook(entity_type, entity_id))
        self.alerts.update((a.alert_id, a) for a in book.reconcile(findings, now_ms))

"""One order's state and lifecycle, built from order and payment events in any arrival order.

The state is a set of facts (placement, cancellation, payments, fulfilments, refunds), each
recorded once, and the lifecycle status is a function of those facts, so where the business
allows it the final state does not depend on the order events arrive in:
  - payments may arrive before their order; they are facts about the order id;
  - a fulfilment or refund that arrives before its order is placed waits in state;
  - a refund larger than what was captured so far waits for the capture, and a restock of
    more than was shipped so far waits for the shipment;
  - a waiting event that is still not applicable after `Policy.max_wait_ms` expires and goes
    to the dead-letter topic with the reason it waited for.
What the business does not allow goes to the dead-letter topic at once: an order without
lines, negative quantities or amounts, unknown currencies, a fulfilment of a SKU that was not
ordered or of more than is left to ship, a cancellation of a fully shipped order or a shipment
of a cancelled one (both need a person to decide), a refund larger than the order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, TypeVar

from streams.domain.events import InputEvent, Rejection, check_currency
from streams.domain.messages import AllocationUpdate, ErpOutcome, RequestKind, StockRequest
from streams.domain.policy import Policy, due, prune_seen
from streams.domain.routing import Destination, RoutingRules

ZERO = Decimal(0)


class Status(StrEnum):
    PLACED = "placed"
    HELD = "held"
    """Waits for approval before it reserves stock or reaches the ERP."""
    PAID = "paid"
    PARTLY_FULFILLED = "partly_fulfilled"
    FULFILLED = "fulfilled"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    PARTLY_REFUNDED = "partly_refunded"
    REFUNDED = "refunded"


class Verdict(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    WAITING = "waiting"


class _Wait(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Placement:
    event_id: str
    placed_ms: int
    currency: str
    total: Decimal
    channel: str
    customer_id: str
    customer_kind: str
    country: str
    region: str | None
    payment_terms: str
    purchase_order_number: str | None
    reserved: bool
    """Whether reservations were requested (not when the order was cancelled first)."""
    document: dict[str, Any]
    """The OrderPlaced payload as received: customer, addresses, lines with their taxes,
    discounts and shipping, which the ERP's sales order and the journal need."""
    source: str | None = None
    """Who reported the placement (the event's source): a fulfilment it reports too is the
    storefront's own, not one to tell it about."""
    approval_required: bool = False
    """Flagged by the storefront, or over its customer group's threshold when placed: the
    order reserves and reaches the ERP only once approved."""

    @property
    def destination(self) -> Destination:
        return Destination(self.channel, self.country, self.region)


@dataclass(frozen=True, slots=True)
class Approval:
    """Someone's decision on an order that waits for approval; the first one stands."""

    approved: bool
    by: str | None
    at_ms: int
    reason: str | None = None


@dataclass(slots=True)
class Line:
    sku: str
    quantity: int
    unit_price: Decimal
    discount: Decimal
    tax: Decimal
    fulfilled: int = 0
    refunded: int = 0
    restocked: int = 0
    reserved: dict[str, int] = field(default_factory=dict)
    backordered: int = 0
    allocation_version: int = 0


@dataclass(frozen=True, slots=True)
class Movement:
    """One capture or refund of a payment: the journal posts each on its own date."""

    amount: Decimal
    at_ms: int


@dataclass(frozen=True, slots=True)
class Payout:
    """The gateway's settlement of (part of) a payment, net of its fee."""

    gross: Decimal
    fee: Decimal
    net: Decimal
    at_ms: int


@dataclass(slots=True)
class Payment:
    gateway: str
    currency: str
    failed: Decimal = ZERO
    failures: int = 0
    first_seen_ms: int | None = None
    authorizations: dict[str, Movement] = field(default_factory=dict)
    """By authorization event id."""
    captures: dict[str, Movement] = field(default_factory=dict)
    """By capture event id."""
    refunds: dict[str, Movement] = field(default_factory=dict)
    """By refund id."""
    payouts: dict[str, Payout] = field(default_factory=dict)
    """By payout id."""

    # Loops, not sum() over a generator: the alert rules ask for these on every change.
    @property
    def authorized(self) -> Decimal:
        total = ZERO
        for x in self.authorizations.values():
            total += x.amount
        return total

    @property
    def captured(self) -> Decimal:
        total = ZERO
        for x in self.captures.values():
            total += x.amount
        return total

    @property
    def refunded(self) -> Decimal:
        total = ZERO
        for x in self.refunds.values():
            total += x.amount
        return total

    @property
    def fees(self) -> Decimal:
        total = ZERO
        for x in self.payouts.values():
            total += x.fee
        return total

    @property
    def settled(self) -> Decimal:
        total = ZERO
        for x in self.payouts.values():
            total += x.gross
        return total


@dataclass(slots=True)
class Fulfilment:
    warehouse: str
    lines: dict[str, int]
    at_ms: int
    carrier: str | None
    tracking_number: str | None
    source: str | None = None


@dataclass(slots=True)
class Refund:
    kind: str
    total: Decimal
    lines: dict[str, int]
    restock: bool
    warehouses: dict[str, str]
    """Per restocked SKU, the warehouse that receives it."""
    at_ms: int
    amounts: dict[str, Decimal] = field(default_factory=dict)
    """Per SKU, the amount refunded for its lines, tax included."""
    shipping_amount: Decimal | None = None


@dataclass(slots=True)
class Waiting:
    event: InputEvent
    record: dict[str, Any]
    """The original record, opaque to the rules, for the dead-letter topic if it expires."""
    first_seen_ms: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Transition:
    previous: Status | None
    status: Status
    cause_event_id: str
    at_ms: int
    sequence: int = 0
    """The transition's number within its order, from 1: its position in the order's
    transitions, so a re-sent copy carries the number of its first copy and a consumer can
    tell a stale copy from a newer transition. State written before transitions carried it
    is numbered by position when read (streams.domain.statecodec)."""


@dataclass(slots=True)
class Expired:
    waiting: Waiting
    rejection: Rejection


@dataclass(slots=True)
class Lapsed:
    """An event that waited and was dead-lettered, kept while what dead-lettered it (an
    event, or a tick) may be redelivered: a crash may have lost the dead letter while the
    order's state, without the event, was saved; the redelivery sends it again."""

    waiting: Waiting
    reason: str
    detail: str
    cause: str
    """The id of the event that dead-lettered it, or `tick_cause` of the tick."""
    at_ms: int


def tick_cause(now_ms: int) -> str:
    return f"tick@{now_ms}"


@dataclass(slots=True)
class OrderEffect:
    verdict: Verdict
    requests: list[StockRequest] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    resolved: list[Waiting] = field(default_factory=list)
    """Events that waited and applied now."""
    dead: list[Expired] = field(default_factory=list)
    """Events that waited and go to the dead-letter topic now."""
    reason: str | None = None


def storefront_push_id(order_id: str, fulfilment_id: str) -> str:
    """The id under which a fulfilment told to the storefront is recorded as issued."""
    return f"{order_id}/storefront-fulfilment/{fulfilment_id}"


@dataclass(slots=True)
class Order:
    order_id: str
    placement: Placement | None = None
    lines: dict[str, Line] = field(default_factory=dict)
    cancelled_ms: int | None = None
    cancel_reason: str | None = None
    payments: dict[str, Payment] = field(default_factory=dict)
    fulfilments: dict[str, Fulfilment] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    waiting: list[Waiting] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    status: Status | None = None
    transitions: list[Transition] = field(default_factory=list)
    pruned_ms: int = 0
    issued: dict[str, int] = field(default_factory=dict)
    """Command id -> creation time of every ERP command this order has issued, and of its
    pushes to the storefront (streams.domain.tracking)."""
    erp: dict[str, ErpOutcome] = field(default_factory=dict)
    """Command id -> the ERP's latest answer."""
    lapsed: list[Lapsed] = field(default_factory=list)
    ticked_ms: int = 0
    """The latest tick applied: a tick not after it is a redelivery (or from a worker whose
    clock is behind), and what was due by then has expired already."""
    echoes: dict[str, str] = field(default_factory=dict)
    """The storefront's fulfilment id -> the erpbridge fulfilment its report echoes."""
    approval: Approval | None = None

    # -- derived figures -------------------------------------------------------------------

    def _in_currency(self, attribute: str) -> Decimal:
        currency = self.placement.currency if self.placement else None
        total = ZERO
        for p in self.payments.values():
            if currency is None or p.currency == currency:
                total += getattr(p, attribute)
        return total

    @property
    def captured(self) -> Decimal:
        return self._in_currency("captured")

    @property
    def authorized(self) -> Decimal:
        return self._in_currency("authorized")

    @property
    def refunded_to_customer(self) -> Decimal:
        return sum((r.total for r in self.refunds.values()), ZERO)

    def derive_status(self) -> Status | None:
        placement = self.placement
        if placement is None:
            return None
        if self.cancelled_ms is not None:
            return Status.CANCELLED
        if self.held:
            return Status.HELD
        refunded = self.refunded_to_customer
        if refunded > 0:
            return Status.REFUNDED if refunded >= placement.total else Status.PARTLY_REFUNDED
        paid = self.captured >= placement.total
        if all(line.fulfilled >= line.quantity for line in self.lines.values()):
            return Status.CLOSED if paid else Status.FULFILLED
        if any(line.fulfilled for line in self.lines.values()):
            return Status.PARTLY_FULFILLED
        return Status.PAID if paid else Status.PLACED

    @property
    def held(self) -> bool:
        """Placed, waiting for approval, and neither approved nor rejected yet."""
        placement = self.placement
        return placement is not None and placement.approval_required and self.approval is None

    def next_deadline(self, policy: Policy) -> int | None:
        if not self.waiting:
            return None
        return min(w.first_seen_ms for w in self.waiting) + policy.max_wait_ms

    # -- rules -----------------------------------------------------------------------------

    def apply_event(
        self,
        event: InputEvent,
        record: Callable[[], dict[str, Any]],
        rules: RoutingRules,
        policy: Policy,
        now_ms: int,
    ) -> OrderEffect:
        """Apply one order or payment event; raises Rejection for input that is dead-lettered
        (and is not remembered, so a redelivery is rejected again). `record` gives the
        original record, kept only if the event has to wait."""
        if event.event_id in self.seen:
            return self._replay(event.event_id)
        _validate(event, rules.warehouses)
        before = self.status
        effect = OrderEffect(Verdict.APPLIED)
        try:
            applied = self._apply(event, effect.requests, rules, policy)
        except _Wait as wait:
            self.waiting.append(Waiting(event, record(), now_ms, wait.reason, wait.detail))
            effect = OrderEffect(Verdict.WAITING, reason=wait.reason)
        else:
            if not applied:
                effect.verdict = Verdict.DUPLICATE
            else:
                self._retry_waiting(effect, rules, policy)
                self._lapse(effect.dead, event.event_id, now_ms)
                self._transition(before, event.event_id, event.occurred_ms, effect)
        self.seen[event.event_id] = now_ms
        self._prune(now_ms, policy)
        return effect

    def _prune(self, now_ms: int, policy: Policy) -> None:
        if due(self.pruned_ms, now_ms):
            self.pruned_ms = now_ms
            prune_seen(self.seen, now_ms, policy.dedup_ttl_ms)
            self.lapsed = [x for x in self.lapsed if x.at_ms + policy.dedup_ttl_ms > now_ms]

    def _lapse(self, dead: list[Expired], cause: str, now_ms: int) -> None:
        self.lapsed += [
            Lapsed(d.waiting, d.rejection.reason, d.rejection.detail, cause, now_ms) for d in dead
        ]

    def _lapsed_by(self, cause: str) -> list[Expired]:
        return [
            Expired(x.waiting, Rejection(x.reason, x.detail))
            for x in self.lapsed
            if x.cause == cause
        ]

    def apply_allocation(self, update: AllocationUpdate) -> bool:
        """Record the stock's reservations of this order's lines of one SKU (latest version
        wins); False if it told nothing new."""
        applied = False
        for line_id, reservation in update.lines.items():
            line = self.lines.get(line_id)
            if line is None or update.version <= line.allocation_version:
                continue
            line.reserved = dict(reservation.reserved)
            line.backordered = reservation.backordered
            line.allocation_version = update.version
            applied = True
        return applied

    def apply_erp_result(self, command_id: str, outcome: ErpOutcome) -> bool:
        """Record the ERP's answer; False if it is not newer than the one recorded."""
        known = self.erp.get(command_id)
        if known is not None and (known.at_ms > outcome.at_ms or known == outcome):
            return False
        self.erp[command_id] = outcome
        return True

    def expire(self, now_ms: int, policy: Policy) -> OrderEffect:
        """Dead-letter the events that waited too long by `now_ms`, a tick's time."""
        cause = tick_cause(now_ms)
        if now_ms <= self.ticked_ms:
            return OrderEffect(Verdict.DUPLICATE, dead=self._lapsed_by(cause))
        self.ticked_ms = now_ms
        effect = OrderEffect(Verdict.APPLIED)
        keep: list[Waiting] = []
        for waiting in self.waiting:
            if waiting.first_seen_ms + policy.max_wait_ms <= now_ms:
                waited_s = (now_ms - waiting.first_seen_ms) // 1000
                effect.dead.append(
                    Expired(
                        waiting,
                        Rejection(
                            waiting.reason,
                            f"waited {waited_s}s, longer than the limit of "
                            f"{policy.max_wait_ms // 1000}s: {waiting.detail}",
                        ),
                    )
                )
            else:
                keep.append(waiting)
        self.waiting = keep
        self._lapse(effect.dead, cause, now_ms)
        self._prune(now_ms, policy)
        return effect

    def _replay(self, event_id: str) -> OrderEffect:
        """A redelivered event: send again what applying it sent, for receivers that lost it.

        A crash between applying an event and its outputs reaching the broker leaves the event
        applied in local state but its offset uncommitted; its redelivery must heal that.
        Every request is idempotent on the stock side, so all of the order's requests go again.
        The transitions it caused go again as they were first sent, then the order's latest
        transition if that is not already the last of them: redelivered events are replayed
        in whatever order they come, and the last status record must stay the current one.
        """
        if any(w.event.event_id == event_id for w in self.waiting):
            return OrderEffect(Verdict.DUPLICATE)
        transitions = [t for t in self.transitions if t.cause_event_id == event_id]
        if self.transitions and transitions[-1:] != self.transitions[-1:]:
            transitions.append(self.transitions[-1])
        return OrderEffect(
            Verdict.DUPLICATE,
            requests=self.all_requests(),
            transitions=transitions,
            dead=self._lapsed_by(event_id),
        )

    def all_requests(self) -> list[StockRequest]:
        requests: list[StockRequest] = []
        placement = self.placement
        if placement is None:
            return requests
        if placement.reserved:
            requests += self._reserve(placement)
        for fulfilment_id, fulfilment in self.fulfilments.items():
            requests += self._ship(fulfilment_id, fulfilment)
        for refund_id, refund in self.refunds.items():
            requests += self._restock(refund_id, refund)
        if placement.reserved and self.cancelled_ms is not None:
            requests += self._release(self.cancelled_ms)
        return requests

    def _transition(
        self, before: Status | None, cause: str, at_ms: int, effect: OrderEffect
    ) -> None:
        after = self.derive_status()
        if after is not None and after != before:
            transition = Transition(before, after, cause, at_ms, len(self.transitions) + 1)
            self.status = after
            self.transitions.append(transition)
            effect.transitions.append(transition)

    def _retry_waiting(self, effect: OrderEffect, rules: RoutingRules, policy: Policy) -> None:
        progress = True
        while progress and self.waiting:
            progress = False
            for waiting in list(self.waiting):
                try:
                    self._apply(waiting.event, effect.requests, rules, policy)
                except _Wait:
                    continue
                except Rejection as rejection:
                    effect.dead.append(Expired(waiting, rejection))
                else:
                    effect.resolved.append(waiting)
                self.waiting.remove(waiting)
                progress = True

    def _apply(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        """Apply the event's fact; False if the fact is already known (a business duplicate)."""
        handler = _HANDLERS[event.kind]
        return handler(self, event, requests, rules, policy)

    # -- order events ----------------------------------------------------------------------

    def _placed(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        if self.placement is not None:
            return False
        p = event.payload
        customer, ship_to = p["customer"], p["ship_to"]
        group = customer_group(customer)
        if group in policy.po_required_groups and not p.get("purchase_order_number"):
            raise Rejection(
                "po-number-required",
                f"customer {customer['customer_id']} ({group}) orders with a purchase-order "
                "number, and this order has none",
            )
        approval_required = _approval_required(p, policy)
        approved = self.approval is not None and self.approval.approved
        self.placement = placement = Placement(
            event_id=event.event_id,
            placed_ms=event.occurred_ms,
            currency=p["currency"],
            total=p["total"],
            channel=p["channel"],
            customer_id=customer["customer_id"],
            customer_kind=customer.get("kind", "CONSUMER"),
            country=ship_to["country"],
            region=ship_to.get("region"),
            payment_terms=p.get("payment_terms", "PREPAID"),
            purchase_order_number=p.get("purchase_order_number"),
            reserved=self.cancelled_ms is None and (not approval_required or approved),
            document=p,
            source=event.source,
            approval_required=approval_required,
        )
        for line in p["lines"]:
            self.lines[line["line_id"]] = Line(
                sku=line["sku"],
                quantity=line["quantity"],
                unit_price=line["unit_price"],
                discount=line["discount"],
                tax=sum((t["amount"] for t in line["tax_lines"]), ZERO),
            )
        if placement.reserved:
            requests += self._reserve(placement)
        return True

    def _cancelled(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        if self.cancelled_ms is not None:
            return False
        self._cancel(event.occurred_ms, event.payload.get("reason"), requests)
        return True

    def _cancel(self, at_ms: int, reason: str | None, requests: list[StockRequest]) -> None:
        if self.lines and all(line.fulfilled >= line.quantity for line in self.lines.values()):
            raise Rejection(
                "already-fulfilled",
                "every line has shipped, so the order cannot be cancelled; refund it instead",
            )
        self.cancelled_ms = at_ms
        self.cancel_reason = reason
        if self.placement is not None and self.placement.reserved:
            requests += self._release(at_ms)

    def _fulfilled(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        p = event.payload
        fulfilment_id = p["fulfillment_id"]
        if fulfilment_id in self.fulfilments or fulfilment_id in self.echoes:
            return False
        self._require_placement("fulfilment")
        if self.held:
            raise _Wait("awaiting-approval", "a fulfilment of an order that waits for approval")
        echoed = self._echo_of(event.source, p)
        if echoed is not None:
            self.echoes[fulfilment_id] = echoed
            return False
        if self.cancelled_ms is not None:
            raise Rejection(
                "order-cancelled",
                f"fulfilment {fulfilment_id} ships goods of a cancelled order",
            )
        shipped = _by_sku((item["sku"], item["quantity"]) for item in p["lines"])
        for sku, quantity in shipped.items():
            left = self._left_to_ship(sku, "fulfilment")
            if quantity > left:
                raise Rejection(
                    "over-fulfilment",
                    f"fulfilment {fulfilment_id} ships {quantity} of {sku}, but {left} are left "
                    "to ship",
                )
        for sku, quantity in shipped.items():
            lines = self._lines_of(sku)
            for line in lines:
                take = min(line.quantity - line.fulfilled, quantity)
                line.fulfilled += take
                quantity -= take
            _book_restock(lines, sum(line.restocked for line in lines))
        self.fulfilments[fulfilment_id] = fulfilment = Fulfilment(
            warehouse=p["warehouse_id"],
            lines=shipped,
            at_ms=event.occurred_ms,
            carrier=p.get("carrier"),
            tracking_number=p.get("tracking_number"),
            source=event.source,
        )
        requests += self._ship(fulfilment_id, fulfilment)
        return True

    def _echo_of(self, source: str, p: dict[str, Any]) -> str | None:
        """The fulfilment erpbridge told the storefront about (streams.domain.tracking) that
        this report from the storefront is: its own record of the same shipment, made by
        erpbridge's push, not more goods shipped. The same tracking number, or untracked
        and the same goods; each told fulfilment is echoed once."""
        if self.placement is None or source != self.placement.source:
            return None
        tracking = p.get("tracking_number")
        shipped = _by_sku((item["sku"], item["quantity"]) for item in p["lines"])
        echoed = set(self.echoes.values())
        for fulfilment_id, told in sorted(self.fulfilments.items()):
            if fulfilment_id in echoed:
                continue
            if storefront_push_id(self.order_id, fulfilment_id) not in self.issued:
                continue
            same = told.tracking_number == tracking if tracking else told.lines == shipped
            if same and (tracking or not told.tracking_number):
                return fulfilment_id
        return None

    def _refunded(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        p = event.payload
        refund_id = p["refund_id"]
        if refund_id in self.refunds:
            return False
        placement = self._require_placement("refund")
        if p["currency"] != placement.currency:
            raise Rejection(
                "currency-mismatch",
                f"refund {refund_id} is in {p['currency']}, the order in {placement.currency}",
            )
        quantities = _by_sku((line["sku"], line["quantity"]) for line in p["lines"])
        for sku, quantity in quantities.items():
            ordered = sum(line.quantity for line in self._lines_of(sku, "refund"))
            refunded = sum(line.refunded for line in self._lines_of(sku))
            if quantity + refunded > ordered:
                raise Rejection(
                    "over-refund",
                    f"refund {refund_id} returns {quantity} of {sku}; {ordered} were ordered "
                    f"and {refunded} already refunded",
                )
        total: Decimal = p["total"]
        already = self.refunded_to_customer
        if total + already > placement.total:
            raise Rejection(
                "refund-exceeds-order",
                f"refund {refund_id} of {total} {placement.currency} plus {already} already "
                f"refunded exceeds the order total {placement.total}",
            )
        if placement.payment_terms == "PREPAID" and total + already > self.captured:
            raise _Wait(
                "refund-exceeds-captured",
                f"refund {refund_id} of {total} {placement.currency} plus {already} already "
                f"refunded exceeds the {self.captured} captured so far",
            )
        warehouses: dict[str, str] = {}
        if p["restock"]:
            for sku, quantity in quantities.items():
                shipped = sum(line.fulfilled for line in self._lines_of(sku))
                restocked = sum(line.restocked for line in self._lines_of(sku))
                if quantity + restocked > shipped:
                    raise _Wait(
                        "restock-before-shipment",
                        f"refund {refund_id} restocks {quantity} of {sku}, but only {shipped} "
                        f"have shipped and {restocked} are already back",
                    )
                warehouses[sku] = p.get("warehouse_id") or self._return_warehouse(rules)
        for sku, quantity in quantities.items():
            lines = self._lines_of(sku)
            for line in lines:
                take = min(line.quantity - line.refunded, quantity)
                line.refunded += take
                quantity -= take
            if p["restock"]:
                _book_restock(lines, sum(line.restocked for line in lines) + quantities[sku])
        self.refunds[refund_id] = refund = Refund(
            kind=p.get("kind", "REFUND"),
            total=total,
            lines=quantities,
            restock=p["restock"],
            warehouses=warehouses,
            at_ms=event.occurred_ms,
            amounts=_by_sku((line["sku"], line["amount"]) for line in p["lines"]),
            shipping_amount=p.get("shipping_amount"),
        )
        requests += self._restock(refund_id, refund)
        return True

    def _approved(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        decision = Approval(True, event.payload.get("approved_by"), event.occurred_ms)
        if not self._undecided(decision):
            return False
        self.approval = decision
        placement = self.placement
        if placement is not None and not placement.reserved and self.cancelled_ms is None:
            placement.reserved = True
            requests += self._reserve(placement)
        return True

    def _rejected(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        p = event.payload
        by, reason = p.get("rejected_by"), p["reason"]
        decision = Approval(False, by, event.occurred_ms, reason)
        if not self._undecided(decision):
            return False
        if self.cancelled_ms is None:
            self._cancel(
                event.occurred_ms, f"rejected{f' by {by}' if by else ''}: {reason}", requests
            )
        self.approval = decision
        return True

    def _undecided(self, decision: Approval) -> bool:
        """True when no decision was taken yet; False when this one was (a business
        duplicate); Rejection when the other one was: the first decision stands."""
        known = self.approval
        if known is None:
            return True
        if known.approved == decision.approved:
            return False
        taken = "approved" if known.approved else "rejected"
        raise Rejection(
            "already-decided",
            f"order {self.order_id} was {taken}{f' by {known.by}' if known.by else ''} already",
        )

    # -- payment events --------------------------------------------------------------------

    def _payment(self, event: InputEvent) -> Payment:
        p = event.payload
        payment = self.payments.setdefault(
            p["payment_id"], Payment(p["gateway"], p["currency"], first_seen_ms=event.occurred_ms)
        )
        # The earliest event time, not the first to arrive: arrival order must not matter.
        payment.first_seen_ms = min(payment.first_seen_ms or event.occurred_ms, event.occurred_ms)
        if payment.currency != p["currency"]:
            raise Rejection(
                "currency-mismatch",
                f"payment {p['payment_id']} was in {payment.currency}, this event is in "
                f"{p['currency']}",
            )
        return payment

    def _authorized(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        self._payment(event).authorizations[event.event_id] = Movement(
            event.payload["amount"], event.occurred_ms
        )
        return True

    def _captured(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        self._payment(event).captures[event.event_id] = Movement(
            event.payload["amount"], event.occurred_ms
        )
        return True

    def _payment_refunded(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        p = event.payload
        payment = self._payment(event)
        if p["refund_id"] in payment.refunds:
            return False
        left = payment.captured - payment.refunded
        if p["amount"] > left:
            raise _Wait(
                "refund-exceeds-captured",
                f"payment {p['payment_id']} refunds {p['amount']} {p['currency']}, but only "
                f"{left} of it is captured and not yet refunded",
            )
        payment.refunds[p["refund_id"]] = Movement(p["amount"], event.occurred_ms)
        return True

    def _payment_failed(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        payment = self._payment(event)
        payment.failed += event.payload["amount"]
        payment.failures += 1
        return True

    def _settled(
        self, event: InputEvent, requests: list[StockRequest], rules: RoutingRules, policy: Policy
    ) -> bool:
        p = event.payload
        payment = self._payment(event)
        if p["payout_id"] in payment.payouts:
            return False
        payment.payouts[p["payout_id"]] = Payout(p["gross"], p["fee"], p["net"], event.occurred_ms)
        return True

    # -- helpers ---------------------------------------------------------------------------

    def _require_placement(self, what: str) -> Placement:
        if self.placement is None:
            raise _Wait("order-not-placed", f"a {what} arrived before the order was placed")
        return self.placement

    def _lines_of(self, sku: str, what: str | None = None) -> list[Line]:
        lines = [line for line in self.lines.values() if line.sku == sku]
        if not lines and what is not None:
            raise Rejection(
                "sku-not-ordered",
                f"the {what} names {sku}, which order {self.order_id} does not contain "
                f"(it has {', '.join(sorted({line.sku for line in self.lines.values()}))})",
            )
        return lines

    def _left_to_ship(self, sku: str, what: str) -> int:
        return sum(line.quantity - line.fulfilled for line in self._lines_of(sku, what))

    def _return_warehouse(self, rules: RoutingRules) -> str:
        """Where a return that names no warehouse goes: the order's first-choice warehouse.

        Not "the warehouse that shipped it": with split shipments that would depend on which
        fulfilment arrived first.
        """
        assert self.placement is not None
        return rules.preference(self.placement.destination)[0]

    def _skus(self) -> list[str]:
        return sorted({line.sku for line in self.lines.values()})

    def _reserve(self, placement: Placement) -> list[StockRequest]:
        return [
            StockRequest(
                kind=RequestKind.RESERVE,
                order_id=self.order_id,
                sku=sku,
                ref="",
                at_ms=placement.placed_ms,
                lines=tuple(
                    (line_id, line.quantity)
                    for line_id, line in self.lines.items()
                    if line.sku == sku
                ),
                destination=placement.destination,
            )
            for sku in self._skus()
        ]

    def _release(self, at_ms: int) -> list[StockRequest]:
        return [
            StockRequest(RequestKind.RELEASE, self.order_id, sku, "", at_ms) for sku in self._skus()
        ]

    @property
    def _purchase_order_number(self) -> str | None:
        return None if self.placement is None else self.placement.purchase_order_number

    def _ship(self, ref: str, fulfilment: Fulfilment) -> list[StockRequest]:
        return [
            StockRequest(
                RequestKind.SHIP,
                self.order_id,
                sku,
                ref,
                fulfilment.at_ms,
                quantity=quantity,
                warehouse=fulfilment.warehouse,
                purchase_order_number=self._purchase_order_number,
            )
            for sku, quantity in sorted(fulfilment.lines.items())
        ]

    def _restock(self, ref: str, refund: Refund) -> list[StockRequest]:
        if not refund.restock:
            return []
        return [
            StockRequest(
                RequestKind.RESTOCK,
                self.order_id,
                sku,
                ref,
                refund.at_ms,
                quantity=refund.lines[sku],
                warehouse=warehouse,
                purchase_order_number=self._purchase_order_number,
            )
            for sku, warehouse in sorted(refund.warehouses.items())
            if refund.lines[sku] > 0
        ]


_HANDLERS = {
    "OrderPlaced": Order._placed,
    "OrderCancelled": Order._cancelled,
    "OrderFulfilled": Order._fulfilled,
    "OrderRefunded": Order._refunded,
    "OrderApproved": Order._approved,
    "OrderRejected": Order._rejected,
    "PaymentAuthorized": Order._authorized,
    "PaymentCaptured": Order._captured,
    "PaymentRefunded": Order._payment_refunded,
    "PaymentFailed": Order._payment_failed,
    "PaymentSettled": Order._settled,
}


def customer_group(customer: dict[str, Any]) -> str:
    """The group the customer's orders are judged by: its own, else its kind."""
    group: str = customer.get("group") or customer.get("kind", "CONSUMER")
    return group


def _approval_required(placed: dict[str, Any], policy: Policy) -> bool:
    """Whether an OrderPlaced waits for approval: flagged, or its total above the threshold of
    its customer's group (the kind when it names none) in its currency."""
    if placed.get("requires_approval"):
        return True
    limit = policy.approval_thresholds.get(customer_group(placed["customer"]), {}).get(
        placed["currency"]
    )
    return limit is not None and placed["total"] > limit


def _book_restock(lines: list[Line], units: int) -> None:
    """Restocked units of a SKU booked on its lines in line order, each up to what it
    shipped: a function of the totals, so neither the order refunds and fulfilments apply in
    nor which refund restocks decides which line shows them (restocks never exceed what
    shipped, checked per SKU before they apply)."""
    for line in lines:
        line.restocked = min(line.fulfilled, units)
        units -= line.restocked


_N = TypeVar("_N", int, Decimal)


def _by_sku(pairs: Iterable[tuple[str, _N]]) -> dict[str, _N]:
    totals: dict[str, _N] = {}
    for sku, value in pairs:
        totals[sku] = totals[sku] + value if sku in totals else value
    return totals


def _validate(event: InputEvent, warehouses: tuple[str, ...]) -> None:
    """Checks that need nothing but the event itself."""
    p = event.payload
    kind = event.kind
    if kind not in _HANDLERS:
        raise Rejection("unknown-event", f"event {kind} is not handled")
    if "currency" in p:
        check_currency(p["currency"])
    lines = p.get("lines", [])
    if kind in ("OrderPlaced", "OrderFulfilled") and not lines:
        raise Rejection("no-lines", f"the {kind} event has no lines")
    minimum = 0 if kind == "OrderRefunded" else 1
    for i, line in enumerate(lines):
        if line["quantity"] < minimum:
            raise Rejection(
                "negative-quantity",
                f"lines[{i}].quantity is {line['quantity']}; it must be at least {minimum}",
            )
    for path, amount in _amounts(p):
        if amount < 0:
            raise Rejection("negative-amount", f"{path} is {amount}")
    warehouse = p.get("warehouse_id") if kind.startswith("Order") else None
    if warehouse is not None and warehouse not in warehouses:
        raise Rejection(
            "unknown-warehouse",
            f"warehouse_id {warehouse!r} is not in the routing rules ({', '.join(warehouses)})",
        )
    if kind == "OrderPlaced":
        ids = [line["line_id"] for line in lines]
        if len(set(ids)) != len(ids):
            raise Rejection("duplicate-line", f"line ids repeat: {ids}")
        if p.get("payment_terms") == "ON_ACCOUNT" and not p.get("purchase_order_number"):
            raise Rejection(
                "missing-purchase-order", "an order on account needs a purchase_order_number"
            )
    if kind == "PaymentSettled" and p["gross"] - p["fee"] != p["net"]:
        raise Rejection(
            "settlement-mismatch", f"net {p['net']} is not gross {p['gross']} - fee {p['fee']}"
        )


_MONEY_FIELDS = ("amount", "total", "fee", "gross", "net", "shipping_amount")
_LINE_MONEY_FIELDS = ("unit_price", "discount", "amount")


def _amounts(payload: dict[str, Any]) -> list[tuple[str, Decimal]]:
    found = [(name, payload[name]) for name in _MONEY_FIELDS if payload.get(name) is not None]
    for i, line in enumerate(payload.get("lines", [])):
        found += [(f"lines[{i}].{name}", line[name]) for name in _LINE_MONEY_FIELDS if name in line]
        found += [
            (f"lines[{i}].tax_lines[{j}].amount", tax["amount"])
            for j, tax in enumerate(line.get("tax_lines", []))
        ]
    return found

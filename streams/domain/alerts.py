"""Reconciliation alerts: rules that compare the facts erpbridge holds, and the state that
makes each alert open once and resolve once.

A rule is a pure function of one entity's facts (an order, a SKU's stock, an ERP command's
latest outcome) and the time. It returns the findings that hold now, by alert type. An
`AlertBook` per entity turns successive findings into changes: a finding with no open alert
of its type opens one, an open alert whose finding is gone resolves, anything else is
silent, so a timer may re-run the rules every tick without repeating a message. An alert is
state: the topic is compacted by alert id, and the latest record of an id is its status.

Alert ids are `<type>/<entity id>/<n>`, n counting the alerts of that type on that entity,
so a condition that clears and comes back is a new alert and the old one stays resolved.

Time-based findings only ever appear with time, never disappear with it: each rule knows the
time from which its finding holds if the facts stay as they are, which is what the findings
compare with `now_ms` and what `order_next_check_ms` schedules the next tick by. Those times
are business time: a limit counts from the stamp of the fact it waits on, so a stamp behind
the worker's clock brings the finding forward and one ahead holds it back by the skew. A
finding that holds at once (an over-capture, a capture in another currency, a backorder)
needs no time at all: it holds as soon as the fact behind it is known, whatever the fact's
stamp, since a stamp ahead of the worker's clock (a skewed shop or gateway clock) must not
hold it back until a later tick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from streams.domain.commands import SOURCE, sales_order_id
from streams.domain.messages import ErpOutcome, StorefrontOutcome
from streams.domain.money import quantize_minor
from streams.domain.orders import ZERO, Order
from streams.domain.stock import SkuStock

if TYPE_CHECKING:
    from streams.ops.settings import Settings

MINUTE_MS = 60_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Alert types.
PAYMENT_WITHOUT_SALES_ORDER = "payment-without-sales-order"
ORDER_WITHOUT_PAYMENT = "order-without-payment"
AMOUNT_MISMATCH = "amount-mismatch"
PAYMENT_FOR_UNKNOWN_ORDER = "payment-for-unknown-order"
BACKORDER = "backorder"
APPROVAL_OVERDUE = "approval-overdue"
OVERSOLD = "oversold"
STOCK_DRIFT = "stock-drift"
ERP_COMMAND_FAILED = "erp-command-failed"
STOREFRONT_LEVEL_REFUSED = "storefront-level-refused"
STOREFRONT_FULFILMENT_REFUSED = "storefront-fulfilment-refused"
STOREFRONT_PRODUCT_REFUSED = "storefront-product-refused"
STOREFRONT_CUSTOMER_REFUSED = "storefront-customer-refused"

# Entity types: what an AlertBook, and each alert's entity_id, is about.
ORDER = "order"
SKU = "sku"
ERP_COMMAND = "erp-command"
STOREFRONT_LEVEL = "storefront-level"
"""A stock level on a storefront: `<route>:<sku>@<warehouse>`."""
STOREFRONT_FULFILMENT = "storefront-fulfilment"
"""A fulfilment told to a storefront: `<route>:<order id>/<fulfilment id>`."""
STOREFRONT_PRODUCT = "storefront-product"
"""A product pushed to a storefront: `<route>:<sku>`."""
STOREFRONT_CUSTOMER = "storefront-customer"
"""A customer pushed to a storefront: `<route>:<customer id>`."""


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """The alerts' time limits (ms) and tolerances, built from Settings by the agents."""

    sales_order_ms: int = 15 * MINUTE_MS
    """Captured payment with no sales order confirmed by the ERP after this long."""
    payment_ms: int = 60 * MINUTE_MS
    """Prepaid order with no payment after this long; also the grace before under-capture."""
    unknown_order_ms: int = 30 * MINUTE_MS
    """Payment for an order never placed after this long."""
    approval_ms: int = 24 * 60 * MINUTE_MS
    """An order that waits for approval, neither approved nor rejected after this long."""
    amount_tolerance: Decimal = Decimal("0.01")
    """How far the captured amount may differ from the order total, in the order's currency."""
    drift_tolerance: int = 0
    """Units an ERP snapshot's on hand may differ from erpbridge's."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(
            sales_order_ms=int(settings.alert_sales_order_minutes * MINUTE_MS),
            payment_ms=int(settings.alert_payment_minutes * MINUTE_MS),
            unknown_order_ms=int(settings.alert_unknown_order_minutes * MINUTE_MS),
            approval_ms=int(settings.alert_approval_minutes * MINUTE_MS),
            amount_tolerance=settings.alert_amount_tolerance,
            drift_tolerance=settings.alert_drift_tolerance,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition a rule found: what an alert of its type opens with."""

    severity: Severity
    summary: str
    evidence: dict[str, str]
    """The figures that prove it: amounts with their currency, times (ISO 8601 UTC), ids."""


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    alert_type: str
    entity_type: str
    entity_id: str
    severity: Severity
    summary: str
    evidence: dict[str, str]
    first_seen_ms: int
    """When a reconcile first found the condition."""
    resolved_ms: int | None = None

    @property
    def status(self) -> str:
        return "OPEN" if self.resolved_ms is None else "RESOLVED"

    def to_datum(self) -> dict[str, Any]:
        """The erpbridge.ReconciliationAlert datum of this alert's current state."""
        if self.resolved_ms is None:
            event_id, occurred_ms = f"{self.alert_id}/open", self.first_seen_ms
        else:
            event_id, occurred_ms = f"{self.alert_id}/resolved", self.resolved_ms
        return {
            "event_id": event_id,
            "occurred_at": _utc(occurred_ms),
            "source": SOURCE,
            "alert_id": self.alert_id,
            "alert_type": self.alert_type,
            "status": self.status,
            "severity": self.severity.value,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "first_seen_at": _utc(self.first_seen_ms),
            "resolved_at": None if self.resolved_ms is None else _utc(self.resolved_ms),
            "summary": self.summary,
            # Sorted: an Avro map is encoded in the dict's order, and stored books come back
            # with their keys sorted, so a re-sent alert is byte for byte its first copy.
            "evidence": dict(sorted(self.evidence.items())),
        }


@dataclass(slots=True)
class AlertBook:
    """The alerts of one entity (an order, a SKU, an ERP command)."""

    entity_type: str
    entity_id: str
    alerts: dict[str, Alert] = field(default_factory=dict)
    """By alert type, the latest alert of that type, open or resolved."""
    opened: dict[str, int] = field(default_factory=dict)
    """By alert type, how many alerts of that type have opened: the n of their ids."""

    def reconcile(self, findings: Mapping[str, Finding], now_ms: int) -> list[Alert]:
        """Open an alert per new finding and resolve each open alert whose finding is gone;
        returns only those changes. An open alert keeps the severity and evidence it opened
        with: re-sending it whenever a figure moved would be the repetition alerts avoid."""
        changes: list[Alert] = []
        for alert_type in sorted(self.alerts.keys() | findings.keys()):
            latest = self.alerts.get(alert_type)
            open_alert = latest if latest is not None and latest.resolved_ms is None else None
            found = alert_type in findings
            if found and open_alert is None:
                finding = findings[alert_type]
                n = self.opened[alert_type] = self.opened.get(alert_type, 0) + 1
                change = Alert(
                    alert_id=f"{alert_type}/{self.entity_id}/{n}",
                    alert_type=alert_type,
                    entity_type=self.entity_type,
                    entity_id=self.entity_id,
                    severity=finding.severity,
                    summary=finding.summary,
                    evidence=dict(finding.evidence),
                    first_seen_ms=now_ms,
                )
            elif not found and open_alert is not None:
                change = replace(open_alert, resolved_ms=now_ms)
            else:
                continue
            self.alerts[alert_type] = change
            changes.append(change)
        return changes

    def current(self) -> list[Alert]:
        """Every alert's current state, to send again when the input that changed it is
        redelivered after a crash (the records are identical, so receivers are unaffected)."""
        return sorted(self.alerts.values(), key=lambda alert: alert.alert_id)


# -- order rules --------------------------------------------------------------------------

_Held = tuple[int | None, Callable[[], Finding]]
"""The time from which a finding holds while the order's facts stay as they are (None: as
soon as its facts are known), and how to write it out."""


class _Findings(Mapping[str, Finding]):
    """Findings by alert type, each written out (summary and evidence) only when read: the
    rules run on every change of an order, and an alert reads its finding once, to open."""

    __slots__ = ("_found", "_write")

    def __init__(self, write: dict[str, Callable[[], Finding]]) -> None:
        self._write = write
        self._found: dict[str, Finding] = {}

    def __getitem__(self, alert_type: str) -> Finding:
        finding = self._found.get(alert_type)
        if finding is None:
            finding = self._found[alert_type] = self._write[alert_type]()
        return finding

    def __contains__(self, alert_type: object) -> bool:
        return alert_type in self._write

    def __iter__(self) -> Iterator[str]:
        return iter(self._write)

    def __len__(self) -> int:
        return len(self._write)


def order_findings(order: Order, policy: AlertPolicy, now_ms: int) -> dict[str, Finding]:
    return dict(order_alerts(order, policy, now_ms)[0])


def order_next_check_ms(order: Order, policy: AlertPolicy, now_ms: int) -> int | None:
    """The earliest time after `now_ms` at which a finding appears unless new facts arrive;
    None when time alone changes nothing."""
    return order_alerts(order, policy, now_ms)[1]


def order_alerts(
    order: Order, policy: AlertPolicy, now_ms: int
) -> tuple[Mapping[str, Finding], int | None]:
    """`order_findings` and `order_next_check_ms` from one run of the rules. The findings
    are written out from the order when read: read them before it changes again."""
    findings: dict[str, Callable[[], Finding]] = {}
    later: int | None = None
    for alert_type, (since_ms, write) in _order_holds(order, policy).items():
        if since_ms is None or since_ms <= now_ms:
            findings[alert_type] = write
        elif later is None or since_ms < later:
            later = since_ms
    return _Findings(findings), later


def _order_holds(order: Order, policy: AlertPolicy) -> dict[str, _Held]:
    holds: dict[str, _Held] = {}
    for alert_type, rule in _ORDER_RULES.items():
        held = rule(order, policy)
        if held is not None:
            holds[alert_type] = held
    return holds


def _payment_without_sales_order(order: Order, policy: AlertPolicy) -> _Held | None:
    """Money captured in the order's currency and still held (not refunded in full), the
    order not cancelled, and the ERP has not confirmed its sales order N minutes after the
    first capture (or the approval of an order that waited for one; a held order owes none).
    Resolves when the ERP confirms, or the order is cancelled, or the payments
    are refunded in full: then no sales order is owed for the money."""
    placement = order.placement
    # A held order owes no sales order until it is approved: approval-overdue watches it.
    if placement is None or order.cancelled_ms is not None or order.held:
        return None
    currency = placement.currency
    payments = [p for p in order.payments.values() if p.currency == currency]
    captures = [c.at_ms for p in payments for c in p.captures.values()]
    refunded = sum((p.refunded for p in payments), ZERO)
    held = order.captured - refunded
    if not captures or held <= 0:
        return None
    command_id = sales_order_id(order.order_id)
    outcome = order.erp.get(command_id)
    if outcome is not None and outcome.succeeded:
        return None
    first = min(captures)
    if placement.approval_required and order.approval is not None:
        first = max(first, order.approval.at_ms)  # no sales order was owed before

    def finding() -> Finding:
        return Finding(
            Severity.CRITICAL,
            f"{_money(held, currency)} captured for order {order.order_id}, but the ERP has "
            f"not confirmed its sales order {_minutes(policy.sales_order_ms)} minutes after the "
            "first capture",
            {
                "order_id": order.order_id,
                "captured": _money(order.captured, currency),
                "refunded": _money(refunded, currency),
                "first_captured_at": _iso(first),
                "sales_order_command_id": command_id,
                "erp_answer": _answer(outcome),
                "limit_minutes": _minutes(policy.sales_order_ms),
            },
        )

    return first + policy.sales_order_ms, finding


def _order_without_payment(order: Order, policy: AlertPolicy) -> _Held | None:
    """A prepaid order, not cancelled, with a total to pay and nothing authorized or
    captured in any currency M minutes after it was placed (a payment in the wrong currency
    is an amount mismatch instead). Resolves on any authorization or capture, or a
    cancellation."""
    placement = order.placement
    if (
        placement is None
        or placement.payment_terms != "PREPAID"
        or order.cancelled_ms is not None
        or placement.total <= 0
        or any(p.authorized > 0 or p.captured > 0 for p in order.payments.values())
    ):
        return None

    def finding() -> Finding:
        return Finding(
            Severity.WARNING,
            f"prepaid order {order.order_id} of {_money(placement.total, placement.currency)} "
            f"has no payment {_minutes(policy.payment_ms)} minutes after it was placed",
            {
                "order_id": order.order_id,
                "total": _money(placement.total, placement.currency),
                "placed_at": _iso(placement.placed_ms),
                "failed_payment_attempts": str(sum(p.failures for p in order.payments.values())),
                "limit_minutes": _minutes(policy.payment_ms),
            },
        )

    return placement.placed_ms + policy.payment_ms, finding


def _amount_mismatch(order: Order, policy: AlertPolicy) -> _Held | None:
    """Gross captures against the order total, both rounded to the currency's minor unit,
    refunds aside (they change neither). A capture in another currency than the order's, or
    more captured than the total beyond the tolerance, holds from that capture on (CRITICAL:
    the customer paid too much or in the wrong money). Less captured than the total beyond
    the tolerance holds M minutes after placement, and only for prepaid orders where
    something was captured (WARNING): partial captures may still be coming, nothing captured
    at all is order-without-payment, and on account the customer pays by invoice. Resolves
    when the figures agree or the order is cancelled."""
    placement = order.placement
    if placement is None or order.cancelled_ms is not None:
        return None
    currency = placement.currency
    total = quantize_minor(placement.total, currency)
    captured = quantize_minor(order.captured, currency)

    def evidence() -> dict[str, str]:
        return {
            "order_id": order.order_id,
            "total": _money(total, currency),
            "captured": _money(captured, currency),
            "difference": _money(captured - total, currency),
            "tolerance": f"{policy.amount_tolerance} {currency}",
        }

    foreign = [p for p in order.payments.values() if p.currency != currency and p.captures]
    if foreign:
        by_currency: dict[str, Decimal] = {}
        for p in foreign:
            by_currency[p.currency] = by_currency.get(p.currency, ZERO) + p.captured

        def foreign_capture() -> Finding:
            proof = evidence()
            for other, amount in sorted(by_currency.items()):
                proof[f"captured_{other}"] = _money(amount, other)
            return Finding(
                Severity.CRITICAL,
                f"order {order.order_id} is in {currency}, but payments were captured in "
                f"{', '.join(sorted(by_currency))}",
                proof,
            )

        return None, foreign_capture
    if captured - total > policy.amount_tolerance:
        return None, lambda: Finding(
            Severity.CRITICAL,
            f"{_money(captured, currency)} captured for order {order.order_id}, more than its "
            f"total of {_money(total, currency)}",
            evidence(),
        )
    if (
        total - captured > policy.amount_tolerance
        and any(p.captures for p in order.payments.values())
        and placement.payment_terms == "PREPAID"
    ):

        def under_capture() -> Finding:
            proof = evidence()
            proof["placed_at"] = _iso(placement.placed_ms)
            proof["grace_minutes"] = _minutes(policy.payment_ms)
            return Finding(
                Severity.WARNING,
                f"only {_money(captured, currency)} captured for order {order.order_id} of "
                f"{_money(total, currency)}, {_minutes(policy.payment_ms)} minutes after it was "
                "placed",
                proof,
            )

        return placement.placed_ms + policy.payment_ms, under_capture
    return None


def _payment_for_unknown_order(order: Order, policy: AlertPolicy) -> _Held | None:
    """Payments for an order id that has not been placed T minutes after the first payment
    event; CRITICAL when money was captured, else WARNING. Resolves when the order is placed."""
    if order.placement is not None:
        return None
    seen = [p.first_seen_ms for p in order.payments.values() if p.first_seen_ms is not None]
    if not seen:
        return None
    first = min(seen)

    def finding() -> Finding:
        evidence = {
            "order_id": order.order_id,
            "first_payment_at": _iso(first),
            "limit_minutes": _minutes(policy.unknown_order_ms),
        }
        for payment_id, p in sorted(order.payments.items()):
            evidence[f"payment.{payment_id}"] = (
                f"{p.gateway}: authorized {_money(p.authorized, p.currency)}, "
                f"captured {_money(p.captured, p.currency)}"
            )
        captured = any(p.captured > 0 for p in order.payments.values())
        return Finding(
            Severity.CRITICAL if captured else Severity.WARNING,
            f"payments for order {order.order_id}, which has not been placed "
            f"{_minutes(policy.unknown_order_ms)} minutes after the first",
            evidence,
        )

    return first + policy.unknown_order_ms, finding


def _backorder(order: Order, policy: AlertPolicy) -> _Held | None:
    """Lines of an order that is not cancelled with units still to ship that the stock could
    not reserve (from the stock's allocation updates). Resolves when none are left."""
    placement = order.placement
    if placement is None or order.cancelled_ms is not None:
        return None
    short = {
        line_id: line
        for line_id, line in sorted(order.lines.items())
        if line.backordered > 0 and line.fulfilled < line.quantity
    }
    if not short:
        return None

    def finding() -> Finding:
        units = sum(line.backordered for line in short.values())
        evidence = {"order_id": order.order_id}
        for line_id, line in short.items():
            evidence[f"line.{line_id}"] = (
                f"{line.sku}: {line.backordered} of {line.quantity} backordered, reserved "
                f"{_reservation(line.reserved)}"
            )
        return Finding(
            Severity.WARNING,
            f"order {order.order_id} has {units} units backordered on {len(short)} lines",
            evidence,
        )

    return None, finding


def _approval_overdue(order: Order, policy: AlertPolicy) -> _Held | None:
    """An order that waits for approval (it reserves nothing and the ERP has not heard of
    it) with no decision M minutes after it was placed. Resolves when it is approved,
    rejected or cancelled."""
    placement = order.placement
    if placement is None or not order.held or order.cancelled_ms is not None:
        return None

    def finding() -> Finding:
        return Finding(
            Severity.WARNING,
            f"order {order.order_id} of {_money(placement.total, placement.currency)} has "
            f"waited for approval {_minutes(policy.approval_ms)} minutes since it was placed",
            {
                "order_id": order.order_id,
                "total": _money(placement.total, placement.currency),
                "customer_id": placement.customer_id,
                "placed_at": _iso(placement.placed_ms),
                "flagged_by_storefront": str(bool(placement.document.get("requires_approval"))),
                "limit_minutes": _minutes(policy.approval_ms),
            },
        )

    return placement.placed_ms + policy.approval_ms, finding


_ORDER_RULES: dict[str, Callable[[Order, AlertPolicy], _Held | None]] = {
    PAYMENT_WITHOUT_SALES_ORDER: _payment_without_sales_order,
    ORDER_WITHOUT_PAYMENT: _order_without_payment,
    AMOUNT_MISMATCH: _amount_mismatch,
    PAYMENT_FOR_UNKNOWN_ORDER: _payment_for_unknown_order,
    BACKORDER: _backorder,
    APPROVAL_OVERDUE: _approval_overdue,
}


# -- stock and command rules --------------------------------------------------------------


def stock_findings(stock: SkuStock, policy: AlertPolicy) -> dict[str, Finding]:
    """Oversold: available below zero at some warehouse (a snapshot found less than is
    reserved); resolved when every warehouse covers its reservations again. Stock drift: the
    latest snapshot of some warehouse differed from erpbridge's on hand as of its time by
    more than the tolerance; resolved when later snapshots agree."""
    findings: dict[str, Finding] = {}
    oversold = {w: s for w, s in sorted(stock.warehouses.items()) if s.available < 0}
    if oversold:
        findings[OVERSOLD] = Finding(
            Severity.CRITICAL,
            f"{stock.sku} is oversold by {-sum(s.available for s in oversold.values())} units "
            f"at {', '.join(oversold)}",
            {"sku": stock.sku}
            | {
                f"warehouse.{w}": f"on hand {s.on_hand}, reserved {s.reserved}, "
                f"available {s.available}"
                for w, s in oversold.items()
            },
        )
    drifted = {
        w: (s.drift, s.snapshot_as_of)
        for w, s in sorted(stock.warehouses.items())
        if s.drift is not None
        and s.snapshot_as_of is not None
        and abs(s.drift) > policy.drift_tolerance
    }
    if drifted:
        findings[STOCK_DRIFT] = Finding(
            Severity.WARNING,
            f"the ERP's on hand of {stock.sku} differs from erpbridge's at {', '.join(drifted)}",
            {"sku": stock.sku, "tolerance_units": str(policy.drift_tolerance)}
            | {
                f"warehouse.{w}": f"ERP snapshot as of {_iso(as_of)} is {drift:+d} units "
                "from erpbridge's on hand then"
                for w, (drift, as_of) in drifted.items()
            },
        )
    return findings


def command_findings(command_id: str, outcome: ErpOutcome) -> dict[str, Finding]:
    """A failed command while its latest result is a permanent failure; a later result that
    is not one (a success, or a retry under way) resolves it."""
    if outcome.succeeded or not outcome.permanent:
        return {}
    return {
        ERP_COMMAND_FAILED: Finding(
            Severity.CRITICAL,
            f"ERP command {command_id} failed permanently: {outcome.error or 'no error given'}",
            {
                "command_id": command_id,
                "error": outcome.error or "",
                "failed_at": _iso(outcome.at_ms),
            },
        )
    }


def storefront_findings(
    alert_type: str, key: str, outcome: StorefrontOutcome
) -> dict[str, Finding]:
    """A push to a storefront while its latest result is a refusal for good: a level it may
    oversell by, a shipment its customer cannot follow, a product sold at a price or under a
    name the ERP no longer has. A later result that is not one (set
    or created, a SKU it no longer sells, a retry under way) resolves it."""
    if not (outcome.failed and outcome.permanent):
        return {}
    return {
        alert_type: Finding(
            Severity.CRITICAL,
            f"storefront route {outcome.route} refused {outcome.what}: "
            f"{outcome.message or 'no message given'}",
            {
                "key": key,
                "route": outcome.route,
                **outcome.facts,
                "error": outcome.message or "",
                "refused_at": _iso(outcome.at_ms),
            },
        )
    }


# -- evidence formatting ------------------------------------------------------------------


def _utc(ms: int) -> datetime:
    # Integer arithmetic: a float timestamp can be 1 ms off.
    return _EPOCH + timedelta(milliseconds=ms)


def _iso(ms: int) -> str:
    return _utc(ms).isoformat(timespec="milliseconds")


def _money(amount: Decimal, currency: str) -> str:
    return f"{quantize_minor(amount, currency)} {currency}"


def _minutes(ms: int) -> str:
    return f"{ms / MINUTE_MS:g}"


def _answer(outcome: ErpOutcome | None) -> str:
    if outcome is None:
        return "none yet"
    kind = "permanent" if outcome.permanent else "temporary"
    return f"{kind} failure at {_iso(outcome.at_ms)}: {outcome.error or 'no error given'}"


def _reservation(reserved: Mapping[str, int]) -> str:
    return ", ".join(f"{q} at {w}" for w, q in sorted(reserved.items())) or "nothing"

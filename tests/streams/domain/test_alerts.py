"""Reconciliation alerts: each rule opens its alert once (with severity, evidence and the time
it was first seen) and resolves it once, however often the rules run; reopening gets a new
id; books survive JSON; the next check time; every datum encodes with the real codec."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.domain import statecodec
from streams.domain.alerts import (
    AMOUNT_MISMATCH,
    BACKORDER,
    ERP_COMMAND,
    ERP_COMMAND_FAILED,
    ORDER,
    ORDER_WITHOUT_PAYMENT,
    OVERSOLD,
    PAYMENT_FOR_UNKNOWN_ORDER,
    PAYMENT_WITHOUT_SALES_ORDER,
    SKU,
    STOCK_DRIFT,
    STOREFRONT_LEVEL,
    STOREFRONT_LEVEL_REFUSED,
    Alert,
    AlertBook,
    AlertPolicy,
    Finding,
    Severity,
    command_findings,
    order_findings,
    order_next_check_ms,
    stock_findings,
    storefront_findings,
)
from streams.domain.commands import sales_order_id
from streams.domain.messages import ErpOutcome, StorefrontOutcome
from streams.domain.orders import Order
from streams.domain.stock import SkuStock
from streams.ops.settings import REPO_ROOT, Settings
from tests.streams.domain.builders import (
    EAST,
    MINUTE_MS,
    NEW_YORK,
    T0,
    WEST,
    apply,
    approved,
    authorized,
    cancelled,
    captured,
    fulfilled,
    line,
    payment_refunded,
    placed,
    rejected,
    reserve,
    snapshot,
    stock_event,
    stock_request,
    stocked,
)

POLICY = AlertPolicy()
ITEM = "SKU-A"
CONFIRMED = ErpOutcome(True, "sales_order", "SO-1", None, False, T0)


def minutes(n: float) -> int:
    return T0 + int(n * MINUTE_MS)


class OrderAlerts:
    """An order, its alert book, and what each tick of the timer sent."""

    def __init__(self, order_id: str = "O-1", policy: AlertPolicy = POLICY) -> None:
        self.order = Order(order_id)
        self.book = AlertBook(ORDER, order_id)
        self.policy = policy
        self.sent: list[Alert] = []

    def tick(self, now: int) -> list[Alert]:
        changes = self.book.reconcile(order_findings(self.order, self.policy, now), now)
        self.sent += changes
        return changes

    def ticks(self, *times: int) -> list[Alert]:
        return [change for now in times for change in self.tick(now)]


def placed_order(
    alerts: OrderAlerts,
    total: str = "20.00",
    *,
    quantity: int = 2,
    currency: str = "USD",
    payment_terms: str = "PREPAID",
) -> None:
    """Placed at T0."""
    order_id = alerts.order.order_id
    apply(
        alerts.order,
        placed(
            order_id,
            [line("L1", ITEM, quantity)],
            total=total,
            currency=currency,
            payment_terms=payment_terms,
            purchase_order_number=None if payment_terms == "PREPAID" else "PO-7",
        ),
    )


def confirm(order: Order, at: int) -> None:
    order.apply_erp_result(sales_order_id(order.order_id), replace(CONFIRMED, at_ms=at))


# --- payment without sales order ---------------------------------------------------------------


def test_payment_without_sales_order_opens_once_after_the_limit_and_resolves_once() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    apply(alerts.order, captured("O-1", "20.00", at=minutes(1)))
    assert alerts.ticks(minutes(2), minutes(15), minutes(16) - 1) == []

    [opened] = alerts.tick(minutes(16))
    assert opened.alert_id == "payment-without-sales-order/O-1/1"
    assert opened.alert_type == PAYMENT_WITHOUT_SALES_ORDER
    assert (opened.entity_type, opened.entity_id) == ("order", "O-1")
    assert opened.status == "OPEN"
    assert opened.severity is Severity.CRITICAL
    assert opened.first_seen_ms == minutes(16)
    assert opened.evidence == {
        "order_id": "O-1",
        "captured": "20.00 USD",
        "refunded": "0.00 USD",
        "first_captured_at": "2027-01-15T08:01:00.000+00:00",
        "sales_order_command_id": "O-1/sales-order/1",
        "erp_answer": "none yet",
        "limit_minutes": "15",
    }
    # A temporary ERP failure changes nothing; every later tick is silent.
    alerts.order.apply_erp_result(
        sales_order_id("O-1"), ErpOutcome(False, None, None, "timeout", False, minutes(17))
    )
    assert alerts.ticks(minutes(17), minutes(30), minutes(45)) == []

    confirm(alerts.order, minutes(50))
    [resolved] = alerts.tick(minutes(51))
    assert resolved == replace(opened, resolved_ms=minutes(51))
    assert resolved.status == "RESOLVED"
    assert alerts.ticks(minutes(52), minutes(600)) == []
    assert [a.status for a in alerts.sent] == ["OPEN", "RESOLVED"]


def test_a_confirmed_sales_order_never_alerts() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    apply(alerts.order, captured("O-1", "20.00", at=minutes(1)))
    confirm(alerts.order, minutes(3))
    assert alerts.ticks(minutes(16), minutes(100)) == []
    assert order_next_check_ms(alerts.order, POLICY, minutes(3)) is None


@pytest.mark.parametrize("how", ["cancelled", "refunded in full"])
def test_payment_without_sales_order_resolves_when_no_sales_order_is_owed(how: str) -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    apply(alerts.order, captured("O-1", "20.00", at=minutes(1)))
    [_] = alerts.tick(minutes(20))
    if how == "cancelled":
        apply(alerts.order, cancelled("O-1", at=minutes(21)))
    else:
        apply(alerts.order, payment_refunded("O-1", "15.00", "R-1", at=minutes(21)))
        assert alerts.tick(minutes(22)) == []  # 5.00 still held
        apply(alerts.order, payment_refunded("O-1", "5.00", "R-2", at=minutes(23)))
    [resolved] = alerts.tick(minutes(25))
    assert resolved.alert_type == PAYMENT_WITHOUT_SALES_ORDER
    assert resolved.resolved_ms == minutes(25)


# --- order without payment ---------------------------------------------------------------------


def test_order_without_payment_opens_after_the_limit_and_resolves_on_payment() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    assert alerts.ticks(minutes(1), minutes(59)) == []
    [opened] = alerts.tick(minutes(60))
    assert opened.alert_id == "order-without-payment/O-1/1"
    assert opened.severity is Severity.WARNING
    assert opened.first_seen_ms == minutes(60)
    assert opened.evidence == {
        "order_id": "O-1",
        "total": "20.00 USD",
        "placed_at": "2027-01-15T08:00:00.000+00:00",
        "failed_payment_attempts": "0",
        "limit_minutes": "60",
    }
    assert alerts.ticks(minutes(61), minutes(90)) == []
    apply(alerts.order, authorized("O-1", "20.00", at=minutes(95)))
    [resolved] = alerts.tick(minutes(95))
    assert (resolved.alert_id, resolved.resolved_ms) == (opened.alert_id, minutes(95))
    assert alerts.ticks(minutes(96), minutes(500)) == []


def test_order_without_payment_resolves_on_cancellation() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    [_] = alerts.tick(minutes(61))
    apply(alerts.order, cancelled("O-1", at=minutes(70)))
    [resolved] = alerts.tick(minutes(71))
    assert resolved.alert_type == ORDER_WITHOUT_PAYMENT and resolved.status == "RESOLVED"


def test_orders_on_account_need_no_payment() -> None:
    alerts = OrderAlerts()
    placed_order(alerts, payment_terms="ON_ACCOUNT")
    assert alerts.ticks(minutes(60), minutes(6000)) == []


# --- approval overdue --------------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["approved", "rejected"])
def test_an_order_waiting_for_approval_alerts_after_the_limit_and_resolves_on_a_decision(
    decision: str,
) -> None:
    alerts = OrderAlerts(policy=replace(POLICY, approval_ms=120 * MINUTE_MS))
    apply(
        alerts.order,
        placed("O-1", [line("L1", ITEM, 1)], payment_terms="ON_ACCOUNT",
               purchase_order_number="PO-7", requires_approval=True),
    )  # fmt: skip
    assert alerts.ticks(minutes(1), minutes(119)) == []
    [opened] = alerts.tick(minutes(120))
    assert (opened.alert_id, opened.severity) == ("approval-overdue/O-1/1", Severity.WARNING)
    assert opened.evidence == {
        "order_id": "O-1",
        "total": "10.00 USD",
        "customer_id": "C-1",
        "placed_at": "2027-01-15T08:00:00.000+00:00",
        "flagged_by_storefront": "True",
        "limit_minutes": "120",
    }
    decide = approved if decision == "approved" else rejected
    apply(alerts.order, decide("O-1", at=minutes(130)))
    [resolved] = alerts.tick(minutes(131))
    assert (resolved.alert_id, resolved.status) == (opened.alert_id, "RESOLVED")
    assert alerts.ticks(minutes(132), minutes(5000)) == []


def test_a_held_order_owes_no_sales_order_until_it_is_approved() -> None:
    alerts = OrderAlerts()
    apply(alerts.order, placed("O-1", [line("L1", ITEM, 2)], total="20.00", requires_approval=True))
    apply(alerts.order, captured("O-1", "20.00", at=minutes(1)))
    assert [a.alert_type for a in alerts.ticks(minutes(20), minutes(100))] == []
    apply(alerts.order, approved("O-1", at=minutes(100)))
    assert alerts.ticks(minutes(114)) == []
    [opened] = alerts.tick(minutes(115))
    assert opened.alert_type == PAYMENT_WITHOUT_SALES_ORDER


# --- amount mismatch ---------------------------------------------------------------------------


def test_under_capture_alerts_after_the_grace_and_resolves_when_the_rest_is_captured() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    confirm(alerts.order, minutes(1))
    apply(alerts.order, captured("O-1", "15.00", at=minutes(1)))
    assert alerts.ticks(minutes(2), minutes(59)) == []
    [opened] = alerts.tick(minutes(60))
    assert opened.alert_id == "amount-mismatch/O-1/1"
    assert opened.severity is Severity.WARNING
    assert opened.evidence == {
        "order_id": "O-1",
        "total": "20.00 USD",
        "captured": "15.00 USD",
        "difference": "-5.00 USD",
        "tolerance": "0.01 USD",
        "placed_at": "2027-01-15T08:00:00.000+00:00",
        "grace_minutes": "60",
    }
    assert alerts.tick(minutes(70)) == []
    apply(alerts.order, captured("O-1", "4.99", at=minutes(80)))  # within the tolerance now
    [resolved] = alerts.tick(minutes(80))
    assert resolved.alert_id == opened.alert_id and resolved.resolved_ms == minutes(80)
    assert alerts.tick(minutes(200)) == []


def test_over_capture_alerts_at_once() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    confirm(alerts.order, minutes(1))
    apply(alerts.order, captured("O-1", "25.00", at=minutes(1)))
    [opened] = alerts.tick(minutes(1))
    assert opened.alert_type == AMOUNT_MISMATCH
    assert opened.severity is Severity.CRITICAL
    assert opened.evidence["difference"] == "5.00 USD"
    assert "more than its total of 20.00 USD" in opened.summary
    apply(alerts.order, cancelled("O-1", at=minutes(5)))
    [resolved] = alerts.tick(minutes(5))
    assert resolved.status == "RESOLVED"


def test_a_capture_in_another_currency_is_a_mismatch_at_once() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    apply(alerts.order, captured("O-1", "18.40", currency="EUR", at=minutes(2)))
    [opened] = alerts.tick(minutes(2))
    assert opened.alert_type == AMOUNT_MISMATCH
    assert opened.severity is Severity.CRITICAL
    assert opened.evidence["captured"] == "0.00 USD"
    assert opened.evidence["captured_EUR"] == "18.40 EUR"
    assert "captured in EUR" in opened.summary
    # Nor does a payment in the wrong currency count as the order's payment for a sales order.
    assert PAYMENT_WITHOUT_SALES_ORDER not in order_findings(alerts.order, POLICY, minutes(600))
    assert ORDER_WITHOUT_PAYMENT not in order_findings(alerts.order, POLICY, minutes(600))


def test_amounts_compare_in_the_currencys_minor_unit() -> None:
    exact = OrderAlerts(policy=AlertPolicy(amount_tolerance=Decimal(0)))
    placed_order(exact, total="20.00")
    apply(exact.order, captured("O-1", "20.0040", at=minutes(1)))  # rounds to 20.00 USD
    assert AMOUNT_MISMATCH not in order_findings(exact.order, exact.policy, minutes(100))

    yen = OrderAlerts()
    placed_order(yen, total="1000", currency="JPY")
    apply(yen.order, captured("O-1", "999", currency="JPY", at=minutes(1)))
    finding = order_findings(yen.order, POLICY, minutes(60))[AMOUNT_MISMATCH]
    assert finding.evidence["difference"] == "-1 JPY"


# --- payment for an unknown order --------------------------------------------------------------


def test_payment_for_unknown_order_alerts_after_the_limit_and_resolves_when_placed() -> None:
    alerts = OrderAlerts("O-9")
    apply(alerts.order, authorized("O-9", "20.00", at=minutes(0)))
    assert alerts.ticks(minutes(1), minutes(29)) == []
    [opened] = alerts.tick(minutes(30))
    assert opened.alert_id == "payment-for-unknown-order/O-9/1"
    assert opened.severity is Severity.WARNING  # nothing captured yet
    assert opened.evidence == {
        "order_id": "O-9",
        "first_payment_at": "2027-01-15T08:00:00.000+00:00",
        "limit_minutes": "30",
        "payment.PAY-1": "stripe: authorized 20.00 USD, captured 0.00 USD",
    }
    assert alerts.tick(minutes(45)) == []
    placed_order(alerts)
    [resolved] = alerts.tick(minutes(46))
    assert resolved.alert_type == PAYMENT_FOR_UNKNOWN_ORDER and resolved.status == "RESOLVED"


def test_captured_money_for_an_unknown_order_is_critical() -> None:
    order = Order("O-9")
    apply(order, captured("O-9", "20.00", at=minutes(0)))
    finding = order_findings(order, POLICY, minutes(30))[PAYMENT_FOR_UNKNOWN_ORDER]
    assert finding.severity is Severity.CRITICAL


# --- backorder ---------------------------------------------------------------------------------


def backordered_order() -> OrderAlerts:
    """An order on account (so no payment alerts) of 3 units, of which the stock (1 at the
    west warehouse) reserves 1."""
    alerts = OrderAlerts()
    placed_order(alerts, "30.00", quantity=3, payment_terms="ON_ACCOUNT")
    stock = stocked(ITEM, {WEST: 1})
    for update in stock_request(stock, reserve("O-1", ITEM, [("L1", 3)])).updates:
        alerts.order.apply_allocation(update)
    return alerts


def test_backorder_opens_at_once_and_resolves_when_shipped() -> None:
    alerts = backordered_order()
    [opened] = alerts.tick(minutes(1))
    assert opened.alert_id == "backorder/O-1/1"
    assert opened.severity is Severity.WARNING
    assert opened.evidence == {
        "order_id": "O-1",
        "line.L1": f"{ITEM}: 2 of 3 backordered, reserved 1 at {WEST}",
    }
    assert alerts.ticks(minutes(2), minutes(300)) == []
    apply(alerts.order, fulfilled("O-1", "F-1", WEST, {ITEM: 3}, at=minutes(400)))
    [resolved] = alerts.tick(minutes(400))
    assert resolved.alert_type == BACKORDER and resolved.status == "RESOLVED"


def test_backorder_resolves_when_cancelled() -> None:
    alerts = backordered_order()
    [_] = alerts.tick(minutes(1))
    apply(alerts.order, cancelled("O-1", at=minutes(5)))
    [resolved] = alerts.tick(minutes(5))
    assert resolved.alert_type == BACKORDER and resolved.status == "RESOLVED"


# --- clock skew --------------------------------------------------------------------------------
# The worker's clock reads NOW; the events are stamped minutes ahead of it or behind.

NOW = minutes(100)
SKEWS = [pytest.param(5 * MINUTE_MS, id="ahead"), pytest.param(-5 * MINUTE_MS, id="behind")]


def skewed_order(skew: int) -> OrderAlerts:
    """A prepaid order of 20.00 USD placed at NOW + skew, by its stamp."""
    alerts = OrderAlerts()
    apply(alerts.order, placed("O-1", [line("L1", ITEM, 2)], total="20.00", at=NOW + skew), now=NOW)
    return alerts


@pytest.mark.parametrize("skew", SKEWS)
def test_an_over_capture_opens_when_processed_whatever_its_stamp(skew: int) -> None:
    alerts = skewed_order(skew)
    apply(alerts.order, captured("O-1", "25.00", at=NOW + skew), now=NOW)
    [opened] = alerts.tick(NOW)
    assert (opened.alert_type, opened.severity) == (AMOUNT_MISMATCH, Severity.CRITICAL)
    assert opened.first_seen_ms == NOW


@pytest.mark.parametrize("skew", SKEWS)
def test_a_capture_in_another_currency_opens_when_processed_whatever_its_stamp(skew: int) -> None:
    alerts = skewed_order(skew)
    apply(alerts.order, captured("O-1", "18.40", currency="EUR", at=NOW + skew), now=NOW)
    [opened] = alerts.tick(NOW)
    assert opened.alert_type == AMOUNT_MISMATCH and "captured in EUR" in opened.summary


@pytest.mark.parametrize("skew", SKEWS)
def test_a_backorder_opens_when_processed_whatever_the_orders_stamp(skew: int) -> None:
    alerts = OrderAlerts()
    apply(
        alerts.order,
        placed(
            "O-1",
            [line("L1", ITEM, 3)],
            payment_terms="ON_ACCOUNT",
            purchase_order_number="PO-7",
            at=NOW + skew,
        ),
        now=NOW,
    )
    stock = stocked(ITEM, {WEST: 1})
    for update in stock_request(stock, reserve("O-1", ITEM, [("L1", 3)], at=NOW + skew)).updates:
        alerts.order.apply_allocation(update)
    [opened] = alerts.tick(NOW)
    assert opened.alert_type == BACKORDER
    # Nothing left for the timer: a finding that holds at once is never scheduled.
    assert order_next_check_ms(alerts.order, POLICY, NOW) is None


def test_a_time_limit_counts_from_the_facts_stamp() -> None:
    """Business time: a capture stamped 20 minutes behind the clock is already past the
    15-minute limit when processed; one stamped 5 minutes ahead reaches it 5 minutes late."""
    behind = skewed_order(-20 * MINUTE_MS)
    apply(behind.order, captured("O-1", "20.00", at=NOW - 20 * MINUTE_MS), now=NOW)
    [opened] = behind.tick(NOW)
    assert opened.alert_type == PAYMENT_WITHOUT_SALES_ORDER

    ahead = skewed_order(5 * MINUTE_MS)
    apply(ahead.order, captured("O-1", "20.00", at=NOW + 5 * MINUTE_MS), now=NOW)
    assert order_next_check_ms(ahead.order, POLICY, NOW) == NOW + 20 * MINUTE_MS
    assert ahead.ticks(NOW, NOW + 20 * MINUTE_MS - 1) == []
    [opened] = ahead.tick(NOW + 20 * MINUTE_MS)
    assert opened.alert_type == PAYMENT_WITHOUT_SALES_ORDER


# --- stock -------------------------------------------------------------------------------------


class StockAlerts:
    def __init__(self, stock: SkuStock, policy: AlertPolicy = POLICY) -> None:
        self.stock = stock
        self.book = AlertBook(SKU, stock.sku)
        self.policy = policy

    def tick(self, now: int) -> list[Alert]:
        return self.book.reconcile(stock_findings(self.stock, self.policy), now)


def test_oversold_opens_with_warehouse_evidence_and_resolves_once_and_reopens_as_new() -> None:
    alerts = StockAlerts(stocked(ITEM, {EAST: 10}))
    stock_request(alerts.stock, reserve("O-1", ITEM, [("L1", 8)], NEW_YORK))
    assert alerts.tick(T0) == []
    stock_event(alerts.stock, snapshot(ITEM, EAST, 5, minutes(1)))
    [opened, _drift] = alerts.tick(minutes(1))
    assert opened.alert_id == "oversold/SKU-A/1"
    assert opened.severity is Severity.CRITICAL
    assert opened.evidence == {
        "sku": ITEM,
        f"warehouse.{EAST}": "on hand 5, reserved 8, available -3",
    }
    assert alerts.tick(minutes(2)) == []
    stock_event(alerts.stock, snapshot(ITEM, EAST, 8, minutes(3)))  # no oversell, still drifting
    [resolved] = alerts.tick(minutes(3))
    assert (resolved.alert_id, resolved.resolved_ms) == ("oversold/SKU-A/1", minutes(3))
    assert alerts.tick(minutes(4)) == []

    stock_event(alerts.stock, snapshot(ITEM, EAST, 6, minutes(5)))
    [reopened] = alerts.tick(minutes(5))  # the drift alert is still open: no change there
    assert reopened.alert_id == "oversold/SKU-A/2"
    assert reopened.first_seen_ms == minutes(5)
    assert [(a.alert_id, a.status) for a in alerts.book.current()] == [
        ("oversold/SKU-A/2", "OPEN"),
        ("stock-drift/SKU-A/1", "OPEN"),
    ]


def test_stock_drift_opens_beyond_the_tolerance_and_resolves_when_a_snapshot_agrees() -> None:
    alerts = StockAlerts(stocked(ITEM, {EAST: 10}))
    assert alerts.tick(T0) == []  # a first snapshot has nothing to drift from
    stock_event(alerts.stock, snapshot(ITEM, EAST, 7, minutes(1)))
    [opened] = alerts.tick(minutes(1))
    assert opened.alert_id == "stock-drift/SKU-A/1"
    assert opened.severity is Severity.WARNING
    assert opened.evidence == {
        "sku": ITEM,
        "tolerance_units": "0",
        f"warehouse.{EAST}": "ERP snapshot as of 2027-01-15T08:01:00.000+00:00 is -3 units "
        "from erpbridge's on hand then",
    }
    assert alerts.tick(minutes(2)) == []
    stock_event(alerts.stock, snapshot(ITEM, EAST, 7, minutes(10)))
    [resolved] = alerts.tick(minutes(10))
    assert resolved.alert_id == opened.alert_id and resolved.status == "RESOLVED"

    tolerant = StockAlerts(stocked(ITEM, {EAST: 10}), AlertPolicy(drift_tolerance=3))
    stock_event(tolerant.stock, snapshot(ITEM, EAST, 7, minutes(1)))
    assert tolerant.tick(minutes(1)) == []


# --- ERP commands ------------------------------------------------------------------------------


def test_a_permanently_failed_command_alerts_until_a_later_result_succeeds() -> None:
    command_id = "O-1/sales-order/1"
    book = AlertBook(ERP_COMMAND, command_id)
    temporary = ErpOutcome(False, None, None, "timeout", False, minutes(1))
    assert book.reconcile(command_findings(command_id, temporary), minutes(1)) == []
    failed = ErpOutcome(False, None, None, "customer C-1 is blocked", True, minutes(2))
    [opened] = book.reconcile(command_findings(command_id, failed), minutes(2))
    assert opened.alert_id == "erp-command-failed/O-1/sales-order/1/1"
    assert opened.severity is Severity.CRITICAL
    assert opened.evidence == {
        "command_id": command_id,
        "error": "customer C-1 is blocked",
        "failed_at": "2027-01-15T08:02:00.000+00:00",
    }
    assert book.reconcile(command_findings(command_id, failed), minutes(3)) == []
    done = replace(CONFIRMED, at_ms=minutes(9))
    [resolved] = book.reconcile(command_findings(command_id, done), minutes(9))
    assert resolved.alert_type == ERP_COMMAND_FAILED and resolved.status == "RESOLVED"


# --- storefront levels -------------------------------------------------------------------------


def test_a_push_the_storefront_refused_for_good_alerts_until_a_later_one_is_not_refused() -> None:
    key = "shop:SKU-1@WH-WEST"
    book = AlertBook(STOREFRONT_LEVEL, key)

    def result(at: int, *, failed: bool = True, permanent: bool = False) -> StorefrontOutcome:
        message = "ITEM_NOT_STOCKED_AT_LOCATION: not stocked" if failed else None
        facts = {"sku": "SKU-1", "warehouse_id": "WH-WEST", "quantity": "4"}
        what = "the stock level 4 of SKU-1 (warehouse WH-WEST)"
        return StorefrontOutcome("shop", what, facts, failed, permanent, message, at)

    def reconcile(outcome: StorefrontOutcome, at: int) -> list[Alert]:
        return book.reconcile(storefront_findings(STOREFRONT_LEVEL_REFUSED, key, outcome), at)

    assert reconcile(result(minutes(1)), minutes(1)) == []  # retries ran out: not for good
    refused = result(minutes(2), permanent=True)
    [opened] = reconcile(refused, minutes(2))
    assert opened.alert_id == f"storefront-level-refused/{key}/1"
    assert opened.severity is Severity.CRITICAL
    assert opened.summary == (
        "storefront route shop refused the stock level 4 of SKU-1 (warehouse WH-WEST): "
        "ITEM_NOT_STOCKED_AT_LOCATION: not stocked"
    )
    assert opened.evidence == {
        "key": key,
        "route": "shop",
        "sku": "SKU-1",
        "warehouse_id": "WH-WEST",
        "quantity": "4",
        "error": "ITEM_NOT_STOCKED_AT_LOCATION: not stocked",
        "refused_at": "2027-01-15T08:02:00.000+00:00",
    }
    assert reconcile(refused, minutes(3)) == []
    [resolved] = reconcile(result(minutes(9), failed=False), minutes(9))
    assert resolved.alert_type == STOREFRONT_LEVEL_REFUSED and resolved.status == "RESOLVED"
    [again] = reconcile(refused, minutes(10))
    assert again.alert_id.endswith("/2")


# --- the book ----------------------------------------------------------------------------------


def finding(summary: str = "s") -> Finding:
    return Finding(Severity.INFO, summary, {"k": "v"})


def test_an_open_alert_keeps_what_it_opened_with_and_reopening_gets_a_new_id() -> None:
    book = AlertBook(ORDER, "O-1")
    [first] = book.reconcile({"x": finding("first")}, 10)
    assert book.reconcile({"x": finding("changed figures")}, 20) == []
    [closed] = book.reconcile({}, 30)
    assert closed == replace(first, resolved_ms=30) and closed.summary == "first"
    assert book.reconcile({}, 40) == []
    [again] = book.reconcile({"x": finding("again")}, 50)
    assert (again.alert_id, again.first_seen_ms, again.summary) == ("x/O-1/2", 50, "again")
    assert book.current() == [again]


def test_a_book_survives_being_stored_and_carries_on() -> None:
    book = AlertBook(ORDER, "O-1")
    book.reconcile({"x": finding(), "y": finding()}, 10)
    book.reconcile({"x": finding()}, 20)
    restored = statecodec.decode_alerts(statecodec.encode_alerts(book))
    assert restored == book
    assert isinstance(restored.alerts["x"].severity, Severity)
    assert restored.reconcile({"x": finding()}, 30) == []
    [resolved, reopened] = restored.reconcile({"y": finding()}, 40)
    assert (resolved.alert_id, resolved.status) == ("x/O-1/1", "RESOLVED")
    assert (reopened.alert_id, reopened.status) == ("y/O-1/2", "OPEN")


def test_current_state_re_emits_the_same_records() -> None:
    alerts = OrderAlerts()
    placed_order(alerts)
    apply(alerts.order, captured("O-1", "25.00", at=minutes(1)))
    alerts.ticks(minutes(1), minutes(16))
    confirm(alerts.order, minutes(17))
    alerts.tick(minutes(17))
    latest = {a.alert_id: a.to_datum() for a in alerts.sent}
    assert [a.to_datum() for a in alerts.book.current()] == [latest[i] for i in sorted(latest)]


def test_an_alert_re_sent_from_a_restored_book_is_byte_for_byte_its_first_copy() -> None:
    """A book stored and read back re-sends exactly what it sent first."""
    codec = Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))
    alerts = OrderAlerts()
    placed_order(alerts)
    apply(alerts.order, captured("O-1", "25.00", at=minutes(1)))
    [opened] = alerts.tick(minutes(1))
    restored = statecodec.decode_alerts(statecodec.encode_alerts(alerts.book))

    def encoded(alert: Alert) -> bytes:
        return codec.encode("erpbridge.ReconciliationAlert", alert.to_datum(), topic="alerts")

    assert [encoded(a) for a in restored.current()] == [encoded(opened)]


# --- next check --------------------------------------------------------------------------------


def test_next_check_is_the_earliest_deadline_still_ahead() -> None:
    order = Order("O-1")
    assert order_next_check_ms(order, POLICY, T0) is None
    apply(order, authorized("O-1", "20.00", at=minutes(0)))
    assert order_next_check_ms(order, POLICY, T0) == minutes(30)  # unknown order
    assert order_next_check_ms(order, POLICY, minutes(30)) is None  # already found
    apply(order, placed("O-1", [line("L1", ITEM, 2)], at=minutes(5)))
    assert order_next_check_ms(order, POLICY, minutes(5)) is None  # authorized: paid for now
    apply(order, captured("O-1", "10.00", at=minutes(10)))
    # Sales order 15 minutes after the capture; under-capture an hour after placement.
    assert order_next_check_ms(order, POLICY, minutes(10)) == minutes(25)
    assert order_next_check_ms(order, POLICY, minutes(25)) == minutes(65)
    confirm(order, minutes(12))
    assert order_next_check_ms(order, POLICY, minutes(12)) == minutes(65)
    apply(order, captured("O-1", "10.00", at=minutes(13)))
    assert order_next_check_ms(order, POLICY, minutes(13)) is None


def test_next_check_of_an_unpaid_order_is_the_payment_limit() -> None:
    order = Order("O-1")
    apply(order, placed("O-1", [line("L1", ITEM, 2)], at=T0))
    assert order_next_check_ms(order, POLICY, T0) == minutes(60)
    apply(order, cancelled("O-1", at=minutes(1)))
    assert order_next_check_ms(order, POLICY, minutes(1)) is None


def test_the_policy_comes_from_settings() -> None:
    settings = Settings(
        alert_sales_order_minutes=0.5,
        alert_payment_minutes=2,
        alert_unknown_order_minutes=3,
        alert_amount_tolerance=Decimal("0.05"),
        alert_drift_tolerance=4,
    )
    assert AlertPolicy.from_settings(settings) == AlertPolicy(
        sales_order_ms=30_000,
        payment_ms=120_000,
        unknown_order_ms=180_000,
        amount_tolerance=Decimal("0.05"),
        drift_tolerance=4,
    )
    assert AlertPolicy.from_settings(Settings()) == AlertPolicy()


# --- the Avro datum ----------------------------------------------------------------------------


def every_alert() -> list[Alert]:
    """One alert of every type, open and resolved, from the rules themselves."""
    order = Order("O-1")
    apply(order, placed("O-1", [line("L1", ITEM, 2)], at=T0))
    unpaid = order_findings(order, POLICY, minutes(60))
    apply(order, captured("O-1", "25.00", at=minutes(1)))
    unknown = Order("O-9")
    apply(unknown, captured("O-9", "1.00", at=minutes(1)))
    backordered = backordered_order().order
    stock = stocked(ITEM, {EAST: 10})
    stock_request(stock, reserve("O-1", ITEM, [("L1", 8)], NEW_YORK))
    stock_event(stock, snapshot(ITEM, EAST, 5, minutes(1)))
    failed = ErpOutcome(False, None, None, "blocked", True, minutes(2))
    found = (
        unpaid
        | order_findings(order, POLICY, minutes(60))
        | order_findings(unknown, POLICY, minutes(60))
        | order_findings(backordered, POLICY, minutes(60))
        | stock_findings(stock, POLICY)
        | command_findings("O-1/sales-order/1", failed)
    )
    assert sorted(found) == sorted(
        [
            PAYMENT_WITHOUT_SALES_ORDER,
            ORDER_WITHOUT_PAYMENT,
            AMOUNT_MISMATCH,
            PAYMENT_FOR_UNKNOWN_ORDER,
            BACKORDER,
            OVERSOLD,
            STOCK_DRIFT,
            ERP_COMMAND_FAILED,
        ]
    )
    # One book for all of them: only the datums matter here.
    book = AlertBook(ORDER, "O-1")
    return book.reconcile(found, minutes(60)) + book.reconcile({}, minutes(61))


def test_every_alert_datum_is_valid_avro() -> None:
    codec = Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))
    alerts = every_alert()
    assert len(alerts) == 16
    event_ids = set()
    for alert in alerts:
        datum = alert.to_datum()
        data = codec.encode("erpbridge.ReconciliationAlert", datum, topic="reconciliation.alerts")
        decoded = codec.decode(data, expected="erpbridge.ReconciliationAlert").datum
        assert decoded == datum
        event_ids.add(datum["event_id"])
    assert len(event_ids) == len(alerts)  # one per open and per resolve


def test_the_datum_of_a_resolved_alert() -> None:
    alert = Alert(
        alert_id="oversold/SKU-A/1",
        alert_type=OVERSOLD,
        entity_type=SKU,
        entity_id="SKU-A",
        severity=Severity.CRITICAL,
        summary="oversold",
        evidence={"sku": "SKU-A"},
        first_seen_ms=minutes(1),
        resolved_ms=minutes(3),
    )
    assert alert.to_datum() == {
        "event_id": "oversold/SKU-A/1/resolved",
        "occurred_at": datetime(2027, 1, 15, 8, 3, tzinfo=UTC),
        "source": "erpbridge",
        "alert_id": "oversold/SKU-A/1",
        "alert_type": "oversold",
        "status": "RESOLVED",
        "severity": "CRITICAL",
        "entity_type": "sku",
        "entity_id": "SKU-A",
        "first_seen_at": datetime(2027, 1, 15, 8, 1, tzinfo=UTC),
        "resolved_at": datetime(2027, 1, 15, 8, 3, tzinfo=UTC),
        "summary": "oversold",
        "evidence": {"sku": "SKU-A"},
    }
    assert replace(alert, resolved_ms=None).to_datum()["event_id"] == "oversold/SKU-A/1/open"

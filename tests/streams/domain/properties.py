"""Properties of the business rules that do not come from the rules themselves.

Each `check_*` takes a drawn commerce stream (tests.streams.domain.strategies), runs the
reference model over it and asserts what must hold whatever the rules' code says: what an
arrival order cannot change, where stock may come from and go to, what the books must say
(tests.streams.domain.ledger), and that a redelivery changes nothing. The tests in
test_properties.py run them under the suite's settings profile, bench/properties.py under a
longer one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from streams.domain import statejson
from streams.domain.alerts import BACKORDER, OVERSOLD, STOCK_DRIFT
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping
from streams.domain.model import ReferenceModel
from streams.domain.orders import Status
from streams.domain.routing import RoutingRules
from streams.ops.settings import REPO_ROOT
from tests.streams.domain.ledger import (
    COST_ACCOUNTS,
    ROUNDING_ACCOUNT,
    Entry,
    entry_problems,
    expected_books,
    first_choice,
    nets,
)
from tests.streams.domain.strategies import NOW, CommerceStream, topic_of

INPUT_KINDS = (
    "OrderPlaced",
    "OrderCancelled",
    "OrderFulfilled",
    "OrderRefunded",
    "OrderApproved",
    "OrderRejected",
    "PaymentAuthorized",
    "PaymentCaptured",
    "PaymentRefunded",
    "PaymentFailed",
    "PaymentSettled",
    "StockSnapshot",
    "StockAdjusted",
)
STATUSES = tuple(Status)
RULES = RoutingRules.from_file(REPO_ROOT / "config" / "routing.json")
FINANCE = FinanceMapping.from_file(REPO_ROOT / "config" / "finance.json")


def run(deliveries: Iterable[InputEvent]) -> ReferenceModel:
    model = ReferenceModel(RULES, FINANCE)
    for event in deliveries:
        model.feed(topic_of(event), event, NOW)
    return model


# --- figures --------------------------------------------------------------------------------


def on_hand(model: ReferenceModel) -> dict[tuple[str, str], int]:
    return {
        (sku, w): level
        for sku, figures in model.availability.items()
        for w, level, _, _ in figures.warehouses
        if level
    }


def order_facts(model: ReferenceModel) -> dict[str, Any]:
    """Per order what its events say, whichever came first: status, money, shipments and
    refunds; not where its reservations are, nor what is backordered (who got scarce stock
    depends on arrival order)."""
    return {
        order_id: {
            "status": order.status,
            "cancelled_ms": order.cancelled_ms,
            "payments": statejson.plain(order.payments),
            "fulfilments": statejson.plain(order.fulfilments),
            "refunds": statejson.plain(order.refunds),
            "lines": {
                line_id: (line.sku, line.quantity, line.fulfilled, line.refunded, line.restocked)
                for line_id, line in order.lines.items()
            },
            "waiting": sorted(w.event.event_id for w in order.waiting),
        }
        for order_id, order in model.orders.items()
    }


def demand(model: ReferenceModel) -> dict[tuple[str, str, str], int]:
    """What each order line still wants from stock (reserved + backordered), as the stock
    keeps its claims: whatever the arrival order, what is left to ship of an open order."""
    return {
        (sku, order_id, line_id): wanted
        for sku, stock in model.stock.items()
        for order_id, claim in stock.claims.items()
        for line_id, line in claim.lines.items()
        if (wanted := sum(line.reserved.values()) + line.backordered)
    }


def _settled_order(command_id: str, cancelled: set[str]) -> bool:
    # Whether a cancelled order became a sales order depends on whether its capture or its
    # cancellation came first, as in any real system.
    return command_id.split("/", 1)[0] not in cancelled


def order_independent(model: ReferenceModel) -> dict[str, Any]:
    cancelled = {k for k, o in model.orders.items() if o.cancelled_ms is not None}
    entries = [Entry.of(e) for e in model.journal.values()]
    return {
        "orders": order_facts(model),
        "demand": demand(model),
        "on_hand": on_hand(model),
        "journal": {e.entry_id: e for e in entries if not e.is_cost},
        "accounts": {k: v for k, v in nets(entries).items() if k[0] not in COST_ACCOUNTS},
        "commands": {
            k: c.to_json() for k, c in model.commands.items() if _settled_order(k, cancelled)
        },
        "dead_letters": sorted((d.event.event_id, d.reason) for d in model.dead_letters),
        "open alerts": sorted(
            (a.alert_type, a.entity_id, a.severity.value)
            for a in model.alerts.values()
            if a.resolved_ms is None and a.alert_type not in _ALERTS_ON_RESERVATIONS
        ),
    }


_ALERTS_ON_RESERVATIONS = frozenset({BACKORDER, OVERSOLD, STOCK_DRIFT})
"""Alerts on where reservations are (backorders; a warehouse's available below zero) or on
which snapshots followed which (drift), all of which depend on arrival order. An open
alert's evidence is what held when it opened, so only which alerts are open is compared."""


def whole_state(model: ReferenceModel) -> dict[str, Any]:
    """Everything the model holds and handed on, reservations included; transitions as the
    set a receiver keeps (a redelivery sends its transitions again). Of an order's lines,
    what its rules use (the backorder, not the reservations the stock keeps)."""
    return {
        "orders": {
            order_id: {
                **order_facts(model)[order_id],
                "backordered": {i: line.backordered for i, line in order.lines.items()},
                "transitions": order.transitions,
                "issued": order.issued,
            }
            for order_id, order in model.orders.items()
        },
        "stock": {
            sku: {
                "warehouses": {w: (s.on_hand, s.reserved) for w, s in stock.warehouses.items()},
                "claims": {
                    order_id: (
                        claim.released,
                        claim.version,
                        sorted(claim.refs),
                        {
                            i: (line.quantity, line.reserved, line.backordered, line.shipped)
                            for i, line in claim.lines.items()
                        },
                    )
                    for order_id, claim in stock.claims.items()
                },
            }
            for sku, stock in model.stock.items()
        },
        "availability": model.availability,
        "transitions": set(model.transitions),
        "commands": {k: c.to_json() for k, c in model.commands.items()},
        "journal": model.journal,
        "alerts": model.alerts,
        "dead_letters": sorted((d.event.event_id, d.reason) for d in model.dead_letters),
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The parts of two figures that differ, one level down, for a readable failure."""
    found: dict[str, Any] = {}
    for part in a.keys() | b.keys():
        x, y = a.get(part), b.get(part)
        if x == y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            found[part] = {
                k: (x.get(k), y.get(k)) for k in x.keys() | y.keys() if x.get(k) != y.get(k)
            }
        else:
            found[part] = (x, y)
    return found


# --- stock as the events imply it -------------------------------------------------------------


def expected_on_hand(events: Sequence[InputEvent]) -> dict[tuple[str, str], int]:
    """On hand per SKU and warehouse by the rule of streams/domain/stock.py's docstring: the
    latest ERP snapshot plus the movements (adjustments, shipments, restocks) after its time;
    without a snapshot, the movements. Every event of a consistent stream applies once."""
    snapshots: dict[tuple[str, str], tuple[int, int]] = {}
    movements: list[tuple[tuple[str, str], int, int]] = []
    placements = {e.key: e.payload for e in events if e.kind == "OrderPlaced"}
    shipped: set[tuple[str, str]] = set()
    for e in events:
        p = e.payload
        if e.kind == "StockSnapshot":
            as_of = statejson.millis(p["as_of"])
            key = (e.key, p["warehouse_id"])
            if key not in snapshots or snapshots[key][0] < as_of:
                snapshots[key] = (as_of, p["on_hand"])
        elif e.kind == "StockAdjusted":
            movements.append(((e.key, p["warehouse_id"]), e.occurred_ms, p["delta"]))
        elif e.kind == "OrderFulfilled" and (e.key, p["fulfillment_id"]) not in shipped:
            shipped.add((e.key, p["fulfillment_id"]))
            for item in p["lines"]:
                movements.append(
                    ((item["sku"], p["warehouse_id"]), e.occurred_ms, -item["quantity"])
                )
        elif e.kind == "OrderRefunded" and p["restock"] and (e.key, p["refund_id"]) not in shipped:
            shipped.add((e.key, p["refund_id"]))
            w = p["warehouse_id"] or first_choice(placements[e.key])
            for item in p["lines"]:
                movements.append(((item["sku"], w), e.occurred_ms, item["quantity"]))
    levels: dict[tuple[str, str], int] = defaultdict(int)
    for key, (_, counted) in snapshots.items():
        levels[key] = counted
    for key, at, delta in movements:
        if key not in snapshots or at > snapshots[key][0]:
            levels[key] += delta
    return {key: level for key, level in levels.items() if level}


# --- the properties ---------------------------------------------------------------------------


def check_arrival_order_does_not_matter(stream: CommerceStream, arrival: Sequence[int]) -> None:
    """Fed in another order, the model ends with the same order statuses, payments,
    shipments and refunds, on hand, journal (entries and totals per account), ERP commands,
    dead letters and open alerts about orders and payments; where the unit costs were known
    before goods moved (as the ERP tells them), the cost of goods entries too. Not which
    order got scarce stock."""
    other = stream.arrived(arrival)
    first, second = (
        order_independent(run(stream.deliveries)),
        order_independent(run(other.deliveries)),
    )
    assert first == second, differences(first, second)
    costed = [run(s.costs_first().deliveries) for s in (stream, other)]
    entries = [[Entry.of(e) for e in m.journal.values()] for m in costed]
    assert nets(entries[0]) == nets(entries[1]), "cost of goods depends on the arrival order"
    assert {e.entry_id: e for e in entries[0]} == {e.entry_id: e for e in entries[1]}


def check_stock_is_conserved(stream: CommerceStream) -> None:
    """On hand moves only by snapshots, adjustments, shipments and restocks; an order never
    reserves more than a warehouse had available; available = on hand - reserved; a
    warehouse's reservations are its claims', each open line's reservations and backorder
    together are what is left to ship, and the order sees the backorder the stock keeps."""
    model = ReferenceModel(RULES, FINANCE)
    for event in stream.deliveries:
        before = {
            (sku, w): (reserved, available)
            for sku, figures in model.availability.items()
            for w, _, reserved, available in figures.warehouses
        }
        model.feed(topic_of(event), event, NOW)
        for sku, stock in model.stock.items():
            claimed: dict[str, int] = defaultdict(int)
            for order_id, claim in stock.claims.items():
                order = model.orders[order_id]
                for line_id, line in claim.lines.items():
                    for w, n in line.reserved.items():
                        claimed[w] += n
                    left = 0 if claim.released else line.quantity - line.shipped
                    assert sum(line.reserved.values()) + line.backordered == left, (
                        f"{sku} for {order_id}/{line_id}: reserved {line.reserved} + "
                        f"backordered {line.backordered} != {left} left to ship"
                    )
                    assert order.lines[line_id].fulfilled == line.shipped, (order_id, line_id)
            for order_id, order in model.orders.items():
                own = stock.claims.get(order_id)
                for line_id, ordered in order.lines.items():
                    if ordered.sku == sku:
                        kept = own.lines.get(line_id) if own is not None else None
                        assert ordered.backordered == (kept.backordered if kept else 0), (
                            f"{order_id}/{line_id} sees {ordered.backordered} backordered"
                        )
            for w, at in stock.warehouses.items():
                assert 0 <= at.reserved == claimed.get(w, 0), (
                    f"{sku}@{w}: {at.reserved} reserved, its claims {claimed.get(w, 0)}"
                )
        for order_id, order in model.orders.items():
            for line_id, line in order.lines.items():
                assert line.restocked <= line.fulfilled and line.refunded <= line.quantity, (
                    f"{order_id}/{line_id}: {line.restocked} restocked of {line.fulfilled} "
                    f"shipped, {line.refunded} refunded of {line.quantity}"
                )
        for sku, figures in model.availability.items():
            assert figures.on_hand == sum(x[1] for x in figures.warehouses), sku
            assert figures.reserved == sum(x[2] for x in figures.warehouses), sku
            assert figures.available == figures.on_hand - figures.reserved, sku
            assert figures == model.stock[sku].availability(), sku
            for w, level, reserved, available in figures.warehouses:
                assert available == level - reserved, (sku, w)
                was_reserved, was_available = before.get((sku, w), (0, 0))
                grew = reserved - was_reserved
                if event.kind in ("OrderPlaced", "OrderApproved"):
                    assert grew <= max(was_available, 0), (
                        f"{event.key} reserved {grew} of {sku} at {w}, where {was_available} "
                        "were available"
                    )
                else:
                    assert grew <= 0, (
                        f"{event.kind} {event.event_id} reserved {grew} of {sku} at {w}"
                    )
    assert on_hand(model) == expected_on_hand(stream.events)


def check_the_books_balance_and_say_what_the_events_imply(stream: CommerceStream) -> None:
    """Every entry balances in the transaction and the functional currency at the mapping's
    rate, and each account's net is what the events and config/finance.json imply: in any
    arrival order for every account but inventory and cost of goods, and for those too when
    the ERP stated the unit costs before goods moved."""
    implied_without_costs = expected_books(stream.events, None)
    implied = expected_books(stream.events, stream.unit_costs)
    for deliveries, books, skip in (
        (stream.deliveries, implied_without_costs, COST_ACCOUNTS | {ROUNDING_ACCOUNT}),
        (stream.costs_first().deliveries, implied, frozenset({ROUNDING_ACCOUNT})),
    ):
        model = run(deliveries)
        assert not model.dead_letters
        entries = [Entry.of(e) for e in model.journal.values()]
        problems = {e.entry_id: entry_problems(e) for e in entries if entry_problems(e)}
        assert not problems, problems
        wrong = books.differences(entries, skip=skip)
        assert not wrong, wrong
        # The rounding account never holds transaction-currency amounts.
        assert not [k for k in nets(entries) if k[0] == ROUNDING_ACCOUNT]


def check_redelivery_changes_nothing(stream: CommerceStream) -> None:
    """Every event delivered twice (right after itself, or wherever the drawn redeliveries
    fell) leaves the state and what was handed on as delivering it once; only the
    redeliveries are counted as duplicates."""
    events = stream.events
    once = run(events)
    expected = whole_state(once)
    for deliveries in (
        list(stream.deliveries),
        [e for e in events for _ in range(2)],
    ):
        twice = run(deliveries)
        state = whole_state(twice)
        assert state == expected, differences(state, expected)
        redelivered = Counter(duplicate=len(deliveries) - len(events))
        assert +twice.outcomes == once.outcomes + redelivered

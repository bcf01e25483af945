"""The tables restore state from a changelog written by the release before the state codec,
and write it back in the current format."""

from __future__ import annotations

from typing import Any

from streams.domain import statecodec
from streams.domain.alerts import Alert, Finding, Severity
from streams.topology.tables import Tables
from tests.streams.domain.stored import changelog, describe, expected


def restored(table: str) -> dict[bytes, bytes]:
    """The table as Faust restores it from its changelog: each key's latest value."""
    return {key.encode(): value for key, value in changelog(table)}


def latest_expected(table: str) -> dict[str, Any]:
    return {key: d for (key, _), d in zip(changelog(table), expected(table), strict=True)}


def tables() -> Tables:
    # Faust tables are mappings of bytes to bytes; plain dicts stand in for them.
    return Tables(
        orders=restored("orders"),
        stock=restored("stock"),
        deadlines={},
        order_alerts=restored("order-alerts"),
        stock_alerts=restored("stock-alerts"),
        command_alerts={},
    )


def test_orders_and_skus_restore_and_are_saved_in_the_current_format() -> None:
    state = tables()
    for key, described in latest_expected("orders").items():
        order = state.order(key)
        assert describe(order) == described
        state.save_order(order, None)
        assert state.orders[key.encode()].startswith(b"\xeb\x01")
        assert describe(state.order(key)) == described
    for key, described in latest_expected("stock").items():
        stock = state.sku(key)
        assert describe(stock) == described
        state.save_sku(stock)
        assert state.stock[key.encode()].startswith(b"\xeb\x01")
        assert describe(state.sku(key)) == described


def test_alert_books_restore_and_carry_on() -> None:
    state = tables()
    for key, described in latest_expected("stock-alerts").items():
        book = statecodec.decode_alerts(state.stock_alerts[key.encode()])
        assert describe(book) == described
        # A replay that finds what the book holds changes nothing, so nothing is written...
        holds = {t: finding(a) for t, a in book.alerts.items() if a.resolved_ms is None}
        current = Tables.reconcile_alerts(state.stock_alerts, "sku", key, holds, 1, replay=True)
        assert current == book.current()
        assert state.stock_alerts[key.encode()].startswith(b"{")
        # ...and the next alert of a type that resolved before is its type's next one, in the
        # current format.
        alert_type, n = next((t, n) for t, n in book.opened.items() if t not in holds)
        again = {alert_type: Finding(Severity.WARNING, "again", {"sku": key})}
        [opened] = Tables.reconcile_alerts(state.stock_alerts, "sku", key, holds | again, 2)
        assert opened.alert_id == f"{alert_type}/{key}/{n + 1}"
        assert state.stock_alerts[key.encode()].startswith(b"\xeb\x01")
        assert (
            statecodec.decode_alerts(state.stock_alerts[key.encode()]).opened[alert_type] == n + 1
        )


def finding(alert: Alert) -> Finding:
    return Finding(alert.severity, alert.summary, alert.evidence)

"""The tables restore state from a changelog written by the release before the state codec,
and write it back in the current format."""

from __future__ import annotations

from typing import Any

from streams.domain.alerts import Finding, Severity
from streams.domain.statecodec import decode_alerts
from streams.topology.tables import Tables
from tests.streams.domain.stored import changelog, describe, expected


class Written:
    """Stands in for a batch: writes the state straight into the (dict) table."""

    def put_state(
        self, table: dict[bytes, bytes], partition: int, key: bytes, value: bytes
    ) -> None:
        table[key] = value


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
        storefront_alerts={},
        accounts={},
    )


def test_orders_and_skus_restore_and_are_saved_in_the_current_format() -> None:
    state, batch = tables(), Written()
    for key, described in latest_expected("orders").items():
        order = state.order(key)
        assert describe(order) == described
        state.save_order(batch, 0, order)
        assert state.orders[key.encode()].startswith(b"\xeb\x01")
        assert describe(state.order(key)) == described
    for key, described in latest_expected("stock").items():
        stock = state.sku(key)
        assert describe(stock) == described
        state.save_sku(batch, 0, stock)
        assert state.stock[key.encode()].startswith(b"\xeb\x01")
        assert describe(state.sku(key)) == described


def test_alert_books_restore_and_carry_on() -> None:
    state, batch = tables(), Written()
    for key, described in latest_expected("stock-alerts").items():
        book = Tables.alert_book(state.stock_alerts, "sku", key)
        assert describe(book) == described
        # The next alert of a type that resolved before is its type's next one.
        alert_type, n = next(
            (t, n) for t, n in book.opened.items() if book.alerts[t].resolved_ms is not None
        )
        finding = Finding(Severity.WARNING, "again", {"sku": key})
        [opened] = book.reconcile({alert_type: finding}, 2)
        assert opened.alert_id == f"{alert_type}/{key}/{n + 1}"
        Tables.save_alert_book(batch, state.stock_alerts, 0, book)
        stored = state.stock_alerts[key.encode()]
        assert stored.startswith(b"\xeb\x01")
        assert decode_alerts(stored) == book

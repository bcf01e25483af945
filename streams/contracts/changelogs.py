"""The changelog-backed tables' names and their changelog topics, part of the topic
catalogue: `erpbridge topics create` and the Kubernetes manifests create them, and each
must have the partition count of the input topic its table is partitioned like."""

from __future__ import annotations

from streams.contracts.topics import (
    CUSTOMERS,
    ERP_RESULTS,
    INVENTORY,
    ORDERS,
    STOREFRONT_RESULTS,
)

ORDERS_TABLE = "orders"
STOCK_TABLE = "stock"
DEADLINES_TABLE = "order-deadlines"
"""Order id -> when the order's timer must next tick it: its oldest waiting event expires
or a time-based alert may open; only orders that have such a time."""
ORDER_ALERTS_TABLE = "order-alerts"
STOCK_ALERTS_TABLE = "stock-alerts"
COMMAND_ALERTS_TABLE = "command-alerts"
STOREFRONT_ALERTS_TABLE = "storefront-alerts"
"""Alerts are state (opened once, resolved once), kept per entity beside its state."""
ACCOUNTS_TABLE = "customer-accounts"
"""Storefront account -> the last UpsertCustomer it sent (streams.domain.accounts)."""


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


TABLE_SOURCES = {
    ORDERS_TABLE: ORDERS,
    DEADLINES_TABLE: ORDERS,
    STOCK_TABLE: INVENTORY,
    ORDER_ALERTS_TABLE: ORDERS,
    STOCK_ALERTS_TABLE: INVENTORY,
    COMMAND_ALERTS_TABLE: ERP_RESULTS,
    STOREFRONT_ALERTS_TABLE: STOREFRONT_RESULTS,
    ACCOUNTS_TABLE: CUSTOMERS,
}
"""Each table and the input topic whose partitions its changelog must match."""


def changelog_sources(app_id: str) -> dict[str, str]:
    """Each changelog topic and the input topic whose partitions it must match."""
    return {changelog_topic(app_id, table): source for table, source in TABLE_SOURCES.items()}

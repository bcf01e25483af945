"""The changelog-backed tables and how state is stored in them.

Each table is partitioned like the topics its agent reads, so a key's state lives on the
partition its events arrive on; Faust writes every change to `<app id>-<table>-changelog`
and restores from it (only its tail, when the RocksDB directory survived).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import faust
from faust.types import TableT

from streams.contracts.changelogs import (
    COMMAND_ALERTS_TABLE,
    DEADLINES_TABLE,
    ORDER_ALERTS_TABLE,
    ORDERS_TABLE,
    STOCK_ALERTS_TABLE,
    STOCK_TABLE,
)
from streams.contracts.topics import ERP_RESULTS, INVENTORY, ORDERS, TopicCatalog
from streams.domain import statecodec
from streams.domain.alerts import Alert, AlertBook, Finding
from streams.domain.orders import Order
from streams.domain.stock import SkuStock


@dataclass
class Tables:
    orders: TableT[bytes, bytes]
    stock: TableT[bytes, bytes]
    deadlines: TableT[bytes, bytes]
    order_alerts: TableT[bytes, bytes]
    stock_alerts: TableT[bytes, bytes]
    command_alerts: TableT[bytes, bytes]

    @classmethod
    def create(cls, app: faust.App, catalog: TopicCatalog) -> Tables:
        def table(name: str, source: str) -> TableT[bytes, bytes]:
            # bytes types make Faust store raw bytes; state is encoded by streams.domain.statecodec.
            return app.Table(
                name, partitions=catalog.partitions(source), key_type=bytes, value_type=bytes
            )

        return cls(
            orders=table(ORDERS_TABLE, ORDERS),
            stock=table(STOCK_TABLE, INVENTORY),
            deadlines=table(DEADLINES_TABLE, ORDERS),
            order_alerts=table(ORDER_ALERTS_TABLE, ORDERS),
            stock_alerts=table(STOCK_ALERTS_TABLE, INVENTORY),
            command_alerts=table(COMMAND_ALERTS_TABLE, ERP_RESULTS),
        )

    def order(self, order_id: str) -> Order:
        data = self.orders.get(order_id.encode())
        return Order(order_id) if data is None else statecodec.decode_order(data)

    def save_order(self, order: Order, deadline_ms: int | None) -> None:
        """The order, and when its timer must next tick it (None: never by time alone)."""
        key = order.order_id.encode()
        self.orders[key] = statecodec.encode_order(order)
        if deadline_ms is not None:
            self.deadlines[key] = str(deadline_ms).encode()
        elif key in self.deadlines:
            del self.deadlines[key]

    def sku(self, sku: str) -> SkuStock:
        data = self.stock.get(sku.encode())
        return SkuStock(sku) if data is None else statecodec.decode_sku(data)

    def save_sku(self, stock: SkuStock) -> None:
        self.stock[stock.sku.encode()] = statecodec.encode_sku(stock)

    @staticmethod
    def reconcile_alerts(
        table: TableT[bytes, bytes],
        entity_type: str,
        key: str,
        findings: Mapping[str, Finding],
        now_ms: int,
        *,
        replay: bool = False,
    ) -> list[Alert]:
        """The alerts the findings open or resolve (the book saved if any), and on a replay
        every alert's current state too, for receivers that may have lost it."""
        data = table.get(key.encode())
        book = AlertBook(entity_type, key) if data is None else statecodec.decode_alerts(data)
        changes = book.reconcile(findings, now_ms)
        if changes:
            table[key.encode()] = statecodec.encode_alerts(book)
        return changes + book.current() if replay else changes

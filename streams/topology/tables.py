"""The changelog-backed tables and how state is stored in them.

Each table is partitioned like the topics its agent reads, so a key's state lives on the
partition its events arrive on; Faust writes every change to `<app id>-<table>-changelog`
and restores from it (only its tail, when the RocksDB directory survived).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT

from streams.contracts.changelogs import (
    ACCOUNTS_TABLE,
    COMMAND_ALERTS_TABLE,
    DEADLINES_TABLE,
    ORDER_ALERTS_TABLE,
    ORDERS_TABLE,
    STOCK_ALERTS_TABLE,
    STOCK_TABLE,
    STOREFRONT_ALERTS_TABLE,
)
from streams.contracts.topics import (
    CUSTOMERS,
    ERP_RESULTS,
    INVENTORY,
    ORDERS,
    STOREFRONT_RESULTS,
    TopicCatalog,
)
from streams.domain.accounts import Sent
from streams.domain.alerts import AlertBook
from streams.domain.orders import Order
from streams.domain.statecodec import (
    decode_alerts,
    decode_order,
    decode_sku,
    encode_alerts,
    encode_order,
    encode_sku,
)
from streams.domain.stock import SkuStock
from streams.topology.agents.batch import Batch


@dataclass
class Tables:
    orders: TableT[bytes, bytes]
    stock: TableT[bytes, bytes]
    deadlines: TableT[bytes, bytes]
    order_alerts: TableT[bytes, bytes]
    stock_alerts: TableT[bytes, bytes]
    command_alerts: TableT[bytes, bytes]
    storefront_alerts: TableT[bytes, bytes]
    accounts: TableT[bytes, bytes]

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
            storefront_alerts=table(STOREFRONT_ALERTS_TABLE, STOREFRONT_RESULTS),
            accounts=table(ACCOUNTS_TABLE, CUSTOMERS),
        )

    @property
    def alert_tables(self) -> tuple[TableT[bytes, bytes], ...]:
        return (self.order_alerts, self.stock_alerts, self.command_alerts, self.storefront_alerts)

    def order(self, order_id: str) -> Order:
        data = self.orders.get(order_id.encode())
        return Order(order_id) if data is None else decode_order(data)

    def save_order(self, batch: Batch, partition: int, order: Order) -> None:
        batch.put_state(self.orders, partition, order.order_id.encode(), encode_order(order))

    def deadline(self, order_id: str) -> int | None:
        """When the order's timer must next tick it (None: never by time alone)."""
        data = self.deadlines.get(order_id.encode())
        return None if data is None else int(data)

    def save_deadline(
        self, batch: Batch, partition: int, order_id: str, deadline_ms: int | None
    ) -> None:
        value = None if deadline_ms is None else str(deadline_ms).encode()
        batch.put_state(self.deadlines, partition, order_id.encode(), value)

    def sku(self, sku: str) -> SkuStock:
        data = self.stock.get(sku.encode())
        return SkuStock(sku) if data is None else decode_sku(data)

    def save_sku(self, batch: Batch, partition: int, stock: SkuStock) -> None:
        batch.put_state(self.stock, partition, stock.sku.encode(), encode_sku(stock))

    def sent(self, account: str) -> Sent | None:
        data = self.accounts.get(account.encode())
        return None if data is None else Sent.decode(data)

    def save_sent(self, batch: Batch, partition: int, account: str, sent: Sent) -> None:
        batch.put_state(self.accounts, partition, account.encode(), sent.encode())

    @staticmethod
    def alert_book(
        table: TableT[bytes, bytes], entity_type: str, key: str, slot: str | None = None
    ) -> AlertBook:
        """The alerts of entity `key`, stored under `slot` (default: the key itself)."""
        data = table.get((slot or key).encode())
        return AlertBook(entity_type, key) if data is None else decode_alerts(data)

    @staticmethod
    def save_alert_book(
        batch: Batch,
        table: TableT[bytes, bytes],
        partition: int,
        book: AlertBook,
        slot: str | None = None,
    ) -> None:
        batch.put_state(table, partition, (slot or book.entity_id).encode(), encode_alerts(book))

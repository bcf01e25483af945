"""The records the agents hand on, encoded and queued in the batch that caused them: ERP
commands to the pending topic, the finance journal (which the dispatcher also reads, to post
each entry to the ERP), alerts, the derived topics, and the internal messages between
agents, bundled per partition.

Every output carries a deterministic id, so a re-send after a crash or a replay is
recognisable downstream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from streams.contracts.codec import Codec
from streams.contracts.journal import encode_entry, entry_key
from streams.contracts.topics import (
    ALERTS,
    AVAILABILITY,
    ERP_PENDING,
    JOURNAL,
    ORDER_FEEDBACK,
    ORDER_STATUS,
    STOCK_REQUESTS,
    STOREFRONT_FULFILMENTS,
    TopicCatalog,
)
from streams.domain import messages
from streams.domain.alerts import Alert
from streams.domain.commands import Command
from streams.domain.finance import JournalEntry
from streams.domain.messages import AllocationUpdate, ErpAnswer, OrderFeedback, StockRequest, Tick
from streams.domain.orders import Transition
from streams.domain.stock import Availability
from streams.domain.tracking import TrackingPush
from streams.topology.agents import derived
from streams.topology.agents.batch import Batch
from streams.topology.agents.intake import partition_for

M = TypeVar("M", bound=StockRequest | AllocationUpdate | Tick | ErpAnswer)


class Outputs:
    def __init__(self, catalog: TopicCatalog, codec: Codec) -> None:
        self._codec = codec
        self._pending = catalog.physical(ERP_PENDING)
        self._journal = catalog.physical(JOURNAL)
        self._alerts = catalog.physical(ALERTS)
        self._status = catalog.physical(ORDER_STATUS)
        self._availability = catalog.physical(AVAILABILITY)
        self._fulfilments = catalog.physical(STOREFRONT_FULFILMENTS)
        self._requests = catalog.physical(STOCK_REQUESTS)
        self._requests_partitions = catalog.partitions(STOCK_REQUESTS)
        self._feedback = catalog.physical(ORDER_FEEDBACK)
        self._feedback_partitions = catalog.partitions(ORDER_FEEDBACK)

    def command(self, batch: Batch, command: Command) -> None:
        batch.send(self._pending, command.dispatch_key.encode(), command.encode())

    def journal(self, batch: Batch, entry: JournalEntry) -> None:
        """The entry, once: for analysts, and for the dispatcher to post to the ERP."""
        value = encode_entry(self._codec, entry, topic=self._journal)
        batch.send(self._journal, entry_key(entry), value)

    def alert(self, batch: Batch, alert: Alert) -> None:
        value = self._codec.encode(
            "erpbridge.ReconciliationAlert", alert.to_datum(), topic=self._alerts
        )
        batch.send(self._alerts, alert.alert_id.encode(), value)

    def status(self, batch: Batch, order_id: str, transition: Transition) -> None:
        datum = derived.status_changed(order_id, transition)
        value = self._codec.encode("erpbridge.OrderStatusChanged", datum, topic=self._status)
        batch.send(self._status, order_id.encode(), value)

    def availability(
        self, batch: Batch, sku: str, availability: Availability, cause: str, at_ms: int
    ) -> None:
        datum = derived.stock_availability(sku, availability, cause, at_ms)
        value = self._codec.encode("erpbridge.StockAvailability", datum, topic=self._availability)
        batch.send(self._availability, sku.encode(), value)

    def tracking(self, batch: Batch, push: TrackingPush) -> None:
        value = self._codec.encode(
            "erpbridge.StorefrontFulfilment", push.to_datum(), topic=self._fulfilments
        )
        batch.send(self._fulfilments, push.order_id.encode(), value)

    def requests(self, batch: Batch, requests: Sequence[StockRequest]) -> None:
        """Stock requests re-keyed by SKU: one record per partition of the stock agent."""
        self._bundled(batch, self._requests, self._requests_partitions, requests, lambda r: r.sku)

    def feedback(self, batch: Batch, feedback: Sequence[OrderFeedback]) -> None:
        """Answers for the order agent, re-keyed by order id: one record per partition."""
        self._bundled(
            batch, self._feedback, self._feedback_partitions, feedback, lambda f: f.order_id
        )

    @staticmethod
    def _bundled(
        batch: Batch,
        topic: str,
        partitions: int,
        items: Sequence[M],
        key_of: Callable[[M], str],
    ) -> None:
        groups: dict[int, list[M]] = {}
        for item in items:
            groups.setdefault(partition_for(key_of(item).encode(), partitions), []).append(item)
        for partition, group in groups.items():
            # The key names the first message's entity, for people reading the topic.
            key = key_of(group[0]).encode()
            batch.send(topic, key, messages.encode_bundle(group), partition=partition)

"""The storefront results agent: what storefronts did with what erpbridge pushed to them
(storefront.results, keyed by `<route>:<sku>@<warehouse>`, storefront.fulfilment-results,
keyed by `<route>:<order id>/<fulfilment id>`, storefront.catalog-results, keyed by
`<route>:<sku>`, and storefront.customer-results, keyed by `<route>:<customer id>`) into
alerts.

A push refused for good opens an alert (`storefront-level-refused`,
`storefront-fulfilment-refused`, `storefront-product-refused`,
`storefront-customer-refused`), resolved when a later result for the same key is not one;
the alert books live in one table, keyed by entity and record key and partitioned like the
four topics. The storefront sink dead-letters the
pushed record itself (connectors.storefront.sink).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from faust.types import EventT, StreamT

from streams.contracts.topics import (
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_FULFILMENT_RESULTS,
    STOREFRONT_RESULTS,
)
from streams.domain.alerts import (
    STOREFRONT_CUSTOMER,
    STOREFRONT_CUSTOMER_REFUSED,
    STOREFRONT_FULFILMENT,
    STOREFRONT_FULFILMENT_REFUSED,
    STOREFRONT_LEVEL,
    STOREFRONT_LEVEL_REFUSED,
    STOREFRONT_PRODUCT,
    STOREFRONT_PRODUCT_REFUSED,
    storefront_findings,
)
from streams.domain.events import to_ms
from streams.domain.messages import StorefrontOutcome
from streams.topology.accounting import Outcome
from streams.topology.agents.batch import Batch, per_partition, run_in_batches
from streams.topology.agents.context import AgentContext


def _outcome(datum: dict[str, Any], what: str, facts: dict[str, str]) -> StorefrontOutcome:
    """A storefront result datum as the rules see it; `what` and `facts` name what was pushed."""
    return StorefrontOutcome(
        route=datum["route"],
        what=what,
        facts=facts,
        failed=datum["status"] == "FAILED",
        permanent=datum["permanent"],
        message=datum["message"],
        at_ms=to_ms(datum["occurred_at"]),
    )


def level_outcome(datum: dict[str, Any]) -> StorefrontOutcome:
    """An erpbridge.StorefrontResult datum as the rules see it."""
    sku, warehouse, quantity = datum["sku"], datum["warehouse_id"], datum["quantity"]
    what = f"the stock level {quantity} of {sku} (warehouse {warehouse})"
    return _outcome(datum, what, {"sku": sku, "warehouse_id": warehouse, "quantity": str(quantity)})


def fulfilment_outcome(datum: dict[str, Any]) -> StorefrontOutcome:
    """An erpbridge.StorefrontFulfilmentResult datum as the rules see it."""
    order, fulfilment = datum["order_id"], datum["fulfillment_id"]
    what = f"fulfilment {fulfilment} of order {order}"
    return _outcome(datum, what, {"order_id": order, "fulfillment_id": fulfilment})


def product_outcome(datum: dict[str, Any]) -> StorefrontOutcome:
    """An erpbridge.StorefrontProductResult datum as the rules see it."""
    return _outcome(datum, f"the product {datum['sku']}", {"sku": datum["sku"]})


def customer_outcome(datum: dict[str, Any]) -> StorefrontOutcome:
    """An erpbridge.StorefrontCustomerResult datum as the rules see it."""
    customer = datum["customer_id"]
    return _outcome(datum, f"the customer {customer}", {"customer_id": customer})


_KINDS: dict[str, tuple[str, str, Callable[[dict[str, Any]], StorefrontOutcome]]] = {
    STOREFRONT_RESULTS: (STOREFRONT_LEVEL, STOREFRONT_LEVEL_REFUSED, level_outcome),
    STOREFRONT_FULFILMENT_RESULTS: (
        STOREFRONT_FULFILMENT,
        STOREFRONT_FULFILMENT_REFUSED,
        fulfilment_outcome,
    ),
    STOREFRONT_CATALOG_RESULTS: (STOREFRONT_PRODUCT, STOREFRONT_PRODUCT_REFUSED, product_outcome),
    STOREFRONT_CUSTOMER_RESULTS: (
        STOREFRONT_CUSTOMER,
        STOREFRONT_CUSTOMER_REFUSED,
        customer_outcome,
    ),
}
"""Per topic: the entity its keys name, the alert type of a refusal, the datum's reading."""


class StorefrontResultsAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._sources = {context.catalog.physical(name): name for name in _KINDS}

    def register(self) -> None:
        topic = self._c.topic(*_KINDS)
        self._c.app.agent(topic, name="storefront-results")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        await run_in_batches(self._c.app, stream, self._handle_batch)

    def _handle_batch(self, batch: Batch, events: Sequence[EventT[bytes]]) -> None:
        for partition, group in per_partition(events):
            self._handle_partition(batch, partition, group)

    def _handle_partition(
        self, batch: Batch, partition: int, events: Sequence[EventT[bytes]]
    ) -> None:
        results: dict[tuple[str, str], list[StorefrontOutcome]] = {}
        for event in events:
            name = self._sources[event.message.topic]
            datum = self._c.intake.admit_datum(batch, name, event.message)
            if datum is not None:
                key = (event.message.key or b"").decode()
                results.setdefault((name, key), []).append(_KINDS[name][2](datum))
        tables = self._c.tables
        for (name, key), outcomes in results.items():
            entity, alert_type, _ = _KINDS[name]
            # The four kinds share the table: the entity in the slot keeps a SKU with a
            # "/" in it apart from a fulfilment's key, and a product's from a level's.
            slot = f"{entity}:{key}"
            book = tables.alert_book(tables.storefront_alerts, entity, key, slot)
            changed = False
            for outcome in outcomes:
                findings = storefront_findings(alert_type, key, outcome)
                changes = book.reconcile(findings, self._c.now_ms())
                changed |= bool(changes)
                # A result that changes nothing may be a redelivery whose alert was lost.
                for alert in changes or book.current():
                    self._c.outputs.alert(batch, alert)
                self._c.accounting.outcome(name, Outcome.APPLIED)
            if changed:
                tables.save_alert_book(batch, tables.storefront_alerts, partition, book, slot)

"""The storefront results agent: what storefronts did with the stock levels erpbridge pushed
(storefront.results, keyed by `<route>:<sku>@<warehouse>`) into alerts.

A level refused for good opens a `storefront-level-refused` alert, resolved when a later
result for the level is not one; the alert books live in a table partitioned like
storefront.results. The sink dead-letters the availability record itself
(connectors.storefront.sink).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import EventT, StreamT

from streams.contracts.topics import STOREFRONT_RESULTS
from streams.domain.alerts import STOREFRONT_LEVEL, level_findings
from streams.domain.events import to_ms
from streams.domain.messages import LevelOutcome
from streams.topology.accounting import Outcome
from streams.topology.agents.batch import Batch, per_partition, run_in_batches
from streams.topology.agents.context import AgentContext


def level_outcome_of(datum: dict[str, Any]) -> LevelOutcome:
    """An erpbridge.StorefrontResult datum as the rules see it."""
    return LevelOutcome(
        route=datum["route"],
        sku=datum["sku"],
        warehouse_id=datum["warehouse_id"],
        quantity=datum["quantity"],
        status=datum["status"],
        message=datum["message"],
        permanent=datum["permanent"],
        at_ms=to_ms(datum["occurred_at"]),
    )


class StorefrontResultsAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(STOREFRONT_RESULTS)

    def register(self) -> None:
        self._c.app.agent(self._source, name="storefront-results")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        await run_in_batches(self._c.app, stream, self._handle_batch)

    def _handle_batch(self, batch: Batch, events: Sequence[EventT[bytes]]) -> None:
        for partition, group in per_partition(events):
            self._handle_partition(batch, partition, group)

    def _handle_partition(
        self, batch: Batch, partition: int, events: Sequence[EventT[bytes]]
    ) -> None:
        results: dict[str, list[LevelOutcome]] = {}
        for event in events:
            datum = self._c.intake.admit_datum(batch, STOREFRONT_RESULTS, event.message)
            if datum is not None:
                key = f"{datum['route']}:{datum['sku']}@{datum['warehouse_id']}"
                results.setdefault(key, []).append(level_outcome_of(datum))
        tables = self._c.tables
        for key, outcomes in results.items():
            book = tables.alert_book(tables.level_alerts, STOREFRONT_LEVEL, key)
            changed = False
            for outcome in outcomes:
                changes = book.reconcile(level_findings(key, outcome), self._c.now_ms())
                changed |= bool(changes)
                # A result that changes nothing may be a redelivery whose alert was lost.
                for alert in changes or book.current():
                    self._c.outputs.alert(batch, alert)
                self._c.accounting.outcome(STOREFRONT_RESULTS, Outcome.APPLIED)
            if changed:
                tables.save_alert_book(batch, tables.level_alerts, partition, book)

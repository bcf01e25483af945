"""The results agent: the ERP's answers (erp.results, keyed by command id) back into state.

A permanent failure opens an alert for the command (resolved when a later result for it
succeeds), kept in a table partitioned like erp.results; an answer about an order goes on
to the order agent, re-keyed by order id, so the order records its ERP document and its
own alerts (a captured payment waiting for its sales order) can resolve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from faust.types import EventT, StreamT

from streams.contracts.topics import ERP_RESULTS
from streams.domain.alerts import ERP_COMMAND, command_findings
from streams.domain.events import to_ms
from streams.domain.messages import ErpAnswer, ErpOutcome, OrderFeedback
from streams.topology.accounting import Outcome
from streams.topology.agents.batch import Batch, per_partition, run_in_batches
from streams.topology.agents.context import AgentContext


def outcome_of(datum: dict[str, Any]) -> ErpOutcome:
    """An erpbridge.ErpResult datum as the rules see it."""
    error = datum["error"]
    return ErpOutcome(
        succeeded=datum["status"] == "SUCCEEDED",
        document_type=datum["document_type"],
        document_id=datum["document_id"],
        error=None if error is None else f"{error['code']}: {error['message']}",
        permanent=error is not None and error["permanent"],
        at_ms=to_ms(datum["occurred_at"]),
    )


class ResultsAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self.answers: Counter[tuple[str, str, bool]] = Counter()
        """Results read, by (target, command kind, succeeded); a redelivered one counts again."""
        self._source = context.topic(ERP_RESULTS)

    def register(self) -> None:
        self._c.app.agent(self._source, name="results")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        await run_in_batches(self._c.app, stream, self._handle_batch)

    def _handle_batch(self, batch: Batch, events: Sequence[EventT[bytes]]) -> None:
        answers: list[OrderFeedback] = []
        for partition, group in per_partition(events):
            self._handle_partition(batch, partition, group, answers)
        self._c.outputs.feedback(batch, answers)

    def _handle_partition(
        self,
        batch: Batch,
        partition: int,
        events: Sequence[EventT[bytes]],
        answers: list[OrderFeedback],
    ) -> None:
        results: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            datum = self._c.intake.admit_datum(batch, ERP_RESULTS, event.message)
            if datum is not None:
                results.setdefault(datum["command_id"], []).append(datum)
        tables = self._c.tables
        for command_id, data in results.items():
            book = tables.alert_book(tables.command_alerts, ERP_COMMAND, command_id)
            changed = False
            for datum in data:
                outcome = outcome_of(datum)
                self.answers[
                    datum["target"], datum.get("kind") or "unknown", outcome.succeeded
                ] += 1
                now = self._c.now_ms()
                changes = book.reconcile(command_findings(command_id, outcome), now)
                changed |= bool(changes)
                # A result that changes nothing may be a redelivery whose alert was lost:
                # the command's alerts go again (a command has one or two).
                for alert in changes or book.current():
                    self._c.outputs.alert(batch, alert)
                self._c.accounting.outcome(ERP_RESULTS, Outcome.APPLIED)
                order_id = datum["order_id"]
                if order_id is not None:
                    answers.append(ErpAnswer(order_id, command_id, outcome))
            if changed:
                tables.save_alert_book(batch, tables.command_alerts, partition, book)

"""The results agent: the ERP's answers (erp.results, keyed by command id) back into state.

A permanent failure opens an alert for the command (resolved when a later result for it
succeeds), kept in a table partitioned like erp.results; an answer about an order goes on
to the order agent, re-keyed by order id, so the order records its ERP document and its
own alerts (a captured payment waiting for its sales order) can resolve.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from faust.types import Message, StreamT

from streams.contracts.codec import DecodeError
from streams.contracts.topics import ERP_RESULTS, ORDER_FEEDBACK, spec
from streams.domain import messages
from streams.domain.alerts import ERP_COMMAND, command_findings
from streams.domain.events import to_ms
from streams.domain.messages import ErpAnswer, ErpOutcome
from streams.topology.accounting import Outcome
from streams.topology.agents.context import AgentContext
from streams.topology.agents.logcontext import about_record


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
        self._feedback = context.topic(ORDER_FEEDBACK)

    def register(self) -> None:
        self._c.app.agent(self._source, name="results")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            with about_record(ERP_RESULTS, event.message):
                await self._on_result(event.message)

    async def _on_result(self, message: Message) -> None:
        self._c.accounting.consumed(ERP_RESULTS)
        try:
            datum = self._c.codec.decode(
                message.value, expected=spec(ERP_RESULTS).value_schema
            ).datum
        except DecodeError as error:
            await self._c.intake.reject(ERP_RESULTS, message, "decode", error.reason, str(error))
            return
        command_id: str = datum["command_id"]
        outcome = outcome_of(datum)
        self.answers[datum["target"], datum.get("kind") or "unknown", outcome.succeeded] += 1
        now = self._c.now_ms()
        tables = self._c.tables
        findings = command_findings(command_id, outcome)
        alerts = tables.reconcile_alerts(
            tables.command_alerts, ERP_COMMAND, command_id, findings, now
        )
        self._c.accounting.outcome(ERP_RESULTS, Outcome.APPLIED)
        for alert in alerts:
            self._c.outputs.alert(alert)
        order_id = datum["order_id"]
        if order_id is not None:
            answer = ErpAnswer(order_id, command_id, outcome)
            self._feedback.send_soon(key=order_id.encode(), value=messages.encode(answer))

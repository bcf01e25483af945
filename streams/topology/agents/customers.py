"""The customers agent: storefront accounts (commerce.customers, keyed by account) into
UpsertCustomer commands for the ERP (streams.domain.accounts).

Per account in a batch it reads what the account sent last once, applies its events in
order, and writes it once; the commands wait on internal.erp-pending like the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT, Message, StreamT

from streams.contracts.topics import CUSTOMERS
from streams.domain.accounts import account_command
from streams.domain.events import InputEvent, Rejection
from streams.topology.accounting import Outcome
from streams.topology.agents.batch import Batch, per_partition, run_in_batches
from streams.topology.agents.context import AgentContext


class CustomersAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(CUSTOMERS)

    def register(self) -> None:
        self._c.app.agent(self._source, name="customers")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        await run_in_batches(self._c.app, stream, self._handle_batch)

    def _handle_batch(self, batch: Batch, events: Sequence[EventT[bytes]]) -> None:
        for partition, group in per_partition(events):
            work: dict[str, list[tuple[Message, InputEvent]]] = {}
            for event in group:
                admitted = self._c.intake.admit(batch, CUSTOMERS, event.message)
                if admitted is not None:
                    work.setdefault(admitted.key, []).append((event.message, admitted))
            for account, items in work.items():
                self._handle_account(batch, partition, account, items)

    def _handle_account(
        self,
        batch: Batch,
        partition: int,
        account: str,
        items: list[tuple[Message, InputEvent]],
    ) -> None:
        c = self._c
        before = sent = c.tables.sent(account)
        for message, event in items:
            try:
                command, sent = account_command(event, c.commands, sent)
            except Rejection as rejection:
                c.intake.reject(
                    batch, CUSTOMERS, message, "rules", rejection.reason, rejection.detail
                )
                continue
            if command is None:
                c.accounting.outcome(CUSTOMERS, Outcome.DUPLICATE)
                continue
            c.outputs.command(batch, command)
            c.accounting.outcome(CUSTOMERS, Outcome.APPLIED)
        if sent is not None and sent != before:
            c.tables.save_sent(batch, partition, account, sent)

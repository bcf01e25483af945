"""The order agent: order and payment events, the stock's and the ERP's answers, into the
orders table.

Reads commerce.orders, commerce.payments and internal.order-feedback (all keyed by order id,
co-partitioned) in batches; per order in a batch it reads the state once, applies each record
in arrival order as the rules say, and writes the state once. It sends stock requests
re-keyed by SKU, lifecycle transitions to orders.status, ERP commands to the pending topic,
journal entries, reconciliation alerts, and events that cannot be applied to their
dead-letter topic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from faust.types import EventT, Message, StreamT

from streams.contracts.deadletter import SourceRecord
from streams.contracts.topics import ORDER_FEEDBACK, ORDERS, PAYMENTS
from streams.domain import messages
from streams.domain.alerts import ORDER, AlertBook, order_alerts, order_next_check_ms
from streams.domain.events import InputEvent, Rejection
from streams.domain.followups import follow_ups, require_rate
from streams.domain.messages import AllocationUpdate, OrderFeedback, StockRequest, Tick
from streams.domain.orders import Order, OrderEffect, Verdict
from streams.domain.tracking import tracking_pushes
from streams.topology.accounting import Later, Outcome
from streams.topology.agents.batch import Batch, per_partition, run_in_batches
from streams.topology.agents.context import AgentContext
from streams.topology.agents.deadletters import source_of
from streams.topology.agents.intake import partition_for

log = logging.getLogger(__name__)

_OUTCOMES = {
    Verdict.APPLIED: Outcome.APPLIED,
    Verdict.DUPLICATE: Outcome.DUPLICATE,
    Verdict.WAITING: Outcome.WAITING,
}


@dataclass
class _Work:
    """One order's records in a batch, with what they came from."""

    items: list[tuple[str, Message, InputEvent | OrderFeedback]] = field(default_factory=list)


class OrderAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(ORDERS, PAYMENTS, ORDER_FEEDBACK)
        self._logical = {context.catalog.physical(n): n for n in (ORDERS, PAYMENTS, ORDER_FEEDBACK)}

    def register(self, expiry_interval: float) -> None:
        self._c.app.agent(self._source, name="orders")(self._run)
        self._c.app.timer(expiry_interval, name="orders.timer")(self._tick)

    async def _run(self, stream: StreamT[bytes]) -> None:
        await run_in_batches(self._c.app, stream, self._handle_batch)

    def _handle_batch(self, batch: Batch, events: Sequence[EventT[bytes]]) -> None:
        requests: list[StockRequest] = []
        for partition, group in per_partition(events):
            self._handle_partition(batch, partition, group, requests)
        self._c.outputs.requests(batch, requests)

    def _handle_partition(
        self,
        batch: Batch,
        partition: int,
        events: Sequence[EventT[bytes]],
        requests: list[StockRequest],
    ) -> None:
        work: dict[str, _Work] = {}
        for event in events:
            message = event.message
            name = self._logical[message.topic]
            if name == ORDER_FEEDBACK:
                bundle = self._c.intake.admit_internal(
                    batch, ORDER_FEEDBACK, message, messages.decode_feedback
                )
                for feedback in bundle or ():
                    work.setdefault(feedback.order_id, _Work()).items.append(
                        (name, message, feedback)
                    )
            else:
                admitted = self._c.intake.admit(batch, name, message)
                if admitted is not None:
                    work.setdefault(admitted.key, _Work()).items.append((name, message, admitted))
        for order_id, order_work in work.items():
            self._handle_order(batch, partition, order_id, order_work, requests)

    def _handle_order(
        self,
        batch: Batch,
        partition: int,
        order_id: str,
        work: _Work,
        requests: list[StockRequest],
    ) -> None:
        """Read the order once, apply its records in order, write it once."""
        tables = self._c.tables
        order = tables.order(order_id)
        book = tables.alert_book(tables.order_alerts, ORDER, order_id)
        book_changed = False
        next_check: int | None = None
        followed = False
        for name, message, item in work.items:
            if isinstance(item, InputEvent):
                effect = self._apply_input(batch, name, message, order, item)
                if effect is None:
                    continue
                facts_changed = effect.verdict is not Verdict.WAITING
            else:
                effect = self._apply_feedback(order, item)
                facts_changed = False
            changed, next_check = self._follow(batch, order, book, effect, facts_changed, requests)
            book_changed |= changed
            followed = True
        if not followed:
            next_check = order_next_check_ms(order, self._c.alerts, self._c.now_ms())
        deadlines = [order.next_deadline(self._c.policy), next_check]
        deadline = min((d for d in deadlines if d is not None), default=None)
        tables.save_order(batch, partition, order)
        if deadline != tables.deadline(order_id):
            tables.save_deadline(batch, partition, order_id, deadline)
        if book_changed:
            tables.save_alert_book(batch, tables.order_alerts, partition, book)

    def _apply_input(
        self, batch: Batch, name: str, message: Message, order: Order, event: InputEvent
    ) -> OrderEffect | None:
        try:
            require_rate(event, self._c.finance)
            effect = order.apply_event(
                event,
                lambda: source_of(message).to_json(),
                self._c.rules,
                self._c.policy,
                self._c.now_ms(),
            )
        except Rejection as rejection:
            self._c.intake.reject(batch, name, message, "rules", rejection.reason, rejection.detail)
            return None
        self._c.accounting.outcome(name, _OUTCOMES[effect.verdict], effect.reason)
        return effect

    def _apply_feedback(self, order: Order, feedback: OrderFeedback) -> OrderEffect:
        """A reservation outcome or ERP answer that tells nothing new may be a redelivery
        whose alerts were lost: it counts as a duplicate, which re-sends them."""
        if isinstance(feedback, Tick):
            return order.expire(feedback.now_ms, self._c.policy)
        if isinstance(feedback, AllocationUpdate):
            new = order.apply_allocation(feedback)
        else:
            new = order.apply_erp_result(feedback.command_id, feedback.outcome)
        return OrderEffect(Verdict.APPLIED if new else Verdict.DUPLICATE)

    def _follow(
        self,
        batch: Batch,
        order: Order,
        book: AlertBook,
        effect: OrderEffect,
        facts_changed: bool,
        requests: list[StockRequest],
    ) -> tuple[bool, int | None]:
        """Everything one record's effect hands on; whether the alert book changed, and when
        the alert rules are next due to find something (`order_next_check_ms`).

        Commands and journal entries follow from the order's facts, so they are derived
        only when an input applied (or was redelivered), not on allocations, ERP answers
        and timer ticks. A duplicate is a possible redelivery after a crash that lost the
        first outputs: all go again.
        """
        c = self._c
        replay = effect.verdict is Verdict.DUPLICATE
        now = c.now_ms()
        for dead in effect.dead:
            record = SourceRecord.from_json(dead.waiting.record)
            name = c.catalog.logical(record.topic)
            c.dead_letters.send(
                batch, name, record, "rules", dead.rejection.reason, dead.rejection.detail
            )
            if not replay:
                c.accounting.waited(name, Later.DEAD_LETTERED, dead.rejection.reason)
        for waiting in effect.resolved:
            c.accounting.waited(c.catalog.logical(waiting.record["topic"]), Later.APPLIED)
        requests += effect.requests
        for transition in effect.transitions:
            c.outputs.status(batch, order.order_id, transition)
        if facts_changed:
            handed_on = follow_ups(order, c.commands, c.finance, replay=replay)
            for command in handed_on.commands:
                c.outputs.command(batch, command)
            for entry in handed_on.entries:
                c.outputs.journal(batch, entry)
            for push in tracking_pushes(order, c.tracking, replay=replay):
                c.outputs.tracking(batch, push)
        findings, next_check = order_alerts(order, c.alerts, now)
        changes = book.reconcile(findings, now)
        for alert in changes + book.current() if replay else changes:
            c.outputs.alert(batch, alert)
        return bool(changes), next_check

    async def _tick(self) -> None:
        """Ask the order agent to expire waiting events and check time-based alerts that are
        due, on owned partitions only, so across workers each order is ticked once.

        The timer only sends messages; the agent applies them like any record, so table
        writes stay in the stream and each partition's owner alone acts on it.
        """
        now = self._c.now_ms()
        topic = self._c.catalog.physical(ORDERS)
        partitions = self._c.catalog.partitions(ORDERS)
        owned = {
            tp.partition for tp in self._c.app.assignor.assigned_actives() if tp.topic == topic
        }
        due = [
            Tick(key.decode(), now)
            for key, value in list(self._c.tables.deadlines.items())
            if int(value) <= now and partition_for(key, partitions) in owned
        ]
        if due:
            batch = Batch(self._c.app)
            self._c.outputs.feedback(batch, due)
            await batch.flush()

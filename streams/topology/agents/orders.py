"""The order agent: order and payment events, the stock's and the ERP's answers, into the
orders table.

Reads commerce.orders, commerce.payments and internal.order-feedback (all keyed by order id,
co-partitioned); sends stock requests re-keyed by SKU, lifecycle transitions to
orders.status, ERP commands to the pending topic, journal entries, reconciliation alerts,
and events that cannot be applied to their dead-letter topic.
"""

from __future__ import annotations

import logging

from faust.types import Message, StreamT

from streams.contracts.deadletter import SourceRecord
from streams.contracts.topics import (
    ORDER_FEEDBACK,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    STOCK_REQUESTS,
)
from streams.domain import messages
from streams.domain.alerts import ORDER, order_findings, order_next_check_ms
from streams.domain.events import Rejection
from streams.domain.followups import FollowUps, follow_ups, require_rate
from streams.domain.messages import AllocationUpdate, ErpAnswer, Tick
from streams.domain.orders import Order, OrderEffect, Verdict
from streams.topology.accounting import Later, Outcome
from streams.topology.agents import derived
from streams.topology.agents.context import AgentContext
from streams.topology.agents.deadletters import source_of
from streams.topology.agents.intake import partition_for
from streams.topology.agents.logcontext import about_record

log = logging.getLogger(__name__)

_OUTCOMES = {
    Verdict.APPLIED: Outcome.APPLIED,
    Verdict.DUPLICATE: Outcome.DUPLICATE,
    Verdict.WAITING: Outcome.WAITING,
}


class OrderAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(ORDERS, PAYMENTS, ORDER_FEEDBACK)
        self._requests = context.topic(STOCK_REQUESTS)
        self._feedback = context.topic(ORDER_FEEDBACK)
        self._status = context.topic(ORDER_STATUS)
        self._logical = {context.catalog.physical(n): n for n in (ORDERS, PAYMENTS, ORDER_FEEDBACK)}

    def register(self, expiry_interval: float) -> None:
        self._c.app.agent(self._source, name="orders")(self._run)
        self._c.app.timer(expiry_interval, name="orders.timer")(self._tick)

    async def _run(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            name = self._logical[message.topic]
            with about_record(name, message):
                if name == ORDER_FEEDBACK:
                    await self._on_feedback(message)
                else:
                    await self._on_input(name, message)

    async def _on_input(self, name: str, message: Message) -> None:
        event = await self._c.intake.admit(name, message)
        if event is None:
            return
        order = self._c.tables.order(event.key)
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
            await self._c.intake.reject(name, message, "rules", rejection.reason, rejection.detail)
            return
        self._c.accounting.outcome(name, _OUTCOMES[effect.verdict], effect.reason)
        await self._commit(order, effect, facts_changed=effect.verdict is not Verdict.WAITING)

    async def _on_feedback(self, message: Message) -> None:
        feedback = await self._c.intake.admit_internal(
            ORDER_FEEDBACK, message, messages.decode_feedback
        )
        if feedback is None:
            return
        order = self._c.tables.order(feedback.order_id)
        if isinstance(feedback, AllocationUpdate):
            order.apply_allocation(feedback)
            await self._commit(order, OrderEffect(Verdict.APPLIED))
        elif isinstance(feedback, Tick):
            await self._commit(order, order.expire(feedback.now_ms, self._c.policy))
        elif isinstance(feedback, ErpAnswer):
            order.apply_erp_result(feedback.command_id, feedback.outcome)
            await self._commit(order, OrderEffect(Verdict.APPLIED))

    async def _commit(
        self, order: Order, effect: OrderEffect, *, facts_changed: bool = False
    ) -> None:
        """Dead letters first (awaited), then state, then the other outputs.

        Commands and journal entries follow from the order's facts, so they are derived
        only when an input applied (or was redelivered), not on allocations, ERP answers
        and timer ticks.

        Outputs go through Faust's send buffer without waiting for each one: Faust flushes
        it before committing the offsets of the records that caused them. A duplicate is
        a possible redelivery after a crash that lost the first outputs: all go again.
        """
        replay = effect.verdict is Verdict.DUPLICATE
        now = self._c.now_ms()
        for dead in effect.dead:
            record = SourceRecord.from_json(dead.waiting.record)
            name = self._c.catalog.logical(record.topic)
            await self._c.dead_letters.send(
                name, record, "rules", dead.rejection.reason, dead.rejection.detail
            )
            self._c.accounting.waited(name, Later.DEAD_LETTERED, dead.rejection.reason)
        for waiting in effect.resolved:
            name = self._c.catalog.logical(waiting.record["topic"])
            self._c.accounting.waited(name, Later.APPLIED)
        handed_on = (
            follow_ups(order, self._c.commands, self._c.finance, replay=replay)
            if facts_changed
            else FollowUps([], [])
        )
        tables = self._c.tables
        findings = order_findings(order, self._c.alerts, now)
        alerts = tables.reconcile_alerts(
            tables.order_alerts, ORDER, order.order_id, findings, now, replay=replay
        )
        deadlines = [
            order.next_deadline(self._c.policy),
            order_next_check_ms(order, self._c.alerts, now),
        ]
        tables.save_order(order, min((d for d in deadlines if d is not None), default=None))
        for request in effect.requests:
            self._requests.send_soon(key=request.sku.encode(), value=messages.encode(request))
        for transition in effect.transitions:
            datum = derived.status_changed(order.order_id, transition)
            self._status.send_soon(
                key=order.order_id.encode(),
                value=self._c.codec.encode(
                    "erpbridge.OrderStatusChanged", datum, topic=self._status.get_topic_name()
                ),
            )
        for command in handed_on.commands:
            self._c.outputs.command(command)
        for entry in handed_on.entries:
            self._c.outputs.journal(entry)
        for alert in alerts:
            self._c.outputs.alert(alert)

    async def _tick(self) -> None:
        """Ask the order agent to expire waiting events and check time-based alerts that are
        due, on owned partitions only, so across workers each order is ticked once.

        The timer only sends messages; the agent applies them like any event, so table
        writes stay in the stream and each partition's owner alone acts on it.
        """
        now = self._c.now_ms()
        topic = self._c.catalog.physical(ORDERS)
        partitions = self._c.catalog.partitions(ORDERS)
        owned = {
            tp.partition for tp in self._c.app.assignor.assigned_actives() if tp.topic == topic
        }
        for key, value in list(self._c.tables.deadlines.items()):
            if int(value) <= now and partition_for(key, partitions) in owned:
                tick = Tick(key.decode(), now)
                await self._feedback.send(key=key, value=messages.encode(tick))

"""`erpbridge connector medusa-source`: each Medusa route's orders, payments and customers,
read from its Admin API, as input events on commerce.orders, commerce.payments and
commerce.customers.

Medusa 2 sends no webhooks (its event bus is in-process and forgets what a receiver
missed), so its Admin API is polled. An order's `updated_at` moves when it is placed,
fulfilled, shipped, refunded, cancelled or completed; a capture moves only its payment's, so
both lists are read, each from its own cursor: the newest `updated_at` seen, less an
overlap (a change committed late with an earlier time is still seen), skipping what was
seen within the overlap unchanged. Every order either list names is read whole (with its
return receipts, when it has refunds) and mapped (connectors.webhooks.medusa.mapping); its events keep Medusa's ids, so an order read again
publishes what the topology drops as duplicates. A part that cannot be mapped goes to
webhooks.dlq with its reason and the order as Medusa served it.

Customers, guests' included (their orders name them too), are a third list with its own
cursor, each one read whole and published as its account. A customer's `updated_at` moves
with its own fields (names, email, phone, metadata) but not with its addresses, which the
list cannot filter on: a sweep of every customer with its addresses' times (`sweep`, every
ERPBRIDGE_MEDUSA_ADDRESS_SWEEP_SECONDS) finds an address added or changed since, on a
fourth cursor. An address deleted alone leaves no trace in Medusa (no time moves, nothing
of it is kept) and reaches commerce.customers with the customer's next change.

The cursors are the route's watermark on the compacted webhooks.poll-watermarks, sent only
after the broker confirmed every event and dead letter before it: a poll that dies is read
again from the last watermark. A route's first poll starts at `since` (default: when the
source started), so a new connection does not bring a shop's history into the ERP; a
watermark written before customers were polled starts their cursor where its orders' is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.webhooks.inputs import Input, Unmappable
from connectors.webhooks.medusa import mapping
from connectors.webhooks.medusa.admin import Changed, MedusaAdmin
from connectors.webhooks.references import References
from streams.contracts import deadletter
from streams.ops.records import Outgoing, Sender

SOURCE = "/medusa/{route}"
"""The dead letters' source: the route whose orders and customers they are."""


class PollError(RuntimeError):
    """The broker did not confirm what was published; the watermark stays where it was."""


@dataclass(frozen=True)
class Cursor:
    """How far one list (orders, payments or customers) is read."""

    start: datetime
    """Where its next read begins: the newest `updated_at` read, less the overlap."""
    seen: Mapping[str, datetime] = field(default_factory=dict)
    """What was read at or after `start`, with its `updated_at` then: skipped while unchanged."""

    def fresh(self, rows: Iterable[Changed]) -> list[Changed]:
        return [row for row in rows if self.seen.get(row.id) != row.updated_at]

    def after(self, rows: list[Changed], overlap: timedelta) -> Cursor:
        newest = max((row.updated_at for row in rows), default=None)
        start = self.start if newest is None else max(self.start, newest - overlap)
        seen = {**self.seen, **{row.id: row.updated_at for row in rows}}
        return Cursor(start, {i: at for i, at in seen.items() if at >= start})

    def to_json(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "seen": {i: at.isoformat() for i, at in sorted(self.seen.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Cursor:
        seen = data["seen"]
        assert isinstance(seen, dict)
        return cls(
            datetime.fromisoformat(str(data["start"])),
            {str(i): datetime.fromisoformat(str(at)) for i, at in seen.items()},
        )


@dataclass(frozen=True)
class Watermark:
    orders: Cursor
    payments: Cursor
    customers: Cursor
    addresses: Cursor
    """The sweep's: customers by their newest address's time."""

    @classmethod
    def starting(cls, since: datetime) -> Watermark:
        return cls(Cursor(since), Cursor(since), Cursor(since), Cursor(since))

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "orders": self.orders.to_json(),
                "payments": self.payments.to_json(),
                "customers": self.customers.to_json(),
                "addresses": self.addresses.to_json(),
            }
        ).encode()

    @classmethod
    def from_json(cls, value: bytes) -> Watermark:
        data = json.loads(value)
        orders = Cursor.from_json(data["orders"])
        # Written before customers (or their addresses) were polled: they start where the
        # orders (or the customers) are.
        customers = (
            Cursor.from_json(data["customers"]) if "customers" in data else Cursor(orders.start)
        )
        addresses = (
            Cursor.from_json(data["addresses"]) if "addresses" in data else Cursor(customers.start)
        )
        return cls(orders, Cursor.from_json(data["payments"]), customers, addresses)


@dataclass(frozen=True)
class Polled:
    route: str
    orders: int
    """Orders read and mapped."""
    events: int
    """The orders' events published."""
    accounts: int
    """Customers read and published as their accounts."""
    dead_letters: int
    watermark: Watermark


class MedusaPoll:
    """One Medusa route's poll."""

    def __init__(
        self,
        route: str,
        admin: MedusaAdmin,
        references: References,
        encode: Callable[[Input], Outgoing],
        sender: Sender,
        *,
        watermark_topic: str,
        dlq_topic: str,
        overlap: timedelta,
    ) -> None:
        self.route = route
        self._admin = admin
        self._references = references
        self._encode = encode
        self._sender = sender
        self._watermark_topic = watermark_topic
        self._dlq_topic = dlq_topic
        self._overlap = overlap

    def poll(self, watermark: Watermark, sweep: bool = True) -> Polled:
        """Publishes every order and customer changed since `watermark` (with `sweep`, the
        customers whose addresses changed too), then the watermark after them. MedusaError
        when Medusa cannot be read, PollError when the broker did not confirm."""
        orders = self._admin.changed("orders", watermark.orders.start)
        payments = self._admin.changed("payments", watermark.payments.start)
        customers = self._admin.changed("customers", watermark.customers.start)
        readdressed = self._admin.readdressed(watermark.addresses.start) if sweep else []
        ids = dict.fromkeys(
            row.order_id
            for row in (*watermark.orders.fresh(orders), *watermark.payments.fresh(payments))
            if row.order_id is not None
        )
        events = letters = 0
        for order_id in ids:
            order, body = self._admin.order(order_id)
            try:
                # The units a refund takes back are in the return receipts, read apart.
                receipts = self._admin.receipts(order_id) if mapping.refunds(order) else []
                found = mapping.parts(order, self._references, receipts)
            except Unmappable as unreadable:  # not even an order id: the whole answer
                found = [mapping.Part("order", problem=unreadable)]
            for part in found:
                sent, dead = self._publish("order", order_id, part, body)
                events, letters = events + sent, letters + dead
        accounts = 0
        changed = dict.fromkeys(
            row.id
            for row in (
                *watermark.customers.fresh(customers),
                *watermark.addresses.fresh(readdressed),
            )
        )
        for customer_id in changed:
            customer, body = self._admin.customer(customer_id)
            part = mapping.account(customer, self._references)
            sent, dead = self._publish("customer", customer_id, part, body)
            accounts, letters = accounts + sent, letters + dead
        self._confirmed(f"{self.route}'s orders and customers")
        after = Watermark(
            watermark.orders.after(orders, self._overlap),
            watermark.payments.after(payments, self._overlap),
            watermark.customers.after(customers, self._overlap),
            watermark.addresses.after(readdressed, self._overlap),
        )
        key = self.route.encode()
        self._sender.send(
            Outgoing(
                self._watermark_topic, None, key, after.to_json(), (), f"{self.route} watermark"
            )
        )
        self._confirmed(f"the watermark of {self.route}")
        return Polled(self.route, len(ids), events, accounts, letters, after)

    def _publish(self, kind: str, id: str, part: mapping.Part, body: bytes) -> tuple[int, int]:
        """Sends the events of `part` of the order or customer (`kind`) `id`, or its dead
        letter; (events, dead letters) sent."""
        records, problem = self._records(part)
        if problem is not None:
            records = [self._dead_letter(kind, id, part.name, body, problem)]
        for record in records:
            self._sender.send(record)
        return (0, 1) if problem is not None else (len(records), 0)

    def _records(self, part: mapping.Part) -> tuple[list[Outgoing], Unmappable | None]:
        if part.problem is not None:
            return [], part.problem
        try:
            return [self._encode(item) for item in part.inputs], None
        except Unmappable as problem:
            return [], problem

    def _dead_letter(
        self, kind: str, id: str, part: str, body: bytes, problem: Unmappable
    ) -> Outgoing:
        letter = deadletter.dead_letter(
            dlq_topic=self._dlq_topic,
            source_topic=SOURCE.format(route=self.route),
            partition=-1,
            offset=-1,
            # The same order or customer as read before, failing the same way: the same letter.
            key=hashlib.sha256(body + part.encode()).hexdigest().encode(),
            value=body,
            headers=[(f"medusa-{kind}-id", id.encode()), ("medusa-part", part.encode())],
            stage="poll",
            reason=problem.reason,
            error=f"{kind} {id}, {part}: {problem.detail}",
        )
        return Outgoing(
            letter.topic, None, letter.key, letter.value, tuple(letter.headers), "a dead letter"
        )

    def _confirmed(self, what: str) -> None:
        failures = self._sender.finish()
        if failures:
            raise PollError(f"{what} not confirmed by the broker: {failures[0]}")

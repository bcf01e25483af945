"""`erpbridge connector storefront`: inventory.availability to the storefronts' stock levels,
and storefront.fulfilments to their orders' shipments.

Per batch of records (read in the group `<app id>-storefront`, at least once), the
availability records:
1. the levels each pushing route gets (connectors.storefront.levels), the latest per route,
   SKU and warehouse, and only those that differ from what this sink last set there;
2. a push marker per level on storefront.stock-pushes, confirmed by the broker before the
   storefront is called, so the webhooks connector knows the storefront's coming stock
   webhook for it as an echo of erpbridge's own push;
3. each route's adapter sets the levels, retried with backoff while the platform is
   throttled or down (the records behind wait in Kafka and are coalesced into the next
   batch), until ERPBRIDGE_ERP_GIVE_UP_SECONDS; a level still unset then is tried again
   at every poll until it is set or a newer level of its SKU and warehouse replaces it,
   and its record is not committed past meanwhile, so a restart tries it again too;
4. a result per level on storefront.results.

and the fulfilments: each (the last copy per fulfilment) shown on its route's order by the
adapter, retried like the levels, once however often it is asked, with a result on
storefront.fulfilment-results; and the ERP's products (erp.catalog, read when a route has
push_catalog) and customers (erp.customers, when a route has push_customers): the last
record per SKU or customer made the route's product (connectors.storefront.products) or
customer account (connectors.storefront.customers) by its adapter, retried like the
levels, with a result on storefront.catalog-results or storefront.customer-results. Then
the batch's offsets are committed.

A record that does not decode goes to its topic's dead letters with the reason, and so does
the record behind a level or fulfilment the storefront refused for good
(`storefront-refused`, with the storefront's words; an answer outside the platform's
contract counts as one), a fulfilment, product or customer still failing after the retries
(`storefront-unavailable`: nothing else would tell the storefront again soon), or a
fulfilment of a route this sink does not tell (`unknown-route`); the worker opens an alert
for a refusal from its result
(streams.topology.agents.storefront_results). A restart repeats the last uncommitted
batch: setting a level again is harmless, and a shipment is looked for before it is made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import Consumer, Message, TopicPartition

from connectors.erp.retry import Backoff
from connectors.storefront.adapter import (
    CatalogAdapter,
    CustomerAdapter,
    Outcome,
    Shipment,
    ShipmentOutcome,
    ShipmentStatus,
    Status,
    StorefrontAdapter,
    StorefrontRefused,
    StorefrontUnavailable,
    Synced,
    SyncStatus,
)
from connectors.storefront.customers import Customer, customers_of
from connectors.storefront.levels import StockLevel, latest, levels_of
from connectors.storefront.products import Product, products_of
from streams.contracts import deadletter
from streams.contracts.codec import Codec, DecodeError
from streams.contracts.groups import storefront_group
from streams.contracts.stock_pushes import Push
from streams.contracts.topics import (
    AVAILABILITY,
    ERP_CATALOG,
    ERP_CUSTOMERS,
    STOCK_PUSHES,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_FULFILMENT_RESULTS,
    STOREFRONT_FULFILMENTS,
    STOREFRONT_RESULTS,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.records import Outgoing, Record, Sender
from streams.ops.settings import Settings, WebhookRoute

log = logging.getLogger(__name__)

RESULT_SCHEMA = "erpbridge.StorefrontResult"
SHIPMENT_RESULT_SCHEMA = "erpbridge.StorefrontFulfilmentResult"
_BATCH = 500
_POLL_SECONDS = 0.5


class SinkError(RuntimeError):
    """The broker did not confirm what the sink wrote; the batch is read again."""


@dataclass(frozen=True)
class Handled:
    records: int
    pushed: int
    """Levels set or tried, and shipments told or tried."""
    dead_letters: int


T = TypeVar("T")


class _Thing(Protocol):
    @property
    def route(self) -> str: ...

    @property
    def key(self) -> str: ...


Kept = TypeVar("Kept", bound=_Thing)


@dataclass(frozen=True)
class _Keeping(Generic[Kept]):
    """A kind of the ERP's master data the sink keeps on the storefronts: the records of
    `source` (of `schema`; a tombstone is None) made things for the routes that want them,
    each set by its route's adapter, its result on `results` naming it by `names`."""

    source: str
    schema: str
    things_of: Callable[[str, Mapping[str, Any] | None, Mapping[str, WebhookRoute]], list[Kept]]
    sync: Callable[[StorefrontAdapter, Kept], Synced[Kept]]
    results: str
    result_schema: str
    names: Callable[[Kept], dict[str, Any]]


def _set_product(adapter: StorefrontAdapter, product: Product) -> Synced[Product]:
    assert isinstance(adapter, CatalogAdapter)  # checked by storefront_adapters
    return adapter.set_product(product)


def _set_customer(adapter: StorefrontAdapter, customer: Customer) -> Synced[Customer]:
    assert isinstance(adapter, CustomerAdapter)  # checked by storefront_adapters
    if customer.email is None:
        return Synced(
            customer,
            SyncStatus.SKIPPED,
            message=f"the ERP has no email for {customer.customer_id}, which a storefront "
            "account needs",
        )
    return adapter.set_customer(customer)


class StorefrontSink:
    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        codec: Codec,
        routes: Mapping[str, WebhookRoute],
        adapters: Mapping[str, StorefrontAdapter],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._routes = dict(routes)
        self._adapters = dict(adapters)
        self._codec = codec
        self._backoff = Backoff.from_settings(settings)
        self._sleep = sleep
        self._availability = catalog.physical(AVAILABILITY)
        self._fulfilments = catalog.physical(STOREFRONT_FULFILMENTS)
        self._dead_letters = {
            catalog.physical(name): catalog.physical(dead_letter_of(name))
            for name in (AVAILABILITY, STOREFRONT_FULFILMENTS, ERP_CATALOG, ERP_CUSTOMERS)
        }
        keepings: list[_Keeping[Any]] = [
            _Keeping(catalog.physical(ERP_CATALOG), "erpbridge.CatalogItem", products_of,
                     _set_product, catalog.physical(STOREFRONT_CATALOG_RESULTS),
                     "erpbridge.StorefrontProductResult", lambda p: {"sku": p.sku}),
            _Keeping(catalog.physical(ERP_CUSTOMERS), "erpbridge.ErpCustomer", customers_of,
                     _set_customer, catalog.physical(STOREFRONT_CUSTOMER_RESULTS),
                     "erpbridge.StorefrontCustomerResult",
                     lambda c: {"customer_id": c.customer_id}),
        ]  # fmt: skip
        wanted = {
            ERP_CATALOG: any(r.push_catalog for r in routes.values()),
            ERP_CUSTOMERS: any(r.push_customers for r in routes.values()),
        }
        self._keeping = {k.source: k for k in keepings if wanted[catalog.logical(k.source)]}
        self._pushes = catalog.physical(STOCK_PUSHES)
        self._results = catalog.physical(STOREFRONT_RESULTS)
        self._shipment_results = catalog.physical(STOREFRONT_FULFILMENT_RESULTS)
        self._consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": storefront_group(settings.app_id),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # A batch may wait out each route's storefront once, up to the give-up time.
                "max.poll.interval.ms": int(
                    max(300.0, settings.erp_give_up_seconds * max(1, len(routes)) + 60) * 1000
                ),
            }
        )
        self._sender = Sender(settings.producer_config())
        self._set: dict[str, int] = {}
        """The level this sink last set per route, SKU and warehouse."""
        self._pending: dict[str, tuple[StockLevel, Message]] = {}
        """Levels not set because their storefront stayed unavailable, with their records:
        tried again each poll until set or superseded by a newer level, and their records
        not committed past until then, so a restart tries them again too."""
        self._down: set[str] = set()
        """Routes whose storefront stayed unavailable until the give-up time in this batch:
        the rest of the batch for them fails at once instead of waiting again."""

    def start(self) -> None:
        self._consumer.subscribe(
            [self._availability, self._fulfilments, *self._keeping], on_revoke=self._revoked
        )

    def assigned(self) -> bool:
        """Whether the group has given this sink partitions to read yet."""
        return bool(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close()
        self._sender.close()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.poll()
        finally:
            self.close()

    def poll(self, timeout: float = _POLL_SECONDS) -> Handled:
        """One batch: what arrived within `timeout`, handled and committed."""
        messages = [m for m in self._consumer.consume(_BATCH, timeout) if m.error() is None]
        if not messages and not self._pending:
            return Handled(0, 0, 0)
        self._down.clear()
        stock = [m for m in messages if m.topic() == self._availability]
        shipments = [m for m in messages if m.topic() == self._fulfilments]
        pushed, dead = self._push_stock(stock)
        told, dead_shipments = self._tell(shipments)
        kept, dead_kept = 0, 0
        for source, keeping in self._keeping.items():
            counts = self._keep(keeping, [m for m in messages if m.topic() == source])
            kept, dead_kept = kept + counts[0], dead_kept + counts[1]
        self._confirmed("results and dead letters")
        self._commit()
        return Handled(len(messages), pushed + told + kept, dead + dead_shipments + dead_kept)

    def _push_stock(self, messages: Sequence[Message]) -> tuple[int, int]:
        """The levels of availability records set: how many were pushed, and dead-lettered."""
        levels, origins, dead = self._levels(messages)
        # Levels the storefront was unavailable for go first: a newer one of theirs wins.
        retried = [(k, lo) for k, lo in self._pending.items() if k not in origins]
        levels[:0] = [level for _, (level, _) in retried]
        origins |= {key: origin for key, (_, origin) in retried}
        wanted = [level for level in latest(levels) if self._set.get(level.key) != level.quantity]
        self._mark(wanted)
        outcomes = [
            outcome
            for route, batch in _by_route(wanted).items()
            for outcome in self._push(route, batch, origins)
        ]
        self._pending = {}
        for outcome in outcomes:
            if outcome.status is Status.SET:
                self._set[outcome.level.key] = outcome.level.quantity
            elif outcome.status is Status.FAILED and not outcome.permanent:
                self._pending[outcome.level.key] = (outcome.level, origins[outcome.level.key])
            elif outcome.permanent:
                level = outcome.level
                error = (
                    f"route {level.route} refused {level.quantity} of {level.sku} at location "
                    f"{level.location} (warehouse {level.warehouse_id}): {outcome.message}"
                )
                self._dead_letter(origins[level.key], "storefront-refused", error)
                dead += 1
        return len(wanted), dead

    def _commit(self) -> None:
        """Every record read, but not past the record of a level still to be set."""
        held: dict[tuple[str, int], int] = {}
        for _, origin in self._pending.values():
            record = Record.of(origin)
            at = (record.topic, record.partition)
            held[at] = min(held.get(at, record.offset), record.offset)
        if not held:
            self._consumer.commit(asynchronous=False)
            return
        offsets = [
            TopicPartition(tp.topic, tp.partition, held.get((tp.topic, tp.partition), tp.offset))
            for tp in self._consumer.position(self._consumer.assignment())
            if (tp.topic, tp.partition) in held or tp.offset >= 0
        ]
        self._consumer.commit(offsets=offsets, asynchronous=False)

    def _revoked(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        # Their next owner reads those records again, and may set newer levels: a level
        # still held here would overwrite them.
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._pending = {
            key: (level, origin)
            for key, (level, origin) in self._pending.items()
            if ((record := Record.of(origin)).topic, record.partition) not in gone
        }

    def _tell(self, messages: Sequence[Message]) -> tuple[int, int]:
        """The fulfilments shown on their storefronts' orders: how many were told, and
        dead-lettered."""
        latest: dict[str, tuple[Shipment, Message]] = {}
        dead = 0
        for message in messages:
            value = message.value()
            if value is None:
                continue
            try:
                datum = self._codec.decode(value, expected="erpbridge.StorefrontFulfilment").datum
            except DecodeError as error:
                self._dead_letter(message, error.reason, str(error))
                dead += 1
                continue
            shipment = Shipment.of(datum)
            route = self._routes.get(shipment.route)
            if route is None or not route.push_tracking:
                self._dead_letter(
                    message,
                    "unknown-route",
                    f"fulfilment {shipment.fulfillment_id} of order {shipment.order_id} is for "
                    f"route {shipment.route}, which has no push_tracking in this connector's "
                    "ERPBRIDGE_WEBHOOK_ROUTES",
                )
                dead += 1
                continue
            latest[shipment.key] = (shipment, message)
        for shipment, message in latest.values():
            dead += self._tell_one(shipment, message)
        return len(latest), dead

    def _tell_one(self, shipment: Shipment, message: Message) -> int:
        """One shipment told, its result published; 1 when it went to the dead letters."""
        adapter = self._adapters[shipment.route]

        def failed(said: str, permanent: bool) -> ShipmentOutcome:
            return ShipmentOutcome(shipment, ShipmentStatus.FAILED, None, said, permanent)

        outcome, attempts, latency_ms = self._attempt(
            shipment.route, partial(adapter.record_shipment, shipment), failed
        )
        what = {
            "route": shipment.route, "provider": adapter.provider,
            "order_id": shipment.order_id, "fulfillment_id": shipment.fulfillment_id,
            "status": outcome.status.value, "storefront_id": outcome.storefront_id,
            "message": outcome.message, "permanent": outcome.permanent,
        }  # fmt: skip
        self._publish_result(self._shipment_results, SHIPMENT_RESULT_SCHEMA, shipment.key,
                             message, what, attempts, latency_ms)  # fmt: skip
        return self._kept_if_failed(outcome.status is ShipmentStatus.FAILED, what, message)

    def _keep(self, keeping: _Keeping[Kept], messages: Sequence[Message]) -> tuple[int, int]:
        """The ERP's products or customers made the routes' own: how many were pushed, and
        dead-lettered."""
        latest: dict[str, tuple[Kept, Message]] = {}
        dead = 0
        for message in messages:
            value, key = message.value(), (message.key() or b"").decode()
            try:
                datum = (
                    None
                    if value is None
                    else self._codec.decode(value, expected=keeping.schema).datum
                )
            except DecodeError as error:
                self._dead_letter(message, error.reason, str(error))
                dead += 1
                continue
            for thing in keeping.things_of(key, datum, self._routes):
                latest.pop(thing.key, None)
                latest[thing.key] = (thing, message)
        for thing, message in latest.values():
            dead += self._keep_one(keeping, thing, message)
        return len(latest), dead

    def _keep_one(self, keeping: _Keeping[Kept], thing: Kept, message: Message) -> int:
        """One product or customer pushed, its result published; 1 when it went to the dead
        letters."""
        adapter = self._adapters[thing.route]

        def failed(said: str, permanent: bool) -> Synced[Kept]:
            return Synced(thing, SyncStatus.FAILED, None, said, permanent)

        outcome, attempts, latency_ms = self._attempt(
            thing.route, partial(keeping.sync, adapter, thing), failed
        )
        what = {
            "route": thing.route, "provider": adapter.provider, **keeping.names(thing),
            "status": outcome.status.value, "storefront_id": outcome.storefront_id,
            "message": outcome.message, "permanent": outcome.permanent,
        }  # fmt: skip
        self._publish_result(keeping.results, keeping.result_schema, thing.key, message, what,
                             attempts, latency_ms)  # fmt: skip
        return self._kept_if_failed(outcome.status is SyncStatus.FAILED, what, message)

    def _kept_if_failed(self, failed: bool, what: dict[str, Any], message: Message) -> int:
        """A fulfilment, product or customer that failed goes to the dead letters (1), since nothing
        tells the storefront again soon (unlike a level, which the next availability
        change sets): the letter keeps it for a replay."""
        if not failed:
            return 0
        reason = "storefront-refused" if what["permanent"] else "storefront-unavailable"
        self._dead_letter(message, reason, f"route {what['route']}: {what['message']}")
        return 1

    def _levels(
        self, messages: Sequence[Message]
    ) -> tuple[list[StockLevel], dict[str, Message], int]:
        """The levels the records set, the last record of each, and how many records went
        to the dead letters."""
        levels: list[StockLevel] = []
        origins: dict[str, Message] = {}
        dead = 0
        for message in messages:
            value = message.value()
            if value is None:
                continue  # a compacted topic's tombstone: no level to set
            try:
                datum = self._codec.decode(value, expected="erpbridge.StockAvailability").datum
            except DecodeError as error:
                self._dead_letter(message, error.reason, str(error))
                dead += 1
                continue
            for level in levels_of(datum, self._routes):
                levels.append(level)
                origins[level.key] = message
        return levels, origins, dead

    def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        record = Record.of(message)
        letter = deadletter.dead_letter(
            dlq_topic=self._dead_letters[record.topic], source_topic=record.topic,
            partition=record.partition, offset=record.offset, key=record.key,
            value=record.value, headers=record.headers, stage="storefront",
            reason=reason, error=error,
        )  # fmt: skip
        self._sender.send(
            Outgoing(letter.topic, letter.partition, letter.key, letter.value,
                     tuple(letter.headers), "a dead letter")
        )  # fmt: skip

    def _mark(self, levels: Sequence[StockLevel]) -> None:
        now = int(time.time() * 1000)
        for level in levels:
            push = Push(level.sku, level.warehouse_id, level.quantity, now)
            self._sender.send(
                Outgoing(self._pushes, None, push.key, push.to_json(), (), f"push {level.key}")
            )
        self._confirmed("the push markers")

    def _push(
        self, route: str, levels: Sequence[StockLevel], origins: Mapping[str, Message]
    ) -> list[Outcome]:
        adapter = self._adapters[route]
        previous = {level.key: self._set[level.key] for level in levels if level.key in self._set}

        def failed(said: str, permanent: bool) -> list[Outcome]:
            return [Outcome(level, Status.FAILED, said, permanent=permanent) for level in levels]

        outcomes, attempts, latency_ms = self._attempt(
            route, lambda: adapter.set_levels(levels, previous), failed
        )
        for outcome in outcomes:
            level = outcome.level
            what = {
                "route": route, "provider": adapter.provider, "sku": level.sku,
                "warehouse_id": level.warehouse_id, "quantity": level.quantity,
                "status": outcome.status.value, "message": outcome.message,
                "permanent": outcome.permanent,
            }  # fmt: skip
            self._publish_result(self._results, RESULT_SCHEMA, level.key, origins[level.key],
                                 what, attempts, latency_ms)  # fmt: skip
        return outcomes

    def _attempt(
        self, route: str, call: Callable[[], T], failed: Callable[[str, bool], T]
    ) -> tuple[T, int, int]:
        """`call`'s answer, retried with backoff while the storefront is unavailable, or
        `failed` with the storefront's words and whether it is for good; with the attempts
        and the milliseconds from the first to the answer."""
        if route in self._down:
            return (
                failed(f"route {route}: the storefront did not answer in this batch", False),
                0,
                0,
            )
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = call()
                break
            except StorefrontRefused as refused:
                answer = failed(str(refused), True)
                break
            except StorefrontUnavailable as unavailable:
                delay = self._backoff.delay(attempt, unavailable.retry_after)
                if self._backoff.gives_up(time.monotonic() - started, delay):
                    self._down.add(route)
                    answer = failed(str(unavailable), False)
                    break
                log.warning("%s: %s; retrying in %.1f s", route, unavailable, delay)
                self._sleep(delay)
            except Exception as error:  # an answer outside the platform's contract
                log.exception("%s: unexpected answer", route)
                answer = failed(f"unexpected answer: {error!r}", True)
                break
        return answer, attempt, int((time.monotonic() - started) * 1000)

    def _publish_result(
        self,
        topic: str,
        schema: str,
        key: str,
        origin: Message,
        what: dict[str, Any],
        attempts: int,
        latency_ms: int,
    ) -> None:
        """A result on `topic`, keyed `key`, answering the record `origin`: `what` is the
        pushed thing's fields with its status, message and whether a failure is permanent."""
        datum = {
            # The record it answers and how: a batch read again after a crash answers it
            # with the same id, for consumers to de-duplicate; a level set after failing
            # answers it anew.
            "event_id": f"storefront:{key}:{origin.partition()}:{origin.offset()}:{what['status']}",
            "occurred_at": datetime.now(UTC),
            "source": "erpbridge",
            **what,
            "attempts": attempts,
            "latency_ms": latency_ms,
        }
        value = self._codec.encode(schema, datum, topic=topic)
        self._sender.send(Outgoing(topic, None, key.encode(), value, (), f"result {key}"))

    def _confirmed(self, what: str) -> None:
        failures = self._sender.finish()
        if failures:
            raise SinkError(f"{what} not confirmed by the broker: {failures[0]}")


def _by_route(levels: Sequence[StockLevel]) -> dict[str, list[StockLevel]]:
    grouped: dict[str, list[StockLevel]] = {}
    for level in levels:
        grouped.setdefault(level.route, []).append(level)
    return grouped

"""`erpbridge connector storefront`: inventory.availability to the storefronts' stock levels.

Per batch of availability records (read in the group `<app id>-storefront`, at least once):
1. the levels each pushing route gets (connectors.storefront.levels), the latest per route,
   SKU and warehouse, and only those that differ from what this sink last set there;
2. a push marker per level on storefront.stock-pushes, confirmed by the broker before the
   storefront is called, so the webhooks connector knows the storefront's coming stock
   webhook for it as an echo of erpbridge's own push;
3. each route's adapter sets the levels, retried with backoff while the platform is
   throttled or down (the records behind wait in Kafka and are coalesced into the next
   batch), until ERPBRIDGE_ERP_GIVE_UP_SECONDS;
4. a result per level on storefront.results; then the batch's offsets are committed.

A record that does not decode goes to inventory.availability.dlq with the reason, and so
does the record behind a level the storefront refused for good (`storefront-refused`, with
the storefront's words); the worker opens an alert for such a level from its result
(streams.topology.agents.storefront_results). A restart repeats the last uncommitted
batch: setting a level again is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, Message

from connectors.erp.retry import Backoff
from connectors.storefront.adapter import (
    Outcome,
    Status,
    StockAdapter,
    StorefrontRefused,
    StorefrontUnavailable,
)
from connectors.storefront.levels import StockLevel, latest, levels_of
from streams.contracts import deadletter
from streams.contracts.codec import Codec, DecodeError
from streams.contracts.groups import storefront_group
from streams.contracts.stock_pushes import Push
from streams.contracts.topics import (
    AVAILABILITY,
    STOCK_PUSHES,
    STOREFRONT_RESULTS,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.records import Outgoing, Record, Sender
from streams.ops.settings import Settings, WebhookRoute

log = logging.getLogger(__name__)

RESULT_SCHEMA = "erpbridge.StorefrontResult"
_BATCH = 500
_POLL_SECONDS = 0.5


class SinkError(RuntimeError):
    """The broker did not confirm what the sink wrote; the batch is read again."""


@dataclass(frozen=True)
class Handled:
    records: int
    pushed: int
    dead_letters: int


class StorefrontSink:
    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        codec: Codec,
        routes: Mapping[str, WebhookRoute],
        adapters: Mapping[str, StockAdapter],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._routes = dict(routes)
        self._adapters = dict(adapters)
        self._codec = codec
        self._backoff = Backoff.from_settings(settings)
        self._sleep = sleep
        self._availability = catalog.physical(AVAILABILITY)
        self._dead_letters = catalog.physical(dead_letter_of(AVAILABILITY))
        self._pushes = catalog.physical(STOCK_PUSHES)
        self._results = catalog.physical(STOREFRONT_RESULTS)
        self._consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": storefront_group(settings.app_id),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._sender = Sender(settings.producer_config())
        self._set: dict[str, int] = {}
        """The level this sink last set per route, SKU and warehouse."""

    def start(self) -> None:
        self._consumer.subscribe([self._availability])

    def close(self) -> None:
        self._consumer.close()

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
        if not messages:
            return Handled(0, 0, 0)
        levels, origins, dead = self._levels(messages)
        wanted = [level for level in latest(levels) if self._set.get(level.key) != level.quantity]
        self._mark(wanted)
        outcomes = [
            outcome
            for route, batch in _by_route(wanted).items()
            for outcome in self._push(route, batch, origins)
        ]
        for outcome in outcomes:
            if outcome.status is Status.SET:
                self._set[outcome.level.key] = outcome.level.quantity
            elif outcome.permanent:
                level = outcome.level
                error = (
                    f"route {level.route} refused {level.quantity} of {level.sku} at location "
                    f"{level.location} (warehouse {level.warehouse_id}): {outcome.message}"
                )
                self._dead_letter(origins[level.key], "storefront-refused", error)
                dead += 1
        self._confirmed("results and dead letters")
        self._consumer.commit(asynchronous=False)
        return Handled(len(messages), len(wanted), dead)

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
            dlq_topic=self._dead_letters, source_topic=self._availability,
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
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                outcomes = adapter.set_levels(levels, previous)
                break
            except StorefrontRefused as refused:
                outcomes = [
                    Outcome(level, Status.FAILED, str(refused), permanent=True) for level in levels
                ]
                break
            except StorefrontUnavailable as unavailable:
                delay = self._backoff.delay(attempt, unavailable.retry_after)
                elapsed = time.monotonic() - started
                if self._backoff.gives_up(elapsed, delay):
                    outcomes = [Outcome(level, Status.FAILED, str(unavailable)) for level in levels]
                    break
                log.warning("%s: %s; retrying in %.1f s", route, unavailable, delay)
                self._sleep(delay)
        latency_ms = int((time.monotonic() - started) * 1000)
        for outcome in outcomes:
            origin = origins[outcome.level.key]
            at = f"{origin.partition()}:{origin.offset()}"
            self._result(route, adapter.provider, outcome, at, attempt, latency_ms)
        return outcomes

    def _result(
        self,
        route: str,
        provider: str,
        outcome: Outcome,
        origin: str,
        attempts: int,
        latency_ms: int,
    ) -> None:
        level = outcome.level
        datum = {
            # The availability record it answers: a batch read again after a crash answers
            # it with the same id, for consumers to de-duplicate.
            "event_id": f"storefront:{level.key}:{origin}",
            "occurred_at": datetime.now(UTC),
            "source": "erpbridge",
            "route": route,
            "provider": provider,
            "sku": level.sku,
            "warehouse_id": level.warehouse_id,
            "quantity": level.quantity,
            "status": outcome.status.value,
            "message": outcome.message,
            "attempts": attempts,
            "latency_ms": latency_ms,
            "permanent": outcome.permanent,
        }
        value = self._codec.encode(RESULT_SCHEMA, datum, topic=self._results)
        self._sender.send(
            Outgoing(self._results, None, level.key.encode(), value, (), f"result {level.key}")
        )

    def _confirmed(self, what: str) -> None:
        failures = self._sender.finish()
        if failures:
            raise SinkError(f"{what} not confirmed by the broker: {failures[0]}")


def _by_route(levels: Sequence[StockLevel]) -> dict[str, list[StockLevel]]:
    grouped: dict[str, list[StockLevel]] = {}
    for level in levels:
        grouped.setdefault(level.route, []).append(level)
    return grouped

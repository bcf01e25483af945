"""A run's final state, as far as it must not depend on arrival order, and two runs compared.

Read from the topics once the workers have stopped: per order its last `orders.status`
and its facts (placement, cancellation, payments, fulfilments, refunds: the order
changelog decoded with streams.topology.tables), per SKU and warehouse its on hand (the
stock changelog), every ERP command on `internal.erp-pending` and every entry on
`finance.journal` (which the dispatcher posts as PostJournalEntry) by id, the last `inventory.availability` on hand per SKU, and the dead
letters of every topic the agents read with their reason. Which order gets scarce stock
depends on arrival order, so reservations and backorders are left out; commands and
entries whose existence depends on it (`arrival_dependent`) are compared but reported
apart.

Large contents are kept as digests of a canonical JSON form, so a reference run's state
fits in memory twice; a difference then names the id (and for an order, the fact) that differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import cluster
from streams.contracts import deadletter
from streams.contracts.changelogs import ORDERS_TABLE, STOCK_TABLE, changelog_topic
from streams.contracts.codec import Codec, DecodeError, codec_from_settings
from streams.contracts.topics import (
    AGENT_SOURCES,
    AVAILABILITY,
    ERP_PENDING,
    JOURNAL,
    ORDER_STATUS,
    TopicCatalog,
    dead_letter_of,
)
from streams.domain import statejson
from streams.domain.commands import Command
from streams.domain.statecodec import decode_order, decode_sku
from streams.ops.records import PartitionReader, Record
from streams.ops.settings import Settings

ORDER_FACTS = ("placement", "cancelled_ms", "cancel_reason", "payments", "fulfilments", "refunds")
"""The recorded facts of an order (streams.domain.orders): its status is a function of them."""

FIGURES = {
    "status": "order status (last orders.status)",
    "facts": "order facts (orders changelog)",
    "on_hand": "on hand per SKU and warehouse (stock changelog)",
    "commands": "ERP commands (internal.erp-pending)",
    "journal": "journal entries (finance.journal)",
    "availability": "on hand per SKU (last inventory.availability)",
    "dead_letters": "dead letters (of the topics the agents read), reason",
}


@dataclass
class FinalState:
    figures: dict[str, dict[str, Any]] = field(default_factory=lambda: {f: {} for f in FIGURES})
    """Figure (a key of FIGURES) -> id -> value or digest."""
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    """(figure, id) of each copy that differs from the first of its id within this run (a
    redelivery must send the same again)."""

    @classmethod
    def read(cls, settings: Settings) -> FinalState:
        catalog = TopicCatalog.from_settings(settings)
        codec = codec_from_settings(settings)
        state = cls()
        figures = state.figures
        with cluster.topic_reader(settings) as reader:
            for key, value in _latest(reader, catalog.physical(ORDER_STATUS)):
                figures["status"][key] = codec.decode(value).datum["status"]
            for key, value in _latest(reader, changelog_topic(settings.app_id, ORDERS_TABLE)):
                order = decode_order(value)
                figures["facts"][key] = {f: _digest(getattr(order, f)) for f in ORDER_FACTS}
            for key, value in _latest(reader, changelog_topic(settings.app_id, STOCK_TABLE)):
                for warehouse, level in decode_sku(value).warehouses.items():
                    # Absent and 0 are the same on hand: a warehouse appears in the state
                    # when an order reserves there, which depends on arrival order.
                    if level.on_hand:
                        figures["on_hand"][f"{key}@{warehouse}"] = level.on_hand
            for key, value in _latest(reader, catalog.physical(AVAILABILITY)):
                figures["availability"][key] = codec.decode(value).datum["on_hand"]
            for record in cluster.read_topic(reader, catalog.physical(ERP_PENDING)):
                if record.value is not None:
                    command = Command.decode(record.value)
                    state._add("commands", command.command_id, _digest(command))
            for record in cluster.read_topic(reader, catalog.physical(JOURNAL)):
                if record.value is not None:
                    datum = codec.decode(record.value).datum
                    state._add("journal", str(datum["entry_id"]), _digest(datum))
            for source in AGENT_SOURCES:
                topic = catalog.physical(dead_letter_of(source))
                for record in cluster.read_topic(reader, topic):
                    reason = deadletter.describe(record.headers).get(deadletter.REASON, "?")
                    state._add("dead_letters", f"{source}: {_event_id(codec, record)}", reason)
        return state

    def _add(self, figure: str, key: str, digest: str) -> None:
        known = self.figures[figure].setdefault(key, digest)
        if known != digest:
            self.conflicts.append((figure, key))

    def counts(self) -> dict[str, int]:
        return {figure: len(values) for figure, values in self.figures.items()}


COST_ENTRIES = ("/journal/cogs/", "/journal/restock/")
"""Ids of cost-of-goods entries (and of the commands that post them, on the pending topic of
a worker older than the dispatcher's reading of finance.journal)."""


@dataclass
class Comparison:
    differences: list[str]
    """What differs and must not: a few examples per figure; empty when the states agree."""
    arrival_dependent: list[str]
    """What differs where the business lets arrival order decide (see `arrival_dependent`)."""


def arrival_dependent(command_or_entry_id: str, cancelled: set[str]) -> bool:
    """Whether an ERP command's or journal entry's existence and content may depend on the
    order in which the inputs arrived, as the topology's tests accept: the stock agent books
    the cost of a shipment or restock at the unit cost it knows when the request reaches it,
    none while the SKU's snapshot has not, and whether a cancelled order became a sales order
    first depends on whether its payment or its cancellation came first."""
    order_id = command_or_entry_id.split("/", 1)[0]
    return order_id in cancelled or any(c in command_or_entry_id for c in COST_ENTRIES)


def compare(one: FinalState, two: FinalState, *, limit: int = 5) -> Comparison:
    """The one-worker run against the two-worker run, up to `limit` examples per figure."""
    differences: list[str] = []
    tolerated: list[str] = []
    cancelled = {
        order_id
        for state in (one, two)
        for order_id, status in state.figures["status"].items()
        if status == "cancelled"
    }
    for run, state in (("one worker", one), ("two workers", two)):
        for figure, key in state.conflicts[:limit]:
            line = f"{run}: {FIGURES[figure]}: the copies of {key} differ"
            (tolerated if arrival_dependent(key, cancelled) else differences).append(line)
    for figure, label in FIGURES.items():
        mine, theirs = one.figures[figure], two.figures[figure]
        differing = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if figure in ("commands", "journal"):
            allowed = [k for k in differing if arrival_dependent(k, cancelled)]
        else:
            allowed = []
        if allowed:
            tolerated.append(_summary(label, allowed, mine, theirs, limit))
            differing = [k for k in differing if k not in set(allowed)]
        if differing:
            differences.append(_summary(label, differing, mine, theirs, limit))
    return Comparison(differences, tolerated)


def _summary(
    label: str, keys: list[str], mine: dict[str, Any], theirs: dict[str, Any], limit: int
) -> str:
    examples = "; ".join(_describe(k, mine.get(k), theirs.get(k)) for k in keys[:limit])
    return (
        f"{label}: {len(keys):,} differ (one worker has {len(mine):,} in all, two workers "
        f"{len(theirs):,}), e.g. {examples}"
    )


def _describe(key: str, mine: Any, theirs: Any) -> str:
    if mine is None or theirs is None:
        return f"{key} only with {'one worker' if theirs is None else 'two workers'}"
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return f"{key} ({', '.join(f for f in mine if mine[f] != theirs.get(f))})"
    return f"{key}: {mine} vs {theirs}"


def _event_id(codec: Codec, record: Record) -> str:
    """The event id of a dead-lettered input; a digest of the bytes of anything else (an
    internal message, an undecodable record), which is the same in both runs."""
    try:
        return str(codec.decode(record.value or b"").datum["event_id"])
    except DecodeError:
        return _digest(record.value)


def _latest(reader: PartitionReader, topic: str) -> Iterator[tuple[str, bytes]]:
    """The last value of every key of `topic` that was not deleted, one partition at a time
    (a key lives on one partition), so only one partition's latest values are held."""
    for partition in reader.partitions(topic):
        low, high = reader.watermarks(topic, partition)
        latest = {r.key: r.value for r in reader.read(topic, partition, low, high) if r.key}
        yield from ((k.decode(), v) for k, v in latest.items() if v is not None)


def _digest(value: Any) -> str:
    """A short digest of a canonical form: dataclasses as JSON with sorted keys, so that
    dicts filled in a different order digest the same; what JSON lacks (an Avro date) as text."""
    text = json.dumps(statejson.plain(value), sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

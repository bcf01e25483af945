"""`erpbridge connector erp-source`: the ERP's products and customers onto the compacted
erp.catalog (keyed by SKU) and erp.customers (keyed by customer id).

The topics are their own watermark: at start the source reads what they hold, the latest
record per key, and asks the ERP only for what changed since the newest `updated_at` there,
less an overlap (a change committed late with an earlier time is still seen). What the ERP
returns is published only where it differs from what the topic holds, so polling again, an
overlap or a restart publishes nothing twice, and re-sent records are byte-identical to the
first. A resync asks for everything, publishes what differs and a tombstone for each key
the ERP no longer has. Records are confirmed by the broker before the source counts them
as held; one the broker refused is read and sent again on the next poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from connectors.erp.master import (
    CATALOG_SCHEMA,
    CUSTOMER_SCHEMA,
    CatalogItem,
    ErpCustomer,
    MasterDataReader,
    catalog_datum,
    customer_datum,
)
from streams.contracts.codec import Codec
from streams.ops.records import Outgoing, PartitionReader, Sender


class SourceError(RuntimeError):
    """The broker did not confirm what was published; it is sent again on the next poll."""


Item = TypeVar("Item", CatalogItem, ErpCustomer)


@dataclass
class _Kind(Generic[Item]):
    """One kind of master data and what its topic holds."""

    name: str
    topic: str
    schema: str
    read: Callable[[datetime | None], Awaitable[Sequence[Item]]]
    datum: Callable[[Item, str], dict[str, Any]]
    held: dict[bytes, bytes] = field(default_factory=dict)
    newest: datetime | None = None


@dataclass(frozen=True)
class Polled:
    """What one poll of one kind did."""

    kind: str
    read: int
    published: int
    removed: int


class MasterDataSource:
    def __init__(
        self,
        reader: MasterDataReader,
        codec: Codec,
        sender: Sender,
        *,
        catalog_topic: str,
        customers_topic: str,
        overlap: timedelta,
    ) -> None:
        self._reader = reader
        self._codec = codec
        self._sender = sender
        self._overlap = overlap
        self._kinds: tuple[_Kind[Any], ...] = (
            _Kind("products", catalog_topic, CATALOG_SCHEMA, reader.products, catalog_datum),
            _Kind("customers", customers_topic, CUSTOMER_SCHEMA, reader.customers, customer_datum),
        )

    def load(self, topics: PartitionReader) -> dict[str, int]:
        """What the topics hold now: the latest record per key. Returns the keys per kind."""
        for kind in self._kinds:
            kind.held = topics.table(kind.topic)
            stamps = (self._updated_at(value) for value in kind.held.values())
            kind.newest = max(stamps, default=None)
        return {kind.name: len(kind.held) for kind in self._kinds}

    async def poll(self, *, resync: bool = False) -> list[Polled]:
        return [await self._poll(kind, resync) for kind in self._kinds]

    async def _poll(self, kind: _Kind[Any], resync: bool) -> Polled:
        since = None if resync or kind.newest is None else kind.newest - self._overlap
        items = await kind.read(since)
        changed: dict[bytes, bytes | None] = {}
        for item in items:
            key = item.key.encode()
            encoded = self._codec.encode(
                kind.schema, kind.datum(item, self._reader.source), topic=kind.topic
            )
            if kind.held.get(key) != encoded:
                changed[key] = encoded
        removed = 0
        if resync:
            present = {item.key.encode() for item in items}
            for key in kind.held.keys() - present:
                changed[key] = None
                removed += 1
        for key, change in changed.items():
            label = f"{kind.name} {key.decode()}"
            self._sender.send(Outgoing(kind.topic, None, key, change, (), label))
        failures = self._sender.finish()
        if failures:
            raise SourceError(f"{kind.topic}: not confirmed by the broker: {failures[0]}")
        for key, change in changed.items():
            if change is None:
                kind.held.pop(key, None)
            else:
                kind.held[key] = change
        newest = max((item.updated_at for item in items), default=None)
        if newest is not None and (kind.newest is None or newest > kind.newest):
            kind.newest = newest
        return Polled(kind.name, len(items), len(changed) - removed, removed)

    def _updated_at(self, value: bytes) -> datetime:
        updated: datetime = self._codec.decode(value).datum["updated_at"]
        return updated

"""`erpbridge payouts sync`: each Shopify route's paid Shopify Payments payouts, read from
the shop's Admin API, as PaymentSettled events on commerce.payments, from where the last
run stopped.

Shopify has no payout webhook, so this runs on a schedule (a Kubernetes CronJob,
deploy/k8s). Per route it keeps a watermark on the compacted webhooks.payout-watermarks
(keyed by route): the issue time of the last payout it published and the payouts issued at
that time. A run reads the paid payouts issued since then, oldest first; each payout's
events are confirmed by the broker before its watermark is, so a run that dies publishes
that payout again next time, with the same event ids, which the topology drops. The first
run of a route starts `since` before now.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from connectors.webhooks.inputs import Input
from connectors.webhooks.shopify import payouts as shopify
from connectors.webhooks.shopify.admin import ShopifyAdmin
from streams.ops.records import Outgoing, PartitionReader, Sender


class SyncError(RuntimeError):
    """The broker did not confirm what was published; the watermark stays where it was."""


@dataclass(frozen=True)
class Watermark:
    issued_at: str
    """The issue time of the last payout published."""
    payouts: tuple[str, ...]
    """The payouts issued at that time that were published."""

    def to_json(self) -> bytes:
        return json.dumps({"issued_at": self.issued_at, "payouts": list(self.payouts)}).encode()

    @classmethod
    def from_json(cls, value: bytes) -> Watermark:
        data = json.loads(value)
        return cls(str(data["issued_at"]), tuple(str(p) for p in data["payouts"]))

    def after(self, payout: shopify.Payout) -> Watermark:
        same = payout.issued_at == self.issued_at
        return Watermark(payout.issued_at, (*(self.payouts if same else ()), payout.payout_id))


def read_watermarks(reader: PartitionReader, topic: str) -> dict[str, Watermark]:
    """The latest watermark of each route on `topic`."""
    return {key.decode(): Watermark.from_json(value) for key, value in reader.table(topic).items()}


@dataclass(frozen=True)
class Synced:
    route: str
    payouts: int
    settlements: int
    watermark: Watermark | None


def sync_route(
    route: str,
    admin: ShopifyAdmin,
    watermark: Watermark | None,
    since: str,
    encode: Callable[[Input], Outgoing],
    sender: Sender,
    watermark_topic: str,
) -> Synced:
    """Publishes the route's payouts issued since its watermark (or `since`), one by one,
    each followed by its new watermark once the broker confirmed its events."""
    start = watermark.issued_at if watermark is not None else since
    published = settled = 0
    for payout in shopify.payouts(
        list(_pages(admin, shopify.PAYOUTS, shopify.paid_since(start), "payouts"))
    ):
        if watermark is not None and payout.payout_id in watermark.payouts:
            continue
        charges = shopify.charges(
            list(
                _pages(
                    admin,
                    shopify.TRANSACTIONS,
                    shopify.of_payout(payout.payout_id),
                    "balanceTransactions",
                )
            )
        )
        sources = shopify.source_ids(charges)
        nodes: list[dict[str, Any] | None] = []
        for i in range(0, len(sources), shopify.SOURCES_PER_QUERY):
            chunk = sources[i : i + shopify.SOURCES_PER_QUERY]
            nodes += admin.call(shopify.SOURCES, {"ids": chunk})["nodes"]
        events = shopify.settlements(payout, charges, shopify.payments_by_source(nodes))
        for record in (encode(item) for item in events):
            sender.send(record)
        _confirmed(sender, f"payout {payout.payout_id}'s settlements")
        watermark = (watermark or Watermark(payout.issued_at, ())).after(payout)
        sender.send(
            Outgoing(
                watermark_topic, None, route.encode(), watermark.to_json(), (), f"{route} watermark"
            )
        )
        _confirmed(sender, f"the watermark of {route}")
        published += 1
        settled += len(events)
    return Synced(route, published, settled, watermark)


def _pages(admin: ShopifyAdmin, query: str, search: str, field: str) -> Iterator[dict[str, Any]]:
    after = None
    while True:
        page = admin.call(query, {"after": after, "query": search})["shopifyPaymentsAccount"][field]
        yield from page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return
        after = page["pageInfo"]["endCursor"]


def _confirmed(sender: Sender, what: str) -> None:
    failures = sender.finish()
    if failures:
        raise SyncError(f"{what} not confirmed by the broker: {failures[0]}")

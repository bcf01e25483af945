"""Which webhook subscriptions a shop needs, given those it has: what to create, what to
keep, what is ours but no longer wanted (listed, never removed by erpbridge).

Ours are the subscriptions delivering to the route's URL; the shop's other subscriptions
(other apps, other environments) are none of erpbridge's business."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Subscription:
    id: str
    topic: str
    """As erpbridge names the provider's topics: Shopify's "orders/create", WooCommerce's
    "order.created"."""
    url: str
    active: bool = True


@dataclass(frozen=True)
class Plan:
    create: tuple[str, ...]
    keep: tuple[Subscription, ...]
    remove: tuple[Subscription, ...]


class SubscriptionApi(Protocol):
    """A shop's webhook subscriptions, through its admin API."""

    def subscriptions(self) -> list[Subscription]: ...

    def subscribe(self, topic: str, url: str) -> Subscription: ...


def plan(wanted: Sequence[str], url: str, existing: Sequence[Subscription]) -> Plan:
    ours = [s for s in existing if s.url == url]
    keep: dict[str, Subscription] = {}
    for subscription in ours:
        if subscription.active and subscription.topic in wanted:
            keep.setdefault(subscription.topic, subscription)
    kept = set(keep.values())
    return Plan(
        create=tuple(topic for topic in wanted if topic not in keep),
        keep=tuple(keep[topic] for topic in wanted if topic in keep),
        # Unwanted topics, paused or disabled ones, and second copies of a wanted one.
        remove=tuple(s for s in ours if s not in kept),
    )

"""Shopify's webhook subscriptions through its Admin GraphQL API (2026-01):
`webhookSubscriptions` to list them, `webhookSubscriptionCreate` to add one."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.webhooks.shopify.admin import ShopifyAdmin, ShopifyError
from connectors.webhooks.shopify.mapping import TOPICS
from connectors.webhooks.subscriptions import Subscription

_LIST = """
query Subscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes { id topic uri }
    pageInfo { hasNextPage endCursor }
  }
}
"""

_CREATE = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}
"""


def enum_of(topic: str) -> str:
    """ "orders/create" is ORDERS_CREATE in the API."""
    return topic.upper().replace("/", "_")


_TOPICS_BY_ENUM = {enum_of(topic): topic for topic in TOPICS}


def topic_of(enum: str) -> str:
    """ORDERS_CREATE is "orders/create"; a topic erpbridge does not ingest keeps its enum
    name (an underscore may be inside a resource or an event: orders/partially_fulfilled)."""
    return _TOPICS_BY_ENUM.get(enum, enum)


class ShopifySubscriptions:
    def __init__(self, client: httpx.Client, shop_url: str, token: str) -> None:
        self._admin = ShopifyAdmin(client, shop_url, token)

    def subscriptions(self) -> list[Subscription]:
        found: list[Subscription] = []
        after = None
        while True:
            page = self._admin.call(_LIST, {"after": after})["webhookSubscriptions"]
            found += [_subscription(node) for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def subscribe(self, topic: str, url: str) -> Subscription:
        created = self._admin.call(
            _CREATE, {"topic": enum_of(topic), "subscription": {"uri": url, "format": "JSON"}}
        )["webhookSubscriptionCreate"]
        if created["userErrors"]:
            raise ShopifyError(f"creating {topic} -> {url}: {created['userErrors']}")
        return _subscription(created["webhookSubscription"])


def _subscription(node: dict[str, Any]) -> Subscription:
    return Subscription(str(node["id"]), topic_of(node["topic"]), node["uri"])

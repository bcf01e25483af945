"""Shopify's Admin GraphQL API (2026-01) as erpbridge calls it: one POST per query with the
app's access token; an error answer raised with what Shopify said."""

from __future__ import annotations

from typing import Any

import httpx

API_VERSION = "2026-01"


class ShopifyError(RuntimeError):
    """What Shopify answered instead of doing it."""


class ShopifyAdmin:
    def __init__(self, client: httpx.Client, shop_url: str, token: str) -> None:
        self._client = client
        self.url = f"{shop_url.rstrip('/')}/admin/api/{API_VERSION}/graphql.json"
        self._token = token

    def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self._client.post(
            self.url,
            json={"query": query, "variables": variables},
            headers={"X-Shopify-Access-Token": self._token},
        )
        if response.status_code != 200:
            raise ShopifyError(f"{self.url} answered {response.status_code}: {response.text[:300]}")
        answer = response.json()
        if answer.get("errors"):
            raise ShopifyError(f"{self.url}: {answer['errors']}")
        data: dict[str, Any] = answer["data"]
        return data

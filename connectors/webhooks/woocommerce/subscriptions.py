"""WooCommerce's webhooks through its REST API: GET and POST /wp-json/wc/v3/webhooks, as
the consumer key and secret (HTTP Basic over HTTPS)."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.webhooks.subscriptions import Subscription

_PAGE = 100


class WooCommerceError(RuntimeError):
    """What WooCommerce answered instead of doing it."""


class WooCommerceSubscriptions:
    def __init__(
        self, client: httpx.Client, site_url: str, key: str, secret: str, signing_secret: str
    ) -> None:
        """`signing_secret` is what WooCommerce signs deliveries with: the route's secret."""
        self._client = client
        self._url = f"{site_url.rstrip('/')}/wp-json/wc/v3/webhooks"
        self._auth = (key, secret)
        self._signing_secret = signing_secret

    def _checked(self, response: httpx.Response) -> Any:
        if response.status_code not in (200, 201):
            raise WooCommerceError(
                f"{self._url} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def subscriptions(self) -> list[Subscription]:
        found: list[Subscription] = []
        page = 1
        while True:
            hooks = self._checked(
                self._client.get(
                    self._url, params={"per_page": _PAGE, "page": page}, auth=self._auth
                )
            )
            found += [_subscription(hook) for hook in hooks]
            if len(hooks) < _PAGE:
                return found
            page += 1

    def subscribe(self, topic: str, url: str) -> Subscription:
        hook = self._checked(
            self._client.post(
                self._url,
                json={
                    "name": f"erpbridge {topic}",
                    "status": "active",
                    "topic": topic,
                    "delivery_url": url,
                    "secret": self._signing_secret,
                },
                auth=self._auth,
            )
        )
        return _subscription(hook)


def _subscription(hook: dict[str, Any]) -> Subscription:
    return Subscription(
        str(hook["id"]), hook["topic"], hook["delivery_url"], hook.get("status") == "active"
    )

"""Which adapter sets stock on which storefront: one factory per provider, the only place to
add one."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from connectors.storefront.adapter import StockAdapter
from connectors.storefront.woocommerce import WooCommerceStock
from streams.ops.settings import Settings, WebhookRoute

_TIMEOUT_SECONDS = 30.0

FACTORIES: dict[str, Callable[[httpx.Client, str, str], StockAdapter]] = {
    "woocommerce": WooCommerceStock,
}


def stock_adapters(
    settings: Settings, routes: Mapping[str, WebhookRoute], client: httpx.Client
) -> dict[str, StockAdapter]:
    """An adapter per route; ValueError naming each route that cannot have one."""
    adapters: dict[str, StockAdapter] = {}
    problems = []
    for name, route in sorted(routes.items()):
        factory = FACTORIES.get(route.provider)
        token = settings.webhook_admin_token(name)
        if factory is None:
            problems.append(
                f"route {name}: setting stock on {route.provider} is not built "
                f"(only {', '.join(sorted(FACTORIES))})"
            )
        elif not (route.admin_url and token):
            problems.append(
                f"route {name}: push_stock needs its admin_url and an "
                "ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry"
            )
        elif not route.warehouses:
            problems.append(
                f"route {name}: push_stock needs its warehouses (location -> warehouse)"
            )
        else:
            adapters[name] = factory(client, route.admin_url, token)
    if problems:
        raise ValueError("; ".join(problems))
    return adapters


def http_client() -> httpx.Client:
    return httpx.Client(timeout=_TIMEOUT_SECONDS)

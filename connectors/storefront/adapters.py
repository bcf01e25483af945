"""Which adapter serves which storefront: one factory per provider, the only place to add
one."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from connectors.storefront.adapter import CatalogAdapter, CustomerAdapter, StorefrontAdapter
from connectors.storefront.medusa import MedusaStorefront
from connectors.storefront.shopify import ShopifyStock
from connectors.storefront.woocommerce import WooCommerceStock
from streams.ops.settings import Settings, WebhookRoute

_TIMEOUT_SECONDS = 30.0
_ONE_CURRENCY = {"shopify": "Shopify", "woocommerce": "WooCommerce"}
"""Platforms that price a product in the shop's one currency: the route names it."""


def _woocommerce(client: httpx.Client, route: WebhookRoute, token: str) -> StorefrontAdapter:
    assert route.admin_url is not None  # checked by storefront_adapters
    return WooCommerceStock(client, route.admin_url, token)


def _shopify(client: httpx.Client, route: WebhookRoute, token: str) -> StorefrontAdapter:
    assert route.admin_url is not None  # checked by storefront_adapters
    items = {sku: item for item, sku in route.skus.items()}
    return ShopifyStock(client, route.admin_url, token, items, route.warehouses)


def _medusa(client: httpx.Client, route: WebhookRoute, token: str) -> StorefrontAdapter:
    assert route.admin_url is not None  # checked by storefront_adapters
    return MedusaStorefront(client, route.admin_url, token, route.warehouses)


FACTORIES: dict[str, Callable[[httpx.Client, WebhookRoute, str], StorefrontAdapter]] = {
    "medusa": _medusa,
    "shopify": _shopify,
    "woocommerce": _woocommerce,
}


def storefront_adapters(
    settings: Settings, routes: Mapping[str, WebhookRoute], client: httpx.Client
) -> dict[str, StorefrontAdapter]:
    """An adapter per route; ValueError naming each route that cannot have one."""
    adapters: dict[str, StorefrontAdapter] = {}
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
                f"route {name}: push_stock, push_tracking, push_catalog and push_customers need "
                "its admin_url and an ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry"
            )
        elif route.push_catalog and route.provider in _ONE_CURRENCY and not route.currency:
            problems.append(
                f"route {name}: push_catalog on {_ONE_CURRENCY[route.provider]} needs its currency"
            )
        elif route.push_stock and not route.warehouses:
            problems.append(
                f"route {name}: push_stock needs its warehouses (location -> warehouse)"
            )
        else:
            adapter = factory(client, route, token)
            for wanted, kind, flag in (
                (route.push_catalog, CatalogAdapter, "push_catalog"),
                (route.push_customers, CustomerAdapter, "push_customers"),
            ):
                if wanted and not isinstance(adapter, kind):
                    problems.append(f"route {name}: {flag} is not built for {route.provider}")
            adapters[name] = adapter
    if problems:
        raise ValueError("; ".join(problems))
    return adapters


def http_client() -> httpx.Client:
    return httpx.Client(timeout=_TIMEOUT_SECONDS)

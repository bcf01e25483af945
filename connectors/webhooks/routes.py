"""The configured routes: one per shop or payment account, served at
/webhooks/<provider>/<route>, with its provider, secrets and references."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.webhooks.providers import PROVIDERS, Provider
from connectors.webhooks.references import References
from streams.ops.settings import Settings

PATH = "/webhooks/{provider}/{route}"


@dataclass(frozen=True)
class Route:
    name: str
    provider: Provider
    keys: tuple[bytes, ...]
    references: References
    api_url: str | None = None
    api_key: str | None = None

    @property
    def path(self) -> str:
        return PATH.format(provider=self.provider.name, route=self.name)


def routes_of(settings: Settings) -> dict[tuple[str, str], Route]:
    """The configured routes by (provider, name); ValueError naming a route without a secret
    or with a bad one."""
    routes = {}
    for name, route in settings.webhook_routes.items():
        provider = PROVIDERS.get(route.provider)
        if provider is None:
            continue  # a storefront the sink serves, which sends no webhooks erpbridge reads
        secrets = settings.webhook_secrets_of(name)
        if not secrets:
            raise ValueError(f"webhook route {name!r} has no secret in ERPBRIDGE_WEBHOOK_SECRETS")
        try:
            keys = provider.keys(secrets)
        except ValueError:
            raise ValueError(
                f"webhook route {name!r}: a {provider.name} secret is not a hex key"
            ) from None
        references = References(
            route.warehouses, route.skus, route.order_reference, route.channel, name
        )
        routes[(provider.name, name)] = Route(
            name, provider, keys, references, route.admin_url, settings.webhook_admin_token(name)
        )
    return routes


def route_at(routes: dict[tuple[str, str], Route], path: str) -> Route | None:
    """The route served at `path` (/webhooks/<provider>/<route>), if one is configured."""
    parts = path.split("/")
    if len(parts) != 4 or parts[:2] != ["", "webhooks"]:
        return None
    return routes.get((parts[2], parts[3]))

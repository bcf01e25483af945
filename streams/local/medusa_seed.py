"""The store erpbridge's local Medusa holds, and the small HTTP client that creates and reads it.

`store_spec` says what the store holds, from the sample catalogue: one region (the
catalogue's base currency, the US, the system payment provider), one sales channel, one stock
location (the catalogue's warehouse serving the US) that ships with the manual fulfilment
provider through a flat-rate shipping option, a publishable key for the channel, and one
published product per SKU with its price and its target stock at the location. `seed_store`
creates that through the Admin API of a freshly migrated Medusa 2 and answers the ids a test
or an adapter needs (`SeededStore`).

`MedusaClient` is one caller of the HTTP API: an admin (bearer token from
`/auth/user/emailpass`) or a storefront (the `x-publishable-api-key` header). Amounts are in
major units ("12.5" is $12.50): Medusa 2 keeps decimals, not cents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, cast

import httpx

from streams.sample.generator import Catalogue

_TIMEOUT_S = 60.0
# Medusa's own fulfilment and payment providers: no carrier, no payment service behind them.
FULFILMENT_PROVIDER = "manual_manual"
PAYMENT_PROVIDER = "pp_system_default"


class MedusaApiError(RuntimeError):
    """Medusa answered a call with something other than 200."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:2000]}")
        self.status = status
        self.body = body


class MedusaClient:
    """One caller of a Medusa 2 server's Admin or Store API, at `url`."""

    def __init__(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float = _TIMEOUT_S
    ) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout, headers=dict(headers or {}))

    @classmethod
    def admin(cls, url: str, email: str, password: str) -> MedusaClient:
        """An admin user's client, logged in (the token lives a day)."""
        client = cls(url)
        try:
            token = client.post("/auth/user/emailpass", {"email": email, "password": password})
        except BaseException:
            client.close()
            raise
        client._http.headers["Authorization"] = f"Bearer {token['token']}"
        return client

    @classmethod
    def store(cls, url: str, publishable_key: str) -> MedusaClient:
        """A storefront's client: the key decides the sales channel and so the stock it sees."""
        return cls(url, headers={"x-publishable-api-key": publishable_key})

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._call("GET", path, None, params)

    def post(
        self, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._call("POST", path, {} if body is None else body, params)

    def delete(self, path: str) -> dict[str, Any]:
        return self._call("DELETE", path, None, None)

    def _call(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        response = self._http.request(method, path, json=body, params=dict(params or {}))
        if response.status_code != 200:
            raise MedusaApiError(method, path, response.status_code, response.text)
        return cast(dict[str, Any], response.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MedusaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class SeededVariant:
    """One SKU as Medusa holds it: a product with a single variant and its inventory item."""

    product_id: str
    variant_id: str
    inventory_item_id: str


@dataclass(frozen=True)
class SeededStore:
    """The ids of what `seed_store` created."""

    region_id: str
    sales_channel_id: str
    stock_location_id: str
    shipping_profile_id: str
    shipping_option_id: str
    publishable_key_id: str
    publishable_key: str
    """The `x-publishable-api-key` header's value (`pk_...`)."""
    variants: Mapping[str, SeededVariant]
    """By SKU code."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SeededStore:
        return cls(
            **{
                **data,
                "variants": {sku: SeededVariant(**v) for sku, v in data["variants"].items()},
            }
        )


def store_spec(catalogue: Catalogue) -> dict[str, Any]:
    """What `seed_store` creates, from the catalogue: the US region in its base currency, the
    warehouse serving the US as the one stock location, the standard shipping method and
    every SKU with its base-currency price and its target stock."""
    currency = catalogue.base_currency
    warehouse = next(w for w in catalogue.warehouses if "US" in w.serves)
    shipping = next(m for m in catalogue.shipping_methods if m.code == "standard")
    return {
        "currency": currency.lower(),
        "country": "us",
        "region": "United States",
        "sales_channel": "erpbridge web shop",
        "location": {
            "code": warehouse.warehouse_id,
            "name": warehouse.name,
            "address": {
                "address_1": warehouse.address.line1,
                "city": warehouse.address.city,
                # Medusa's provinces are ISO 3166-2 in lower case: "us-nj".
                "province": f"{warehouse.address.country}-{warehouse.address.region}".lower(),
                "postal_code": warehouse.address.postal_code,
                "country_code": warehouse.address.country.lower(),
            },
        },
        "shipping_option": {
            "code": shipping.code,
            "name": shipping.name,
            "amount": str(shipping.prices[currency]),
        },
        "skus": [
            {
                "code": sku.code,
                "name": sku.name,
                "price": str(sku.price(currency)),
                "stock": sku.target_stock,
            }
            for sku in catalogue.skus
        ],
    }


def seed_store(admin: MedusaClient, spec: Mapping[str, Any]) -> SeededStore:
    """Create `spec` (from `store_spec`) in an empty, migrated Medusa through its Admin API."""
    currency, country = spec["currency"], spec["country"]
    region = admin.post(
        "/admin/regions",
        {"name": spec["region"], "currency_code": currency, "countries": [country],
         "payment_providers": [PAYMENT_PROVIDER], "automatic_taxes": True},
    )["region"]  # fmt: skip
    channel = admin.post("/admin/sales-channels", {"name": spec["sales_channel"]})["sales_channel"]
    location = spec["location"]
    stock_location = admin.post(
        "/admin/stock-locations",
        {"name": location["name"], "address": location["address"],
         "metadata": {"erpbridge_warehouse": location["code"]}},
    )["stock_location"]  # fmt: skip
    location_id = stock_location["id"]
    admin.post(f"/admin/stock-locations/{location_id}/sales-channels", {"add": [channel["id"]]})
    admin.post(
        f"/admin/stock-locations/{location_id}/fulfillment-providers",
        {"add": [FULFILMENT_PROVIDER]},
    )
    # `db:migrate` creates this one; products and shipping options must share a profile.
    profiles = admin.get("/admin/shipping-profiles", {"type": "default"})["shipping_profiles"]
    if not profiles:
        raise RuntimeError("Medusa has no default shipping profile after db:migrate")
    profile_id = profiles[0]["id"]
    with_sets = admin.post(
        f"/admin/stock-locations/{location_id}/fulfillment-sets",
        {"name": f"{location['code']} shipping", "type": "shipping"},
        {"fields": "id,*fulfillment_sets"},
    )["stock_location"]
    fulfillment_set_id = with_sets["fulfillment_sets"][0]["id"]
    zones = admin.post(
        f"/admin/fulfillment-sets/{fulfillment_set_id}/service-zones",
        {"name": country.upper(), "geo_zones": [{"type": "country", "country_code": country}]},
    )["fulfillment_set"]["service_zones"]
    shipping = spec["shipping_option"]
    option = admin.post(
        "/admin/shipping-options",
        {"name": shipping["name"], "price_type": "flat", "provider_id": FULFILMENT_PROVIDER,
         "service_zone_id": zones[0]["id"], "shipping_profile_id": profile_id,
         "type": {"label": shipping["code"], "description": shipping["name"],
                  "code": shipping["code"]},
         "prices": [{"currency_code": currency, "amount": float(shipping["amount"])},
                    {"region_id": region["id"], "amount": float(shipping["amount"])}],
         "rules": [{"attribute": "enabled_in_store", "value": "true", "operator": "eq"},
                   {"attribute": "is_return", "value": "false", "operator": "eq"}]},
    )["shipping_option"]  # fmt: skip
    key_body = {"title": spec["sales_channel"], "type": "publishable"}
    key = admin.post("/admin/api-keys", key_body)["api_key"]
    admin.post(f"/admin/api-keys/{key['id']}/sales-channels", {"add": [channel["id"]]})

    variants = {}
    for sku in spec["skus"]:
        product = admin.post(
            "/admin/products",
            {"title": sku["name"], "handle": sku["code"].lower(), "status": "published",
             "shipping_profile_id": profile_id, "sales_channels": [{"id": channel["id"]}],
             "options": [{"title": "Default", "values": ["Default"]}],
             "variants": [{"title": sku["name"], "sku": sku["code"], "manage_inventory": True,
                           "options": {"Default": "Default"},
                           "prices": [{"currency_code": currency,
                                       "amount": float(sku["price"])}]}]},
        )["product"]  # fmt: skip
        # Medusa makes the variant's inventory item itself, under the same SKU.
        (item,) = admin.get("/admin/inventory-items", {"sku": sku["code"]})["inventory_items"]
        admin.post(
            f"/admin/inventory-items/{item['id']}/location-levels",
            {"location_id": location_id, "stocked_quantity": sku["stock"]},
        )
        variants[sku["code"]] = SeededVariant(
            product_id=product["id"],
            variant_id=product["variants"][0]["id"],
            inventory_item_id=item["id"],
        )
    return SeededStore(
        region_id=region["id"],
        sales_channel_id=channel["id"],
        stock_location_id=location_id,
        shipping_profile_id=profile_id,
        shipping_option_id=option["id"],
        publishable_key_id=key["id"],
        publishable_key=key["token"],
        variants=variants,
    )

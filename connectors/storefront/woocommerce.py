"""WooCommerce's stock levels through its REST API v3: a product found by SKU
(`GET /products?sku=`), its `stock_quantity` set with stock management on, up to 100 products
per `POST /products/batch` (WooCommerce's documented batch limit).

WooCommerce has one stock location per product (the route maps it as "default") and no
compare-and-set: the level is set as is. Products are found by their SKU once and
remembered; a SKU WooCommerce does not sell is asked again after a while, since a shop adds
products. Variations keep their own SKUs and are not set here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from connectors.storefront.adapter import Outcome, Status, StorefrontUnavailable, request
from connectors.storefront.levels import StockLevel

BATCH_LIMIT = 100
_UNKNOWN_FOR_SECONDS = 600.0


class WooCommerceStock:
    provider = "woocommerce"

    def __init__(
        self,
        client: httpx.Client,
        site_url: str,
        token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key, _, secret = token.partition(":")
        self._client = client
        self._api = f"{site_url.rstrip('/')}/wp-json/wc/v3"
        self._auth = (key, secret)
        self._clock = clock
        self._ids: dict[str, int] = {}
        self._unknown: dict[str, float] = {}

    def set_levels(
        self, levels: Sequence[StockLevel], previous: Mapping[str, int]
    ) -> list[Outcome]:
        ids = {level.sku: self._product_id(level.sku) for level in levels}
        outcomes: dict[int, Outcome] = {}
        known = [(i, level) for i, level in enumerate(levels) if ids[level.sku] is not None]
        for i, level in enumerate(levels):
            if ids[level.sku] is None:
                outcomes[i] = Outcome(level, Status.UNKNOWN_SKU)
        for start in range(0, len(known), BATCH_LIMIT):
            chunk = known[start : start + BATCH_LIMIT]
            answered = self._batch([
                {"id": ids[level.sku], "manage_stock": True, "stock_quantity": level.quantity}
                for _, level in chunk
            ])  # fmt: skip
            for (i, level), item in zip(chunk, answered, strict=True):
                error = item.get("error")
                outcomes[i] = (
                    Outcome(
                        level,
                        Status.FAILED,
                        f"{error['code']}: {error['message']}",
                        permanent=True,
                    )
                    if error
                    else Outcome(level, Status.SET)
                )
        return [outcomes[i] for i in range(len(levels))]

    def _product_id(self, sku: str) -> int | None:
        if sku in self._ids:
            return self._ids[sku]
        if self._clock() < self._unknown.get(sku, float("-inf")):
            return None
        found = self._call("GET", "/products", params={"sku": sku})
        matching = [p for p in found if p.get("sku") == sku]
        if not matching:
            self._unknown[sku] = self._clock() + _UNKNOWN_FOR_SECONDS
            return None
        self._ids[sku] = int(matching[0]["id"])
        return self._ids[sku]

    def _batch(self, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer = self._call("POST", "/products/batch", json={"update": updates})
        answered: list[dict[str, Any]] = answer.get("update", [])
        if len(answered) != len(updates):
            raise StorefrontUnavailable(
                f"WooCommerce answered {len(answered)} of {len(updates)} updates"
            )
        return answered

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return request(self._client, method, self._api + path, auth=self._auth, **kwargs)

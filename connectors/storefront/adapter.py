"""What a storefront adapter is: one platform's way of setting stock levels, showing a
fulfilment on the storefront's order and, for some, keeping its products.

An adapter never talks to Kafka and never waits to retry: it sets a batch of levels and
says per level what became of it, or records a shipment and says what became of it, or
raises `StorefrontUnavailable` when the platform did not answer usefully (throttled, down,
timed out), with its Retry-After, or `StorefrontRefused` when it refused the request as a
whole. The sink (connectors.storefront.sink) decides when to retry and what is published.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import httpx

from connectors.erp.http import retry_after
from connectors.storefront.customers import Customer
from connectors.storefront.levels import StockLevel
from connectors.storefront.products import Product


class Status(Enum):
    SET = "SET"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Outcome:
    level: StockLevel
    status: Status
    message: str | None = None
    permanent: bool = False
    """For FAILED: the platform refused this level, and the same request will not succeed."""


@dataclass(frozen=True, slots=True)
class Shipment:
    """A fulfilment to show on the storefront's order (a storefront.fulfilments record)."""

    route: str
    order_id: str
    fulfillment_id: str
    warehouse_id: str
    carrier: str | None
    tracking_number: str | None
    lines: tuple[tuple[str, int], ...]
    """(SKU, quantity) shipped."""

    @classmethod
    def of(cls, datum: Mapping[str, Any]) -> Shipment:
        """An erpbridge.StorefrontFulfilment datum's shipment."""
        return cls(
            route=datum["route"],
            order_id=datum["order_id"],
            fulfillment_id=datum["fulfillment_id"],
            warehouse_id=datum["warehouse_id"],
            carrier=datum["carrier"],
            tracking_number=datum["tracking_number"],
            lines=tuple((line["sku"], line["quantity"]) for line in datum["lines"]),
        )

    @property
    def key(self) -> str:
        return f"{self.route}:{self.order_id}/{self.fulfillment_id}"

    @property
    def marker(self) -> str:
        """How the storefront's record of it names erpbridge's fulfilment, to be found again."""
        return f"[erpbridge {self.fulfillment_id}]"


class ShipmentStatus(Enum):
    CREATED = "CREATED"
    ALREADY_THERE = "ALREADY_THERE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ShipmentOutcome:
    shipment: Shipment
    status: ShipmentStatus
    storefront_id: str | None = None
    message: str | None = None
    permanent: bool = False


class SyncStatus(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    SKIPPED = "SKIPPED"
    """Nothing the platform could hold: a customer without an email (an account needs one)."""
    FAILED = "FAILED"


Thing = TypeVar("Thing")


@dataclass(frozen=True, slots=True)
class Synced(Generic[Thing]):
    """What became of one product or customer the storefront was made to hold as the ERP
    has it."""

    thing: Thing
    status: SyncStatus
    storefront_id: str | None = None
    message: str | None = None
    permanent: bool = False


class StorefrontUnavailable(Exception):
    """No level of the batch was set, and a retry may set them."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorefrontRefused(Exception):
    """The platform refused the whole request (credentials, a missing route): no level of
    the batch was set, and the same request will not succeed."""


class StorefrontMissing(StorefrontRefused):
    """The platform has nothing at the address asked (404): an adapter that named a thing it
    remembered may look again."""


def request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Any:
    """One HTTP request to a platform, its JSON answer; what failed raised as the sink
    needs it: unanswered, 429 and 5xx as unavailable (with Retry-After), other 4xx as
    refused (credentials, a missing route: every level of the batch fails the same way)."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise StorefrontUnavailable(f"{method} {url}: {error!r}") from error
    said = f"{method} {url} answered {response.status_code}: {response.text[:300]}"
    if response.status_code == 429 or response.status_code >= 500:
        raise StorefrontUnavailable(said, retry_after(response.headers.get("Retry-After")))
    if response.status_code == 404:
        raise StorefrontMissing(said)
    if response.status_code >= 400:
        raise StorefrontRefused(said)
    return response.json()


Id = TypeVar("Id")


class SkuIds(Generic[Id]):
    """A platform's id for each SKU, looked up once by `find` and remembered; a SKU the
    platform does not sell is asked again only after `retry_seconds`, since shops add
    products."""

    def __init__(
        self,
        find: Callable[[str], Id | None],
        clock: Callable[[], float],
        retry_seconds: float = 600.0,
    ) -> None:
        self._find = find
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._ids: dict[str, Id] = {}
        self._unknown: dict[str, float] = {}

    def get(self, sku: str) -> Id | None:
        if sku in self._ids:
            return self._ids[sku]
        if self._clock() < self._unknown.get(sku, float("-inf")):
            return None
        found = self._find(sku)
        if found is None:
            self._unknown[sku] = self._clock() + self._retry_seconds
            return None
        self._ids[sku] = found
        return found


class StorefrontAdapter(Protocol):
    provider: str

    def set_levels(
        self, levels: Sequence[StockLevel], previous: Mapping[str, int]
    ) -> list[Outcome]:
        """One outcome per level, in order; the levels are of one route. `previous` holds
        the level the sink last set per level's key, for platforms that compare and set."""
        ...

    def record_shipment(self, shipment: Shipment) -> ShipmentOutcome:
        """Show the fulfilment on the storefront's order, unless an earlier request did: once
        per fulfilment, however often it is asked."""
        ...


@runtime_checkable
class CatalogAdapter(Protocol):
    """A storefront adapter that also keeps the storefront's products (push_catalog)."""

    def set_product(self, product: Product) -> Synced[Product]:
        """Make the storefront show the product as the ERP has it: created if it sells it and
        the storefront has no product of its SKU, updated where the name, description,
        prices or whether it is sold differ, nothing otherwise; archived, not deleted, when
        the ERP no longer sells it (a variant of a group's product is taken off sale alone,
        as the platform allows: unpriced, private, or deleted from it)."""
        ...


@runtime_checkable
class CustomerAdapter(Protocol):
    """A storefront adapter that also keeps the storefront's customers (push_customers)."""

    def set_customer(self, customer: Customer) -> Synced[Customer]:
        """Make the storefront's account of the ERP's customer hold its name, email, phone
        and address: found by the ERP's customer id the storefront keeps on it (else by its
        email, and then marked with the id), created if there is none, updated where they
        differ, nothing otherwise; never a second account for one customer."""
        ...

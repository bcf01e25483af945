"""What a provider's mapping hands the service: input records in the friendly JSON form
(streams.contracts.jsonlines), or why there are none."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.contracts.topics import CUSTOMERS, INVENTORY, ORDERS, PAYMENTS


@dataclass(frozen=True)
class Input:
    """One record for an input topic (a logical name of streams.contracts.topics)."""

    topic: str
    key: str
    record: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.record["event_id"])

    @property
    def occurred_at(self) -> str:
        return str(self.record["occurred_at"])


class Unmappable(Exception):
    """A verified payload erpbridge cannot turn into its events: it goes to webhooks.dlq with
    `reason` (a short code) and `detail` (naming the id or field at fault)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownTopic(Exception):
    """A webhook topic or event type erpbridge does not ingest: answered 200 and counted."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"webhook topic {topic!r} is not ingested")
        self.topic = topic


class Unavailable(Exception):
    """What the mapping needs from the provider's own API cannot be read now: a 503, and
    the provider's retry tries again."""


class BadDelivery(Exception):
    """A request no provider sends (a required header missing): answered 400."""


def field(document: Any, path: str) -> Any:
    """`document`'s value at a dotted `path`, or Unmappable naming the path."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            raise Unmappable("missing-field", f"{path} is missing")
        value = value[part]
    return value


def text(document: Any, path: str) -> str:
    """A required id or name as a string (providers send ids as numbers or strings)."""
    value = field(document, path)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unmappable("invalid-field", f"{path} is {value!r:.40}, not an id or a name")
    return str(value)


def optional_text(document: Any, path: str) -> str | None:
    """A string that may be absent, null or empty (all three mean none)."""
    try:
        value = text(document, path)
    except Unmappable:
        return None
    return value or None


def order_input(
    event_id: str, occurred_at: str, source: str, order_id: str, event: dict[str, Any]
) -> Input:
    """An OrderEvent of commerce.orders; `event` is its union branch ({"type": ...})."""
    return Input(
        ORDERS, order_id, _envelope(event_id, occurred_at, source, "order_id", order_id, event)
    )


def payment_input(
    event_id: str, occurred_at: str, source: str, order_id: str, event: dict[str, Any]
) -> Input:
    """A PaymentEvent of commerce.payments."""
    return Input(
        PAYMENTS, order_id, _envelope(event_id, occurred_at, source, "order_id", order_id, event)
    )


def inventory_input(
    event_id: str, occurred_at: str, source: str, sku: str, event: dict[str, Any]
) -> Input:
    """An InventoryEvent of commerce.inventory."""
    return Input(INVENTORY, sku, _envelope(event_id, occurred_at, source, "sku", sku, event))


def customer_input(
    event_id: str,
    occurred_at: str,
    source: str,
    storefront: str | None,
    account_id: str,
    event: dict[str, Any],
) -> Input:
    """A CustomerEvent of commerce.customers, keyed by the account: `<storefront>:<account_id>`.
    `event` is its AccountChanged, bare: the union has that one branch, which the friendly
    form gives without its name. `storefront` is the route's name (References.route)."""
    assert storefront is not None, "every route's references name their route"
    account = f"{storefront}:{account_id}"
    return Input(
        CUSTOMERS, account, _envelope(event_id, occurred_at, source, "account", account, event)
    )


def account_changed(
    route: str | None,
    account: Any,
    places: Iterable[Any],
    address: AddressFields,
    *,
    phone: str | None,
    erp_customer_id: str | None,
) -> tuple[str, dict[str, Any]]:
    """(id, AccountChanged) of a storefront's account, whose id, e-mail and first and last
    names are its own fields; `places` its addresses, the default first."""
    account_id, name = text(account, "id"), full_name(account)
    return account_id, {
        "storefront": route,
        "account_id": account_id,
        "email": optional_text(account, "email"),
        "name": name,
        "phone": phone,
        "addresses": address.addresses(name, places),
        "erp_customer_id": erp_customer_id,
    }


def full_name(document: Any) -> str | None:
    """`first_name` and `last_name` joined; None when both are empty."""
    parts = (optional_text(document, "first_name"), optional_text(document, "last_name"))
    return " ".join(part for part in parts if part) or None


_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}")
"""The subdivision part of an ISO 3166-2 code ("CA" of US-CA)."""


@dataclass(frozen=True)
class AddressFields:
    """Where a storefront's account keeps the parts of an address; its names are always
    `first_name` and `last_name`."""

    street: tuple[str, ...]
    """The street lines, in order."""
    region: str
    """An ISO 3166-2 code, or its subdivision part ("CA" or "US-CA")."""
    postal_code: str
    country: str
    """ISO 3166-1 alpha-2, in either case."""

    def addresses(self, holder: str | None, found: Iterable[Any]) -> list[dict[str, Any]]:
        """The account's addresses as erpbridge.ErpAddress, in their order, without repeats
        and without those that say nothing of where (a name alone)."""
        kept: list[dict[str, Any]] = []
        for document in found:
            address = self._address(holder, document)
            where = any(value for part, value in address.items() if part != "name")
            if where and address not in kept:
                kept.append(address)
        return kept

    def _address(self, holder: str | None, document: Any) -> dict[str, Any]:
        country = optional_text(document, self.country)
        country = country.upper() if country else None
        region = optional_text(document, self.region)
        # The storefront may hold a name there rather than a code: no region then.
        part = region.upper().removeprefix(f"{country}-") if region else None
        coded = country is not None and part is not None and _SUBDIVISION.fullmatch(part)
        name = full_name(document)
        lines = (optional_text(document, line) for line in self.street)
        return {
            "name": name if name != holder else None,  # who receives there, if not the holder
            "street": "\n".join(line for line in lines if line) or None,
            "city": optional_text(document, "city"),
            "region": f"{country}-{part}" if coded else None,
            "postal_code": optional_text(document, self.postal_code),
            "country": country,
        }


def _envelope(
    event_id: str, occurred_at: str, source: str, key_field: str, key: str, event: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "source": source,
        key_field: key,
        "event": event,
    }

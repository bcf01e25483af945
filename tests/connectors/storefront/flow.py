"""The storefront sink's loop as the tests drive it: availability records produced onto the
test's topic, the sink polled until the results are there."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from pydantic import SecretStr

from connectors.storefront.adapters import http_client, storefront_adapters
from connectors.storefront.levels import pushing_routes
from connectors.storefront.sink import StorefrontSink
from streams.contracts import deadletter
from streams.contracts.codec import Codec
from streams.contracts.topics import (
    AVAILABILITY,
    ERP_CATALOG,
    ERP_CUSTOMERS,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_RESULTS,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.settings import Settings, WebhookRoute
from streams.ops.topic_admin import ensure_topics
from tests.streams.topology.agents.pipeline import read_all
from tests.support import STORE, wait_for, worker_settings

CODEC = Codec(STORE)


def sink_settings(
    kafka_broker: Any,
    topic_prefix: str,
    tmp_path: Path,
    routes: dict[str, WebhookRoute],
    tokens: dict[str, str],
) -> Settings:
    """A sink of its own group on the test's topics, retrying quickly enough to watch."""
    return worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path,
        webhook_routes=routes,
        webhook_admin_tokens=SecretStr(json.dumps(tokens)),
        erp_backoff_initial_seconds=0.01,
        erp_backoff_max_seconds=0.05,
        erp_give_up_seconds=10,
    )


def new_sink(settings: Settings, sleep: Any = None) -> StorefrontSink:
    catalog = TopicCatalog.from_settings(settings)
    ensure_topics(settings.confluent_config(), catalog)
    routes = pushing_routes(settings.webhook_routes)
    adapters = storefront_adapters(settings, routes, http_client())
    extra = {} if sleep is None else {"sleep": sleep}
    return StorefrontSink(settings, catalog, CODEC, routes, adapters, **extra)


def availability(
    sku: str, available: int, warehouse: str = "WH-1", elsewhere: Mapping[str, int] | None = None
) -> bytes:
    """A record of `available` at `warehouse`, and what is available `elsewhere`."""
    levels = {warehouse: available, **(elsewhere or {})}
    datum = {
        "event_id": f"avail:{sku}:{available}",
        "occurred_at": 1_780_000_000_000,
        "source": "erpbridge",
        "sku": sku,
        "on_hand": sum(levels.values()),
        "reserved": 0,
        "available": sum(levels.values()),
        "warehouses": [
            {"warehouse_id": w, "on_hand": n, "reserved": 0, "available": n}
            for w, n in levels.items()
        ],
    }
    return CODEC.encode("erpbridge.StockAvailability", datum, topic="inventory.availability")


def dead_letters(settings: Settings, name: str = AVAILABILITY) -> list[tuple[str, str, str]]:
    """(key, reason, error) of each dead letter of topic `name`."""
    topic = TopicCatalog.from_settings(settings).physical(dead_letter_of(name))
    found = []
    for letter in read_all(settings, topic):
        said = deadletter.describe(letter.headers() or [])
        key = letter.key()
        found.append(
            ("" if key is None else key.decode(), said[deadletter.REASON], said[deadletter.ERROR])
        )
    return found


def produce(settings: Settings, records: list[tuple[str, bytes]], name: str = AVAILABILITY) -> None:
    topic = TopicCatalog.from_settings(settings).physical(name)
    producer = Producer(settings.producer_config())
    for key, value in records:
        producer.produce(topic, value, key.encode())
    assert producer.flush(30) == 0


def drain(
    sink: StorefrontSink, settings: Settings, wanted: int, name: str = STOREFRONT_RESULTS
) -> list[dict[str, Any]]:
    """Polls until `wanted` results are on the results topic `name`; their values."""
    topic = TopicCatalog.from_settings(settings).physical(name)

    def results() -> list[dict[str, Any]] | None:
        sink.poll(timeout=0.5)
        found = [CODEC.decode(m.value()).datum for m in read_all(settings, topic)]
        return found if len(found) >= wanted else None

    found: list[dict[str, Any]] = wait_for(results, timeout=60, what=f"{wanted} results on {name}")
    return found


def statuses(results: list[dict[str, Any]], key: str) -> dict[str, list[str]]:
    """Each pushed thing's result statuses in the order answered, by its `key` field."""
    said: dict[str, list[str]] = {}
    for result in results:
        said.setdefault(result[key], []).append(result["status"])
    return said


def fulfilment(
    route: str,
    order_id: str,
    fulfillment_id: str,
    lines: dict[str, int],
    *,
    warehouse: str = "WH-1",
    tracking: str | None = None,
) -> tuple[str, bytes]:
    """A storefront.fulfilments record (key, value), as the worker writes it."""
    datum = {
        "event_id": f"{order_id}/storefront-fulfilment/{fulfillment_id}",
        "occurred_at": 1_780_000_000_000,
        "source": "erpbridge",
        "route": route,
        "order_id": order_id,
        "fulfillment_id": fulfillment_id,
        "warehouse_id": warehouse,
        "carrier": "UPS" if tracking else None,
        "tracking_number": tracking,
        "lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()],
    }
    value = CODEC.encode("erpbridge.StorefrontFulfilment", datum, topic="storefront.fulfilments")
    return order_id, value


def catalog_item(
    sku: str,
    name: str,
    prices: dict[str, str],
    *,
    active: bool = True,
    at_ms: int = 0,
    contracts: dict[str, list[tuple[int, str]]] | None = None,
    attributes: dict[str, tuple[str, str]] | None = None,
    group: tuple[str, str] | None = None,
) -> tuple[str, bytes]:
    """An erp.catalog record (key, value) of `sku`, as the ERP source writes it;
    `contracts` are USD price lists' tiers (from quantity, unit price) by price list id,
    `attributes` (label, value) by name, `group` the ERP product's (id, name)."""
    datum = {
        "sku": sku, "name": name, "description": f"{name}, from the ERP", "unit": "u",
        "active": active,
        "list_prices": [{"currency": c, "amount": Decimal(a)} for c, a in sorted(prices.items())],
        "price_lists": [
            {"price_list": pl, "name": f"Contract {pl}", "currency": "USD",
             "tiers": [{"min_quantity": q, "unit_price": Decimal(a)} for q, a in tiers]}
            for pl, tiers in sorted((contracts or {}).items())
        ],
        "attributes": [{"name": n, "label": label, "value": value}
                       for n, (label, value) in sorted((attributes or {}).items())],
        "group": None if group is None else {"id": group[0], "name": group[1]},
        "source": "erp:tryton", "erp_id": sku, "updated_at": 1_780_000_000_000 + at_ms,
    }  # fmt: skip
    return sku, CODEC.encode("erpbridge.CatalogItem", datum, topic="erp.catalog")


def erp_customer(
    customer_id: str,
    name: str,
    email: str | None,
    *,
    active: bool = True,
    street: str = "1 Main St",
    price_list: str | None = None,
) -> tuple[str, bytes]:
    """An erp.customers record (key, value) of `customer_id`, as the ERP source writes it."""
    datum = {
        "customer_id": customer_id, "name": name, "email": email, "phone": "+1 555 0100",
        "active": active, "price_list": price_list,
        "addresses": [{"name": None, "street": street, "city": "Springfield", "region": "IL",
                       "postal_code": "62701", "country": "US"}],
        "source": "erp:tryton", "erp_id": customer_id, "updated_at": 1_780_000_000_000,
    }  # fmt: skip
    return customer_id, CODEC.encode("erpbridge.ErpCustomer", datum, topic="erp.customers")


PUSHED_CUSTOMERS = {
    "CUST-NEW": ["CREATED", "UPDATED"], "CUST-ANN": ["UPDATED", "UNCHANGED"],
    "CUST-NOMAIL": ["SKIPPED"], "CUST-CLASH": ["FAILED"],
}  # fmt: skip
"""What `push_customers_twice` answers per customer, in order."""


def push_customers_twice(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The customer tests' ERP customers pushed by a sink: a new one, one the shop has an
    account of (ann@example.com), one without an email, one whose email another ERP
    customer's account holds (shared@example.com), an inactive one; then Ann again, and the
    new one with a new email and address. The results of the first round, and of both."""
    records = [
        erp_customer("CUST-NEW", "Jane Doe", "jane@example.com"),
        erp_customer("CUST-ANN", "Ann Smith", "ann@example.com"),
        erp_customer("CUST-NOMAIL", "Acme Trading", None),
        erp_customer("CUST-CLASH", "Carol", "shared@example.com"),
        erp_customer("CUST-GONE", "Gone", "gone@example.com", active=False),
    ]
    sink = new_sink(settings)
    produce(settings, records, ERP_CUSTOMERS)
    sink.start()
    try:
        first = drain(sink, settings, 4, STOREFRONT_CUSTOMER_RESULTS)
        moved = erp_customer("CUST-NEW", "Jane Doe", "jane.doe@example.com", street="2 Elm St")
        produce(settings, [records[1], moved], ERP_CUSTOMERS)
        return first, drain(sink, settings, 6, STOREFRONT_CUSTOMER_RESULTS)
    finally:
        sink.close()


ATTRIBUTES_THEN = {"colour": ("Colour", "Navy"), "size": ("Size", "M")}
ATTRIBUTES_NOW = {"colour": ("Colour", "Red"), "fabric": ("Fabric", "Merino wool")}
"""A product's attributes as first pushed, and after one changed, one dropped, one added."""


def push_attributes(settings: Settings, sku: str) -> list[str]:
    """A product pushed with `ATTRIBUTES_THEN`, then with `ATTRIBUTES_NOW` twice: its
    results' statuses in order (created, updated, unchanged where all is well)."""
    records = [
        catalog_item(sku, "Attributed product", {"USD": "10.0000"}, attributes=attributes)
        for attributes in (ATTRIBUTES_THEN, ATTRIBUTES_NOW, ATTRIBUTES_NOW)
    ]
    return push_each(settings, records)[sku]


def push_each(settings: Settings, records: Sequence[tuple[str, bytes]]) -> dict[str, list[str]]:
    """Catalog records pushed one at a time: the results' statuses per SKU, in order."""
    steps = [lambda tag, record=record: [record] for record in records]
    said, _ = push_group(settings, "", lambda: None, steps)
    return said


def tee(tag: str, size: str, price: str, *, active: bool = True) -> tuple[str, bytes]:
    """The erp.catalog record of the size `size` of the ERP's product "Tee <tag>" (group
    `tpl-<tag>`): SKU `TEE-<size>-<tag>`, attributes colour Red and the size."""
    attributes = {"colour": ("Colour", "Red"), "size": ("Size", size)}
    sku = f"TEE-{'S' if size == 'S' else 'L'}-{tag}"
    return catalog_item(sku, f"Tee {tag}", {"USD": price}, active=active,
                        attributes=attributes, group=(f"tpl-{tag}", f"Tee {tag}"))  # fmt: skip


GROUP_STEPS = (
    lambda tag: [tee(tag, "S", "10"), tee(tag, "L", "12")],
    lambda tag: [tee(tag, "S", "10", active=False), tee(tag, "XL", "13")],
    lambda tag: [tee(tag, "S", "10", active=False), tee(tag, "XL", "13")],
    lambda tag: [tee(tag, "S", "11")],
)
"""The SKUs of one ERP product pushed: the small and large made (10, 12); the small no
longer sold and the large resized XL at 13; the same again; the small sold again at 11."""
LAST_VARIANT_STEPS = (
    lambda tag: [tee(tag, "S", "11", active=False)],
    lambda tag: [tee(tag, "XL", "13", active=False)],
    lambda tag: [tee(tag, "S", "11")],
)
"""After GROUP_STEPS: neither sold, the small one first, so that the large one is the last
on sale; then the small one sold again."""


def push_group(
    settings: Settings, tag: str, look: Callable[[], Any], steps: Sequence[Any] = GROUP_STEPS
) -> tuple[dict[str, list[str]], list[Any]]:
    """`steps` (each a list of catalog records of `tag`) pushed one after another: the
    results' statuses per SKU in the order answered, and what `look` saw after each step."""
    sink = new_sink(settings)
    sink.start()
    seen, sent = [], 0
    try:
        for step in steps:
            records = step(tag)
            produce(settings, records, ERP_CATALOG)
            sent += len(records)
            results = drain(sink, settings, sent, STOREFRONT_CATALOG_RESULTS)
            seen.append(look())
    finally:
        sink.close()
    return statuses(results, "sku"), seen

"""The topic catalogue: every topic's logical name, role, value schema and configuration.

Code refers to topics by the constants below; `TopicCatalog` turns them into the
physical names (tenant prefix) and partition counts of one deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from streams.ops.settings import Settings

ORDERS = "commerce.orders"
INVENTORY = "commerce.inventory"
PAYMENTS = "commerce.payments"
CUSTOMERS = "commerce.customers"
"""Storefronts' customer accounts as they are created and changed, keyed by account
(`<storefront>:<account id>`): what the ERP learns its customers from."""
ERP_COMMANDS = "erp.commands"
ERP_RESULTS = "erp.results"
ALERTS = "reconciliation.alerts"
AVAILABILITY = "inventory.availability"
ORDER_STATUS = "orders.status"
JOURNAL = "finance.journal"
"""Journal entries, for analysts; the dispatcher also reads them, to post each to the ERP."""
STOCK_REQUESTS = "internal.stock-requests"
"""Order events' effects on stock, re-keyed from order id to SKU."""
ORDER_FEEDBACK = "internal.order-feedback"
"""Reservation outcomes (re-keyed from SKU to order id), ERP results (re-keyed from command
id to order id) and timer ticks for orders."""
ERP_PENDING = "internal.erp-pending"
"""ERP commands waiting for the rate limit, keyed so that commands that may coalesce (one
SKU's adjustments) share a partition."""
WEBHOOKS = "webhooks"
"""Not a topic: the webhooks connector's requests, as the source of their dead letters."""
WEBHOOKS_DLQ = "webhooks.dlq"
"""Webhooks that were verified but cannot be mapped: the raw body with the request's headers
and the reason, for a human, and for `erpbridge dlq replay webhooks` (connectors.webhooks)."""
PAYOUT_WATERMARKS = "webhooks.payout-watermarks"
"""Per Shopify route, the last Shopify Payments payout `erpbridge payouts sync` published
(JSON, compacted; connectors.webhooks.payout_sync): where its next run starts."""
POLL_WATERMARKS = "webhooks.poll-watermarks"
"""Per Medusa route, how far `erpbridge connector medusa-source` has read its orders and
payments (JSON, compacted; connectors.webhooks.medusa.poll): where its next poll starts."""
STOCK_PUSHES = "storefront.stock-pushes"
"""Stock levels erpbridge pushed to storefronts, latest per SKU and warehouse (JSON,
connectors.webhooks.echoes): how the webhooks connector tells an echo of its own push."""

STOREFRONT_RESULTS = "storefront.results"
"""What storefronts did with the stock levels erpbridge pushed (connectors.storefront)."""
STOREFRONT_FULFILMENTS = "storefront.fulfilments"
"""Fulfilments of storefront orders with their tracking, for the storefront to show
(streams.domain.tracking)."""
STOREFRONT_FULFILMENT_RESULTS = "storefront.fulfilment-results"
"""What storefronts did with the fulfilments erpbridge told them about (connectors.storefront)."""
STOREFRONT_CATALOG_RESULTS = "storefront.catalog-results"
"""What storefronts did with the products erpbridge pushed to them from erp.catalog
(connectors.storefront)."""
STOREFRONT_CUSTOMER_RESULTS = "storefront.customer-results"
"""What storefronts did with the customers erpbridge pushed to them from erp.customers
(connectors.storefront)."""
ERP_CATALOG = "erp.catalog"
"""The ERP's products, latest per SKU (connectors.erp.source): what storefronts list and
price."""
ERP_CUSTOMERS = "erp.customers"
"""The ERP's customers, latest per customer id (connectors.erp.source)."""

DLQ_SUFFIX = ".dlq"

_DAY_MS = 24 * 3600 * 1000
_JOURNAL_DAYS = 365
"""How long analysts can read an entry on finance.journal."""


class Role(Enum):
    INPUT = "input"
    INTERNAL = "internal"
    OUTPUT = "output"
    DEAD_LETTER = "dead-letter"
    CHANGELOG = "changelog"
    """A Faust table's changelog (streams.topology.tables); not in SPECS: its name follows the app id."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    role: Role
    key: str
    value_schema: str | None
    """Full Avro name of the value; None for internal topics (JSON, streams.domain.messages)
    and dead-letter topics, which keep the original bytes."""
    configs: tuple[tuple[str, str], ...]

    @property
    def compacted(self) -> bool:
        return ("cleanup.policy", "compact") in self.configs


def _delete(days: int) -> tuple[tuple[str, str], ...]:
    return (("cleanup.policy", "delete"), ("retention.ms", str(days * _DAY_MS)))


# Tables (latest value per key is the truth) are compacted; event streams expire.
_COMPACT = (("cleanup.policy", "compact"), ("min.compaction.lag.ms", str(3600 * 1000)))

CHANGELOG_CONFIGS: tuple[tuple[str, str], ...] = (("cleanup.policy", "compact"),)
"""Configs of the Faust tables' changelog topics (streams.contracts.changelogs.changelog_sources)."""

SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(ORDERS, Role.INPUT, "order_id", "erpbridge.OrderEvent", _delete(7)),
    TopicSpec(INVENTORY, Role.INPUT, "sku", "erpbridge.InventoryEvent", _delete(7)),
    TopicSpec(PAYMENTS, Role.INPUT, "order_id", "erpbridge.PaymentEvent", _delete(7)),
    TopicSpec(CUSTOMERS, Role.INPUT, "account", "erpbridge.CustomerEvent", _delete(7)),
    TopicSpec(ERP_COMMANDS, Role.OUTPUT, "command_id", "erpbridge.ErpCommand", _delete(7)),
    TopicSpec(ERP_RESULTS, Role.OUTPUT, "command_id", "erpbridge.ErpResult", _delete(7)),
    TopicSpec(ALERTS, Role.OUTPUT, "alert_id", "erpbridge.ReconciliationAlert", _COMPACT),
    TopicSpec(AVAILABILITY, Role.OUTPUT, "sku", "erpbridge.StockAvailability", _COMPACT),
    TopicSpec(ORDER_STATUS, Role.OUTPUT, "order_id", "erpbridge.OrderStatusChanged", _delete(30)),
    TopicSpec(JOURNAL, Role.OUTPUT, "entry_id", "erpbridge.JournalEntry", _delete(_JOURNAL_DAYS)),
    TopicSpec(STOCK_PUSHES, Role.OUTPUT, "sku@warehouse", None, _COMPACT),
    TopicSpec(
        STOREFRONT_RESULTS,
        Role.OUTPUT,
        "route:sku@warehouse",
        "erpbridge.StorefrontResult",
        _delete(7),
    ),
    TopicSpec(
        STOREFRONT_FULFILMENTS,
        Role.OUTPUT,
        "order_id",
        "erpbridge.StorefrontFulfilment",
        _delete(7),
    ),
    TopicSpec(
        STOREFRONT_FULFILMENT_RESULTS,
        Role.OUTPUT,
        "route:order_id/fulfillment_id",
        "erpbridge.StorefrontFulfilmentResult",
        _delete(7),
    ),
    TopicSpec(
        STOREFRONT_CATALOG_RESULTS,
        Role.OUTPUT,
        "route:sku",
        "erpbridge.StorefrontProductResult",
        _delete(7),
    ),
    TopicSpec(
        STOREFRONT_CUSTOMER_RESULTS,
        Role.OUTPUT,
        "route:customer_id",
        "erpbridge.StorefrontCustomerResult",
        _delete(7),
    ),
    TopicSpec(ERP_CATALOG, Role.OUTPUT, "sku", "erpbridge.CatalogItem", _COMPACT),
    TopicSpec(ERP_CUSTOMERS, Role.OUTPUT, "customer_id", "erpbridge.ErpCustomer", _COMPACT),
    TopicSpec(PAYOUT_WATERMARKS, Role.INTERNAL, "route", None, _COMPACT),
    TopicSpec(POLL_WATERMARKS, Role.INTERNAL, "route", None, _COMPACT),
    TopicSpec(STOCK_REQUESTS, Role.INTERNAL, "sku", None, _delete(7)),
    TopicSpec(ORDER_FEEDBACK, Role.INTERNAL, "order_id", None, _delete(7)),
    TopicSpec(ERP_PENDING, Role.INTERNAL, "dispatch key", None, _delete(7)),
    # Every topic erpbridge reads has one. Dead letters wait for a human, so they are kept
    # longer than their source.
    *(
        TopicSpec(name + DLQ_SUFFIX, Role.DEAD_LETTER, "original key", None, _delete(30))
        for name in (
            ORDERS,
            INVENTORY,
            PAYMENTS,
            CUSTOMERS,
            STOCK_REQUESTS,
            ORDER_FEEDBACK,
            ERP_PENDING,
            ERP_COMMANDS,
            ERP_RESULTS,
            AVAILABILITY,
            STOREFRONT_RESULTS,
            STOREFRONT_FULFILMENTS,
            STOREFRONT_FULFILMENT_RESULTS,
            STOREFRONT_CATALOG_RESULTS,
            STOREFRONT_CUSTOMER_RESULTS,
            ERP_CATALOG,
            ERP_CUSTOMERS,
        )
    ),
    # Webhooks have no source topic: their dead letters are the request, kept like the others.
    TopicSpec(WEBHOOKS_DLQ, Role.DEAD_LETTER, "event id", None, _delete(30)),
    # The journal, which the dispatcher reads, is kept a year; its dead letters a month more.
    TopicSpec(
        JOURNAL + DLQ_SUFFIX,
        Role.DEAD_LETTER,
        "original key",
        None,
        _delete(_JOURNAL_DAYS + 30),
    ),
)

INPUTS: tuple[str, ...] = tuple(s.name for s in SPECS if s.role is Role.INPUT)

COPARTITIONED: tuple[tuple[str, ...], ...] = (
    (ORDERS, PAYMENTS, ORDER_FEEDBACK),
    (INVENTORY, STOCK_REQUESTS),
    (ERP_RESULTS,),
    (CUSTOMERS,),
    (
        STOREFRONT_RESULTS,
        STOREFRONT_FULFILMENT_RESULTS,
        STOREFRONT_CATALOG_RESULTS,
        STOREFRONT_CUSTOMER_RESULTS,
    ),
)
"""Topics one agent reads together: a key must land on the same partition number in each,
so each group needs one partition count (and the murmur2 partitioner on every producer)."""

AGENT_SOURCES: tuple[str, ...] = tuple(name for group in COPARTITIONED for name in group)
"""Every topic an agent reads."""

DISPATCH_SOURCES: tuple[str, ...] = (ERP_PENDING, JOURNAL)
"""What the dispatcher reads (streams.topology.agents.dispatch), in a consumer group of its own."""


_BY_NAME = {s.name: s for s in SPECS}


def spec(name: str) -> TopicSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown topic {name!r}; known: {', '.join(s.name for s in SPECS)}"
        ) from None


def dead_letter_of(name: str) -> str:
    return name + DLQ_SUFFIX


@dataclass(frozen=True)
class PhysicalTopic:
    """One topic of a deployment as the cluster must have it."""

    name: str
    role: Role
    partitions: int
    configs: dict[str, str]


@dataclass(frozen=True)
class TopicCatalog:
    """Physical topic names and partition counts for one deployment."""

    prefix: str
    default_partitions: int
    partition_overrides: dict[str, int]
    replication_factor: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicCatalog:
        unknown = set(settings.topic_partitions) - {s.name for s in SPECS}
        if unknown:
            raise ValueError(
                f"ERPBRIDGE_TOPIC_PARTITIONS names unknown topics: {', '.join(sorted(unknown))}"
            )
        return cls(
            settings.topic_prefix,
            settings.partitions,
            dict(settings.topic_partitions),
            settings.replication_factor,
        )

    def physical(self, name: str) -> str:
        spec(name)
        return self.prefix + name

    def logical(self, physical: str) -> str:
        if not physical.startswith(self.prefix):
            raise KeyError(f"topic {physical!r} lacks the prefix {self.prefix!r}")
        name = physical[len(self.prefix) :]
        spec(name)
        return name

    def partitions(self, name: str) -> int:
        if name.endswith(DLQ_SUFFIX) and name not in self.partition_overrides:
            return self.partitions(name[: -len(DLQ_SUFFIX)])
        return self.partition_overrides.get(name, self.default_partitions)

    def physical_topics(self, changelogs: Mapping[str, str]) -> list[PhysicalTopic]:
        """Every topic of the catalogue, then `changelogs` (a changelog's physical name -> the
        logical topic its table is partitioned like)."""
        return [
            *(
                PhysicalTopic(
                    self.physical(s.name), s.role, self.partitions(s.name), dict(s.configs)
                )
                for s in SPECS
            ),
            *(
                PhysicalTopic(
                    name, Role.CHANGELOG, self.partitions(source), dict(CHANGELOG_CONFIGS)
                )
                for name, source in changelogs.items()
            ),
        ]

"""Who may do what on Kafka: one principal per component, with the ACLs its job needs and
no more, from the topic catalogue, the tables' changelogs and the consumer group ids.

Both the Strimzi KafkaUsers (streams.ops.k8s) and the listing for other clusters
(streams.ops.acls) are made from `principals`. Only Read and Write are granted on topics:
each implies Describe, which metadata, offsets and KEDA's lag queries need. Producers are
idempotent but use no transactions, and since Kafka 3.0 (KIP-679) Write on a topic is all
an idempotent producer needs: no cluster or transactional-id rights.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from streams.contracts.changelogs import changelog_sources
from streams.contracts.groups import (
    PUSHES_GROUP_PREFIX,
    READER_GROUP_PREFIX,
    TAIL_GROUP_PREFIX,
    connector_group_prefix,
    dispatch_group,
    storefront_group,
    worker_group,
)
from streams.contracts.topics import (
    AGENT_SOURCES,
    ALERTS,
    AVAILABILITY,
    CUSTOMERS,
    DISPATCH_SOURCES,
    ERP_CATALOG,
    ERP_COMMANDS,
    ERP_CUSTOMERS,
    ERP_PENDING,
    ERP_RESULTS,
    INPUTS,
    JOURNAL,
    ORDER_FEEDBACK,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    PAYOUT_WATERMARKS,
    POLL_WATERMARKS,
    SPECS,
    STOCK_PUSHES,
    STOCK_REQUESTS,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_FULFILMENT_RESULTS,
    STOREFRONT_FULFILMENTS,
    STOREFRONT_RESULTS,
    WEBHOOKS_DLQ,
    Role,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.settings import Settings

WORKER = "erpbridge-worker"
CONNECTOR = "erpbridge-connector"
ERP_SOURCE = "erpbridge-erp-source"
STOREFRONT = "erpbridge-storefront"
WEBHOOKS = "erpbridge-webhooks"
PAYOUTS = "erpbridge-payouts"
MEDUSA_SOURCE = "erpbridge-medusa-source"
PRODUCER = "erpbridge-producer"
ANALYST = "erpbridge-analyst"

WORKER_WRITES: tuple[str, ...] = (
    STOCK_REQUESTS,
    ORDER_FEEDBACK,
    ERP_PENDING,
    JOURNAL,
    ALERTS,
    ORDER_STATUS,
    AVAILABILITY,
    ERP_COMMANDS,
    STOREFRONT_FULFILMENTS,
)
"""The agents' outputs (streams.topology.agents.outputs) and the dispatcher's commands."""


class Resource(Enum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(Enum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(Enum):
    READ = "Read"
    WRITE = "Write"
    DESCRIBE = "Describe"


@dataclass(frozen=True)
class Acl:
    """Allows one operation on the resources a name (or a name prefix) matches, from any host."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def matches(self, resource: Resource, name: str) -> bool:
        if resource is not self.resource:
            return False
        if self.pattern is Pattern.PREFIXED:
            return name.startswith(self.name)
        return name == self.name


_IMPLIED = {Operation.READ: Operation.DESCRIBE, Operation.WRITE: Operation.DESCRIBE}
"""Kafka's: a principal that may read or write a resource may also describe it."""


@dataclass(frozen=True)
class Principal:
    user: str
    """The SCRAM user name (Strimzi KafkaUser): the principal is User:<user>."""
    job: str
    acls: tuple[Acl, ...]

    def allows(self, operation: Operation, resource: Resource, name: str) -> bool:
        return any(
            acl.matches(resource, name)
            and operation in (acl.operation, _IMPLIED.get(acl.operation))
            for acl in self.acls
        )


def _topics(names: Iterable[str], operation: Operation) -> list[Acl]:
    return [Acl(Resource.TOPIC, name, Pattern.LITERAL, operation) for name in names]


def _group(name: str, operation: Operation, pattern: Pattern = Pattern.LITERAL) -> Acl:
    return Acl(Resource.GROUP, name, pattern, operation)


def _assigning_reader(prefix: str) -> Acl:
    # The readers' group is never joined nor committed; describing it is the coordinator lookup.
    return _group(prefix, Operation.DESCRIBE, Pattern.PREFIXED)


def principals(settings: Settings) -> list[Principal]:
    """Every component's principal with its ACLs, for the topics and groups of `settings`
    (app id, topic prefix)."""
    catalog = TopicCatalog.from_settings(settings)

    def physical(names: Iterable[str]) -> list[str]:
        return [catalog.physical(name) for name in names]

    app_id = settings.app_id
    changelogs = sorted(changelog_sources(app_id))
    worker_reads = (*AGENT_SOURCES, *DISPATCH_SOURCES)
    analysed = [s.name for s in SPECS if s.role in (Role.OUTPUT, Role.DEAD_LETTER)]
    return [
        Principal(
            WORKER,
            "the stream worker: its agents, their tables' changelogs and the dispatcher",
            (
                *_topics([*physical(worker_reads), *changelogs], Operation.READ),
                *_topics(
                    [
                        *physical(WORKER_WRITES),
                        *physical(dead_letter_of(name) for name in worker_reads),
                        *changelogs,
                    ],
                    Operation.WRITE,
                ),
                _group(worker_group(app_id), Operation.READ),
                _group(dispatch_group(app_id), Operation.READ),
            ),
        ),
        Principal(
            CONNECTOR,
            "the ERP connector: executes erp.commands, answers on erp.results",
            (
                *_topics(physical([ERP_COMMANDS]), Operation.READ),
                *_topics(physical([ERP_RESULTS, dead_letter_of(ERP_COMMANDS)]), Operation.WRITE),
                # One group per ERP target, all the connector's.
                _group(connector_group_prefix(app_id), Operation.READ, Pattern.PREFIXED),
            ),
        ),
        Principal(
            ERP_SOURCE,
            "the ERP source: the ERP's products and customers, read back at start as its watermark",
            (
                *_topics(physical([ERP_CATALOG, ERP_CUSTOMERS]), Operation.READ),
                *_topics(physical([ERP_CATALOG, ERP_CUSTOMERS]), Operation.WRITE),
                _assigning_reader(READER_GROUP_PREFIX),
            ),
        ),
        Principal(
            STOREFRONT,
            "the storefront sink: availability to the storefronts' stock levels, fulfilments "
            "to their orders, the ERP's catalog and customers to their products and accounts",
            (
                *_topics(
                    physical([AVAILABILITY, STOREFRONT_FULFILMENTS, ERP_CATALOG, ERP_CUSTOMERS]),
                    Operation.READ,
                ),
                *_topics(
                    physical(
                        [
                            STOCK_PUSHES,
                            STOREFRONT_RESULTS,
                            STOREFRONT_FULFILMENT_RESULTS,
                            STOREFRONT_CATALOG_RESULTS,
                            STOREFRONT_CUSTOMER_RESULTS,
                            dead_letter_of(AVAILABILITY),
                            dead_letter_of(STOREFRONT_FULFILMENTS),
                            dead_letter_of(ERP_CATALOG),
                            dead_letter_of(ERP_CUSTOMERS),
                        ]
                    ),
                    Operation.WRITE,
                ),
                _group(storefront_group(app_id), Operation.READ),
            ),
        ),
        Principal(
            WEBHOOKS,
            "the webhooks connector: storefront and payment webhooks as input events",
            (
                *_topics(physical([STOCK_PUSHES]), Operation.READ),
                *_topics(physical([*INPUTS, WEBHOOKS_DLQ]), Operation.WRITE),
                _assigning_reader(PUSHES_GROUP_PREFIX),
            ),
        ),
        Principal(
            PAYOUTS,
            "the payouts job: Shopify Payments payouts as settlements, and its watermarks",
            (
                *_topics(physical([PAYOUT_WATERMARKS]), Operation.READ),
                *_topics(physical([PAYMENTS, PAYOUT_WATERMARKS]), Operation.WRITE),
                _assigning_reader(READER_GROUP_PREFIX),
            ),
        ),
        Principal(
            MEDUSA_SOURCE,
            "the Medusa source: Medusa's orders, payments and customers as input events, and its "
            "watermarks",
            (
                *_topics(physical([POLL_WATERMARKS]), Operation.READ),
                *_topics(
                    physical([ORDERS, PAYMENTS, CUSTOMERS, WEBHOOKS_DLQ, POLL_WATERMARKS]),
                    Operation.WRITE,
                ),
                _assigning_reader(READER_GROUP_PREFIX),
            ),
        ),
        Principal(
            PRODUCER,
            "producers of the input topics (erpbridge produce, the storefronts' own)",
            tuple(_topics(physical(INPUTS), Operation.WRITE)),
        ),
        Principal(
            ANALYST,
            "analysts: erpbridge tail, export and dlq list of the outputs and dead letters",
            (
                *_topics(physical(analysed), Operation.READ),
                _assigning_reader(TAIL_GROUP_PREFIX),
                _assigning_reader(READER_GROUP_PREFIX),
            ),
        ),
    ]

"""The principals' ACLs: each component may do its job and no more, for any app id and
tenant prefix; the kafka-acls listing says exactly the same."""

from __future__ import annotations

import itertools
import shlex

import pytest

from streams.contracts.access import (
    ANALYST,
    CONNECTOR,
    ERP_SOURCE,
    MEDUSA_SOURCE,
    PAYOUTS,
    PRODUCER,
    STOREFRONT,
    WEBHOOKS,
    WORKER,
    Operation,
    Pattern,
    Principal,
    Resource,
    principals,
)
from streams.contracts.changelogs import changelog_sources
from streams.contracts.groups import (
    PUSHES_GROUP_PREFIX,
    READER_GROUP_PREFIX,
    TAIL_GROUP_PREFIX,
    connector_group,
    dispatch_group,
    reader_group,
    storefront_group,
    worker_group,
)
from streams.contracts.topics import (
    AGENT_SOURCES,
    AVAILABILITY,
    CUSTOMERS,
    DISPATCH_SOURCES,
    ERP_CATALOG,
    ERP_COMMANDS,
    ERP_CUSTOMERS,
    ERP_RESULTS,
    INPUTS,
    ORDERS,
    PAYMENTS,
    PAYOUT_WATERMARKS,
    POLL_WATERMARKS,
    SPECS,
    STOCK_PUSHES,
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
from streams.ops.acls import kafka_acls_commands
from streams.ops.settings import Settings

SETTINGS = Settings(app_id="shop-app", topic_prefix="tenant1.")
CATALOG = TopicCatalog.from_settings(SETTINGS)
BY_USER = {p.user: p for p in principals(SETTINGS)}
READ, WRITE, DESCRIBE = Operation.READ, Operation.WRITE, Operation.DESCRIBE
TOPIC, GROUP = Resource.TOPIC, Resource.GROUP


def _topics(principal: Principal, operation: Operation) -> set[str]:
    """The catalogue's topics (logical names) and changelogs `principal` may `operation`."""
    names = [CATALOG.physical(s.name) for s in SPECS] + list(changelog_sources(SETTINGS.app_id))
    return {
        CATALOG.logical(name) if name.startswith(SETTINGS.topic_prefix) else name
        for name in names
        if principal.allows(operation, TOPIC, name)
    }


def test_one_principal_per_component() -> None:
    assert set(BY_USER) == {
        WORKER,
        CONNECTOR,
        ERP_SOURCE,
        STOREFRONT,
        WEBHOOKS,
        PAYOUTS,
        MEDUSA_SOURCE,
        PRODUCER,
        ANALYST,
    }
    for principal in BY_USER.values():
        assert principal.job
        assert len(set(principal.acls)) == len(principal.acls)
        assert {acl.operation for acl in principal.acls if acl.resource is TOPIC} <= {READ, WRITE}


def test_every_topic_acl_names_a_topic_of_this_deployment() -> None:
    """The tenant prefix and the app id (changelogs) are applied; no topic is matched by prefix."""
    physical = {CATALOG.physical(s.name) for s in SPECS} | set(changelog_sources(SETTINGS.app_id))
    for principal in BY_USER.values():
        for acl in principal.acls:
            if acl.resource is TOPIC:
                assert acl.pattern is Pattern.LITERAL
                assert acl.name in physical, acl


def test_the_worker_reads_its_sources_and_changelogs_and_writes_its_outputs() -> None:
    worker = BY_USER[WORKER]
    changelogs = set(changelog_sources(SETTINGS.app_id))
    assert _topics(worker, READ) == {*AGENT_SOURCES, *DISPATCH_SOURCES} | changelogs
    written = _topics(worker, WRITE)
    assert changelogs <= written
    assert {dead_letter_of(name) for name in (*AGENT_SOURCES, *DISPATCH_SOURCES)} <= written
    assert ERP_COMMANDS in written
    assert not written & set(INPUTS)
    for group in (worker_group(SETTINGS.app_id), dispatch_group(SETTINGS.app_id)):
        assert worker.allows(READ, GROUP, group)
        # KEDA reads the group's lag as the worker.
        assert worker.allows(DESCRIBE, GROUP, group)
    assert not worker.allows(READ, GROUP, connector_group(SETTINGS.app_id, "tryton"))


def test_the_connector_reads_commands_only_and_answers() -> None:
    connector = BY_USER[CONNECTOR]
    assert _topics(connector, READ) == {ERP_COMMANDS}
    assert _topics(connector, WRITE) == {ERP_RESULTS, dead_letter_of(ERP_COMMANDS)}
    for target in ("tryton", "odoo"):
        assert connector.allows(READ, GROUP, connector_group(SETTINGS.app_id, target))
    assert not connector.allows(READ, GROUP, worker_group(SETTINGS.app_id))


def test_the_erp_source_writes_and_reads_back_the_erps_master_data_only() -> None:
    source = BY_USER[ERP_SOURCE]
    assert _topics(source, WRITE) == _topics(source, READ) == {ERP_CATALOG, ERP_CUSTOMERS}
    # It reads its topics back by assignment, committing nothing.
    assert source.allows(DESCRIBE, GROUP, reader_group(READER_GROUP_PREFIX))
    assert not source.allows(READ, GROUP, reader_group(READER_GROUP_PREFIX))


def test_the_storefront_sink_reads_availability_and_fulfilments_and_writes_what_they_caused() -> (
    None
):
    sink = BY_USER[STOREFRONT]
    assert _topics(sink, READ) == {
        AVAILABILITY,
        STOREFRONT_FULFILMENTS,
        ERP_CATALOG,
        ERP_CUSTOMERS,
    }
    assert _topics(sink, WRITE) == {
        STOCK_PUSHES,
        STOREFRONT_RESULTS,
        STOREFRONT_FULFILMENT_RESULTS,
        STOREFRONT_CATALOG_RESULTS,
        STOREFRONT_CUSTOMER_RESULTS,
        dead_letter_of(AVAILABILITY),
        dead_letter_of(STOREFRONT_FULFILMENTS),
        dead_letter_of(ERP_CATALOG),
        dead_letter_of(ERP_CUSTOMERS),
    }
    assert sink.allows(READ, GROUP, storefront_group(SETTINGS.app_id))
    assert not sink.allows(READ, GROUP, worker_group(SETTINGS.app_id))


def test_producers_write_the_inputs_and_read_nothing() -> None:
    producer = BY_USER[PRODUCER]
    assert _topics(producer, WRITE) == set(INPUTS)
    assert not _topics(producer, READ)
    assert not [acl for acl in producer.acls if acl.resource is GROUP]


def test_analysts_read_outputs_and_dead_letters_and_write_nothing() -> None:
    analyst = BY_USER[ANALYST]
    assert _topics(analyst, READ) == {
        s.name for s in SPECS if s.role in (Role.OUTPUT, Role.DEAD_LETTER)
    }
    assert not _topics(analyst, WRITE)
    assert not set(INPUTS) & _topics(analyst, READ)
    for prefix in (TAIL_GROUP_PREFIX, READER_GROUP_PREFIX):
        group = reader_group(prefix)
        assert analyst.allows(DESCRIBE, GROUP, group)
        # Describing finds the coordinator; nothing joins or commits.
        assert not analyst.allows(READ, GROUP, group)


def test_webhooks_and_payouts_each_write_only_theirs() -> None:
    webhooks, payouts = BY_USER[WEBHOOKS], BY_USER[PAYOUTS]
    assert _topics(webhooks, WRITE) == {*INPUTS, WEBHOOKS_DLQ}
    assert _topics(webhooks, READ) == {STOCK_PUSHES}
    assert webhooks.allows(DESCRIBE, GROUP, reader_group(PUSHES_GROUP_PREFIX))
    assert _topics(payouts, WRITE) == {"commerce.payments", PAYOUT_WATERMARKS}
    assert _topics(payouts, READ) == {PAYOUT_WATERMARKS}


def test_the_medusa_source_writes_orders_payments_customers_and_its_watermarks_only() -> None:
    source = BY_USER[MEDUSA_SOURCE]
    assert _topics(source, WRITE) == {ORDERS, PAYMENTS, CUSTOMERS, WEBHOOKS_DLQ, POLL_WATERMARKS}
    assert _topics(source, READ) == {POLL_WATERMARKS}
    assert source.allows(DESCRIBE, GROUP, reader_group(READER_GROUP_PREFIX))
    assert not source.allows(READ, GROUP, reader_group(READER_GROUP_PREFIX))


def test_what_is_read_is_written_by_someone() -> None:
    read = set().union(*(_topics(p, READ) for p in BY_USER.values()))
    written = set().union(*(_topics(p, WRITE) for p in BY_USER.values()))
    assert read <= written


@pytest.mark.parametrize("user", sorted(BY_USER))
def test_the_kafka_acls_listing_says_the_same(user: str) -> None:
    listing = kafka_acls_commands(principals(SETTINGS))
    found = set()
    for line in listing.splitlines():
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        assert words[:2] == ["kafka-acls.sh", "--bootstrap-server"]
        option = dict(itertools.pairwise(words))  # each option with the word after it
        if option["--allow-principal"] != f"User:{user}":
            continue
        assert "--add" in words
        assert option["--allow-host"] == "*"
        kind = TOPIC if "--topic" in option else GROUP
        found.add(
            (
                kind,
                option[f"--{kind.value}"],
                Pattern(option["--resource-pattern-type"]),
                Operation(option["--operation"]),
            )
        )
    expected = {(a.resource, a.name, a.pattern, a.operation) for a in BY_USER[user].acls}
    assert found == expected

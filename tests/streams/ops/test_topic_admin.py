"""ensure_topics, topic_states and the `erpbridge topics` verbs against the real test broker."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from streams.cli import main
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import (
    ALERTS,
    INVENTORY,
    JOURNAL,
    ORDER_FEEDBACK,
    ORDERS,
    PAYMENTS,
    SPECS,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.topic_admin import (
    CopartitioningError,
    check_copartitioning,
    ensure_topics,
    topic_states,
)
from tests.support import wait_for


@pytest.fixture
def catalog(topic_prefix: str) -> TopicCatalog:
    return TopicCatalog(topic_prefix, 3, {ORDERS: 4}, 1)


@pytest.fixture
def config(kafka_broker: Any) -> dict[str, str]:
    return {"bootstrap.servers": kafka_broker.bootstrap_servers}


def cluster_partitions(config: dict[str, str], prefix: str) -> dict[str, int]:
    metadata = AdminClient(config).list_topics(timeout=30)
    return {
        name[len(prefix) :]: len(t.partitions)
        for name, t in metadata.topics.items()
        if name.startswith(prefix)
    }


def topic_config(config: dict[str, str], topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = AdminClient(config)  # kept referenced: a collected client cancels its futures
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {key: entry.value for key, entry in entries.items()}


def create_topic(config: dict[str, str], name: str, partitions: int) -> None:
    admin = AdminClient(config)
    new = NewTopic(name, num_partitions=partitions, replication_factor=1)
    admin.create_topics([new])[name].result(timeout=30)


def cli(args: list[str], kafka_broker: Any, prefix: str, **env: str) -> Result:
    return CliRunner().invoke(
        main,
        args,
        env={
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "ERPBRIDGE_TOPIC_PREFIX": prefix,
            # The tables' changelogs are named after the app id: one per test, too.
            "ERPBRIDGE_APP_ID": f"{prefix}app",
            **env,
        },
        catch_exceptions=False,
    )


def test_ensure_topics_creates_the_catalogue_then_reports_it_existing(
    config: dict[str, str], catalog: TopicCatalog, topic_prefix: str
) -> None:
    first = ensure_topics(config, catalog)

    assert first.ok, first.errors
    assert sorted(first.created) == sorted(topic_prefix + s.name for s in SPECS)
    assert first.existing == []
    assert cluster_partitions(config, topic_prefix) == {
        s.name: 4 if s.name in (ORDERS, dead_letter_of(ORDERS)) else 3 for s in SPECS
    }
    orders = topic_config(config, topic_prefix + ORDERS)
    assert orders["cleanup.policy"] == "delete"
    assert orders["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert topic_config(config, topic_prefix + JOURNAL)["retention.ms"] == str(
        365 * 24 * 3600 * 1000
    )
    alerts = topic_config(config, topic_prefix + ALERTS)
    assert alerts["cleanup.policy"] == "compact"
    assert alerts["min.compaction.lag.ms"] == "3600000"

    second = ensure_topics(config, catalog)

    assert second.ok
    assert second.created == []
    assert sorted(second.existing) == sorted(first.created)
    assert str(second) == f"0 created, {len(SPECS)} existing"


def test_a_topic_with_another_partition_count_is_an_error_and_left_alone(
    config: dict[str, str], catalog: TopicCatalog, topic_prefix: str
) -> None:
    physical = topic_prefix + ORDERS
    create_topic(config, physical, 2)

    report = ensure_topics(config, catalog)

    assert list(report.errors) == [physical]
    assert report.errors[physical].startswith(
        f"{physical} exists with 2 partitions but the catalogue says 4"
    )
    assert not report.ok
    assert len(report.created) == len(SPECS) - 1
    assert cluster_partitions(config, topic_prefix)[ORDERS] == 2


def test_topics_the_cluster_refuses_are_reported(config: dict[str, str], topic_prefix: str) -> None:
    report = ensure_topics(config, TopicCatalog(topic_prefix, 1, {}, 3))  # one broker only
    assert report.created == [] and report.existing == []
    assert sorted(report.errors) == sorted(topic_prefix + s.name for s in SPECS)
    message = report.errors[topic_prefix + ORDERS]
    assert message.startswith(f"{topic_prefix}{ORDERS}: could not be created: ")
    assert "replication factor" in message.lower()


def test_topics_create_cli_is_idempotent(kafka_broker: Any, topic_prefix: str) -> None:
    first = cli(["topics", "create"], kafka_broker, topic_prefix, ERPBRIDGE_PARTITIONS="2")
    assert first.exit_code == 0, first.output
    assert f"created   {topic_prefix}{ORDERS} (2 partitions)" in first.stdout
    changelogs = changelog_sources(f"{topic_prefix}app")
    for changelog in changelogs:
        assert f"created   {changelog} (2 partitions)" in first.stdout
    everything = sorted([*(topic_prefix + s.name for s in SPECS), *changelogs])
    assert first.stdout.rstrip().endswith(f"topics: {len(everything)} created, 0 existing")

    second = cli(["topics", "create"], kafka_broker, topic_prefix, ERPBRIDGE_PARTITIONS="2")
    assert second.exit_code == 0, second.output
    assert (
        sorted(line.split()[1] for line in second.stdout.splitlines() if line.startswith("exists"))
        == everything
    )
    assert "created" not in second.stdout.replace("0 created", "")
    assert second.stderr == ""


def test_topics_create_cli_names_a_partition_conflict(
    kafka_broker: Any, config: dict[str, str], topic_prefix: str
) -> None:
    physical = topic_prefix + ORDERS
    create_topic(config, physical, 5)

    result = cli(["topics", "create"], kafka_broker, topic_prefix, ERPBRIDGE_PARTITIONS="2")

    assert result.exit_code == 1
    assert (
        f"error     {physical} exists with 5 partitions but the catalogue says 2" in result.stderr
    )


def test_topics_list_shows_partitions_and_configs(
    kafka_broker: Any, config: dict[str, str], topic_prefix: str
) -> None:
    settings_env = {
        "ERPBRIDGE_PARTITIONS": "2",
        "ERPBRIDGE_TOPIC_PARTITIONS": '{"commerce.orders": 3}',
    }
    before = cli(["topics", "list"], kafka_broker, topic_prefix, **settings_env)
    assert before.exit_code == 0, before.output
    assert all("missing (catalogue:" in line for line in before.stdout.splitlines())

    created = cli(["topics", "create"], kafka_broker, topic_prefix, **settings_env)
    assert created.exit_code == 0, created.output
    alerts = topic_prefix + ALERTS
    admin = AdminClient(config)
    admin.incremental_alter_configs(
        [
            ConfigResource(
                ResourceType.TOPIC,
                alerts,
                incremental_configs=[_set_config("min.compaction.lag.ms", "60000")],
            )
        ]
    )[ConfigResource(ResourceType.TOPIC, alerts)].result(timeout=30)
    wait_for(
        lambda: topic_config(config, alerts)["min.compaction.lag.ms"] == "60000",
        timeout=30,
        what="the altered config to show",
    )

    listed = cli(["topics", "list"], kafka_broker, topic_prefix, **settings_env)

    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert set(rows) == {topic_prefix + s.name for s in SPECS}
    orders = rows[topic_prefix + ORDERS].split()
    assert orders[1:3] == ["3", "partitions"]
    assert "cleanup.policy=delete" in orders
    assert f"retention.ms={7 * 24 * 3600 * 1000}" in orders
    assert rows[topic_prefix + JOURNAL].split()[1] == "2"
    assert "min.compaction.lag.ms=60000 (catalogue: 3600000)" in rows[alerts]


def _set_config(name: str, value: str) -> Any:
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def test_an_unreachable_cluster_is_a_clear_error(topic_prefix: str) -> None:
    with pytest.raises(KafkaException):
        ensure_topics(
            {"bootstrap.servers": "127.0.0.1:9"}, TopicCatalog(topic_prefix, 1, {}, 1), timeout=2
        )

    result = CliRunner().invoke(
        main,
        ["topics", "create", "--timeout", "2"],
        env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert "cannot reach Kafka at 127.0.0.1:9" in result.stderr


def test_topic_states_of_a_fresh_prefix_are_all_missing(
    config: dict[str, str], catalog: TopicCatalog
) -> None:
    states = topic_states(config, catalog)
    assert [s.name for s in states] == [catalog.physical(s.name) for s in SPECS]
    assert all(s.partitions is None and s.configs == {} for s in states)
    assert {s.wanted_partitions for s in states} == {3, 4}


def test_copartitioning_check_names_every_topic_and_its_partition_count(
    config: dict[str, str], catalog: TopicCatalog, topic_prefix: str
) -> None:
    # The catalogue gives commerce.orders 4 partitions and payments 3: orders and payments
    # of one order would land on different partition numbers.
    assert ensure_topics(config, catalog).ok
    with pytest.raises(CopartitioningError) as raised:
        check_copartitioning(config, catalog, {})
    message = str(raised.value)
    assert f"{topic_prefix}{ORDERS} (4 partitions)" in message
    assert f"{topic_prefix}{PAYMENTS} (3 partitions)" in message
    assert f"{topic_prefix}{ORDER_FEEDBACK} (3 partitions)" in message
    assert INVENTORY not in message, "the stock group is consistent and not reported"


def test_copartitioning_check_covers_changelogs_and_missing_topics(
    config: dict[str, str], topic_prefix: str
) -> None:
    consistent = TopicCatalog(topic_prefix, 3, {}, 1)
    assert ensure_topics(config, consistent).ok
    check_copartitioning(config, consistent, {})
    changelog = f"{topic_prefix}app-stock-changelog"
    admin = AdminClient(config)
    admin.create_topics([NewTopic(changelog, num_partitions=2)])[changelog].result(30)
    with pytest.raises(CopartitioningError, match=rf"{changelog} \(2 partitions\)"):
        check_copartitioning(config, consistent, {changelog: INVENTORY})
    absent = TopicCatalog(f"{topic_prefix}absent-", 3, {}, 1)
    with pytest.raises(CopartitioningError, match=r"missing topics .*erpbridge topics create"):
        check_copartitioning(config, absent, {})


def test_the_worker_refuses_to_start_on_topics_that_are_not_copartitioned(
    config: dict[str, str], catalog: TopicCatalog, topic_prefix: str
) -> None:
    assert ensure_topics(config, catalog).ok
    result = CliRunner().invoke(
        main,
        ["worker"],
        env={
            "KAFKA_BOOTSTRAP_SERVERS": config["bootstrap.servers"],
            "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
            "ERPBRIDGE_PARTITIONS": "3",
            "ERPBRIDGE_TOPIC_PARTITIONS": '{"commerce.orders": 4}',
        },
    )
    assert result.exit_code != 0
    assert f"{topic_prefix}{ORDERS} (4 partitions)" in result.output

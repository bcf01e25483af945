"""`erpbridge dlq list|replay` on the real broker: dead letters as the worker and the ERP
connector write them (streams.contracts.deadletter), shown, and sent back to their source."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from confluent_kafka import Producer

from streams.contracts.deadletter import dead_letter
from streams.contracts.topics import (
    ERP_CATALOG,
    ERP_COMMANDS,
    ERP_PENDING,
    JOURNAL,
    ORDERS,
    STOREFRONT_FULFILMENTS,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.settings import Settings
from tests.streams.topology.agents.pipeline import read_all
from tests.support import run

FAILED_AT = datetime(2026, 11, 26, 9, 14, 3, tzinfo=UTC)
HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]


class Letter(NamedTuple):
    partition: int
    source_offset: int
    key: bytes
    value: bytes
    reason: str
    error: str


LETTERS = [
    Letter(0, 17, b"450789469", b"refund-bytes", "over-refund", "refund 50.00 exceeds captured 0"),
    Letter(2, 4, b"450789470", b"order-bytes", "no-exchange-rate", "no EUR rate on 2026-11-26"),
    Letter(0, 21, b"450789471", b"cancel-bytes", "over-refund", "refund 9.00 exceeds captured 0"),
]


def write_dead_letters(settings: Settings, topics: TopicCatalog, topic: str) -> None:
    """LETTERS on `topic`'s dead-letter topic, as the worker writes them: the source
    partition, the original key, value and headers, and the erpbridge.dlq.* headers."""
    producer = Producer(settings.producer_config())
    for letter in LETTERS:
        dead = dead_letter(
            dlq_topic=topics.physical(dead_letter_of(topic)),
            source_topic=topics.physical(topic),
            partition=letter.partition,
            offset=letter.source_offset,
            key=letter.key,
            value=letter.value,
            headers=HEADERS,
            stage="rules",
            reason=letter.reason,
            error=letter.error,
        )
        producer.produce(
            dead.topic,
            key=dead.key,
            value=dead.value,
            headers=dead.headers,
            partition=dead.partition,
            timestamp=int(FAILED_AT.timestamp() * 1000),
        )
    assert producer.flush(30) == 0


def records(settings: Settings, topic: str) -> list[tuple[Any, ...]]:
    """partition, key, value, headers of every record of `topic`."""
    return sorted(
        (m.partition(), m.key(), m.value(), list(m.headers() or []))
        for m in read_all(settings, topic)
    )


def original(letter: Letter) -> tuple[Any, ...]:
    return (letter.partition, letter.key, letter.value, HEADERS)


def test_dlq_list_shows_each_dead_letter(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    write_dead_letters(settings, topics, ORDERS)
    dlq = topics.physical(dead_letter_of(ORDERS))

    result = run(["dlq", "list", ORDERS], cli_env)

    assert result.exit_code == 0, result.output
    failed = FAILED_AT.isoformat(timespec="milliseconds")
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["partition", "offset", "source", "offset", "reason", "failed", "at", "key", "error"],
        ["0", "0", "17", "over-refund", failed, "450789469", *LETTERS[0].error.split()],
        ["0", "1", "21", "over-refund", failed, "450789471", *LETTERS[2].error.split()],
        ["2", "0", "4", "no-exchange-rate", failed, "450789470", *LETTERS[1].error.split()],
        ["3", "dead", "letters", "in", dlq],
    ]
    by_reason = run(["dlq", "list", ORDERS, "--reason", "no-exchange-rate"], cli_env)
    assert by_reason.exit_code == 0, by_reason.output
    assert by_reason.stdout.splitlines()[-1] == f"1 dead letter in {dlq}"


def test_dlq_replay_sends_chosen_dead_letters_back_without_their_dlq_headers(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    write_dead_letters(settings, topics, ORDERS)
    source = topics.physical(ORDERS)

    by_offset = run(["dlq", "replay", ORDERS, "--offset", "2:0"], cli_env)

    assert by_offset.exit_code == 0, by_offset.output
    assert by_offset.stdout.splitlines() == [
        f"re-sent partition 2 offset 0 (no-exchange-rate, source offset 4) to {source} partition 2",
        f"sent 1 dead letter from {topics.physical(dead_letter_of(ORDERS))} back to {source}",
    ]
    assert records(settings, source) == [original(LETTERS[1])]

    by_reason = run(["dlq", "replay", ORDERS, "--reason", "over-refund"], cli_env)

    assert by_reason.exit_code == 0, by_reason.output
    assert len(by_reason.stdout.splitlines()) == 3
    assert records(settings, source) == sorted(map(original, LETTERS))


@pytest.mark.parametrize("topic", [ERP_COMMANDS, ERP_PENDING, JOURNAL, STOREFRONT_FULFILMENTS])
def test_dlq_replay_of_what_the_dispatcher_and_connector_read_lists_on_a_dry_run_then_sends_all(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None], topic: str
) -> None:
    write_dead_letters(settings, topics, topic)
    source = topics.physical(topic)

    listed = run(["dlq", "replay", topic, "--all", "--dry-run"], cli_env)

    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0] == (
        f"would re-send partition 0 offset 0 (over-refund, source offset 17) to {source} partition 0"
    )
    assert listed.stdout.splitlines()[-1] == (
        f"dry run: 3 dead letters would go back to {source}; nothing sent"
    )
    assert records(settings, source) == []

    sent = run(["dlq", "replay", topic, "--all"], cli_env)

    assert sent.exit_code == 0, sent.output
    assert records(settings, source) == sorted(map(original, LETTERS))


def test_dlq_replay_to_a_compacted_topic_skips_what_a_newer_record_superseded(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    write_dead_letters(settings, topics, ERP_CATALOG)
    source = topics.physical(ERP_CATALOG)
    # The ERP changed the first letter's product since: that record is the truth now.
    producer = Producer(settings.producer_config())
    producer.produce(source, key=LETTERS[0].key, value=b"newer-bytes", partition=0)
    assert producer.flush(30) == 0

    sent = run(["dlq", "replay", ERP_CATALOG, "--all"], cli_env)

    assert sent.exit_code == 0, sent.output
    assert sent.stdout.splitlines()[0] == (
        f"skipped partition 0 offset 0: {source} has a newer record of 450789469"
    )
    assert sent.stdout.splitlines()[-1].startswith("sent 2 dead letters")
    assert records(settings, source) == sorted(
        [(0, LETTERS[0].key, b"newer-bytes", []), original(LETTERS[1]), original(LETTERS[2])]
    )


def test_dlq_refuses_what_does_not_exist_sending_nothing(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    write_dead_letters(settings, topics, ORDERS)
    dlq = topics.physical(dead_letter_of(ORDERS))
    refusals = [
        (
            ["replay", ORDERS, "--offset", "0:2"],
            1,
            f"Error: {dlq} has no dead letter at partition 0 offset 2 "
            "(partition 0 holds dead letters at offsets 0..1)",
        ),
        (
            ["replay", ORDERS, "--offset", "1:0"],
            1,
            f"Error: {dlq} has no dead letter at partition 1 offset 0 (partition 1 holds none)",
        ),
        (
            ["replay", ORDERS, "--offset", "5:0"],
            1,
            f"Error: {dlq} has partitions 0..2; partition 5 does not exist",
        ),
        (
            ["replay", ORDERS, "--reason", "unknown-sku"],
            1,
            f"Error: {dlq} has no dead letter with reason 'unknown-sku'; reasons there: "
            "no-exchange-rate (1), over-refund (2)",
        ),
        (
            ["replay", ORDERS],
            2,
            "Error: choose the dead letters with --offset P:O, --reason R or --all",
        ),
        (["replay", ORDERS, "--offset", "0-1"], 2, "'0-1' is not PARTITION:OFFSET, such as 0:17"),
        (
            ["list", "orders.status"],
            2,
            "orders.status is none of the topics whose dead letters this works on: an input "
            "topic, the dispatcher's internal.erp-pending and finance.journal, erp.commands, the "
            "storefront sink's storefront.fulfilments, erp.catalog and erp.customers, or "
            "webhooks; it takes commerce.orders, commerce.inventory, commerce.payments, "
            "commerce.customers, "
            "internal.erp-pending, finance.journal, erp.commands, storefront.fulfilments, "
            "erp.catalog, erp.customers, webhooks",
        ),
    ]
    for options, exit_code, message in refusals:
        result = run(["dlq", *options], cli_env)
        assert (result.exit_code, result.stdout) == (exit_code, ""), (options, result.output)
        assert message in " ".join(result.stderr.split()), (options, result.stderr)
    assert records(settings, topics.physical(ORDERS)) == []


def test_dlq_refuses_a_dead_letter_topic_that_does_not_exist(
    env: dict[str, str | None], topic_prefix: str
) -> None:
    result = run(["dlq", "list", ORDERS], env)  # no topic was created under this prefix

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: topic {topic_prefix}{ORDERS}.dlq does not exist; run `erpbridge topics create`\n"
    )

"""The ERP sink on the real broker against the real Tryton: every command once, even when
redelivered or after a crash between the ERP's success and the offset commit; the ERP down
for a while; poison commands dead-lettered while the others succeed."""

from __future__ import annotations

import json
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connectors.erp.sink import ErpSink
from streams.contracts.topics import ERP_COMMANDS, TopicCatalog
from streams.domain.commands import Command, Kind
from streams.local.tryton import Tryton
from streams.ops.settings import Settings
from tests.connectors.erp import erp_reads
from tests.connectors.erp.records import (
    account_command,
    dead_letters,
    publish,
    results,
    sample_commands,
    wait_results,
)
from tests.support import RunningService, spawn, wait_for


def _ids(commands: list[Command]) -> list[str]:
    return [c.command_id for c in commands]


def _documents(answered: dict[str, list[dict[str, Any]]], ids: list[str]) -> dict[str, set[str]]:
    return {c: {r["document_id"] for r in answered[c]} for c in ids}


def _assert_succeeded(answered: dict[str, list[dict[str, Any]]], ids: list[str]) -> None:
    failed = {c: r["error"] for c in ids for r in answered[c] if r["status"] != "SUCCEEDED"}
    assert not failed, failed
    assert all(r["document_id"] for c in ids for r in answered[c])


def _assert_once_in_erp(tryton: Tryton, commands: list[Command]) -> None:
    """One sale per sales-order command, one move per journal entry and one party per
    storefront account, read from Tryton."""
    sales = [c.command_id for c in commands if c.kind is Kind.CREATE_SALES_ORDER]
    accounts = [
        f"{c.body['storefront']}:{c.body['account_id']}"
        for c in commands
        if c.kind is Kind.UPSERT_CUSTOMER
    ]
    assert erp_reads.parties(tryton, accounts) == Counter(accounts)
    entries = [
        e["entry_id"]
        for c in commands
        if c.kind is Kind.POST_JOURNAL_ENTRY
        for e in c.body["entries"]
    ]
    assert erp_reads.sales(tryton, sales) == Counter(sales)
    assert erp_reads.journal_entries(tryton, entries) == Counter(entries)


def committed(settings: Settings, topics: TopicCatalog, group: str) -> dict[int, int]:
    topic = topics.physical(ERP_COMMANDS)
    consumer = Consumer({**settings.confluent_config(), "group.id": group})
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.partitions(ERP_COMMANDS))]
        return {
            tp.partition: tp.offset
            for tp in consumer.committed(partitions, timeout=10)
            if tp.offset >= 0
        }
    finally:
        consumer.close()


def ends(settings: Settings, topics: TopicCatalog) -> dict[int, int]:
    topic = topics.physical(ERP_COMMANDS)
    consumer = Consumer({**settings.confluent_config(), "group.id": "ends"})
    try:
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(topics.partitions(ERP_COMMANDS))
        }
        return {p: high for p, high in marks.items() if high > 0}
    finally:
        consumer.close()


def test_every_command_reaches_the_erp_once_even_when_redelivered(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    tryton: Tryton,
) -> None:
    # A sample whose commands include every kind, and a storefront account's.
    commands = [*sample_commands(seed=552, orders=8), account_command(uuid.uuid4().hex[:12])]
    assert {c.kind for c in commands} == set(Kind)
    ids = _ids(commands)
    running = start_sink()
    publish(connector_settings, erp_topics, list(commands))
    first = wait_results(connector_settings, erp_topics, ids)
    _assert_succeeded(first, ids)

    # Redelivered, as after a rebalance: the ERP finds each document instead of making one.
    publish(connector_settings, erp_topics, list(commands))
    second = wait_results(connector_settings, erp_topics, ids, each=2)
    _assert_succeeded(second, ids)
    assert all(len(docs) == 1 for docs in _documents(second, ids).values())
    _assert_once_in_erp(tryton, commands)
    wait_for(
        lambda: (
            committed(connector_settings, erp_topics, running.service.group)
            == ends(connector_settings, erp_topics)
        ),
        timeout=30,
        what="every offset committed",
    )


def test_a_crash_between_erp_success_and_commit_creates_nothing_twice(
    connector_settings: Settings, erp_topics: TopicCatalog, tryton: Tryton, tmp_path: Path
) -> None:
    commands = sample_commands(seed=502, orders=3)
    ids = _ids(commands)
    publish(connector_settings, erp_topics, list(commands))
    args = ["-m", "streams.cli", "connector", "erp"]
    # Offsets would be committed only after an hour: every command runs, none is committed.
    never = connector_settings.model_copy(update={"connector_commit_interval_seconds": 3600})
    first = spawn(args, never, tmp_path / "connector-1.log")
    try:
        answered = wait_results(connector_settings, erp_topics, ids)
        group = f"{connector_settings.app_id}-connector-tryton"
        assert committed(connector_settings, erp_topics, group) == {}
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    _assert_succeeded(answered, ids)

    second = spawn(args, connector_settings, tmp_path / "connector-2.log")
    try:
        again = wait_results(connector_settings, erp_topics, ids, each=2)
        wait_for(
            lambda: (
                committed(connector_settings, erp_topics, group)
                == ends(connector_settings, erp_topics)
            ),
            timeout=60,
            what="the restarted connector to commit everything",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    _assert_succeeded(again, ids)
    assert all(len(docs) == 1 for docs in _documents(again, ids).values())
    _assert_once_in_erp(tryton, commands)
    # The production process logs JSON lines, about commands with their ids, never the password.
    text = (tmp_path / "connector-2.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert {line["command_id"] for line in lines if "command_id" in line} <= set(ids)
    assert any("command_id" in line for line in lines)
    assert tryton.password not in text


def test_journal_batches_sharing_entries_post_each_entry_once(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    tryton: Tryton,
) -> None:
    """After a crash the dispatcher batches re-sent journal entries anew: batches with other
    ids that share entries reach the connector together, and each entry is one move."""
    entries = [c for c in sample_commands(seed=505, orders=3) if c.kind is Kind.POST_JOURNAL_ENTRY]
    assert len(entries) >= 8

    def batch(name: str, members: list[Command]) -> Command:
        body = {"entries": [e for c in members for e in c.body["entries"]]}
        return replace(members[0], command_id=f"{connector_settings.app_id}/{name}", body=body)

    third = len(entries) // 3
    batches = [
        batch("first", entries[: 2 * third]),
        batch("second", entries[third:]),
        batch("all", entries),
    ]
    ids = _ids(batches)
    start_sink(erp_max_in_flight={"tryton": 3})
    publish(connector_settings, erp_topics, list(batches))
    answered = wait_results(connector_settings, erp_topics, ids)
    _assert_succeeded(answered, ids)
    _assert_once_in_erp(tryton, entries)


def test_the_erp_down_for_a_while_loses_and_doubles_nothing(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    tryton: Tryton,
) -> None:
    commands = sample_commands(seed=503, orders=3)
    ids = _ids(commands)
    tryton.stop_server()
    try:
        running = start_sink()
        publish(connector_settings, erp_topics, list(commands))
        # Enough failed attempts that every command in flight has been retried.
        wait_for(
            lambda: running.call(lambda s: s.counts["retries"]) >= 10,
            timeout=60,
            what="the connector to retry against the stopped ERP",
        )
        assert results(connector_settings, erp_topics) == {}
        assert dead_letters(connector_settings, erp_topics) == []
    finally:
        tryton.start_server()
    answered = wait_results(connector_settings, erp_topics, ids)
    _assert_succeeded(answered, ids)
    assert all(len(answered[c]) == 1 for c in ids)
    _assert_once_in_erp(tryton, commands)


def test_poison_commands_are_dead_lettered_while_the_others_succeed(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
) -> None:
    good = sample_commands(seed=504, orders=2)
    sale = next(c for c in good if c.kind is Kind.CREATE_SALES_ORDER)
    entry_command = next(c for c in good if c.kind is Kind.POST_JOURNAL_ENTRY)
    shipment = next(c for c in good if c.kind is Kind.RECORD_SHIPMENT)

    def sale_of(order_id: str, **changes: Any) -> Command:
        body = {**sale.body, "order_id": order_id, **changes}
        return replace(sale, command_id=f"{order_id}/sales-order/1", body=body)

    unknown_sku = sale_of("ORD-POISON-SKU", lines=[{**sale.body["lines"][0], "sku": "NO-SUCH-SKU"}])
    unknown_customer = sale_of(
        "ORD-POISON-CUSTOMER",
        customer={**sale.body["customer"], "customer_id": "CUST-NOBODY", "company_id": None},
    )
    entry = dict(entry_command.body["entries"][0])
    entry["entry_id"] = "poison-entry"
    entry["lines"] = [dict(line) for line in entry["lines"]]
    entry["lines"][0]["debit"] += Decimal("1.00")
    entry["lines"][0]["functional_debit"] += Decimal("1.00")
    unbalanced = replace(entry_command, command_id="poison-entry/post", body={"entries": [entry]})
    orphan = replace(
        shipment,
        command_id="ORD-POISON-NEVER-SOLD/shipment/f-1",
        body={**shipment.body, "order_id": "ORD-POISON-NEVER-SOLD"},
    )
    elsewhere = replace(good[0], command_id="for-another-erp", target="netsuite")
    poison: list[Command | tuple[str, bytes]] = [
        unknown_sku,
        unknown_customer,
        unbalanced,
        ("malformed", b"\x00 not an erp command"),
        orphan,
    ]
    half = len(good) // 2
    publish(
        connector_settings,
        erp_topics,
        [*good[:half], *poison, elsewhere, *good[half:]],
    )
    running = start_sink(erp_give_up_seconds=5)

    good_ids = _ids(good)
    answered = wait_results(connector_settings, erp_topics, good_ids)
    _assert_succeeded(answered, good_ids)
    letters = wait_for(
        lambda: (
            (found := dead_letters(connector_settings, erp_topics)) and len(found) >= 5 and found
        ),
        timeout=60,
        what="five dead letters",
    )
    by_key = {letter.key: letter for letter in letters}
    assert len(letters) == 5 and set(by_key) == {
        unknown_sku.command_id,
        unknown_customer.command_id,
        unbalanced.command_id,
        "malformed",
        orphan.command_id,
    }
    assert by_key[unknown_sku.command_id].reason == "unknown-sku"
    assert "NO-SUCH-SKU" in by_key[unknown_sku.command_id].error
    assert by_key[unknown_customer.command_id].reason == "unknown-customer"
    assert "CUST-NOBODY" in by_key[unknown_customer.command_id].error
    assert by_key[unbalanced.command_id].reason == "unbalanced-entry"
    assert "poison-entry" in by_key[unbalanced.command_id].error
    assert by_key["malformed"].error
    assert by_key[orphan.command_id].reason == "no-sales-order"
    assert "attempts" in by_key[orphan.command_id].error
    # The record is dead-lettered as it was read, so it can be replayed once mended.
    assert by_key["malformed"].value == b"\x00 not an erp command"

    failures = results(connector_settings, erp_topics)
    for command in (unknown_sku, unknown_customer, unbalanced, orphan):
        (result,) = failures[command.command_id]
        assert result["status"] == "FAILED"
        assert result["error"]["code"] == by_key[command.command_id].reason
    assert "for-another-erp" not in failures
    assert running.call(lambda s: s.counts["ignored"]) == 1
    wait_for(
        lambda: (
            committed(connector_settings, erp_topics, running.service.group)
            == ends(connector_settings, erp_topics)
        ),
        timeout=30,
        what="every offset committed, poison included",
    )

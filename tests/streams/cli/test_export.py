"""`erpbridge export` on the real broker: the example records of every derived and output
topic written to Parquet and CSV, read back with DuckDB as an analyst would."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from confluent_kafka import Producer

from streams.contracts.deadletter import dead_letter
from streams.contracts.jsonlines import parse_line
from streams.contracts.topics import ORDERS, TopicCatalog, dead_letter_of
from streams.ops.settings import Settings
from tests.support import EVENTS, lines_of, run

DERIVED = (
    "orders.status",
    "inventory.availability",
    "finance.journal",
    "reconciliation.alerts",
    "erp.commands",
    "erp.results",
)


def _produce_examples(cli_env: dict[str, str | None], *, times: int = 1) -> None:
    for topic in DERIVED:
        for _ in range(times):
            result = run(["produce", topic, str(EVENTS / f"{topic}.jsonl")], cli_env)
            assert result.exit_code == 0, result.output


def _sql(query: str) -> list[tuple[Any, ...]]:
    return duckdb.sql(query).fetchall()


def test_every_derived_topic_exports_typed_and_reads_back_in_duckdb(
    topics: TopicCatalog, cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    _produce_examples(cli_env)
    out = tmp_path / "exports"

    result = run(["export", *DERIVED, "-o", str(out)], cli_env)

    assert result.exit_code == 0, result.output
    for topic in DERIVED:
        count = len(lines_of(topic))
        noun = "record" if count == 1 else "records"
        assert f"{topic}: {count} {noun} -> {out / topic}.parquet" in result.stdout
        assert _sql(f"SELECT count(*) FROM '{out / topic}.parquet'") == [(count,)]
    journal = out / "finance.journal.parquet"
    types = dict((name, kind) for name, kind, *_ in _sql(f"DESCRIBE SELECT * FROM '{journal}'"))
    assert types["occurred_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["posting_date"] == "DATE"
    assert types["exchange_rate"].startswith("DECIMAL(")
    assert "debit DECIMAL(18,4)" in types["lines"]
    # The README's query: each account's net over the journal, exact to the cent and beyond.
    net = _sql(
        f"SELECT l.account, sum(l.debit) - sum(l.credit) AS net "
        f"FROM (SELECT unnest(lines) AS l FROM '{journal}') GROUP BY l.account ORDER BY 1"
    )
    assert net == [
        ("1200", Decimal("3390.1434")),
        ("2200", Decimal("-541.2834")),
        ("4000", Decimal("-2848.8600")),
    ]
    # A union of records is its type and the chosen record's fields.
    commands = _sql(f"SELECT command.type FROM '{out / 'erp.commands.parquet'}' ORDER BY _offset")
    assert Counter(t for (t,) in commands) == Counter(
        parse_line(line)["command"]["type"] for line in lines_of("erp.commands")
    )
    statuses = _sql(f"SELECT order_id, status FROM '{out / 'orders.status.parquet'}'")
    assert sorted(statuses) == sorted(
        (record["order_id"], record["status"])
        for record in map(parse_line, lines_of("orders.status"))
    )


def test_the_latest_per_key_as_csv_and_dead_letters(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    _produce_examples(cli_env, times=2)  # every record twice: the latest per key is one
    letter = dead_letter(
        dlq_topic=topics.physical(dead_letter_of(ORDERS)),
        source_topic=topics.physical(ORDERS),
        partition=2,
        offset=17,
        key=b"450789470",
        value=b"order-bytes",
        headers=[],
        stage="rules",
        reason="over-refund",
        error="refund 50.00 exceeds captured 0",
    )
    producer = Producer(settings.producer_config())
    producer.produce(letter.topic, key=letter.key, value=letter.value, headers=letter.headers)
    assert producer.flush(30) == 0

    latest = run(
        ["export", "inventory.availability", "--latest", "--format", "csv", "-o", str(tmp_path)],
        cli_env,
    )
    letters = run(["export", dead_letter_of(ORDERS), "-o", str(tmp_path)], cli_env)

    assert latest.exit_code == 0, latest.output
    csv = tmp_path / "inventory.availability.csv"
    rows = _sql(f"SELECT sku, available, warehouses FROM read_csv('{csv}') ORDER BY sku")
    expected = [parse_line(line) for line in lines_of("inventory.availability")]
    assert [(sku, available) for sku, available, _ in rows] == sorted(
        (r["sku"], r["available"]) for r in expected
    )
    assert '"warehouse_id": "905684977"' in rows[0][2]  # lists as JSON text in a CSV
    assert letters.exit_code == 0, letters.output
    parquet = tmp_path / f"{dead_letter_of(ORDERS)}.parquet"
    assert _sql(f"SELECT _key, reason, source_offset, value FROM '{parquet}'") == [
        ("450789470", "over-refund", "17", b"order-bytes")
    ]


def test_a_time_range_and_an_unknown_topic(
    topics: TopicCatalog, cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    _produce_examples(cli_env)
    later = run(
        ["export", "orders.status", "--since", "2999-01-01T00:00:00Z", "-o", str(tmp_path)],
        cli_env,
    )
    assert later.exit_code == 0, later.output
    assert "orders.status: 0 records" in later.stdout
    assert _sql(f"SELECT count(*) FROM '{tmp_path / 'orders.status.parquet'}'") == [(0,)]
    unknown = run(["export", "no.such.topic"], cli_env)
    assert unknown.exit_code == 2
    assert "unknown topic 'no.such.topic'" in unknown.stderr

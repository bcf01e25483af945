"""`erpbridge produce` against the real test broker, checked with `erpbridge tail` and raw reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.contracts.jsonlines import parse_line, to_datum
from streams.contracts.topics import INPUTS, ORDERS, PAYMENTS, TopicCatalog, spec
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from tests.support import EVENTS, STORE, lines_of, record_count, run


def datums_by_event_id(topic: str, objects: Iterator[Any] | list[Any]) -> dict[str, Any]:
    name = spec(topic).value_schema
    assert name is not None
    schema = STORE.current(name)
    return {obj["event_id"]: to_datum(schema, obj) for obj in objects}


def read_raw(bootstrap: str, topic: str) -> list[Message]:
    """Every record of `topic` up to its current end, straight from the broker."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        pending = set()
        assignment = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            assignment.append(TopicPartition(topic, p, low))
            if high > low:
                pending.add(p)
        consumer.assign(assignment)
        messages: list[Message] = []
        while pending:
            message = consumer.poll(30)
            assert message is not None, f"no record from {topic} within 30s; waiting for {pending}"
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                pending.discard(message.partition())
                continue
            messages.append(message)
        return messages
    finally:
        consumer.close()


def tail_values(topic: str, env: dict[str, str | None]) -> list[Any]:
    result = run(["tail", topic, "--values-only"], env)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
@pytest.mark.parametrize("topic", INPUTS)
def test_produce_then_tail_gives_the_same_records_back(
    topics: TopicCatalog,
    env: dict[str, str | None],
    kafka_broker: Any,
    topic: str,
    framing: str,
    request: pytest.FixtureRequest,
) -> None:
    if framing == "confluent":
        # produce and tail each make their own registry client: only the registry is shared.
        # Subjects are named after the prefixed topics, so tests sharing it stay apart.
        registry = request.getfixturevalue("schema_registry")
        env = {**env, "ERPBRIDGE_SCHEMA_REGISTRY_URL": registry.url}
    lines = lines_of(topic)
    physical = topics.physical(topic)

    produced = run(["produce", topic, str(EVENTS / f"{topic}.jsonl")], env)

    assert produced.exit_code == 0, produced.output
    assert produced.stdout == f"produced {len(lines)} records to {physical}\n"
    values = tail_values(topic, env)
    assert len(values) == len(lines)
    assert datums_by_event_id(topic, values) == datums_by_event_id(
        topic, [parse_line(line) for line in lines]
    )
    # Records of one key stay in order (one partition each).
    key = spec(topic).key
    for value in values:
        same_key = [
            json.loads(line)["event_id"] for line in lines if json.loads(line)[key] == value[key]
        ]
        assert [v["event_id"] for v in values if v[key] == value[key]] == same_key
    raw = read_raw(kafka_broker.bootstrap_servers, physical)
    magic = b"\x00" if framing == "confluent" else b"\xc3\x01"
    assert all((m.value() or b"").startswith(magic) for m in raw)
    assert sorted(m.key() or b"" for m in raw) == sorted(
        str(json.loads(line)[key]).encode() for line in lines
    )


def test_bad_lines_are_all_reported_and_nothing_is_published(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any, tmp_path: Path
) -> None:
    good = lines_of(ORDERS)
    float_money = good[0].replace('"unit_price": "199.00"', '"unit_price": 199.00', 1)
    missing_total = json.loads(good[1])
    del missing_total["event"]["total"]
    path = tmp_path / "orders.jsonl"
    path.write_text(
        "\n".join(
            [
                good[0],
                good[2],
                float_money,
                good[3],
                json.dumps(missing_total),
                '{"event_id": "x",',
                "",
                good[4],
            ]
        )
        + "\n"
    )

    result = run(["produce", ORDERS, str(path)], env)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[:3] == [
        'line 3: event.lines[0].unit_price: money must be a decimal string such as "19.99", '
        "not the number 199.00",
        'line 5: event.total: required field is missing; expected a decimal string such as "19.99"',
        "line 6: invalid JSON: Expecting property name enclosed in double quotes (column 18)",
    ]
    assert "3 bad lines: nothing published" in result.stderr
    assert result.stdout == ""
    assert record_count(kafka_broker.bootstrap_servers, topics.physical(ORDERS)) == 0
    assert tail_values(ORDERS, env) == []

    skipped = run(["produce", ORDERS, str(path), "--skip-invalid"], env)

    assert skipped.exit_code == 1
    assert "line 3: event.lines[0].unit_price: money must be" in skipped.stderr
    assert skipped.stdout == f"produced 4 records to {topics.physical(ORDERS)}\n"
    assert "skipped 3 bad lines" in skipped.stderr
    published = [v["event_id"] for v in tail_values(ORDERS, env)]
    expected = [json.loads(good[i])["event_id"] for i in (0, 2, 3, 4)]
    assert sorted(published) == sorted(expected)


def test_the_list_of_bad_lines_is_capped() -> None:
    # Validation happens before any connection, so no broker is needed.
    text = "".join('{"event_id": 1}\n' for _ in range(25))
    result = run(
        ["produce", ORDERS, "-"],
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "ERPBRIDGE_TOPIC_PREFIX": "unused-"},
        stdin=text,
    )
    assert result.exit_code == 1
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert len(reported) == 20
    assert reported[0] == "line 1: event_id: expected a string, not the number 1"
    assert "... and 5 more bad lines" in result.stderr
    assert "25 bad lines: nothing published" in result.stderr


def test_keys_come_from_the_topic_spec_or_key_field(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any
) -> None:
    lines = lines_of(PAYMENTS)
    result = run(
        ["produce", PAYMENTS, "-", "--key-field", "event.payment_id"], env, stdin="\n".join(lines)
    )
    assert result.exit_code == 0, result.output
    raw = read_raw(kafka_broker.bootstrap_servers, topics.physical(PAYMENTS))
    assert sorted(m.key() or b"" for m in raw) == sorted(
        json.loads(line)["event"]["payment_id"].encode() for line in lines
    )

    missing = run(["produce", PAYMENTS, "-", "--key-field", "event.refund_id"], env, stdin=lines[0])
    assert missing.exit_code == 1
    assert "line 1: event.refund_id: the key field is missing" in missing.stderr


def test_a_missing_topic_is_a_clear_error(env: dict[str, str | None], topic_prefix: str) -> None:
    result = run(["produce", ORDERS, "-"], env, stdin=lines_of(ORDERS)[0])
    assert result.exit_code == 1
    assert (
        f"topic {topic_prefix}{ORDERS} does not exist; run `erpbridge topics create`"
        in result.stderr
    )


def test_records_the_broker_does_not_confirm_fail_the_command(
    env: dict[str, str | None], kafka_broker: Any, topic_prefix: str
) -> None:
    # The broker refuses every record larger than the topic allows.
    physical = topic_prefix + ORDERS
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    future = admin.create_topics(
        [
            NewTopic(
                physical,
                num_partitions=1,
                replication_factor=1,
                config={"max.message.bytes": "100"},
            )
        ]
    )[physical]
    future.result(timeout=30)

    result = run(["produce", ORDERS, "-", "--timeout", "3"], env, stdin=lines_of(ORDERS)[0])

    assert result.exit_code == 1
    assert "line 1: not delivered:" in result.stderr
    assert f"1 of 1 records were not confirmed by the broker for {physical}" in result.stderr
    assert result.stdout == ""


def test_tail_output_feeds_produce_through_real_pipes(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any, topic_prefix: str
) -> None:
    """The installed entry point end to end: file | produce, tail | produce to a copy, tail."""
    copy_prefix = f"{topic_prefix}copy-"
    copy_settings = Settings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers, topic_prefix=copy_prefix
    )
    assert ensure_topics(
        copy_settings.confluent_config(), TopicCatalog.from_settings(copy_settings)
    ).ok
    base = {k: v for k, v in os.environ.items() if k != "ERPBRIDGE_SCHEMA_REGISTRY_URL"}
    source_env = {
        **base,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
    }
    copy_env = {**source_env, "ERPBRIDGE_TOPIC_PREFIX": copy_prefix}
    cli = [sys.executable, "-m", "streams.cli"]

    def call(args: list[str], env: dict[str, str], stdin: str = "") -> str:
        done = subprocess.run(
            cli + args,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    call(["produce", ORDERS, "-"], source_env, (EVENTS / f"{ORDERS}.jsonl").read_text())
    tailed = call(["tail", ORDERS, "--values-only"], source_env)
    assert (
        call(["produce", ORDERS], copy_env, tailed)
        == f"produced {len(lines_of(ORDERS))} records to {copy_prefix}{ORDERS}\n"
    )
    copied = call(["tail", ORDERS, "--values-only"], copy_env)

    assert sorted(copied.splitlines()) == sorted(tailed.splitlines())
    assert datums_by_event_id(ORDERS, [json.loads(line) for line in copied.splitlines()]) == (
        datums_by_event_id(ORDERS, [parse_line(line) for line in lines_of(ORDERS)])
    )

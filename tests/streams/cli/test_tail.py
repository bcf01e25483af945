"""`erpbridge tail` against the real test broker: start positions, the end, odd records."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.contracts.codec import Codec
from streams.contracts.deadletter import REASON, SOURCE_OFFSET, dead_letter
from streams.contracts.jsonlines import format_timestamp, parse_line, to_datum
from streams.contracts.topics import ORDERS, PAYMENTS, TopicCatalog, dead_letter_of
from tests.support import STORE, lines_of, record_count, run, wait_for


def _tail_process(
    options: list[str], kafka_broker: Any, topic_prefix: str
) -> subprocess.Popen[str]:
    """`erpbridge tail commerce.orders OPTIONS` as a subprocess on the session broker."""
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "tail", ORDERS, *options],
        env={
            **{k: v for k, v in os.environ.items() if k != "ERPBRIDGE_SCHEMA_REGISTRY_URL"},
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
            # A tail that hangs prints every thread's stack when aborted (see below).
            "PYTHONFAULTHANDLER": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a shell delivers it: neither ignored nor blocked, whatever this test
        # process inherited (both pass on to a child; in CI something left SIGINT so).
        preexec_fn=_deliver_sigint,
    )


def _deliver_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _sigint_here() -> str:
    """How this process treats SIGINT, for a failure's message."""
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    return f"handler {signal.getsignal(signal.SIGINT)!r}, blocked {blocked}"


def produce(topic: str, lines: list[str], env: dict[str, str | None]) -> None:
    result = run(["produce", topic, "-"], env, stdin="\n".join(lines))
    assert result.exit_code == 0, result.output


def tail(args: list[str], env: dict[str, str | None]) -> list[Any]:
    result = run(["tail", *args], env)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def produce_raw(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(30) == 0


def test_envelope_names_topic_partition_offset_timestamp_and_key(
    topics: TopicCatalog, env: dict[str, str | None]
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    produce(PAYMENTS, lines_of(PAYMENTS), env)
    after = datetime.now(UTC) + timedelta(seconds=1)

    envelopes = tail([PAYMENTS], env)

    assert len(envelopes) == 5
    for envelope in envelopes:
        assert set(envelope) == {"topic", "partition", "offset", "timestamp", "key", "value"}
        assert envelope["topic"] == topics.physical(PAYMENTS)
        assert envelope["key"] == envelope["value"]["order_id"]
        assert envelope["timestamp"].endswith("Z")
        assert before <= datetime.fromisoformat(envelope["timestamp"]) <= after
    # The four events of order 450789469 share a partition, at consecutive offsets.
    same = [e for e in envelopes if e["key"] == "450789469"]
    assert [e["offset"] for e in same] == [0, 1, 2, 3]
    assert len({e["partition"] for e in same}) == 1
    assert same[0]["value"]["event"] == {
        "type": "PaymentAuthorized",
        "payment_id": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
        "gateway": "stripe",
        "amount": "411.8800",
        "currency": "USD",
        "method": "card",
    }


def test_offset_partition_and_max_messages(
    topics: TopicCatalog, env: dict[str, str | None]
) -> None:
    produce(PAYMENTS, lines_of(PAYMENTS), env)
    everything = tail([PAYMENTS], env)
    partition = next(e["partition"] for e in everything if e["key"] == "450789469")

    def positions(envelopes: list[Any]) -> list[tuple[int, int]]:
        return sorted((e["partition"], e["offset"]) for e in envelopes)

    from_two = tail([PAYMENTS, "--partition", str(partition), "--offset", "2"], env)
    assert positions(from_two) == [
        (e["partition"], e["offset"])
        for e in everything
        if e["partition"] == partition and e["offset"] >= 2
    ]
    assert [e["value"]["event"]["type"] for e in from_two][:2] == [
        "PaymentRefunded",
        "PaymentSettled",
    ]
    # Without --partition the offset applies to every partition.
    assert positions(tail([PAYMENTS, "--offset", "1"], env)) == positions(
        [e for e in everything if e["offset"] >= 1]
    )
    assert tail([PAYMENTS, "--offset", "99"], env) == []
    limited = tail([PAYMENTS, "--partition", str(partition), "--max-messages", "3"], env)
    assert [e["offset"] for e in limited] == [0, 1, 2]


def test_since_starts_at_the_first_record_at_or_after_the_time(
    topics: TopicCatalog, env: dict[str, str | None]
) -> None:
    lines = lines_of(ORDERS)
    produce(ORDERS, lines[:2], env)
    first_batch = tail([ORDERS], env)
    boundary = max(datetime.fromisoformat(e["timestamp"]) for e in first_batch) + timedelta(
        milliseconds=1
    )
    # Record timestamps are the producer's clock in milliseconds: let it pass the boundary.
    wait_for(
        lambda: datetime.now(UTC) > boundary, timeout=5, what="the clock to pass the first batch"
    )
    produce(ORDERS, lines[2:], env)

    since = tail([ORDERS, "--since", format_timestamp(boundary), "--values-only"], env)

    assert sorted(v["event_id"] for v in since) == sorted(
        json.loads(line)["event_id"] for line in lines[2:]
    )
    assert len(tail([ORDERS, "--since", "2000-01-01T00:00:00+01:00"], env)) == len(lines)
    assert tail([ORDERS, "--since", "2999-01-01T00:00:00Z"], env) == []


def test_from_end_without_follow_prints_nothing(
    topics: TopicCatalog, env: dict[str, str | None]
) -> None:
    produce(ORDERS, lines_of(ORDERS), env)
    assert tail([ORDERS, "--from-end"], env) == []


def test_follow_from_end_prints_only_new_records(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any, topic_prefix: str
) -> None:
    lines = lines_of(ORDERS)
    produce(ORDERS, lines[:3], env)
    process = _tail_process(
        ["--from-end", "--follow", "--values-only", "--max-messages", str(len(lines) - 3)],
        kafka_broker,
        topic_prefix,
    )
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr or []), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: any(line.startswith("reading ") for line in errors),
            timeout=60,
            what="tail to start",
        )
        assert "then following" in errors[0]
        produce(ORDERS, lines[3:], env)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    assert sorted(json.loads(line)["event_id"] for line in out.splitlines()) == sorted(
        json.loads(line)["event_id"] for line in lines[3:]
    )


def test_without_follow_tail_stops_at_the_end_seen_at_start_despite_new_writes(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any
) -> None:
    physical = topics.physical(ORDERS)
    schema = STORE.current("erpbridge.OrderEvent")
    datum = to_datum(schema, parse_line(lines_of(ORDERS)[0]))
    value = Codec(STORE).encode(schema.name, datum, topic=physical)
    produce_raw(kafka_broker.bootstrap_servers, physical, [(b"450789469", value, [])] * 50)
    stop = threading.Event()

    def keep_writing() -> None:
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
        while not stop.is_set():
            producer.produce(physical, key=b"450789469", value=value, partition=0)
            producer.poll(0.005)
        producer.flush(30)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = run(["tail", ORDERS, "--values-only"], env)
    finally:
        stop.set()
        writer.join(60)

    assert result.exit_code == 0, result.output
    spans = re.findall(r"\[(\d+)\] (\d+)\.\.(\d+)", result.stderr)
    promised = sum(int(end) - int(start) for _, start, end in spans)
    assert promised >= 50
    assert len(result.stdout.splitlines()) == promised
    assert record_count(kafka_broker.bootstrap_servers, physical) > promised  # writes went on


def test_dead_letter_topics_show_key_headers_and_base64_value(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any
) -> None:
    dlq = topics.physical(dead_letter_of(ORDERS))
    letter = dead_letter(
        dlq_topic=dlq,
        source_topic=topics.physical(ORDERS),
        partition=0,
        offset=41,
        key=b"450789469",
        value=b"\xc3\x01\x00garbage",
        headers=[("traceparent", b"00-abc-01")],
        stage="decode",
        reason="unknown-fingerprint",
        error="writer schema fingerprint 00 is not in the schema store",
    )
    produce_raw(
        kafka_broker.bootstrap_servers, dlq, [(letter.key, letter.value or b"", letter.headers)]
    )

    [envelope] = tail([dead_letter_of(ORDERS)], env)

    assert envelope["key"] == "450789469"
    assert base64.b64decode(envelope["value_base64"]) == b"\xc3\x01\x00garbage"
    headers = dict(envelope["headers"])
    assert headers["traceparent"] == "00-abc-01"
    assert headers[REASON] == "unknown-fingerprint"
    assert headers[SOURCE_OFFSET] == "41"
    assert "value" not in envelope


def test_undecodable_records_go_to_stderr_and_tail_goes_on(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any
) -> None:
    physical = topics.physical(ORDERS)
    lines = lines_of(ORDERS)
    produce(ORDERS, lines[:1], env)
    produce_raw(kafka_broker.bootstrap_servers, physical, [(b"x", b"not avro at all", [])])
    produce(ORDERS, lines[1:], env)

    result = run(["tail", ORDERS, "--values-only"], env)

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == len(lines)
    assert f"{physical} partition 0 offset " in result.stderr
    assert "undecodable (unknown-framing): first bytes 6e6f are neither" in result.stderr
    assert "1 undecodable records skipped" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from-end", "--offset", "3"],
            "give at most one of --from-beginning, --from-end, --offset, --since",
        ),
        (["--since", "2026-11-26T10:00:00"], "has no timezone"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = run(["tail", ORDERS, *args], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert result.exit_code == 2
    assert message in result.stderr


def test_values_only_needs_a_schema() -> None:
    result = run(
        ["tail", dead_letter_of(ORDERS), "--values-only"],
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
    )
    assert result.exit_code == 2
    assert "dead-letter values are raw bytes" in result.stderr


def test_missing_topic_and_partition_are_clear_errors(
    env: dict[str, str | None], topics: TopicCatalog
) -> None:
    result = run(["tail", ORDERS, "--partition", "7"], env)
    assert result.exit_code == 2
    assert f"{topics.physical(ORDERS)} has partitions 0..2, not 7" in result.stderr

    other = {**env, "ERPBRIDGE_TOPIC_PREFIX": f"{topics.prefix}nothing-"}
    missing = run(["tail", ORDERS], other)
    assert missing.exit_code == 1
    assert f"topic {topics.prefix}nothing-{ORDERS} does not exist" in missing.stderr


def test_ctrl_c_ends_follow_cleanly(
    topics: TopicCatalog, env: dict[str, str | None], kafka_broker: Any, topic_prefix: str
) -> None:
    process = _tail_process(["--follow", "--values-only"], kafka_broker, topic_prefix)
    printed: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: printed.extend(process.stdout or []), daemon=True),
        threading.Thread(target=lambda: errors.extend(process.stderr or []), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: errors, timeout=60, what="tail to start")
        produce(ORDERS, lines_of(ORDERS)[:1], env)
        wait_for(lambda: printed, timeout=60, what="the new record")
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # faulthandler: where it hangs, on stderr
            process.wait(timeout=10)
            for reader in readers:
                reader.join(timeout=10)
            raise AssertionError(
                f"tail ignored Ctrl-C for 30 s (here SIGINT has {_sigint_here()}):\n"
                + "".join(errors)
            ) from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for reader in readers:
        reader.join(timeout=10)
    assert process.returncode == 0, errors
    assert [json.loads(line)["event_id"] for line in printed] == [
        json.loads(lines_of(ORDERS)[0])["event_id"]
    ]
    assert not any("Traceback" in line for line in errors)

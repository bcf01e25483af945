"""Intake on the real broker: every record is applied, or dead-lettered with its reason
(undecodable, misrouted, or semantically bad), and the worker survives it all."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from streams.contracts import deadletter
from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.contracts.topics import INVENTORY, ORDERS, PAYMENTS, TopicCatalog, dead_letter_of
from streams.ops.settings import Settings
from streams.topology.agents.intake import partition_for
from tests.support import WorkerProcess, spawn_worker, wait_for

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _header(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "occurred_at": NOW, "source": "test"}


def valid_records(codec: Codec, topics: TopicCatalog) -> list[tuple[str, bytes, bytes]]:
    cancelled = {
        **_header("e-1"),
        "order_id": "o-1",
        "event": ("erpbridge.OrderCancelled", {"reason": "x"}),
    }
    snapshot = {
        **_header("e-2"),
        "sku": "SKU-1",
        "event": (
            "erpbridge.StockSnapshot",
            {"warehouse_id": "WH-EAST", "on_hand": 5, "as_of": NOW},
        ),
    }
    captured = {
        **_header("e-3"),
        "order_id": "o-1",
        "event": (
            "erpbridge.PaymentCaptured",
            {"payment_id": "p", "gateway": "stripe", "amount": Decimal("10.00"), "currency": "USD"},
        ),
    }
    return [
        (
            topics.physical(ORDERS),
            b"o-1",
            codec.encode("erpbridge.OrderEvent", cancelled, topic="t"),
        ),
        (
            topics.physical(INVENTORY),
            b"SKU-1",
            codec.encode("erpbridge.InventoryEvent", snapshot, topic="t"),
        ),
        (
            topics.physical(PAYMENTS),
            b"o-1",
            codec.encode("erpbridge.PaymentEvent", captured, topic="t"),
        ),
    ]


def _dead_letters(settings: Settings, topic: str, expected: int) -> list[Any]:
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"{topic}-check",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    try:

        def collected() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(message)
            return len(found) >= expected

        wait_for(collected, timeout=30, what=f"{expected} records on {topic}")
    finally:
        consumer.close()
    return found


def test_undecodable_records_are_dead_lettered_with_their_reason(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    codec = Codec(SchemaStore.from_directory(Path("schemas")))
    good = valid_records(codec, topics)
    inventory_on_orders = good[1][2]
    valid_order = good[0][2]
    bad = {
        b"corrupt": b"\x07garbage that is no framing",
        b"unknown-fp": b"\xc3\x01" + bytes(8) + b"\x02",
        b"truncated": valid_order[:-4],
        b"wrong-schema": inventory_on_orders,
        b"empty": b"",
    }
    producer = Producer(settings.producer_config())
    for topic, key, value in good:
        producer.produce(topic, key=key, value=value)
    for key, value in bad.items():
        producer.produce(
            topics.physical(ORDERS), key=key, value=value, headers=[("origin", b"webhook-42")]
        )
    assert producer.flush(30) == 0

    worker = start_worker()
    total = len(good) + len(bad)

    def settled() -> dict[str, Any] | None:
        # A record is counted as consumed before its outcome: wait until every one has both.
        accounting = worker.accounting()
        totals = accounting["totals"]
        done = totals["consumed"] == total == totals["applied"] + totals["dead_lettered"]
        return accounting if done else None

    accounting = wait_for(settled, timeout=90, what="every record consumed and accounted for")
    totals = accounting["totals"]
    assert (totals["consumed"], totals["applied"], totals["dead_lettered"]) == (
        len(good) + len(bad),
        len(good),
        len(bad),
    )
    assert accounting["topics"][ORDERS]["dead_letter_reasons"] == {
        "unknown-framing": 1,
        "unknown-fingerprint": 1,
        "truncated": 1,
        "wrong-schema": 1,
        "empty": 1,
    }

    letters = _dead_letters(settings, topics.physical(dead_letter_of(ORDERS)), len(bad))
    assert len(letters) == len(bad)
    for letter in letters:
        key = letter.key()
        assert letter.value() == bad[key]
        headers = deadletter.describe(letter.headers())
        assert headers[deadletter.SOURCE_TOPIC] == topics.physical(ORDERS)
        assert headers[deadletter.STAGE] == "decode"
        assert int(headers[deadletter.SOURCE_OFFSET]) >= 0
        assert int(headers[deadletter.SOURCE_PARTITION]) == letter.partition()
        assert headers[deadletter.ERROR]
        assert ("origin", b"webhook-42") in letter.headers()
    assert worker.process.poll() is None, "the worker must survive bad input"


def _order(event_id: str, order_id: str, event: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {**_header(event_id), "order_id": order_id, "event": event}


def _placed(lines: list[dict[str, Any]], currency: str = "USD") -> tuple[str, dict[str, Any]]:
    return (
        "erpbridge.OrderPlaced",
        {
            "currency": currency,
            "customer": {"customer_id": "c-1"},
            "ship_to": {"line1": "1 Main St", "city": "Boston", "region": "MA", "country": "US"},
            "channel": "web",
            "lines": lines,
            "total": Decimal("20.00"),
        },
    )


def _line(sku: str, quantity: int) -> dict[str, Any]:
    return {
        "line_id": "1",
        "sku": sku,
        "quantity": quantity,
        "unit_price": Decimal("10.00"),
        "discount": Decimal("0"),
        "tax_lines": [],
    }


def _fulfilled(fulfilment_id: str, sku: str) -> tuple[str, dict[str, Any]]:
    return (
        "erpbridge.OrderFulfilled",
        {
            "fulfillment_id": fulfilment_id,
            "warehouse_id": "WH-EAST",
            "lines": [{"sku": sku, "quantity": 1}],
        },
    )


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_semantically_bad_misrouted_and_expired_events_are_dead_lettered_and_counted(
    settings: Settings, topics: TopicCatalog, tmp_path: Path
) -> None:
    """Every event ends applied, duplicate or dead-lettered, and the counts say which."""
    codec = Codec(SchemaStore.from_directory(Path("schemas")))
    orders = topics.physical(ORDERS)
    ok = _order("ok", "o-ok", _placed([_line("SKU-1", 2)]))
    cases: list[tuple[str, dict[str, Any]]] = [
        ("no-lines", _order("e-no-lines", "o-a", _placed([]))),
        ("negative-quantity", _order("e-negative", "o-b", _placed([_line("SKU-1", -1)]))),
        ("unknown-currency", _order("e-currency", "o-c", _placed([_line("SKU-1", 1)], "XYZ"))),
        ("sku-not-ordered", _order("e-not-ordered", "o-ok", _fulfilled("f-1", "SKU-9"))),
        (
            "refund-exceeds-order",
            _order(
                "e-refund",
                "o-ok",
                (
                    "erpbridge.OrderRefunded",
                    {
                        "refund_id": "r-1",
                        "currency": "USD",
                        "lines": [],
                        "total": Decimal("500.00"),
                        "restock": False,
                    },
                ),
            ),
        ),
        # Waits for an order that never comes, then expires.
        ("order-not-placed", _order("e-orphan", "o-never", _fulfilled("f-2", "SKU-1"))),
    ]
    producer = Producer(settings.producer_config())

    def send(datum: dict[str, Any], key: bytes | None = None, partition: int = -1) -> None:
        value = codec.encode("erpbridge.OrderEvent", datum, topic=orders)
        producer.produce(
            orders, key=key or datum["order_id"].encode(), value=value, partition=partition
        )

    send(ok)
    send(ok)  # redelivered: a duplicate
    for _, datum in cases:
        send(datum)
    send(_order("e-key", "o-d", _placed([_line("SKU-1", 1)])), key=b"someone-else")
    right = partition_for(b"o-e", topics.partitions(ORDERS))
    send(
        _order("e-partition", "o-e", _placed([_line("SKU-1", 1)])),
        partition=(right + 1) % topics.partitions(ORDERS),
    )
    assert producer.flush(30) == 0
    expected_reasons = {reason: 1 for reason, _ in cases} | {
        "key-mismatch": 1,
        "wrong-partition": 1,
    }

    quick = settings.model_copy(update={"max_wait_minutes": 0.05, "expiry_interval_seconds": 0.5})
    worker = spawn_worker(quick, tmp_path / "worker.log")
    try:

        def settled() -> dict[str, Any] | None:
            account = worker.accounting()["topics"].get(ORDERS, {})
            return account if account.get("waiting_dead_lettered") == 1 else None

        account = wait_for(settled, timeout=90, what="the orphan fulfilment to expire")
        assert account["consumed"] == 2 + len(cases) + 2
        assert (account["applied"], account["duplicate"], account["waiting"]) == (1, 1, 1)
        assert account["dead_lettered"] == len(cases) - 1 + 2
        assert account["consumed"] == sum(
            account[k] for k in ("applied", "duplicate", "waiting", "dead_lettered")
        )
        assert account["dead_letter_reasons"] == expected_reasons
        assert account["waiting_reasons"] == {"order-not-placed": 1}
        letters = _dead_letters(
            settings, topics.physical(dead_letter_of(ORDERS)), len(expected_reasons)
        )
        reasons = {}
        for letter in letters:
            headers = deadletter.describe(letter.headers())
            reasons[headers[deadletter.REASON]] = headers[deadletter.ERROR]
            # The original bytes, so the record can be fixed and replayed.
            assert codec.decode(letter.value()).datum["event_id"].startswith("e-")
        assert reasons.keys() == expected_reasons.keys()
        assert "SKU-9" in reasons["sku-not-ordered"]
        assert "waited" in reasons["order-not-placed"]
        assert f"partition {right}" in reasons["wrong-partition"]
        assert worker.process.poll() is None, "the worker must survive bad input"
        # Each dead letter's log line says which order it is about (JSON logs, issue 6).
        logged = {
            line["event"].split("(")[1].split(")")[0]: line
            for line in _json_lines(tmp_path / "worker.log")
            if line["event"].startswith("dead-lettered ")
        }
        assert logged.keys() == expected_reasons.keys()
        assert {k: logged["sku-not-ordered"][k] for k in ("topic", "order_id")} == {
            "topic": ORDERS,
            "order_id": "o-ok",
        }
        assert logged["order-not-placed"]["order_id"] == "o-never"
    finally:
        worker.stop()

"""The intake agents on the real broker: every record is decoded or dead-lettered, none lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from streams import deadletter
from streams.codec import Codec
from streams.schema_store import SchemaStore
from streams.settings import Settings
from streams.topics import INVENTORY, ORDERS, PAYMENTS, TopicCatalog, dead_letter_of
from tests.support import WorkerProcess, wait_for

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _header(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "occurred_at": NOW, "source": "test"}


def _valid_records(codec: Codec, topics: TopicCatalog) -> list[tuple[str, bytes, bytes]]:
    cancelled = {
        **_header("e-1"),
        "order_id": "o-1",
        "event": ("erpbridge.OrderCancelled", {"reason": "x"}),
    }
    snapshot = {
        **_header("e-2"),
        "sku": "SKU-1",
        "event": ("erpbridge.StockSnapshot", {"warehouse_id": "WH", "on_hand": 5, "as_of": NOW}),
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


def test_every_record_is_decoded_or_dead_lettered_with_its_reason(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    codec = Codec(SchemaStore.from_directory(Path("schemas")))
    good = _valid_records(codec, topics)
    inventory_on_orders = good[1][2]
    valid_order = good[0][2]
    bad = {
        b"corrupt": b"\x07garbage that is no framing",
        b"unknown-fp": b"\xc3\x01" + bytes(8) + b"\x02",
        b"truncated": valid_order[:-4],
        b"wrong-schema": inventory_on_orders,
        b"empty": b"",
    }
    producer = Producer(settings.confluent_config())
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
        done = totals["consumed"] == total == totals["decoded"] + totals["dead_lettered"]
        return accounting if done else None

    accounting = wait_for(settled, timeout=90, what="every record consumed and accounted for")
    assert accounting["totals"] == {
        "consumed": len(good) + len(bad),
        "decoded": len(good),
        "dead_lettered": len(bad),
    }
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

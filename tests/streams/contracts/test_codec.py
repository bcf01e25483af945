"""The codec on its own: both framings, schema evolution through history, every decode failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.contracts.codec import Codec, DecodeError, EncodeError, Framing
from streams.contracts.schema_store import SchemaStore, from_expanded, load_file
from streams.local.registry import Registry
from streams.ops.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.from_directory(SCHEMAS)


def placed() -> dict[str, Any]:
    return {
        "event_id": "evt-1",
        "occurred_at": NOW,
        "source": "shopify",
        "order_id": "1001",
        "event": (
            "erpbridge.OrderPlaced",
            {
                "currency": "EUR",
                "customer": {"customer_id": "c-1", "email": "a@example.com"},
                "ship_to": {"line1": "Main St 1", "city": "Berlin", "country": "DE"},
                "channel": "web",
                "lines": [
                    {
                        "line_id": "1",
                        "sku": "SKU-0001",
                        "quantity": 3,
                        "unit_price": Decimal("19.99"),
                        "discount": Decimal("5.00"),
                        "tax_lines": [
                            {
                                "jurisdiction": "DE",
                                "rate": Decimal("0.19"),
                                "amount": Decimal("10.44"),
                            }
                        ],
                    }
                ],
                "total": Decimal("65.41"),
            },
        ),
    }


def registry_client(registry: Registry) -> SchemaRegistryClient:
    """A new client, so with an empty cache, on the session's registry.

    The registry is shared by the session: tests keep their subjects apart through
    `topic_prefix` in the topic names they encode for.
    """
    return SchemaRegistryClient({"url": registry.url})


@pytest.mark.parametrize("framing", [Framing.SINGLE_OBJECT, Framing.CONFLUENT])
def test_round_trip_keeps_money_exact(
    store: SchemaStore, framing: Framing, request: pytest.FixtureRequest, topic_prefix: str
) -> None:
    # Only the Confluent case needs the registry; the other runs without starting one.
    registry = (
        registry_client(request.getfixturevalue("schema_registry"))
        if framing is Framing.CONFLUENT
        else None
    )
    codec = Codec(store, registry)
    data = codec.encode("erpbridge.OrderEvent", placed(), topic=f"{topic_prefix}commerce.orders")
    decoded = codec.decode(data, expected="erpbridge.OrderEvent")
    assert decoded.framing is framing
    event_type, event = decoded.datum["event"]
    assert event_type == "erpbridge.OrderPlaced"
    assert event["lines"][0]["unit_price"] == Decimal("19.99")
    assert event["total"] == Decimal("65.41")
    assert isinstance(event["total"], Decimal)
    assert decoded.datum["occurred_at"] == NOW
    assert event["customer"]["kind"] == "CONSUMER"  # filled from the schema default


def test_single_object_header_is_the_avro_specification_one(store: SchemaStore) -> None:
    data = Codec(store).encode("erpbridge.OrderEvent", placed(), topic="t")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == store.current("erpbridge.OrderEvent").fingerprint


def test_confluent_frame_carries_the_registry_id(
    store: SchemaStore, schema_registry: Registry, topic_prefix: str
) -> None:
    registry = registry_client(schema_registry)
    topic = f"{topic_prefix}commerce.orders"
    data = Codec(store, registry).encode("erpbridge.OrderEvent", placed(), topic=topic)
    schema_id = int.from_bytes(data[1:5], "big")
    assert data[0] == 0
    registered = registry.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id


def test_a_registry_framed_message_is_read_by_a_consumer_configured_with_the_same_registry(
    store: SchemaStore, schema_registry: Registry, topic_prefix: str
) -> None:
    """Producer and consumer share only the registry URL, as separate processes do."""
    producer = Codec(store, registry_client(schema_registry))
    data = producer.encode("erpbridge.OrderEvent", placed(), topic=f"{topic_prefix}commerce.orders")

    consumer = Codec(store, registry_client(schema_registry))
    decoded = consumer.decode(data, expected="erpbridge.OrderEvent")

    assert decoded.framing is Framing.CONFLUENT
    assert decoded.datum["event"][1]["total"] == Decimal("65.41")
    assert decoded.datum["occurred_at"] == NOW


def test_a_reader_without_registry_still_reads_single_object_and_names_the_missing_registry(
    store: SchemaStore, schema_registry: Registry, topic_prefix: str
) -> None:
    registry = registry_client(schema_registry)
    framed = Codec(store, registry).encode("erpbridge.OrderEvent", placed(), topic=topic_prefix)
    plain_reader = Codec(store)
    with pytest.raises(DecodeError) as error:
        plain_reader.decode(framed)
    assert error.value.reason == "no-registry"
    assert "ERPBRIDGE_SCHEMA_REGISTRY_URL" in str(error.value)
    # a registry-configured reader detects the framing per message: both kinds decode
    both = Codec(store, registry)
    assert both.decode(
        Codec(store).encode("erpbridge.OrderEvent", placed(), topic="t")
    ).framing is (Framing.SINGLE_OBJECT)
    assert both.decode(framed).framing is Framing.CONFLUENT


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: b"", "empty"),
        (lambda d: b"{not avro}", "unknown-framing"),
        (lambda d: d[:2] + bytes(8) + d[10:], "unknown-fingerprint"),
        (lambda d: d[:6], "truncated"),
        (lambda d: d[:-3], "truncated"),
        (lambda d: d + b"\x00\x00", "corrupt"),
        (lambda d: b"\x00\x00\x00", "truncated"),
    ],
)
def test_undecodable_bytes_raise_decode_error_with_a_reason(
    store: SchemaStore, mangle: Any, reason: str
) -> None:
    codec = Codec(store)
    data = codec.encode("erpbridge.OrderEvent", placed(), topic="t")
    with pytest.raises(DecodeError) as error:
        codec.decode(mangle(data))
    assert error.value.reason == reason


def test_unknown_registry_id_is_a_decode_error(
    store: SchemaStore, schema_registry: Registry
) -> None:
    codec = Codec(store, registry_client(schema_registry))
    # Far above any id a test session registers: ids are global to the shared registry.
    unknown_id = 2**31 - 1
    with pytest.raises(DecodeError) as error:
        codec.decode(b"\x00" + unknown_id.to_bytes(4, "big") + b"\x02")
    assert error.value.reason == "unknown-schema-id"


def test_a_record_of_another_schema_is_refused_when_one_is_expected(store: SchemaStore) -> None:
    codec = Codec(store)
    data = codec.encode("erpbridge.OrderEvent", placed(), topic="t")
    with pytest.raises(DecodeError) as error:
        codec.decode(data, expected="erpbridge.PaymentEvent")
    assert error.value.reason == "wrong-schema"


def test_encode_errors_name_the_field(store: SchemaStore) -> None:
    event = placed()
    event["event"][1]["total"] = 65.41  # a float for money
    with pytest.raises(EncodeError, match=r"OrderPlaced\.total"):
        Codec(store).encode("erpbridge.OrderEvent", event, topic="t")


def test_events_from_an_older_writer_schema_in_history_decode_with_current_defaults() -> None:
    """A producer still on the previous version keeps working after a field was added."""
    old_schema = load_file(SCHEMAS / "erpbridge.StockAvailability.avsc")
    new = json.loads(json.dumps(old_schema.expanded))
    new["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    codec = Codec(SchemaStore([from_expanded(new)], history=[old_schema]))
    writer = Codec(SchemaStore([old_schema]))
    datum = {
        "event_id": "e",
        "occurred_at": NOW,
        "source": "test",
        "sku": "SKU-1",
        "on_hand": 3,
        "reserved": 1,
        "available": 2,
        "warehouses": [],
    }
    decoded = codec.decode(writer.encode("erpbridge.StockAvailability", datum, topic="t"))
    assert decoded.datum["note"] is None
    assert decoded.datum["available"] == 2

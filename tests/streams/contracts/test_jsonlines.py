"""The friendly JSON form: round trips through the codec for every topic schema, every error kind."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts.codec import Codec
from streams.contracts.jsonlines import (
    JsonLineError,
    format_timestamp,
    from_datum,
    parse_line,
    to_datum,
)
from streams.contracts.schema_store import SchemaStore, StoredSchema, from_expanded
from streams.contracts.topics import SPECS, spec
from streams.ops.settings import REPO_ROOT

EVENTS = REPO_ROOT / "tests" / "fixtures" / "events"
SCHEMA_TOPICS = [s.name for s in SPECS if s.value_schema is not None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.from_directory(REPO_ROOT / "schemas")


def schema_of(store: SchemaStore, topic: str) -> StoredSchema:
    name = spec(topic).value_schema
    assert name is not None
    return store.current(name)


def fixture_lines(topic: str) -> list[str]:
    return [line for line in (EVENTS / f"{topic}.jsonl").read_text().splitlines() if line.strip()]


def placed_order() -> dict[str, Any]:
    line = fixture_lines("commerce.orders")[0]
    obj: dict[str, Any] = json.loads(line)
    assert obj["event"]["type"] == "OrderPlaced"
    return obj


# Round trips


@pytest.mark.parametrize("topic", SCHEMA_TOPICS)
def test_fixture_lines_survive_avro_and_back(store: SchemaStore, topic: str) -> None:
    schema = schema_of(store, topic)
    codec = Codec(store)
    lines = fixture_lines(topic)
    assert lines, f"no example lines for {topic}"
    for line in lines:
        datum = to_datum(schema, parse_line(line))
        decoded = codec.decode(codec.encode(schema.name, datum, topic=topic), expected=schema.name)
        friendly = from_datum(schema, decoded.datum)
        # Tail output is JSON text, then read back by produce.
        again = to_datum(schema, parse_line(json.dumps(friendly)))
        assert again == datum
        assert from_datum(schema, again) == friendly


@pytest.mark.parametrize("topic", SCHEMA_TOPICS)
def test_fixtures_cover_every_branch_of_the_topic_union(store: SchemaStore, topic: str) -> None:
    schema = schema_of(store, topic)
    unions = [
        f for f in schema.parsed["fields"] if isinstance(f["type"], list) and len(f["type"]) > 2
    ]
    for field in unions:
        branches = {
            (b if isinstance(b, str) else b["name"]).rsplit(".", 1)[-1] for b in field["type"]
        }
        seen = {json.loads(line)[field["name"]]["type"] for line in fixture_lines(topic)}
        assert seen == branches


def test_datum_has_the_codec_shape(store: SchemaStore) -> None:
    datum = to_datum(schema_of(store, "commerce.orders"), placed_order())
    assert datum["occurred_at"] == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert datum["occurred_at"].utcoffset() == timedelta(hours=-5)
    name, placed = datum["event"]
    assert name == "erpbridge.OrderPlaced"
    assert placed["total"] == Decimal("411.88") and isinstance(placed["total"], Decimal)
    assert placed["lines"][0]["tax_lines"][0]["rate"] == Decimal("0.06")
    assert placed["bill_to"]["city"] == "Louisville"  # ["null", Address] is the plain value
    assert placed["customer"]["kind"] == "CONSUMER"  # default filled in
    assert placed["payment_terms"] == "PREPAID"


def test_from_datum_writes_decimals_with_their_scale_and_utc_as_z(store: SchemaStore) -> None:
    schema = schema_of(store, "finance.journal")
    codec = Codec(store)
    datum = to_datum(schema, parse_line(fixture_lines("finance.journal")[0]))
    decoded = codec.decode(codec.encode(schema.name, datum, topic="t")).datum
    friendly = from_datum(schema, decoded)
    assert friendly["exchange_rate"] == "1.05710000"
    assert friendly["lines"][1]["debit"] == "0.0000"
    assert friendly["posting_date"] == "2026-11-26"
    assert friendly["occurred_at"] == "2026-11-26T23:59:59Z"
    # A datum built in code keeps the scale it was given.
    assert from_datum(schema, datum)["lines"][0]["debit"] == "3390.1434"


def test_offsets_and_milliseconds_are_kept_when_formatting(store: SchemaStore) -> None:
    schema = schema_of(store, "commerce.orders")
    obj = placed_order()
    obj["occurred_at"] = "2026-11-26T09:14:03.250+01:00"
    assert (
        from_datum(schema, to_datum(schema, obj))["occurred_at"] == "2026-11-26T09:14:03.250+01:00"
    )


def test_nullable_fields_take_null_or_the_value(store: SchemaStore) -> None:
    schema = schema_of(store, "commerce.orders")
    obj = placed_order()
    obj["event"]["bill_to"] = None
    obj["event"]["shipping"] = None
    _, placed = to_datum(schema, obj)["event"]
    assert placed["bill_to"] is None and placed["shipping"] is None


def test_missing_fields_with_defaults_take_them(store: SchemaStore) -> None:
    schema = schema_of(store, "commerce.orders")
    obj = placed_order()
    for name in ("discounts", "bill_to"):
        del obj["event"][name]
    assert "payment_terms" not in obj["event"] and "kind" not in obj["event"]["customer"]
    _, placed = to_datum(schema, obj)["event"]
    assert placed["discounts"] == []
    assert placed["payment_terms"] == "PREPAID"
    assert placed["bill_to"] is None
    assert placed["purchase_order_number"] is None
    assert placed["customer"]["kind"] == "CONSUMER"


# Errors


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        target: Any = obj
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        target: Any = obj
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


UNIT_PRICE = ["event", "lines", 0, "unit_price"]

ERRORS = [
    pytest.param(
        _set(UNIT_PRICE, 19.99),
        "event.lines[0].unit_price",
        'money must be a decimal string such as "19.99", not the number 19.99',
        id="money-as-number",
    ),
    pytest.param(
        _set(UNIT_PRICE, "19,99"),
        "event.lines[0].unit_price",
        'not the string "19,99"',
        id="money-not-decimal",
    ),
    pytest.param(
        _set(UNIT_PRICE, "1e3"), "event.lines[0].unit_price", "decimal string", id="money-exponent"
    ),
    pytest.param(
        _set(UNIT_PRICE, "199.00001"),
        "event.lines[0].unit_price",
        "5 decimal places; this field keeps at most 4",
        id="money-scale",
    ),
    pytest.param(
        _set(["event", "total"], "123456789012345.00"),
        "event.total",
        "at most 14 digits before the decimal point (precision 18, scale 4)",
        id="money-precision",
    ),
    pytest.param(
        _set(["event", "lines", 0, "tax_lines", 0, "rate"], "1000"),
        "event.lines[0].tax_lines[0].rate",
        "at most 3 digits before the decimal point (precision 9, scale 6)",
        id="rate-precision",
    ),
    pytest.param(
        _set(["occurred_at"], "2026-11-26T12:30:00"),
        "occurred_at",
        "has no timezone; add Z or an offset",
        id="timestamp-without-zone",
    ),
    pytest.param(
        _set(["occurred_at"], "yesterday"),
        "occurred_at",
        'ISO-8601 timestamp with a timezone such as "2026-11-26T12:30:00Z", not the string "yesterday"',
        id="timestamp-garbage",
    ),
    pytest.param(
        _set(["occurred_at"], 1764160200000),
        "occurred_at",
        "ISO-8601 timestamp",
        id="timestamp-as-number",
    ),
    pytest.param(
        _set(["occurred_at"], "2026-11-26T12:30:00.123456Z"),
        "occurred_at",
        "more precise than milliseconds",
        id="timestamp-microseconds",
    ),
    pytest.param(
        _set(["event"], {"type": "OrderShipped"}),
        "event.type",
        "expected one of OrderPlaced, OrderCancelled, OrderFulfilled, OrderRefunded, "
        'OrderApproved, OrderRejected, not the string "OrderShipped"',
        id="union-unknown-type",
    ),
    pytest.param(
        _delete(["event", "type"]),
        "event",
        'expected an object with "type": one of OrderPlaced, OrderCancelled',
        id="union-without-type",
    ),
    pytest.param(
        _set(["event", "payment_terms"], "NET30"),
        "event.payment_terms",
        'expected one of PREPAID, ON_ACCOUNT, not the string "NET30"',
        id="enum-unknown-symbol",
    ),
    pytest.param(
        _delete(["event", "total"]),
        "event.total",
        'required field is missing; expected a decimal string such as "19.99"',
        id="missing-field",
    ),
    pytest.param(
        _delete(["event", "ship_to", "city"]),
        "event.ship_to.city",
        "required field is missing; expected a string",
        id="missing-nested-field",
    ),
    pytest.param(
        _set(["event", "totl"], "411.88"),
        "event.totl",
        "unknown field; did you mean 'total'? OrderPlaced has: currency",
        id="unknown-field",
    ),
    pytest.param(
        _set(["orderid"], "1"),
        "orderid",
        "unknown field; did you mean 'order_id'?",
        id="unknown-top",
    ),
    pytest.param(
        _set(["event", "lines", 0, "quantity"], 1.5),
        "event.lines[0].quantity",
        "expected an integer, not the number 1.5",
        id="int-not-integer",
    ),
    pytest.param(
        _set(["event", "lines", 0, "quantity"], "1"),
        "event.lines[0].quantity",
        'expected an integer, not the string "1"',
        id="int-as-string",
    ),
    pytest.param(
        _set(["event", "lines", 0, "quantity"], True),
        "event.lines[0].quantity",
        "expected an integer, not true",
        id="int-as-boolean",
    ),
    pytest.param(
        _set(["event", "lines", 0, "quantity"], 2**31),
        "event.lines[0].quantity",
        "2147483648 is out of range for a 32-bit int",
        id="int-range",
    ),
    pytest.param(
        _set(["event", "channel"], None),
        "event.channel",
        "expected a string, not null",
        id="null-for-required",
    ),
    pytest.param(
        _set(["order_id"], 450789469),
        "order_id",
        "expected a string, not the number 450789469",
        id="string-as-number",
    ),
    pytest.param(
        _set(["event", "lines"], {}), "event.lines", "expected a list, not an object", id="array"
    ),
    pytest.param(
        _set(["event", "customer"], "207119551"),
        "event.customer",
        'expected an object (Customer), not the string "207119551"',
        id="record-as-string",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "message"), ERRORS)
def test_errors_name_the_path_and_what_was_expected(
    store: SchemaStore, mutate: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    obj = copy.deepcopy(placed_order())
    mutate(obj)
    with pytest.raises(JsonLineError) as raised:
        to_datum(schema_of(store, "commerce.orders"), obj)
    assert raised.value.path == path
    assert message in raised.value.reason
    assert str(raised.value) == f"{path}: {raised.value.reason}"
    assert isinstance(raised.value, ValueError)


def test_money_typed_as_a_number_is_quoted_as_typed(store: SchemaStore) -> None:
    line = fixture_lines("commerce.orders")[0].replace(
        '"unit_price": "199.00"', '"unit_price": 199.00', 1
    )
    with pytest.raises(JsonLineError) as raised:
        to_datum(schema_of(store, "commerce.orders"), parse_line(line))
    assert str(raised.value) == (
        'event.lines[0].unit_price: money must be a decimal string such as "19.99", '
        "not the number 199.00"
    )


def test_errors_in_other_schemas(store: SchemaStore) -> None:
    results = schema_of(store, "erp.results")
    result = json.loads(fixture_lines("erp.results")[0])
    with pytest.raises(JsonLineError, match="out of range for a 64-bit long") as raised:
        to_datum(results, {**result, "latency_ms": 2**63})
    assert raised.value.path == "latency_ms"

    failed = json.loads(fixture_lines("erp.results")[1])
    failed["error"]["permanent"] = "yes"
    with pytest.raises(
        JsonLineError, match='expected true or false, not the string "yes"'
    ) as raised:
        to_datum(results, failed)
    assert raised.value.path == "error.permanent"

    alerts = schema_of(store, "reconciliation.alerts")
    alert = json.loads(fixture_lines("reconciliation.alerts")[0])
    alert["evidence"]["amount in cents"] = 1000
    with pytest.raises(JsonLineError, match="expected a string, not the number 1000") as raised:
        to_datum(alerts, alert)
    assert raised.value.path == 'evidence["amount in cents"]'

    journal = schema_of(store, "finance.journal")
    entry = json.loads(fixture_lines("finance.journal")[0])
    for bad in ("26.11.2026", "2026-11-31", "20261126"):
        with pytest.raises(JsonLineError, match='expected a date such as "2026-11-26"') as raised:
            to_datum(journal, {**entry, "posting_date": bad})
        assert raised.value.path == "posting_date"


def test_top_level_must_be_an_object(store: SchemaStore) -> None:
    with pytest.raises(
        JsonLineError, match=r"expected an object \(OrderEvent\), not a list"
    ) as raised:
        to_datum(schema_of(store, "commerce.orders"), [])
    assert raised.value.path == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"order_id": "1",}',
            "invalid JSON: Expecting property name enclosed in double quotes (column 18)",
        ),
        ('{"total": NaN}', "invalid JSON: NaN is not a JSON number"),
        (
            '{"total": "1", "total": "2"}',
            "invalid JSON: the key 'total' appears twice in one object",
        ),
    ],
)
def test_parse_line_rejects_what_json_loads_would_let_through(text: str, message: str) -> None:
    with pytest.raises(JsonLineError) as raised:
        parse_line(text)
    assert str(raised.value) == message


def test_parse_line_keeps_numbers_exact() -> None:
    assert parse_line('{"a": 19.990, "b": 3}') == {"a": Decimal("19.990"), "b": 3}


# Avro types the topic schemas do not use (yet): the walker is generic.

GENERIC = from_expanded(
    {
        "type": "record",
        "name": "test.Generic",
        "fields": [
            {"name": "blob", "type": "bytes"},
            {"name": "digest", "type": {"type": "fixed", "name": "test.Digest", "size": 4}},
            {"name": "ratio", "type": "double"},
            {"name": "tags", "type": {"type": "map", "values": "long"}},
            {"name": "either", "type": ["null", "test.Digest"], "default": None},
            {
                "name": "fee",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
                "default": "\u0004\u00d2",  # 1234 unscaled, big-endian: 12.34
            },
            {"name": "since", "type": {"type": "int", "logicalType": "date"}, "default": 1},
            {
                "name": "at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "default": 1500,
            },
            {"name": "raw", "type": "bytes", "default": "\u00ff"},
            {
                "name": "nested",
                "type": {
                    "type": "record",
                    "name": "test.Nested",
                    "fields": [{"name": "n", "type": "int", "default": 7}],
                },
                "default": {},
            },
        ],
    }
)


def test_generic_types_round_trip_and_defaults_are_converted() -> None:
    obj = {"blob": "AAEC/w==", "digest": "3q2+7w==", "ratio": 0.25, "tags": {"a": 1}}
    datum = to_datum(GENERIC, obj)
    assert datum == {
        "blob": b"\x00\x01\x02\xff",
        "digest": b"\xde\xad\xbe\xef",
        "ratio": 0.25,
        "tags": {"a": 1},
        "either": None,
        "fee": Decimal("12.34"),
        "since": date(1970, 1, 2),
        "at": datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
        "raw": b"\xff",
        "nested": {"n": 7},
    }
    codec = Codec(SchemaStore([GENERIC]))
    decoded = codec.decode(codec.encode(GENERIC.name, datum, topic="t")).datum
    friendly = from_datum(GENERIC, decoded)
    assert friendly == {
        **obj,
        "either": None,
        "fee": "12.34",
        "since": "1970-01-02",
        "at": "1970-01-01T00:00:01.500Z",
        "raw": "/w==",
        "nested": {"n": 7},
    }
    assert to_datum(GENERIC, friendly) == datum
    # Datums may leave out fields with defaults, as the codec's writer allows.
    assert from_datum(GENERIC, {k: datum[k] for k in obj}) == friendly


@pytest.mark.parametrize(
    ("field", "value", "path", "message"),
    [
        ("blob", "not base64!", "blob", "expected base64 text"),
        ("digest", "AAEC", "digest", "expected 4 bytes, got 3"),
        ("ratio", "0.25", "ratio", 'expected a number, not the string "0.25"'),
        ("tags", {"a": 2**63}, "tags.a", "out of range for a 64-bit long"),
        ("either", "AAE=", "either", "expected 4 bytes, got 2"),
    ],
)
def test_generic_type_errors(field: str, value: Any, path: str, message: str) -> None:
    obj = {"blob": "", "digest": "3q2+7w==", "ratio": 1, "tags": {}, field: value}
    with pytest.raises(JsonLineError, match=message) as raised:
        to_datum(GENERIC, obj)
    assert raised.value.path == path


def test_unions_without_a_friendly_form_are_refused() -> None:
    schema = from_expanded(
        {
            "type": "record",
            "name": "test.Mixed",
            "fields": [{"name": "v", "type": ["string", "int"]}],
        }
    )
    with pytest.raises(JsonLineError, match="unions other than") as raised:
        to_datum(schema, {"v": 1})
    assert raised.value.path == "v"


# Property: JSON -> Avro -> JSON is the identity on objects in the form tail prints.


def _strategy(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = named.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(schema, list):
        branches = [named.get(b, b) if isinstance(b, str) else b for b in schema if b != "null"]
        if len(branches) == 1:
            inner = _strategy(branches[0], named)
        else:
            inner = st.one_of([_tagged(_strategy(b, named), b["name"]) for b in branches])
        return st.none() | inner if "null" in schema else inner
    kind = schema if isinstance(schema, str) else schema["type"]
    logical = None if isinstance(schema, str) else schema.get("logicalType")
    if logical == "decimal":
        bound = 10 ** schema["precision"] - 1
        return st.integers(-bound, bound).map(
            lambda unscaled: format(Decimal(unscaled).scaleb(-schema["scale"]), "f")
        )
    if logical == "timestamp-millis":
        return st.integers(-(2**40), 2**42).map(
            lambda ms: format_timestamp(EPOCH + timedelta(milliseconds=ms))
        )
    if logical == "date":
        return st.dates(date(1900, 1, 1), date(2200, 12, 31)).map(date.isoformat)
    if kind == "record":
        return st.fixed_dictionaries(
            {f["name"]: _strategy(f["type"], named) for f in schema["fields"]}
        )
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_strategy(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(_TEXT, _strategy(schema["values"], named), max_size=3)
    return {
        "string": _TEXT,
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "boolean": st.booleans(),
    }[kind]


def _tagged(record: st.SearchStrategy[Any], name: str) -> st.SearchStrategy[Any]:
    return record.map(lambda fields: {"type": name.rsplit(".", 1)[-1], **fields})


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@pytest.mark.parametrize("topic", SCHEMA_TOPICS)
def test_json_to_avro_to_json_is_the_identity(store: SchemaStore, topic: str) -> None:
    schema = schema_of(store, topic)
    codec = Codec(store)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_strategy(schema.parsed, schema.parsed["__named_schemas"]))
    def identity(obj: dict[str, Any]) -> None:
        datum = to_datum(schema, parse_line(json.dumps(obj)))
        assert from_datum(schema, datum) == obj
        decoded = codec.decode(codec.encode(schema.name, datum, topic=topic)).datum
        assert from_datum(schema, decoded) == obj

    identity()


def test_fixture_directory_has_a_file_per_topic_schema() -> None:
    assert sorted(p.stem for p in Path(EVENTS).glob("*.jsonl")) == sorted(SCHEMA_TOPICS)


def test_from_datum_refuses_datums_that_do_not_fit(store: SchemaStore) -> None:
    schema = schema_of(store, "commerce.orders")
    datum = to_datum(schema, placed_order())
    with pytest.raises(JsonLineError, match="missing from the datum") as raised:
        from_datum(schema, {k: v for k, v in datum.items() if k != "order_id"})
    assert raised.value.path == "order_id"
    with pytest.raises(JsonLineError, match=r"expected a \(record name, fields\) pair") as raised:
        from_datum(schema, {**datum, "event": datum["event"][1]})
    assert raised.value.path == "event"

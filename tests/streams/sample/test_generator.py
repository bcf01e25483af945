"""The sample generator: determinism, fit to the Avro contracts, the business invariants its
events keep, and `erpbridge sample` end to end (JSON lines, and a real Kafka broker)."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported without __all__

from streams.cli import main
from streams.contracts.codec import Codec
from streams.contracts.jsonlines import to_datum
from streams.contracts.schema_store import SchemaStore
from streams.contracts.topics import INPUTS, INVENTORY, ORDERS, PAYMENTS, TopicCatalog, spec
from streams.domain.money import MINOR_UNITS, quantize_minor
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import (
    DEFAULT_START,
    Catalogue,
    LineRequest,
    SampleEvent,
    generate,
    price_order,
    prorate,
)
from streams.sample.publisher import Pacer, publish_sample
from tests.support import wait_for

STORE = SchemaStore.from_directory(REPO_ROOT / "schemas")
CATALOGUE = Catalogue.default()
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SEED = 11
ORDER_COUNT = 250


@pytest.fixture(scope="module")
def events() -> list[SampleEvent]:
    return list(generate(SEED, ORDER_COUNT, CATALOGUE, START))


def member(event: SampleEvent) -> str:
    name: str = event.datum["event"][0]
    return name.removeprefix("erpbridge.")


def body(event: SampleEvent) -> dict[str, Any]:
    fields: dict[str, Any] = event.datum["event"][1]
    return fields


def of_type(events: list[SampleEvent], name: str) -> list[SampleEvent]:
    return [e for e in events if member(e) == name]


def placed_orders(events: list[SampleEvent]) -> dict[str, dict[str, Any]]:
    return {e.key: body(e) for e in of_type(events, "OrderPlaced")}


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_the_same_events() -> None:
    assert list(generate(3, 80, CATALOGUE, START)) == list(generate(3, 80, CATALOGUE, START))


def test_another_seed_gives_other_events() -> None:
    def story(seed: int) -> list[tuple[str, Any]]:
        return [(member(e), body(e).get("total")) for e in generate(seed, 80, CATALOGUE, START)]

    assert story(3) != story(4)


def test_start_must_be_timezone_aware_and_is_cut_to_milliseconds() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(generate(1, 1, CATALOGUE, datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="orders"):
        next(generate(1, -1, CATALOGUE, START))
    first = next(generate(1, 1, CATALOGUE, START + timedelta(microseconds=1999)))
    assert first.datum["occurred_at"] == START + timedelta(milliseconds=1)


def test_no_orders_is_just_the_opening_stock() -> None:
    sample = list(generate(1, 0, CATALOGUE, START))
    assert len(sample) == len(CATALOGUE.skus) * len(CATALOGUE.warehouses)
    assert {member(e) for e in sample} == {"StockSnapshot"}


# --- the catalogue ----------------------------------------------------------------------------


def test_default_catalogue() -> None:
    assert len(CATALOGUE.skus) == 20
    assert [w.warehouse_id for w in CATALOGUE.warehouses] == ["WH-EAST", "WH-WEST", "WH-EU"]
    assert len(CATALOGUE.customers) == 30
    assert all(re.fullmatch(r"SKU-\d{4}", s.code) for s in CATALOGUE.skus)
    assert set(CATALOGUE.currencies) == {"USD", "EUR", "GBP"} <= set(MINOR_UNITS)
    for sku in CATALOGUE.skus:
        assert set(sku.prices) == set(CATALOGUE.currencies)
        assert all(quantize_minor(p, c) == p > 0 for c, p in sku.prices.items())
        assert 0 < sku.unit_cost < sku.price("USD")
        assert 0 < sku.reorder_point < sku.target_stock
    businesses = [c for c in CATALOGUE.customers if c.kind == "BUSINESS"]
    assert businesses and all(
        c.payment_terms == "ON_ACCOUNT" and c.po_prefix and c.billing_address for c in businesses
    )
    assert all(c.payment_terms == "PREPAID" for c in CATALOGUE.customers if c.kind == "CONSUMER")
    by_currency = Counter(c.currency for c in CATALOGUE.customers)
    assert by_currency["USD"] > by_currency["EUR"] + by_currency["GBP"]
    for customer in CATALOGUE.customers:
        CATALOGUE.warehouse_for(customer.address)
        assert CATALOGUE.gateways_for(customer.currency)
    assert all(0 <= r < 1 for j in CATALOGUE.jurisdictions for r in j.rates.values())


def test_inconsistent_catalogue_is_refused() -> None:
    broken = replace(CATALOGUE.skus[0], prices={"USD": Decimal("1.00")})
    with pytest.raises(ValueError, match=r"SKU-0001 has no EUR price.*duplicate SKU SKU-0001"):
        replace(CATALOGUE, skus=(broken, *CATALOGUE.skus))


def test_scaled_catalogue_repeats_the_base_products_under_new_codes() -> None:
    scaled = Catalogue.scaled(45)
    assert [s.code for s in scaled.skus] == [f"SKU-{n:05d}" for n in range(1, 46)]
    for n, sku in enumerate(scaled.skus, 1):
        base = CATALOGUE.skus[(n - 1) % 20]
        assert (sku.prices, sku.unit_cost, sku.tax_category) == (
            base.prices,
            base.unit_cost,
            base.tax_category,
        )
        assert (sku.reorder_point, sku.target_stock) == (base.reorder_point, base.target_stock)
        assert sku.name.startswith(base.name)
    assert scaled.skus[0].name == CATALOGUE.skus[0].name
    assert scaled.skus[20].name == f"{CATALOGUE.skus[0].name}, variant 2"
    assert replace(scaled, skus=CATALOGUE.skus) == CATALOGUE
    assert Catalogue.scaled(45) == scaled
    assert [s.code for s in Catalogue.scaled(3).skus] == ["SKU-00001", "SKU-00002", "SKU-00003"]
    with pytest.raises(ValueError, match="skus must be >= 1"):
        Catalogue.scaled(0)


def test_the_sample_over_a_scaled_catalogue_uses_every_sku_and_fits_the_contracts() -> None:
    scaled = Catalogue.scaled(60)
    sample = list(generate(SEED, 150, scaled, START))
    snapshots = of_type(sample, "StockSnapshot")[: len(scaled.skus) * len(scaled.warehouses)]
    assert {e.key for e in snapshots} == {s.code for s in scaled.skus}
    ordered = {line["sku"] for placed in placed_orders(sample).values() for line in placed["lines"]}
    assert ordered <= {s.code for s in scaled.skus}
    assert any(code > "SKU-00020" for code in ordered)
    codec = Codec(STORE)
    for event in sample:
        decoded = codec.decode(codec.encode(event.schema_name, event.datum, topic=event.topic))
        assert decoded.datum == event.datum


# --- pricing ----------------------------------------------------------------------------------


def test_price_order_by_hand() -> None:
    """New York City: both jurisdictions tax shipping; coffee (food) is exempt in New York."""
    skus = {s.code: s for s in CATALOGUE.skus}
    noah = next(c for c in CATALOGUE.customers if c.name == "Noah Williams")
    welcome = next(d for d in CATALOGUE.discount_codes if d.code == "WELCOME10")
    express = next(m for m in CATALOGUE.shipping_methods if m.code == "express")
    priced = price_order(
        "USD",
        [
            LineRequest(skus["SKU-0001"], 2, Decimal("0.00")),
            LineRequest(skus["SKU-0006"], 1, Decimal("0.00")),
        ],
        CATALOGUE.jurisdictions_for(noah.address),
        welcome,
        express,
    )
    # 10% of 86.00 = 8.60, spread 4.80 / 3.80 over the lines; beanie taxed on 43.20.
    assert priced.discounts == [
        {"code": "WELCOME10", "description": "10% off your first order", "amount": Decimal("8.60")}
    ]
    assert [(t["jurisdiction"], t["amount"]) for t in priced.lines[0]["tax_lines"]] == [
        ("US-NY", Decimal("1.73")),  # 1.728
        ("US-NY-NYC", Decimal("2.11")),  # 2.106
    ]
    assert priced.lines[1]["tax_lines"] == []
    assert priced.shipping is not None
    assert [t["amount"] for t in priced.shipping["tax_lines"]] == [Decimal("0.74"), Decimal("0.90")]
    assert priced.total == Decimal("101.38")  # 77.40 + 18.50 + 3.84 + 1.64
    assert priced.paid == {"SKU-0001": Decimal("47.04"), "SKU-0006": Decimal("34.20")}
    assert priced.shipping_paid == Decimal("20.14")


def test_prorate() -> None:
    assert prorate(Decimal("47.04"), 2, 2, "USD") == Decimal("47.04")
    assert prorate(Decimal("10.00"), 3, 1, "USD") == Decimal("3.33")
    assert prorate(Decimal("10.00"), 3, 2, "USD") == Decimal("6.67")


# --- every event fits the contracts -----------------------------------------------------------


def test_every_datum_round_trips_through_the_codec(events: list[SampleEvent]) -> None:
    codec = Codec(STORE)
    for event in events:
        assert event.schema_name == spec(event.topic).value_schema
        data = codec.encode(event.schema_name, event.datum, topic=event.topic)
        assert codec.decode(data, expected=event.schema_name).datum == event.datum, event.datum


def test_keys_are_the_topics_key_field(events: list[SampleEvent]) -> None:
    for event in events:
        assert event.key == event.datum[spec(event.topic).key]


def test_covers_every_event_type_of_the_input_schemas(events: list[SampleEvent]) -> None:
    wanted = set()
    for topic in (ORDERS, INVENTORY, PAYMENTS):
        name = spec(topic).value_schema
        assert name is not None
        (union,) = [
            f["type"] for f in STORE.current(name).expanded["fields"] if f["name"] == "event"
        ]
        wanted |= {branch["name"] for branch in union}
    assert {e.datum["event"][0] for e in events} == wanted
    for seed in range(1, 6):
        assert {e.datum["event"][0] for e in generate(seed, 200, CATALOGUE, START)} == wanted
    reasons = {body(e)["reason"] for e in of_type(events, "StockAdjusted")}
    assert reasons == {"RECEIPT", "DAMAGE", "COUNT", "TRANSFER"}
    assert {body(e)["kind"] for e in of_type(events, "OrderRefunded")} == {"RETURN", "REFUND"}
    assert {e.datum["source"] for e in events} == {
        "shopify", "stripe", "adyen", "erp:tryton", "wms"
    }  # fmt: skip


def test_ids_are_unique_and_time_only_moves_forward(events: list[SampleEvent]) -> None:
    ids = [e.datum["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    times = [e.datum["occurred_at"] for e in events]
    assert times[0] == START
    assert all(a < b for a, b in itertools.pairwise(times))
    assert all(t.microsecond % 1000 == 0 for t in times)


def test_money_is_exact_in_the_currencys_minor_unit(events: list[SampleEvent]) -> None:
    def check(value: Any, currency: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key != "rate":
                    check(item, currency)
        elif isinstance(value, list):
            for item in value:
                check(item, currency)
        elif isinstance(value, Decimal):
            assert quantize_minor(value, currency) == value

    for event in events:
        fields = body(event)
        if "currency" in fields and member(event) not in ("StockSnapshot", "StockAdjusted"):
            check(fields, fields["currency"])


# --- business invariants ----------------------------------------------------------------------


def test_order_totals_add_up_exactly(events: list[SampleEvent]) -> None:
    orders = placed_orders(events)
    assert len(orders) == ORDER_COUNT
    assert Counter(o["currency"] for o in orders.values()).most_common(1)[0][0] == "USD"
    assert {o["currency"] for o in orders.values()} == {"USD", "EUR", "GBP"}
    for order in orders.values():
        lines = order["lines"]
        assert 1 <= len(lines) <= 4
        assert len({line["sku"] for line in lines}) == len(lines)
        assert all(1 <= line["quantity"] <= 5 for line in lines)
        shipping = order["shipping"]
        taxes = [t["amount"] for line in lines for t in line["tax_lines"]]
        taxes += [t["amount"] for t in shipping["tax_lines"]] if shipping else []
        expected = (
            sum(line["quantity"] * line["unit_price"] - line["discount"] for line in lines)
            - sum(d["amount"] for d in order["discounts"])
            + (shipping["amount"] if shipping else 0)
            + sum(taxes)
        )
        assert order["total"] == expected
        if not order["discounts"]:
            currency = order["currency"]
            for line in lines:
                net = line["quantity"] * line["unit_price"] - line["discount"]
                for tax in line["tax_lines"]:
                    assert tax["amount"] == quantize_minor(net * tax["rate"], currency)
        business = order["customer"]["kind"] == "BUSINESS"
        assert (order["payment_terms"] == "ON_ACCOUNT") == business
        assert (order["purchase_order_number"] is not None) == business


def test_payments_are_for_the_order_total(events: list[SampleEvent]) -> None:
    orders = placed_orders(events)
    captured: dict[str, list[SampleEvent]] = defaultdict(list)
    for event in of_type(events, "PaymentAuthorized") + of_type(events, "PaymentCaptured"):
        order = orders[event.key]
        assert body(event)["amount"] == order["total"]
        assert body(event)["currency"] == order["currency"]
        assert event.datum["source"] in ("stripe", "adyen", "shopify")
        if member(event) == "PaymentCaptured":
            captured[event.key].append(event)
    assert all(len(c) == 1 for c in captured.values())
    paying = {e.key for e in events if e.topic == PAYMENTS}
    on_account = {key for key, o in orders.items() if o["payment_terms"] == "ON_ACCOUNT"}
    assert on_account and not paying & on_account
    failed = {e.key for e in of_type(events, "PaymentFailed")}
    assert failed & set(captured), "some declined payments are retried and then captured"
    assert failed - set(captured), "some orders are never paid"


def test_payouts_are_net_of_the_gateway_fee(events: list[SampleEvent]) -> None:
    captured = {body(e)["payment_id"]: e for e in of_type(events, "PaymentCaptured")}
    gateways = {g.name: g for g in CATALOGUE.gateways}
    settled = of_type(events, "PaymentSettled")
    assert sorted(body(e)["payment_id"] for e in settled) == sorted(captured)
    for event in settled:
        payout = body(event)
        capture = captured[payout["payment_id"]]
        assert payout["gross"] == body(capture)["amount"]
        assert payout["net"] == payout["gross"] - payout["fee"]
        assert payout["fee"] == gateways[payout["gateway"]].fee(payout["gross"], payout["currency"])
        assert 0 < payout["fee"] < payout["gross"]
        assert event.datum["occurred_at"] > capture.datum["occurred_at"]


def test_fulfilment_never_exceeds_the_order(events: list[SampleEvent]) -> None:
    ordered = {
        key: Counter({line["sku"]: line["quantity"] for line in o["lines"]})
        for key, o in placed_orders(events).items()
    }
    fulfilled: dict[str, Counter[str]] = defaultdict(Counter)
    cancelled = set()
    shipments: Counter[str] = Counter()
    for event in events:
        if member(event) == "OrderFulfilled":
            assert event.key not in cancelled
            shipments[event.key] += 1
            for line in body(event)["lines"]:
                fulfilled[event.key][line["sku"]] += line["quantity"]
                assert fulfilled[event.key][line["sku"]] <= ordered[event.key][line["sku"]]
        elif member(event) in ("OrderCancelled", "OrderRejected"):
            assert event.key not in fulfilled
            cancelled.add(event.key)
    assert cancelled
    assert all(fulfilled[key] == ordered[key] for key in ordered if key not in cancelled)
    assert 2 in shipments.values(), "some orders ship in two parts"


def test_business_orders_flagged_for_approval_are_decided_once_before_they_ship(
    events: list[SampleEvent],
) -> None:
    flagged = {k for k, o in placed_orders(events).items() if o["requires_approval"]}
    assert flagged and all(
        placed_orders(events)[k]["customer"]["kind"] == "BUSINESS" for k in flagged
    )
    decided: dict[str, str] = {}
    for event in events:
        if member(event) in ("OrderApproved", "OrderRejected"):
            assert event.key in flagged and event.key not in decided
            decided[event.key] = member(event)
        elif member(event) == "OrderFulfilled" and event.key in flagged:
            assert decided.get(event.key) == "OrderApproved"
    assert set(decided) == flagged
    assert set(decided.values()) == {"OrderApproved", "OrderRejected"}


def test_refunds_never_exceed_what_was_captured(events: list[SampleEvent]) -> None:
    orders = placed_orders(events)
    captured = {
        body(e)["payment_id"]: body(e)["amount"] for e in of_type(events, "PaymentCaptured")
    }
    payment_of_order = {e.key: body(e)["payment_id"] for e in of_type(events, "PaymentCaptured")}
    refunded: Counter[str] = Counter()
    payment_refunds = {body(e)["refund_id"]: e for e in of_type(events, "PaymentRefunded")}
    for paid_back in payment_refunds.values():
        refunded[body(paid_back)["payment_id"]] += body(paid_back)["amount"]
    assert refunded
    assert all(refunded[p] <= captured[p] for p in refunded)

    fulfilled: dict[str, Counter[str]] = defaultdict(Counter)
    for event in of_type(events, "OrderFulfilled"):
        for line in body(event)["lines"]:
            fulfilled[event.key][line["sku"]] += line["quantity"]
    for event in of_type(events, "OrderRefunded"):
        refund = body(event)
        assert refund["total"] == sum(line["amount"] for line in refund["lines"]) + (
            refund["shipping_amount"] or 0
        )
        assert refund["total"] <= orders[event.key]["total"]
        assert refund["currency"] == orders[event.key]["currency"]
        for line in refund["lines"]:
            assert 1 <= line["quantity"] <= fulfilled[event.key][line["sku"]]
        if refund["kind"] == "RETURN":
            assert refund["restock"] and refund["warehouse_id"]
        if event.key in payment_of_order:
            paid_back = payment_refunds[refund["refund_id"]]
            assert body(paid_back)["amount"] == refund["total"]
            assert body(paid_back)["payment_id"] == payment_of_order[event.key]
            assert paid_back.datum["occurred_at"] > event.datum["occurred_at"]
    for event in of_type(events, "OrderCancelled"):
        if event.key in payment_of_order:
            assert refunded[payment_of_order[event.key]] == orders[event.key]["total"]


def test_every_order_event_comes_after_its_placement(events: list[SampleEvent]) -> None:
    placed_at: dict[str, datetime] = {}
    for event in events:
        if event.topic == INVENTORY:
            continue
        if member(event) == "OrderPlaced":
            assert event.key not in placed_at
            placed_at[event.key] = event.datum["occurred_at"]
        else:
            assert event.datum["occurred_at"] > placed_at[event.key]


def test_stock_never_goes_negative(events: list[SampleEvent]) -> None:
    """Replays every stock movement the sample implies, in order."""
    on_hand: Counter[tuple[str, str]] = Counter()
    transfers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    warehouses = {w.warehouse_id for w in CATALOGUE.warehouses}
    for event in events:
        fields = body(event)
        if member(event) == "StockSnapshot":
            on_hand[event.key, fields["warehouse_id"]] = fields["on_hand"]
            assert fields["as_of"] == START
        elif member(event) == "StockAdjusted":
            on_hand[event.key, fields["warehouse_id"]] += fields["delta"]
            if fields["reason"] == "TRANSFER":
                transfers[fields["reference"]].append(fields)
            if fields["reason"] == "RECEIPT":
                assert fields["delta"] > 0 and fields["unit_cost"] > 0
        elif member(event) == "OrderFulfilled":
            assert fields["warehouse_id"] in warehouses
            for line in fields["lines"]:
                on_hand[line["sku"], fields["warehouse_id"]] -= line["quantity"]
        elif member(event) == "OrderRefunded" and fields["restock"]:
            for line in fields["lines"]:
                on_hand[line["sku"], fields["warehouse_id"]] += line["quantity"]
        assert min(on_hand.values(), default=0) >= 0, event.datum
    assert transfers
    for legs in transfers.values():
        out, into = legs
        assert out["delta"] == -into["delta"] < 0
        assert out["counterpart_warehouse_id"] == into["warehouse_id"]
        assert into["counterpart_warehouse_id"] == out["warehouse_id"]


# --- publishing -------------------------------------------------------------------------------


def test_pacer_spaces_events_from_the_start() -> None:
    now = [100.0]
    pacer = Pacer(4.0, clock=lambda: now[0])
    assert pacer.delay(0) == 0
    assert pacer.delay(2) == 0.5
    now[0] = 101.0
    assert pacer.delay(2) == -0.5  # behind: no wait, catch up
    assert Pacer(0.0, clock=lambda: now[0]).delay(1000) == 0


def run_cli(args: list[str], env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_cli_jsonl_prints_every_event_in_the_friendly_form() -> None:
    result = run_cli(["sample", "--format", "jsonl", "--orders", "12", "--seed", "5"], env={})
    assert result.exit_code == 0, result.output
    expected = list(generate(5, 12, CATALOGUE, DEFAULT_START))
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected)
    for line, event in zip(lines, expected, strict=True):
        obj = json.loads(line)
        assert set(obj) == {"topic", "key", "value"}
        assert (obj["topic"], obj["key"]) == (event.topic, event.key)
        assert to_datum(STORE.current(event.schema_name), obj["value"]) == event.datum
    assert f"wrote {len(expected)} events" in result.stderr


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every record of `topic` up to its current end, partition by partition in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-sample-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = {p for p, end in ends.items() if end > 0}
        messages: list[Message] = []
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
            offset = message.offset()
            assert offset is not None
            if offset + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
        assert not pending, f"{topic}: partitions {pending} not read to the end"
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def by_key(events: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """Event ids per (topic, key), in order: what Kafka promises to keep."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for topic, key, event_id in events:
        grouped[topic, key].append(event_id)
    return grouped


def test_cli_kafka_publishes_every_event(kafka_broker: Any, topic_prefix: str) -> None:
    settings = Settings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        topic_prefix=topic_prefix,
        partitions=3,
    )
    catalog = TopicCatalog.from_settings(settings)
    assert ensure_topics(settings.confluent_config(), catalog).ok
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
    result = run_cli(["sample", "--format", "kafka", "--orders", "40", "--seed", "5"], env)
    assert result.exit_code == 0, result.output
    match = re.search(r"published (\d+) events to (.+) in", result.stdout)
    assert match, result.output
    reported = int(match.group(1))
    assert match.group(2) == ", ".join(catalog.physical(name) for name in INPUTS)

    expected = list(generate(5, 40, CATALOGUE, DEFAULT_START))
    codec = Codec(STORE)
    seen: list[tuple[str, str, str]] = []
    decoded: dict[str, dict[str, Any]] = {}
    for name in INPUTS:
        for message in read_topic(kafka_broker.bootstrap_servers, catalog.physical(name)):
            schema = spec(name).value_schema
            datum = codec.decode(message.value(), expected=schema).datum
            key = message.key()
            assert key is not None
            seen.append((name, key.decode(), datum["event_id"]))
            decoded[datum["event_id"]] = datum
    assert len(seen) == reported == len(expected)
    assert decoded == {e.datum["event_id"]: e.datum for e in expected}
    assert by_key(seen) == by_key([(e.topic, e.key, e.datum["event_id"]) for e in expected])


def test_cli_kafka_fails_when_the_broker_refuses_events(
    kafka_broker: Any, topic_prefix: str
) -> None:
    catalog = TopicCatalog(topic_prefix, 1, {}, 1)
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    # Orders are larger than 200 bytes, so the broker rejects every one; the rest go through.
    limits = {ORDERS: {"max.message.bytes": "200"}}
    futures = admin.create_topics(
        [NewTopic(catalog.physical(n), 1, 1, config=limits.get(n, {})) for n in INPUTS]
    )
    for future in futures.values():
        future.result(timeout=30)
    wait_for(
        lambda: all(catalog.physical(n) in admin.list_topics(timeout=5).topics for n in INPUTS),
        timeout=30,
        what="the new topics in the cluster metadata",
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
    result = run_cli(["sample", "--orders", "5", "--seed", "2"], env)
    assert result.exit_code == 1
    assert re.search(r"published \d+ events; \d+ failed", result.stderr)
    assert "were not confirmed by the broker" in result.stderr
    assert catalog.physical(ORDERS) in result.stderr


def test_cli_kafka_needs_the_topics(kafka_broker: Any, topic_prefix: str) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
    result = run_cli(["sample", "--orders", "1"], env)
    assert result.exit_code == 1
    assert "do not exist; run `erpbridge topics create`" in result.stderr


def test_kafka_publish_sample_stops_when_asked(kafka_broker: Any, topic_prefix: str) -> None:
    settings = Settings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers, topic_prefix=topic_prefix
    )
    catalog = TopicCatalog.from_settings(settings)
    assert ensure_topics(settings.confluent_config(), catalog).ok
    stop = threading.Event()
    counts: list[int] = []

    def progress(published: int) -> None:
        counts.append(published)
        if published >= 30:
            stop.set()

    published = publish_sample(
        settings, seed=9, orders=200, rate=200.0, progress=progress, stop=stop
    )
    total = len(list(generate(9, 200, CATALOGUE, DEFAULT_START)))
    assert 30 <= published < total
    assert counts == sorted(counts) and counts[-1] == published
    on_topics = sum(
        len(read_topic(kafka_broker.bootstrap_servers, catalog.physical(n))) for n in INPUTS
    )
    assert on_topics == published

"""The storefront sink on the session broker against the WooCommerce double (which enforces
WooCommerce's argument schemas and its 100-item batch limit): availability in, stock levels
set, push markers and results out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.contracts import deadletter
from streams.contracts.topics import (
    AVAILABILITY,
    STOCK_PUSHES,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.storefront.flow import (
    availability,
    dead_letters,
    drain,
    new_sink,
    produce,
    sink_settings,
)
from tests.connectors.webhooks.doubles import WOO_KEY, WOO_SECRET, Double, woocommerce_admin
from tests.streams.topology.agents.pipeline import read_all
from tests.support import wait_for


@pytest.fixture
def shop() -> Iterator[Double]:
    with woocommerce_admin() as double:
        for product_id, sku in ((11, "SKU-A"), (12, "SKU-B")):
            double.products[product_id] = {"id": product_id, "sku": sku, "manage_stock": False}
        yield double


def _settings(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double, token: str
) -> Settings:
    route = WebhookRoute(
        provider="woocommerce",
        warehouses={"default": "WH-1"},
        admin_url=shop.url,
        push_stock=True,
        stock_buffer=1,
        stock_buffers={"SKU-B": 0},
    )
    return sink_settings(kafka_broker, topic_prefix, tmp_path, {"shop": route}, {"shop": token})


def test_the_latest_level_less_the_buffer_is_set_once_with_its_marker_and_result(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop, f"{WOO_KEY}:{WOO_SECRET}")
    sink = new_sink(settings)
    produce(
        settings,
        [
            ("SKU-A", availability("SKU-A", 5)),
            ("SKU-B", availability("SKU-B", 3)),
            ("SKU-A", availability("SKU-A", 7)),  # newer: the one the shop gets
            ("SKU-C", availability("SKU-C", 2)),  # the shop sells no SKU-C
            ("SKU-X", b"not avro"),
        ],
    )
    catalog = TopicCatalog.from_settings(settings)
    sink.start()
    try:
        results = drain(sink, settings, 3)

        def dead_letter() -> list[Any] | None:
            # The bad record may come in a batch after the others.
            sink.poll(timeout=0.5)
            return read_all(settings, catalog.physical(dead_letter_of(AVAILABILITY))) or None

        (letter,) = wait_for(dead_letter, timeout=60, what="the dead letter")
    finally:
        sink.close()

    assert shop.products[11]["stock_quantity"] == 6  # 7 less the route's buffer of 1
    assert shop.products[12]["stock_quantity"] == 3  # SKU-B's own buffer: 0
    assert shop.products[11]["manage_stock"] is True
    batches = [body["update"] for method, path, body in shop.requests if method == "POST"]
    # SKU-A set once: its two records (one partition, one read) coalesced into the newer.
    updates = sorted((u["id"], u["stock_quantity"]) for batch in batches for u in batch)
    assert updates == [(11, 6), (12, 3)]
    assert shop.refused == []
    by_sku = {r["sku"]: r for r in results}
    assert {sku: r["status"] for sku, r in by_sku.items()} == {
        "SKU-A": "SET",
        "SKU-B": "SET",
        "SKU-C": "UNKNOWN_SKU",
    }
    assert by_sku["SKU-A"]["quantity"] == 6 and by_sku["SKU-A"]["route"] == "shop"
    markers = {
        m.key().decode(): json.loads(m.value())["quantity"]  # type: ignore[union-attr]
        for m in read_all(settings, catalog.physical(STOCK_PUSHES))
    }
    assert markers == {"SKU-A@WH-1": 6, "SKU-B@WH-1": 3, "SKU-C@WH-1": 1}
    assert deadletter.describe(letter.headers() or [])[deadletter.REASON] == "unknown-framing"


def test_a_level_already_set_is_not_pushed_again(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop, f"{WOO_KEY}:{WOO_SECRET}")
    sink = new_sink(settings)
    produce(settings, [("SKU-A", availability("SKU-A", 4))])
    sink.start()
    try:
        drain(sink, settings, 1)
        # Reserved elsewhere and released: the same level again asks nothing of the shop.
        produce(settings, [("SKU-A", availability("SKU-A", 4))])
        wait_for(lambda: sink.poll(timeout=0.5).records, timeout=30, what="the repeat read")
    finally:
        sink.close()
    assert len([r for r in shop.requests if r[0] == "POST"]) == 1


def test_a_shop_that_is_down_is_retried_and_one_that_refuses_fails_with_its_words(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop, f"{WOO_KEY}:{WOO_SECRET}")
    shop.failing = True

    def wait(seconds: float) -> None:
        shop.failing = False  # back after the first back-off

    sink = new_sink(settings, sleep=wait)
    produce(settings, [("SKU-B", availability("SKU-B", 9))])
    sink.start()
    try:
        (result,) = drain(sink, settings, 1)
    finally:
        sink.close()
    assert (result["status"], result["attempts"]) == ("SET", 2)
    assert shop.products[12]["stock_quantity"] == 9

    wrong = _settings(kafka_broker, topic_prefix + "wrong-", tmp_path, shop, "ck_wrong:cs")
    sink = new_sink(wrong)
    produce(wrong, [("SKU-B", availability("SKU-B", 2))])
    sink.start()
    try:
        (refused,) = drain(sink, wrong, 1)
    finally:
        sink.close()
    assert (refused["status"], refused["permanent"]) == ("FAILED", True)
    assert "401" in refused["message"] and "woocommerce_rest_cannot_view" in refused["message"]
    assert shop.products[12]["stock_quantity"] == 9
    [(key, reason, error)] = dead_letters(wrong)
    assert (key, reason) == ("SKU-B", "storefront-refused")
    assert "route shop refused 2 of SKU-B" in error and "woocommerce_rest_cannot_view" in error
    assert dead_letters(settings) == []  # the retried one was set: nothing lost

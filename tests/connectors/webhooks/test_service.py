"""The webhooks service over real HTTP on loopback and the session broker: what lands on
the input topics, what is refused and why, what waits for the broker."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from connectors.webhooks.service import WebhookService
from streams.contracts.jsonlines import to_datum
from streams.contracts.stock_pushes import Push
from streams.contracts.topics import (
    CUSTOMERS,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    STOCK_PUSHES,
    WEBHOOKS_DLQ,
    TopicCatalog,
    spec,
)
from streams.local.kafka import Broker
from streams.ops.metrics import WEBHOOK_METRICS, exported_metric_names
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.webhooks.adyen.test_mapping import AUTHORISED
from tests.connectors.webhooks.adyen.test_settlement import AT as SETTLEMENT_AT
from tests.connectors.webhooks.adyen.test_settlement import FILE as SETTLEMENT_FILE
from tests.connectors.webhooks.adyen.test_settlement import REPORT as SETTLEMENT_REPORT
from tests.connectors.webhooks.adyen.test_settlement import SETTLED as SETTLEMENTS
from tests.connectors.webhooks.doubles import (
    ADYEN_REPORT_PASSWORD,
    ADYEN_REPORT_USER,
    STRIPE_KEY,
    adyen_reports,
    stripe_api,
)
from tests.connectors.webhooks.hooks import (
    SHOPIFY_SECRETS,
    STRIPE_SECRETS,
    Hooks,
    b64_hmac,
    dead_letters,
    stored,
)
from tests.connectors.webhooks.shopify.test_mapping import (
    BOB_ACCOUNT,
    ORDER_1001,
    ORDER_1001_EVENT_ID,
    _customer_1001,
)
from tests.connectors.webhooks.stripe.test_mapping import (
    CAPTURED,
    SETTLED,
    captured_intent,
    settled_transactions,
)
from tests.connectors.webhooks.vendor import (
    adyen,
    adyen_notification,
    shopify,
    stripe,
    stripe_event,
    woocommerce,
)
from tests.connectors.webhooks.woocommerce.test_mapping import ORDER_727
from tests.support import STORE, RunningService, wait_for


def datum(record: dict[str, Any], topic: str) -> tuple[str, dict[str, Any]]:
    """(key, codec datum) of a hand-written friendly record."""
    schema = spec(topic).value_schema
    assert schema is not None
    key = record["sku"] if topic == INVENTORY else record["order_id"]
    return key, to_datum(STORE.current(schema), record)


def by_key(records: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(records, key=lambda r: (r[0], r[1]["event_id"]))


def test_each_providers_sample_lands_on_its_topic_as_written_by_hand(
    hooks: Hooks, webhook_settings: Settings, webhook_topics: TopicCatalog
) -> None:
    order = hooks.shopify("orders/create", shopify("order.json"), ORDER_1001_EVENT_ID)
    woo = hooks.woocommerce("order.created", woocommerce("_orders.md", "## Retrieve an order ##"))
    captured = hooks.stripe(captured_intent())
    authorised = hooks.adyen(adyen_notification(adyen("colon_notification.json")))
    assert [r.status_code for r in (order, woo, captured, authorised)] == [200] * 4
    assert authorised.text == "[accepted]"  # what Adyen wants, or it re-sends

    assert by_key(stored(webhook_settings, webhook_topics, ORDERS)) == by_key(
        [datum(ORDER_1001, ORDERS), datum(ORDER_727, ORDERS)]
    )
    assert by_key(stored(webhook_settings, webhook_topics, PAYMENTS)) == by_key(
        [datum(CAPTURED, PAYMENTS), datum(AUTHORISED, PAYMENTS)]
    )


def _published(settings: Settings, topics: TopicCatalog) -> int:
    return sum(len(stored(settings, topics, t)) for t in (ORDERS, PAYMENTS, INVENTORY))


def test_wrong_missing_expired_and_rotated_signatures(
    hooks: Hooks,
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    order = shopify("order.json")
    assert hooks.shopify("orders/create", order, secret="not-the-secret").status_code == 401
    unsigned = hooks.post("/webhooks/shopify/main", b"{}", {"X-Shopify-Topic": "orders/create"})
    assert unsigned.status_code == 401
    assert hooks.stripe(captured_intent(), secret="whsec_wrong").status_code == 401
    expired = hooks.stripe(captured_intent(), at=time.time() - 301)
    assert expired.status_code == 401
    forged = adyen("colon_notification.json")
    forged["amount"]["value"] = 99999
    assert hooks.adyen(adyen_notification(forged)).status_code == 401
    assert _published(webhook_settings, webhook_topics) == 0

    # During a rotation the previous secret still verifies.
    assert hooks.shopify("orders/create", order, secret=SHOPIFY_SECRETS[1]).status_code == 200
    assert hooks.stripe(captured_intent(), secret=STRIPE_SECRETS[1]).status_code == 200
    assert _published(webhook_settings, webhook_topics) == 2

    metrics = hooks.client.get("/metrics").text
    assert (
        'erpbridge_webhooks_requests_total{outcome="unauthentic",provider="shopify",route="main"} 2.0'
        in metrics
    )
    assert 'outcome="unauthentic",provider="stripe",route="payments"} 2.0' in metrics
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused a request" in logged
    for secret_or_body in ("not-the-secret", "whsec_wrong", "bob.norman", "Chestnut"):
        assert secret_or_body not in logged


def test_verified_but_unmappable_goes_to_the_dead_letters_and_unknown_topics_are_ignored(
    hooks: Hooks, webhook_settings: Settings, webhook_topics: TopicCatalog
) -> None:
    # Shopify's sample fulfilment names no location: no warehouse is guessed.
    answer = hooks.shopify("fulfillments/create", shopify("fulfillment.json"), "evt-fulfil-1")
    assert answer.status_code == 200
    (letter,) = dead_letters(webhook_settings, webhook_topics, WEBHOOKS_DLQ)
    assert letter["erpbridge.dlq.reason"] == "missing-location"
    assert letter["erpbridge.dlq.error"] == "fulfillment 255858046 names no location"
    assert letter["erpbridge.dlq.source.topic"] == "/webhooks/shopify/main"
    assert letter["headers"]["X-Shopify-Topic"] == b"fulfillments/create"
    assert letter["headers"]["X-Shopify-Event-Id"] == b"evt-fulfil-1"
    assert b'"tracking_number": "1Z2345"' in letter["body"]

    assert hooks.shopify("products/update", {"id": 1}).status_code == 200
    assert hooks.stripe({"id": "evt_x", "type": "customer.created", "created": 1,
                         "data": {"object": {}}}).status_code == 200  # fmt: skip
    assert _published(webhook_settings, webhook_topics) == 0
    metrics = hooks.client.get("/metrics").text
    assert 'outcome="ignored",provider="shopify",route="main"} 1.0' in metrics
    assert 'outcome="dead_lettered",provider="shopify",route="main"} 1.0' in metrics


def test_oversized_non_json_wrong_type_and_unknown_routes(
    webhook_settings: Settings, start_webhooks: Callable[..., RunningService[WebhookService]]
) -> None:
    start_webhooks(webhook_max_body_bytes=4096)
    hooks = Hooks(webhook_settings.webhook_web_port)
    big = hooks.shopify("orders/create", {"note": "x" * 5000})
    assert (big.status_code, big.json()) == (413, {"error": "the body is larger than 4096 bytes"})

    def signed(body: bytes, content_type: str) -> Any:
        headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Event-Id": "e",
                   "X-Shopify-Hmac-Sha256": b64_hmac(SHOPIFY_SECRETS[0], body)}  # fmt: skip
        return hooks.post("/webhooks/shopify/main", body, headers, content_type)

    not_json = signed(b"order=1001", "application/json")
    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("the body is not JSON")
    wrong_type = signed(b"{}", "text/xml")
    assert wrong_type.status_code == 415
    assert wrong_type.json() == {"error": "the content type is text/xml, not application/json"}
    no_topic = hooks.post(
        "/webhooks/shopify/main", b"{}",
        {"X-Shopify-Hmac-Sha256": b64_hmac(SHOPIFY_SECRETS[0], b"{}"), "X-Shopify-Event-Id": "e"},
    )  # fmt: skip
    assert (no_topic.status_code, no_topic.json()) == (
        400, {"error": "the X-Shopify-Topic header is missing"})  # fmt: skip
    assert hooks.shopify("orders/create", {}, "e").status_code == 200  # dead-lettered
    assert hooks.post("/webhooks/shopify/nowhere", b"{}", {}).status_code == 404
    # WooCommerce tries a new webhook's URL with an unsigned form post.
    ping = hooks.post("/webhooks/woocommerce/woo", b"webhook_id=12", {},
                      "application/x-www-form-urlencoded")  # fmt: skip
    assert ping.status_code == 200


def test_health_and_metrics(hooks: Hooks) -> None:
    ready = wait_for(
        lambda: hooks.client.get("/readyz").status_code == 200, timeout=30, what="/readyz 200"
    )
    assert ready
    checks = hooks.client.get("/readyz").json()["checks"]
    assert set(checks) == {"routes", "broker", "stock_pushes"}
    assert hooks.client.get("/livez").status_code == 200
    assert hooks.client.get("/healthz").status_code == 200
    hooks.shopify("products/update", {"id": 1})
    families = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for name in re.findall(
            r"^(erpbridge_\w+?)(?:\{| )", hooks.client.get("/metrics").text, re.M
        )
    }
    # What the dashboard and the alert rules may use (streams.ops.metrics) is what it exports.
    assert {"erpbridge_webhooks_requests_total", "erpbridge_webhooks_request_seconds"} <= families
    assert families <= set(WEBHOOK_METRICS)
    assert set(WEBHOOK_METRICS) <= exported_metric_names()


def test_a_stock_level_echoing_erpbridges_own_push_is_not_ingested(
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
) -> None:
    producer = Producer(webhook_settings.producer_config())
    push = Push("IPOD2008GREEN", "WH-EAST", 6, pushed_ms=int(time.time() * 1000))
    producer.produce(webhook_topics.physical(STOCK_PUSHES), key=push.key, value=push.to_json())
    assert producer.flush(30) == 0
    start_webhooks()
    hooks = Hooks(webhook_settings.webhook_web_port)
    wait_for(lambda: hooks.client.get("/readyz").status_code == 200, timeout=30, what="ready")

    level = shopify("inventory_level.json")  # available 6 at 905684977 (WH-EAST)
    assert hooks.shopify("inventory_levels/update", level).status_code == 200
    assert stored(webhook_settings, webhook_topics, INVENTORY) == []

    sold = level | {"available": 5, "updated_at": "2018-05-07T15:52:00-04:00"}
    assert hooks.shopify("inventory_levels/update", sold, "evt-sold").status_code == 200
    ((sku, record),) = stored(webhook_settings, webhook_topics, INVENTORY)
    assert (sku, record["event_id"], record["event"][1]["on_hand"]) == (
        "IPOD2008GREEN", "shopify:evt-sold", 5)  # fmt: skip


def test_an_older_delivery_is_counted_as_reordered(hooks: Hooks) -> None:
    level = shopify("inventory_level.json") | {"available": 7}
    older = level | {"available": 9, "updated_at": "2018-05-07T15:00:00-04:00"}
    assert hooks.shopify("inventory_levels/update", level, "evt-new").status_code == 200
    assert hooks.shopify("inventory_levels/update", older, "evt-old").status_code == 200
    metrics = hooks.client.get("/metrics").text
    assert 'erpbridge_webhooks_reordered_total{provider="shopify",route="main"} 1.0' in metrics


def test_a_broker_that_cannot_confirm_gets_503_and_the_retry_lands_once(
    kafka_broker: Broker,
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
) -> None:
    assert kafka_broker.restart is not None, (
        "restarting the broker needs the one this session runs (KAFKA_BOOTSTRAP_SERVERS unset)"
    )
    start_webhooks(webhook_ack_timeout_seconds=1.0)
    hooks = Hooks(webhook_settings.webhook_web_port)
    order = shopify("order.json")
    answers: list[int] = []

    def deliver() -> int:
        # Shopify re-sends the same event (same X-Shopify-Event-Id) until it gets a 200.
        answers.append(hooks.shopify("orders/create", order, ORDER_1001_EVENT_ID).status_code)
        return answers[-1]

    restarted = threading.Thread(target=kafka_broker.restart)
    restarted.start()
    try:
        wait_for(lambda: deliver() == 503, timeout=60, what="a 503 while the broker is down")
    finally:
        restarted.join()
    wait_for(lambda: deliver() == 200, timeout=60, what="a 200 once the broker is back")
    records = stored(webhook_settings, webhook_topics, ORDERS)
    # Each 200 is a record on the broker. A 503 is one the broker did not confirm in time,
    # which may still have been written if it was in flight as time ran out (Kafka cannot
    # take it back): every copy carries the provider's event id, so the topology keeps one.
    assert answers.count(200) <= len(records) <= len(answers), answers
    assert {r["event_id"] for _, r in records} == {ORDER_1001["event_id"]}
    metrics = hooks.client.get("/metrics").text
    assert 'outcome="unavailable",provider="shopify",route="main"}' in metrics


def test_a_paid_payout_settles_the_charges_read_from_stripes_api(
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
) -> None:
    with stripe_api() as api:
        api.transactions["po_1Pgc79B7WZ01zgkWu1KToYf4"] = settled_transactions()
        routes = {
            **webhook_settings.webhook_routes,
            "payments": WebhookRoute(provider="stripe", admin_url=api.url),
        }
        start_webhooks(
            webhook_routes=routes,
            webhook_admin_tokens=SecretStr(json.dumps({"payments": STRIPE_KEY})),
        )
        hooks = Hooks(webhook_settings.webhook_web_port)
        payout = stripe_event("payout.paid", stripe("payout"))
        api.failing = True  # Stripe's API cannot list them now: Stripe re-sends the event
        assert hooks.stripe(payout).status_code == 503
        assert stored(webhook_settings, webhook_topics, PAYMENTS) == []
        api.failing = False
        assert hooks.stripe(payout).status_code == 200
    assert by_key(stored(webhook_settings, webhook_topics, PAYMENTS)) == by_key(
        [datum(record, PAYMENTS) for record in SETTLED]
    )


def test_a_paid_payout_without_an_api_key_is_dead_lettered(
    hooks: Hooks, webhook_settings: Settings, webhook_topics: TopicCatalog
) -> None:
    assert hooks.stripe(stripe_event("payout.paid", stripe("payout"))).status_code == 200
    (letter,) = dead_letters(webhook_settings, webhook_topics, WEBHOOKS_DLQ)
    assert letter["erpbridge.dlq.reason"] == "no-api-key"


def test_a_settlement_report_settles_each_payment_with_its_fees(
    webhook_settings: Settings,
    webhook_topics: TopicCatalog,
    start_webhooks: Callable[..., RunningService[WebhookService]],
) -> None:
    folder_path = "/reports/download/MerchantAccount/ErpbridgeShopEU"
    # As Adyen announces a report (its documented example's fields), without a signature.
    announced = adyen_notification({
        "amount": {"currency": "EUR", "value": 0}, "eventCode": "REPORT_AVAILABLE",
        "eventDate": SETTLEMENT_AT, "merchantAccountCode": "ErpbridgeShopEU",
        "merchantReference": "", "pspReference": SETTLEMENT_FILE,
        "reason": f"https://ca-test.adyen.com{folder_path}/{SETTLEMENT_FILE}", "success": "true",
    })  # fmt: skip
    with adyen_reports() as api:
        api.reports[f"{folder_path}/{SETTLEMENT_FILE}"] = SETTLEMENT_REPORT
        routes = {
            **webhook_settings.webhook_routes,
            "eu": WebhookRoute(provider="adyen", admin_url=api.url + folder_path),
        }
        token = f"{ADYEN_REPORT_USER}:{ADYEN_REPORT_PASSWORD}"
        start_webhooks(
            webhook_routes=routes, webhook_admin_tokens=SecretStr(json.dumps({"eu": token}))
        )
        hooks = Hooks(webhook_settings.webhook_web_port)
        api.failing = True  # the download fails now: Adyen re-sends the notification
        assert hooks.adyen(announced).status_code == 503
        api.failing = False
        answer = hooks.adyen(announced)
        assert (answer.status_code, answer.text) == (200, "[accepted]")
        # A signature, when there is one, must verify.
        item = announced["notificationItems"][0]["NotificationRequestItem"]
        forged = adyen_notification(item | {"additionalData": {"hmacSignature": "bm90IGl0"}})
        assert hooks.adyen(forged).status_code == 401
    assert by_key(stored(webhook_settings, webhook_topics, PAYMENTS)) == by_key(
        [datum(record, PAYMENTS) for record in SETTLEMENTS]
    )


def test_a_customer_account_lands_on_commerce_customers(
    hooks: Hooks, webhook_settings: Settings, webhook_topics: TopicCatalog
) -> None:
    """The one-branch union of commerce.customers comes bare, without a "type"."""
    answer = hooks.shopify("customers/create", _customer_1001(), "evt-customer")
    assert answer.status_code == 200, answer.text
    ((key, stored_datum),) = stored(webhook_settings, webhook_topics, CUSTOMERS)
    assert key == "main:207119551" == stored_datum["account"]
    assert stored_datum["event"]["account_id"] == "207119551"
    assert stored_datum["event"]["email"] == BOB_ACCOUNT["event"]["email"]

"""`erpbridge payouts sync` against a double of Shopify's Admin GraphQL API (each query
validated and run against Shopify's published schema) and the session broker: a paid
payout's charges as PaymentSettled events written by hand, runs that resume where the last
one stopped, and a run that fails moving nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from streams.contracts.topics import PAYMENTS, PAYOUT_WATERMARKS, TopicCatalog
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.webhooks.doubles import SHOPIFY_TOKEN, Double, shopify_admin
from tests.connectors.webhooks.hooks import stored
from tests.connectors.webhooks.test_service import by_key, datum
from tests.streams.topology.agents.pipeline import read_all
from tests.support import run, settings_env

NOW = datetime.now(UTC).replace(microsecond=0)


def _at(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def _money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currencyCode": "USD"}


def _charge(number: int, order: int, source: int, gross: str, fee: str, net: str) -> dict[str, Any]:
    return {"id": f"gid://shopify/ShopifyPaymentsBalanceTransaction/{number}", "type": "CHARGE",
            "amount": _money(gross), "fee": _money(fee), "net": _money(net),
            "sourceOrderTransactionId": source,
            "associatedOrder": {"id": f"gid://shopify/Order/{order}"}}  # fmt: skip


def _transaction(number: int, kind: str, parent: int | None = None) -> dict[str, Any]:
    return {"__typename": "OrderTransaction", "id": f"gid://shopify/OrderTransaction/{number}",
            "kind": kind,
            "parentTransaction": None if parent is None else {
                "id": f"gid://shopify/OrderTransaction/{parent}"}}  # fmt: skip


def _settled(payout: str, issued_at: str, balance: int, order: str, payment: str,
             gross: str, fee: str, net: str) -> dict[str, Any]:  # fmt: skip
    return {"event_id": f"shopify:balance-transaction:{balance}", "occurred_at": issued_at,
            "source": "shopify", "order_id": order,
            "event": {"type": "PaymentSettled", "payout_id": f"shopify_payments:{payout}",
                      "payment_id": payment, "gateway": "shopify_payments", "gross": gross,
                      "fee": fee, "net": net, "currency": "USD"}}  # fmt: skip


@pytest.fixture
def shop() -> Iterator[Double]:
    with shopify_admin() as double:
        # A paid payout of two charges: a sale, and a capture of an authorisation (the
        # payment webhooks name by the authorisation); a refund and an adjustment beside.
        double.payouts.append(
            {"legacyResourceId": "623721858", "issuedAt": _at(5), "status": "PAID"}
        )
        double.balance["623721858"] = [
            _charge(1006917261, 450789469, 389404469, "409.94", "12.19", "397.75"),
            _charge(1006917262, 450789470, 389404472, "59.00", "2.01", "56.99"),
            {**_charge(1006917263, 450789469, 389404473, "-3.45", "0.00", "-3.45"), "type": "REFUND"},
            {**_charge(1006917264, 450789469, 389404469, "-50.00", "0.00", "-50.00"),
             "type": "ADJUSTMENT", "associatedOrder": None},
        ]  # fmt: skip
        double.order_transactions.update({
            "gid://shopify/OrderTransaction/389404469": _transaction(389404469, "SALE"),
            "gid://shopify/OrderTransaction/389404472": _transaction(389404472, "CAPTURE", 389404471),
        })  # fmt: skip
        # Not paid yet: not read.
        double.payouts.append({"legacyResourceId": "623721859", "issuedAt": _at(1), "status": "IN_TRANSIT"})  # fmt: skip
        yield double


@pytest.fixture
def payout_settings(
    webhook_settings: Settings, webhook_topics: TopicCatalog, shop: Double
) -> Settings:
    return webhook_settings.model_copy(
        update={
            "webhook_routes": {
                "main": WebhookRoute(provider="shopify", admin_url=shop.url),
                "eu": WebhookRoute(provider="adyen"),
            },
            "webhook_secrets": SecretStr(json.dumps({"main": ["s"], "eu": ["AB"]})),
            "webhook_admin_tokens": SecretStr(json.dumps({"main": SHOPIFY_TOKEN})),
        }
    )


def _sync(settings: Settings, kafka_broker: Any, *options: str) -> Any:
    env = {
        **settings_env(settings),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
    return run(["payouts", "sync", *options], env)


def test_a_paid_payout_settles_each_charge_once_and_the_next_run_starts_after_it(
    kafka_broker: Any, payout_settings: Settings, shop: Double
) -> None:
    topics = TopicCatalog.from_settings(payout_settings)
    first = _sync(payout_settings, kafka_broker)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        f"main: published 2 settlements of 1 payout; the next run reads from {_at(5)}"
    ]
    expected = [
        _settled("623721858", _at(5), 1006917261, "450789469", "389404469", "409.94", "12.19", "397.75"),
        _settled("623721858", _at(5), 1006917262, "450789470", "389404471", "59.00", "2.01", "56.99"),
    ]  # fmt: skip
    assert by_key(stored(payout_settings, topics, PAYMENTS)) == by_key(
        [datum(record, PAYMENTS) for record in expected]
    )

    # Nothing new: nothing published. Then the next payout is paid: only it is read.
    again = _sync(payout_settings, kafka_broker)
    assert again.stdout.splitlines() == [
        f"main: published 0 settlements of 0 payouts; the next run reads from {_at(5)}"
    ]
    shop.payouts[1]["status"] = "PAID"
    shop.balance["623721859"] = [
        _charge(1006917270, 450789471, 389404480, "20.00", "0.88", "19.12")
    ]
    shop.order_transactions["gid://shopify/OrderTransaction/389404480"] = _transaction(
        389404480, "SALE"
    )
    later = _sync(payout_settings, kafka_broker)
    assert later.stdout.splitlines() == [
        f"main: published 1 settlement of 1 payout; the next run reads from {_at(1)}"
    ]
    expected.append(
        _settled("623721859", _at(1), 1006917270, "450789471", "389404480", "20.00", "0.88", "19.12")
    )  # fmt: skip
    assert by_key(stored(payout_settings, topics, PAYMENTS)) == by_key(
        [datum(record, PAYMENTS) for record in expected]
    )
    watermarks = read_all(payout_settings, topics.physical(PAYOUT_WATERMARKS), timeout=30)
    assert json.loads(watermarks[-1].value()) == {"issued_at": _at(1), "payouts": ["623721859"]}
    # Every query Shopify got was valid for its schema.
    assert shop.refused == []


def test_a_run_that_cannot_read_or_map_a_payout_names_it_and_moves_nothing(
    kafka_broker: Any, payout_settings: Settings, shop: Double
) -> None:
    topics = TopicCatalog.from_settings(payout_settings)
    shop.failing = True
    down = _sync(payout_settings, kafka_broker)
    assert down.exit_code == 1
    assert "Error: main: " in down.stderr and "answered 503" in down.stderr

    shop.failing = False
    shop.balance["623721858"][0]["fee"] = _money("12.20")  # gross - fee is no longer net
    wrong = _sync(payout_settings, kafka_broker)
    assert wrong.exit_code == 1
    assert (
        "Error: main: settlement-mismatch: payout 623721858 balance transaction 1006917261: "
        "gross 409.94 less fee 12.20 is not net 397.75"
    ) in wrong.stderr
    assert stored(payout_settings, topics, PAYMENTS) == []
    assert read_all(payout_settings, topics.physical(PAYOUT_WATERMARKS), timeout=5) == []


def test_routes_that_cannot_be_read_are_refused(
    kafka_broker: Any, payout_settings: Settings
) -> None:
    unknown = _sync(payout_settings, kafka_broker, "--route", "eu")
    assert unknown.exit_code == 2
    assert "no Shopify route eu in ERPBRIDGE_WEBHOOK_ROUTES" in unknown.stderr
    without = payout_settings.model_copy(update={"webhook_admin_tokens": None})
    assert "no Shopify route has an admin_url" in _sync(without, kafka_broker).stderr

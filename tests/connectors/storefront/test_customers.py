"""The ERP's customers to a WooCommerce shop (the double, which checks every customer argument
against WooCommerce's API index and keeps emails unique): created, a shop account of the same
email adopted, found again by the ERP's id after its email changed, left alone when it holds
the ERP's figures already, skipped without an email, refused and dead-lettered when another
customer's account holds the email."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.storefront.customers import (
    CUSTOMER_TAG,
    MARK,
    TAG_LIMIT,
    Address,
    customer_tag,
    customers_of,
    marked_in,
    tagged_customer_id,
)
from streams.contracts.topics import ERP_CUSTOMERS
from streams.ops.settings import WebhookRoute
from tests.connectors.storefront.flow import (
    CODEC,
    PUSHED_CUSTOMERS,
    dead_letters,
    erp_customer,
    push_customers_twice,
    sink_settings,
    statuses,
)
from tests.connectors.webhooks.doubles import WOO_KEY, WOO_SECRET, Double, woocommerce_admin
from tests.support import wait_for


def _account(id_: int, email: str, name: str, mark: str | None = None) -> dict[str, Any]:
    meta = [] if mark is None else [{"id": 1, "key": MARK, "value": mark}]
    return {"id": id_, "email": email, "username": email.split("@")[0], "first_name": name,
            "last_name": "", "billing": {}, "shipping": {}, "meta_data": meta}  # fmt: skip


@pytest.fixture
def shop() -> Iterator[Double]:
    with woocommerce_admin() as double:
        # Registered in the shop before erpbridge knew the shop.
        double.customers[11] = _account(11, "ann@example.com", "Ann")
        # Another ERP customer's account.
        double.customers[12] = _account(12, "shared@example.com", "Bob", mark="CUST-BOB")
        yield double


def _mark(account: dict[str, Any]) -> list[str]:
    return [m["value"] for m in account["meta_data"] if m["key"] == MARK]


def test_the_erps_customers_are_kept_as_one_account_each(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    route = WebhookRoute(provider="woocommerce", admin_url=shop.url, push_customers=True)
    settings = sink_settings(kafka_broker, topic_prefix, tmp_path, {"woo": route},
                             {"woo": f"{WOO_KEY}:{WOO_SECRET}"})  # fmt: skip
    first, results = push_customers_twice(settings)

    # Per customer in the order answered (one key, one partition).
    assert statuses(results, "customer_id") == PUSHED_CUSTOMERS
    accounts = {c["id"]: c for c in shop.customers.values()}
    assert len(accounts) == 3  # one made, none for the rest
    (jane,) = [c for c in accounts.values() if _mark(c) == ["CUST-NEW"]]
    assert (jane["email"], jane["first_name"]) == ("jane.doe@example.com", "Jane Doe")
    assert jane["billing"] == {
        "first_name": "Jane Doe", "address_1": "2 Elm St", "city": "Springfield", "state": "IL",
        "postcode": "62701", "country": "US", "email": "jane.doe@example.com",
        "phone": "+1 555 0100",
    }  # fmt: skip
    assert jane["shipping"]["address_1"] == "2 Elm St"
    ann = accounts[11]
    assert (_mark(ann), ann["first_name"], ann["username"]) == (["CUST-ANN"], "Ann Smith", "ann")
    assert _mark(accounts[12]) == ["CUST-BOB"] and accounts[12]["first_name"] == "Bob"
    (failed,) = [r for r in first if r["status"] == "FAILED"]
    assert failed["permanent"] and "belongs to the ERP's customer CUST-BOB" in failed["message"]
    ((key, reason, error),) = wait_for(
        lambda: dead_letters(settings, ERP_CUSTOMERS), timeout=30, what="the dead letter"
    )
    assert (key, reason) == ("CUST-CLASH", "storefront-refused") and "route woo" in error
    (skipped,) = [r for r in first if r["status"] == "SKIPPED"]
    assert "no email" in skipped["message"]


def test_only_active_customers_go_to_the_routes_that_keep_customers() -> None:
    routes = {
        "medusa": WebhookRoute(provider="medusa", push_customers=True),
        "woo": WebhookRoute(provider="woocommerce", push_customers=True),
        "shop": WebhookRoute(provider="shopify", push_stock=True),
    }
    _, value = erp_customer("CUST-1", "Jane Doe", "jane@example.com")
    datum = CODEC.decode(value).datum
    pushed = customers_of("CUST-1", datum, routes)
    assert [(c.route, c.key, c.email) for c in pushed] == [
        ("medusa", "medusa:CUST-1", "jane@example.com"),
        ("woo", "woo:CUST-1", "jane@example.com"),
    ]
    assert pushed[0].address == Address(None, "1 Main St", "Springfield", "IL", "62701", "US")
    # The account, its logins and its orders are the customer's: nothing is pushed.
    assert customers_of("CUST-1", {**datum, "active": False}, routes) == []
    assert customers_of("CUST-1", None, routes) == []


def test_a_shopify_accounts_tags_give_back_the_erp_customer_id_they_hold() -> None:
    assert customer_tag("CUST-7") == "erpbridge-customer-CUST-7"
    assert tagged_customer_id(["vip", customer_tag("CUST-7")]) == "CUST-7"
    assert tagged_customer_id(["vip", "erpbridge-FUL-1"]) is None
    assert tagged_customer_id([]) is None
    # Too long for a tag: hashed, and the hash is what comes back.
    long_id = "CUSTOMER-" + "9" * TAG_LIMIT
    suffix = tagged_customer_id(["vip", customer_tag(long_id)])
    assert suffix is not None and long_id not in suffix
    assert customer_tag(long_id) == CUSTOMER_TAG + suffix


def test_a_woocommerce_accounts_meta_data_gives_its_mark() -> None:
    assert marked_in([{"id": 1, "key": "other", "value": "x"}, {"key": MARK, "value": 42}]) == "42"
    assert marked_in([{"key": MARK, "value": ""}]) is None
    assert marked_in([]) is None

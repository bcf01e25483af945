"""Shopify Payments balance transactions (the Admin GraphQL API's shape) to PaymentSettled
events: which transactions settle a payment, and how the payment is named."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.webhooks.inputs import Unmappable
from connectors.webhooks.shopify.payouts import (
    Payout,
    charges,
    paid_since,
    payments_by_source,
    payouts,
    settlements,
    source_ids,
)

PAYOUT = Payout("623721858", "2026-12-01T08:00:00Z")


def _charge(**changed: Any) -> dict[str, Any]:
    usd = "USD"
    return {"id": "gid://shopify/ShopifyPaymentsBalanceTransaction/1006917261", "type": "CHARGE",
            "amount": {"amount": "409.94", "currencyCode": usd},
            "fee": {"amount": "12.19", "currencyCode": usd},
            "net": {"amount": "397.75", "currencyCode": usd},
            "sourceOrderTransactionId": "389404472",
            "associatedOrder": {"id": "gid://shopify/Order/450789469"}} | changed  # fmt: skip


def test_only_paid_payouts_and_order_charges_count() -> None:
    assert payouts([
        {"legacyResourceId": 1, "issuedAt": "2026-12-01T08:00:00Z", "status": "PAID"},
        {"legacyResourceId": 2, "issuedAt": "2026-12-02T08:00:00Z", "status": "SCHEDULED"},
    ]) == [Payout("1", "2026-12-01T08:00:00Z")]  # fmt: skip
    kept = _charge()
    assert charges([kept, _charge(type="REFUND"), _charge(associatedOrder=None)]) == [kept]
    assert paid_since("2026-12-01T08:00:00Z") == "status:paid issued_at:>='2026-12-01T08:00:00Z'"


def test_a_capture_settles_the_authorisation_webhooks_named_the_payment_by() -> None:
    assert source_ids([_charge(), _charge(sourceOrderTransactionId=None)]) == [
        "gid://shopify/OrderTransaction/389404472"
    ]
    payments = payments_by_source([
        {"id": "gid://shopify/OrderTransaction/389404472", "kind": "CAPTURE",
         "parentTransaction": {"id": "gid://shopify/OrderTransaction/389404471"}},
        {"id": "gid://shopify/OrderTransaction/389404469", "kind": "SALE",
         "parentTransaction": None},
        None,  # a transaction the token may not read
    ])  # fmt: skip
    assert payments == {"389404472": "389404471", "389404469": "389404469"}
    (settled,) = settlements(PAYOUT, [_charge()], payments)
    assert (settled.key, settled.record["event"]["payment_id"]) == ("450789469", "389404471")


def test_figures_that_do_not_hold_together_are_named() -> None:
    payments = {"389404472": "389404471"}
    mixed = _charge(fee={"amount": "12.19", "currencyCode": "EUR"})
    with pytest.raises(Unmappable, match="amount, fee and net in \\['EUR', 'USD'\\]"):
        settlements(PAYOUT, [mixed], payments)
    with pytest.raises(Unmappable, match="names no order transaction Shopify knows"):
        settlements(PAYOUT, [_charge()], {})

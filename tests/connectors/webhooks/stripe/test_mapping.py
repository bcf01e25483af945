"""Stripe's own sample objects, in the event envelope webhooks deliver, to erpbridge's
payment events, written out by hand. The samples carry no metadata; a shop that sends its
payments through erpbridge puts the order id in the intent's (and refund's) metadata, as
these tests do where the event must be placed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from connectors.webhooks.inputs import UnknownTopic, Unmappable
from connectors.webhooks.references import References
from connectors.webhooks.stripe.mapping import inputs
from streams.contracts.topics import PAYMENTS
from tests.connectors.webhooks.vendor import assert_fits_schema, stripe, stripe_event

REFERENCES = References(order_reference="order_id")
ORDER = {"metadata": {"order_id": "450789469"}}
ENVELOPE = {"event_id": "stripe:evt_1Pgc76B7WZ01zgkWwyRHS12y",
            "occurred_at": "2009-02-13T23:31:30Z", "source": "stripe",
            "order_id": "450789469"}  # fmt: skip
INTENT = {"payment_id": "pi_1PgafyB7WZ01zgkWSjxsAJo3", "gateway": "stripe", "currency": "USD"}


def _one(event: dict[str, Any], references: References = REFERENCES) -> dict[str, Any]:
    (found,) = inputs(event, references)
    assert_fits_schema(found.record, found.topic)
    assert (found.topic, found.key) == (PAYMENTS, found.record["order_id"])
    return found.record


def test_authorised_intent_in_cents() -> None:
    intent = stripe("payment_intent") | ORDER | {"amount_capturable": 1099}
    assert _one(stripe_event("payment_intent.amount_capturable_updated", intent)) == {
        **ENVELOPE,
        "event": {"type": "PaymentAuthorized", **INTENT, "amount": "10.99", "method": "card"},
    }


CAPTURED = {
    **ENVELOPE,
    "event": {"type": "PaymentCaptured", **INTENT, "amount": "10.99"},
}
"""The sample intent, succeeded with 1099 cents received."""


def captured_intent() -> dict[str, Any]:
    intent = stripe("payment_intent") | ORDER | {"amount_received": 1099}
    return stripe_event("payment_intent.succeeded", intent)


def test_captured_intent() -> None:
    assert _one(captured_intent()) == CAPTURED


def test_failed_intent_names_the_error() -> None:
    # The sample's last_payment_error is {"type": "idempotency_error"}.
    intent = stripe("payment_intent") | ORDER
    assert _one(stripe_event("payment_intent.payment_failed", intent)) == {
        **ENVELOPE,
        "event": {"type": "PaymentFailed", **INTENT, "amount": "10.99",
                  "operation": "AUTHORIZE", "reason": "idempotency_error"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [("jpy", 1099, "1099"), ("usd", 1099, "10.99"), ("kwd", 1099, "1.099"), ("eur", 5, "0.05")],
)
def test_minor_units_follow_the_currency(currency: str, amount: int, expected: str) -> None:
    intent = stripe("payment_intent") | ORDER | {"currency": currency, "amount_received": amount}
    event = _one(stripe_event("payment_intent.succeeded", intent))["event"]
    assert (event["amount"], event["currency"]) == (expected, currency.upper())


def test_an_intent_without_the_order_reference_is_unmappable_naming_it() -> None:
    named = "payment intent pi_1PgafyB7WZ01zgkWSjxsAJo3 has no metadata.shop_order"
    with pytest.raises(Unmappable, match=re.escape(named)):
        inputs(
            stripe_event("payment_intent.succeeded", stripe("payment_intent")),
            References(order_reference="shop_order"),
        )


def test_succeeded_refund_of_a_charge() -> None:
    refund = stripe("refund") | ORDER
    assert _one(stripe_event("refund.created", refund)) == {
        **ENVELOPE,
        "event": {"type": "PaymentRefunded", "payment_id": "ch_1PgafuB7WZ01zgkWXYmPNZs8",
                  "gateway": "stripe", "refund_id": "re_1Pgc72B7WZ01zgkWqPvrRrPE",
                  "amount": "1.00", "currency": "USD"},
    }  # fmt: skip


def test_failed_refund_and_pending_refund() -> None:
    failed = (
        stripe("refund")
        | ORDER
        | {"status": "failed", "failure_reason": "expired_or_canceled_card"}
    )
    assert _one(stripe_event("refund.updated", failed))["event"] == {
        "type": "PaymentFailed", "payment_id": "ch_1PgafuB7WZ01zgkWXYmPNZs8", "gateway": "stripe",
        "amount": "1.00", "currency": "USD", "operation": "REFUND",
        "reason": "expired_or_canceled_card",
    }  # fmt: skip
    pending = stripe("refund") | ORDER | {"status": "pending"}
    assert inputs(stripe_event("refund.created", pending), REFERENCES) == []


@pytest.mark.parametrize(
    ("kind", "resource"),
    [("charge.succeeded", "charge"), ("payout.created", "payout"), ("plan.created", "event")],
)
def test_charges_unpaid_payouts_and_others_are_not_ingested(kind: str, resource: str) -> None:
    with pytest.raises(UnknownTopic):
        inputs(stripe_event(kind, stripe(resource) | ORDER), REFERENCES)


def settled_transactions() -> list[dict[str, Any]]:
    """The payout's balance transactions as Stripe lists them (source expanded): the sample
    charge (1.00 USD, no fee) and the same charge again as a 409.94 payment with its 12.19
    fee; a refund, which settles no payment."""
    charge = stripe("charge") | ORDER
    sample = stripe("balance_transaction") | {"source": charge}
    with_fee = sample | {
        "id": "txn_fee",
        "amount": 40994,
        "fee": 1219,
        "net": 39775,
        "source": charge | {"payment_intent": "pi_1PgafyB7WZ01zgkWSjxsAJo3"},
    }
    refund = sample | {"id": "txn_refund", "type": "refund", "amount": -100, "net": -100,
                       "source": stripe("refund")}  # fmt: skip
    return [sample, with_fee, refund]


_SETTLED = {"type": "PaymentSettled", "payout_id": "po_1Pgc79B7WZ01zgkWu1KToYf4",
            "gateway": "stripe", "currency": "USD"}  # fmt: skip
SETTLED = [
    {**ENVELOPE, "event_id": "stripe:evt_1Pgc76B7WZ01zgkWwyRHS12y:txn_1PgaxNB7WZ01zgkWEV3TLf40",
     "event": {**_SETTLED, "payment_id": "ch_1PgafuB7WZ01zgkWXYmPNZs8",
               "gross": "1.00", "fee": "0.00", "net": "1.00"}},
    {**ENVELOPE, "event_id": "stripe:evt_1Pgc76B7WZ01zgkWwyRHS12y:txn_fee",
     "event": {**_SETTLED, "payment_id": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
               "gross": "409.94", "fee": "12.19", "net": "397.75"}},
]  # fmt: skip
"""The sample payout, paid, as the settlements of settled_transactions()' two charges."""


def test_a_paid_payout_settles_each_charge_with_its_fee() -> None:
    payout = stripe_event("payout.paid", stripe("payout"))
    found = inputs(payout, REFERENCES, settled_transactions())
    for item in found:
        assert_fits_schema(item.record, item.topic)
    assert [item.record for item in found] == SETTLED


def test_a_settled_charge_without_its_order_is_named() -> None:
    transactions = [stripe("balance_transaction") | {"source": stripe("charge")}]
    with pytest.raises(Unmappable, match="charge ch_1PgafuB7WZ01zgkWXYmPNZs8 has no metadata"):
        inputs(stripe_event("payout.paid", stripe("payout")), REFERENCES, transactions)

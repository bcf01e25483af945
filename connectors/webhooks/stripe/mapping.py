"""Stripe events (`{"id": "evt_…", "type": …, "created": …, "data": {"object": …}}`) to
erpbridge's payment events. Pure: the route's references come in as a value.

The payment intent is the payment: its id is the payment id of the authorisation, the
capture and every refund. `charge.*` events repeat what `payment_intent.*` say (subscribing
to both would count a capture twice), so they are not ingested. A paid payout names no
payments: the service reads its balance transactions from Stripe's API (stripe/balance.py)
and each charge among them is a PaymentSettled with its fee. The order is the intent's
(the refund's, the charge's) metadata entry the route names (`order_id` unless configured
otherwise); without it the event cannot be placed.
"""

from __future__ import annotations

from typing import Any

from connectors.webhooks.amounts import currency_code, from_epoch, from_minor_units
from connectors.webhooks.inputs import (
    Input,
    UnknownTopic,
    Unmappable,
    field,
    optional_text,
    payment_input,
    text,
)
from connectors.webhooks.references import References

SOURCE = "stripe"
GATEWAY = "stripe"

PAYOUT_PAID = "payout.paid"
TYPES = (
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "refund.created",
    "refund.updated",
    PAYOUT_PAID,
)
_SETTLED_TYPES = ("charge", "payment")
"""Balance transactions that settle a payment; refunds, adjustments and Stripe's own fees
are not payments of an order."""


def paid_payout(event: Any) -> str | None:
    """The payout whose balance transactions `event` needs, if it is a paid payout."""
    if isinstance(event, dict) and event.get("type") == PAYOUT_PAID:
        return text(event, "data.object.id")
    return None


def inputs(
    event: Any, references: References, transactions: list[dict[str, Any]] | None = None
) -> list[Input]:
    """The input events of one Stripe event; [] when it tells nothing erpbridge keeps yet
    (a refund still pending). A paid payout's come from its balance `transactions`."""
    if not isinstance(event, dict):
        raise Unmappable("not-an-object", "the body is not a JSON object")
    kind = text(event, "type")
    if kind not in TYPES:
        raise UnknownTopic(kind)
    event_id = f"{SOURCE}:{text(event, 'id')}"
    occurred_at = from_epoch(event.get("created"), "created")
    obj = field(event, "data.object")
    if kind.startswith("refund."):
        return _refund(event_id, occurred_at, obj, references)
    if kind == PAYOUT_PAID:
        assert transactions is not None, "a paid payout is mapped with its transactions"
        return _settled(event_id, occurred_at, obj, transactions, references)
    intent_id = text(obj, "id")
    currency = currency_code(obj.get("currency"), "data.object.currency")
    order_id = _order_of(obj, references, f"payment intent {intent_id}")
    base = {"payment_id": intent_id, "gateway": GATEWAY, "currency": currency}
    payment: dict[str, Any]
    if kind == "payment_intent.amount_capturable_updated":
        amount = from_minor_units(obj.get("amount_capturable"), currency, "amount_capturable")
        methods = obj.get("payment_method_types") or []
        method = str(methods[0]) if len(methods) == 1 else None
        payment = {"type": "PaymentAuthorized", **base, "amount": amount, "method": method}
    elif kind == "payment_intent.succeeded":
        amount = from_minor_units(obj.get("amount_received"), currency, "amount_received")
        payment = {"type": "PaymentCaptured", **base, "amount": amount}
    else:
        error = obj.get("last_payment_error") or {}
        reason = (
            optional_text(error, "decline_code")
            or optional_text(error, "code")
            or optional_text(error, "type")
        )
        payment = {
            "type": "PaymentFailed",
            **base,
            "amount": from_minor_units(obj.get("amount"), currency, "amount"),
            "operation": "AUTHORIZE",
            "reason": reason or "payment_failed",
        }
    return [payment_input(event_id, occurred_at, SOURCE, order_id, payment)]


def _refund(
    event_id: str, occurred_at: str, refund: dict[str, Any], references: References
) -> list[Input]:
    refund_id = text(refund, "id")
    status = refund.get("status")
    if status not in ("succeeded", "failed", "canceled"):
        return []  # pending or awaiting action: money has not gone back yet
    currency = currency_code(refund.get("currency"), "data.object.currency")
    payment_id = optional_text(refund, "payment_intent") or text(refund, "charge")
    base = {
        "payment_id": payment_id,
        "gateway": GATEWAY,
        "amount": from_minor_units(refund.get("amount"), currency, "amount"),
        "currency": currency,
    }
    payment: dict[str, Any]
    if status == "succeeded":
        payment = {"type": "PaymentRefunded", **base, "refund_id": refund_id}
    else:
        reason = optional_text(refund, "failure_reason") or status
        payment = {"type": "PaymentFailed", **base, "operation": "REFUND", "reason": reason}
    order_id = _order_of(refund, references, f"refund {refund_id}")
    return [payment_input(event_id, occurred_at, SOURCE, order_id, payment)]


def _order_of(obj: dict[str, Any], references: References, owner: str) -> str:
    metadata = obj.get("metadata") or {}
    order_id = metadata.get(references.order_reference)
    if not isinstance(order_id, str) or not order_id:
        raise Unmappable(
            "unmapped-order",
            f"{owner} has no metadata.{references.order_reference} naming its order",
        )
    return order_id


def _settled(
    event_id: str,
    occurred_at: str,
    payout: dict[str, Any],
    transactions: list[dict[str, Any]],
    references: References,
) -> list[Input]:
    payout_id = text(payout, "id")
    found = []
    for transaction in transactions:
        if transaction.get("type") not in _SETTLED_TYPES:
            continue
        transaction_id = text(transaction, "id")
        charge = transaction.get("source")
        if not isinstance(charge, dict):
            raise Unmappable(
                "missing-field", f"balance transaction {transaction_id} has no expanded source"
            )
        charge_id = text(charge, "id")
        currency = currency_code(transaction.get("currency"), "currency")
        settled = {
            "type": "PaymentSettled",
            "payout_id": payout_id,
            "payment_id": optional_text(charge, "payment_intent") or charge_id,
            "gateway": GATEWAY,
            "gross": from_minor_units(transaction.get("amount"), currency, "amount"),
            "fee": from_minor_units(transaction.get("fee"), currency, "fee"),
            "net": from_minor_units(transaction.get("net"), currency, "net"),
            "currency": currency,
        }
        order_id = _order_of(charge, references, f"charge {charge_id}")
        # One event per transaction: the payout's event id alone would make them duplicates.
        found.append(
            payment_input(f"{event_id}:{transaction_id}", occurred_at, SOURCE, order_id, settled)
        )
    return found

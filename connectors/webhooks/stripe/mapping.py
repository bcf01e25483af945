"""Stripe events (`{"id": "evt_…", "type": …, "created": …, "data": {"object": …}}`) to
erpbridge's payment events. Pure: the route's references come in as a value.

The payment intent is the payment: its id is the payment id of the authorisation, the
capture and every refund. `charge.*` events repeat what `payment_intent.*` say (subscribing
to both would count a capture twice), so they are not ingested; payouts name no payments
(their fees are in the payout's balance transactions, which a webhook does not carry).
The order is the intent's (or the refund's) metadata entry the route names
(`order_id` unless configured otherwise); without it the event cannot be placed.
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

TYPES = (
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "refund.created",
    "refund.updated",
)


def inputs(event: Any, references: References) -> list[Input]:
    """The input events of one Stripe event; [] when it tells nothing erpbridge keeps yet
    (a refund still pending)."""
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

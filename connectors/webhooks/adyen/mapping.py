"""Adyen notification items (`NotificationRequestItem`) to erpbridge's payment events.
Pure: nothing but the item.

The payment is the authorisation's pspReference; a capture or refund points at it as its
originalReference. The order is the merchantReference the shop gave the payment. Amounts
are in minor units of the currency (JPY 0 digits, EUR 2, KWD 3).
"""

from __future__ import annotations

from typing import Any

from connectors.webhooks.amounts import currency_code, from_minor_units, timestamp
from connectors.webhooks.inputs import Input, UnknownTopic, optional_text, payment_input, text

SOURCE = "adyen"
GATEWAY = "adyen"

_FAILED_OPERATION = {
    "AUTHORISATION": "AUTHORIZE",
    "CAPTURE": "CAPTURE",
    "CAPTURE_FAILED": "CAPTURE",
    "REFUND": "REFUND",
    "REFUND_FAILED": "REFUND",
    "REFUNDED_REVERSED": "REFUND",
}
EVENT_CODES = (*_FAILED_OPERATION, "REPORT_AVAILABLE")
"""What a route takes (REPORT_AVAILABLE: the settlement reports, connectors.webhooks.adyen.settlement)."""


def inputs(item: dict[str, Any]) -> list[Input]:
    """The input event of one notification item."""
    code = text(item, "eventCode")
    if code not in _FAILED_OPERATION:
        raise UnknownTopic(code)
    psp = text(item, "pspReference")
    # Adyen re-sends an item with the same pspReference and eventCode: one event.
    event_id = f"{SOURCE}:{psp}:{code}"
    amount = item.get("amount") or {}
    currency = currency_code(amount.get("currency"), "amount.currency")
    original = optional_text(item, "originalReference")
    base = {
        "payment_id": psp if code == "AUTHORISATION" else (original or psp),
        "gateway": GATEWAY,
        "amount": from_minor_units(amount.get("value"), currency, "amount.value"),
        "currency": currency,
    }
    succeeded = item.get("success") == "true" and code not in (
        "CAPTURE_FAILED",
        "REFUND_FAILED",
        "REFUNDED_REVERSED",
    )
    payment: dict[str, Any]
    if not succeeded:
        reason = optional_text(item, "reason") or code
        payment = {
            "type": "PaymentFailed",
            **base,
            "operation": _FAILED_OPERATION[code],
            "reason": reason,
        }
    elif code == "AUTHORISATION":
        method = optional_text(item, "paymentMethod")
        payment = {"type": "PaymentAuthorized", **base, "method": method}
    elif code == "CAPTURE":
        payment = {"type": "PaymentCaptured", **base}
    else:
        payment = {"type": "PaymentRefunded", **base, "refund_id": psp}
    occurred_at = timestamp(item.get("eventDate"), "eventDate")
    return [payment_input(event_id, occurred_at, SOURCE, text(item, "merchantReference"), payment)]

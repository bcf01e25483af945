"""Adyen's own sample notifications to erpbridge's payment events, written out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.webhooks.adyen.mapping import inputs
from connectors.webhooks.inputs import UnknownTopic
from streams.contracts.topics import PAYMENTS
from tests.connectors.webhooks.vendor import adyen, assert_fits_schema


def _one(item: dict[str, Any]) -> dict[str, Any]:
    (found,) = inputs(item)
    assert_fits_schema(found.record, found.topic)
    assert (found.topic, found.key) == (PAYMENTS, found.record["order_id"])
    return found.record


AUTHORISED = {
        "event_id": "adyen:M8NB66SBZSGLNK82:AUTHORISATION",
        "occurred_at": "2023-01-10T13:40:54+01:00", "source": "adyen",
        "order_id": ":slashes are fun",
        "event": {"type": "PaymentAuthorized", "payment_id": "M8NB66SBZSGLNK82",
                  "gateway": "adyen", "amount": "10.00", "currency": "EUR", "method": "visa"},
}  # fmt: skip
"""colon_notification.json: 1000 EUR cents authorised for the order ":slashes are fun"."""


def test_authorisation_of_10_eur() -> None:
    assert _one(adyen("colon_notification.json")) == AUTHORISED


def test_refused_authorisation() -> None:
    item = adyen("backslash_notification.json") | {"success": "false", "reason": "Refused"}
    assert _one(item)["event"] == {
        "type": "PaymentFailed", "payment_id": "T7FD4VM4D3RZNN82", "gateway": "adyen",
        "amount": "10.00", "currency": "EUR", "operation": "AUTHORIZE", "reason": "Refused",
    }  # fmt: skip


def test_capture_and_refund_point_at_the_authorisation() -> None:
    base = adyen("colon_notification.json") | {"originalReference": "M8NB66SBZSGLNK82"}
    capture = _one(base | {"eventCode": "CAPTURE", "pspReference": "CAPT1"})
    refund = _one(base | {"eventCode": "REFUND", "pspReference": "REF1"})
    assert capture["event_id"] == "adyen:CAPT1:CAPTURE"
    assert capture["event"] == {"type": "PaymentCaptured", "payment_id": "M8NB66SBZSGLNK82",
                                "gateway": "adyen", "amount": "10.00", "currency": "EUR"}  # fmt: skip
    assert refund["event"] == {"type": "PaymentRefunded", "payment_id": "M8NB66SBZSGLNK82",
                               "gateway": "adyen", "refund_id": "REF1", "amount": "10.00",
                               "currency": "EUR"}  # fmt: skip


def test_refund_failed_is_a_failed_refund() -> None:
    item = adyen("colon_notification.json") | {
        "eventCode": "REFUND_FAILED",
        "originalReference": "M8NB66SBZSGLNK82",
        "reason": "x",
    }
    assert _one(item)["event"]["operation"] == "REFUND"


@pytest.mark.parametrize(
    ("currency", "value", "expected"),
    # Zero-decimal and three-decimal currencies: the value is in the currency's minor unit.
    [("JPY", 1000, "1000"), ("EUR", 1000, "10.00"), ("KWD", 1000, "1.000"), ("BHD", 1, "0.001")],
)
def test_minor_units_follow_the_currency(currency: str, value: int, expected: str) -> None:
    item = adyen("colon_notification.json") | {"amount": {"currency": currency, "value": value}}
    assert _one(item)["event"]["amount"] == expected


def test_report_available_is_not_ingested() -> None:
    with pytest.raises(UnknownTopic):
        inputs(adyen("colon_notification.json") | {"eventCode": "REPORT_AVAILABLE"})

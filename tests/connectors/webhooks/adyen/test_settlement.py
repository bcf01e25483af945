"""A Settlement details report (written to Adyen's documented columns) to PaymentSettled
events, written out by hand."""

from __future__ import annotations

import pytest

from connectors.webhooks.adyen.settlement import report_file, settlements
from connectors.webhooks.inputs import Unmappable
from streams.contracts.topics import PAYMENTS
from tests.connectors.webhooks.vendor import FIXTURES, assert_fits_schema

FILE = "settlement_detail_report_batch_57.csv"
REPORT = (FIXTURES / "adyen" / FILE).read_text()
AT = "2026-12-05T02:10:31+01:00"

SETTLED = [
    {"event_id": "adyen:8815939394651311:SETTLED:ErpbridgeShopEU/batch-57",
     "occurred_at": AT, "source": "adyen", "order_id": "ORD-EU-0001",
     "event": {"type": "PaymentSettled", "payout_id": "ErpbridgeShopEU/batch-57",
               "payment_id": "8815939394651311", "gateway": "adyen", "gross": "120.00",
               "fee": "1.98", "net": "118.02", "currency": "EUR"}},
    {"event_id": "adyen:8815939394651420:SETTLED:ErpbridgeShopEU/batch-57",
     "occurred_at": AT, "source": "adyen", "order_id": "ORD-EU-0002",
     "event": {"type": "PaymentSettled", "payout_id": "ErpbridgeShopEU/batch-57",
               "payment_id": "8815939394651420", "gateway": "adyen", "gross": "59.90",
               "fee": "1.20", "net": "58.70", "currency": "EUR"}},
]  # fmt: skip
"""The batch's two settled payments, net of their fees: markup 0.36, scheme fee 0.12 and
interchange 1.50 of the first; a commission of 1.20 of the second."""


def test_the_settled_payments_of_a_batch_with_their_fees() -> None:
    found = settlements(REPORT, FILE, AT)
    for item in found:
        assert_fits_schema(item.record, item.topic)
    assert [(item.topic, item.key) for item in found] == [
        (PAYMENTS, "ORD-EU-0001"),
        (PAYMENTS, "ORD-EU-0002"),
    ]
    assert [item.record for item in found] == SETTLED


def test_only_a_settlement_report_is_read() -> None:
    announced = {"eventCode": "REPORT_AVAILABLE", "pspReference": FILE}
    assert report_file(announced) == FILE
    assert (
        report_file(announced | {"pspReference": "received_payments_report_2026_12_04.csv"}) is None
    )
    assert (
        report_file(announced | {"pspReference": "../settlement_detail_report_batch_1.csv"}) is None
    )
    assert report_file(announced | {"eventCode": "CAPTURE"}) is None


def _edited(old: str, new: str) -> str:
    assert old in REPORT
    return REPORT.replace(old, new, 1)


def test_a_settlement_in_another_currency_is_named() -> None:
    converted = _edited("EUR,,120.00,1,EUR,,118.02", "EUR,,120.00,1.0825,USD,,127.79")
    with pytest.raises(Unmappable, match=f"{FILE} line 2: EUR settled as USD at 1.0825"):
        settlements(converted, FILE, AT)


def test_fees_that_do_not_add_up_are_named() -> None:
    wrong = _edited("58.70,1.20", "58.70,1.30")
    with pytest.raises(
        Unmappable, match=f"{FILE} line 3: gross 59.90 less fees 1.30 is not net 58.70"
    ):
        settlements(wrong, FILE, AT)


def test_a_report_without_a_column_it_needs_is_named() -> None:
    with pytest.raises(Unmappable, match=f"{FILE} has no column Markup \\(NC\\)"):
        settlements(REPORT.replace("Markup (NC)", "Markup"), FILE, AT)


def test_a_settled_row_without_its_order_is_named() -> None:
    anonymous = _edited("8815939394651420,ORD-EU-0002", "8815939394651420,")
    with pytest.raises(Unmappable, match=f"{FILE} line 3 has no Merchant Reference"):
        settlements(anonymous, FILE, AT)

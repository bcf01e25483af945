"""The finance mapping and the journal: hand-computed entries per template, mapping-file
errors, the Avro contract, and a property test over random orders and event streams."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts.codec import Codec
from streams.domain.commands import Command, Kind
from streams.domain.events import InputEvent
from streams.domain.finance import (
    FinanceMapping,
    FinanceMappingError,
    JournalEntry,
    MissingRateError,
    Recognition,
    _share,
    cost_entry,
    entry_command,
    order_journal,
)
from streams.domain.money import minor_unit, quantize_minor
from streams.domain.orders import Order
from streams.ops.settings import REPO_ROOT
from tests.streams.domain.builders import (
    EAST,
    MINUTE_MS,
    NEW_YORK,
    T0,
    apply,
    apply_all,
    cancelled,
    captured,
    fulfilled,
    payment_refunded,
    refunded,
    settled,
)
from tests.streams.domain.builders import placed as build_placed
from tests.support import STORE

CONFIG = REPO_ROOT / "config" / "finance.json"
MAPPING = FinanceMapping.from_file(CONFIG)
AT_CONFIRMATION = replace(MAPPING, revenue_recognition=Recognition.CONFIRMATION)
CODEC = Codec(STORE)
D = Decimal
HOUR_MS = 60 * MINUTE_MS


# -- helpers --------------------------------------------------------------------------------


def order_line(
    line_id: str, sku: str, quantity: int, unit_price: str, *taxes: tuple[str, str]
) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "sku": sku,
        "quantity": quantity,
        "unit_price": D(unit_price),
        "discount": D(0),
        "tax_lines": [tax_line(j, amount) for j, amount in taxes],
    }


def tax_line(jurisdiction: str, amount: str) -> dict[str, Any]:
    return {"jurisdiction": jurisdiction, "rate": D("0.1"), "amount": D(amount)}


def placed(
    order_id: str,
    lines: Sequence[dict[str, Any]],
    total: str,
    *,
    currency: str = "USD",
    discount: str | None = None,
    shipping: tuple[str, Sequence[tuple[str, str]]] | None = None,
    payment_terms: str = "PREPAID",
    at: int = T0,
) -> InputEvent:
    """OrderPlaced with order-level discount and shipping (amount, [(jurisdiction, tax)])."""
    return build_placed(
        order_id,
        lines,
        total=total,
        currency=currency,
        destination=NEW_YORK,
        payment_terms=payment_terms,
        purchase_order_number="PO-9" if payment_terms == "ON_ACCOUNT" else None,
        discounts=[]
        if discount is None
        else [{"code": "FALL", "description": None, "amount": D(discount)}],
        shipping=None
        if shipping is None
        else {
            "method": "standard",
            "amount": D(shipping[0]),
            "tax_lines": [tax_line(j, a) for j, a in shipping[1]],
        },
        at=at,
    )


Row = tuple[str, str, str, str, str, str | None]


def rows(entry: JournalEntry | None) -> list[Row]:
    """(account, debit, credit, functional debit, functional credit, jurisdiction) per line."""
    assert entry is not None
    assert entry.balanced
    return [
        (
            line.account,
            str(line.debit),
            str(line.credit),
            str(line.functional_debit),
            str(line.functional_credit),
            line.tax_jurisdiction,
        )
        for line in entry.lines
    ]


def by_id(entries: Iterable[JournalEntry]) -> dict[str, JournalEntry]:
    return {entry.entry_id: entry for entry in entries}


def net_debits(entries: Iterable[JournalEntry]) -> dict[tuple[str, str, str | None], Decimal]:
    """Debit minus credit per (account, transaction currency, jurisdiction), zeros left out."""
    totals: dict[tuple[str, str, str | None], Decimal] = defaultdict(Decimal)
    for entry in entries:
        for line in entry.lines:
            key = (line.account, entry.transaction_currency, line.tax_jurisdiction)
            totals[key] += line.debit - line.credit
    return {key: amount for key, amount in totals.items() if amount}


def new_york_order(order: Order, **kwargs: Any) -> None:
    """Two SKUs, an order discount of 10.00 spread 8.00 / 2.00, shipping 10.00, and two
    jurisdictions: New York State 4% and New York City 4.875%, shipping taxed too.

        SKU-A  2 x 40.00 = 80.00 - 8.00 = 72.00   US-NY 2.88  US-NY-NYC 3.51
        SKU-B  1 x 20.00 = 20.00 - 2.00 = 18.00   US-NY 0.72  US-NY-NYC 0.88
        shipping               10.00               US-NY 0.40  US-NY-NYC 0.49
        total 90.00 + 10.00 + 4.00 + 4.88 = 108.88
    """
    lines = [
        order_line("1", "SKU-A", 2, "40.00", ("US-NY", "2.88"), ("US-NY-NYC", "3.51")),
        order_line("2", "SKU-B", 1, "20.00", ("US-NY", "0.72"), ("US-NY-NYC", "0.88")),
    ]
    shipping = ("10.00", [("US-NY", "0.40"), ("US-NY-NYC", "0.49")])
    apply(
        order,
        placed(order.order_id, lines, "108.88", discount="10.00", shipping=shipping, **kwargs),
    )


# -- sale ---------------------------------------------------------------------------------------


def test_sale_at_confirmation_posts_tax_per_jurisdiction(order: Order) -> None:
    new_york_order(order)
    assert order_journal(order, AT_CONFIRMATION, None) == []
    (sale,) = order_journal(order, AT_CONFIRMATION, T0 + MINUTE_MS)
    assert sale.entry_id == "O-1/journal/sale"
    assert sale.posted_ms == T0 + MINUTE_MS
    assert rows(sale) == [
        ("1200", "108.88", "0", "108.88", "0", None),
        ("4010", "10.00", "0", "10.00", "0", None),
        ("4000", "0", "100.00", "0", "100.00", None),
        ("4100", "0", "10.00", "0", "10.00", None),
        ("2310", "0", "4.00", "0", "4.00", "US-NY"),
        ("2310", "0", "4.88", "0", "4.88", "US-NY-NYC"),
    ]


def test_sale_at_shipment_recognises_each_fulfilment_and_trues_up_the_rounding(
    order: Order,
) -> None:
    new_york_order(order)
    apply(order, fulfilled("O-1", "F1", EAST, {"SKU-A": 1}, at=T0 + HOUR_MS))
    # Half of SKU-A: 40.00 - 4.00, US-NY 1.44, US-NY-NYC 1.755 -> 1.76 (half-even); shipping
    # goes with the value shipped, 36 of 90: 4.00, US-NY 0.16, US-NY-NYC 0.195 -> 0.20.
    first = by_id(order_journal(order, MAPPING, None))["O-1/journal/sale/F1"]
    assert rows(first) == [
        ("1200", "43.56", "0", "43.56", "0", None),
        ("4010", "4.00", "0", "4.00", "0", None),
        ("4000", "0", "40.00", "0", "40.00", None),
        ("4100", "0", "4.00", "0", "4.00", None),
        ("2310", "0", "1.60", "0", "1.60", "US-NY"),
        ("2310", "0", "1.96", "0", "1.96", "US-NY-NYC"),
    ]
    apply(order, fulfilled("O-1", "F2", EAST, {"SKU-A": 1, "SKU-B": 1}, at=T0 + 2 * HOUR_MS))
    journal = by_id(order_journal(order, MAPPING, None))
    assert journal["O-1/journal/sale/F1"] == first
    # The rest of SKU-A and all of SKU-B; shipping 54 of 90: 6.00, 0.24, 0.2925 -> 0.29.
    assert rows(journal["O-1/journal/sale/F2"]) == [
        ("1200", "65.33", "0", "65.33", "0", None),
        ("4010", "6.00", "0", "6.00", "0", None),
        ("4000", "0", "60.00", "0", "60.00", None),
        ("4100", "0", "6.00", "0", "6.00", None),
        ("2310", "0", "2.40", "0", "2.40", "US-NY"),
        ("2310", "0", "2.93", "0", "2.93", "US-NY-NYC"),
    ]
    # New York City got 1.96 + 2.93 = 4.89 of its 4.88: the last shipment gives 0.01 back.
    true_up = journal["O-1/journal/sale-rounding"]
    assert true_up.posted_ms == T0 + 2 * HOUR_MS
    assert rows(true_up) == [
        ("1200", "0", "0.01", "0", "0.01", None),
        ("2310", "0.01", "0", "0.01", "0", "US-NY-NYC"),
    ]
    sales = [e for e in journal.values() if "/journal/sale" in e.entry_id]
    assert net_debits(sales) == net_debits(order_journal(order, AT_CONFIRMATION, T0))


def test_a_jpy_order_has_no_minor_unit_and_books_the_conversion_rounding() -> None:
    order = Order("O-JP")
    lines = [order_line("1", "SKU-A", 3, "1980", ("JP", "594"))]
    apply(order, placed("O-JP", lines, "6534", currency="JPY"))
    (sale,) = order_journal(order, AT_CONFIRMATION, T0)
    assert sale.exchange_rate == D("0.00671")  # effective 2027-01-01, T0 is 2027-01-15
    # 6534 x 0.00671 = 43.84314 -> 43.84 against 39.8574 -> 39.86 and 3.98574 -> 3.99.
    assert rows(sale) == [
        ("1200", "6534", "0", "43.84", "0", None),
        ("4000", "0", "5940", "0", "39.86", None),
        ("2310", "0", "594", "0", "3.99", "JP"),
        ("8900", "0", "0", "0.01", "0", None),
    ]


def test_an_eur_order_is_converted_at_the_rate_of_its_day_and_the_difference_booked() -> None:
    order = Order("O-DE")
    lines = [order_line("1", "SKU-A", 3, "9.99", ("DE", "5.69"))]
    apply_all(
        order,
        [
            placed("O-DE", lines, "35.66", currency="EUR"),
            captured("O-DE", "35.66", currency="EUR", at=T0 + MINUTE_MS),
        ],
    )
    journal = by_id(order_journal(order, AT_CONFIRMATION, T0))
    sale = journal["O-DE/journal/sale"]
    assert sale.exchange_rate == D("1.1420")
    # 35.66 x 1.142 = 40.72372 -> 40.72; 29.97 -> 34.22574 -> 34.23; 5.69 -> 6.49798 -> 6.50.
    assert rows(sale) == [
        ("1200", "35.66", "0", "40.72", "0", None),
        ("4000", "0", "29.97", "0", "34.23", None),
        ("2320", "0", "5.69", "0", "6.50", "DE"),
        ("8900", "0", "0", "0.01", "0", None),
    ]
    assert rows(
        journal["O-DE/journal/capture/" + next(iter(order.payments["PAY-1"].captures))]
    ) == [
        ("1110", "35.66", "0", "40.72", "0", None),
        ("1200", "0", "35.66", "0", "40.72", None),
    ]


def test_a_currency_without_a_rate_for_the_day_is_an_error_naming_both() -> None:
    order = Order("O-CH")
    apply(order, placed("O-CH", [order_line("1", "SKU-A", 1, "10.00")], "10.00", currency="CHF"))
    with pytest.raises(
        MissingRateError, match=r"no CHF exchange rate effective on or before 2027-01-15"
    ):
        order_journal(order, AT_CONFIRMATION, T0)
    too_late = replace(AT_CONFIRMATION, rates={"CHF": ((date(2027, 1, 16), D("1.1")),)})
    with pytest.raises(MissingRateError, match=r"CHF.*2027-01-15"):
        order_journal(order, too_late, T0)


# -- cancellation ---------------------------------------------------------------------------


def test_an_order_cancelled_before_recognition_has_no_sale(order: Order) -> None:
    new_york_order(order)
    apply(order, cancelled("O-1", at=T0 + MINUTE_MS))
    assert order_journal(order, MAPPING, None) == []
    assert order_journal(order, AT_CONFIRMATION, None) == []


def test_a_confirmed_order_cancelled_with_an_earlier_date_is_reversed_on_the_same_day(
    order: Order,
) -> None:
    # The ERP confirmed the sales order before the cancellation was processed; the
    # cancellation's own time is earlier, but a reversal never precedes its sale.
    new_york_order(order)
    apply(order, cancelled("O-1", at=T0 + MINUTE_MS))
    sale, reversal = order_journal(order, AT_CONFIRMATION, T0 + 2 * MINUTE_MS)
    assert (sale.entry_id, reversal.entry_id) == ("O-1/journal/sale", "O-1/journal/sale-reversal")
    assert reversal.posted_ms == sale.posted_ms == T0 + 2 * MINUTE_MS
    assert net_debits([sale, reversal]) == {}


def test_a_cancellation_after_confirmation_reverses_what_did_not_ship(order: Order) -> None:
    new_york_order(order)
    apply_all(
        order,
        [
            fulfilled("O-1", "F1", EAST, {"SKU-A": 1}, at=T0 + HOUR_MS),
            cancelled("O-1", at=T0 + 2 * HOUR_MS),
        ],
    )
    journal = by_id(order_journal(order, AT_CONFIRMATION, T0 + MINUTE_MS))
    reversal = journal["O-1/journal/sale-reversal"]
    assert reversal.posted_ms == T0 + 2 * HOUR_MS
    # The whole order less what fulfilment F1 recognises at shipment (see above).
    assert rows(reversal) == [
        ("1200", "0", "65.32", "0", "65.32", None),
        ("4010", "0", "6.00", "0", "6.00", None),
        ("4000", "60.00", "0", "60.00", "0", None),
        ("4100", "6.00", "0", "6.00", "0", None),
        ("2310", "2.40", "0", "2.40", "0", "US-NY"),
        ("2310", "2.92", "0", "2.92", "0", "US-NY-NYC"),
    ]
    shipment_policy = [
        e for e in order_journal(order, MAPPING, None) if e.entry_id.startswith("O-1/journal/sale")
    ]
    assert net_debits([journal["O-1/journal/sale"], reversal]) == net_debits(shipment_policy)


# -- payments -------------------------------------------------------------------------------


def test_capture_refund_and_settlement_with_the_gateway_fee(order: Order) -> None:
    new_york_order(order)
    capture = captured("O-1", "108.88", at=T0 + MINUTE_MS)
    apply_all(
        order,
        [
            capture,
            fulfilled("O-1", "F1", EAST, {"SKU-A": 2, "SKU-B": 1}, at=T0 + HOUR_MS),
            settled("O-1", "108.88", "3.46", payout_id="PO-7", at=T0 + 48 * HOUR_MS),
        ],
    )
    journal = by_id(order_journal(order, MAPPING, None))
    assert rows(journal[f"O-1/journal/capture/{capture.event_id}"]) == [
        ("1110", "108.88", "0", "108.88", "0", None),
        ("1200", "0", "108.88", "0", "108.88", None),
    ]
    assert rows(journal["O-1/journal/settlement/PO-7"]) == [
        ("1010", "105.42", "0", "105.42", "0", None),
        ("6150", "3.46", "0", "3.46", "0", None),
        ("1110", "0", "108.88", "0", "108.88", None),
    ]
    # Paid, shipped and settled: the customer and the gateway owe nothing.
    totals = net_debits(journal.values())
    assert ("1200", "USD", None) not in totals
    assert ("1110", "USD", None) not in totals


def test_every_receivable_line_names_the_customer_and_no_other_line_does(order: Order) -> None:
    new_york_order(order)
    apply_all(
        order,
        [
            captured("O-1", "100.00", at=T0 + MINUTE_MS),
            fulfilled("O-1", "F1", EAST, {"SKU-A": 2, "SKU-B": 1}, at=T0 + HOUR_MS),
            refunded("O-1", "R1", {"SKU-B": (1, "21.60")}, at=T0 + 2 * HOUR_MS),
            payment_refunded("O-1", "21.60", refund_id="R1", at=T0 + 2 * HOUR_MS),
            settled("O-1", "100.00", "3.20", payout_id="PO-7", at=T0 + 48 * HOUR_MS),
        ],
    )
    journal = order_journal(order, MAPPING, None)
    parties = {(line.account, line.party) for entry in journal for line in entry.lines}
    assert {party for account, party in parties if account == "1200"} == {"C-1"}
    assert {party for account, party in parties if account != "1200"} == {None}
    templates = {e.entry_id.split("/journal/")[1].split("/")[0] for e in journal}
    assert {"sale", "capture", "credit-note", "payment-refund"} <= templates
    # The customer's receivable is the ledger's: 108.88 owed, 100.00 paid.
    owed = sum((x.debit - x.credit for e in journal for x in e.lines if x.party == "C-1"), D(0))
    assert owed == net_debits(journal)[("1200", "USD", None)] == D("8.88")


def test_a_companys_buyer_owes_on_the_companys_receivable(order: Order) -> None:
    event = placed("O-1", [order_line("1", "SKU-A", 1, "50.00")], "50.00")
    event.payload["customer"] = {**event.payload["customer"], "company_id": "ACME"}
    apply_all(order, [event, captured("O-1", "50.00", at=T0 + MINUTE_MS)])
    journal = order_journal(order, MAPPING, None)
    assert journal
    assert {x.party for e in journal for x in e.lines if x.account == "1200"} == {"ACME"}


def test_a_storefront_customers_receivable_is_its_account_on_that_storefront(
    order: Order,
) -> None:
    event = placed("O-1", [order_line("1", "SKU-A", 1, "50.00")], "50.00")
    event.payload["storefront"] = "main"
    apply_all(order, [event, captured("O-1", "50.00", at=T0 + MINUTE_MS)])
    journal = order_journal(order, MAPPING, None)
    assert {x.party for e in journal for x in e.lines if x.account == "1200"} == {"main:C-1"}


def test_a_payment_before_its_order_is_booked_with_the_placement_on_its_own_date() -> None:
    order = Order("O-1")
    capture = captured("O-1", "108.88", at=T0 - HOUR_MS)
    apply_all(order, [capture, settled("O-1", "108.88", "3.46", payout_id="PO-7", at=T0)])
    # Nothing names the customer yet: the money waits on the order (and its alert).
    assert order_journal(order, MAPPING, None) == []
    new_york_order(order, at=T0 + HOUR_MS)
    journal = by_id(order_journal(order, MAPPING, None))
    booked = journal[f"O-1/journal/capture/{capture.event_id}"]
    assert booked.posted_ms == T0 - HOUR_MS
    assert [(x.account, x.party) for x in booked.lines] == [("1110", None), ("1200", "C-1")]
    assert "O-1/journal/settlement/PO-7" in journal


def test_a_refund_is_credited_once_the_customer_has_it(order: Order) -> None:
    new_york_order(order)
    apply_all(
        order,
        [
            captured("O-1", "108.88", at=T0 + MINUTE_MS),
            fulfilled("O-1", "F1", EAST, {"SKU-A": 2, "SKU-B": 1}, at=T0 + HOUR_MS),
            # One unit of SKU-A back: half of 72.00 + 2.88 + 3.51 = 39.195 -> 39.20.
            refunded("O-1", "RF-1", {"SKU-A": (1, "39.20")}, restock=True, at=T0 + 72 * HOUR_MS),
        ],
    )
    assert "O-1/journal/credit-note/RF-1" not in by_id(order_journal(order, MAPPING, None))
    apply(order, payment_refunded("O-1", "39.20", "RF-1", at=T0 + 73 * HOUR_MS))
    journal = by_id(order_journal(order, MAPPING, None))
    note = journal["O-1/journal/credit-note/RF-1"]
    assert note.posted_ms == T0 + 72 * HOUR_MS
    assert rows(note) == [
        ("1200", "0", "39.20", "0", "39.20", None),
        ("4020", "36.00", "0", "36.00", "0", None),
        ("2310", "1.44", "0", "1.44", "0", "US-NY"),
        ("2310", "1.76", "0", "1.76", "0", "US-NY-NYC"),
    ]
    assert rows(journal["O-1/journal/payment-refund/RF-1"]) == [
        ("1200", "39.20", "0", "39.20", "0", None),
        ("1110", "0", "39.20", "0", "39.20", None),
    ]


def test_a_goodwill_refund_is_split_exactly_by_the_units_value() -> None:
    order = Order("O-2")
    new_york_order(order, payment_terms="ON_ACCOUNT")
    apply_all(
        order,
        [
            fulfilled("O-2", "F1", EAST, {"SKU-A": 2, "SKU-B": 1}, at=T0 + HOUR_MS),
            refunded("O-2", "RF-9", {"SKU-B": (1, "10.00")}, kind="REFUND", at=T0 + 2 * HOUR_MS),
        ],
    )
    # On account, the credit note needs no payment refund. 10.00 over 18.00 : 0.72 : 0.88 is
    # 9.1837 : 0.3673 : 0.4490; the two leftover cents go to the largest remainders.
    note = by_id(order_journal(order, MAPPING, None))["O-2/journal/credit-note/RF-9"]
    assert rows(note) == [
        ("1200", "0", "10.00", "0", "10.00", None),
        ("4020", "9.18", "0", "9.18", "0", None),
        ("2310", "0.37", "0", "0.37", "0", "US-NY"),
        ("2310", "0.45", "0", "0.45", "0", "US-NY-NYC"),
    ]


def test_a_refund_of_everything_gives_back_shipping_and_its_tax() -> None:
    order = Order("O-3")
    new_york_order(order, payment_terms="ON_ACCOUNT")
    apply_all(
        order,
        [
            fulfilled("O-3", "F1", EAST, {"SKU-A": 2, "SKU-B": 1}, at=T0 + HOUR_MS),
            refunded(
                "O-3",
                "RF-1",
                {"SKU-A": (2, "78.39"), "SKU-B": (1, "19.60")},
                shipping_amount="10.89",
                at=T0 + 2 * HOUR_MS,
            ),
        ],
    )
    note = by_id(order_journal(order, MAPPING, None))["O-3/journal/credit-note/RF-1"]
    assert rows(note) == [
        ("1200", "0", "108.88", "0", "108.88", None),
        ("4020", "90.00", "0", "90.00", "0", None),
        ("4100", "10.00", "0", "10.00", "0", None),
        ("2310", "4.00", "0", "4.00", "0", "US-NY"),
        ("2310", "4.88", "0", "4.88", "0", "US-NY-NYC"),
    ]


def test_a_refund_that_names_no_amounts_is_split_over_its_units() -> None:
    order = Order("O-4")
    new_york_order(order, payment_terms="ON_ACCOUNT")
    apply_all(
        order,
        [
            fulfilled("O-4", "F1", EAST, {"SKU-A": 2, "SKU-B": 1}, at=T0 + HOUR_MS),
            refunded("O-4", "RF-1", {"SKU-A": (1, "0")}, total="39.20", at=T0 + 2 * HOUR_MS),
        ],
    )
    note = by_id(order_journal(order, MAPPING, None))["O-4/journal/credit-note/RF-1"]
    assert rows(note) == [
        ("1200", "0", "39.20", "0", "39.20", None),
        ("4020", "36.00", "0", "36.00", "0", None),
        ("2310", "1.44", "0", "1.44", "0", "US-NY"),
        ("2310", "1.76", "0", "1.76", "0", "US-NY-NYC"),
    ]


# -- cost of goods sold -----------------------------------------------------------------------


def test_cost_of_goods_sold_at_fulfilment_and_its_reversal_on_restock() -> None:
    cogs = cost_entry(
        "O-1", "SKU-A", "F1", EAST, 3, D("18.3333"), "USD", T0, MAPPING, restock=False
    )
    assert cogs is not None and cogs.entry_id == "O-1/journal/cogs/F1/SKU-A"
    assert rows(cogs) == [  # 3 x 18.3333 = 54.9999 -> 55.00
        ("5000", "55.00", "0", "55.00", "0", None),
        ("1300", "0", "55.00", "0", "55.00", None),
    ]
    back = cost_entry("O-1", "SKU-A", "RF-1", EAST, 1, D("7.10"), "EUR", T0, MAPPING, restock=True)
    assert back is not None and back.entry_id == "O-1/journal/restock/RF-1/SKU-A"
    assert rows(back) == [  # 7.10 x 1.142 = 8.1082 -> 8.11
        ("1300", "7.10", "0", "8.11", "0", None),
        ("5000", "0", "7.10", "0", "8.11", None),
    ]
    assert (
        cost_entry("O-1", "SKU-A", "F1", EAST, 3, D(0), "USD", T0, MAPPING, restock=False) is None
    )


# -- the Avro contract and the command --------------------------------------------------------


def test_entries_encode_as_journal_entries_and_post_journal_entry_commands() -> None:
    order = Order("O-JP")
    lines = [order_line("1", "SKU-A", 3, "1980", ("JP", "594"))]
    apply(order, placed("O-JP", lines, "6534", currency="JPY"))
    (entry,) = order_journal(order, AT_CONFIRMATION, T0)
    decoded = CODEC.decode(
        CODEC.encode("erpbridge.JournalEntry", entry.to_datum(), topic="finance.journal"),
        expected="erpbridge.JournalEntry",
    ).datum
    assert decoded["posting_date"] == entry.posting_date
    assert decoded["exchange_rate"] == D("0.00671000")
    assert [line["functional_debit"] for line in decoded["lines"]] == [
        line.functional_debit for line in entry.lines
    ]
    command = entry_command(entry, "tryton")
    assert command.command_id == "O-JP/journal/sale/post"
    assert command.kind is Kind.POST_JOURNAL_ENTRY
    assert (command.dispatch_key, command.created_ms) == ("O-JP", T0)
    # Through the pending topic's JSON and out to erp.commands.
    again = Command.decode(command.encode())
    assert again == command
    CODEC.encode("erpbridge.ErpCommand", again.to_datum(), topic="erp.commands")


# -- the mapping file -----------------------------------------------------------------------


def broken(tmp_path: Path, change: Any) -> Path:
    data = json.loads(CONFIG.read_text())
    change(data)
    path = tmp_path / "finance.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["templates"]["sale"]["debit"].update(receivable="1999"),
            r"templates\.sale\.debit\.receivable: account '1999' is not in the chart",
        ),
        (lambda d: d["templates"].pop("cogs"), r"templates\.cogs: missing template"),
        (
            lambda d: d["templates"]["cogs"]["credit"].update(stock="1300"),
            r"templates\.cogs\.credit\.stock: not a credit of this template",
        ),
        (
            lambda d: d["templates"]["restock"]["debit"].pop("inventory"),
            r"templates\.restock\.debit\.inventory: missing",
        ),
        (
            lambda d: d["templates"]["sale"].update(posting_date="payout"),
            r"templates\.sale\.posting_date: must be 'revenue_recognition'",
        ),
        (
            lambda d: d["exchange_rates"]["rates"]["EUR"].update({"2027-02-01": "1.1x"}),
            r"exchange_rates\.rates\.EUR\.2027-02-01: '1\.1x' is not a decimal number",
        ),
        (
            lambda d: d["exchange_rates"]["rates"]["EUR"].update({"2027-02-01": 1.1}),
            r"exchange_rates\.rates\.EUR\.2027-02-01: write the rate as a decimal string",
        ),
        (
            lambda d: d["exchange_rates"]["rates"]["EUR"].update({"2027-02-01": "1.123456789"}),
            r"more than 8 decimal places",
        ),
        (
            lambda d: d["exchange_rates"]["rates"].update(XYZ={"2027-01-01": "1"}),
            r"exchange_rates\.rates\.XYZ: unknown ISO 4217 currency code 'XYZ'",
        ),
        (lambda d: d.update(functional_currency="usd"), r"functional_currency: unknown ISO 4217"),
        (
            lambda d: d["policy"].update(revenue_recognition="payment"),
            r"policy\.revenue_recognition: must be one of shipment, confirmation",
        ),
        (
            lambda d: d["tax_accounts"]["by_jurisdiction"].update(DE="2399"),
            r"tax_accounts\.by_jurisdiction\.DE: account '2399'",
        ),
        (lambda d: d.pop("rounding_account"), r"rounding_account: missing"),
        (lambda d: d.update(templtes={}), r"templtes: unknown key"),
    ],
)
def test_mapping_errors_name_the_file_and_the_key(
    tmp_path: Path, change: Any, message: str
) -> None:
    path = broken(tmp_path, change)
    with pytest.raises(FinanceMappingError, match=message) as error:
        FinanceMapping.from_file(path)
    assert str(error.value).startswith(f"{path}: ")


def test_the_shipped_mapping_recognises_revenue_at_shipment_in_usd() -> None:
    assert MAPPING.functional_currency == "USD"
    assert MAPPING.revenue_recognition is Recognition.SHIPMENT
    assert MAPPING.account("payment_capture", "clearing", gateway="adyen") == "1120"
    assert MAPPING.account("payment_capture", "clearing", gateway="klarna") == "1190"


# -- property: random orders and event streams ------------------------------------------------

JURISDICTIONS = ("US-CA", "US-CA-LAC", "DE", "GB")
GATEWAYS = ("stripe", "adyen")


def money(units: int, currency: str) -> Decimal:
    return Decimal(units).scaleb(-minor_unit(currency))


@dataclass
class Story:
    """A random order's events, and what they add up to."""

    order_id: str
    currency: str
    events: list[InputEvent]
    arrivals: list[list[int]]
    """Permutations of `events`: the orders they arrive in."""
    confirmed_ms: int | None
    unit_costs: dict[str, Decimal]
    fully_shipped: bool
    shipped_any: bool
    cancelled: bool
    settled: bool
    merchandise: Decimal
    discounts: Decimal
    shipping: Decimal
    taxes: dict[str, Decimal]
    total: Decimal


@st.composite
def stories(draw: st.DrawFn) -> Story:
    currency = draw(st.sampled_from(("USD", "EUR", "GBP", "JPY")))
    cents = minor_unit(currency)
    order_id = f"O-{draw(st.integers(1, 10**6))}"
    at = iter(range(T0 + MINUTE_MS, T0 + 10**9, MINUTE_MS))

    def amount(high: int) -> Decimal:
        return money(draw(st.integers(0, max(high, 0))), currency)

    def units(value: Decimal) -> int:
        return int(value.scaleb(cents))

    lines, taxes = [], defaultdict(Decimal)
    for n in range(draw(st.integers(1, 4))):
        sku = draw(st.sampled_from(("SKU-A", "SKU-B", "SKU-C")))
        quantity = draw(st.integers(1, 4))
        price = amount(20_000)
        discount = amount(units(quantity * price))
        jurisdictions = draw(st.lists(st.sampled_from(JURISDICTIONS), max_size=2, unique=True))
        tax_lines = [
            tax_line(j, str(amount(units(quantity * price - discount) // 4))) for j in jurisdictions
        ]
        for tax in tax_lines:
            taxes[tax["jurisdiction"]] += tax["amount"]
        lines.append(
            {
                "line_id": str(n + 1),
                "sku": sku,
                "quantity": quantity,
                "unit_price": price,
                "discount": discount,
                "tax_lines": tax_lines,
            }
        )
    nets = sum((x["quantity"] * x["unit_price"] - x["discount"] for x in lines), Decimal(0))
    order_discount = amount(units(nets)) if draw(st.booleans()) else None
    shipping = None
    if draw(st.booleans()):
        charge = amount(2_000)
        shipping_taxes = [
            (j, str(amount(units(charge) // 5)))
            for j in draw(st.lists(st.sampled_from(JURISDICTIONS), max_size=1))
        ]
        for j, tax in shipping_taxes:
            taxes[j] += Decimal(tax)
        shipping = (str(charge), shipping_taxes)
    merchandise = sum((x["quantity"] * x["unit_price"] for x in lines), Decimal(0))
    discounts = sum((x["discount"] for x in lines), order_discount or Decimal(0))
    shipped_charge = Decimal(shipping[0]) if shipping else Decimal(0)
    total = merchandise - discounts + shipped_charge + sum(taxes.values(), Decimal(0))
    on_account = draw(st.booleans()) and draw(st.booleans())
    events = [
        placed(
            order_id,
            lines,
            str(total),
            currency=currency,
            discount=None if order_discount is None else str(order_discount),
            shipping=shipping,
            payment_terms="ON_ACCOUNT" if on_account else "PREPAID",
        )
    ]
    confirmed_ms = draw(st.sampled_from((None, T0 + 30 * MINUTE_MS)))

    gateway = draw(st.sampled_from(GATEWAYS))

    def paid(e: InputEvent) -> InputEvent:
        e.payload["gateway"] = gateway
        return e

    captured_total = Decimal(0)
    if not on_account:
        first = amount(units(total))
        for part in (first, total - first) if draw(st.booleans()) else (total,):
            events.append(paid(captured(order_id, str(part), currency=currency, at=next(at))))
        captured_total = total

    ordered: dict[str, int] = defaultdict(int)
    for x in lines:
        ordered[x["sku"]] += x["quantity"]
    fate = draw(st.sampled_from(("shipped", "partly shipped", "unshipped", "cancelled")))
    is_cancelled = fate == "cancelled"
    shipped: dict[str, int] = dict.fromkeys(ordered, 0)
    if is_cancelled:
        # A cancellation and a shipment conflict (whichever comes second is dead-lettered), so
        # a cancelled order ships nothing here.
        events.append(
            cancelled(order_id, at=draw(st.sampled_from((T0 + 10 * MINUTE_MS, T0 + HOUR_MS))))
        )
        if not on_account:
            events.append(
                paid(
                    payment_refunded(
                        order_id, str(total), "RF-cancel", currency=currency, at=T0 + 2 * HOUR_MS
                    )
                )
            )
    elif fate != "unshipped":
        # Every unit spread over one to three shipments; a partly shipped order lacks the last.
        shipments = draw(st.integers(2 if fate == "partly shipped" else 1, 3))
        plan: list[dict[str, int]] = [{} for _ in range(shipments)]
        for sku, quantity in ordered.items():
            for n in range(shipments):
                low = 1 if n == 0 else 0
                take = quantity if n == shipments - 1 else draw(st.integers(low, quantity))
                plan[n][sku] = take
                quantity -= take
        if fate == "partly shipped":
            plan.pop()
        for n, take in enumerate(plan):
            take = {sku: q for sku, q in take.items() if q}
            if take:
                for sku, q in take.items():
                    shipped[sku] += q
                events.append(fulfilled(order_id, f"F{n + 1}", EAST, take, at=next(at)))
    fully_shipped = shipped == ordered
    refunded_total = Decimal(0)
    paid_back = Decimal(0)
    if fully_shipped:
        left = dict(ordered)
        for n in range(draw(st.integers(0, 2))):
            back = {sku: draw(st.integers(0, q)) for sku, q in left.items()}
            for sku, q in back.items():
                left[sku] -= q
            refund_total = amount(units(total - refunded_total))
            refunded_total += refund_total
            refund_id = f"RF-{n + 1}"
            # The total spread over the SKUs' amounts and refunded shipping, or part of it
            # named nowhere, as an event without amounts would leave it.
            rest, returned = refund_total, {}
            for sku, q in back.items():
                if q:
                    part = amount(units(rest))
                    rest -= part
                    returned[sku] = (q, str(part))
            events.append(
                refunded(
                    order_id,
                    refund_id,
                    returned,
                    total=str(refund_total),
                    shipping_amount=str(rest) if draw(st.booleans()) else None,
                    restock=draw(st.booleans()),
                    currency=currency,
                    at=next(at),
                )
            )
            if not on_account and draw(st.integers(0, 3)):
                events.append(
                    paid(
                        payment_refunded(
                            order_id, str(refund_total), refund_id, currency=currency, at=next(at)
                        )
                    )
                )
                paid_back += refund_total
    is_settled = not on_account and not is_cancelled and draw(st.booleans())
    if is_settled:
        gross = captured_total - paid_back
        fee = amount(units(gross) // 20)
        events.append(paid(settled(order_id, str(gross), str(fee), currency=currency, at=next(at))))
    redelivered = draw(st.lists(st.sampled_from(events), max_size=2))
    events += redelivered
    arrivals = [draw(st.permutations(range(len(events)))) for _ in range(2)]
    return Story(
        order_id=order_id,
        currency=currency,
        events=events,
        arrivals=arrivals,
        confirmed_ms=confirmed_ms,
        unit_costs={sku: money(draw(st.integers(0, 10_000)), "USD") for sku in ordered},
        fully_shipped=fully_shipped,
        shipped_any=any(shipped.values()),
        cancelled=is_cancelled,
        settled=is_settled,
        merchandise=merchandise,
        discounts=discounts,
        shipping=shipped_charge,
        taxes=dict(taxes),
        total=total,
    )


def journal_of(
    story: Story, arrival: Sequence[int], mapping: FinanceMapping, upto: int | None = None
) -> list[JournalEntry]:
    """The order's journal after the first `upto` arrivals, with cost entries at unit cost."""
    order = Order(story.order_id)
    for i in arrival[:upto]:
        apply(order, story.events[i])
    entries = order_journal(order, mapping, story.confirmed_ms)
    for fulfilment_id, fulfilment in order.fulfilments.items():
        for sku, quantity in fulfilment.lines.items():
            entries.append(
                cost_entry(
                    story.order_id,
                    sku,
                    fulfilment_id,
                    fulfilment.warehouse,
                    quantity,
                    story.unit_costs[sku],
                    "USD",
                    fulfilment.at_ms,
                    mapping,
                    restock=False,
                )
            )
    for refund_id, refund in order.refunds.items():
        for sku in refund.warehouses:
            entries.append(
                cost_entry(
                    story.order_id,
                    sku,
                    refund_id,
                    refund.warehouses[sku],
                    refund.lines[sku],
                    story.unit_costs[sku],
                    "USD",
                    refund.at_ms,
                    mapping,
                    restock=True,
                )
            )
    return sorted(
        (entry for entry in entries if entry is not None), key=lambda e: (e.posted_ms, e.entry_id)
    )


@given(stories(), st.sampled_from(list(Recognition)))
@settings(max_examples=200, deadline=None)
def test_every_stream_gives_a_balanced_journal_that_adds_up(
    story: Story, recognition: Recognition
) -> None:
    mapping = replace(MAPPING, revenue_recognition=recognition)
    first, second = story.arrivals
    journal = journal_of(story, first, mapping)

    # Balanced in both currencies, unique ids, valid Avro.
    for entry in journal:
        assert entry.balanced, entry
        CODEC.encode("erpbridge.JournalEntry", entry.to_datum(), topic="finance.journal")
    ids = [entry.entry_id for entry in journal]
    assert len(ids) == len(set(ids))

    # Arrival order does not matter (down to the Decimals' exponents), and no entry changes
    # once it has been produced.
    assert repr(journal_of(story, second, mapping)) == repr(journal)
    final = by_id(journal)
    for upto in range(1, len(first)):
        for entry in journal_of(story, first, mapping, upto):
            assert final.get(entry.entry_id) == entry, entry.entry_id

    # Per account, what the mapping says the stream adds up to.
    currency, usd = story.currency, "USD"
    expected: dict[tuple[str, str, str | None], Decimal] = defaultdict(Decimal)

    def book(
        template: str, component: str, amount: Decimal, in_currency: str = currency, **kw: Any
    ) -> None:
        account = mapping.account(template, component, **kw)
        jurisdiction = kw.get("jurisdiction")
        expected[(account, in_currency, jurisdiction)] += amount

    if recognition is Recognition.SHIPMENT:
        recognised = story.fully_shipped
        partly = story.shipped_any and not story.fully_shipped
    else:
        recognised = story.confirmed_ms is not None and not story.cancelled
        partly = False
    if recognised:
        book("sale", "receivable", story.total)
        book("sale", "discounts", story.discounts)
        book("sale", "merchandise", -story.merchandise)
        book("sale", "shipping", -story.shipping)
        for j, tax in story.taxes.items():
            book("sale", "tax", -tax, jurisdiction=j)
    order = Order(story.order_id)
    for i in first:
        apply(order, story.events[i])
    for payment in order.payments.values():
        gateway = payment.gateway
        for c in payment.captures.values():
            book("payment_capture", "clearing", c.amount, gateway=gateway)
            book("payment_capture", "receivable", -c.amount)
        for r in payment.refunds.values():
            book("payment_refund", "receivable", r.amount)
            book("payment_refund", "clearing", -r.amount, gateway=gateway)
        for p in payment.payouts.values():
            book("payment_settlement", "bank", p.gross - p.fee)
            book("payment_settlement", "fee", p.fee)
            book("payment_settlement", "clearing", -p.gross, gateway=gateway)
    for refund_id, refund in order.refunds.items():
        note = final.get(f"{story.order_id}/journal/credit-note/{refund_id}")
        succeeded = order.placement is not None and (
            order.placement.payment_terms == "ON_ACCOUNT"
            or any(refund_id in p.refunds for p in order.payments.values())
        )
        assert (note is not None) == (succeeded and refund.total > 0)
        if note is None:
            continue
        # The refund total, tax included, is exactly what the customer is credited, split
        # over returns, shipping and tax; the split itself has its own unit tests.
        book("credit_note", "receivable", -refund.total)
        for line in note.lines:
            if line.debit:
                expected[(line.account, currency, line.tax_jurisdiction)] += line.debit
        assert sum((x.debit for x in note.lines), Decimal(0)) == refund.total
    for fulfilment in order.fulfilments.values():
        for sku, quantity in fulfilment.lines.items():
            book("cogs", "cogs", quantity * story.unit_costs[sku], usd)
            book("cogs", "inventory", -quantity * story.unit_costs[sku], usd)
    for refund in order.refunds.values():
        for sku in refund.warehouses:
            book("restock", "cogs", -refund.lines[sku] * story.unit_costs[sku], usd)
            book("restock", "inventory", refund.lines[sku] * story.unit_costs[sku], usd)

    actual = net_debits(journal)
    if partly:
        # Part of the order shipped: the per-shipment shares have their own unit tests; here
        # everything else must add up.
        sales = [e for e in journal if "/journal/sale" in e.entry_id]
        for key, amount in net_debits(sales).items():
            actual[key] = actual.get(key, Decimal(0)) - amount
        actual = {key: amount for key, amount in actual.items() if amount}
    assert actual == {key: amount for key, amount in expected.items() if amount}

    # Once everything has happened, the customer and the gateway owe nothing: the generated
    # captures cover the total, each refund is paid back in full and the payout settles what
    # is left.
    if recognised and not partly and order.placement and order.placement.payment_terms == "PREPAID":
        assert ("1200", currency, None) not in actual
        if story.settled:
            clearing = mapping.account(
                "payment_capture", "clearing", gateway=next(iter(order.payments.values())).gateway
            )
            assert (clearing, currency, None) not in actual


@settings(max_examples=500, deadline=None)
@given(
    units=st.integers(-(10**9), 10**9),
    digits_beyond=st.sampled_from([0, 0, 1, 3]),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
    numerator=st.integers(-(10**6), 10**6),
    denominator=st.integers(1, 10**6),
)
def test_a_share_is_the_exact_product_rounded_half_even_to_the_minor_unit(
    units: int, digits_beyond: int, currency: str, numerator: int, denominator: int
) -> None:
    """The integer arithmetic of `_share` against Fraction and Decimal, the way it was first
    written, down to the exponent and the sign of zero that the encoded entry shows."""
    amount = Decimal(units).scaleb(-(minor_unit(currency) + digits_beyond))
    fraction = Fraction(numerator, denominator)
    exact = Fraction(amount) * fraction
    expected = quantize_minor(Decimal(exact.numerator) / Decimal(exact.denominator), currency)
    assert str(_share(amount, fraction, currency)) == str(expected)

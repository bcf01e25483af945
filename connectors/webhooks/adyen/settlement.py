"""Adyen's Settlement details report to PaymentSettled events: what a payout settled per
payment, net of Adyen's fees. Pure: the report's text comes in as a value.

Adyen makes a report for each payout batch and announces it with a REPORT_AVAILABLE
notification naming the file (settlement_detail_report_batch_<n>.csv). Its columns are
read by their headers, as Adyen documents them
(docs.adyen.com/reporting/settlement-reconciliation/transaction-level/settlement-details-report):
accounts add columns and newer reports move some, the names stay. A `Settled` row is a
captured payment in the batch: `Gross Credit (GC)` in `Gross Currency`, and in `Net
Currency` the `Net Credit (NC)` after four fees (`Commission`, `Markup`, `Scheme Fees`,
`Interchange`, each (NC)). Other rows (refunds, chargebacks, the batch's own fees and
payout) are not a payment's settlement: refunds come as REFUND notifications already.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

from connectors.webhooks.amounts import currency_code, decimal, plain
from connectors.webhooks.inputs import Input, Unmappable, payment_input

SOURCE = "adyen"
GATEWAY = "adyen"
REPORT = re.compile(r"settlement_detail_report_batch_(\d+)\.csv")
"""The report a REPORT_AVAILABLE item names in its pspReference (other reports: not ingested)."""
_FEES = ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")
_REQUIRED = (
    "Merchant Account", "Psp Reference", "Merchant Reference", "Type", "Gross Currency",
    "Gross Credit (GC)", "Exchange Rate", "Net Currency", "Net Credit (NC)", "Batch Number",
    *_FEES,
)  # fmt: skip


def report_file(item: dict[str, Any]) -> str | None:
    """The settlement report a REPORT_AVAILABLE item announces; None for any other item."""
    if item.get("eventCode") != "REPORT_AVAILABLE":
        return None
    name = item.get("pspReference")
    return name if isinstance(name, str) and REPORT.fullmatch(name) else None


def settlements(report: str, file_name: str, occurred_at: str) -> list[Input]:
    """A PaymentSettled per Settled row of the report `file_name`, at `occurred_at` (when
    Adyen announced it: the report's own times name no offset)."""
    rows = csv.DictReader(io.StringIO(report))
    missing = [name for name in _REQUIRED if name not in (rows.fieldnames or [])]
    if missing:
        raise Unmappable("invalid-report", f"{file_name} has no column {', '.join(missing)}")
    found = []
    for number, row in enumerate(rows, start=2):
        if row["Type"] != "Settled":
            continue
        where = f"{file_name} line {number}"
        found.append(_settled(row, where, occurred_at))
    return found


def _settled(row: dict[str, str], where: str, occurred_at: str) -> Input:
    missing = [
        name for name in ("Psp Reference", "Merchant Reference", "Batch Number") if not row[name]
    ]
    if missing:
        raise Unmappable("missing-field", f"{where} has no {', '.join(missing)}")
    currency = currency_code(row["Gross Currency"], f"{where} Gross Currency")
    if row["Net Currency"] != currency or decimal(row["Exchange Rate"], where) != 1:
        raise Unmappable(
            "converted-settlement",
            f"{where}: {currency} settled as {row['Net Currency']} at {row['Exchange Rate']}; "
            "erpbridge posts a settlement in its payment's currency",
        )
    gross = decimal(row["Gross Credit (GC)"], f"{where} Gross Credit (GC)")
    fee = sum((_amount(row, name, where) for name in _FEES), Decimal(0))
    net = decimal(row["Net Credit (NC)"], f"{where} Net Credit (NC)")
    if gross - fee != net:
        raise Unmappable(
            "settlement-mismatch", f"{where}: gross {gross} less fees {fee} is not net {net}"
        )
    psp = row["Psp Reference"]
    batch = f"{row['Merchant Account']}/batch-{row['Batch Number']}"
    event = {
        "type": "PaymentSettled",
        "payout_id": batch,
        "payment_id": psp,
        "gateway": GATEWAY,
        "gross": plain(gross),
        "fee": plain(fee),
        "net": plain(net),
        "currency": currency,
    }
    # A payment is settled once per batch it is in.
    event_id = f"{SOURCE}:{psp}:SETTLED:{batch}"
    return payment_input(event_id, occurred_at, SOURCE, row["Merchant Reference"], event)


def _amount(row: dict[str, str], name: str, where: str) -> Decimal:
    # A fee that does not apply is left blank.
    return decimal(row[name], f"{where} {name}") if row[name] else Decimal(0)

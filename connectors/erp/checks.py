"""What the connector refuses itself, before any ERP sees a command.

A check here is about the command alone, the same for every ERP; what only the ERP knows
(does the SKU exist?) is the adapter's to find out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connectors.erp.adapter import PermanentError
from streams.domain.commands import Command, Kind


def refuse(command: Command) -> PermanentError | None:
    """Why `command` must not be sent, or None."""
    if command.kind is Kind.POST_JOURNAL_ENTRY:
        for entry in command.body["entries"]:
            problem = _unbalanced(entry)
            if problem:
                return PermanentError("unbalanced-entry", f"entry {entry['entry_id']}: {problem}")
    return None


def _unbalanced(entry: dict[str, Any]) -> str | None:
    lines = entry["lines"]
    if not lines:
        return "has no lines"
    for debit, credit, what in (
        ("debit", "credit", entry["transaction_currency"]),
        ("functional_debit", "functional_credit", entry["functional_currency"]),
    ):
        debits = sum((line[debit] for line in lines), Decimal(0))
        credits = sum((line[credit] for line in lines), Decimal(0))
        if debits != credits:
            return f"debits {debits} != credits {credits} in {what}"
    return None

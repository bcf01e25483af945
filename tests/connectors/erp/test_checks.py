"""connectors.erp.checks: what the connector refuses before any ERP sees it."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from connectors.erp.checks import refuse
from streams.domain.commands import Command, Kind
from tests.support import TEMPLATES


def _journal(entries: list[dict[str, Any]]) -> Command:
    return Command("e/post", Kind.POST_JOURNAL_ENTRY, "tryton", 0, "e", {"entries": entries})


def _entry() -> dict[str, Any]:
    entries: list[dict[str, Any]] = TEMPLATES[Kind.POST_JOURNAL_ENTRY]["entries"]
    return copy.deepcopy(entries[0])


def test_a_balanced_entry_and_other_kinds_pass() -> None:
    assert refuse(_journal([_entry(), _entry()])) is None
    body = TEMPLATES[Kind.CREATE_SALES_ORDER]
    assert (
        refuse(Command("o/sales-order/1", Kind.CREATE_SALES_ORDER, "tryton", 0, "o", body)) is None
    )


def test_an_entry_unbalanced_in_either_currency_is_refused_naming_it() -> None:
    in_transaction = _entry()
    in_transaction["lines"][0]["debit"] += Decimal("0.01")
    refusal = refuse(_journal([_entry(), in_transaction]))
    assert refusal is not None and refusal.permanent
    assert refusal.code == "unbalanced-entry"
    assert in_transaction["entry_id"] in refusal.message
    assert in_transaction["transaction_currency"] in refusal.message

    functional = _entry()
    functional["lines"][0]["functional_credit"] += Decimal("1")
    refusal = refuse(_journal([functional]))
    assert refusal is not None and functional["functional_currency"] in refusal.message


def test_an_entry_without_lines_is_refused() -> None:
    empty = _entry()
    empty["lines"] = []
    refusal = refuse(_journal([empty]))
    assert refusal is not None and "no lines" in refusal.message

"""Reading back from the session's Tryton what the connector made there."""

from __future__ import annotations

from collections import Counter

from connectors.erp.tryton import TrytonAdapter
from streams.local.tryton import Tryton
from tests.support import on_tryton


def sales(tryton: Tryton, command_ids: list[str]) -> Counter[str]:
    """Sales orders per sales-order command id (their reference)."""
    return Counter(on_tryton(tryton, lambda a: a.sales_by_reference(command_ids)))


def journal_entries(tryton: Tryton, entry_ids: list[str]) -> Counter[str]:
    """Account moves per journal entry id (their description)."""

    async def moves(adapter: TrytonAdapter) -> Counter[str]:
        rows = await adapter.rpc.search_read(
            "account.move", [["description", "in", entry_ids]], ["description"]
        )
        return Counter(row["description"] for row in rows)

    return on_tryton(tryton, moves)

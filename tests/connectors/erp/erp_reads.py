"""Reading back from the session's Tryton what the connector made there."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from connectors.erp.tryton import TrytonAdapter
from streams.local.tryton import Tryton

T = TypeVar("T")


def read(tryton: Tryton, reader: Callable[[TrytonAdapter], Awaitable[T]]) -> T:
    """`reader(adapter)` with an adapter of its own, logged in for this one read."""

    async def run() -> T:
        adapter = TrytonAdapter(tryton.url, tryton.login, tryton.password)
        await adapter.open()
        try:
            return await reader(adapter)
        finally:
            await adapter.close()

    return asyncio.run(run())


def sales(tryton: Tryton, command_ids: list[str]) -> Counter[str]:
    """Sales orders per sales-order command id (their reference)."""
    return Counter(read(tryton, lambda a: a.sales_by_reference(command_ids)))


def journal_entries(tryton: Tryton, entry_ids: list[str]) -> Counter[str]:
    """Account moves per journal entry id (their description)."""

    async def moves(adapter: TrytonAdapter) -> Counter[str]:
        rows = await adapter.rpc.search_read(
            "account.move", [["description", "in", entry_ids]], ["description"]
        )
        return Counter(row["description"] for row in rows)

    return read(tryton, moves)

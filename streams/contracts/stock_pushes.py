"""The records of storefront.stock-pushes: a stock level erpbridge is about to set on a
storefront, latest per SKU and warehouse (JSON). The storefront sink writes one before each
push; the webhooks connector reads them to tell an echo of erpbridge's push from a real
stock change (connectors.webhooks.echoes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Push:
    sku: str
    warehouse_id: str
    quantity: int
    pushed_ms: int

    @property
    def key(self) -> bytes:
        return f"{self.sku}@{self.warehouse_id}".encode()

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "sku": self.sku,
                "warehouse_id": self.warehouse_id,
                "quantity": self.quantity,
                "pushed_ms": self.pushed_ms,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Push:
        """ValueError for a record that is not a push."""
        fields: Any = json.loads(data)
        try:
            push = cls(
                fields["sku"], fields["warehouse_id"], fields["quantity"], fields["pushed_ms"]
            )
        except (KeyError, TypeError):
            raise ValueError(f"not a stock push: {data[:80]!r}") from None
        if not isinstance(push.quantity, int) or not isinstance(push.pushed_ms, int):
            raise ValueError(f"not a stock push: {data[:80]!r}")
        return push

"""Does the ERP agree with erpbridge? Each order that became a sales order is there exactly
once, and its stock per SKU is erpbridge's. Pure: the caller reads both sides."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from streams.ops.report import mark, table

StockKey = tuple[str, str]
"""(SKU, warehouse id)."""


@dataclass(frozen=True)
class Audit:
    expected_orders: frozenset[str]
    """Orders erpbridge sent to the ERP as sales orders."""
    erp_sales: Counter[str]
    """Sales orders per order id, as the ERP holds them."""
    our_stock: Mapping[StockKey, int]
    erp_stock: Mapping[StockKey, int]

    @property
    def missing(self) -> list[str]:
        return sorted(self.expected_orders - set(self.erp_sales))

    @property
    def doubled(self) -> list[str]:
        return sorted(o for o, n in self.erp_sales.items() if n > 1)

    @property
    def unexpected(self) -> list[str]:
        return sorted(set(self.erp_sales) - self.expected_orders)

    def stock_rows(self) -> list[tuple[str, int, int]]:
        """Per SKU over its warehouses: erpbridge's on hand, the ERP's."""
        ours: Counter[str] = Counter()
        theirs: Counter[str] = Counter()
        for (sku, _), n in self.our_stock.items():
            ours[sku] += n
        for (sku, _), n in self.erp_stock.items():
            theirs[sku] += n
        return [(sku, ours[sku], theirs[sku]) for sku in sorted(set(ours) | set(theirs))]

    @property
    def stock_mismatches(self) -> list[StockKey]:
        keys = set(self.our_stock) | set(self.erp_stock)
        return sorted(k for k in keys if self.our_stock.get(k, 0) != self.erp_stock.get(k, 0))

    @property
    def ok(self) -> bool:
        return not (self.missing or self.doubled or self.unexpected or self.stock_mismatches)

    def render(self) -> str:
        """The check as a plain-text table, then what differs, if anything."""
        once = (
            len(self.expected_orders)
            - len(self.missing)
            - len(set(self.doubled) & self.expected_orders)
        )
        header = ("check", "erpbridge", "ERP", "result")
        rows = [
            (
                "sales orders, exactly once",
                str(len(self.expected_orders)),
                str(once),
                mark(not (self.missing or self.doubled or self.unexpected)),
            ),
            *(
                (f"stock {sku}", str(ours), str(theirs), mark(ours == theirs))
                for sku, ours, theirs in self.stock_rows()
            ),
        ]
        lines = table(header, rows)
        problems = [
            *(f"missing in the ERP: {o}" for o in self.missing),
            *(f"{self.erp_sales[o]} sales orders in the ERP for {o}" for o in self.doubled),
            *(f"in the ERP but never sent: {o}" for o in self.unexpected),
            *(
                f"stock of {sku} at {wh}: erpbridge {self.our_stock.get((sku, wh), 0)}, "
                f"ERP {self.erp_stock.get((sku, wh), 0)}"
                for sku, wh in self.stock_mismatches
            ),
        ]
        verdict = (
            "the ERP agrees with erpbridge: every order once, stock per SKU and warehouse equal"
            if self.ok
            else "the ERP DISAGREES with erpbridge:"
        )
        return "\n".join([*lines, "", verdict, *problems])

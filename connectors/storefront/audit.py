"""Does a storefront show what erpbridge and the ERP say? Per SKU, the quantity it sells at
the warehouse the route maps against erpbridge's available there (less the route's buffer),
and its price against the ERP's list price. Pure: the caller reads both sides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from streams.ops.report import mark, table


@dataclass(frozen=True)
class StorefrontAudit:
    route: str
    warehouse: str
    currency: str
    our_available: Mapping[str, int]
    """erpbridge's available per SKU at the warehouse, less the route's buffer."""
    shop_available: Mapping[str, int]
    """What the storefront sells per SKU at the warehouse's location."""
    erp_prices: Mapping[str, Decimal]
    shop_prices: Mapping[str, Decimal]

    def _skus(self) -> list[str]:
        return sorted(set(self.our_available) | set(self.erp_prices))

    @property
    def stock_mismatches(self) -> list[str]:
        return [
            sku
            for sku in sorted(self.our_available)
            if self.shop_available.get(sku) != self.our_available[sku]
        ]

    @property
    def price_mismatches(self) -> list[str]:
        return [
            sku
            for sku in sorted(self.erp_prices)
            if self.shop_prices.get(sku) != self.erp_prices[sku]
        ]

    @property
    def ok(self) -> bool:
        return not (self.stock_mismatches or self.price_mismatches)

    def render(self) -> str:
        header = ("storefront check", "erpbridge / ERP", self.route, "result")
        rows = []
        for sku in self._skus():
            if sku in self.our_available:
                ours, theirs = self.our_available[sku], self.shop_available.get(sku)
                rows.append((f"available {sku} at {self.warehouse}", str(ours),
                             _shown(theirs), mark(ours == theirs)))  # fmt: skip
            if sku in self.erp_prices:
                price, shown = self.erp_prices[sku], self.shop_prices.get(sku)
                rows.append((f"price {sku} {self.currency}", f"{price:.2f}",
                             _shown(shown if shown is None else f"{shown:.2f}"),
                             mark(price == shown)))  # fmt: skip
        verdict = (
            f"{self.route} agrees: it sells what erpbridge has available, at the ERP's prices"
            if self.ok
            else f"{self.route} DISAGREES: "
            + ", ".join(
                [
                    *(f"available {sku}" for sku in self.stock_mismatches),
                    *(f"price {sku}" for sku in self.price_mismatches),
                ]
            )
        )
        return "\n".join([*table(header, rows), "", verdict])


def _shown(value: object) -> str:
    return "-" if value is None else str(value)

"""Exact money arithmetic: rounding to a currency's minor unit and splitting amounts.

Money is always `decimal.Decimal` beside an ISO 4217 code; rounding is banker's rounding
(ROUND_HALF_EVEN), which does not drift upwards over many rounded amounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

# ISO 4217 minor units (digits after the decimal point) of the currencies in circulation
# that commerce systems commonly settle in.
MINOR_UNITS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KRW": 0, "KWD": 3, "LYD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2,
    "OMR": 3, "PHP": 2, "PLN": 2, "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2,
    "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0,
    "ZAR": 2,
}  # fmt: skip


_QUANTA = {currency: Decimal(1).scaleb(-digits) for currency, digits in MINOR_UNITS.items()}
"""The minor unit of each currency as a Decimal (0.01 for USD), made once."""


class UnknownCurrencyError(ValueError):
    def __init__(self, currency: str) -> None:
        super().__init__(
            f"unknown ISO 4217 currency code {currency!r} (expected an upper-case code such as "
            "USD, EUR or JPY that streams.domain.money.MINOR_UNITS lists)"
        )
        self.currency = currency


def minor_unit(currency: str) -> int:
    """Digits after the decimal point in `currency`."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrencyError(currency) from None


def quantize_minor(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half-to-even to the minor unit of `currency` (0.01 USD, 1 JPY)."""
    if not isinstance(amount, Decimal):
        # A float would already carry binary rounding error; refuse it rather than hide it.
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__}")
    quantum = _QUANTA.get(currency)
    if quantum is None:
        quantum = Decimal(1).scaleb(-minor_unit(currency))
    return amount.quantize(quantum, rounding=ROUND_HALF_EVEN)


def allocate(amount: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split `amount` in proportion to `weights`, in whole minor units that sum to it exactly.

    Largest remainders get the leftover units; ties go to the earlier weight, so the split
    is deterministic. Used to spread an order-level discount over the lines it applies to.
    """
    if any(w < 0 for w in weights) or sum(weights, Decimal(0)) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    if quantize_minor(amount, currency) != amount:
        raise ValueError(f"{amount} is not a whole number of {currency} minor units")
    exponent = minor_unit(currency)
    units = int(amount.scaleb(exponent))
    total = sum((Fraction(w) for w in weights), Fraction(0))
    shares = [units * Fraction(w) / total for w in weights]
    floors = [math.floor(share) for share in shares]
    leftover = units - sum(floors)
    by_remainder = sorted(range(len(shares)), key=lambda i: (floors[i] - shares[i], i))
    for i in by_remainder[:leftover]:
        floors[i] += 1
    return [Decimal(n).scaleb(-exponent) for n in floors]

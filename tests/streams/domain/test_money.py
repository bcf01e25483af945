"""Rounding to a currency's minor unit and exact allocation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.money import (
    MINOR_UNITS,
    UnknownCurrencyError,
    allocate,
    minor_unit,
    quantize_minor,
)

amounts = st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=6)
currencies = st.sampled_from(sorted(MINOR_UNITS))


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2.345", "USD", "2.34"),  # ties go to the even neighbour...
        ("2.355", "USD", "2.36"),
        ("2.3450001", "USD", "2.35"),  # ...only exact ties
        ("-2.345", "EUR", "-2.34"),
        ("19.99", "GBP", "19.99"),
        ("7", "USD", "7.00"),
        ("1234.5", "JPY", "1234"),
        ("1235.5", "JPY", "1236"),
        ("0.4999", "JPY", "0"),
        ("1.2345", "BHD", "1.234"),
        ("1.2355", "KWD", "1.236"),
    ],
)
def test_rounds_half_even_to_the_minor_unit(amount: str, currency: str, expected: str) -> None:
    result = quantize_minor(Decimal(amount), currency)
    assert result == Decimal(expected)
    assert result.as_tuple().exponent == Decimal(expected).as_tuple().exponent


def test_minor_units_of_the_sample_currencies() -> None:
    assert [minor_unit(c) for c in ("USD", "EUR", "GBP", "JPY")] == [2, 2, 2, 0]


@pytest.mark.parametrize("code", ["XYZ", "usd", "US", "", "EURO"])
def test_unknown_currency_is_a_clear_error(code: str) -> None:
    with pytest.raises(UnknownCurrencyError, match="unknown ISO 4217 currency code") as info:
        quantize_minor(Decimal("1.00"), code)
    assert info.value.currency == code
    assert isinstance(info.value, ValueError)


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        quantize_minor(0.1, "USD")  # type: ignore[arg-type]


@given(amounts, currencies)
def test_quantized_is_within_half_a_unit_and_stable(amount: Decimal, currency: str) -> None:
    result = quantize_minor(amount, currency)
    unit = Decimal(1).scaleb(-minor_unit(currency))
    assert result.as_tuple().exponent == -minor_unit(currency)
    assert abs(result - amount) <= unit / 2
    assert quantize_minor(result, currency) == result


def test_allocate_in_proportion() -> None:
    assert allocate(Decimal("8.60"), [Decimal("48"), Decimal("38")], "USD") == [
        Decimal("4.80"),
        Decimal("3.80"),
    ]


def test_allocate_gives_leftover_units_to_the_largest_remainders_first() -> None:
    # 1.00 / 3 = 0.333... each; the one leftover cent goes to the first of the tied shares.
    assert allocate(Decimal("1.00"), [Decimal(1)] * 3, "USD") == [
        Decimal("0.34"),
        Decimal("0.33"),
        Decimal("0.33"),
    ]
    assert allocate(Decimal("10"), [Decimal("1"), Decimal("2")], "JPY") == [Decimal(3), Decimal(7)]


def test_allocate_rejects_what_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="minor units"):
        allocate(Decimal("1.005"), [Decimal(1)], "USD")
    with pytest.raises(ValueError, match="positive sum"):
        allocate(Decimal("1.00"), [Decimal(0), Decimal(0)], "USD")
    with pytest.raises(ValueError, match="non-negative"):
        allocate(Decimal("1.00"), [Decimal(2), Decimal(-1)], "USD")


@given(
    st.integers(min_value=-(10**8), max_value=10**8),
    st.lists(st.decimals(min_value=0, max_value=10**6, places=4), min_size=1, max_size=8),
    currencies,
)
def test_allocation_sums_exactly_and_stays_proportional(
    units: int, weights: list[Decimal], currency: str
) -> None:
    if sum(weights) <= 0:
        weights = [*weights, Decimal(1)]
    unit = Decimal(1).scaleb(-minor_unit(currency))
    amount = units * unit
    shares = allocate(amount, weights, currency)
    assert sum(shares) == amount
    for share, weight in zip(shares, weights, strict=True):
        assert quantize_minor(share, currency) == share
        assert abs(share - amount * weight / sum(weights)) < unit

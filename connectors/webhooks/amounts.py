"""Money and times as the friendly JSON form wants them, from what providers send.

Money stays exact: a decimal string stays that string's value; minor units are scaled by
the currency's exponent (JPY 0, USD 2, KWD 3). A float never gets here: bodies are parsed
with JSON numbers as Decimal."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.webhooks.inputs import Unmappable
from streams.contracts.jsonlines import format_timestamp
from streams.domain.money import UnknownCurrencyError, minor_unit


def decimal(value: Any, path: str) -> Decimal:
    """A provider's decimal amount ("199.00", or a JSON number parsed as Decimal)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Unmappable("invalid-amount", f"{path} is {value!r:.40}, not a decimal amount")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise Unmappable(
            "invalid-amount", f"{path} is {value!r:.40}, not a decimal amount"
        ) from None
    if not number.is_finite():
        raise Unmappable("invalid-amount", f"{path} is {value!r:.40}, not a decimal amount")
    return number


def total(items: Iterable[dict[str, Any]], key: str, path: str) -> Decimal:
    """The sum of each item's decimal `key`; `path` names the list ("shipping_lines")."""
    return sum(
        (decimal(item.get(key), f"{path}[{i}].{key}") for i, item in enumerate(items)),
        Decimal("0.00"),
    )


def money(value: Any, path: str) -> str:
    """The friendly form of a decimal amount: its plain decimal text."""
    return plain(decimal(value, path))


def plain(number: Decimal) -> str:
    """Decimal text without an exponent ("1E+2" is "100")."""
    return f"{number:f}"


def currency_code(value: Any, path: str) -> str:
    """An ISO 4217 code erpbridge knows (Stripe sends lower case)."""
    if not isinstance(value, str):
        raise Unmappable("missing-currency", f"{path} is missing")
    code = value.upper()
    try:
        minor_unit(code)
    except UnknownCurrencyError as error:
        raise Unmappable("unknown-currency", f"{path}: {error}") from None
    return code


def from_minor_units(value: Any, currency: str, path: str) -> str:
    """An integer amount in `currency`'s minor units (1099 USD cents is "10.99")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unmappable("invalid-amount", f"{path} is {value!r:.40}, not an integer amount")
    return plain(Decimal(value).scaleb(-minor_unit(currency)))


def timestamp(value: Any, path: str) -> str:
    """An ISO-8601 time with its offset, as providers send it, checked."""
    if not isinstance(value, str):
        raise Unmappable("missing-field", f"{path} is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unmappable("invalid-time", f"{path} is {value!r:.40}, not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise Unmappable("invalid-time", f"{path} is {value!r:.40}, without a timezone")
    return value


def from_epoch(value: Any, path: str) -> str:
    """Seconds since the epoch (Stripe's `created`) as an ISO-8601 UTC time."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unmappable("invalid-time", f"{path} is {value!r:.40}, not epoch seconds")
    return format_timestamp(datetime.fromtimestamp(value, UTC))

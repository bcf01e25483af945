"""The finance journal: balanced double-entry journal entries for an order's financial events.

Which accounts an event is posted to, on which date and at which exchange rate is the finance
mapping (config/finance.json, `FinanceMapping`); how much is posted is decided here, from the
order's facts alone (streams.domain.orders). The same facts give the same entries, byte for
byte, whatever order the events arrived in, which keeps replays idempotent. An entry, once
produced, also keeps its content when later facts arrive, so the ERP, which de-duplicates on
the entry id, never holds a stale version; later facts only add entries.

The entries (Dr debit, Cr credit):
  sale                Dr receivable (what the customer owes), Dr sales discounts
                      / Cr revenue (units x list price), Cr shipping revenue,
                        Cr tax payable per jurisdiction
  payment_capture     Dr gateway clearing / Cr receivable
  payment_refund      Dr receivable / Cr gateway clearing
  payment_settlement  Dr bank (net), Dr gateway fees / Cr gateway clearing (gross)
  credit_note         Dr sales returns, Dr shipping revenue, Dr tax payable per jurisdiction
                      / Cr receivable (the refund total, tax included)
  cogs                Dr cost of goods sold / Cr inventory (quantity x the stock's unit cost)
  restock             Dr inventory / Cr cost of goods sold
For a paid, shipped and settled order, receivable and clearing net to zero.

Every receivable line names its party, the customer the amount is owed by (or, in credit, to),
so the ERP keeps each customer's balance. A payment's entries therefore wait for its order's
placement, which names the customer: until then the payment is on the order's state and its
`payment-without-sales-order` alert, not in the books.

Money: every amount is a Decimal rounded half-even to the transaction currency's minor unit,
converted at the entry's rate and rounded to the functional currency's minor unit; what that
conversion leaves unbalanced goes on an explicit line to the rounding account.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

from streams.domain.accounts import external_id
from streams.domain.commands import SOURCE, Command, Kind, journal_command_id
from streams.domain.money import UnknownCurrencyError, allocate, minor_unit, quantize_minor
from streams.domain.orders import Order, Payment, Placement, Refund

ZERO = Decimal(0)
_ONE = Decimal(1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AMOUNT_SCALE = Decimal("0.0001")
"""erpbridge.JournalLine amounts: decimal(18, 4)."""
_RATE_SCALE = Decimal("0.00000001")
"""erpbridge.JournalEntry.exchange_rate: decimal(18, 8)."""
_RATE_LIMIT = Decimal(10) ** 10
"""18 digits of precision with 8 after the point leave 10 before it."""


class Recognition(StrEnum):
    """When revenue is recognised (the accounting policy in the mapping)."""

    SHIPMENT = "shipment"
    CONFIRMATION = "confirmation"


@dataclass(frozen=True, slots=True)
class _Rule:
    """What the code posts for one template: its components on each side, the date it posts
    on and how it treats tax. The mapping file names an account per component and states the
    date and tax treatment, which the loader checks against these, so the file cannot claim a
    rule the code does not apply."""

    debit: tuple[str, ...]
    credit: tuple[str, ...]
    posting_date: str
    tax_treatment: str


RULES: dict[str, _Rule] = {
    "sale": _Rule(
        ("receivable", "discounts"),
        ("merchandise", "shipping", "tax"),
        "revenue_recognition",
        "liability",
    ),
    "payment_capture": _Rule(("clearing",), ("receivable",), "capture", "none"),
    "payment_refund": _Rule(("receivable",), ("clearing",), "payment_refund", "none"),
    "payment_settlement": _Rule(("bank", "fee"), ("clearing",), "payout", "none"),
    "credit_note": _Rule(("returns", "shipping", "tax"), ("receivable",), "refund", "reversal"),
    "cogs": _Rule(("cogs",), ("inventory",), "shipment", "none"),
    "restock": _Rule(("inventory",), ("cogs",), "refund", "none"),
}


PARTY_COMPONENTS = frozenset({"receivable"})
"""The components owed by or to the customer: their lines name the order's customer."""


class FinanceMappingError(ValueError):
    """The mapping file is wrong; the message names the file and the key."""


class MissingRateError(LookupError):
    def __init__(self, currency: str, on: date, source: str) -> None:
        super().__init__(
            f"no {currency} exchange rate effective on or before {on.isoformat()} in {source} "
            f"(exchange_rates.rates.{currency}); add one to post entries in {currency}"
        )
        self.currency = currency
        self.on = on


# -- the mapping -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FinanceMapping:
    functional_currency: str
    revenue_recognition: Recognition
    accounts: dict[str, str]
    """Account code -> name."""
    templates: dict[str, dict[str, str]]
    """Template -> component -> account code."""
    rounding_account: str
    clearing_by_gateway: dict[str, str]
    tax_by_jurisdiction: dict[str, str]
    rates: dict[str, tuple[tuple[date, Decimal], ...]]
    """Currency -> (effective date, functional units per unit), by date."""
    source: str = "the finance mapping"
    _rates_on: dict[tuple[str, date], Decimal] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """`rate` per currency and day asked: every entry asks, and the rates never change."""

    @classmethod
    def from_file(cls, path: Path) -> FinanceMapping:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FinanceMappingError(f"{path}: cannot read the finance mapping: {exc}") from exc
        return _Loader(str(path)).mapping(data)

    def account(
        self,
        template: str,
        component: str,
        *,
        gateway: str | None = None,
        jurisdiction: str | None = None,
    ) -> str:
        if component == "clearing" and gateway in self.clearing_by_gateway:
            return self.clearing_by_gateway[gateway]
        if component == "tax" and jurisdiction in self.tax_by_jurisdiction:
            return self.tax_by_jurisdiction[jurisdiction]
        return self.templates[template][component]

    def rate(self, currency: str, on: date) -> Decimal:
        """Functional units per unit of `currency`: the latest rate effective on or before `on`."""
        if currency == self.functional_currency:
            return Decimal(1)
        rate = self._rates_on.get((currency, on))
        if rate is None:
            effective = [rate for since, rate in self.rates.get(currency, ()) if since <= on]
            if not effective:
                raise MissingRateError(currency, on, self.source)
            rate = self._rates_on[(currency, on)] = effective[-1]
        return rate


_TOP_LEVEL = {
    "description": False,
    "functional_currency": True,
    "policy": True,
    "accounts": True,
    "rounding_account": True,
    "clearing_accounts": False,
    "tax_accounts": False,
    "templates": True,
    "exchange_rates": True,
}
"""Keys of the mapping file, and whether each is required."""


class _Loader:
    """Reads the mapping file; every error names the file and the key that is wrong."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> NoReturn:
        raise FinanceMappingError(f"{self.source}: {key}: {problem}")

    def obj(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"must be an object, got {json.dumps(value)}")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {json.dumps(value)}")
        return value

    def currency(self, value: Any, key: str) -> str:
        code = self.text(value, key)
        try:
            minor_unit(code)
        except UnknownCurrencyError as exc:
            self.fail(key, str(exc))
        return code

    def account(self, value: Any, key: str, accounts: Mapping[str, str]) -> str:
        code = self.text(value, key)
        if code not in accounts:
            self.fail(key, f"account {code!r} is not in the chart of accounts ('accounts')")
        return code

    def mapping(self, data: Any) -> FinanceMapping:
        data = self.obj(data, "(top level)")
        for key in data:
            if key not in _TOP_LEVEL:
                self.fail(key, f"unknown key; expected one of {', '.join(_TOP_LEVEL)}")
        for key, required in _TOP_LEVEL.items():
            if required and key not in data:
                self.fail(key, "missing")
        functional = self.currency(data["functional_currency"], "functional_currency")
        policy = self.obj(data["policy"], "policy")
        recognition = policy.get("revenue_recognition")
        if recognition not in set(Recognition):
            self.fail(
                "policy.revenue_recognition",
                f"must be one of {', '.join(Recognition)}, got {json.dumps(recognition)}",
            )
        accounts = {
            code: self.text(name, f"accounts.{code}")
            for code, name in self.obj(data["accounts"], "accounts").items()
        }
        return FinanceMapping(
            functional_currency=functional,
            revenue_recognition=Recognition(recognition),
            accounts=accounts,
            templates=self.templates(data["templates"], accounts),
            rounding_account=self.account(data["rounding_account"], "rounding_account", accounts),
            clearing_by_gateway=self.overrides(data, "clearing_accounts", "by_gateway", accounts),
            tax_by_jurisdiction=self.overrides(data, "tax_accounts", "by_jurisdiction", accounts),
            rates=self.rates(data["exchange_rates"], functional),
            source=self.source,
        )

    def templates(self, value: Any, accounts: Mapping[str, str]) -> dict[str, dict[str, str]]:
        given = self.obj(value, "templates")
        for name in given:
            if name not in RULES:
                self.fail(f"templates.{name}", f"unknown template; expected {', '.join(RULES)}")
        templates: dict[str, dict[str, str]] = {}
        for name, rule in RULES.items():
            key = f"templates.{name}"
            if name not in given:
                self.fail(key, "missing template")
            template = self.obj(given[name], key)
            for attribute in ("posting_date", "tax_treatment"):
                expected = getattr(rule, attribute)
                if template.get(attribute) != expected:
                    self.fail(
                        f"{key}.{attribute}",
                        f"must be {expected!r} (the rule streams.domain.finance applies), "
                        f"got {json.dumps(template.get(attribute))}",
                    )
            components: dict[str, str] = {}
            for side in ("debit", "credit"):
                wanted: tuple[str, ...] = getattr(rule, side)
                posted = self.obj(template.get(side), f"{key}.{side}")
                for component in posted:
                    if component not in wanted:
                        self.fail(
                            f"{key}.{side}.{component}",
                            f"not a {side} of this template; its {side}s are {', '.join(wanted)}",
                        )
                for component in wanted:
                    if component not in posted:
                        self.fail(f"{key}.{side}.{component}", "missing")
                    components[component] = self.account(
                        posted[component], f"{key}.{side}.{component}", accounts
                    )
            templates[name] = components
        return templates

    def overrides(
        self, data: dict[str, Any], key: str, by: str, accounts: Mapping[str, str]
    ) -> dict[str, str]:
        if key not in data:
            return {}
        given = self.obj(self.obj(data[key], key).get(by, {}), f"{key}.{by}")
        return {
            name: self.account(code, f"{key}.{by}.{name}", accounts) for name, code in given.items()
        }

    def rates(self, value: Any, functional: str) -> dict[str, tuple[tuple[date, Decimal], ...]]:
        given = self.obj(self.obj(value, "exchange_rates").get("rates"), "exchange_rates.rates")
        rates: dict[str, tuple[tuple[date, Decimal], ...]] = {}
        for currency, table in given.items():
            key = f"exchange_rates.rates.{currency}"
            self.currency(currency, key)
            if currency == functional:
                self.fail(key, f"{functional} is the functional currency; its rate is always 1")
            dated: list[tuple[date, Decimal]] = []
            for since, rate in self.obj(table, key).items():
                try:
                    day = date.fromisoformat(since)
                except ValueError:
                    self.fail(f"{key}.{since}", "not an ISO date (YYYY-MM-DD)")
                dated.append((day, self.rate(rate, f"{key}.{since}")))
            if not dated:
                self.fail(key, "no rates")
            rates[currency] = tuple(sorted(dated))
        return rates

    def rate(self, value: Any, key: str) -> Decimal:
        if not isinstance(value, str):
            # A JSON number would be read as a binary float first.
            self.fail(key, f"write the rate as a decimal string, got {json.dumps(value)}")
        try:
            rate = Decimal(value)
        except InvalidOperation:
            self.fail(key, f"{value!r} is not a decimal number")
        if not rate.is_finite() or rate <= 0 or rate >= _RATE_LIMIT:
            self.fail(key, f"{value} must be positive and below {_RATE_LIMIT}")
        if rate.quantize(_RATE_SCALE) != rate:
            self.fail(key, f"{value} has more than 8 decimal places (the journal's rate scale)")
        return rate


# -- journal entries -------------------------------------------------------------------------


def _utc(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class JournalLine:
    account: str
    debit: Decimal
    credit: Decimal
    functional_debit: Decimal
    functional_credit: Decimal
    tax_jurisdiction: str | None = None
    memo: str | None = None
    party: str | None = None
    """The account a receivable line is owed by (the buyer's company, else the customer);
    None on the other accounts."""

    def to_datum(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "debit": self.debit.quantize(_AMOUNT_SCALE),
            "credit": self.credit.quantize(_AMOUNT_SCALE),
            "functional_debit": self.functional_debit.quantize(_AMOUNT_SCALE),
            "functional_credit": self.functional_credit.quantize(_AMOUNT_SCALE),
            "tax_jurisdiction": self.tax_jurisdiction,
            "memo": self.memo,
            "party": self.party,
        }


@dataclass(frozen=True, slots=True)
class JournalEntry:
    entry_id: str
    posted_ms: int
    """When the event it records happened (epoch milliseconds); the posting date is its UTC day."""
    order_id: str | None
    description: str
    transaction_currency: str
    functional_currency: str
    exchange_rate: Decimal
    """Functional units per transaction unit at transaction time."""
    lines: tuple[JournalLine, ...]
    purchase_order_number: str | None = None
    """The order's purchase-order number (the customer's reference), if it has one."""

    @property
    def posting_date(self) -> date:
        return _utc(self.posted_ms).date()

    @property
    def balanced(self) -> bool:
        """Debits equal credits exactly, in the transaction and in the functional currency."""
        return sum((x.debit for x in self.lines), ZERO) == sum(
            (x.credit for x in self.lines), ZERO
        ) and sum((x.functional_debit for x in self.lines), ZERO) == sum(
            (x.functional_credit for x in self.lines), ZERO
        )

    def to_datum(self) -> dict[str, Any]:
        """The erpbridge.JournalEntry datum for finance.journal."""
        return {
            "event_id": self.entry_id,
            "occurred_at": _utc(self.posted_ms),
            "source": SOURCE,
            "entry_id": self.entry_id,
            "posting_date": self.posting_date,
            "order_id": self.order_id,
            "description": self.description,
            "transaction_currency": self.transaction_currency,
            "functional_currency": self.functional_currency,
            "exchange_rate": self.exchange_rate.quantize(_RATE_SCALE),
            "lines": [line.to_datum() for line in self.lines],
            "purchase_order_number": self.purchase_order_number,
        }


def entry_command(entry: JournalEntry, target: str) -> Command:
    """The PostJournalEntry command for one entry."""
    datum = entry.to_datum()
    # Pending commands are stored as JSON (streams.domain.statejson), which keeps datetimes
    # but not dates; Avro's date logical type is also written from its ISO form.
    datum["posting_date"] = entry.posting_date.isoformat()
    return Command(
        command_id=journal_command_id(entry.entry_id),
        kind=Kind.POST_JOURNAL_ENTRY,
        target=target,
        created_ms=entry.posted_ms,
        dispatch_key=entry.order_id or entry.entry_id,
        body={"entries": [datum]},
    )


class _Builder:
    """Collects one entry's postings by template component, then rounds and converts them."""

    def __init__(
        self,
        mapping: FinanceMapping,
        template: str,
        entry_id: str,
        order_id: str | None,
        description: str,
        currency: str,
        at_ms: int,
        gateway: str | None = None,
        *,
        party: str | None = None,
        purchase_order_number: str | None = None,
    ) -> None:
        self.mapping = mapping
        self.template = template
        self.entry_id = entry_id
        self.order_id = order_id
        self.description = description
        self.currency = currency
        self.at_ms = at_ms
        self.gateway = gateway
        self.party = party
        self.purchase_order_number = purchase_order_number
        self.postings: list[tuple[str, Decimal, str | None, str, str | None]] = []

    def post(
        self, component: str, amount: Decimal, memo: str, jurisdiction: str | None = None
    ) -> None:
        """Post `amount` on the component's side of the template; a negative amount goes on
        the other side, which is how a reversal is written."""
        sign = 1 if component in RULES[self.template].debit else -1
        account = self.mapping.account(
            self.template, component, gateway=self.gateway, jurisdiction=jurisdiction
        )
        party = None
        if component in PARTY_COMPONENTS:
            if self.party is None:
                raise ValueError(f"{self.entry_id}: a {component} line needs its party")
            party = self.party
        self.postings.append((account, sign * amount, jurisdiction, memo, party))

    def build(self) -> JournalEntry | None:
        """The entry, or None when every line is zero."""
        postings = [
            (account, quantize_minor(signed, self.currency), jurisdiction, memo, party)
            for account, signed, jurisdiction, memo, party in self.postings
        ]
        postings = [posting for posting in postings if posting[1] != 0]
        if not postings:
            return None
        mapping = self.mapping
        functional = mapping.functional_currency
        same = self.currency == functional
        rate = _ONE if same else mapping.rate(self.currency, _utc(self.at_ms).date())
        lines: list[JournalLine] = []
        for account, amount, jurisdiction, memo, party in postings:
            # In the functional currency the amount is already rounded to its minor unit.
            converted = abs(amount) if same else quantize_minor(abs(amount) * rate, functional)
            debit = amount > 0
            lines.append(
                JournalLine(
                    account,
                    debit=amount if debit else ZERO,
                    credit=ZERO if debit else -amount,
                    functional_debit=converted if debit else ZERO,
                    functional_credit=ZERO if debit else converted,
                    tax_jurisdiction=jurisdiction,
                    memo=memo,
                    party=party,
                )
            )
        if sum((x.debit for x in lines), ZERO) != sum((x.credit for x in lines), ZERO):
            # The amounts are computed to balance; a difference here is a bug, not rounding.
            raise ValueError(f"{self.entry_id} does not balance in {self.currency}: {lines}")
        difference = sum((x.functional_debit for x in lines), ZERO) - sum(
            (x.functional_credit for x in lines), ZERO
        )
        if difference:
            lines.append(
                JournalLine(
                    mapping.rounding_account,
                    debit=ZERO,
                    credit=ZERO,
                    functional_debit=-difference if difference < 0 else ZERO,
                    functional_credit=difference if difference > 0 else ZERO,
                    memo=f"{functional} rounding difference of the conversion at {rate}",
                )
            )
        return JournalEntry(
            entry_id=self.entry_id,
            posted_ms=self.at_ms,
            order_id=self.order_id,
            description=self.description,
            transaction_currency=self.currency,
            functional_currency=functional,
            exchange_rate=rate,
            lines=tuple(lines),
            purchase_order_number=self.purchase_order_number,
        )


# -- what an order charges -------------------------------------------------------------------


def _share(amount: Decimal, fraction: Fraction, currency: str) -> Decimal:
    """`amount` x `fraction`, rounded half-even to the minor unit.

    In integers: Fraction and Decimal division made this a third of the rules' time."""
    if fraction == 1:
        return quantize_minor(amount, currency)
    digits = minor_unit(currency)
    numerator, denominator = amount.as_integer_ratio()
    units, remainder = divmod(
        numerator * fraction.numerator * 10**digits, denominator * fraction.denominator
    )
    twice, whole = 2 * remainder, denominator * fraction.denominator
    if twice > whole or (twice == whole and units % 2):
        units += 1
    if units == 0 and numerator * fraction.numerator < 0:
        return Decimal((1, (0,), -digits))  # the -0.00 that quantize would give
    return Decimal(units).scaleb(-digits)


@dataclass(frozen=True)
class _Amounts:
    """What (part of) a sale charges, in the order's currency, in whole minor units."""

    merchandise: Decimal = ZERO
    """Units x list price."""
    discounts: Decimal = ZERO
    """Line discounts and the share of order-level discounts."""
    shipping: Decimal = ZERO
    taxes: dict[str, Decimal] = field(default_factory=dict)
    """By jurisdiction."""

    @property
    def net(self) -> Decimal:
        return self.merchandise - self.discounts

    @property
    def receivable(self) -> Decimal:
        return self.net + self.shipping + sum(self.taxes.values(), ZERO)

    def __add__(self, other: _Amounts) -> _Amounts:
        taxes = dict(self.taxes)
        for jurisdiction, tax in other.taxes.items():
            taxes[jurisdiction] = taxes.get(jurisdiction, ZERO) + tax
        return _Amounts(
            self.merchandise + other.merchandise,
            self.discounts + other.discounts,
            self.shipping + other.shipping,
            taxes,
        )

    def __neg__(self) -> _Amounts:
        return _Amounts(
            -self.merchandise,
            -self.discounts,
            -self.shipping,
            {j: -tax for j, tax in self.taxes.items()},
        )

    def __sub__(self, other: _Amounts) -> _Amounts:
        return self + -other

    def scaled(self, fraction: Fraction, currency: str) -> _Amounts:
        """Each amount times `fraction`, each rounded on its own."""
        return _Amounts(
            _share(self.merchandise, fraction, currency),
            _share(self.discounts, fraction, currency),
            _share(self.shipping, fraction, currency),
            {j: _share(tax, fraction, currency) for j, tax in self.taxes.items()},
        )


def _total(parts: Iterable[_Amounts]) -> _Amounts:
    return sum(parts, _Amounts())


@dataclass(frozen=True)
class _Pool:
    """Everything the order charges for one SKU, over all the lines that order it.

    A shipment or refund names SKUs, not lines, so its units take an equal share of the
    SKU's lines together, whichever line the order state happened to fill first.
    """

    quantity: int
    amounts: _Amounts

    def part(self, units: int, currency: str) -> _Amounts:
        return self.amounts.scaled(Fraction(units, self.quantity), currency)


@dataclass(frozen=True)
class _Figures:
    """The order's document priced for the journal: per SKU, and shipping."""

    currency: str
    pools: dict[str, _Pool]
    shipping: _Amounts
    """The shipping charge and its taxes."""

    @property
    def whole(self) -> _Amounts:
        return _total(pool.amounts for pool in self.pools.values()) + self.shipping

    def shipped(self, units: Mapping[str, int]) -> _Amounts:
        """What shipping `units` ({sku: quantity}) recognises: each SKU's amounts in
        proportion to its units, and the shipping charge in proportion to the value shipped
        (a charge for delivering the order, earned as its goods go out)."""
        if len(units) == len(self.pools) and all(
            units.get(sku) == pool.quantity for sku, pool in self.pools.items()
        ):
            return self.whole  # the same sums, without working out shares of one
        goods = _total(self.pools[sku].part(n, self.currency) for sku, n in sorted(units.items()))
        return goods + self.shipping.scaled(self._value_shipped(units), self.currency)

    def _value_shipped(self, units: Mapping[str, int]) -> Fraction:
        values = {sku: max(pool.amounts.net, ZERO) for sku, pool in self.pools.items()}
        whole = sum(values.values(), ZERO)
        if whole == 0:
            # Nothing of value: the units themselves are the measure.
            return Fraction(sum(units.values()), sum(p.quantity for p in self.pools.values()))
        shipped = sum(
            (
                Fraction(values[sku]) * Fraction(n, self.pools[sku].quantity)
                for sku, n in units.items()
            ),
            Fraction(0),
        )
        return shipped / Fraction(whole)

    def refunded(self, refund: Refund, total: Decimal) -> dict[tuple[str, str], Decimal]:
        """A refund's total (tax included) split exactly over (component, jurisdiction).

        Each SKU's refunded amount is split over its refunded units' net price and their tax
        per jurisdiction, the refunded shipping over the shipping charge and its tax, each in
        proportion to what the order charged for them. What the total holds beyond those
        amounts (an event that names none) is split over the refunded units the same way.
        """
        currency = self.currency
        # What the order charged for the refunded units; for a SKU refunded without units (a
        # price adjustment), what it charged for all of them: only the proportions matter.
        charged = {
            sku: self.pools[sku].part(n, currency) if n else self.pools[sku].amounts
            for sku, n in refund.lines.items()
        }
        split: dict[tuple[str, str], Decimal] = {}
        named = ZERO
        for sku, amount in sorted(refund.amounts.items()):
            share = quantize_minor(amount, currency)
            named += share
            _add(split, _split(share, charged[sku], "returns", currency))
        if refund.shipping_amount:
            shipping = quantize_minor(refund.shipping_amount, currency)
            named += shipping
            _add(split, _split(shipping, self.shipping, "shipping", currency))
        if total != named:
            units = _total(self.pools[sku].part(n, currency) for sku, n in refund.lines.items())
            _add(split, _split(total - named, units, "returns", currency))
        return split


def _split(
    amount: Decimal, charged: _Amounts, otherwise: str, currency: str
) -> dict[tuple[str, str], Decimal]:
    """`amount` split exactly in proportion to the net price, shipping and tax per
    jurisdiction `charged`; all of it to `otherwise` when nothing was charged (a goodwill
    refund without units)."""
    weights: dict[tuple[str, str], Decimal] = {
        ("returns", ""): charged.net,
        ("shipping", ""): charged.shipping,
    }
    for jurisdiction, tax in charged.taxes.items():
        weights[("tax", jurisdiction)] = tax
    keys = sorted(weights)
    # A negative figure (a discount larger than the price) carries no part of a refund.
    positive = [max(weights[key], ZERO) for key in keys]
    if sum(positive, ZERO) == 0:
        return {(otherwise, ""): amount}
    return dict(zip(keys, allocate(amount, positive, currency), strict=True))


def _add(totals: dict[tuple[str, str], Decimal], more: Mapping[tuple[str, str], Decimal]) -> None:
    for key, amount in more.items():
        totals[key] = totals.get(key, ZERO) + amount


def _taxes(tax_lines: Iterable[Mapping[str, Any]], currency: str) -> dict[str, Decimal]:
    taxes: dict[str, Decimal] = {}
    for tax in tax_lines:
        jurisdiction = tax["jurisdiction"]
        taxes[jurisdiction] = taxes.get(jurisdiction, ZERO) + quantize_minor(
            tax["amount"], currency
        )
    return taxes


def _spread(amount: Decimal, nets: list[Decimal], currency: str) -> list[Decimal]:
    """An order-level discount spread over the lines in proportion to their net value."""
    weights = [max(net, ZERO) for net in nets]
    if amount == 0:
        return [ZERO] * len(nets)
    if sum(weights, ZERO) == 0:
        # No line has value to spread it by: the first line carries it.
        return [amount] + [ZERO] * (len(nets) - 1)
    return allocate(amount, weights, currency)


def _figures(placement: Placement) -> _Figures:
    document, currency = placement.document, placement.currency
    lines = document["lines"]
    merchandise = [quantize_minor(x["quantity"] * x["unit_price"], currency) for x in lines]
    line_discounts = [quantize_minor(x["discount"], currency) for x in lines]
    order_discount = sum(
        (quantize_minor(d["amount"], currency) for d in document.get("discounts") or []), ZERO
    )
    shares = _spread(
        order_discount,
        [m - d for m, d in zip(merchandise, line_discounts, strict=True)],
        currency,
    )
    quantities: dict[str, int] = {}
    amounts: dict[str, _Amounts] = {}
    for x, gross, discount, share in zip(lines, merchandise, line_discounts, shares, strict=True):
        sku = x["sku"]
        quantities[sku] = quantities.get(sku, 0) + x["quantity"]
        amounts[sku] = amounts.get(sku, _Amounts()) + _Amounts(
            merchandise=gross,
            discounts=discount + share,
            taxes=_taxes(x["tax_lines"], currency),
        )
    shipping = document.get("shipping")
    return _Figures(
        currency=currency,
        pools={sku: _Pool(quantities[sku], amounts[sku]) for sku in sorted(amounts)},
        shipping=_Amounts()
        if shipping is None
        else _Amounts(
            shipping=quantize_minor(shipping["amount"], currency),
            taxes=_taxes(shipping["tax_lines"], currency),
        ),
    )


# -- the order's journal ---------------------------------------------------------------------


def order_journal(
    order: Order,
    mapping: FinanceMapping,
    confirmed_ms: int | None,
    done: Callable[[str], bool] = lambda entry_id: False,
) -> list[JournalEntry]:
    """Every journal entry the order's facts call for as of now that is not `done` (by
    entry id), by posting time and id.

    Each entry depends only on facts that never change once recorded, so an entry already
    posted need not be built again: `done` lets a caller that remembers what it posted
    derive only what an event changed, at a cost that does not grow with the order's history.

    `confirmed_ms` is when the ERP confirmed the sales order (None: not yet); it matters only
    under confirmation-based recognition. Raises MissingRateError when an entry's currency
    has no rate for its posting date.
    """
    entries: list[JournalEntry | None] = []
    placement = order.placement
    if placement is not None:
        figures = _LazyFigures(placement)
        if mapping.revenue_recognition is Recognition.SHIPMENT:
            entries += _sales_at_shipment(order, figures, mapping, done)
        else:
            entries += _sales_at_confirmation(order, figures, mapping, confirmed_ms, done)
        entries += _credit_notes(order, placement, figures, mapping, done)
        # The payments wait for the placement, which names the customer their receivable
        # lines are owed by.
        entries += _payments(order, figures, mapping, done)
    return sorted(
        (entry for entry in entries if entry is not None),
        key=lambda entry: (entry.posted_ms, entry.entry_id),
    )


class _LazyFigures:
    """The placement's figures, computed the first time an entry needs them."""

    def __init__(self, placement: Placement) -> None:
        self._placement = placement
        self._figures: _Figures | None = None
        self.party = receivable_party(placement)
        """Who the order's receivable lines are owed by."""
        self.purchase_order_number = placement.purchase_order_number

    def get(self) -> _Figures:
        if self._figures is None:
            self._figures = _figures(self._placement)
        return self._figures


def receivable_party(placement: Placement) -> str:
    """Whose receivable the order is: the buyer's company; else the customer's account on
    the order's storefront (its external id, as the ERP knows it: customer ids are unique
    only within a storefront); else the customer id, the ERP's own."""
    company: str | None = placement.document["customer"].get("company_id")
    if company:
        return company
    storefront: str | None = placement.document.get("storefront")
    return external_id(storefront, placement.customer_id) if storefront else placement.customer_id


def journal_entry_id(order_id: str, suffix: str) -> str:
    return f"{order_id}/journal/{suffix}"


def _sale_entry(
    order: Order,
    lazy: _LazyFigures,
    mapping: FinanceMapping,
    suffix: str,
    amounts: _Amounts,
    currency: str,
    at_ms: int,
    description: str,
) -> JournalEntry | None:
    builder = _Builder(
        mapping,
        "sale",
        journal_entry_id(order.order_id, suffix),
        order.order_id,
        description,
        currency,
        at_ms,
        party=lazy.party,
        purchase_order_number=lazy.purchase_order_number,
    )
    builder.post("receivable", amounts.receivable, "owed by the customer")
    builder.post("discounts", amounts.discounts, "line and order discounts")
    builder.post("merchandise", amounts.merchandise, "goods at list price")
    builder.post("shipping", amounts.shipping, "shipping charged")
    for jurisdiction, tax in sorted(amounts.taxes.items()):
        builder.post("tax", tax, f"tax collected for {jurisdiction}", jurisdiction)
    return builder.build()


def _sales_at_shipment(
    order: Order, lazy: _LazyFigures, mapping: FinanceMapping, done: Callable[[str], bool]
) -> list[JournalEntry | None]:
    """One sale per fulfilment for the units it ships, each computed from that fulfilment
    alone so it never changes when others arrive. Once every unit has shipped, the rounding
    of those shares is trued up by one more entry, so the sales sum to the order's totals."""
    entries: list[JournalEntry | None] = []
    shares: dict[str, _Amounts] = {}
    for fulfilment_id, fulfilment in sorted(order.fulfilments.items()):
        suffix = f"sale/{fulfilment_id}"
        if done(journal_entry_id(order.order_id, suffix)):
            continue
        figures = lazy.get()
        shares[fulfilment_id] = figures.shipped(fulfilment.lines)
        entries.append(
            _sale_entry(
                order,
                lazy,
                mapping,
                suffix,
                shares[fulfilment_id],
                figures.currency,
                fulfilment.at_ms,
                f"Sale of order {order.order_id}: revenue for the goods shipped in fulfilment "
                f"{fulfilment_id} from {fulfilment.warehouse} (recognised at shipment)",
            )
        )
    # The true-up depends only on the fulfilments, so it was settled (posted, or nothing to
    # post) when the last of them was; it needs working out only when one is new.
    if not shares or done(journal_entry_id(order.order_id, "sale-rounding")):
        return entries
    figures = lazy.get()
    shipped = {sku: 0 for sku in figures.pools}
    for fulfilment in order.fulfilments.values():
        for sku, quantity in fulfilment.lines.items():
            shipped[sku] += quantity
    # One fulfilment of everything recognised the whole order: nothing to true up.
    if len(order.fulfilments) > 1 and all(
        shipped[sku] == pool.quantity for sku, pool in figures.pools.items()
    ):
        recognised = _total(
            shares[i] if i in shares else figures.shipped(f.lines)
            for i, f in sorted(order.fulfilments.items())
        )
        entries.append(
            _sale_entry(
                order,
                lazy,
                mapping,
                "sale-rounding",
                figures.whole - recognised,
                figures.currency,
                max(f.at_ms for f in order.fulfilments.values()),
                f"Sale of order {order.order_id}: rounding of the per-shipment shares, so the "
                "shipments recognise exactly the order's totals",
            )
        )
    return entries


def _sales_at_confirmation(
    order: Order,
    lazy: _LazyFigures,
    mapping: FinanceMapping,
    confirmed_ms: int | None,
    done: Callable[[str], bool],
) -> list[JournalEntry | None]:
    """The whole order at confirmation, and at a cancellation a reversal of what had not
    shipped. An order cancelled before it was confirmed (the ERP never had its sales order)
    is never recognised; the caller passes no confirmation time for it."""
    if confirmed_ms is None:
        return []
    entries: list[JournalEntry | None] = []
    if not done(journal_entry_id(order.order_id, "sale")):
        figures = lazy.get()
        entries.append(
            _sale_entry(
                order,
                lazy,
                mapping,
                "sale",
                figures.whole,
                figures.currency,
                confirmed_ms,
                f"Sale of order {order.order_id}: revenue recognised at confirmation",
            )
        )
    cancelled_ms = order.cancelled_ms
    if cancelled_ms is not None and not done(journal_entry_id(order.order_id, "sale-reversal")):
        # No fulfilment applies after a cancellation, so what shipped is final here. A
        # cancellation processed after the confirmation but dated before it is reversed on
        # the confirmation's date, never before the sale it reverses.
        figures = lazy.get()
        shipped = _total(figures.shipped(f.lines) for f in order.fulfilments.values())
        entries.append(
            _sale_entry(
                order,
                lazy,
                mapping,
                "sale-reversal",
                -(figures.whole - shipped),
                figures.currency,
                max(cancelled_ms, confirmed_ms),
                f"Cancellation of order {order.order_id}: reversal of the revenue recognised "
                "at confirmation for the goods that did not ship",
            )
        )
    return entries


def _credit_notes(
    order: Order,
    placement: Placement,
    lazy: _LazyFigures,
    mapping: FinanceMapping,
    done: Callable[[str], bool],
) -> list[JournalEntry | None]:
    """A credit note per refund the customer has received: paid back through a gateway (a
    payment refund with the same refund id), or credited on account. A pending refund is not
    posted."""
    paid_back = {refund_id for p in order.payments.values() for refund_id in p.refunds}
    on_account = placement.payment_terms == "ON_ACCOUNT"
    entries: list[JournalEntry | None] = []
    for refund_id, refund in sorted(order.refunds.items()):
        entry_id = journal_entry_id(order.order_id, f"credit-note/{refund_id}")
        if not (on_account or refund_id in paid_back) or done(entry_id):
            continue
        figures = lazy.get()
        total = quantize_minor(refund.total, figures.currency)
        builder = _Builder(
            mapping,
            "credit_note",
            entry_id,
            order.order_id,
            f"Credit note for {refund.kind.lower()} {refund_id} of order {order.order_id}",
            figures.currency,
            refund.at_ms,
            party=lazy.party,
            purchase_order_number=lazy.purchase_order_number,
        )
        builder.post("receivable", total, "refunded to the customer, tax included")
        for (component, jurisdiction), amount in sorted(figures.refunded(refund, total).items()):
            if component == "tax":
                builder.post("tax", amount, f"tax reversed for {jurisdiction}", jurisdiction)
            else:
                builder.post(component, amount, f"{component} reversed")
        entries.append(builder.build())
    return entries


def _payment_entry(
    mapping: FinanceMapping,
    lazy: _LazyFigures,
    order_id: str,
    payment: Payment,
    template: str,
    suffix: str,
    description: str,
    at_ms: int,
    postings: list[tuple[str, Decimal, str]],
) -> JournalEntry | None:
    builder = _Builder(
        mapping,
        template,
        journal_entry_id(order_id, suffix),
        order_id,
        description,
        payment.currency,
        at_ms,
        payment.gateway,
        party=lazy.party,
        purchase_order_number=lazy.purchase_order_number,
    )
    for component, amount, memo in postings:
        builder.post(component, quantize_minor(amount, payment.currency), memo)
    return builder.build()


def _payments(
    order: Order, lazy: _LazyFigures, mapping: FinanceMapping, done: Callable[[str], bool]
) -> list[JournalEntry | None]:
    """Captures, payment refunds and settlements, each in the payment's own currency."""
    entries: list[JournalEntry | None] = []
    order_id = order.order_id
    for payment_id, payment in sorted(order.payments.items()):
        gateway = payment.gateway
        for event_id, capture in sorted(payment.captures.items()):
            if done(journal_entry_id(order_id, f"capture/{event_id}")):
                continue
            entries.append(
                _payment_entry(
                    mapping,
                    lazy,
                    order_id,
                    payment,
                    "payment_capture",
                    f"capture/{event_id}",
                    f"Payment {payment_id} of order {order_id} captured by {gateway}",
                    capture.at_ms,
                    [
                        ("clearing", capture.amount, f"due from {gateway}"),
                        ("receivable", capture.amount, "paid by the customer"),
                    ],
                )
            )
        for refund_id, refund in sorted(payment.refunds.items()):
            if done(journal_entry_id(order_id, f"payment-refund/{refund_id}")):
                continue
            entries.append(
                _payment_entry(
                    mapping,
                    lazy,
                    order_id,
                    payment,
                    "payment_refund",
                    f"payment-refund/{refund_id}",
                    f"Refund {refund_id} of payment {payment_id} (order {order_id}) "
                    f"through {gateway}",
                    refund.at_ms,
                    [
                        ("receivable", refund.amount, "paid back to the customer"),
                        ("clearing", refund.amount, f"paid out by {gateway}"),
                    ],
                )
            )
        for payout_id, payout in sorted(payment.payouts.items()):
            if done(journal_entry_id(order_id, f"settlement/{payout_id}")):
                continue
            gross = quantize_minor(payout.gross, payment.currency)
            fee = quantize_minor(payout.fee, payment.currency)
            entries.append(
                _payment_entry(
                    mapping,
                    lazy,
                    order_id,
                    payment,
                    "payment_settlement",
                    f"settlement/{payout_id}",
                    f"Payout {payout_id} by {gateway} of payment {payment_id} (order {order_id})",
                    payout.at_ms,
                    [
                        # gross - fee rather than the payout's net: they agree (checked on
                        # input), and this way the entry balances by construction.
                        ("bank", gross - fee, "received in the bank"),
                        ("fee", fee, f"{gateway} fee"),
                        ("clearing", gross, f"settled by {gateway}"),
                    ],
                )
            )
    return entries


def cost_entry(
    order_id: str,
    sku: str,
    ref: str,
    warehouse: str,
    quantity: int,
    unit_cost: Decimal,
    cost_currency: str,
    at_ms: int,
    mapping: FinanceMapping,
    restock: bool,
    purchase_order_number: str | None = None,
) -> JournalEntry | None:
    """Cost of goods sold for `quantity` units of `sku` shipped in fulfilment `ref`, or, with
    `restock`, its reversal for units of refund `ref` back in stock. None when the cost is
    zero."""
    template = "restock" if restock else "cogs"
    if restock:
        description = (
            f"Cost of {quantity} x {sku} of order {order_id} back in stock at {warehouse} "
            f"(refund {ref})"
        )
    else:
        description = (
            f"Cost of {quantity} x {sku} of order {order_id} shipped from {warehouse} "
            f"(fulfilment {ref})"
        )
    builder = _Builder(
        mapping,
        template,
        f"{order_id}/journal/{template}/{ref}/{sku}",
        order_id,
        description,
        cost_currency,
        at_ms,
        purchase_order_number=purchase_order_number,
    )
    cost = quantize_minor(unit_cost * quantity, cost_currency)
    memo = f"{quantity} x {unit_cost} {cost_currency}"
    rule = RULES[template]
    for component in rule.debit + rule.credit:
        builder.post(component, cost, memo)
    return builder.build()

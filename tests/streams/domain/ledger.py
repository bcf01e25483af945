"""What the books should say, worked out from the events and config/finance.json alone.

Independent of streams.domain.finance: the mapping file is read here as plain JSON, and each
account's net (debit - credit, in the transaction currency) is derived from the business
meaning of the events (IFRS 15 at shipment: revenue, discounts, shipping and tax of the
units each fulfilment ships; a credit note per refund the customer received; captures,
payment refunds and payouts of placed orders through the gateway's clearing account; cost
of goods at the ERP's unit cost), and so is each customer's receivable. Exact fractions are used throughout; where a partial shipment or a refund
splits an amount, the books round each share to the cent, so the expectation carries a
tolerance of a cent per share; once an order has shipped in full the books must be exact.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from streams.domain.events import InputEvent
from streams.domain.finance import JournalEntry
from streams.ops.settings import REPO_ROOT

MAPPING: dict[str, Any] = json.loads((REPO_ROOT / "config" / "finance.json").read_text())
ROUTING: dict[str, Any] = json.loads((REPO_ROOT / "config" / "routing.json").read_text())
CENT = Fraction(1, 100)
COST_ACCOUNTS = frozenset(
    account
    for template in ("cogs", "restock")
    for side in ("debit", "credit")
    for account in MAPPING["templates"][template][side].values()
)
"""Inventory and cost of goods sold: they follow the unit cost known when goods move."""
ROUNDING_ACCOUNT: str = MAPPING["rounding_account"]

Key = tuple[str, str]
"""(account, transaction currency), or on the receivable (party, transaction currency)."""


# --- the books as posted --------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    account: str
    debit: Decimal
    credit: Decimal
    functional_debit: Decimal
    functional_credit: Decimal
    party: str | None


@dataclass(frozen=True)
class Entry:
    entry_id: str
    currency: str
    functional_currency: str
    posting_date: date
    lines: tuple[Line, ...]

    @classmethod
    def of(cls, entry: JournalEntry) -> Entry:
        return cls(
            entry.entry_id,
            entry.transaction_currency,
            entry.functional_currency,
            datetime.fromtimestamp(entry.posted_ms / 1000, UTC).date(),
            tuple(
                Line(x.account, x.debit, x.credit, x.functional_debit, x.functional_credit, x.party)
                for x in entry.lines
            ),
        )

    @classmethod
    def of_datum(cls, datum: Mapping[str, Any]) -> Entry:
        """A finance.journal record as decoded."""
        return cls(
            datum["entry_id"],
            datum["transaction_currency"],
            datum["functional_currency"],
            datum["posting_date"],
            tuple(
                Line(
                    x["account"],
                    x["debit"],
                    x["credit"],
                    x["functional_debit"],
                    x["functional_credit"],
                    x["party"],
                )
                for x in datum["lines"]
            ),
        )

    @property
    def is_cost(self) -> bool:
        return "/journal/cogs/" in self.entry_id or "/journal/restock/" in self.entry_id


def rate(currency: str, on: date) -> Fraction:
    """Functional units per unit of `currency` on `on`, read from the mapping file."""
    if currency == MAPPING["functional_currency"]:
        return Fraction(1)
    rates = MAPPING["exchange_rates"]["rates"][currency]
    effective = [since for since in rates if date.fromisoformat(since) <= on]
    assert effective, f"no {currency} rate on {on}"
    return Fraction(Decimal(rates[max(effective)]))


def entry_problems(entry: Entry) -> list[str]:
    """What is wrong with one entry on its own: it must balance in the transaction and in
    the functional currency, each amount on one side and not negative, each functional amount
    the transaction amount at the mapping's rate of the posting date rounded to the cent,
    and only the rounding account carries functional amounts without transaction amounts."""
    problems = []
    lines = entry.lines
    if sum(x.debit for x in lines) != sum(x.credit for x in lines):
        problems.append("debits != credits")
    if sum(x.functional_debit for x in lines) != sum(x.functional_credit for x in lines):
        problems.append("functional debits != functional credits")
    at = rate(entry.currency, entry.posting_date)
    for x in lines:
        amounts = (x.debit, x.credit, x.functional_debit, x.functional_credit)
        if any(a < 0 for a in amounts):
            problems.append(f"{x.account}: negative amount {amounts}")
        if x.debit and x.credit:
            problems.append(f"{x.account}: both debit and credit")
        if x.account == ROUNDING_ACCOUNT:
            if x.debit or x.credit:
                problems.append("the rounding line carries a transaction amount")
            continue
        for amount, functional in ((x.debit, x.functional_debit), (x.credit, x.functional_credit)):
            if abs(Fraction(functional) - Fraction(amount) * at) > CENT / 2:
                problems.append(
                    f"{x.account}: {functional} {entry.functional_currency} is not "
                    f"{amount} {entry.currency} at {float(at)}"
                )
    return problems


def nets(entries: Iterable[Entry]) -> dict[Key, Fraction]:
    """Debit - credit per account and transaction currency."""
    totals: dict[Key, Fraction] = defaultdict(Fraction)
    for entry in entries:
        for x in entry.lines:
            totals[x.account, entry.currency] += Fraction(x.debit) - Fraction(x.credit)
    return {key: net for key, net in totals.items() if net}


def party_nets(entries: Iterable[Entry]) -> dict[Key, Fraction]:
    """Debit - credit per party and transaction currency, of the lines naming a party."""
    totals: dict[Key, Fraction] = defaultdict(Fraction)
    for entry in entries:
        for x in entry.lines:
            if x.party is not None:
                totals[x.party, entry.currency] += Fraction(x.debit) - Fraction(x.credit)
    return {key: net for key, net in totals.items() if net}


# --- the books as the events imply them -----------------------------------------------------


@dataclass
class Expected:
    nets: dict[Key, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    tolerance: dict[Key, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    parties: dict[Key, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    """The receivable per customer."""
    party_tolerance: dict[Key, Fraction] = field(default_factory=lambda: defaultdict(Fraction))

    def post(
        self,
        template: str,
        component: str,
        amount: Fraction,
        currency: str,
        *,
        slack: Fraction = Fraction(0),
        gateway: str | None = None,
        jurisdiction: str | None = None,
        party: str | None = None,
    ) -> None:
        """`amount` on the side of `template` the mapping file puts `component` on; the
        receivable's is also the customer `party`'s."""
        spec = MAPPING["templates"][template]
        side = 1 if component in spec["debit"] else -1
        account = spec["debit" if side == 1 else "credit"][component]
        if component == "clearing":
            account = MAPPING["clearing_accounts"]["by_gateway"].get(gateway, account)
        if component == "tax":
            account = MAPPING["tax_accounts"]["by_jurisdiction"].get(jurisdiction, account)
        self.nets[account, currency] += side * amount
        self.tolerance[account, currency] += slack
        if component == "receivable":
            assert party is not None, "a receivable is some customer's"
            self.parties[party, currency] += side * amount
            self.party_tolerance[party, currency] += slack

    def differences(self, entries: Sequence[Entry], *, skip: frozenset[str]) -> list[str]:
        """Where the entries' accounts (but `skip`) or customers' receivables differ from
        what the events imply."""
        return _differ(self.nets, self.tolerance, nets(entries), skip) + _differ(
            self.parties, self.party_tolerance, party_nets(entries), frozenset()
        )


def _differ(
    wanted: Mapping[Key, Fraction],
    tolerance: Mapping[Key, Fraction],
    actual: Mapping[Key, Fraction],
    skip: frozenset[str],
) -> list[str]:
    found = []
    for key in sorted(set(wanted) | set(actual)):
        if key[0] in skip:
            continue
        want, got = wanted.get(key, Fraction(0)), actual.get(key, Fraction(0))
        if abs(got - want) > tolerance.get(key, Fraction(0)):
            found.append(
                f"{key[0]} {key[1]}: books {float(got):.4f}, events imply "
                f"{float(want):.4f} +- {float(tolerance.get(key, 0)):.2f}"
            )
    return found


def _first(
    events: Iterable[InputEvent], kind: str, business_key: str | None = None
) -> list[InputEvent]:
    """The events of `kind`, one per entity and business key (a re-sent fact counts once)."""
    found: dict[tuple[str, str], InputEvent] = {}
    for event in events:
        if event.kind == kind:
            found.setdefault(
                (event.key, event.payload[business_key] if business_key else ""), event
            )
    return list(found.values())


def first_choice(payload: Mapping[str, Any]) -> str:
    """The order's preferred warehouse by config/routing.json: channel, then the most
    specific ship-to area, then the configured order."""
    ship_to = payload["ship_to"]
    areas = [ship_to["country"]]
    if ship_to.get("region"):
        areas.insert(0, f"{ship_to['country']}-{ship_to['region']}")
    preferred = [
        *ROUTING.get("by_channel", {}).get(payload["channel"], []),
        *(w for area in areas for w in ROUTING.get("by_area", {}).get(area, [])),
        *ROUTING["warehouses"],
    ]
    return str(preferred[0])


def _account(document: Mapping[str, Any]) -> str:
    """Who owes the order: the buyer's company, else its account on the order's storefront,
    else the customer id."""
    customer = document["customer"]
    if customer.get("company_id"):
        return str(customer["company_id"])
    storefront = document.get("storefront")
    return f"{storefront}:{customer['customer_id']}" if storefront else str(customer["customer_id"])


def _q(amount: Decimal) -> Fraction:
    return Fraction(amount)


@dataclass
class _Pool:
    quantity: int = 0
    merchandise: Fraction = Fraction(0)
    discounts: Fraction = Fraction(0)
    taxes: dict[str, Fraction] = field(default_factory=lambda: defaultdict(Fraction))

    @property
    def net(self) -> Fraction:
        return self.merchandise - self.discounts


def _pools(document: Mapping[str, Any]) -> dict[str, _Pool]:
    lines = document["lines"]
    nets = [
        max(_q(x["quantity"] * x["unit_price"]) - _q(x["discount"]), Fraction(0)) for x in lines
    ]
    order_discount = sum((_q(d["amount"]) for d in document.get("discounts") or []), Fraction(0))
    pools: dict[str, _Pool] = defaultdict(_Pool)
    for x, net in zip(lines, nets, strict=True):
        pool = pools[x["sku"]]
        pool.quantity += x["quantity"]
        pool.merchandise += _q(x["quantity"] * x["unit_price"])
        share = order_discount * net / sum(nets) if sum(nets) else Fraction(0)
        pool.discounts += _q(x["discount"]) + share
        for tax in x["tax_lines"]:
            pool.taxes[tax["jurisdiction"]] += _q(tax["amount"])
    return dict(pools)


def expected_books(
    events: Sequence[InputEvent], unit_costs: Mapping[tuple[str, str], Decimal] | None
) -> Expected:
    """The nets the events imply; cost of goods only with `unit_costs` ((SKU, warehouse) ->
    the one unit cost the ERP states for it), in the currency the inventory events state."""
    assert MAPPING["policy"]["revenue_recognition"] == "shipment"
    books = Expected()
    placements = {e.key: e.payload for e in _first(events, "OrderPlaced")}
    fulfilments = _first(events, "OrderFulfilled", "fulfillment_id")
    refunds = _first(events, "OrderRefunded", "refund_id")
    payment_refunds = _first(events, "PaymentRefunded", "refund_id")
    paid_back = {(e.key, e.payload["refund_id"]) for e in payment_refunds}
    for order_id, document in placements.items():
        _sales(books, document, [f.payload for f in fulfilments if f.key == order_id])
        for refund in refunds:
            if refund.key != order_id:
                continue
            on_account = document.get("payment_terms") == "ON_ACCOUNT"
            if on_account or (order_id, refund.payload["refund_id"]) in paid_back:
                _credit_note(books, document, refund.payload)
    # A payment is booked once its order names the customer who paid.
    customers = {order: _account(document) for order, document in placements.items()}
    for capture in (e for e in events if e.kind == "PaymentCaptured" and e.key in placements):
        p = capture.payload
        books.post(
            "payment_capture", "clearing", _q(p["amount"]), p["currency"], gateway=p["gateway"]
        )
        books.post(
            "payment_capture", "receivable", _q(p["amount"]), p["currency"],
            party=customers[capture.key],
        )  # fmt: skip
    for refund in (e for e in payment_refunds if e.key in placements):
        p = refund.payload
        books.post(
            "payment_refund", "receivable", _q(p["amount"]), p["currency"],
            party=customers[refund.key],
        )  # fmt: skip
        books.post(
            "payment_refund", "clearing", _q(p["amount"]), p["currency"], gateway=p["gateway"]
        )
    for payout in (e for e in _first(events, "PaymentSettled", "payout_id") if e.key in placements):
        p = payout.payload
        gross, fee = _q(p["gross"]), _q(p["fee"])
        books.post("payment_settlement", "bank", gross - fee, p["currency"])
        books.post("payment_settlement", "fee", fee, p["currency"])
        books.post("payment_settlement", "clearing", gross, p["currency"], gateway=p["gateway"])
    if unit_costs is not None:
        currencies = {
            (e.key, e.payload["warehouse_id"]): e.payload["currency"]
            for e in events
            if e.payload.get("unit_cost") is not None and "warehouse_id" in e.payload
        }
        for f in fulfilments:
            w = f.payload["warehouse_id"]
            for item in f.payload["lines"]:
                cost = item["quantity"] * _q(unit_costs[item["sku"], w])
                currency = currencies[item["sku"], w]
                books.post("cogs", "cogs", cost, currency)
                books.post("cogs", "inventory", cost, currency)
        for r in refunds:
            if not r.payload["restock"] or r.key not in placements:
                continue
            w = r.payload["warehouse_id"] or first_choice(placements[r.key])
            for item in r.payload["lines"]:
                cost = item["quantity"] * _q(unit_costs[item["sku"], w])
                currency = currencies[item["sku"], w]
                books.post("restock", "inventory", cost, currency)
                books.post("restock", "cogs", cost, currency)
    return books


def _sales(books: Expected, document: Mapping[str, Any], fulfilments: list[dict[str, Any]]) -> None:
    """Revenue at shipment: each SKU's amounts for the share of its units shipped, shipping
    (and its tax) for the share of the order's value shipped."""
    if not fulfilments:
        return
    currency = document["currency"]
    pools = _pools(document)
    shipped = {sku: 0 for sku in pools}
    for f in fulfilments:
        for item in f["lines"]:
            shipped[item["sku"]] += item["quantity"]
    fraction = {sku: Fraction(shipped[sku], pool.quantity) for sku, pool in pools.items()}
    whole_value = sum((max(p.net, Fraction(0)) for p in pools.values()), Fraction(0))
    if whole_value:
        value = sum(max(p.net, Fraction(0)) * fraction[s] for s, p in pools.items()) / whole_value
    else:
        value = Fraction(sum(shipped.values()), sum(p.quantity for p in pools.values()))
    complete = all(f == 1 for f in fraction.values())
    # Each fulfilment rounds each SKU's share and the shipping share to the cent.
    slack = Fraction(0) if complete else len(fulfilments) * (len(pools) + 1) * CENT
    shipping = document.get("shipping") or {"amount": Decimal(0), "tax_lines": []}
    merchandise = sum((p.merchandise * fraction[s] for s, p in pools.items()), Fraction(0))
    discounts = sum((p.discounts * fraction[s] for s, p in pools.items()), Fraction(0))
    taxes: dict[str, Fraction] = defaultdict(Fraction)
    for s, p in pools.items():
        for j, tax in p.taxes.items():
            taxes[j] += tax * fraction[s]
    for tax in shipping["tax_lines"]:
        taxes[tax["jurisdiction"]] += _q(tax["amount"]) * value
    charge = _q(shipping["amount"]) * value
    receivable = merchandise - discounts + charge + sum(taxes.values(), Fraction(0))
    parts = 3 + len(taxes)
    books.post(
        "sale", "receivable", receivable, currency, slack=parts * slack,
        party=_account(document),
    )  # fmt: skip
    books.post("sale", "discounts", discounts, currency, slack=slack)
    books.post("sale", "merchandise", merchandise, currency, slack=slack)
    books.post("sale", "shipping", charge, currency, slack=slack)
    for j, tax in taxes.items():
        books.post("sale", "tax", tax, currency, slack=slack, jurisdiction=j)


def _credit_note(books: Expected, document: Mapping[str, Any], refund: Mapping[str, Any]) -> None:
    """The refund's total, tax included, back off the receivable; each SKU's amount split
    over the net price and the tax of the refunded units, refunded shipping over the
    shipping charge and its tax, in proportion to what the order charged."""
    currency = document["currency"]
    pools = _pools(document)
    total = _q(refund["total"])
    books.post("credit_note", "receivable", total, currency, party=_account(document))
    shares: list[tuple[str, str | None, Fraction]] = []
    named = Fraction(0)
    for item in refund["lines"]:
        pool, n = pools[item["sku"]], item["quantity"]
        part = Fraction(n, pool.quantity) if n else Fraction(1)
        weights = [("returns", None, max(pool.net * part, Fraction(0)))] + [
            ("tax", j, max(t * part, Fraction(0))) for j, t in pool.taxes.items()
        ]
        amount = _q(item["amount"])
        named += amount
        shares += _split(amount, weights, "returns")
    shipping = document.get("shipping")
    if refund.get("shipping_amount"):
        amount = _q(refund["shipping_amount"])
        named += amount
        charged = shipping or {"amount": Decimal(0), "tax_lines": []}
        weights = [("shipping", None, _q(charged["amount"]))] + [
            ("tax", t["jurisdiction"], _q(t["amount"])) for t in charged["tax_lines"]
        ]
        shares += _split(amount, weights, "shipping")
    assert named == total, "the strategy names every refunded amount"
    for component, jurisdiction, amount in shares:
        books.post(
            "credit_note", component, amount, currency, slack=2 * CENT, jurisdiction=jurisdiction
        )


def _split(
    amount: Fraction, weights: Sequence[tuple[str, str | None, Fraction]], otherwise: str
) -> list[tuple[str, str | None, Fraction]]:
    whole = sum((w for _, _, w in weights), Fraction(0))
    if not whole:
        return [(otherwise, None, amount)]
    return [(c, j, amount * w / whole) for c, j, w in weights]

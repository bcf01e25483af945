"""A realistic, deterministic stream of commerce events over a fixed catalogue; no Kafka here.

`generate` simulates a shop: opening stock per SKU and warehouse, then orders placed over
simulated time with their payments, fulfilments, cancellations, returns and gateway
payouts, plus the warehouse's own stock movements. The same seed always yields the same
events. `Catalogue.default()` is also the master data an ERP is initialised with.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from streams.contracts.topics import INVENTORY, ORDERS, PAYMENTS
from streams.domain.money import allocate, minor_unit, quantize_minor

if TYPE_CHECKING:
    pass

CustomerKind = Literal["CONSUMER", "BUSINESS"]
PaymentTerms = Literal["PREPAID", "ON_ACCOUNT"]

DEFAULT_START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SHIPPING_TAX_CATEGORY = "standard"


# --- Catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    region: str | None
    """ISO 3166-2 subdivision without the country prefix: "CA" for US-CA."""
    postal_code: str | None
    country: str
    """ISO 3166-1 alpha-2."""
    line2: str | None = None

    def datum(self, name: str | None) -> dict[str, Any]:
        return {
            "name": name,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "region": self.region,
            "postal_code": self.postal_code,
            "country": self.country,
        }


@dataclass(frozen=True)
class Sku:
    code: str
    name: str
    prices: Mapping[str, Decimal]
    """List price per unit by currency, before tax."""
    unit_cost: Decimal
    """Purchase cost per unit in the catalogue's base currency."""
    tax_category: str
    reorder_point: int
    """Each warehouse reorders when on-hand falls below this ..."""
    target_stock: int
    """... up to this; it is also the opening on-hand."""

    def price(self, currency: str) -> Decimal:
        return self.prices[currency]


@dataclass(frozen=True)
class Warehouse:
    warehouse_id: str
    name: str
    region: str
    address: Address
    serves: tuple[str, ...]
    """Ship-to areas, "US-CA" (country-region) or "US" (country); the most specific wins."""
    carriers: tuple[str, ...]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    email: str
    kind: CustomerKind
    address: Address
    currency: str
    payment_terms: PaymentTerms = "PREPAID"
    billing_address: Address | None = None
    po_prefix: str | None = None
    """Businesses quote their own purchase-order number, which starts with this."""


@dataclass(frozen=True)
class TaxJurisdiction:
    code: str
    name: str
    country: str
    region: str | None
    city: str | None
    rates: Mapping[str, Decimal]
    """Rate by tax category; a category that is absent is exempt here (no tax line)."""
    taxes_shipping: bool

    def applies_to(self, address: Address) -> bool:
        return (
            self.country == address.country
            and self.region in (None, address.region)
            and self.city in (None, address.city)
        )


@dataclass(frozen=True)
class ShippingMethod:
    code: str
    name: str
    prices: Mapping[str, Decimal]
    free_over: Mapping[str, Decimal] = field(default_factory=dict)
    """Merchandise value (after discounts) from which shipping is free, by currency."""
    business_only: bool = False

    def charge(self, merchandise: Decimal, currency: str) -> Decimal:
        threshold = self.free_over.get(currency)
        if threshold is not None and merchandise >= threshold:
            return quantize_minor(Decimal(0), currency)
        return self.prices[currency]


@dataclass(frozen=True)
class DiscountCode:
    code: str
    description: str
    percent: Decimal | None = None
    """Fraction off the merchandise; otherwise `fixed` applies."""
    fixed: Mapping[str, Decimal] = field(default_factory=dict)
    minimum: Mapping[str, Decimal] = field(default_factory=dict)
    """Least merchandise value the code needs, by currency."""

    def amount(self, merchandise: Decimal, currency: str) -> Decimal | None:
        """The discount on `merchandise`, or None when the code does not apply."""
        if merchandise < self.minimum.get(currency, Decimal(0)):
            return None
        if self.percent is not None:
            return quantize_minor(merchandise * self.percent, currency)
        if currency not in self.fixed:
            return None
        return min(self.fixed[currency], merchandise)


@dataclass(frozen=True)
class Gateway:
    name: str
    source: str
    """`source` of the gateway's events."""
    fee_percent: Decimal
    fee_fixed: Mapping[str, Decimal]
    """Fixed fee per payment by currency; the gateway accepts exactly these currencies."""
    payout_delay_days: int
    methods: tuple[str, ...]
    id_prefix: str

    def fee(self, gross: Decimal, currency: str) -> Decimal:
        return quantize_minor(gross * self.fee_percent + self.fee_fixed[currency], currency)


@dataclass(frozen=True)
class Catalogue:
    base_currency: str
    """Currency of unit costs and of the books."""
    currencies: tuple[str, ...]
    skus: tuple[Sku, ...]
    warehouses: tuple[Warehouse, ...]
    customers: tuple[Customer, ...]
    jurisdictions: tuple[TaxJurisdiction, ...]
    shipping_methods: tuple[ShippingMethod, ...]
    discount_codes: tuple[DiscountCode, ...]
    gateways: tuple[Gateway, ...]

    def __post_init__(self) -> None:
        for currency in (self.base_currency, *self.currencies):
            minor_unit(currency)
        problems = [
            f"{sku.code} has no {currency} price"
            for sku in self.skus
            for currency in self.currencies
            if currency not in sku.prices
        ]
        problems += [
            f"{c.customer_id} buys in {c.currency}, which is not a catalogue currency"
            for c in self.customers
            if c.currency not in self.currencies
        ]
        for kind, ids in (
            ("SKU", [s.code for s in self.skus]),
            ("warehouse", [w.warehouse_id for w in self.warehouses]),
            ("customer", [c.customer_id for c in self.customers]),
        ):
            problems += [f"duplicate {kind} {i}" for i in sorted(set(ids)) if ids.count(i) > 1]
        if problems:
            raise ValueError("inconsistent catalogue: " + "; ".join(problems))

    def warehouse_for(self, address: Address) -> Warehouse:
        for area in (f"{address.country}-{address.region}", address.country):
            for warehouse in self.warehouses:
                if area in warehouse.serves:
                    return warehouse
        raise LookupError(f"no warehouse serves {address.country}-{address.region}")

    def jurisdictions_for(self, address: Address) -> tuple[TaxJurisdiction, ...]:
        return tuple(j for j in self.jurisdictions if j.applies_to(address))

    def gateways_for(self, currency: str) -> tuple[Gateway, ...]:
        return tuple(g for g in self.gateways if currency in g.fee_fixed)

    @classmethod
    def default(cls) -> Catalogue:
        """20 SKUs, 3 warehouses, 30 customers (5 businesses); USD, EUR, GBP."""
        return cls(
            base_currency="USD",
            currencies=("USD", "EUR", "GBP"),
            skus=tuple(
                Sku(
                    code=f"SKU-{n:04d}",
                    name=name,
                    prices=_money(USD=usd, EUR=eur, GBP=gbp),
                    unit_cost=Decimal(cost),
                    tax_category=category,
                    reorder_point=target // 4,
                    target_stock=target,
                )
                for n, (name, usd, eur, gbp, cost, category, target) in enumerate(_SKUS, 1)
            ),
            warehouses=_WAREHOUSES,
            customers=_CUSTOMERS,
            jurisdictions=tuple(
                TaxJurisdiction(code, name, country, region, city, _rates(rates), shipping)
                for code, name, country, region, city, rates, shipping in _JURISDICTIONS
            ),
            shipping_methods=(
                ShippingMethod(
                    "standard",
                    "Standard, 3-5 business days",
                    _money(USD="6.95", EUR="5.90", GBP="4.95"),
                    free_over=_money(USD="75.00", EUR="70.00", GBP="60.00"),
                ),
                ShippingMethod(
                    "express", "Express, 1-2 business days", _money(USD="18.50", EUR="14.90", GBP="11.95")
                ),
                ShippingMethod(
                    "freight",
                    "Palletised freight",
                    _money(USD="45.00", EUR="39.00", GBP="35.00"),
                    business_only=True,
                ),
            ),
            discount_codes=(
                DiscountCode("WELCOME10", "10% off your first order", percent=Decimal("0.10")),
                DiscountCode("FALL15", "Fall sale: 15% off", percent=Decimal("0.15")),
                DiscountCode(
                    "SAVE10",
                    "10 off orders over 60",
                    fixed=_money(USD="10.00", EUR="10.00", GBP="8.00"),
                    minimum=_money(USD="60.00", EUR="60.00", GBP="50.00"),
                ),
            ),
            gateways=(
                Gateway(
                    "stripe", "stripe", Decimal("0.029"), _money(USD="0.30", EUR="0.25", GBP="0.20"),
                    payout_delay_days=2, methods=("card", "apple_pay", "link"), id_prefix="pi",
                ),
                Gateway(
                    "adyen", "adyen", Decimal("0.026"), _money(USD="0.13", EUR="0.11", GBP="0.10"),
                    payout_delay_days=1, methods=("card", "paypal", "apple_pay"), id_prefix="psp",
                ),
                Gateway(
                    "shopify_payments", "shopify", Decimal("0.029"), _money(USD="0.30"),
                    payout_delay_days=3, methods=("card", "shop_pay"), id_prefix="sp",
                ),
            ),
        )  # fmt: skip

    @classmethod
    def scaled(cls, skus: int) -> Catalogue:
        """The default catalogue with `skus` SKUs (SKU-00001, SKU-00002, ...), for load tests.

        SKU n is a variant of base product (n - 1) mod 20 of the default catalogue, with its
        prices, unit cost, tax category and stock levels; warehouses, customers and the rest
        are the default's.
        """
        if skus < 1:
            raise ValueError(f"skus must be >= 1, got {skus}")
        default = cls.default()
        base = default.skus

        def variant(n: int) -> Sku:
            product = base[(n - 1) % len(base)]
            round_ = (n - 1) // len(base) + 1
            name = product.name if round_ == 1 else f"{product.name}, variant {round_}"
            return replace(product, code=f"SKU-{n:05d}", name=name)

        return replace(default, skus=tuple(variant(n) for n in range(1, skus + 1)))


def _money(**by_currency: str) -> dict[str, Decimal]:
    return {currency: Decimal(amount) for currency, amount in by_currency.items()}


def _rates(rates: str) -> dict[str, Decimal]:
    """Rate per tax category from "standard=0.19 food=0.07"."""
    return {category: Decimal(rate) for category, rate in (p.split("=") for p in rates.split())}


# name, USD, EUR, GBP, unit cost (USD), tax category, target stock per warehouse
_SKUS = (
    ("Merino Wool Beanie", "24.00", "22.00", "19.00", "7.8000", "standard", 80),
    ("Organic Cotton T-Shirt", "29.00", "27.00", "23.00", "8.4150", "standard", 120),
    ("Waxed Canvas Tote", "59.00", "55.00", "48.00", "18.2500", "standard", 60),
    ("Insulated Water Bottle 750 ml", "34.95", "32.95", "28.95", "9.1025", "standard", 100),
    ("Ceramic Pour-Over Dripper", "27.50", "25.90", "22.50", "6.9500", "standard", 60),
    ("Single-Origin Coffee Beans 1 kg", "38.00", "35.00", "30.00", "14.6000", "food", 120),
    ("Loose Leaf Green Tea 250 g", "16.50", "15.50", "13.50", "4.3500", "food", 100),
    ("Dark Chocolate Bar 100 g", "5.49", "4.99", "4.29", "1.6235", "food", 200),
    ("Field Guide to Mushrooms", "32.00", "29.90", "25.00", "11.0000", "books", 40),
    ("Slow Food: A Cookbook", "45.00", "42.00", "36.00", "15.7500", "books", 40),
    ("Dot-Grid Notebook A5", "18.00", "16.90", "14.50", "3.9000", "standard", 150),
    ("Fountain Pen, Steel Nib", "64.00", "59.00", "52.00", "21.3000", "standard", 40),
    ("Wireless Charging Pad", "39.99", "37.99", "32.99", "12.4500", "standard", 60),
    ("USB-C Cable 2 m", "12.99", "11.99", "9.99", "2.1000", "standard", 200),
    ("Noise-Cancelling Headphones", "249.00", "239.00", "209.00", "118.0000", "standard", 30),
    ("Bamboo Cutting Board", "42.00", "39.00", "34.00", "12.8000", "standard", 50),
    ("Cast Iron Skillet 26 cm", "79.00", "74.00", "64.00", "27.4000", "standard", 40),
    ("Linen Apron", "36.00", "33.00", "29.00", "9.7500", "standard", 60),
    ("Trail Running Socks, 3 Pack", "21.00", "19.50", "17.00", "5.2000", "standard", 150),
    ("Packable Rain Jacket", "129.00", "119.00", "105.00", "46.9000", "standard", 40),
)

_WAREHOUSES = (
    Warehouse(
        "WH-EAST", "East Coast DC", "us-east",
        Address("400 Logistics Way", "Edison", "NJ", "08837", "US"),
        serves=("US",), carriers=("ups", "fedex", "usps"),
    ),
    Warehouse(
        "WH-WEST", "West Coast DC", "us-west",
        Address("1200 Distribution Dr", "Reno", "NV", "89502", "US"),
        serves=("US-CA", "US-OR", "US-WA", "US-NV", "US-AZ"), carriers=("ups", "fedex", "usps"),
    ),
    Warehouse(
        "WH-EU", "EU Fulfilment Centre", "eu",
        Address("Waalhaven Zuidzijde 21", "Rotterdam", "ZH", "3089 JH", "NL"),
        serves=("DE", "FR", "NL", "GB"), carriers=("dhl", "postnl"),
    ),
)  # fmt: skip

# code, name, country, region, city, rates by tax category, taxes shipping
_JURISDICTIONS = (
    ("US-CA", "California", "US", "CA", None, "standard=0.0725 books=0.0725", False),
    ("US-CA-LAC", "Los Angeles County district", "US", "CA", "Los Angeles", "standard=0.0225 books=0.0225", False),
    ("US-CA-SF", "San Francisco district", "US", "CA", "San Francisco", "standard=0.01375 books=0.01375", False),
    ("US-NY", "New York State", "US", "NY", None, "standard=0.04 books=0.04", True),
    ("US-NY-NYC", "New York City", "US", "NY", "New York", "standard=0.04875 books=0.04875", True),
    ("US-TX", "Texas", "US", "TX", None, "standard=0.0625 books=0.0625", True),
    ("US-TX-AUS", "City of Austin", "US", "TX", "Austin", "standard=0.02 books=0.02", True),
    ("US-WA", "Washington", "US", "WA", None, "standard=0.065 books=0.065", True),
    ("US-WA-SEA", "City of Seattle", "US", "WA", "Seattle", "standard=0.0385 books=0.0385", True),
    ("US-IL", "Illinois", "US", "IL", None, "standard=0.0625 books=0.0625 food=0.01", False),
    ("US-MA", "Massachusetts", "US", "MA", None, "standard=0.0625 books=0.0625", False),
    ("US-FL", "Florida", "US", "FL", None, "standard=0.06 books=0.06", False),
    ("DE", "Germany VAT", "DE", None, None, "standard=0.19 food=0.07 books=0.07", True),
    ("FR", "France VAT", "FR", None, None, "standard=0.20 food=0.055 books=0.055", True),
    ("NL", "Netherlands VAT", "NL", None, None, "standard=0.21 food=0.09 books=0.09", True),
    # Zero-rated, not exempt: UK VAT returns report these sales at 0%.
    ("GB", "United Kingdom VAT", "GB", None, None, "standard=0.20 food=0 books=0", True),
)  # fmt: skip


def _consumer(n: int, name: str, address: Address, currency: str = "USD") -> Customer:
    email = name.lower().replace(" ", ".") + "@example.com"
    return Customer(f"CUS-{n:04d}", name, email, "CONSUMER", address, currency)


def _business(
    n: int,
    name: str,
    domain: str,
    address: Address,
    billing: Address,
    po_prefix: str,
    currency: str = "USD",
) -> Customer:
    return Customer(
        f"CUS-{n:04d}", name, f"ap@{domain}", "BUSINESS", address, currency,
        payment_terms="ON_ACCOUNT", billing_address=billing, po_prefix=po_prefix,
    )  # fmt: skip


_CUSTOMERS = (
    _consumer(1, "Ava Thompson", Address("350 S Grand Ave", "Los Angeles", "CA", "90071", "US")),
    _consumer(2, "Liam Johnson", Address("1 Market St", "San Francisco", "CA", "94105", "US")),
    _consumer(3, "Sophia Martinez", Address("600 W Broadway", "San Diego", "CA", "92101", "US")),
    _consumer(4, "Noah Williams", Address("245 W 34th St", "New York", "NY", "10001", "US", "Apt 12B")),
    _consumer(5, "Olivia Davis", Address("50 Fountain Plaza", "Buffalo", "NY", "14202", "US")),
    _consumer(6, "James Wilson", Address("500 E 4th St", "Austin", "TX", "78701", "US")),
    _consumer(7, "Isabella Moore", Address("901 Bagby St", "Houston", "TX", "77002", "US")),
    _consumer(8, "Benjamin Taylor", Address("1301 2nd Ave", "Seattle", "WA", "98101", "US")),
    _consumer(9, "Mia Anderson", Address("808 W Spokane Falls Blvd", "Spokane", "WA", "99201", "US")),
    _consumer(10, "Lucas Thomas", Address("1221 SW 4th Ave", "Portland", "OR", "97204", "US")),
    _consumer(11, "Charlotte Jackson", Address("233 S Wacker Dr", "Chicago", "IL", "60606", "US")),
    _consumer(12, "Henry White", Address("1 City Hall Sq", "Boston", "MA", "02201", "US")),
    _consumer(13, "Amelia Harris", Address("1111 Lincoln Rd", "Miami Beach", "FL", "33139", "US")),
    _consumer(14, "Elijah Martin", Address("110 Hudson St", "New York", "NY", "10013", "US")),
    _consumer(15, "Harper Garcia", Address("2100 Sunset Blvd", "Los Angeles", "CA", "90026", "US")),
    _consumer(16, "Alexander Lee", Address("305 Harrison St", "Seattle", "WA", "98109", "US")),
    _consumer(17, "Evelyn Clark", Address("1100 S Congress Ave", "Austin", "TX", "78704", "US")),
    _business(
        18, "Northwind Cafes LLC", "northwind-cafes.example",
        Address("2200 Westlake Ave", "Seattle", "WA", "98121", "US", "Loading Dock B"),
        Address("PO Box 3400", "Seattle", "WA", "98124", "US"), "NWC-",
    ),
    _business(
        19, "Brightline Hospitality Inc.", "brightline.example",
        Address("55 Water St", "New York", "NY", "10041", "US", "Receiving, Floor 2"),
        Address("55 Water St", "New York", "NY", "10041", "US", "Accounts Payable, Floor 30"), "BH-",
    ),
    _business(
        20, "Cedar & Pine Interiors", "cedarpine.example",
        Address("1500 NW Thurman St", "Portland", "OR", "97209", "US"),
        Address("PO Box 8801", "Portland", "OR", "97207", "US"), "CPI-",
    ),
    _business(
        21, "Lone Star Outfitters", "lonestar-outfitters.example",
        Address("3800 N Lamar Blvd", "Austin", "TX", "78756", "US"),
        Address("PO Box 1120", "Austin", "TX", "78767", "US"), "LSO-",
    ),
    _consumer(22, "Lena Schmidt", Address("Invalidenstrasse 117", "Berlin", "BE", "10115", "DE"), "EUR"),
    _consumer(23, "Jonas Weber", Address("Leopoldstrasse 42", "Muenchen", "BY", "80802", "DE"), "EUR"),
    _consumer(24, "Camille Dubois", Address("12 Rue de Turenne", "Paris", "IDF", "75004", "FR"), "EUR"),
    _consumer(25, "Hugo Laurent", Address("8 Quai Saint-Antoine", "Lyon", "ARA", "69002", "FR"), "EUR"),
    _consumer(26, "Sanne de Vries", Address("Prinsengracht 263", "Amsterdam", "NH", "1016 GV", "NL"), "EUR"),
    _business(
        27, "Gruenwald Gastro GmbH", "gruenwald-gastro.example",
        Address("Grosse Elbstrasse 145", "Hamburg", "HH", "22767", "DE"),
        Address("Ballindamm 1", "Hamburg", "HH", "20095", "DE", "Buchhaltung"), "GG-", "EUR",
    ),
    _consumer(28, "Oliver Smith", Address("221 Baker St", "London", "ENG", "NW1 6XE", "GB"), "GBP"),
    _consumer(29, "Amelia Jones", Address("1 Piccadilly Gardens", "Manchester", "ENG", "M1 1RG", "GB"), "GBP"),
    _consumer(30, "George Evans", Address("10 Princes St", "Edinburgh", "SCT", "EH2 2AN", "GB"), "GBP"),
)  # fmt: skip


# --- Pricing: the rules every amount of an order follows -------------------------------------


@dataclass(frozen=True)
class LineRequest:
    sku: Sku
    quantity: int
    discount: Decimal
    """Off the whole line."""


@dataclass(frozen=True)
class PricedOrder:
    lines: list[dict[str, Any]]
    """OrderLine datums."""
    discounts: list[dict[str, Any]]
    shipping: dict[str, Any] | None
    total: Decimal
    paid: dict[str, Decimal]
    """What the customer pays per SKU: line net of all discounts, tax included."""
    shipping_paid: Decimal
    """Shipping with its tax."""


def tax_lines(
    base: Decimal, category: str, jurisdictions: Sequence[TaxJurisdiction], currency: str
) -> list[dict[str, Any]]:
    """TaxLine datums for `base`: one per jurisdiction that taxes `category`, each rounded."""
    return [
        {"jurisdiction": j.code, "rate": rate, "amount": quantize_minor(base * rate, currency)}
        for j in jurisdictions
        if (rate := j.rates.get(category)) is not None
    ]


def price_order(
    currency: str,
    lines: Sequence[LineRequest],
    jurisdictions: Sequence[TaxJurisdiction],
    discount_code: DiscountCode | None,
    shipping: ShippingMethod | None,
) -> PricedOrder:
    """Price an order; total = lines net of line discounts - order discounts + shipping + taxes.

    An order-level discount is spread over the lines in proportion to their value, and
    each line is taxed on what remains of it, as storefronts do.
    """
    nets = [line.quantity * line.sku.price(currency) - line.discount for line in lines]
    merchandise = sum(nets, Decimal(0))
    discounts: list[dict[str, Any]] = []
    order_discount = quantize_minor(Decimal(0), currency)
    amount = discount_code.amount(merchandise, currency) if discount_code else None
    if discount_code is not None and amount:
        order_discount = amount
        discounts.append(
            {"code": discount_code.code, "description": discount_code.description, "amount": amount}
        )
    shares = allocate(order_discount, nets, currency)
    datums: list[dict[str, Any]] = []
    paid: dict[str, Decimal] = {}
    for number, (line, net, share) in enumerate(zip(lines, nets, shares, strict=True), 1):
        taxes = tax_lines(net - share, line.sku.tax_category, jurisdictions, currency)
        datums.append(
            {
                "line_id": str(number),
                "sku": line.sku.code,
                "quantity": line.quantity,
                "unit_price": line.sku.price(currency),
                "discount": line.discount,
                "tax_lines": taxes,
            }
        )
        paid[line.sku.code] = net - share + sum((t["amount"] for t in taxes), Decimal(0))
    shipping_datum = None
    shipping_paid = Decimal(0)
    if shipping is not None:
        charge = shipping.charge(merchandise - order_discount, currency)
        taxable = [j for j in jurisdictions if j.taxes_shipping]
        taxes = tax_lines(charge, SHIPPING_TAX_CATEGORY, taxable, currency) if charge else []
        shipping_datum = {"method": shipping.code, "amount": charge, "tax_lines": taxes}
        shipping_paid = charge + sum((t["amount"] for t in taxes), Decimal(0))
    total = sum(paid.values(), Decimal(0)) + shipping_paid
    return PricedOrder(datums, discounts, shipping_datum, total, paid, shipping_paid)


def prorate(amount: Decimal, quantity: int, part: int, currency: str) -> Decimal:
    """The share of `amount` (paid for `quantity` units) that `part` of the units carry."""
    if part == quantity:
        return amount
    return quantize_minor(amount * part / quantity, currency)


# --- Generation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleEvent:
    topic: str
    """Logical topic name (streams.contracts.topics)."""
    key: str
    schema_name: str
    datum: dict[str, Any]


def generate(
    seed: int, orders: int, catalogue: Catalogue, start: datetime
) -> Iterator[SampleEvent]:
    """Opening stock, then `orders` orders and everything that follows from them, in time order.

    Every order's story runs to its end (payout, return), so the last events can be days
    after the last order. Times are whole milliseconds, strictly increasing from `start`.
    """
    if orders < 0:
        raise ValueError(f"orders must be >= 0, got {orders}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    utc = start.astimezone(UTC)
    # timestamp-millis keeps milliseconds only; anything finer would not survive a round trip.
    utc = utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    return _Simulation(seed, orders, catalogue, utc).run()


_SECOND = 1000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

_MEAN_ORDER_GAP = 90 * _SECOND
_LINE_COUNT_WEIGHTS = {1: 40, 2: 30, 3: 20, 4: 10}
_P_LINE_DISCOUNT = 0.15
_LINE_DISCOUNT_RATES = (Decimal("0.10"), Decimal("0.20"))
_P_ORDER_DISCOUNT = 0.15
_P_MOBILE = 0.15
_P_EXPRESS = 0.2
_P_COLLECT = 0.3
"""Businesses that collect from the warehouse pay no shipping."""
_P_DECLINED_ONCE = 0.06
_P_DECLINED_TWICE = 0.015
_P_CANCEL = 0.04
_P_SPLIT = 0.15
_P_OTHER_WAREHOUSE = 0.4
"""A split's second shipment comes from another warehouse in the same country."""
_P_RETURN = 0.06
_P_LOST = 0.015
_P_DAMAGE = 0.03
_P_COUNT = 0.04
_P_TRANSFER = 0.03
_P_APPROVAL = 0.3
"""A business buyer's order the shop flags for approval (over the buyer's spending limit)."""
_P_REJECTED = 0.2
"""Of those, the ones the company's approver rejects."""

_DECLINE_REASONS = ("card_declined", "insufficient_funds", "expired_card", "do_not_honor")
_CANCEL_REASONS = ("customer_request", "fraud_suspected", "duplicate_order")
_TRACKING = {
    "ups": ("1Z", 16),
    "fedex": ("", 12),
    "usps": ("94", 20),
    "dhl": ("JJD", 18),
    "postnl": ("3S", 13),
}
_TRACKING_DEFAULT = ("", 14)
_SOURCE_STOREFRONT = "shopify"
_SOURCE_ERP = "erp:tryton"
_SOURCE_WMS = "wms"

# Value schema and key field of each input topic, as in streams.contracts.topics.SPECS.
_ENVELOPES = {
    ORDERS: ("erpbridge.OrderEvent", "order_id"),
    INVENTORY: ("erpbridge.InventoryEvent", "sku"),
    PAYMENTS: ("erpbridge.PaymentEvent", "order_id"),
}


@dataclass(frozen=True)
class _Draft:
    """An event before the simulation stamps its id and time."""

    topic: str
    key: str
    source: str
    member: str
    """Short name of the record in the envelope's `event` union."""
    body: dict[str, Any]


_Action = Callable[[int], list[_Draft]]
"""Runs at a simulated time (ms after start) and returns the events that happen then."""


@dataclass
class _Order:
    order_id: str
    number: int
    currency: str
    priced: PricedOrder
    shipments: list[tuple[Warehouse, list[tuple[Sku, int]]]]
    gateway: Gateway | None
    """None for orders on account, which are invoiced instead."""
    method: str | None
    payment_id: str | None = None
    """Set once money is captured."""
    approval: str | None = None
    """For an order flagged for approval: "approved" or "rejected", by `approver`."""
    approver: str | None = None


def _buyer(company: Customer, number: int) -> dict[str, Any]:
    """One of a business's two buyers, who orders for it (by turns, so the draws stay as
    they were): the company's account is the one the ERP invoices."""
    n = number % 2 + 1
    return {
        "customer_id": f"{company.customer_id}-B{n}",
        "email": f"buyer{n}@{company.email.split('@')[-1]}",
        "name": f"Buyer {n}, {company.name}",
        "kind": company.kind,
        "group": None,
        "company_id": company.customer_id,
    }


class _Simulation:
    """A queue of actions by simulated time; an action may schedule further actions."""

    def __init__(self, seed: int, orders: int, catalogue: Catalogue, start: datetime) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.catalogue = catalogue
        self.start = start
        self.orders = orders
        self.placed = 0
        self.queue: list[tuple[int, int, _Action]] = []
        self.sequence = itertools.count()
        self.clock = -1
        self.event_numbers = itertools.count(1)
        self.document_numbers = itertools.count(1)
        self.stock: dict[tuple[str, str], int] = {}
        self.reorders: set[tuple[str, str]] = set()

    def run(self) -> Iterator[SampleEvent]:
        self.at(0, self.open_stock)
        if self.orders:
            self.at(_MINUTE + self.order_gap(), self.place)
        while self.queue:
            due, _, action = heapq.heappop(self.queue)
            now = max(due, self.clock + 1)
            for draft in action(now):
                yield self.stamp(draft, now)

    def at(self, when: int, action: _Action) -> None:
        # The sequence number breaks ties in scheduling order, so actions are never compared.
        heapq.heappush(self.queue, (when, next(self.sequence), action))

    def stamp(self, draft: _Draft, now: int) -> SampleEvent:
        self.clock = max(now, self.clock + 1)
        schema_name, key_field = _ENVELOPES[draft.topic]
        datum = {
            "event_id": f"evt-{self.seed}-{next(self.event_numbers)}",
            "occurred_at": self.time(self.clock),
            "source": draft.source,
            key_field: draft.key,
            "event": (f"erpbridge.{draft.member}", draft.body),
        }
        return SampleEvent(draft.topic, draft.key, schema_name, datum)

    def time(self, offset: int) -> datetime:
        return self.start + timedelta(milliseconds=offset)

    def between(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def order_gap(self) -> int:
        return max(_SECOND, round(self.rng.expovariate(1 / _MEAN_ORDER_GAP)))

    def document(self, prefix: str) -> str:
        return f"{prefix}-{self.seed}-{next(self.document_numbers):06d}"

    # --- stock ---

    def open_stock(self, now: int) -> list[_Draft]:
        drafts = []
        for sku in self.catalogue.skus:
            for warehouse in self.catalogue.warehouses:
                self.stock[sku.code, warehouse.warehouse_id] = sku.target_stock
                snapshot = {
                    "warehouse_id": warehouse.warehouse_id,
                    "on_hand": sku.target_stock,
                    "as_of": self.time(now),
                    "unit_cost": sku.unit_cost,
                    "currency": self.catalogue.base_currency,
                }
                drafts.append(_Draft(INVENTORY, sku.code, _SOURCE_ERP, "StockSnapshot", snapshot))
        return drafts

    def on_hand(self, sku: Sku, warehouse: Warehouse) -> int:
        return self.stock[sku.code, warehouse.warehouse_id]

    def change_stock(self, sku: Sku, warehouse: Warehouse, delta: int, now: int) -> None:
        key = (sku.code, warehouse.warehouse_id)
        self.stock[key] += delta
        if self.stock[key] < sku.reorder_point and key not in self.reorders:
            self.reorders.add(key)
            self.at(
                now + self.between(4 * _HOUR, 24 * _HOUR), partial(self.replenish, sku, warehouse)
            )

    def adjustment(
        self,
        sku: Sku,
        warehouse: Warehouse,
        delta: int,
        reason: str,
        reference: str,
        counterpart: Warehouse | None = None,
        unit_cost: Decimal | None = None,
    ) -> _Draft:
        body = {
            "warehouse_id": warehouse.warehouse_id,
            "delta": delta,
            "reason": reason,
            "reference": reference,
            "counterpart_warehouse_id": counterpart.warehouse_id if counterpart else None,
            "unit_cost": unit_cost,
            "currency": self.catalogue.base_currency if unit_cost is not None else None,
        }
        return _Draft(INVENTORY, sku.code, _SOURCE_WMS, "StockAdjusted", body)

    def receipt(self, sku: Sku, warehouse: Warehouse, quantity: int, now: int) -> _Draft:
        self.change_stock(sku, warehouse, quantity, now)
        return self.adjustment(
            sku, warehouse, quantity, "RECEIPT", self.document("RCV"), unit_cost=sku.unit_cost
        )

    def replenish(self, sku: Sku, warehouse: Warehouse, now: int) -> list[_Draft]:
        self.reorders.discard((sku.code, warehouse.warehouse_id))
        quantity = sku.target_stock - self.on_hand(sku, warehouse)
        return [self.receipt(sku, warehouse, quantity, now)] if quantity > 0 else []

    def maybe_adjust_stock(self, now: int) -> None:
        roll = self.rng.random()
        sku = self.rng.choice(self.catalogue.skus)
        warehouse = self.rng.choice(self.catalogue.warehouses)
        when = now + self.between(_MINUTE, 2 * _HOUR)
        if roll < _P_DAMAGE:
            self.at(when, partial(self.damage, sku, warehouse))
        elif roll < _P_DAMAGE + _P_COUNT:
            self.at(when, partial(self.recount, sku, warehouse))
        elif roll < _P_DAMAGE + _P_COUNT + _P_TRANSFER:
            self.at(when, self.transfer)

    def damage(self, sku: Sku, warehouse: Warehouse, now: int) -> list[_Draft]:
        broken = min(self.on_hand(sku, warehouse), self.between(1, 3))
        if not broken:
            return []
        self.change_stock(sku, warehouse, -broken, now)
        return [self.adjustment(sku, warehouse, -broken, "DAMAGE", self.document("DMG"))]

    def recount(self, sku: Sku, warehouse: Warehouse, now: int) -> list[_Draft]:
        delta = max(self.rng.choice((-2, -1, 1, 2)), -self.on_hand(sku, warehouse))
        if not delta:
            return []
        self.change_stock(sku, warehouse, delta, now)
        return [self.adjustment(sku, warehouse, delta, "COUNT", self.document("CNT"))]

    def transfer(self, now: int) -> list[_Draft]:
        """Rebalance the most uneven SKU: half the gap between two warehouses of a country moves."""

        def gap(move: tuple[Sku, Warehouse, Warehouse]) -> int:
            sku, source, target = move
            return self.on_hand(sku, source) - self.on_hand(sku, target)

        moves = [
            (sku, a, b)
            for sku in self.catalogue.skus
            for a, b in itertools.permutations(self.catalogue.warehouses, 2)
            if a.address.country == b.address.country
        ]
        if not moves:
            return []
        sku, source, target = max(moves, key=gap)  # the first of equal gaps: deterministic
        quantity = gap((sku, source, target)) // 2
        if quantity < 1:
            return []
        reference = self.document("TRF")
        self.change_stock(sku, source, -quantity, now)
        self.change_stock(sku, target, quantity, now)
        return [
            self.adjustment(sku, source, -quantity, "TRANSFER", reference, counterpart=target),
            self.adjustment(sku, target, quantity, "TRANSFER", reference, counterpart=source),
        ]

    # --- orders ---

    def place(self, now: int) -> list[_Draft]:
        self.placed += 1
        if self.placed < self.orders:
            self.at(now + self.order_gap(), self.place)
        order, placed = self.new_order(self.placed)
        self.plan(order, now)
        self.maybe_adjust_stock(now)
        return [_Draft(ORDERS, order.order_id, _SOURCE_STOREFRONT, "OrderPlaced", placed)]

    def new_order(self, number: int) -> tuple[_Order, dict[str, Any]]:
        rng, catalogue = self.rng, self.catalogue
        customer = rng.choice(catalogue.customers)
        currency = customer.currency
        business = customer.kind == "BUSINESS"
        weights = list(_LINE_COUNT_WEIGHTS.values())
        line_count = rng.choices(list(_LINE_COUNT_WEIGHTS), weights=weights)[0]
        requests = []
        for sku in rng.sample(catalogue.skus, line_count):
            quantity = rng.randint(1, 5)
            discount = quantize_minor(Decimal(0), currency)
            if rng.random() < _P_LINE_DISCOUNT:
                rate = rng.choice(_LINE_DISCOUNT_RATES)
                discount = quantize_minor(quantity * sku.price(currency) * rate, currency)
            requests.append(LineRequest(sku, quantity, discount))
        code = None
        if not business and catalogue.discount_codes and rng.random() < _P_ORDER_DISCOUNT:
            code = rng.choice(catalogue.discount_codes)
        shipping = self.shipping_method(business)
        priced = price_order(
            currency, requests, catalogue.jurisdictions_for(customer.address), code, shipping
        )
        order_id = f"ORD-{self.seed}-{number:06d}"
        gateway: Gateway | None = None
        method: str | None = None
        if customer.payment_terms == "PREPAID":
            gateway = rng.choice(catalogue.gateways_for(currency))
            method = rng.choice(gateway.methods)
        order = _Order(
            order_id,
            number,
            currency,
            priced,
            self.plan_shipments(customer, [(r.sku, r.quantity) for r in requests]),
            gateway,
            method,
        )
        channel = "b2b" if business else "mobile" if rng.random() < _P_MOBILE else "web"
        if business and rng.random() < _P_APPROVAL:
            order.approval = "rejected" if rng.random() < _P_REJECTED else "approved"
            order.approver = f"purchasing@{customer.email.split('@')[-1]}"
        placed = {
            "currency": currency,
            "customer": _buyer(customer, number)
            if business
            else {
                "customer_id": customer.customer_id,
                "email": customer.email,
                "name": customer.name,
                "kind": customer.kind,
                "group": None,
                "company_id": None,
            },
            "ship_to": customer.address.datum(customer.name),
            "bill_to": customer.billing_address.datum(customer.name)
            if customer.billing_address
            else None,
            "channel": channel,
            "lines": priced.lines,
            "discounts": priced.discounts,
            "shipping": priced.shipping,
            "total": priced.total,
            "payment_terms": customer.payment_terms,
            "purchase_order_number": f"{customer.po_prefix}{self.seed}-{number:05d}"
            if customer.po_prefix
            else None,
            "storefront": None,  # published by the shop's own producer, not a webhook route
            "requires_approval": order.approval is not None,
        }
        return order, placed

    def shipping_method(self, business: bool) -> ShippingMethod | None:
        methods = [m for m in self.catalogue.shipping_methods if m.business_only == business]
        if business:
            return None if not methods or self.rng.random() < _P_COLLECT else methods[0]
        # The first consumer method is the everyday one; the others are upgrades.
        if len(methods) > 1 and self.rng.random() < _P_EXPRESS:
            return self.rng.choice(methods[1:])
        return methods[0]

    def plan_shipments(
        self, customer: Customer, lines: list[tuple[Sku, int]]
    ) -> list[tuple[Warehouse, list[tuple[Sku, int]]]]:
        rng = self.rng
        warehouse = self.catalogue.warehouse_for(customer.address)
        splittable = len(lines) > 1 or lines[0][1] > 1
        if not splittable or rng.random() >= _P_SPLIT:
            return [(warehouse, lines)]
        if len(lines) > 1:
            cut = rng.randint(1, len(lines) - 1)
            first, second = lines[:cut], lines[cut:]
        else:
            sku, quantity = lines[0]
            part = rng.randint(1, quantity - 1)
            first, second = [(sku, part)], [(sku, quantity - part)]
        peers = [
            w
            for w in self.catalogue.warehouses
            if w is not warehouse and w.address.country == warehouse.address.country
        ]
        other = rng.choice(peers) if peers and rng.random() < _P_OTHER_WAREHOUSE else warehouse
        return [(warehouse, first), (other, second)]

    def plan(self, order: _Order, now: int) -> None:
        """Decide the order's fate; the first steps are scheduled here, later ones by earlier steps."""
        rng = self.rng
        if order.approval == "rejected":
            self.at(now + self.between(20 * _MINUTE, 4 * _HOUR), partial(self.reject, order))
            return
        if order.approval == "approved":
            # Before the earliest shipment, two hours after placing.
            self.at(now + self.between(10 * _MINUTE, 90 * _MINUTE), partial(self.approve, order))
        declines = 0
        if order.gateway is not None:
            roll = rng.random()
            if roll < _P_DECLINED_TWICE:
                declines = 2
            elif roll < _P_DECLINED_TWICE + _P_DECLINED_ONCE:
                declines = 1
            first_attempt = partial(self.authorize, order, 1, declines)
            self.at(now + self.between(3 * _SECOND, 40 * _SECOND), first_attempt)
        if declines == 2:
            return  # authorize() cancels it after the second decline
        # Both come after any capture (at most ~16 minutes after placing).
        if rng.random() < _P_CANCEL:
            reason = rng.choice(_CANCEL_REASONS)
            self.at(
                now + self.between(30 * _MINUTE, 3 * _HOUR), partial(self.cancel, order, reason)
            )
        else:
            self.at(now + self.between(2 * _HOUR, 30 * _HOUR), partial(self.ship, order, 0))

    def payment(self, order: _Order, member: str, body: dict[str, Any]) -> _Draft:
        assert order.gateway is not None
        return _Draft(PAYMENTS, order.order_id, order.gateway.source, member, body)

    def authorize(self, order: _Order, attempt: int, declines: int, now: int) -> list[_Draft]:
        assert order.gateway is not None
        payment_id = f"{order.gateway.id_prefix}_{self.seed}_{order.number:06d}_{attempt}"
        common = {
            "payment_id": payment_id,
            "gateway": order.gateway.name,
            "amount": order.priced.total,
            "currency": order.currency,
        }
        if attempt > declines:
            self.at(
                now + self.between(_SECOND, 4 * _SECOND), partial(self.capture, order, payment_id)
            )
            return [self.payment(order, "PaymentAuthorized", {**common, "method": order.method})]
        if attempt < 2:
            retry = partial(self.authorize, order, attempt + 1, declines)
            self.at(now + self.between(2 * _MINUTE, 15 * _MINUTE), retry)
        else:
            self.at(
                now + self.between(20 * _MINUTE, _HOUR),
                partial(self.cancel, order, "payment_failed"),
            )
        reason = self.rng.choice(_DECLINE_REASONS)
        failed = {**common, "operation": "AUTHORIZE", "reason": reason}
        return [self.payment(order, "PaymentFailed", failed)]

    def capture(self, order: _Order, payment_id: str, now: int) -> list[_Draft]:
        assert order.gateway is not None
        order.payment_id = payment_id
        payout_date = self.time(now).date() + timedelta(days=order.gateway.payout_delay_days)
        payout_at = datetime.combine(payout_date, time(6, 0), tzinfo=UTC)
        payout_id = (
            f"po_{order.gateway.name}_{order.currency.lower()}_{self.seed}_{payout_date:%Y%m%d}"
        )
        when = (payout_at - self.start) // timedelta(milliseconds=1)
        self.at(when, partial(self.settle, order, payout_id))
        captured = {
            "payment_id": payment_id,
            "gateway": order.gateway.name,
            "amount": order.priced.total,
            "currency": order.currency,
        }
        return [self.payment(order, "PaymentCaptured", captured)]

    def settle(self, order: _Order, payout_id: str, now: int) -> list[_Draft]:
        assert order.gateway is not None and order.payment_id is not None
        gross = order.priced.total
        fee = order.gateway.fee(gross, order.currency)
        settled = {
            "payout_id": payout_id,
            "payment_id": order.payment_id,
            "gateway": order.gateway.name,
            "gross": gross,
            "fee": fee,
            "net": gross - fee,
            "currency": order.currency,
        }
        return [self.payment(order, "PaymentSettled", settled)]

    def refund_id(self, order: _Order) -> str:
        # An order is refunded at most once: on cancellation, or after delivery.
        return f"RF-{self.seed}-{order.number:06d}"

    def refund_payment(self, order: _Order, amount: Decimal, now: int) -> list[_Draft]:
        assert order.gateway is not None and order.payment_id is not None
        refunded = {
            "payment_id": order.payment_id,
            "gateway": order.gateway.name,
            "refund_id": self.refund_id(order),
            "amount": amount,
            "currency": order.currency,
        }
        return [self.payment(order, "PaymentRefunded", refunded)]

    def approve(self, order: _Order, now: int) -> list[_Draft]:
        approved = {"approved_by": order.approver, "note": None}
        return [_Draft(ORDERS, order.order_id, _SOURCE_STOREFRONT, "OrderApproved", approved)]

    def reject(self, order: _Order, now: int) -> list[_Draft]:
        rejected = {"rejected_by": order.approver, "reason": "over the quarter's budget"}
        return [_Draft(ORDERS, order.order_id, _SOURCE_STOREFRONT, "OrderRejected", rejected)]

    def cancel(self, order: _Order, reason: str, now: int) -> list[_Draft]:
        if order.payment_id is not None:
            refund = partial(self.refund_payment, order, order.priced.total)
            self.at(now + self.between(30 * _SECOND, 10 * _MINUTE), refund)
        return [
            _Draft(ORDERS, order.order_id, _SOURCE_STOREFRONT, "OrderCancelled", {"reason": reason})
        ]

    def ship(self, order: _Order, index: int, now: int) -> list[_Draft]:
        warehouse, lines = order.shipments[index]
        drafts = []
        for sku, quantity in lines:
            short = quantity - self.on_hand(sku, warehouse)
            if short > 0:
                # Expedited receipt: the order waited for goods that arrived just now.
                drafts.append(self.receipt(sku, warehouse, short + sku.target_stock, now))
            self.change_stock(sku, warehouse, -quantity, now)
        carrier = tracking = None
        if order.priced.shipping is not None:
            carrier = self.rng.choice(warehouse.carriers)
            prefix, digits = _TRACKING.get(carrier, _TRACKING_DEFAULT)
            tracking = prefix + "".join(self.rng.choices("0123456789", k=digits))
        fulfilled = {
            "fulfillment_id": f"FUL-{self.seed}-{order.number:06d}-{index + 1}",
            "warehouse_id": warehouse.warehouse_id,
            "lines": [{"sku": sku.code, "quantity": quantity} for sku, quantity in lines],
            "carrier": carrier,
            "tracking_number": tracking,
        }
        drafts.append(_Draft(ORDERS, order.order_id, _SOURCE_WMS, "OrderFulfilled", fulfilled))
        if index + 1 < len(order.shipments):
            self.at(now + self.between(_HOUR, 48 * _HOUR), partial(self.ship, order, index + 1))
        else:
            roll = self.rng.random()
            if roll < _P_RETURN:
                self.at(now + self.between(3 * _DAY, 14 * _DAY), partial(self.take_back, order))
            elif roll < _P_RETURN + _P_LOST and order.priced.shipping is not None:
                self.at(
                    now + self.between(5 * _DAY, 10 * _DAY), partial(self.lost_in_transit, order)
                )
        return drafts

    def take_back(self, order: _Order, now: int) -> list[_Draft]:
        """The customer returns some units; they go back to the order's main warehouse."""
        warehouse = order.shipments[0][0]
        skus = {sku.code: sku for _, lines in order.shipments for sku, _ in lines}
        returned = []
        for line in self.rng.sample(order.priced.lines, self.between(1, len(order.priced.lines))):
            quantity = self.between(1, line["quantity"])
            amount = prorate(
                order.priced.paid[line["sku"]], line["quantity"], quantity, order.currency
            )
            returned.append({"sku": line["sku"], "quantity": quantity, "amount": amount})
        for line in returned:
            self.change_stock(skus[line["sku"]], warehouse, line["quantity"], now)
        return self.refund(order, "RETURN", returned, None, warehouse, now)

    def lost_in_transit(self, order: _Order, now: int) -> list[_Draft]:
        """The parcel never arrived: everything is refunded, shipping too, and nothing restocked."""
        lines = [
            {
                "sku": line["sku"],
                "quantity": line["quantity"],
                "amount": order.priced.paid[line["sku"]],
            }
            for line in order.priced.lines
        ]
        return self.refund(order, "REFUND", lines, order.priced.shipping_paid, None, now)

    def refund(
        self,
        order: _Order,
        kind: str,
        lines: list[dict[str, Any]],
        shipping: Decimal | None,
        restock_at: Warehouse | None,
        now: int,
    ) -> list[_Draft]:
        total = sum((line["amount"] for line in lines), shipping or Decimal(0))
        if order.payment_id is not None:
            self.at(
                now + self.between(_MINUTE, 2 * _HOUR), partial(self.refund_payment, order, total)
            )
        refunded = {
            "refund_id": self.refund_id(order),
            "kind": kind,
            "currency": order.currency,
            "lines": lines,
            "shipping_amount": shipping,
            "total": total,
            "restock": restock_at is not None,
            "warehouse_id": restock_at.warehouse_id if restock_at else None,
        }
        return [_Draft(ORDERS, order.order_id, _SOURCE_STOREFRONT, "OrderRefunded", refunded)]

"""A hypothesis strategy for commerce streams where orders compete for scarce stock.

`commerce_streams()` draws what a shop's producers could send: a few SKUs with one to three
units per warehouse (the three of config/routing.json), several orders over them in US,
German and British destinations and three currencies, each with its own story: paid in
one or two captures (sometimes after a declined attempt, sometimes on account), shipped in
part or in full from any warehouse, refunded with or without restock (with or without the
gateway's matching refund), settled by the gateway, or cancelled, plus payments for orders
never placed, stock recounts, receipts, damage and transfers. The stories are consistent
(what the business accepts once every event is in), so nothing waits for ever and nothing
is dead-lettered whatever the arrival order; the arrival order is drawn (payments before
their orders, refunds before their shipments, recounts before older movements), and some
events are redelivered under the same event id, and some fulfilments re-sent under a new one.

Everything is built with tests.streams.domain.builders and money is whole minor units,
so the drawn events are exactly what the codec decodes (`as_sample`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from streams.contracts.topics import INVENTORY, ORDERS, PAYMENTS, spec
from streams.domain.events import InputEvent
from streams.domain.routing import Destination
from streams.domain.stock import INVENTORY_EVENTS
from streams.sample.generator import SampleEvent
from tests.streams.domain import builders as b
from tests.streams.domain.builders import EAST, EU, MINUTE_MS, T0, WEST

WAREHOUSES = (EAST, WEST, EU)
"""config/routing.json's warehouses."""
SKUS = ("SKU-A", "SKU-B", "SKU-C")
GATEWAYS = ("stripe", "adyen", "paypal")
"""Two with a clearing account of their own in config/finance.json, one without."""
COST_CURRENCY = {EAST: "USD", WEST: "USD", EU: "EUR"}
"""The currency each warehouse's ERP states unit costs in."""
NOW = T0 + 24 * 60 * MINUTE_MS
"""The processing time the model runs at: after every event's time."""


@dataclass(frozen=True)
class Market:
    destination: Destination
    currency: str
    jurisdiction: str


MARKETS = (
    Market(Destination("web", "US", "CA"), "USD", "US-CA"),
    Market(Destination("web", "US", "NY"), "USD", "US-NY"),
    Market(Destination("mobile", "US", "TX"), "USD", "US-TX"),
    Market(Destination("web", "DE", None), "EUR", "DE"),
    Market(Destination("b2b", "GB", None), "GBP", "GB"),
)


@dataclass(frozen=True)
class CommerceStream:
    deliveries: tuple[InputEvent, ...]
    """Every record the topology reads, in arrival order: each event once and the
    redeliveries (the same event, same id, again)."""
    unit_costs: Mapping[tuple[str, str], Decimal]
    """(SKU, warehouse) -> the unit cost every costed inventory event of it states, in
    COST_CURRENCY[warehouse]."""
    orders: tuple[str, ...] = field(default=())
    """Order ids placed (payments for orders never placed have others)."""

    def __repr__(self) -> str:
        """One line per delivery, for a counterexample a person can read."""
        lines = [
            f"  {e.event_id} {e.kind} {e.key} at T0{(e.occurred_ms - T0) // 1000:+d}s: {_brief(e)}"
            for e in self.deliveries
        ]
        return "CommerceStream(\n" + "\n".join(lines) + f"\n  unit costs {dict(self.unit_costs)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints a counterexample with this."""
        printer.text(repr(self))

    @property
    def events(self) -> list[InputEvent]:
        """Each event once, in the order of its first arrival."""
        seen: set[str] = set()
        first = []
        for event in self.deliveries:
            if event.event_id not in seen:
                seen.add(event.event_id)
                first.append(event)
        return first

    @property
    def redelivered(self) -> int:
        return len(self.deliveries) - len(self.events)

    def arrived(self, order: Sequence[int]) -> CommerceStream:
        """The same events, each once, in another arrival order (indexes into `events`)."""
        events = self.events
        return replace(self, deliveries=tuple(events[i] for i in order))

    def costs_first(self) -> CommerceStream:
        """The same deliveries, with the inventory events that state a unit cost moved to
        the front (keeping their relative order): the ERP told the cost before goods moved."""
        costed = [e for e in self.deliveries if _costed(e)]
        rest = [e for e in self.deliveries if not _costed(e)]
        return replace(self, deliveries=tuple(costed + rest))


def _brief(event: InputEvent) -> str:
    p = event.payload
    if event.kind == "OrderPlaced":
        lines = ", ".join(f"{x['quantity']} {x['sku']} at {x['unit_price']}" for x in p["lines"])
        ship_to = p["ship_to"]
        return (
            f"{lines}; total {p['total']} {p['currency']} {p['payment_terms']} to "
            f"{ship_to['country']}-{ship_to['region']}"
        )
    shown = {
        k: v
        for k, v in p.items()
        if v is not None and k not in ("customer", "ship_to", "carrier", "tracking_number")
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _costed(event: InputEvent) -> bool:
    return event.kind in INVENTORY_EVENTS and event.payload.get("unit_cost") is not None


def topic_of(event: InputEvent) -> str:
    if event.kind in INVENTORY_EVENTS:
        return INVENTORY
    return PAYMENTS if event.kind.startswith("Payment") else ORDERS


def as_sample(event: InputEvent) -> SampleEvent:
    """The event as a producer publishes it: the Avro datum of its topic's envelope."""
    topic = topic_of(event)
    topic_spec = spec(topic)
    assert topic_spec.value_schema is not None
    datum = {
        "event_id": event.event_id,
        "occurred_at": b.to_datetime(event.occurred_ms),
        "source": event.source,
        topic_spec.key: event.key,
        "event": (f"erpbridge.{event.kind}", event.payload),
    }
    return SampleEvent(topic, event.key, topic_spec.value_schema, datum)


def money(cents: int) -> str:
    """Whole minor units as the decimal string the builders take (every currency here has 2)."""
    return str(Decimal(cents).scaleb(-2))


# --- drawing ----------------------------------------------------------------------------------


class _Ids:
    """Event ids, and the times of stock events, unique within a stream."""

    def __init__(self) -> None:
        self.n = 0
        self.times: set[int] = set()

    def __call__(self) -> str:
        self.n += 1
        return f"E-{self.n}"

    def free(self, at: int) -> int:
        while at in self.times or at + 1 in self.times:
            at += 2000
        self.times.update((at, at + 1))
        return at


@dataclass
class _Line:
    sku: str
    quantity: int
    price: int
    discount: int
    """Per unit, in cents."""
    tax: int
    """Per unit, in cents."""

    @property
    def gross(self) -> int:
        return self.price - self.discount + self.tax


@st.composite
def commerce_streams(
    draw: st.DrawFn,
    *,
    max_orders: int = 6,
    max_skus: int = 3,
    max_stock_events: int = 4,
    max_redeliveries: int = 6,
) -> CommerceStream:
    ids = _Ids()
    skus = SKUS[: draw(st.integers(1, max_skus), label="skus")]
    unit_costs = {
        (sku, w): Decimal(draw(st.integers(50, 4000), label="unit cost")).scaleb(-2)
        for sku in skus
        for w in WAREHOUSES
    }
    events: list[InputEvent] = []
    events += _opening_stock(draw, ids, skus, unit_costs)
    for _ in range(draw(st.integers(0, max_stock_events), label="stock events")):
        events += _stock_event(draw, ids, skus, unit_costs)
    n_orders = draw(st.integers(1, max_orders), label="orders")
    orders = tuple(f"O-{i}" for i in range(1, n_orders + 1))
    for i, order_id in enumerate(orders):
        events += _story(draw, ids, order_id, skus, T0 + i * 10 * MINUTE_MS)
    if draw(st.integers(0, 4), label="orphan payment") == 0:
        amount = money(draw(st.integers(100, 20000)))
        events.append(b.captured("O-NEVER", amount, payment_id="PAY-NEVER", event_id=ids(), at=T0))
    arrival = draw(st.permutations(events), label="arrival order")
    deliveries = list(arrival)
    redeliveries = draw(
        st.lists(
            st.tuples(st.integers(0, len(events) - 1), st.integers(0, len(events))),
            max_size=max_redeliveries,
        ),
        label="redeliveries",
    )
    # Each at its own position, counted in the deliveries so far: later ones may land
    # between earlier ones.
    for which, where in redeliveries:
        deliveries.insert(min(where, len(deliveries)), arrival[which])
    return CommerceStream(tuple(deliveries), unit_costs, orders)


@st.composite
def stream_and_arrival(draw: st.DrawFn) -> tuple[CommerceStream, list[int]]:
    """A stream, and another arrival order of its events (indexes into `events`)."""
    stream = draw(commerce_streams())
    return stream, draw(st.permutations(range(len(stream.events))), label="other arrival")


def _opening_stock(
    draw: st.DrawFn, ids: _Ids, skus: Sequence[str], costs: Mapping[tuple[str, str], Decimal]
) -> Iterator[InputEvent]:
    """The ERP's snapshot of every SKU in every warehouse an hour before the first order:
    zero to three units, so a handful of orders compete for them."""
    for sku in skus:
        for w in WAREHOUSES:
            yield b.snapshot(
                sku,
                w,
                draw(st.integers(0, 3), label="opening stock"),
                T0 - 60 * MINUTE_MS,
                unit_cost=str(costs[sku, w]),
                currency=COST_CURRENCY[w],
                event_id=ids(),
            )


def _stock_event(
    draw: st.DrawFn, ids: _Ids, skus: Sequence[str], costs: Mapping[tuple[str, str], Decimal]
) -> list[InputEvent]:
    sku = draw(st.sampled_from(skus))
    w = draw(st.sampled_from(WAREHOUSES))
    # Distinct times (odd seconds, never an order event's whole minute), so no two
    # snapshots of a warehouse are as of the same moment.
    at = ids.free(T0 + draw(st.integers(0, 3 * 60 * 60), label="stock event") * 2000 + 1000)
    with_cost = draw(st.booleans(), label="states its cost")
    unit_cost = str(costs[sku, w]) if with_cost else None
    currency = COST_CURRENCY[w] if with_cost else None
    kind = draw(st.sampled_from(["recount", "receipt", "damage", "transfer"]))
    source = draw(st.sampled_from(["wms", "erp:tryton"]), label="source")
    if kind == "recount":
        on_hand = draw(st.integers(0, 6), label="counted")
        return [
            b.snapshot(sku, w, on_hand, at, unit_cost=unit_cost, currency=currency, event_id=ids())
        ]
    if kind == "receipt":
        delta = draw(st.integers(1, 5))
        return [
            b.adjusted(
                sku,
                w,
                delta,
                at=at,
                reason="RECEIPT",
                unit_cost=unit_cost,
                currency=currency,
                event_id=ids(),
                source=source,
            )
        ]
    if kind == "damage":
        delta = -draw(st.integers(1, 2))
        return [b.adjusted(sku, w, delta, at=at, reason="DAMAGE", event_id=ids(), source=source)]
    to = draw(st.sampled_from([x for x in WAREHOUSES if x != w]), label="transfer to")
    n = draw(st.integers(1, 3), label="transferred")
    return [
        b.adjusted(
            sku, w, -n, at=at, reason="TRANSFER", counterpart=to, event_id=ids(), source=source
        ),
        b.adjusted(
            sku, to, n, at=at + 1, reason="TRANSFER", counterpart=w, event_id=ids(), source=source
        ),
    ]


def _story(
    draw: st.DrawFn, ids: _Ids, order_id: str, skus: Sequence[str], placed_at: int
) -> list[InputEvent]:
    market = draw(st.sampled_from(MARKETS), label="market")
    currency = market.currency
    ordered = draw(st.lists(st.sampled_from(skus), min_size=1, unique=True), label="ordered")
    if draw(st.integers(0, 5), label="a second line of a SKU") == 0:
        ordered.append(draw(st.sampled_from(ordered)))
    lines = []
    for sku in ordered:
        price = draw(st.integers(100, 9999), label="unit price")
        lines.append(
            _Line(
                sku,
                draw(st.integers(1, 4), label="quantity"),
                price,
                draw(st.sampled_from([0, 0, price // 10, price // 5]), label="unit discount"),
                draw(st.sampled_from([0, price * 7 // 100, price * 19 // 100]), label="unit tax"),
            )
        )
    quantity = {sku: sum(x.quantity for x in lines if x.sku == sku) for sku in ordered}
    unit_gross = {sku: next(x.gross for x in lines if x.sku == sku) for sku in ordered}
    net = sum(x.quantity * (x.price - x.discount) for x in lines)
    order_discount = draw(
        st.sampled_from([0, 0, 0, min(500, net // 2), net // 7]), label="order discount"
    )
    shipping = draw(st.sampled_from([0, 0, 495, 1250]), label="shipping")
    shipping_tax = shipping * draw(st.sampled_from([0, 19]), label="shipping tax rate") // 100
    total = sum(x.quantity * x.gross for x in lines) - order_discount + shipping + shipping_tax
    on_account = draw(st.integers(0, 4), label="terms") == 0
    # An order the storefront flags for approval: approved, rejected, or still waiting.
    approval = draw(
        st.sampled_from([None] * 12 + ["approved"] * 3 + ["rejected", "waiting"]), label="approval"
    )
    placement = b.placed(
        order_id,
        [
            b.line(
                f"L{n}",
                x.sku,
                x.quantity,
                money(x.price),
                discount=money(x.quantity * x.discount),
                tax=[money(x.quantity * x.tax)] if x.tax else [],
                jurisdiction=market.jurisdiction,
            )
            for n, x in enumerate(lines, 1)
        ],
        total=money(total),
        currency=currency,
        destination=market.destination,
        payment_terms="ON_ACCOUNT" if on_account else "PREPAID",
        purchase_order_number=f"PO-{order_id}" if on_account else None,
        discounts=[{"code": "SAVE", "description": None, "amount": Decimal(money(order_discount))}]
        if order_discount
        else [],
        shipping=None
        if not shipping
        else {
            "method": "standard",
            "amount": Decimal(money(shipping)),
            "tax_lines": [
                {
                    "jurisdiction": market.jurisdiction,
                    "rate": Decimal("0.19"),
                    "amount": Decimal(money(shipping_tax)),
                }
            ]
            if shipping_tax
            else [],
        },
        requires_approval=approval is not None,
        at=placed_at,
        event_id=ids(),
    )
    events: list[InputEvent] = []

    def resent(event: InputEvent) -> None:
        """The fact again under a new event id, as a storefront's or gateway's retried
        webhook sends it."""
        events.append(event)
        if draw(st.integers(0, 7), label="re-sent under a new id") == 0:
            events.append(replace(event, event_id=ids()))

    resent(placement)
    payments = _payments(draw, ids, order_id, currency, total if not on_account else 0, placed_at)
    events += [e for p in payments for e in p.events]
    captured = sum(p.captured for p in payments)

    def pay_back(amount: int, refund_id: str, at: int) -> None:
        """The gateway's refund of `amount`, from the payment with most left to refund."""
        payment = max(payments, key=lambda p: p.captured - p.refunded)
        amount = min(amount, payment.captured - payment.refunded)
        if amount <= 0:
            return
        payment.refunded += amount
        resent(
            b.payment_refunded(
                order_id,
                money(amount),
                refund_id,
                payment_id=payment.payment_id,
                currency=currency,
                gateway=payment.gateway,
                at=at,
                event_id=ids(),
            )
        )

    if approval == "approved":
        resent(b.approved(order_id, at=placed_at + 2 * MINUTE_MS, event_id=ids()))
    if approval == "rejected" or draw(st.integers(0, 4), label="cancelled") == 0:
        at = placed_at + 5 * MINUTE_MS
        events.append(
            b.rejected(order_id, at=at, event_id=ids())
            if approval == "rejected"
            else b.cancelled(order_id, at=at, event_id=ids())
        )
        if captured and draw(st.booleans(), label="money back"):
            pay_back(captured, f"RF-{order_id}-C", placed_at + 6 * MINUTE_MS)
        for payment in payments:
            _settlement(draw, ids, order_id, payment, placed_at, resent)
        return events
    if approval == "waiting" or draw(st.integers(0, 7), label="awaiting shipment") == 0:
        # Nothing shipped yet, the state most open orders are in (paid, when captured in full).
        for payment in payments:
            _settlement(draw, ids, order_id, payment, placed_at, resent)
        return events
    # Shipments: some units of each SKU, in one or two fulfilments, from any warehouse.
    ship_all = draw(st.booleans(), label="ship everything")
    shipped = {
        sku: n if ship_all else draw(st.integers(0, n), label="shipped")
        for sku, n in quantity.items()
    }
    at = placed_at + 20 * MINUTE_MS
    for k in range(draw(st.integers(1, 2), label="fulfilments")):
        units = {}
        for sku, n in shipped.items():
            part = n if k == 1 else draw(st.integers(0, n), label="in this fulfilment")
            if part:
                units[sku] = part
                shipped[sku] -= part
        if units:
            resent(
                b.fulfilled(
                    order_id,
                    f"F-{order_id}-{k}",
                    draw(st.sampled_from(WAREHOUSES), label="ships from"),
                    units,
                    at=at + k * 5 * MINUTE_MS,
                    event_id=ids(),
                )
            )
    # What left, per SKU: what was shipped (each fulfilment's units sum to it).
    sent = _shipped(events)
    # Refunds: of units ordered (restocked only as far as shipped), or of none (a price
    # adjustment), never beyond what was captured (or, on account, the order's total).
    refundable = total if on_account else captured
    refunded = dict.fromkeys(quantity, 0)
    restocked = dict.fromkeys(quantity, 0)
    # Sometimes everything back in one refund (tax and shipping included): refunded in full.
    in_full = draw(st.integers(0, 4), label="refunded in full") == 0
    for k in range(1 if in_full else draw(st.integers(0, 2), label="refunds")):
        returned: dict[str, tuple[int, str]] = {}
        restock = draw(st.booleans(), label="restock")
        adjustment = not in_full and not restock and draw(st.integers(0, 5)) == 0
        for sku, ordered_units in quantity.items():
            left = ordered_units - refunded[sku]
            if restock:
                left = min(left, sent.get(sku, 0) - restocked[sku])
            if adjustment:
                n = 0
                amount = min(unit_gross[sku] // 2, refundable)
            else:
                n = left if in_full else draw(st.integers(0, left), label="returned")
                if not n:
                    continue
                amount = min(n * unit_gross[sku], refundable)
                if not in_full:
                    amount -= draw(st.sampled_from([0, amount // 3]), label="kept back")
            refundable -= amount
            refunded[sku] += n
            if restock:
                restocked[sku] += n
            returned[sku] = (n, money(amount))
        shipping_back = 0
        if shipping and (in_full or draw(st.booleans(), label="shipping refunded")):
            shipping_back = min(shipping, refundable)
            refundable -= shipping_back
        amount = sum(int(Decimal(a) * 100) for _, a in returned.values()) + shipping_back
        if not returned or not amount:
            continue
        refund_id = f"RF-{order_id}-{k}"
        refund_at = placed_at + (40 + 10 * k) * MINUTE_MS
        resent(
            b.refunded(
                order_id,
                refund_id,
                returned,
                restock=restock,
                warehouse=draw(st.sampled_from([None, *WAREHOUSES]), label="back to")
                if restock
                else None,
                currency=currency,
                kind="RETURN" if restock else "REFUND",
                shipping_amount=money(shipping_back) if shipping_back else None,
                at=refund_at,
                event_id=ids(),
            )
        )
        if not on_account and draw(st.integers(0, 4), label="gateway refund") > 0:
            pay_back(amount, refund_id, refund_at + MINUTE_MS)
    for payment in payments:
        _settlement(draw, ids, order_id, payment, placed_at, resent)
    return events


@dataclass
class _Payment:
    payment_id: str
    gateway: str
    currency: str
    captured: int = 0
    refunded: int = 0
    events: list[InputEvent] = field(default_factory=list)


def _payments(
    draw: st.DrawFn, ids: _Ids, order_id: str, currency: str, total: int, placed_at: int
) -> list[_Payment]:
    """A prepaid order's payments (none on account): maybe a declined attempt and an
    authorization first, then the total captured at once, in two captures, split over two
    gateways (split tender), or never."""
    gateway = draw(st.sampled_from(GATEWAYS), label="gateway")
    main = _Payment(f"PAY-{order_id}", gateway, currency)
    if not total:
        return []
    at = placed_at + MINUTE_MS

    def event(builder: Callable[..., InputEvent], payment: _Payment, amount: int) -> InputEvent:
        nonlocal at
        at += 1000
        return builder(
            order_id,
            money(amount),
            payment_id=payment.payment_id,
            currency=currency,
            gateway=payment.gateway,
            at=at,
            event_id=ids(),
        )

    if draw(st.integers(0, 5), label="declined first") == 0:
        declined = _Payment(f"{main.payment_id}-0", gateway, currency)
        main.events.append(event(b.payment_failed, declined, total))
    if draw(st.booleans(), label="authorized"):
        main.events.append(event(b.authorized, main, total))
    how = draw(st.sampled_from(["full", "full", "split", "tender", "none"]), label="capture")
    parts = [total]
    if how in ("split", "tender") and total > 1:
        first = draw(st.integers(1, total - 1), label="first capture")
        parts = [first, total - first]
    if how == "none":
        return [main]
    if how == "tender" and len(parts) == 2:
        other = _Payment(
            f"{main.payment_id}-2",
            draw(st.sampled_from([g for g in GATEWAYS if g != gateway]), label="second gateway"),
            currency,
        )
        for payment, amount in zip((main, other), parts, strict=True):
            payment.events.append(event(b.captured, payment, amount))
            payment.captured += amount
        return [main, other]
    for amount in parts:
        main.events.append(event(b.captured, main, amount))
        main.captured += amount
    return [main]


def _settlement(
    draw: st.DrawFn,
    ids: _Ids,
    order_id: str,
    payment: _Payment,
    placed_at: int,
    resent: Callable[[InputEvent], None],
) -> None:
    """The gateway's payout of what it captured, net of its fee, two hours later."""
    if not payment.captured or not draw(st.booleans(), label="settled"):
        return
    fee = min(payment.captured, payment.captured * 29 // 1000 + 30)
    resent(
        b.settled(
            order_id,
            money(payment.captured),
            money(fee),
            payout_id=f"PO-{payment.payment_id}",
            payment_id=payment.payment_id,
            currency=payment.currency,
            gateway=payment.gateway,
            at=placed_at + 120 * MINUTE_MS,
            event_id=ids(),
        )
    )


def _shipped(events: Sequence[InputEvent]) -> dict[str, int]:
    units: dict[str, int] = {}
    fulfilments = {
        e.payload["fulfillment_id"]: e.payload for e in events if e.kind == "OrderFulfilled"
    }
    for payload in fulfilments.values():
        for item in payload["lines"]:
            units[item["sku"]] = units.get(item["sku"], 0) + item["quantity"]
    return units

"""Stock of one SKU across warehouses, and the reservations open orders hold on it.

On hand and the ERP
    The ERP is authoritative for on hand. A `StockSnapshot` says "on hand at W was N as of
    time T". erpbridge keeps the stock movements it applied since the last snapshot (receipts,
    damage, counts, transfers, shipments, restocks, each with the time it happened), and:
      - a snapshot sets on hand to N plus the movements that happened after T: the ERP has
        already counted everything up to T, nothing after;
      - a movement that happened at or before the latest snapshot's T is already counted by it
        and leaves on hand alone (a shipment still releases its reservation);
      - a snapshot older than the latest one is stale and ignored;
      - movements older than `Policy.snapshot_window_ms` before the newest time the ERP's
        stock feed told (a snapshot's as-of time, a StockAdjusted's time) are folded in for
        good, and a snapshot older than that is dead-lettered, since it could no longer be
        applied exactly. Only the feed moves that horizon: it shares the snapshot's
        partition and order, while shipments and restocks come from the orders' partitions
        and may run ahead of it, so whether a snapshot applies never depends on how far
        one partition was read ahead of another;
      - a warehouse whose feed falls silent keeps at most `Policy.max_movements`
        movements; the oldest fold, and the horizon moves up to them (beyond that cap,
        whether a late snapshot applies again depends on what arrived first).
    Snapshots never touch reservations: the ERP does not know erpbridge's open reservations,
    so available = snapshot-based on hand - reserved, which may go negative (oversold) when a
    count finds less than the storefront sold.

Reservations
    An order's claim on this SKU records per line what is reserved at which warehouse and
    what is backordered. Reserve, release, ship and restock requests are idempotent: a claim
    is made once, and shipments and restocks are remembered by reference. A closed claim
    (released, or every unit shipped) drops its lines and is kept, that small, for the
    de-duplication TTL.

    The order hears back (an `AllocationUpdate`) only when a claim is or was backordered,
    which is all the order's rules use a reservation for (its backorder alert); a line
    reserved in full needs no answer, which saves a message and an order update per line.
    A duplicate request always answers, since it may be a redelivery whose answer was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

import msgspec

from streams.domain.events import InputEvent, Rejection, check_currency, to_ms
from streams.domain.messages import (
    AllocationUpdate,
    LineReservation,
    RequestKind,
    StockRequest,
)
from streams.domain.policy import Policy, due, prune_seen
from streams.domain.routing import Destination, RoutingRules

INVENTORY_EVENTS = frozenset({"StockSnapshot", "StockAdjusted"})
"""The events that change a SKU's stock; the rest concern orders."""


class Verdict(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


class _Stored(msgspec.Struct, array_like=True, omit_defaults=True):
    """A SKU's state is stored field by position (streams.domain.statecodec), for claims are
    many and keys would double their size: a new field goes last, with a default, and no
    field is ever moved or retyped without a new state format."""


class WarehouseStock(_Stored):
    on_hand: int = 0
    reserved: int = 0
    snapshot_as_of: int | None = None
    movements: list[tuple[int, int]] = msgspec.field(default_factory=list)
    """(at_ms, delta) of movements after the latest snapshot, within the snapshot window."""
    horizon_ms: int | None = None
    """Movements at or before this time are folded in for good; a snapshot before it is too
    old (an accepted one, at or after it, counts them all)."""
    unit_cost: Decimal | None = None
    cost_currency: str | None = None
    drift: int | None = None
    """The latest snapshot's on hand minus erpbridge's on hand as of its time; None before a
    second snapshot, since the first has nothing of erpbridge's to be compared with."""

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def move(self, at_ms: int, delta: int, policy: Policy, *, fed: bool) -> None:
        """A movement at `at_ms`; `fed` when it comes from the ERP's stock feed."""
        if self.snapshot_as_of is not None and at_ms <= self.snapshot_as_of:
            return
        self.on_hand += delta
        if self.horizon_ms is None or at_ms > self.horizon_ms:
            self.movements.append((at_ms, delta))
        self._fold(at_ms - policy.snapshot_window_ms if fed else None, policy.max_movements)

    def snapshot(self, on_hand: int, as_of: int, policy: Policy) -> None:
        if self.snapshot_as_of is not None and as_of <= self.snapshot_as_of:
            return
        if self.horizon_ms is not None and as_of < self.horizon_ms:
            raise Rejection(
                "snapshot-too-old",
                f"snapshot as of {as_of} is older than movements already folded into on hand "
                f"(up to {self.horizon_ms}); it can no longer be applied exactly",
            )
        self.movements = [(t, d) for t, d in self.movements if t > as_of]
        after = sum(d for _, d in self.movements)
        if self.snapshot_as_of is not None:
            self.drift = on_hand - (self.on_hand - after)
        self.on_hand = on_hand + after
        self.snapshot_as_of = as_of
        self._fold(as_of - policy.snapshot_window_ms, policy.max_movements)

    def _fold(self, horizon: int | None, cap: int) -> None:
        """Moves the horizon up to `horizon`, and up to the newest of the oldest movements
        beyond `cap`; what is at or before it leaves the list (it stays in on hand)."""
        if len(self.movements) > cap:
            self.movements.sort()
            folded = self.movements[: len(self.movements) - cap]
            self.movements = self.movements[len(folded) :]
            newest = folded[-1][0]
            horizon = newest if horizon is None else max(horizon, newest)
        if horizon is not None and (self.horizon_ms is None or horizon > self.horizon_ms):
            self.horizon_ms = horizon
            self.movements = [(t, d) for t, d in self.movements if t > horizon]


class ClaimLine(_Stored):
    quantity: int
    reserved: dict[str, int] = msgspec.field(default_factory=dict)
    backordered: int = 0
    shipped: int = 0


class Claim(_Stored):
    """One order's reservations of this SKU."""

    lines: dict[str, ClaimLine] = msgspec.field(default_factory=dict)
    refs: set[str] = msgspec.field(default_factory=set)
    released: bool = False
    version: int = 0
    updated_ms: int = 0
    settled: tuple[str, ...] = ()
    """The ids of the lines a closed claim no longer keeps (see `settle`)."""

    @property
    def backordered(self) -> bool:
        return any(line.backordered for line in self.lines.values())

    @property
    def closed(self) -> bool:
        # A settled claim has no lines left: the pruning asks every claim of the SKU.
        return (
            self.released
            or not self.lines
            or all(line.shipped >= line.quantity for line in self.lines.values())
        )

    def settle(self) -> None:
        """Drop a closed claim's lines, keeping what a redelivered request needs until the
        de-duplication TTL: refs, released, version, and the line ids its allocation update
        names. Closed stays closed, and a closed line holds no reservation or backorder
        (released, or every unit shipped took one of them), so the update is unchanged."""
        self.settled += tuple(self.lines)
        self.lines = {}


@dataclass(frozen=True, slots=True)
class Availability:
    on_hand: int
    reserved: int
    available: int
    warehouses: tuple[tuple[str, int, int, int], ...]
    """(warehouse, on hand, reserved, available), sorted by warehouse."""
    changed: tuple[str, int] | None = field(default=None, compare=False)
    """(cause, time) of the change that produced these figures: an inventory event id or a
    stock request's cause, and its stamp; None before any change, or in state kept before
    changes were recorded. Two availabilities are equal when their figures are."""


@dataclass(slots=True)
class StockEffect:
    verdict: Verdict
    updates: list[AllocationUpdate] = field(default_factory=list)


class SkuStock(_Stored):
    sku: str
    warehouses: dict[str, WarehouseStock] = msgspec.field(default_factory=dict)
    claims: dict[str, Claim] = msgspec.field(default_factory=dict)
    seen: dict[str, int] = msgspec.field(default_factory=dict)
    pruned_ms: int = 0
    changed: tuple[str, int] | None = None
    """(cause, time) of the latest change of the availability figures: what identifies the
    figures on inventory.availability, so a re-send of them is identical to their first
    record."""

    def at(self, warehouse: str) -> WarehouseStock:
        stock = self.warehouses.get(warehouse)
        if stock is None:
            stock = self.warehouses[warehouse] = WarehouseStock()
        return stock

    def availability(self) -> Availability:
        rows = tuple(
            (w, s.on_hand, s.reserved, s.available) for w, s in sorted(self.warehouses.items())
        )
        return Availability(
            on_hand=sum(r[1] for r in rows),
            reserved=sum(r[2] for r in rows),
            available=sum(r[3] for r in rows),
            warehouses=rows,
            changed=self.changed,
        )

    def apply_event(
        self, event: InputEvent, rules: RoutingRules, policy: Policy, now_ms: int
    ) -> StockEffect:
        """Apply a StockSnapshot or StockAdjusted; raises Rejection for bad input."""
        if event.event_id in self.seen:
            return StockEffect(Verdict.DUPLICATE)
        before = self._figures()
        p = event.payload
        warehouse = _known_warehouse(p["warehouse_id"], rules)
        _check_cost(p.get("unit_cost"), p.get("currency"))
        stock = self.at(warehouse)
        # As of when the event tells its figures; what the latest snapshot already counted
        # (a stale snapshot, a movement before it) does not tell the unit cost either.
        as_of = to_ms(p["as_of"]) if event.kind == "StockSnapshot" else event.occurred_ms
        counted = stock.snapshot_as_of is not None and as_of <= stock.snapshot_as_of
        if event.kind == "StockSnapshot":
            if p["on_hand"] < 0:
                raise Rejection("negative-quantity", f"snapshot on_hand is {p['on_hand']}")
            stock.snapshot(p["on_hand"], as_of, policy)
        elif event.kind == "StockAdjusted":
            if p["reason"] == "TRANSFER" and p.get("counterpart_warehouse_id") is not None:
                _known_warehouse(p["counterpart_warehouse_id"], rules)
            stock.move(event.occurred_ms, p["delta"], policy, fed=True)
        else:
            raise Rejection("unknown-event", f"inventory event {event.kind} is not handled")
        if p.get("unit_cost") is not None and not counted:
            stock.unit_cost, stock.cost_currency = p["unit_cost"], p["currency"]
        self._changed(before, event.event_id, event.occurred_ms)
        self.seen[event.event_id] = now_ms
        self._prune(now_ms, policy.dedup_ttl_ms)
        return StockEffect(Verdict.APPLIED)

    def apply_request(
        self, request: StockRequest, rules: RoutingRules, policy: Policy, now_ms: int
    ) -> StockEffect:
        claim = self.claims.get(request.order_id)
        had_backorder = claim is not None and claim.backordered
        before = self._figures()
        if request.kind is RequestKind.RESERVE:
            if claim is not None:
                return StockEffect(Verdict.DUPLICATE, [self._update(request.order_id, claim)])
            claim = self.claims[request.order_id] = Claim()
            assert request.destination is not None
            self._reserve(claim, request.lines, request.destination, rules)
        else:
            if claim is None:
                # Shipped or restocked without a reservation (the order was cancelled first).
                claim = self.claims[request.order_id] = Claim(released=True)
            if request.kind is RequestKind.RELEASE:
                if claim.released:
                    return StockEffect(Verdict.DUPLICATE, [self._update(request.order_id, claim)])
                self._release(claim)
            else:
                if request.ref in claim.refs:
                    return StockEffect(Verdict.DUPLICATE, [self._update(request.order_id, claim)])
                assert request.warehouse is not None
                claim.refs.add(request.ref)
                if request.kind is RequestKind.SHIP:
                    self._ship(claim, request.warehouse, request.quantity)
                    delta = -request.quantity
                else:
                    delta = request.quantity
                self.at(request.warehouse).move(request.at_ms, delta, policy, fed=False)
        if claim.closed:
            claim.settle()
        claim.version += 1
        claim.updated_ms = now_ms
        self._changed(before, request.cause, request.at_ms)
        self._prune(now_ms, policy.dedup_ttl_ms)
        if not (had_backorder or claim.backordered):
            return StockEffect(Verdict.APPLIED)
        return StockEffect(Verdict.APPLIED, [self._update(request.order_id, claim)])

    def _reserve(
        self,
        claim: Claim,
        lines: tuple[tuple[str, int], ...],
        destination: Destination,
        rules: RoutingRules,
    ) -> None:
        for line_id, quantity in lines:
            available = {w: self.at(w).available for w in rules.warehouses}
            allocation = rules.allocate(quantity, available, destination)
            claim.lines[line_id] = ClaimLine(
                quantity, dict(allocation.reserved), allocation.backordered
            )
            for warehouse, reserved in allocation.reserved.items():
                self.at(warehouse).reserved += reserved

    def _release(self, claim: Claim) -> None:
        for line in claim.lines.values():
            for warehouse, reserved in line.reserved.items():
                self.at(warehouse).reserved -= reserved
            line.reserved.clear()
            line.backordered = 0
        claim.released = True

    def _ship(self, claim: Claim, warehouse: str, quantity: int) -> None:
        """Shipped units leave the line's reservation: the shipping warehouse's first."""
        remaining = quantity
        for line in claim.lines.values():
            take = min(line.quantity - line.shipped, remaining)
            if take <= 0:
                continue
            line.shipped += take
            remaining -= take
            order = [warehouse] + [w for w in line.reserved if w != warehouse]
            for w in order:
                released = min(line.reserved.get(w, 0), take)
                if released:
                    line.reserved[w] -= released
                    if not line.reserved[w]:
                        del line.reserved[w]
                    self.at(w).reserved -= released
                    take -= released
            line.backordered -= min(line.backordered, take)

    def _figures(self) -> list[tuple[str, int, int]]:
        """What the availability figures follow from, cheaper to compare than them."""
        return [(w, s.on_hand, s.reserved) for w, s in self.warehouses.items()]

    def _changed(self, before: list[tuple[str, int, int]], cause: str, at_ms: int) -> None:
        if self._figures() != before:
            self.changed = (cause, at_ms)

    def _update(self, order_id: str, claim: Claim) -> AllocationUpdate:
        lines = {
            line_id: LineReservation(dict(line.reserved), line.backordered)
            for line_id, line in claim.lines.items()
        }
        lines.update((line_id, LineReservation()) for line_id in claim.settled)
        return AllocationUpdate(order_id=order_id, sku=self.sku, version=claim.version, lines=lines)

    def _prune(self, now_ms: int, ttl_ms: int) -> None:
        """Forget event ids, and closed claims, older than the de-duplication TTL."""
        if not due(self.pruned_ms, now_ms):
            return
        self.pruned_ms = now_ms
        prune_seen(self.seen, now_ms, ttl_ms)
        cutoff = now_ms - ttl_ms
        for order_id, claim in list(self.claims.items()):
            if claim.closed and claim.updated_ms < cutoff:
                del self.claims[order_id]
            elif claim.closed:
                # Closed before claims were settled on closing (state of an older release).
                claim.settle()


def _known_warehouse(warehouse: str, rules: RoutingRules) -> str:
    if warehouse not in rules.warehouses:
        raise Rejection(
            "unknown-warehouse",
            f"warehouse {warehouse!r} is not in the routing rules ({', '.join(rules.warehouses)})",
        )
    return warehouse


def _check_cost(unit_cost: Decimal | None, currency: str | None) -> None:
    if unit_cost is None:
        return
    if unit_cost < 0:
        raise Rejection("negative-amount", f"unit_cost is {unit_cost}")
    if currency is None:
        raise Rejection("missing-currency", "unit_cost is given without its currency")
    check_currency(currency)

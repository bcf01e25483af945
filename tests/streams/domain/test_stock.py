"""Stock of one SKU: the snapshot rule, movements, reservations and their requests,
de-duplication and its TTL, availability, persistence and bad input."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import messages, statecodec, statejson
from streams.domain.events import Rejection
from streams.domain.messages import AllocationUpdate, LineReservation, Tick
from streams.domain.policy import HOUR_MS, PRUNE_EVERY_MS, Policy
from streams.domain.stock import Availability, Claim, SkuStock, Verdict
from tests.streams.domain.builders import (
    CALIFORNIA,
    EAST,
    EU,
    MINUTE_MS,
    NEW_YORK,
    T0,
    WEST,
    adjusted,
    release,
    reserve,
    restock,
    ship,
    snapshot,
    stock_event,
    stock_request,
    stocked,
)

SKU = "SKU-A"


def on_hand(stock: SkuStock, warehouse: str) -> int:
    return stock.warehouses[warehouse].on_hand


def reserved(stock: SkuStock, warehouse: str) -> int:
    return stock.warehouses[warehouse].reserved


# --- the snapshot rule ------------------------------------------------------------------------


def test_a_snapshot_sets_on_hand() -> None:
    stock = SkuStock(SKU)
    effect = stock_event(stock, snapshot(SKU, EAST, 10, T0))
    assert effect.verdict is Verdict.APPLIED
    assert effect.updates == []
    assert on_hand(stock, EAST) == 10
    assert stock.warehouses[EAST].snapshot_as_of == T0


def test_movements_after_the_snapshot_change_on_hand() -> None:
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0))
    stock_event(stock, adjusted(SKU, EAST, 5, at=T0 + 1))
    stock_event(stock, adjusted(SKU, EAST, -2, at=T0 + 2, reason="DAMAGE"))
    assert on_hand(stock, EAST) == 13


@pytest.mark.parametrize("at", [T0, T0 - 1, T0 - HOUR_MS])
def test_movements_at_or_before_the_snapshot_are_already_counted(at: int) -> None:
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0))
    effect = stock_event(stock, adjusted(SKU, EAST, 5, at=at))
    assert effect.verdict is Verdict.APPLIED
    assert on_hand(stock, EAST) == 10


def test_a_late_snapshot_counts_only_the_movements_after_its_time() -> None:
    stock = SkuStock(SKU)
    stock_event(stock, adjusted(SKU, EAST, 3, at=T0 - 10))  # counted by the snapshot
    stock_event(stock, adjusted(SKU, EAST, 5, at=T0 + 10))  # not counted by it
    stock_event(stock, adjusted(SKU, EAST, 7, at=T0 + 20))  # not counted by it
    stock_event(stock, snapshot(SKU, EAST, 20, T0, at=T0 + 30))
    assert on_hand(stock, EAST) == 20 + 5 + 7
    # A later snapshot that has counted everything sets on hand to exactly its figure.
    stock_event(stock, snapshot(SKU, EAST, 30, T0 + 25, at=T0 + 40))
    assert on_hand(stock, EAST) == 30


def test_a_movement_at_the_snapshot_time_is_counted_by_the_snapshot_whatever_the_arrival() -> None:
    # Arrival order movement-then-snapshot and snapshot-then-movement agree.
    first = SkuStock(SKU)
    stock_event(first, adjusted(SKU, EAST, 4, at=T0))
    stock_event(first, snapshot(SKU, EAST, 10, T0))
    second = SkuStock(SKU)
    stock_event(second, snapshot(SKU, EAST, 10, T0))
    stock_event(second, adjusted(SKU, EAST, 4, at=T0))
    assert on_hand(first, EAST) == on_hand(second, EAST) == 10


def test_a_stale_snapshot_is_ignored() -> None:
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0))
    stock_event(stock, adjusted(SKU, EAST, 2, at=T0 + 5))
    older = stock_event(stock, snapshot(SKU, EAST, 99, T0 - 1, at=T0 + 6))
    same_time = stock_event(stock, snapshot(SKU, EAST, 77, T0, at=T0 + 7))
    assert older.verdict is same_time.verdict is Verdict.APPLIED
    assert on_hand(stock, EAST) == 12
    assert stock.warehouses[EAST].snapshot_as_of == T0


def test_a_snapshot_records_its_drift_from_erpbridges_on_hand_as_of_its_time() -> None:
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0))
    assert stock.warehouses[EAST].drift is None  # nothing of erpbridge's to compare with yet
    stock_event(stock, adjusted(SKU, EAST, 5, at=T0 + 10))
    stock_event(stock, adjusted(SKU, EAST, -2, at=T0 + 30))  # after the next snapshot's time
    # erpbridge had 15 as of T0 + 20; the ERP counted 13 then.
    stock_event(stock, snapshot(SKU, EAST, 13, T0 + 20, at=T0 + 40))
    assert stock.warehouses[EAST].drift == -2
    assert on_hand(stock, EAST) == 11
    # A later snapshot that agrees clears the drift; a stale one leaves it alone.
    stock_event(stock, snapshot(SKU, EAST, 11, T0 + 50))
    assert stock.warehouses[EAST].drift == 0
    stock_event(stock, snapshot(SKU, EAST, 99, T0 + 45, at=T0 + 60))
    assert stock.warehouses[EAST].drift == 0


def test_snapshots_are_per_warehouse() -> None:
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0))
    stock_event(stock, adjusted(SKU, WEST, 4, at=T0 - 1))
    assert on_hand(stock, WEST) == 4  # no snapshot at the west warehouse yet
    assert on_hand(stock, EAST) == 10


def test_a_snapshot_older_than_the_window_before_the_feeds_newest_time_is_rejected() -> None:
    policy = Policy(snapshot_window_ms=HOUR_MS)
    stock = SkuStock(SKU)
    stock_event(stock, adjusted(SKU, EAST, 5, at=T0), policy=policy)
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + 2 * HOUR_MS), policy=policy)
    # The feed told T0 + 2h: what is older than an hour before it is folded in for good.
    assert stock.warehouses[EAST].horizon_ms == T0 + HOUR_MS
    assert stock.warehouses[EAST].movements == [(T0 + 2 * HOUR_MS, 1)]
    with pytest.raises(Rejection) as info:
        stock_event(stock, snapshot(SKU, EAST, 50, T0, at=T0 + 3 * HOUR_MS), policy=policy)
    assert info.value.reason == "snapshot-too-old"
    assert str(T0) in info.value.detail and str(T0 + HOUR_MS) in info.value.detail
    assert on_hand(stock, EAST) == 6
    # A snapshot at or after the horizon still applies exactly.
    stock_event(stock, snapshot(SKU, EAST, 50, T0 + HOUR_MS, at=T0 + 3 * HOUR_MS), policy=policy)
    assert on_hand(stock, EAST) == 51


def test_movements_within_the_window_are_kept_for_late_snapshots() -> None:
    policy = Policy(snapshot_window_ms=HOUR_MS)
    stock = SkuStock(SKU)
    stock_event(stock, adjusted(SKU, EAST, 5, at=T0), policy=policy)
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + HOUR_MS - 1), policy=policy)
    assert stock.warehouses[EAST].horizon_ms == T0 - 1
    stock_event(stock, snapshot(SKU, EAST, 50, T0 - 1), policy=policy)
    assert on_hand(stock, EAST) == 56


def test_shipments_running_ahead_of_the_feed_never_make_its_snapshot_too_old() -> None:
    """Shipments come from the orders' partitions, which may be read days ahead of the
    inventory partition: the opening snapshot still applies, and exactly."""
    policy = Policy(snapshot_window_ms=HOUR_MS)
    stock = SkuStock(SKU)
    stock_request(stock, reserve("O-1", SKU, [("L1", 3)], NEW_YORK, at=T0 + 1), policy=policy)
    for day in range(1, 4):
        stock_request(
            stock,
            ship("O-1", SKU, f"FUL-{day}", EAST, 1, at=T0 + day * 24 * HOUR_MS),
            policy=policy,
        )
    assert stock.warehouses[EAST].horizon_ms is None
    stock_event(stock, snapshot(SKU, EAST, 10, T0), policy=policy)
    assert on_hand(stock, EAST) == 7
    assert reserved(stock, EAST) == 0


def test_the_feeds_and_the_orders_interleaving_does_not_change_the_stock() -> None:
    policy = Policy(snapshot_window_ms=HOUR_MS)
    feed = [
        snapshot(SKU, EAST, 10, T0),
        adjusted(SKU, EAST, 4, at=T0 + 3 * HOUR_MS),
        snapshot(SKU, EAST, 20, T0 + 2 * HOUR_MS + 1),
    ]
    requests = [
        reserve("O-1", SKU, [("L1", 2)], NEW_YORK, at=T0 + 1),
        ship("O-1", SKU, "FUL-1", EAST, 1, at=T0 + HOUR_MS),
        ship("O-1", SKU, "FUL-2", EAST, 1, at=T0 + 5 * HOUR_MS),
    ]
    outcomes = []
    for feed_first in range(len(feed) + 1):
        stock = SkuStock(SKU)
        for e in feed[:feed_first]:
            stock_event(stock, e, policy=policy)
        for r in requests:
            stock_request(stock, r, policy=policy)
        for e in feed[feed_first:]:
            stock_event(stock, e, policy=policy)
        outcomes.append((on_hand(stock, EAST), reserved(stock, EAST)))
    assert outcomes == [(23, 0)] * len(outcomes)


def test_a_warehouse_whose_feed_is_silent_keeps_at_most_the_cap_of_movements() -> None:
    policy = Policy(snapshot_window_ms=HOUR_MS, max_movements=3)
    stock = SkuStock(SKU)
    stock_request(stock, reserve("O-1", SKU, [("L1", 5)], NEW_YORK, at=T0), policy=policy)
    for n in range(1, 6):
        stock_request(stock, ship("O-1", SKU, f"FUL-{n}", EAST, 1, at=T0 + n), policy=policy)
    east = stock.warehouses[EAST]
    assert east.movements == [(T0 + 3, -1), (T0 + 4, -1), (T0 + 5, -1)]
    assert east.horizon_ms == T0 + 2
    assert east.on_hand == -5
    with pytest.raises(Rejection) as info:
        stock_event(stock, snapshot(SKU, EAST, 10, T0 + 1), policy=policy)
    assert info.value.reason == "snapshot-too-old"
    stock_event(stock, snapshot(SKU, EAST, 10, T0 + 2), policy=policy)
    assert east.on_hand == 7  # what shipped after T0 + 2


def test_the_cap_folds_exactly_the_oldest_movements_even_at_one_time() -> None:
    policy = Policy(snapshot_window_ms=HOUR_MS, max_movements=3)
    stock = SkuStock(SKU)
    stock_request(stock, reserve("O-1", SKU, [("L1", 5)], NEW_YORK, at=T0), policy=policy)
    for n in range(1, 5):
        stock_request(stock, ship("O-1", SKU, f"FUL-{n}", EAST, 1, at=T0 + 5), policy=policy)
    east = stock.warehouses[EAST]
    # All at T0 + 5: any snapshot that may still apply counts them, so none is kept.
    assert (east.horizon_ms, east.movements, east.on_hand) == (T0 + 5, [], -4)
    # A snapshot at the horizon counts all four shipments: exact.
    stock_event(stock, snapshot(SKU, EAST, 10, T0 + 5), policy=policy)
    assert east.on_hand == 10
    # A movement at or before the horizon, arriving late, is folded at once.
    stock_request(stock, ship("O-1", SKU, "FUL-5", EAST, 1, at=T0 + 5), policy=policy)
    assert east.on_hand == 10 and east.movements == []


def test_snapshots_never_touch_reservations_so_available_may_go_negative() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 8)], CALIFORNIA))
    assert reserved(stock, EAST) == 8
    stock_event(stock, snapshot(SKU, EAST, 5, T0 + 1))
    assert on_hand(stock, EAST) == 5
    assert reserved(stock, EAST) == 8
    assert stock.warehouses[EAST].available == -3
    assert stock.availability().available == -3


def test_snapshot_records_unit_cost() -> None:
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0, unit_cost="4.2500", currency="USD"))
    assert stock.warehouses[EAST].unit_cost == Decimal("4.2500")
    assert stock.warehouses[EAST].cost_currency == "USD"
    stock_event(stock, adjusted(SKU, EAST, 3, at=T0 + 1, unit_cost="4.50", currency="USD"))
    assert stock.warehouses[EAST].unit_cost == Decimal("4.50")


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_stale_snapshots_unit_cost_is_ignored_with_it(newest_first: bool) -> None:
    """The cost is the newest snapshot's, whichever arrives last: an older snapshot, or a
    movement the newest already counted, tells no newer cost."""
    newer = snapshot(SKU, EAST, 10, T0, unit_cost="12.00", currency="USD")
    older = snapshot(SKU, EAST, 7, T0 - HOUR_MS, unit_cost="9.00", currency="USD")
    counted = adjusted(SKU, EAST, 2, at=T0 - 1, unit_cost="8.00", currency="USD")
    stock = SkuStock(SKU)
    for event in [newer, older, counted] if newest_first else [older, counted, newer]:
        stock_event(stock, event)
    assert stock.warehouses[EAST].unit_cost == Decimal("12.00")
    assert on_hand(stock, EAST) == 10


# --- adjustments ------------------------------------------------------------------------------


def test_transfer_between_known_warehouses() -> None:
    stock = stocked(SKU, {EAST: 10, WEST: 0})
    stock_event(stock, adjusted(SKU, EAST, -4, at=T0, reason="TRANSFER", counterpart=WEST))
    stock_event(stock, adjusted(SKU, WEST, 4, at=T0, reason="TRANSFER", counterpart=EAST))
    assert (on_hand(stock, EAST), on_hand(stock, WEST)) == (6, 4)


def test_transfer_to_an_unknown_warehouse_is_rejected() -> None:
    stock = stocked(SKU, {EAST: 10})
    with pytest.raises(Rejection) as info:
        stock_event(stock, adjusted(SKU, EAST, -4, at=T0, reason="TRANSFER", counterpart="WH-X"))
    assert info.value.reason == "unknown-warehouse"
    assert "'WH-X'" in info.value.detail
    assert on_hand(stock, EAST) == 10


# --- reserve ----------------------------------------------------------------------------------


def test_reserve_claims_per_line_and_answers_only_a_backorder() -> None:
    stock = stocked(SKU, {EAST: 10, WEST: 3, EU: 0})
    effect = stock_request(stock, reserve("O-1", SKU, [("L1", 2), ("L2", 4)], CALIFORNIA))
    assert effect.verdict is Verdict.APPLIED
    # L1 fits at the west warehouse; L2 no longer does (1 left) and goes east whole.
    lines = stock.claims["O-1"].lines
    assert (lines["L1"].reserved, lines["L2"].reserved) == ({WEST: 2}, {EAST: 4})
    # Reserved in full: the order needs no answer.
    assert effect.updates == []
    assert (reserved(stock, WEST), reserved(stock, EAST)) == (2, 4)
    assert stock.availability().available == 13 - 6


def test_reserve_splits_and_backorders() -> None:
    stock = stocked(SKU, {EAST: 3, WEST: 2, EU: 0})
    effect = stock_request(stock, reserve("O-1", SKU, [("L1", 6)], CALIFORNIA))
    assert effect.updates[0].lines == {"L1": LineReservation({WEST: 2, EAST: 3}, 1)}
    assert stock.availability().available == 0


def test_reserve_never_takes_from_an_oversold_warehouse() -> None:
    stock = stocked(SKU, {EAST: 10, WEST: 2})
    stock_request(stock, reserve("O-1", SKU, [("L1", 2)], CALIFORNIA))  # west: 0 left
    stock_event(stock, snapshot(SKU, WEST, 0, T0))  # west now -2 available
    effect = stock_request(stock, reserve("O-2", SKU, [("L1", 12)], CALIFORNIA))
    assert effect.updates[0].lines == {"L1": LineReservation({EAST: 10}, 2)}
    assert reserved(stock, WEST) == 2


def test_a_repeated_reserve_is_a_duplicate_that_resends_the_same_allocation() -> None:
    stock = stocked(SKU, {EAST: 10})
    request = reserve("O-1", SKU, [("L1", 3)], CALIFORNIA)
    first = stock_request(stock, request)
    again = stock_request(stock, request, now=T0 + 5)
    # The order's replay after a restart builds the request anew: still the same claim.
    other = stock_request(stock, reserve("O-1", SKU, [("L1", 3)], CALIFORNIA), now=T0 + 6)
    assert again.verdict is other.verdict is Verdict.DUPLICATE
    # A duplicate always answers: it may be a redelivery whose first answer was lost.
    assert first.updates == []
    assert (
        again.updates
        == other.updates
        == [AllocationUpdate("O-1", SKU, 1, {"L1": LineReservation({EAST: 3}, 0)})]
    )
    assert reserved(stock, EAST) == 3


# --- release ----------------------------------------------------------------------------------


def test_release_frees_reservations_and_backorders() -> None:
    stock = stocked(SKU, {EAST: 3, WEST: 2})
    stock_request(stock, reserve("O-1", SKU, [("L1", 6)], CALIFORNIA))
    effect = stock_request(stock, release("O-1", SKU, at=T0 + 1))
    assert effect.verdict is Verdict.APPLIED
    assert effect.updates == [AllocationUpdate("O-1", SKU, 2, {"L1": LineReservation({}, 0)})]
    assert (reserved(stock, EAST), reserved(stock, WEST)) == (0, 0)
    again = stock_request(stock, release("O-1", SKU, at=T0 + 2))
    assert again.verdict is Verdict.DUPLICATE
    assert again.updates == effect.updates


def test_release_without_a_claim_is_a_duplicate_and_blocks_a_late_reserve() -> None:
    stock = stocked(SKU, {EAST: 10})
    effect = stock_request(stock, release("O-1", SKU))
    assert effect.verdict is Verdict.DUPLICATE
    assert effect.updates == [AllocationUpdate("O-1", SKU, 0, {})]
    late = stock_request(stock, reserve("O-1", SKU, [("L1", 3)]))
    assert late.verdict is Verdict.DUPLICATE
    assert reserved(stock, EAST) == 0


# --- ship -------------------------------------------------------------------------------------


def test_ship_releases_the_shipping_warehouse_first_and_reduces_its_on_hand() -> None:
    stock = stocked(SKU, {EAST: 3, WEST: 2})
    stock_request(stock, reserve("O-1", SKU, [("L1", 5)], CALIFORNIA))  # west 2, east 3
    effect = stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 3, at=T0 + 1))
    assert effect.verdict is Verdict.APPLIED
    assert effect.updates == []
    assert stock.claims["O-1"].lines["L1"].reserved == {WEST: 2}
    assert (reserved(stock, EAST), reserved(stock, WEST)) == (0, 2)
    assert (on_hand(stock, EAST), on_hand(stock, WEST)) == (0, 2)


def test_ship_from_an_unreserved_warehouse_releases_the_others() -> None:
    stock = stocked(SKU, {EAST: 3, WEST: 2, EU: 0})
    stock_request(stock, reserve("O-1", SKU, [("L1", 5)], CALIFORNIA))  # west 2, east 3
    stock_event(stock, adjusted(SKU, EU, 10, at=T0 + 1))  # goods arrive at the EU warehouse
    stock_request(stock, ship("O-1", SKU, "FUL-1", EU, 4, at=T0 + 2))
    # Others in the line's reservation order: west's 2, then 2 of east's 3.
    assert stock.claims["O-1"].lines["L1"].reserved == {EAST: 1}
    assert (reserved(stock, WEST), reserved(stock, EAST)) == (0, 1)
    assert on_hand(stock, EU) == 6


def test_ship_releases_the_backorder_last() -> None:
    stock = stocked(SKU, {EAST: 3, WEST: 2})
    stock_request(stock, reserve("O-1", SKU, [("L1", 6)], CALIFORNIA))  # west 2, east 3, back 1
    stock_request(stock, ship("O-1", SKU, "FUL-1", WEST, 2, at=T0 + 1))
    line = stock.claims["O-1"].lines["L1"]
    assert (line.reserved, line.backordered, line.shipped) == ({EAST: 3}, 1, 2)
    stock_request(stock, ship("O-1", SKU, "FUL-2", EAST, 4, at=T0 + 2))
    assert (line.reserved, line.backordered, line.shipped) == ({}, 0, 6)
    assert stock.availability().reserved == 0
    assert stock.claims["O-1"].closed


def test_ship_fills_the_lines_in_order() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 2), ("L2", 3)], NEW_YORK))
    stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 3, at=T0 + 1))
    lines = stock.claims["O-1"].lines
    assert (lines["L1"].shipped, lines["L2"].shipped) == (2, 1)
    assert (lines["L1"].reserved, lines["L2"].reserved) == ({}, {EAST: 2})
    assert reserved(stock, EAST) == 2


def test_a_repeated_ship_is_a_duplicate_by_reference() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 4)], NEW_YORK))
    first = stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 2, at=T0 + 1))
    again = stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 2, at=T0 + 1), now=T0 + 9)
    assert again.verdict is Verdict.DUPLICATE
    assert first.updates == []
    assert again.updates == [AllocationUpdate("O-1", SKU, 2, {"L1": LineReservation({EAST: 2})})]
    assert on_hand(stock, EAST) == 8
    assert reserved(stock, EAST) == 2


def test_ship_before_the_snapshot_releases_but_leaves_on_hand_alone() -> None:
    stock = stocked(SKU, {EAST: 10}, as_of=T0)
    stock_request(stock, reserve("O-1", SKU, [("L1", 4)], NEW_YORK, at=T0 - 10))
    stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 4, at=T0 - 5))
    assert on_hand(stock, EAST) == 10  # the ERP's count already saw the shipment
    assert reserved(stock, EAST) == 0


def test_ship_without_a_claim_moves_stock_and_leaves_a_closed_claim() -> None:
    stock = stocked(SKU, {EAST: 10})
    effect = stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 3, at=T0 + 1))
    assert effect.verdict is Verdict.APPLIED
    assert effect.updates == []
    assert on_hand(stock, EAST) == 7
    assert reserved(stock, EAST) == 0
    assert stock.claims["O-1"].released and stock.claims["O-1"].closed


# --- restock ----------------------------------------------------------------------------------


def test_restock_adds_to_on_hand_once() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 2)], NEW_YORK))
    stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 2, at=T0 + 1))
    first = stock_request(stock, restock("O-1", SKU, "RF-1", WEST, 1, at=T0 + 2))
    again = stock_request(stock, restock("O-1", SKU, "RF-1", WEST, 1, at=T0 + 2))
    assert first.verdict is Verdict.APPLIED
    assert again.verdict is Verdict.DUPLICATE
    assert first.updates == []
    assert again.updates == [AllocationUpdate("O-1", SKU, 3, {"L1": LineReservation({}, 0)})]
    assert (on_hand(stock, EAST), on_hand(stock, WEST)) == (8, 1)
    assert stock.availability().reserved == 0


def test_restock_without_a_claim() -> None:
    stock = stocked(SKU, {EAST: 10})
    effect = stock_request(stock, restock("O-9", SKU, "RF-1", EAST, 2, at=T0 + 1))
    assert effect.verdict is Verdict.APPLIED
    assert on_hand(stock, EAST) == 12


# --- event de-duplication ---------------------------------------------------------------------


def test_a_redelivered_inventory_event_is_a_duplicate() -> None:
    stock = stocked(SKU, {EAST: 10})
    receipt = adjusted(SKU, EAST, 5, at=T0 + 1)
    assert stock_event(stock, receipt).verdict is Verdict.APPLIED
    assert stock_event(stock, receipt, now=T0 + 2).verdict is Verdict.DUPLICATE
    assert on_hand(stock, EAST) == 15


def test_event_ids_are_forgotten_after_the_ttl() -> None:
    policy = Policy(dedup_ttl_ms=2 * HOUR_MS)
    stock = SkuStock(SKU)
    receipt = adjusted(SKU, EAST, 5, at=T0)
    stock_event(stock, receipt, policy=policy)
    assert stock.pruned_ms == T0
    # Within the TTL the id is remembered.
    later = adjusted(SKU, EAST, 1, at=T0 + HOUR_MS)
    stock_event(stock, later, policy=policy)
    assert receipt.event_id in stock.seen
    # After it, pruning forgets it; a redelivery then applies again.
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + 3 * HOUR_MS), policy=policy)
    assert receipt.event_id not in stock.seen
    assert later.event_id in stock.seen
    assert stock_event(stock, receipt, now=T0 + 3 * HOUR_MS, policy=policy).verdict is (
        Verdict.APPLIED
    )


def test_pruning_runs_at_most_once_per_prune_interval() -> None:
    policy = Policy(dedup_ttl_ms=MINUTE_MS)
    stock = SkuStock(SKU)
    first = adjusted(SKU, EAST, 1, at=T0)
    stock_event(stock, first, policy=policy)
    # Past the TTL, but not yet PRUNE_EVERY_MS since the last pruning: still remembered.
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + PRUNE_EVERY_MS - 1), policy=policy)
    assert first.event_id in stock.seen
    assert stock_event(stock, first, now=T0 + PRUNE_EVERY_MS - 1, policy=policy).verdict is (
        Verdict.DUPLICATE
    )
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + PRUNE_EVERY_MS), policy=policy)
    assert first.event_id not in stock.seen
    assert stock.pruned_ms == T0 + PRUNE_EVERY_MS


def test_closed_claims_are_pruned_after_the_ttl_and_open_ones_kept() -> None:
    policy = Policy(dedup_ttl_ms=2 * HOUR_MS)
    stock = stocked(SKU, {EAST: 20})
    stock_request(stock, reserve("O-released", SKU, [("L1", 1)], NEW_YORK), policy=policy)
    stock_request(stock, release("O-released", SKU, at=T0 + 1), policy=policy)
    stock_request(stock, reserve("O-shipped", SKU, [("L1", 2)], NEW_YORK), policy=policy)
    stock_request(stock, ship("O-shipped", SKU, "F", EAST, 2, at=T0 + 2), policy=policy)
    stock_request(stock, reserve("O-open", SKU, [("L1", 3)], NEW_YORK), policy=policy)
    stock_request(stock, ship("O-open", SKU, "F", EAST, 1, at=T0 + 3), policy=policy)
    assert set(stock.claims) == {"O-released", "O-shipped", "O-open"}
    # Closed, but not yet older than the TTL.
    stock_request(
        stock, reserve("O-x", SKU, [("L1", 1)], NEW_YORK, at=T0 + 2 * HOUR_MS), policy=policy
    )
    assert set(stock.claims) == {"O-released", "O-shipped", "O-open", "O-x"}
    stock_request(
        stock,
        reserve("O-y", SKU, [("L1", 1)], NEW_YORK, at=T0 + 4 * HOUR_MS),
        policy=policy,
    )
    assert set(stock.claims) == {"O-open", "O-x", "O-y"}
    assert reserved(stock, EAST) == 2 + 1 + 1


# --- closed claims ----------------------------------------------------------------------------


def test_a_shipped_claim_keeps_only_what_de_duplication_needs() -> None:
    stock = stocked(SKU, {EAST: 2})
    reservation = reserve("O-1", SKU, [("L1", 2), ("L2", 1)], NEW_YORK)  # L2 backordered
    stock_request(stock, reservation)
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + 1))
    shipment = ship("O-1", SKU, "FUL-1", EAST, 3, at=T0 + 2)
    shipped = stock_request(stock, shipment)
    claim = stock.claims["O-1"]
    assert (claim.lines, claim.settled, claim.refs, claim.closed) == (
        {},
        ("L1", "L2"),
        {"FUL-1"},
        True,
    )
    # The backorder is gone, which the order hears of: every line, emptied.
    empty = {"L1": LineReservation(), "L2": LineReservation()}
    assert shipped.updates == [AllocationUpdate("O-1", SKU, 2, empty)]
    # Redelivered requests are still duplicates, answered with the same update.
    for again in (shipment, reservation):
        effect = stock_request(stock, again, now=T0 + 5)
        assert (effect.verdict, effect.updates) == (Verdict.DUPLICATE, shipped.updates)
    assert (on_hand(stock, EAST), reserved(stock, EAST)) == (0, 0)
    # What may still come applies as before: a restock once, and a release when the order
    # is cancelled for the SKUs it has not shipped.
    restocked = stock_request(stock, restock("O-1", SKU, "RF-1", EAST, 1, at=T0 + 3))
    assert (restocked.verdict, on_hand(stock, EAST)) == (Verdict.APPLIED, 1)
    stock_request(stock, release("O-1", SKU, at=T0 + 4))
    again = stock_request(stock, release("O-1", SKU, at=T0 + 4))
    assert again.updates == [AllocationUpdate("O-1", SKU, 4, empty)]
    assert stock.claims["O-1"].settled == ("L1", "L2")


def test_a_released_claim_keeps_only_what_de_duplication_needs() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 2)], NEW_YORK))
    stock_request(stock, release("O-1", SKU, at=T0 + 1))
    claim = stock.claims["O-1"]
    assert (claim.lines, claim.settled, claim.released) == ({}, ("L1",), True)
    again = stock_request(stock, release("O-1", SKU, at=T0 + 1))
    assert (again.verdict, again.updates) == (
        Verdict.DUPLICATE,
        [AllocationUpdate("O-1", SKU, 2, {"L1": LineReservation()})],
    )
    # Goods of the cancelled order that had shipped come back.
    stock_request(stock, restock("O-1", SKU, "RF-1", EAST, 2, at=T0 + 2))
    assert on_hand(stock, EAST) == 12


def test_an_open_claim_keeps_its_lines() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 2)], NEW_YORK))
    stock_request(stock, ship("O-1", SKU, "FUL-1", EAST, 1, at=T0 + 1))
    claim = stock.claims["O-1"]
    assert (list(claim.lines), claim.settled) == (["L1"], ())


def test_a_closed_claim_of_an_older_release_is_settled_at_the_next_pruning() -> None:
    stock = stocked(SKU, {EAST: 10})
    stock_request(stock, reserve("O-1", SKU, [("L1", 2)], NEW_YORK))
    with mock.patch.object(Claim, "settle", lambda self: None):
        stock_request(stock, release("O-1", SKU, at=T0 + 1))
    assert list(stock.claims["O-1"].lines) == ["L1"]
    stock_event(stock, adjusted(SKU, EAST, 1, at=T0 + PRUNE_EVERY_MS))
    assert (stock.claims["O-1"].lines, stock.claims["O-1"].settled) == ({}, ("L1",))


_ORDERS = {"O-1": (("L1", 2), ("L2", 3)), "O-2": (("L1", 4),), "O-3": (("L1", 1), ("L2", 1))}
_requests = st.one_of(
    st.builds(lambda o: ("reserve", o), st.sampled_from(sorted(_ORDERS))),
    st.builds(lambda o: ("release", o), st.sampled_from(sorted(_ORDERS))),
    st.tuples(
        st.sampled_from(["ship", "restock"]),
        st.sampled_from(sorted(_ORDERS)),
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from([EAST, WEST]),
        st.integers(min_value=1, max_value=4),
    ),
)


@settings(max_examples=150)
@given(st.lists(st.tuples(_requests, st.integers(min_value=0, max_value=HOUR_MS)), max_size=25))
def test_settling_closed_claims_changes_no_answer_and_no_figure(
    steps: list[tuple[tuple[Any, ...], int]],
) -> None:
    policy = Policy(dedup_ttl_ms=2 * HOUR_MS)
    settled, whole = stocked(SKU, {EAST: 5, WEST: 3}), stocked(SKU, {EAST: 5, WEST: 3})
    now = T0
    for (kind, order_id, *rest), wait in steps:
        now += wait
        if kind == "reserve":
            request = reserve(order_id, SKU, _ORDERS[order_id], NEW_YORK, at=now)
        elif kind == "release":
            request = release(order_id, SKU, at=now)
        else:
            ref, warehouse, quantity = rest
            make = ship if kind == "ship" else restock
            request = make(order_id, SKU, f"{kind}-{ref}", warehouse, quantity, at=now)
        effect = stock_request(settled, request, policy=policy)
        with mock.patch.object(Claim, "settle", lambda self: None):
            expected = stock_request(whole, request, policy=policy)
        assert (effect.verdict, effect.updates) == (expected.verdict, expected.updates)
        assert settled.availability() == whole.availability()
        assert settled.warehouses == whole.warehouses
        assert {
            o: (c.refs, c.released, c.version, c.closed) for o, c in settled.claims.items()
        } == {o: (c.refs, c.released, c.version, c.closed) for o, c in whole.claims.items()}


# --- availability -----------------------------------------------------------------------------


def test_availability_sums_warehouses_sorted_by_name() -> None:
    stock = stocked(SKU, {WEST: 5, EAST: 10, EU: 1})
    stock_request(stock, reserve("O-1", SKU, [("L1", 4)], CALIFORNIA))
    stock_request(stock, reserve("O-2", SKU, [("L1", 7)], NEW_YORK))
    assert stock.availability() == Availability(
        on_hand=16,
        reserved=11,
        available=5,
        warehouses=((EAST, 10, 7, 3), (EU, 1, 0, 1), (WEST, 5, 4, 1)),
    )


def test_availability_of_an_unknown_sku_is_zero() -> None:
    assert SkuStock(SKU).availability() == Availability(0, 0, 0, ())


def test_availability_carries_the_change_that_produced_its_figures() -> None:
    """What identifies the figures on inventory.availability: a duplicate, or a change that
    leaves the figures as they were, keeps the identity of the figures' first record."""
    stock = SkuStock(SKU)
    assert stock.availability().changed is None
    count = snapshot(SKU, EAST, 10, T0)
    stock_event(stock, count)
    assert stock.availability().changed == (count.event_id, T0)
    claim = reserve("O-1", SKU, [("L1", 3)], NEW_YORK, at=T0 + 1)
    stock_request(stock, claim)
    assert stock.availability().changed == ("O-1:reserve:", T0 + 1) == (claim.cause, T0 + 1)
    assert stock_event(stock, count).verdict is Verdict.DUPLICATE
    assert stock_request(stock, claim).verdict is Verdict.DUPLICATE
    stock_event(stock, snapshot(SKU, EAST, 5, T0 - 1))  # stale: ignored
    stock_event(stock, snapshot(SKU, EAST, 10, T0 + 2))  # agrees: the same figures
    assert stock.availability().changed == (claim.cause, T0 + 1)


# --- persistence ------------------------------------------------------------------------------


def rich_stock() -> SkuStock:
    policy = Policy(snapshot_window_ms=HOUR_MS)
    stock = SkuStock(SKU)
    stock_event(stock, snapshot(SKU, EAST, 10, T0, unit_cost="4.1000", currency="USD"))
    stock_event(stock, snapshot(SKU, EAST, 9, T0 + 1))  # drifts by -1
    stock_event(stock, adjusted(SKU, WEST, 6, at=T0), policy=policy)
    stock_event(stock, adjusted(SKU, WEST, 1, at=T0 + 2 * HOUR_MS), policy=policy)  # folds
    stock_request(stock, reserve("O-1", SKU, [("L1", 3), ("L2", 20)], CALIFORNIA))
    stock_request(stock, ship("O-1", SKU, "FUL-1", WEST, 2, at=T0 + 3 * HOUR_MS))
    stock_request(stock, restock("O-1", SKU, "RF-1", WEST, 1, at=T0 + 4 * HOUR_MS))
    stock_request(stock, reserve("O-2", SKU, [("L1", 1)], NEW_YORK))
    stock_request(stock, release("O-2", SKU, at=T0 + 5 * HOUR_MS))
    return stock


def test_state_survives_being_stored() -> None:
    stock = rich_stock()
    assert stock.warehouses[WEST].horizon_ms is not None
    assert stock.warehouses[EAST].unit_cost == Decimal("4.1000")
    restored = statecodec.decode_sku(statecodec.encode_sku(stock))
    assert restored == stock
    assert restored.warehouses[EAST].unit_cost == Decimal("4.1000")
    assert isinstance(restored.warehouses[EAST].unit_cost, Decimal)
    assert restored.availability() == stock.availability()
    assert restored.warehouses[EAST].drift == -1


def test_restored_state_still_recognises_duplicates() -> None:
    stock = rich_stock()
    restored = statecodec.decode_sku(statecodec.encode_sku(stock))
    again = stock_request(restored, ship("O-1", SKU, "FUL-1", WEST, 2, at=T0 + 3 * HOUR_MS))
    assert again.verdict is Verdict.DUPLICATE
    assert restored == stock


def test_stock_messages_survive_encoding() -> None:
    request = reserve("O-1", SKU, [("L1", 2), ("L2", 1)], CALIFORNIA)
    assert messages.decode_requests(messages.encode(request)) == [request]
    assert sorted(statejson.loads(messages.encode(request))) == [
        "at_ms",
        "destination",
        "kind",
        "lines",
        "order_id",
        "quantity",
        "ref",
        "sku",
        "type",
        "warehouse",
    ]
    for other in (
        release("O-1", SKU, at=T0 + 1),
        ship("O-1", SKU, "FUL-1", EAST, 2),
        restock("O-1", SKU, "RF-1", WEST, 1),
    ):
        assert messages.decode_requests(messages.encode(other)) == [other]
    bundle = [request, release("O-2", SKU, at=T0 + 1), ship("O-3", "SKU-B", "FUL-1", EAST, 2)]
    assert messages.decode_requests(messages.encode_bundle(bundle)) == bundle
    update = AllocationUpdate("O-1", SKU, 3, {"L1": LineReservation({EAST: 1, WEST: 1}, 2)})
    assert messages.decode_feedback(messages.encode(update)) == [update]
    tick = Tick("O-1", T0)
    assert messages.decode_feedback(messages.encode(tick)) == [tick]
    assert messages.decode_feedback(messages.encode_bundle([update, tick])) == [update, tick]
    with pytest.raises(ValueError, match="unknown order feedback type 'bogus'"):
        messages.decode_feedback(b'{"type":"bogus"}')


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_event", "reason", "named"),
    [
        (snapshot(SKU, EAST, -1, T0), "negative-quantity", "-1"),
        (snapshot(SKU, "WH-MOON", 5, T0), "unknown-warehouse", "'WH-MOON'"),
        (adjusted(SKU, "WH-MOON", 5, at=T0), "unknown-warehouse", "'WH-MOON'"),
        (snapshot(SKU, EAST, 5, T0, unit_cost="1.00", currency="XYZ"), "unknown-currency", "XYZ"),
        (snapshot(SKU, EAST, 5, T0, unit_cost="-0.01", currency="USD"), "negative-amount", "-0.01"),
        (
            adjusted(SKU, EAST, 5, at=T0, unit_cost="-2", currency="USD"),
            "negative-amount",
            "unit_cost",
        ),
        (snapshot(SKU, EAST, 5, T0, unit_cost="1.00"), "missing-currency", "currency"),
        (adjusted(SKU, EAST, 5, at=T0, unit_cost="1.00"), "missing-currency", "currency"),
    ],
)
def test_bad_inventory_events_are_rejected_with_a_reason(
    bad_event: object, reason: str, named: str
) -> None:
    stock = stocked(SKU, {EAST: 10})
    before = dict(stock.seen)
    with pytest.raises(Rejection) as info:
        stock_event(stock, bad_event)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert named in info.value.detail
    assert on_hand(stock, EAST) == 10
    assert stock.seen == before  # a rejected event is not remembered as seen


def test_an_unhandled_inventory_event_is_rejected() -> None:
    stock = stocked(SKU, {EAST: 10})
    bogus = replace(adjusted(SKU, EAST, 1, at=T0), kind="StockCounted")
    with pytest.raises(Rejection) as info:
        stock_event(stock, bogus)
    assert info.value.reason == "unknown-event"

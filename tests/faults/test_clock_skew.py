"""Sources whose clocks disagree with the worker's by minutes, both ways: the shop's and the
warehouse's behind, the payment gateways' ahead, on a sample that happens around now (its
opening snapshots, orders and payments), so that events are stamped minutes ahead of and
behind the worker's clock as it processes them, and time-based alerts fall due by stamps
the worker cannot trust. Nothing lost, nothing doubled, and every derived record as the
reference model has it over the same stamps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.loop import ORDERS, RATE, Loop, around_now, skewed

SKEWS = {
    "shopify": timedelta(minutes=-4),
    "wms": timedelta(minutes=-2),
    "stripe": timedelta(minutes=3),
    "adyen": timedelta(minutes=6),
}
"""Each source's clock error; the ERP's own snapshots are on time."""


@pytest.mark.seed(21)
def test_events_stamped_minutes_ahead_of_and_behind_the_workers_clock(
    loop: Loop, seed: int
) -> None:
    events = skewed(around_now(seed, ORDERS, minutes=10), SKEWS)
    loop.start_worker()
    loop.start_connector()
    loop.feed(events, rate=RATE)
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)

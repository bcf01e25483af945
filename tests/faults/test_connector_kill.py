"""kill -9 of the ERP connector right after the ERP confirmed a command: the ERP holds the
document, erpbridge has neither its result nor a commit. The next connector runs it again
and finds it; nothing lost, nothing doubled."""

from __future__ import annotations

import random

import pytest

from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.loop import ORDERS, RATE, Loop, sample


@pytest.mark.seed(12)
def test_connector_killed_between_the_erps_success_and_its_commit(loop: Loop, seed: int) -> None:
    rng = random.Random(seed)
    loop.start_worker()
    # One of the first few commands the ERP confirms: a short run makes a few dozen.
    first = loop.start_connector("connector-1", fault=("erp-success", rng.randint(2, 8)))
    loop.feed(sample(seed, ORDERS), rate=RATE)
    first.wait_killed_by_fault(timeout=180)
    loop.start_connector("connector-2")
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)

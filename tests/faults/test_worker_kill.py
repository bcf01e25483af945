"""kill -9 of the worker where a crash costs the most: mid-batch, during recovery, and with a
batch's outputs on the broker but its offsets not committed. Nothing lost, nothing doubled."""

from __future__ import annotations

import random

import pytest

from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.loop import ORDERS, RATE, Loop, sample


@pytest.mark.seed(11)
def test_worker_killed_mid_batch_during_recovery_and_before_commit(loop: Loop, seed: int) -> None:
    rng = random.Random(seed)
    events = sample(seed, ORDERS)
    loop.start_connector()
    # Every event writes state at least once: a send within the first two per event is
    # mid-stream, and leaves changelog records for the recovery below to read.
    first = loop.start_worker("worker-1", fault=("send", rng.randint(len(events), 2 * len(events))))
    loop.feed(events, rate=RATE)
    first.wait_killed_by_fault(timeout=120)
    # A new pod on an empty volume restores every table from the changelogs, and dies at it.
    fresh = loop.run_dir / "data-2"
    second = loop.start_worker("worker-2", fault=("recovery", rng.randint(1, 20)), data_dir=fresh)
    second.wait_killed_by_fault(timeout=120)
    # Its half-restored store is all the next one finds; it dies before its first commit.
    third = loop.start_worker("worker-3", fault=("commit", rng.randint(1, 3)), data_dir=fresh)
    third.wait_killed_by_fault(timeout=120)
    loop.start_worker("worker-4", data_dir=fresh)
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)

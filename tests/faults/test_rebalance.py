"""A second worker joins mid-run (a scale-up: partitions and their tables move to it, the
dispatcher's share of the ERP's rate is split) and leaves again (a scale-down: they move
back). Nothing lost, nothing doubled."""

from __future__ import annotations

import pytest

from streams.contracts.topics import AGENT_SOURCES
from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.loop import ORDERS, RATE, Loop, sample
from tests.streams.topology.agents.pipeline import members_with_partitions
from tests.support import wait_for


@pytest.mark.seed(16)
def test_a_second_worker_joins_and_leaves_mid_run(loop: Loop, seed: int) -> None:
    events = sample(seed, ORDERS)
    first = loop.start_worker("worker-1")
    loop.start_connector()
    # Slower, so that events still arrive while the group rebalances.
    loop.feed(events, rate=RATE / 2)
    loop.wait_consumed(first, len(events) // 5, timeout=120)
    # A pod of its own: its own data directory.
    second = loop.start_worker("worker-2", data_dir=loop.run_dir / "data-2")
    wait_for(
        lambda: members_with_partitions(loop.settings, loop.catalog) == 2,
        timeout=120,
        what="both workers to own input partitions",
    )
    loop.wait_consumed(second, 1, timeout=120, topics=AGENT_SOURCES)
    assert second.stop() == 0
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)

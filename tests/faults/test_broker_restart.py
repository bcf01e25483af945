"""The broker restarted mid-run, as in a rolling upgrade of a one-broker cluster: every
client loses it for a while and reconnects; nothing lost, nothing doubled."""

from __future__ import annotations

import pytest

from streams.local.kafka import Broker
from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.loop import ORDERS, RATE, Loop, sample


@pytest.mark.seed(13)
def test_a_broker_restart_mid_run(loop: Loop, kafka_broker: Broker, seed: int) -> None:
    assert kafka_broker.restart is not None, (
        "restarting the broker needs the one this session runs (KAFKA_BOOTSTRAP_SERVERS unset)"
    )
    events = sample(seed, ORDERS)
    worker = loop.start_worker()
    loop.start_connector()
    loop.feed(events, rate=RATE)
    loop.wait_consumed(worker, len(events) // 3, timeout=120)
    kafka_broker.restart()
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)

"""Health logic (streams/ops/health.py) on a moved clock and a real event loop; the worker's
/readyz from start to ready on the real broker is in test_metrics.py, with its /metrics."""

from __future__ import annotations

import asyncio
import time

from aiokafka.errors import KafkaConnectionError

from streams.ops.health import (
    BrokerProbe,
    Check,
    LoopWatchdog,
    PartitionSample,
    StallWatch,
    stuck_check,
    verdict,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_required_check_makes_the_probe_503_and_names_it() -> None:
    checks = [Check("broker", True, "answered"), Check("assignment", False, "waiting")]
    status, body = verdict(checks)
    assert status == 503
    assert body["status"] == "failing"
    assert body["checks"]["assignment"] == {"ok": False, "detail": "waiting"}
    # A check that is only reported (the connector's ERP) never fails the probe.
    status, body = verdict([Check("broker", True, "answered"), Check("erp", False, "down", False)])
    assert status == 200
    assert body["checks"]["erp"] == {"ok": False, "detail": "down", "required": False}


def test_a_late_or_missing_beat_means_the_loop_was_blocked() -> None:
    clock = Clock()
    watchdog = LoopWatchdog(interval=1.0, threshold=5.0, clock=clock)
    assert not watchdog.check().ok  # never beaten
    watchdog.beat()
    clock.now += 1.0
    watchdog.beat()
    assert watchdog.check().ok
    clock.now += 7.0  # no beat for longer than interval + threshold
    assert not watchdog.check().ok
    watchdog.beat()  # the beat comes, 6 s late: the loop was blocked
    check = watchdog.check()
    assert not check.ok and "blocked" in check.detail
    clock.now += 1.0
    watchdog.beat()
    assert watchdog.check().ok


def test_a_real_blocked_event_loop_is_not_live() -> None:
    async def scenario() -> tuple[Check, Check, Check]:
        watchdog = LoopWatchdog(interval=0.05, threshold=0.2)
        beating = asyncio.ensure_future(watchdog.run())
        try:
            while watchdog.last_beat is None:
                await asyncio.sleep(0.01)
            time.sleep(0.6)  # something blocks the loop
            during = watchdog.check()
            beaten = watchdog.last_beat
            while watchdog.last_beat == beaten:
                await asyncio.sleep(0.01)
            after = watchdog.check()  # the late beat came
            beaten = watchdog.last_beat
            while watchdog.last_beat == beaten:
                await asyncio.sleep(0.01)
            return during, after, watchdog.check()
        finally:
            beating.cancel()

    during, after, recovered = asyncio.run(scenario())
    assert not during.ok and "no beat" in during.detail
    assert not after.ok and "blocked" in after.detail
    assert recovered.ok


def _sample(mark: int | None, highwater: int = 10, paused: bool = False) -> PartitionSample:
    return PartitionSample("orders", 0, highwater, mark, mark, paused)


def test_a_consumer_with_records_waiting_and_no_progress_is_stuck() -> None:
    clock = Clock()
    watch = StallWatch(threshold=60, clock=clock)
    watch.observe([_sample(4)])
    clock.now += 59
    watch.observe([_sample(4)])
    assert watch.stuck() == {}
    clock.now += 2
    assert watch.stuck() == {("orders", 0): 61}
    check = stuck_check("consumer:app", watch)
    assert not check.ok and "orders[0]" in check.detail
    # Progress, then nothing waiting, then paused: none of them is stuck.
    watch.observe([_sample(5)])
    assert watch.stuck() == {}
    clock.now += 120
    watch.observe([_sample(10)])
    clock.now += 120
    assert watch.stuck() == {}
    watch.observe([_sample(10, highwater=20, paused=True)])
    clock.now += 120
    watch.observe([_sample(10, highwater=20, paused=True)])
    assert watch.stuck() == {}
    # Never committed (mark None) with records waiting stands still too.
    watch.observe([_sample(None)])
    clock.now += 61
    watch.observe([_sample(None)])
    assert list(watch.stuck()) == [("orders", 0)]
    # A partition that left is forgotten.
    watch.observe([])
    assert watch.stuck() == {}


def test_the_broker_counts_as_unreachable_once_no_probe_answered_for_a_while() -> None:
    clock = Clock()
    probe = BrokerProbe(max_age=10, clock=clock)

    async def answers() -> object:
        return {"topic"}

    async def refuses() -> object:
        raise KafkaConnectionError("connection refused")

    async def hangs() -> object:
        await asyncio.sleep(10)
        return None

    assert not probe.check().ok
    asyncio.run(probe.probe(answers, timeout=1))
    assert probe.check().ok
    asyncio.run(probe.probe(refuses, timeout=1))
    assert probe.check().ok  # one failed probe is not enough
    clock.now += 11
    check = probe.check()
    assert not check.ok and "connection refused" in check.detail
    asyncio.run(probe.probe(hangs, timeout=0.05))
    assert "TimeoutError" in probe.check().detail
    asyncio.run(probe.probe(answers, timeout=1))
    assert probe.check().ok

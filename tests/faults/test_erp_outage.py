"""The ERP unavailable mid-run: Tryton stopped for a while and started again, and a storm of
429s with Retry-After (a proxy in front of Tryton, which never throttles). The connector
retries, the commands wait, and once the ERP is back every one is executed exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.connectors.erp.proxy import Answer, ErpProxy, Request, serving
from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.loop import ORDERS, RATE, Loop, sample
from tests.support import wait_for

RETRY_AFTER = 2
STORM_SECONDS = 8.0


@pytest.mark.seed(14)
def test_the_erp_stopped_for_a_while_then_back(loop: Loop, seed: int) -> None:
    events = sample(seed, ORDERS)
    worker = loop.start_worker()
    connector = loop.start_connector()
    loop.feed(events, rate=RATE)
    wait_for(lambda: loop.answered() >= 5, timeout=120, what="the ERP to execute commands")
    loop.erp.stop_server()
    try:
        # Down until the connector found it down and every event has turned into work for it.
        wait_for(
            lambda: not connector.readiness()["erp"]["ok"],
            timeout=120,
            what="the connector to find the ERP down",
        )
        loop.wait_consumed(worker, len(events), timeout=120)
    finally:
        loop.erp.start_server()
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)


class Storm:
    """The proxy's policy: 429 with Retry-After to every request from `start` on, for
    STORM_SECONDS."""

    def __init__(self) -> None:
        self.until = 0.0

    def start(self) -> None:
        self.until = time.monotonic() + STORM_SECONDS

    def __call__(self, request: Request) -> Answer | None:
        if request.at < self.until:
            return Answer(429, {"Retry-After": str(RETRY_AFTER)})
        return None


@pytest.fixture
def storm() -> Storm:
    return Storm()


@pytest.fixture
def proxy(loop: Loop, storm: Storm) -> Iterator[ErpProxy]:
    with serving(ErpProxy(loop.erp.url, storm)) as running:
        yield running


@pytest.mark.seed(15)
def test_a_storm_of_429s_with_retry_after(
    loop: Loop, proxy: ErpProxy, storm: Storm, seed: int
) -> None:
    loop.start_worker()
    loop.start_connector(erp_url=proxy.url)
    loop.feed(sample(seed, ORDERS), rate=RATE)
    wait_for(lambda: loop.answered() >= 5, timeout=120, what="the ERP to execute commands")
    storm.start()
    wait_for(lambda: time.monotonic() > storm.until, timeout=60, what="the storm to pass")
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)

    traffic = proxy.traffic
    assert len(traffic.refusals) >= 3, "the storm refused nothing: the test shows nothing"
    for refused, _ in traffic.refusals:
        # Each refused request comes back, and no sooner than the ERP asked.
        again = [r.at for r in traffic.arrivals if r.body == refused.body and r.at > refused.at]
        assert again, "a refused request was never sent again"
        assert again[0] >= refused.at + RETRY_AFTER - 0.01

"""An ERP that throttles, which Tryton does not: a small real HTTP proxy in front of the real
Tryton answers 429 or 503 with Retry-After once requests come faster than it allows.

The connector must keep its requests in flight under its cap, send a refused request again
no sooner than its Retry-After, and still execute every command exactly once. (That a
Retry-After also holds back the client's other requests is shown in test_http.py, where
the order of events is certain.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from connectors.erp.sink import ErpSink
from streams.contracts.topics import TopicCatalog
from streams.local.tryton import Tryton
from streams.ops.settings import Settings
from tests.connectors.erp.proxy import Answer, ErpProxy, Request, serving
from tests.connectors.erp.records import publish, sample_commands, wait_results
from tests.connectors.erp.test_sink import _assert_once_in_erp, _assert_succeeded, _ids
from tests.support import RunningService

CAP = 3
ALLOWED_PER_SECOND = 6.0
RETRY_AFTER = 1


class Throttle:
    """Refuses what a bucket of CAP requests, refilled at ALLOWED_PER_SECOND, does not admit,
    with 429 and 503 in turn."""

    def __init__(self) -> None:
        self._allowance = 1.0
        self._last = time.monotonic()
        self._refusals = 0

    def __call__(self, request: Request) -> Answer | None:
        self._allowance = min(CAP, self._allowance + (request.at - self._last) * ALLOWED_PER_SECOND)
        self._last = request.at
        if self._allowance >= 1.0:
            self._allowance -= 1.0
            return None
        self._refusals += 1
        return Answer(429 if self._refusals % 2 else 503, {"Retry-After": str(RETRY_AFTER)})


@pytest.fixture
def proxy(tryton: Tryton) -> Iterator[ErpProxy]:
    with serving(ErpProxy(tryton.url, Throttle())) as running:
        yield running


def test_a_throttling_erp_gets_at_most_the_cap_and_its_retry_after(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    proxy: ErpProxy,
    tryton: Tryton,
) -> None:
    commands = sample_commands(seed=601, orders=3)
    ids = _ids(commands)
    publish(connector_settings, erp_topics, list(commands))
    start_sink(
        erp_url=proxy.url,
        erp_max_in_flight={"tryton": CAP},
        erp_give_up_seconds=300,
    )
    answered = wait_results(connector_settings, erp_topics, ids, timeout=300)
    _assert_succeeded(answered, ids)
    assert all(len(answered[c]) == 1 for c in ids)
    _assert_once_in_erp(tryton, commands)

    traffic = proxy.traffic
    statuses = {status for _, status in traffic.refusals}
    assert statuses == {429, 503}, "the ERP never throttled: the test shows nothing"
    assert traffic.max_in_flight <= CAP
    for refused, _ in traffic.refusals:
        # The refused request comes back, and no sooner than the ERP asked.
        retried = [r.at for r in traffic.arrivals if r.body == refused.body and r.at > refused.at]
        assert retried, "a refused request was never sent again"
        assert retried[0] >= refused.at + RETRY_AFTER - 0.01

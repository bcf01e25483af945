"""The connector's pacing, seen from the ERP: however many commands wait, the ERP never gets
more command attempts in any window than the target's rate limit allows (the rate over the
window, plus the burst).

Tryton must not be what holds the connector back, or the test shows nothing: the commands
are sales orders that exist in Tryton already, so each attempt is one quick lookup by its
command id (a redelivery after a crash, or a resync, re-sends what the ERP has). A proxy in
front of the real Tryton notes when each lookup arrives there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from connectors.erp.sink import ErpSink
from connectors.erp.tryton import TrytonAdapter
from streams.contracts.topics import TopicCatalog
from streams.domain.commands import Command, Kind
from streams.local.tryton import Tryton
from streams.ops.settings import RateLimit, Settings
from tests.connectors.erp.proxy import ErpProxy, serving
from tests.connectors.erp.records import publish, sample_commands, wait_results
from tests.connectors.erp.test_sink import _assert_succeeded, _ids
from tests.support import RunningService, on_tryton

RATE = 4.0
BURST = 2
CAP = 4
JITTER = 0.25
"""Seconds by which the way from the connector's pacing to the ERP (the event loop, HTTP)
may shorten the gap between two arrivals."""
LOOKUP = "model.sale.sale.search_read"


@pytest.fixture
def proxy(tryton: Tryton) -> Iterator[ErpProxy]:
    with serving(ErpProxy(tryton.url)) as running:
        yield running


def test_the_erp_never_gets_more_attempts_than_the_rate_allows(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    proxy: ErpProxy,
    tryton: Tryton,
) -> None:
    sales = [c for c in sample_commands(seed=611, orders=10) if c.kind is Kind.CREATE_SALES_ORDER]
    ids = _ids(sales)

    async def execute_all(erp: TrytonAdapter) -> None:
        slots = asyncio.Semaphore(2)  # as the connector's default cap

        async def execute(command: Command) -> None:
            async with slots:
                await erp.execute(command)

        await asyncio.gather(*map(execute, sales))

    on_tryton(tryton, execute_all)
    publish(connector_settings, erp_topics, list(sales))
    running = start_sink(
        erp_url=proxy.url,
        erp_rate_limits={"tryton": RateLimit(rate=RATE, burst=BURST)},
        erp_max_in_flight={"tryton": CAP},
    )
    answered = wait_results(connector_settings, erp_topics, ids)
    _assert_succeeded(answered, ids)

    arrivals = sorted(r.at for r in proxy.traffic.arrivals if r.method == LOOKUP)
    assert len(arrivals) == len(ids), "one attempt per command, each one lookup"
    for first in range(len(arrivals)):
        for last in range(first, len(arrivals)):
            window = arrivals[last] - arrivals[first]
            assert last - first + 1 <= BURST + RATE * (window + JITTER), (
                f"{last - first + 1} attempts reached the ERP within {window:.3f}s"
            )
    paced = running.call(lambda sink: sink.counts["paced"])
    assert paced >= len(ids) // 2, "the ERP, not the pacing, held the connector back"

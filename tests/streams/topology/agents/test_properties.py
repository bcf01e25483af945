"""Property: drawn commerce streams, where orders compete for scarce stock in any arrival
order with redeliveries, bring the topology on the real broker to what the reference model
says does not depend on arrival order.

The streams come from tests.streams.domain.strategies, as the rules' own properties do.
Each example holds several streams, each under a prefix of its own (order ids and SKUs), so
they share the topics, the four partitions and one worker without touching each other's
state, and one wait for the worker to commit everything serves them all. Which order got
scarce stock depends on how the partitions and the internal topics interleave (see
streams.domain.model), so reservations are compared through what each line still wants
from stock, and the cost of goods only through the invariants; everything else is compared
exactly with the model (statuses, payments, shipments, refunds, on hand, ERP commands,
journal entries, dead letters), the journal's account totals with what the events imply
(tests.streams.domain.ledger), and the last orders.status record per order with the
model's status.

The suite's budget for this module is about 60 to 90 s; the time taken is printed at the end.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import Codec
from streams.contracts.topics import ORDER_STATUS, TopicCatalog
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from streams.topology.agents.intake import partition_for
from tests.streams.domain.ledger import (
    COST_ACCOUNTS,
    ROUNDING_ACCOUNT,
    Entry,
    entry_problems,
    expected_books,
)
from tests.streams.domain.strategies import CommerceStream, as_sample, commerce_streams
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    assert_handed_on_like_model,
    assert_matches_model,
    dead_letters,
    latest_by_key,
    model_dead_letters,
    namespaced,
    produce,
    quiesce,
    read_all,
    run_model,
)
from tests.support import STORE, spawn_worker, worker_settings

CODEC = Codec(STORE)
PARTITIONS = 4
EXAMPLES = 10
STREAMS_PER_EXAMPLE = 3
NAMES = itertools.count()


@dataclass
class Tally:
    examples: int = 0
    streams: int = 0
    events: int = 0
    partitions: int = 0
    started: float = 0.0


@pytest.fixture(scope="module")
def shared(
    kafka_broker: Any,
    tmp_path_factory: pytest.TempPathFactory,
    report_figure: Callable[[str], None],
) -> Iterator[tuple[Settings, TopicCatalog, Tally]]:
    prefix = f"t-properties-{uuid.uuid4().hex[:8]}-"
    base: Path = tmp_path_factory.mktemp("properties")
    config = worker_settings(
        kafka_broker.bootstrap_servers, prefix, base / "data", partitions=PARTITIONS
    )
    catalog = TopicCatalog.from_settings(config)
    assert ensure_topics(
        config.confluent_config(), catalog, changelogs=changelog_sources(config.app_id)
    ).ok
    tally = Tally(started=time.monotonic())
    worker = spawn_worker(config, base / "worker.log")
    try:
        yield config, catalog, tally
    finally:
        worker.stop()
        report_figure(
            f"topology properties: {tally.examples} examples, {tally.streams} streams, "
            f"{tally.events} events over {tally.partitions} input partitions in "
            f"{time.monotonic() - tally.started:.1f} s (the worker's start included)"
        )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=st.lists(commerce_streams(), min_size=STREAMS_PER_EXAMPLE, max_size=STREAMS_PER_EXAMPLE)
)
def test_drawn_streams_reach_what_the_model_says_does_not_depend_on_arrival_order(
    shared: tuple[Settings, TopicCatalog, Tally], drawn: list[CommerceStream]
) -> None:
    config, catalog, tally = shared
    prefixes = [f"x{next(NAMES)}-" for _ in drawn]
    samples = [
        [namespaced(as_sample(event), prefix) for event in stream.deliveries]
        for prefix, stream in zip(prefixes, drawn, strict=True)
    ]
    # Each stream in its own arrival order; the streams one after the other.
    produce(config, catalog, CODEC, [s for stream in samples for s in stream])
    models = [run_model(stream, config, CODEC) for stream in samples]
    tally.examples += 1
    tally.streams += len(drawn)
    tally.events += sum(len(s) for s in samples)
    tally.partitions = max(
        tally.partitions,
        len(
            {
                (s.topic, partition_for(s.key.encode(), PARTITIONS))
                for stream in samples
                for s in stream
            }
        ),
    )
    quiesce(config, catalog)
    state = TopologyState.read(config, catalog, CODEC)
    last_status = {
        key.decode(): CODEC.decode(value).datum["status"]
        for key, value in latest_by_key(read_all(config, catalog.physical(ORDER_STATUS))).items()
        if value is not None
    }
    for prefix, stream, events, model in zip(prefixes, drawn, samples, models, strict=True):
        assert sum(model.outcomes.values()) == len(events)
        assert not model.dead_letters, "a drawn stream is consistent: nothing is dead-lettered"
        assert_matches_model(state, model, prefix)
        assert_handed_on_like_model(state, model, prefix, CODEC)
        assert dead_letters(config, catalog, CODEC, prefix) == model_dead_letters(model)
        # The last orders.status record per order is its status, redeliveries or not.
        for order_id, order in model.orders.items():
            if order.status is not None:
                assert last_status[order_id] == order.status.value, order_id
        assert_books_as_implied(state, prefix, stream)


def assert_books_as_implied(state: TopologyState, prefix: str, stream: CommerceStream) -> None:
    """The topology's finance.journal: every entry balances at the mapping's rate, and the
    account totals other than the cost of goods are what the stream's events imply."""
    entries = [
        Entry.of_datum(copies[0])
        for entry_id, copies in state.journal.items()
        if entry_id.startswith(prefix)
    ]
    problems = {e.entry_id: entry_problems(e) for e in entries if entry_problems(e)}
    assert not problems, problems
    # Accounts and currencies do not depend on the names (prefixed ids) the topology saw.
    implied = expected_books(stream.events, None)
    differences = implied.differences(entries, skip=COST_ACCOUNTS | {ROUNDING_ACCOUNT})
    assert not differences, differences

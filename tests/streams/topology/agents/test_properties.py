"""Property: any stream of commerce events, with duplicates and in any order, brings the
topology on the real broker to the reference model's state.

One worker serves every example; each example's order ids and SKUs carry a prefix of their
own, so examples share the topics without touching each other's state. Reservations may
differ between the two where orders compete for stock in a different order (see
streams.domain.model); everything else is compared exactly, and the topology's own
invariants are checked.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import Codec
from streams.contracts.topics import TopicCatalog
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import DEFAULT_START, Catalogue, SampleEvent, generate
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    assert_handed_on_like_model,
    assert_matches_model,
    dead_letters,
    model_dead_letters,
    namespaced,
    produce,
    quiesce,
    run_model,
)
from tests.support import STORE, spawn_worker, worker_settings

CODEC = Codec(STORE)
EXAMPLES = itertools.count()


@pytest.fixture(scope="module")
def shared(
    kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, TopicCatalog]]:
    prefix = f"t-properties-{uuid.uuid4().hex[:8]}-"
    base: Path = tmp_path_factory.mktemp("properties")
    config = worker_settings(
        kafka_broker.bootstrap_servers,
        prefix,
        base / "data",
        # Shuffles move snapshots days away from movements; the window's edge has unit tests.
        snapshot_window_hours=24 * 365,
    )
    catalog = TopicCatalog.from_settings(config)
    assert ensure_topics(
        config.confluent_config(), catalog, changelogs=changelog_sources(config.app_id)
    ).ok
    worker = spawn_worker(config, base / "worker.log")
    try:
        yield config, catalog
    finally:
        worker.stop()


@st.composite
def histories(draw: st.DrawFn) -> list[SampleEvent]:
    seed = draw(st.integers(0, 2**16), label="seed")
    orders = draw(st.integers(1, 6), label="orders")
    events = list(generate(seed, orders, Catalogue.default(), DEFAULT_START))
    duplicated = draw(st.lists(st.sampled_from(events), max_size=12), label="redelivered")
    stream = events + duplicated
    arrival = draw(st.permutations(range(len(stream))), label="arrival order")
    return [stream[i] for i in arrival]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_any_arrival_order_with_duplicates_reaches_the_models_state(
    shared: tuple[Settings, TopicCatalog], history: list[SampleEvent]
) -> None:
    config, catalog = shared
    prefix = f"x{next(EXAMPLES)}-"
    events = [namespaced(event, prefix) for event in history]
    produce(config, catalog, CODEC, events)
    model = run_model(events, config, CODEC)
    assert sum(model.outcomes.values()) == len(events)
    quiesce(config, catalog)
    state = TopologyState.read(config, catalog, CODEC)
    assert_matches_model(state, model, prefix)
    assert_handed_on_like_model(state, model, prefix, CODEC)
    assert dead_letters(config, catalog, CODEC, prefix) == model_dead_letters(model)

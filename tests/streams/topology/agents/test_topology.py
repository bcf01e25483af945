"""The topology on the real broker against the reference model: a sample stream, restarts
(clean stop, kill -9, empty data directory) and a two-worker rebalance lose nothing."""

from __future__ import annotations

import shutil
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.contracts.codec import Codec
from streams.contracts.topics import TopicCatalog
from streams.domain.commands import Kind
from streams.ops.settings import Settings
from streams.sample.generator import DEFAULT_START, Catalogue, SampleEvent, generate
from streams.topology.agents.intake import partition_for
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    assert_handed_on_like_model,
    assert_matches_model,
    assert_tables_hold_their_changelogs,
    dead_letters,
    members_with_partitions,
    produce,
    quiesce,
    run_model,
)
from tests.support import STORE, WorkerProcess, spawn_worker, wait_for

CODEC = Codec(STORE)


def _sample(orders: int, seed: int = 3) -> list[SampleEvent]:
    return list(generate(seed, orders, Catalogue.default(), DEFAULT_START))


def _check(settings: Settings, topics: TopicCatalog, events: list[SampleEvent]) -> TopologyState:
    quiesce(settings, topics)
    model = run_model(events, settings, CODEC)
    assert model.outcomes["applied"] > 0
    state = TopologyState.read(settings, topics, CODEC)
    assert_matches_model(state, model, prefix="")
    assert_handed_on_like_model(state, model, "", CODEC)
    assert dead_letters(settings, topics, CODEC, "") == []
    return state


def test_sample_stream_reaches_the_models_state(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    events = _sample(40, seed=7)  # a seed whose sample has every kind of ERP command
    produce(settings, topics, CODEC, events)
    worker = start_worker()
    state = _check(settings, topics, events)
    # Every command the sample's inputs call for; it has no storefront accounts to upsert.
    assert {copies[0].kind for copies in state.commands.values()} == set(Kind) - {
        Kind.UPSERT_CUSTOMER
    }
    assert len(state.journal) > len(events) // 4
    totals = worker.accounting()["totals"]
    assert totals["consumed"] == len(events) == totals["applied"]


def test_a_replay_of_every_input_issues_nothing_new(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    """Producers re-sending their whole history (or offsets reset to the start) re-send the
    same commands and entries, identical and under the same ids, and no new ones."""
    events = _sample(30, seed=7)
    produce(settings, topics, CODEC, events)
    start_worker()
    first = _check(settings, topics, events)
    produce(settings, topics, CODEC, events)
    again = _check(settings, topics, events)
    assert again.commands.keys() == first.commands.keys()
    assert again.journal.keys() == first.journal.keys()
    assert any(len(copies) > 1 for copies in again.commands.values())  # it did re-send


@pytest.mark.parametrize("how", ["clean-stop", "kill-9", "empty-data-dir"])
def test_restart_keeps_state(
    how: str,
    settings: Settings,
    topics: TopicCatalog,
    start_worker: Callable[[], WorkerProcess],
) -> None:
    events = _sample(60, seed=11)
    half = len(events) // 2
    produce(settings, topics, CODEC, events[:half])
    first = start_worker()
    if how == "kill-9":
        # Killed mid-stream: some events applied, their offsets not all committed.
        produce(settings, topics, CODEC, events[half:])
        wait_for(
            lambda: first.accounting()["totals"]["consumed"] > len(events) // 3,
            timeout=60,
            what="the worker to be part-way through",
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    else:
        quiesce(settings, topics)
        assert first.stop() == 0
        if how == "empty-data-dir":
            shutil.rmtree(settings.data_dir)
            assert not Path(settings.data_dir).exists()
        produce(settings, topics, CODEC, events[half:])
    start_worker()
    _check(settings, topics, events)


def test_two_workers_share_partitions_and_a_rebalance_loses_nothing(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    """A second worker joins and owns some partitions, then the first leaves and the
    second owns everything, its tables restored from their changelogs.

    The middle part is short, so most keys of the first part are written only before the
    second joined: a worker that took over a partition without them (as Faust's standby
    replicas once did) would hold no state for them."""
    events = _sample(60, seed=5)
    third = len(events) // 3
    middle = _reaching_every_partition(events, third, settings.partitions)
    produce(settings, topics, CODEC, events[:third])
    first = start_worker()
    quiesce(settings, topics)
    # Each worker needs a data directory of its own.
    second_settings = settings.model_copy(
        update={"data_dir": settings.data_dir.with_name("data-2")}
    )
    second = spawn_worker(second_settings, settings.data_dir.with_name("worker-b.log"))
    try:
        wait_for(
            lambda: members_with_partitions(settings, topics) == 2,
            timeout=90,
            what="both workers to own partitions after the rebalance",
        )
        produce(settings, topics, CODEC, events[third:middle])
        wait_for(
            lambda: second.accounting()["totals"]["consumed"] > 0,
            timeout=90,
            what="the second worker to consume from the partitions it took over",
        )
        quiesce(settings, topics)
        assert first.stop() == 0
        produce(settings, topics, CODEC, events[middle:])
        _check(settings, topics, events)
        assert second.stop() == 0
        assert_tables_hold_their_changelogs(settings, topics, second_settings.data_dir)
    finally:
        second.stop()


def _reaching_every_partition(events: list[SampleEvent], start: int, partitions: int) -> int:
    """Where the shortest run of events from `start` that has two on every partition ends."""
    counts: Counter[int] = Counter()
    for index in range(start, len(events)):
        counts[partition_for(events[index].key.encode(), partitions)] += 1
        if len(counts) == partitions and min(counts.values()) >= 2:
            return index + 1
    raise AssertionError(f"events from {start} do not reach all {partitions} partitions twice")

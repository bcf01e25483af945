"""What reading and writing in batches could break, tested as the promises it must keep, on
the real broker with real workers: a backlog of many keys over every partition, a record
delivered twice back to back, kill -9 between a batch's outputs (or dead letters) and its
commit, and a second worker joining while a backlog is worked off.

After each, the final checks are the same: nothing lost or doubled (the tables, commands,
journal and dead letters as the reference model has them; tests.streams.topology.agents.
pipeline), every consumed event accounted for, one command id per ERP document, and the
last orders.status record per order and inventory.availability record per SKU equal to the
model's. The workloads are the deterministic sample, whose stories all run to their end,
so even reservations end where the model's do (none open).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from confluent_kafka import Consumer, TopicPartition

from streams.contracts import deadletter
from streams.contracts.codec import Codec
from streams.contracts.topics import (
    AVAILABILITY,
    INPUTS,
    ORDER_STATUS,
    ORDERS,
    TopicCatalog,
    dead_letter_of,
)
from streams.domain.commands import Kind
from streams.domain.model import ReferenceModel
from streams.ops.settings import Settings
from streams.ops.topic_admin import consumer_lag
from streams.sample.generator import DEFAULT_START, Catalogue, SampleEvent, generate
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    assert_handed_on_like_model,
    assert_matches_model,
    committed_offsets,
    dead_letters,
    latest_by_key,
    members_with_partitions,
    model_dead_letters,
    produce,
    produce_placed,
    quiesce,
    read_all,
    run_model,
)
from tests.support import STORE, WorkerProcess, spawn_worker, wait_for

CODEC = Codec(STORE)


def _sample(orders: int, seed: int) -> list[SampleEvent]:
    return list(generate(seed, orders, Catalogue.default(), DEFAULT_START))


OUTCOMES = ("applied", "duplicate", "waiting", "dead_lettered")


def _input_totals(worker: WorkerProcess) -> Counter[str]:
    """What the worker's accounting says of the input topics, each consumed event having
    exactly one outcome (checked per topic)."""
    totals: Counter[str] = Counter()
    for name, account in worker.accounting()["topics"].items():
        if name not in INPUTS:
            continue
        assert account["consumed"] == sum(account[o] for o in OUTCOMES), f"{name}: {account}"
        totals.update({k: v for k, v in account.items() if isinstance(v, int)})
    return totals


def _final_checks(settings: Settings, topics: TopicCatalog, model: ReferenceModel) -> TopologyState:
    quiesce(settings, topics)
    state = TopologyState.read(settings, topics, CODEC)
    assert_matches_model(state, model, prefix="")
    assert_handed_on_like_model(state, model, "", CODEC)
    # A dead letter's copies (its input read again after a crash) are identical.
    assert sorted(set(dead_letters(settings, topics, CODEC, ""))) == model_dead_letters(model)
    # One command id per ERP document: one sales order and at most one cancellation per
    # order, whatever was re-sent.
    ids: dict[tuple[Kind, str], set[str]] = defaultdict(set)
    for command_id, copies in state.commands.items():
        ids[copies[0].kind, copies[0].dispatch_key].add(command_id)
    several = {
        key: found
        for key, found in ids.items()
        if key[0] in (Kind.CREATE_SALES_ORDER, Kind.CANCEL_SALES_ORDER) and len(found) > 1
    }
    assert not several, f"documents with several command ids: {several}"
    # The last record per key of the derived topics is the model's.
    statuses = {
        key.decode(): CODEC.decode(value).datum["status"]
        for key, value in latest_by_key(read_all(settings, topics.physical(ORDER_STATUS))).items()
        if value is not None
    }
    assert statuses == {k: o.status.value for k, o in model.orders.items() if o.status}
    published = {
        key.decode(): CODEC.decode(value).datum
        for key, value in latest_by_key(read_all(settings, topics.physical(AVAILABILITY))).items()
        if value is not None
    }
    # On hand per warehouse exactly. Reserved and available too while no order line waits
    # for stock: where reservations went, and so what is backordered, depends on arrival
    # order only when stock runs short (the table's own figures are checked against the
    # topic by assert_consistent); once every story has ended none is left open.
    short = any(
        line.backordered
        for stock in model.stock.values()
        for claim in stock.claims.values()
        for line in claim.lines.values()
    )

    def figures(
        on_hand: int, reserved: int, available: int, warehouses: dict[str, int]
    ) -> tuple[int, int | None, int | None, dict[str, int]]:
        return (on_hand, None if short else reserved, None if short else available, warehouses)

    assert {
        sku: figures(
            d["on_hand"],
            d["reserved"],
            d["available"],
            {w["warehouse_id"]: w["on_hand"] for w in d["warehouses"] if w["on_hand"]},
        )
        for sku, d in published.items()
    } == {
        sku: figures(a.on_hand, a.reserved, a.available, {w: n for w, n, _, _ in a.warehouses if n})
        for sku, a in model.availability.items()
    }
    assert all(w["reserved"] >= 0 for d in published.values() for w in d["warehouses"])
    return state


def test_a_backlog_of_many_keys_over_every_partition_is_worked_off_once(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    """Preloaded before the worker starts, so its first reads hold many keys of every
    partition and topic at once: each event is consumed and applied once, each output sent
    once."""
    events = _sample(90, seed=13)
    placed = produce_placed(settings, topics, CODEC, events)
    spread = Counter((topic, partition) for _, (topic, partition, _) in placed)
    # Every partition of every input the sample has (it has no storefront accounts).
    assert len(spread) == len({e.topic for e in events}) * settings.partitions, spread
    assert len({event.key for event in events}) > 100
    worker = start_worker()
    model = run_model(events, settings, CODEC)
    state = _final_checks(settings, topics, model)
    totals = _input_totals(worker)
    assert totals["consumed"] == len(events)
    assert totals["duplicate"] == model.outcomes["duplicate"] == 0
    assert totals["applied"] + totals["waiting"] == len(events)
    assert totals["waiting"] == totals["waiting_applied"]
    # Nothing was redelivered, so nothing went twice.
    twice = {k: len(v) for k, v in state.commands.items() if len(v) > 1}
    assert not twice, f"commands sent more than once: {twice}"
    assert not {k: len(v) for k, v in state.journal.items() if len(v) > 1}
    status_ids = Counter(
        CODEC.decode(r.value()).datum["event_id"]
        for r in read_all(settings, topics.physical(ORDER_STATUS))
    )
    assert max(status_ids.values()) == 1


def test_a_record_delivered_twice_back_to_back_counts_once(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    """The same record produced twice in a row lands in the same read: the second is a
    duplicate, and the state is as if it came once."""
    events = _sample(25, seed=17)
    doubled = [event for event in events for _ in range(2)]
    placed = produce_placed(settings, topics, CODEC, doubled)
    for (_, first), (_, again) in zip(placed[::2], placed[1::2], strict=True):
        assert again == (first[0], first[1], first[2] + 1), "the copies are not adjacent"
    worker = start_worker()
    model = run_model(doubled, settings, CODEC)
    assert model.outcomes["duplicate"] == len(events)
    _final_checks(settings, topics, model)
    totals = _input_totals(worker)
    assert totals["consumed"] == len(doubled)
    assert totals["duplicate"] == len(events), totals
    assert totals["applied"] + totals["waiting"] == len(events), totals
    assert totals["waiting"] == totals["waiting_applied"], totals
    assert totals["dead_lettered"] == 0


def _kill_once_outputs_appear(
    settings: Settings,
    topics: TopicCatalog,
    worker: WorkerProcess,
    *,
    name: str = ORDER_STATUS,
    timeout: float = 90,
) -> None:
    """kill -9 the worker the moment the first records of topic `name` are on the broker,
    polling their partitions' ends without pause."""
    topic = topics.physical(name)
    consumer = Consumer({**settings.confluent_config(), "group.id": "watch-outputs"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] > 0
                for p in partitions
            ):
                worker.kill()
                return
            assert worker.process.poll() is None, "the worker stopped on its own"
        raise AssertionError(f"no output on {topic} within {timeout}s")
    finally:
        consumer.close()


def test_kill_9_between_a_batchs_outputs_and_its_commit_loses_and_doubles_nothing(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    events = _sample(60, seed=19)
    placed = produce_placed(settings, topics, CODEC, events)
    where = {event.datum["event_id"]: at for event, at in placed}
    first = start_worker()
    _kill_once_outputs_appear(settings, topics, first)
    inputs = [topics.physical(name) for name in INPUTS]
    committed = committed_offsets(settings, inputs)
    # The crash fell in the window: outputs on the broker whose inputs were not committed.
    causes = [
        CODEC.decode(r.value()).datum["cause_event_id"]
        for r in read_all(settings, topics.physical(ORDER_STATUS))
    ]
    uncommitted = [c for c in causes if where[c][2] >= committed[where[c][0], where[c][1]][0]]
    assert uncommitted, f"every output's input was committed before the kill: {committed}"
    second = start_worker()
    model = run_model(events, settings, CODEC)
    _final_checks(settings, topics, model)
    # The restarted worker read again exactly what was not committed, and accounted for it.
    left = sum(end - offset for offset, end in committed.values())
    assert left > 0
    assert _input_totals(second)["consumed"] == left


def _refused_copies(events: list[SampleEvent]) -> list[SampleEvent]:
    """Each order placed, followed by a copy of it (an order of its own) that the rules
    refuse: a negative price is dead-lettered with `negative-amount`."""
    mixed: list[SampleEvent] = []
    for event in events:
        mixed.append(event)
        name, placed = event.datum["event"] if event.topic == ORDERS else ("", None)
        if name.endswith("OrderPlaced"):
            oid = f"{event.key}-REFUSED"
            lines = [{**placed["lines"][0], "unit_price": Decimal("-1.00")}, *placed["lines"][1:]]
            datum = {
                **event.datum,
                "event_id": event.datum["event_id"] + "-refused",
                "order_id": oid,
                "event": (name, {**placed, "lines": lines}),
            }
            mixed.append(replace(event, key=oid, datum=datum))
    return mixed


def _dead_letters_on_broker(settings: Settings, topics: TopicCatalog) -> set[tuple[str, int, int]]:
    """The input records (physical topic, partition, offset) with a dead letter; each
    one's copies are identical."""
    found: dict[tuple[str, int, int], set[tuple[object, ...]]] = defaultdict(set)
    for name in INPUTS:
        for record in read_all(settings, topics.physical(dead_letter_of(name))):
            about = deadletter.describe(record.headers() or [])
            source = (
                about[deadletter.SOURCE_TOPIC],
                int(about[deadletter.SOURCE_PARTITION]),
                int(about[deadletter.SOURCE_OFFSET]),
            )
            found[source].add((record.key(), record.value(), tuple(record.headers() or [])))
    differing = {source: len(copies) for source, copies in found.items() if len(copies) > 1}
    assert not differing, f"dead letters whose copies differ: {differing}"
    return set(found)


def test_kill_9_after_dead_letters_leaves_none_committed_without_its_letter(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    """A refused input's dead letter is on the broker before its offset is committed:
    killed the moment the first dead letters appear, every refused input below its
    partition's committed offset has its letter, and the restarted worker writes the rest."""
    events = _refused_copies(_sample(40, seed=29))
    placed = produce_placed(settings, topics, CODEC, events)
    refused = {at for event, at in placed if event.key.endswith("-REFUSED")}
    assert len(refused) >= 30
    first = start_worker()
    _kill_once_outputs_appear(settings, topics, first, name=dead_letter_of(ORDERS))
    inputs = [topics.physical(name) for name in INPUTS]
    committed = committed_offsets(settings, inputs)
    lettered = _dead_letters_on_broker(settings, topics)
    below = {at for at in refused if at[2] < committed[at[0], at[1]][0]}
    assert below - lettered == set(), "refused inputs committed without their dead letter"
    # The kill fell in the window: letters on the broker whose inputs were not committed.
    assert lettered - below, f"every dead letter's input was committed before the kill: {committed}"
    start_worker()
    model = run_model(events, settings, CODEC)
    _final_checks(settings, topics, model)
    assert _dead_letters_on_broker(settings, topics) == refused
    assert {reason for _, reason in model_dead_letters(model)} == {"negative-amount"}


def test_a_worker_joining_while_a_backlog_is_worked_off_loses_and_doubles_nothing(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    """The first worker is kept busy with a backlog of a thousand events or so, whatever its
    speed, until the second has joined; then a little more arrives, and the story stops
    there (the model reads the same prefix of the sample)."""
    sample = _sample(2500, seed=23)
    chunks = [sample[i : i + 500] for i in range(0, len(sample), 500)]
    events: list[SampleEvent] = []

    def more() -> None:
        events.extend(chunks.pop(0))
        produce(settings, topics, CODEC, events[-500:])

    more()
    first = start_worker()
    wait_for(
        lambda: _input_totals(first)["consumed"] > 0,
        timeout=60,
        what="the first worker to start on the backlog",
    )
    # Each worker needs a data directory of its own.
    second_settings = settings.model_copy(
        update={"data_dir": settings.data_dir.with_name("data-2")}
    )
    second = spawn_worker(second_settings, settings.data_dir.with_name("worker-b.log"))
    inputs = [topics.physical(name) for name in INPUTS]
    try:

        def joined_while_busy() -> bool:
            if chunks and len(events) - _input_totals(first)["consumed"] < 1000:
                more()
            return members_with_partitions(settings, topics) == 2

        wait_for(joined_while_busy, timeout=90, what="the second worker to join the group")
        backlog = sum(consumer_lag(settings.confluent_config(), settings.app_id, inputs).values())
        assert backlog > 0, "the backlog was worked off before the second worker joined"
        if chunks:
            more()
        try:
            quiesce(settings, topics)
        except AssertionError as stuck:
            accounts = {
                name: {t: a["consumed"] for t, a in w.accounting()["topics"].items()}
                for name, w in (("first", first), ("second", second))
            }
            raise AssertionError(f"{stuck}; consumed by each worker: {accounts}") from None
        model = run_model(events, settings, CODEC)
        _final_checks(settings, topics, model)
        consumed = [_input_totals(w)["consumed"] for w in (first, second)]
        assert all(consumed), consumed
        # Every event consumed, some maybe twice (re-read after the hand-over, as duplicates).
        assert sum(consumed) >= len(events)
    finally:
        second.stop()

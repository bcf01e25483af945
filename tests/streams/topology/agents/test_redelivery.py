"""Everything delivered again, as after a crash or a rebalance: workers restarted on an empty
data directory, their group's offsets on the inputs back at the start. The last record of
every key of the derived topics is still the current state, and every re-sent record is its
first copy, byte for byte."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from streams.contracts.changelogs import (
    ORDER_ALERTS_TABLE,
    STOCK_ALERTS_TABLE,
    changelog_topic,
)
from streams.contracts.codec import Codec
from streams.contracts.topics import (
    ALERTS,
    AVAILABILITY,
    INVENTORY,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    TopicCatalog,
)
from streams.domain.statecodec import decode_alerts
from streams.ops.settings import Settings
from streams.sample.generator import DEFAULT_START, Catalogue, generate
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    assert_matches_model,
    latest_by_key,
    produce,
    quiesce,
    read_all,
    run_model,
)
from tests.support import STORE, WorkerProcess, wait_for

CODEC = Codec(STORE)
DERIVED = (ORDER_STATUS, AVAILABILITY, ALERTS)


def rewind(settings: Settings, catalog: TopicCatalog, inputs: tuple[str, ...]) -> None:
    """The worker group's offsets on `inputs` back to the start (what `kafka-consumer-groups
    --reset-offsets --to-earliest` does), once the group is empty."""
    admin = AdminClient(settings.confluent_config())
    start = [
        TopicPartition(catalog.physical(name), partition, 0)
        for name in inputs
        for partition in range(catalog.partitions(name))
    ]

    def rewound() -> bool:
        request = ConsumerGroupTopicPartitions(settings.app_id, start)
        [future] = admin.alter_consumer_group_offsets([request]).values()
        future.result(timeout=10)
        return True

    wait_for(rewound, timeout=60, what=f"the offsets of group {settings.app_id} to be reset")


def redeliver(
    settings: Settings,
    catalog: TopicCatalog,
    start_worker: Callable[[], WorkerProcess],
    inputs: tuple[str, ...],
    count: int,
) -> None:
    """The `count` records of `inputs` again, to a worker on an empty data directory, which
    must take each for a duplicate."""
    shutil.rmtree(settings.data_dir)
    rewind(settings, catalog, inputs)
    worker = start_worker()
    wait_for(
        lambda: worker.accounting()["totals"]["duplicate"] == count,
        timeout=120,
        what=f"every record of {', '.join(inputs)} to come again, as a duplicate",
    )
    quiesce(settings, catalog)
    assert worker.stop() == 0


def copies_by_event_id(settings: Settings, topic: str) -> dict[str, list[bytes]]:
    copies: dict[str, list[bytes]] = {}
    for record in read_all(settings, topic):
        value = record.value()
        assert value is not None
        copies.setdefault(CODEC.decode(value).datum["event_id"], []).append(value)
    return copies


def test_a_redelivery_of_every_input_leaves_the_last_record_of_each_key_true(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    events = list(generate(3, 20, Catalogue.default(), DEFAULT_START))
    # Payments come last, so an order shipped before it was paid closes on its capture ...
    produce(settings, topics, CODEC, [e for e in events if e.topic != PAYMENTS])
    first = start_worker()
    quiesce(settings, topics)
    produce(settings, topics, CODEC, [e for e in events if e.topic == PAYMENTS])
    quiesce(settings, topics)
    assert first.stop() == 0
    sent_first = {name: len(read_all(settings, topics.physical(name))) for name in DERIVED}

    # ... and comes again before the shipment does: whatever an input caused at the time, its
    # replay must not leave an old status last.
    for inputs in ((PAYMENTS, INVENTORY), (ORDERS,)):
        count = sum(1 for e in events if e.topic in inputs)
        redeliver(settings, topics, start_worker, inputs, count)

    model = run_model(events, settings, CODEC)
    state = TopologyState.read(settings, topics, CODEC)
    # The worker's own state, and inventory.availability's last record per SKU, as before.
    assert_matches_model(state, model, prefix="")

    statuses = latest_by_key(read_all(settings, topics.physical(ORDER_STATUS)))
    last = {key.decode(): CODEC.decode(value).datum for key, value in statuses.items() if value}
    expected = {o: order.status.value for o, order in model.orders.items() if order.status}
    assert {o: datum["status"] for o, datum in last.items()} == expected, (
        "the last orders.status record of an order is not its status"
    )
    assert {o: datum["sequence"] for o, datum in last.items()} == {
        o: len(state.orders[o].transitions) for o in expected
    }

    # Alerts: the last record of every alert id the books hold is the book's alert.
    alerts = {
        key.decode(): CODEC.decode(value).datum
        for key, value in latest_by_key(read_all(settings, topics.physical(ALERTS))).items()
        if value
    }
    for table in (ORDER_ALERTS_TABLE, STOCK_ALERTS_TABLE):
        changelog = read_all(settings, changelog_topic(settings.app_id, table))
        for value in latest_by_key(changelog).values():
            assert value is not None
            for alert in decode_alerts(value).alerts.values():
                datum = alert.to_datum()
                encoded = CODEC.encode("erpbridge.ReconciliationAlert", datum, topic=ALERTS)
                assert alerts[alert.alert_id] == CODEC.decode(encoded).datum

    for name in DERIVED:
        copies = copies_by_event_id(settings, topics.physical(name))
        differing = sorted(e for e, values in copies.items() if len(set(values)) > 1)
        assert not differing, f"{name}: copies differ from their first: {differing}"
    resent = {name: len(read_all(settings, topics.physical(name))) for name in DERIVED}
    assert resent[ORDER_STATUS] > sent_first[ORDER_STATUS]
    assert resent[AVAILABILITY] > sent_first[AVAILABILITY]

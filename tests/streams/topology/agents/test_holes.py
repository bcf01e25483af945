"""Records Faust drops without delivering them (around a rebalance or a recovery, see
streams.topology.cursors) are read again, in order, and never committed past: a worker on
erpbridge's StreamApp and batch loop (holes_app) that drops chosen records the way Faust
does, on the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.local.kafka import Broker
from tests.support import WorkerProcess, free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[4]
PARTITIONS = 3
RECORDS = 20
# Partitions 0 and 1 hold RECORDS records, partition 2 one: a hole at the start of a
# partition with no commit yet, one in the middle that a later record shows, one at the
# end that nothing shows, and a partition none of whose records reaches the agent.
SIZES = (RECORDS, RECORDS, 1)
DROPPED = (0, 3, RECORDS - 1)


@pytest.fixture
def holes_worker(
    kafka_broker: Broker, topic_prefix: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "HOLES_APP_ID": f"{topic_prefix}app",
        "HOLES_SOURCE": f"{topic_prefix}source",
        "HOLES_OUTPUT": f"{topic_prefix}handled",
        "HOLES_PARTITIONS": str(PARTITIONS),
        "HOLES_DROP": ",".join(str(offset) for offset in DROPPED),
    }
    admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    created = admin.create_topics(
        [NewTopic(env["HOLES_SOURCE"], PARTITIONS, 1), NewTopic(env["HOLES_OUTPUT"], 1, 1)]
    )
    for future in created.values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    for partition, size in enumerate(SIZES):
        for n in range(size):
            producer.produce(env["HOLES_SOURCE"], value=str(n).encode(), partition=partition)
    assert producer.flush(30) == 0
    port = free_port()
    log_path = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "faust", "-A", "tests.streams.topology.agents.holes_app",
        "--datadir", str(tmp_path / "data"), "worker", "-l", "info", "--web-port", str(port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(process, port, log_path)
    try:
        yield env
    finally:
        worker.stop()


def handled(env: dict[str, str]) -> list[tuple[int, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"{env['HOLES_APP_ID']}-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        topic = env["HOLES_OUTPUT"]
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        found: list[tuple[int, int]] = []
        while len(found) < end:
            message = consumer.poll(5)
            assert message is not None, f"{topic} ends at {end}, read {len(found)}"
            partition, offset = message.value().decode().split(":")
            found.append((int(partition), int(offset)))
        return found
    finally:
        consumer.close()


def committed(env: dict[str, str]) -> list[int]:
    consumer = Consumer(
        {"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": env["HOLES_APP_ID"]}
    )
    try:
        partitions = [TopicPartition(env["HOLES_SOURCE"], p) for p in range(PARTITIONS)]
        return [tp.offset for tp in consumer.committed(partitions, timeout=10)]
    finally:
        consumer.close()


def test_dropped_records_are_read_again_in_order_and_never_committed_past(
    holes_worker: dict[str, str],
) -> None:
    wait_for(
        lambda: committed(holes_worker) == list(SIZES),
        timeout=90,
        what="every record's offset committed",
    )
    found = handled(holes_worker)
    for partition, size in enumerate(SIZES):
        # Each exactly once and in offset order: nothing past a hole was handled before it.
        assert [o for p, o in found if p == partition] == list(range(size)), found

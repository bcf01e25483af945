"""A Faust app works end to end on the broker streams.local.kafka provides.

This is the evidence behind KAFKA_VERSION: changelog topic creation, recovery from the
changelog into an empty store, and a rebalance between two workers, all with real
worker subprocesses (tests/streams/local/faust_counter.py) on the session broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.local.kafka import Broker
from tests.support import WorkerProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 4
KEYS = [f"key-{i}" for i in range(8)]
TIMEOUT_S = 90.0


class CounterApp:
    """One test's instance of the counter app: its app id, source topic and workers."""

    def __init__(self, broker: Broker, prefix: str, tmp_path: Path) -> None:
        self.bootstrap = broker.bootstrap_servers
        self.app_id = f"{prefix}counter"
        self.topic = f"{prefix}source"
        self.changelog = f"{self.app_id}-counts-changelog"
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []

    def create_source_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(self.topic, PARTITIONS, 1)])
        futures[self.topic].result(timeout=30)

    def start_worker(self) -> WorkerProcess:
        index = len(self.workers)
        port = free_port()
        log_path = self.tmp_path / f"worker-{index}.log"
        # A fresh data directory each time: whatever a worker knows, it got from Kafka.
        data_dir = self.tmp_path / f"worker-{index}-data"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "COUNTER_APP_ID": self.app_id,
            "COUNTER_TOPIC": self.topic,
            "COUNTER_PARTITIONS": str(PARTITIONS),
            "COUNTER_STORE": "rocksdb://",
        }
        command = [
            sys.executable, "-m", "faust", "-A", "tests.streams.local.faust_counter",
            "--datadir", str(data_dir), "worker", "-l", "info", "--web-port", str(port),
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        worker = WorkerProcess(process, port, log_path)
        self.workers.append(worker)
        return worker

    def send(self, counts: Counter[str]) -> None:
        # murmur2 is the partitioner Faust and Java clients use for the same keys.
        producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random"})
        for key, times in counts.items():
            for _ in range(times):
                producer.produce(self.topic, key=key.encode(), value=b"x")
        assert producer.flush(30) == 0

    def changelog_counts(self) -> dict[str, int]:
        """The latest value per key in the changelog topic: what a recovering worker reads."""
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        try:
            latest: dict[str, int] = {}
            for partition in range(PARTITIONS):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.changelog, partition), timeout=10
                )
                if high <= low:
                    continue
                consumer.assign([TopicPartition(self.changelog, partition, low)])
                position = low
                while position < high:
                    message = consumer.poll(10)
                    if message is None:
                        raise TimeoutError(f"no changelog record at {partition}:{position}")
                    if message.error():
                        raise KafkaException(message.error())
                    key, value, offset = message.key(), message.value(), message.offset()
                    assert key is not None and value is not None and offset is not None
                    latest[json.loads(key)] = json.loads(value)["count"]
                    position = offset + 1
            return latest
        finally:
            consumer.close()

    def wait(self, observe: Callable[[], Any], check: Callable[[Any], bool], what: str) -> Any:
        """Poll `observe` until `check` accepts its value; fail at once if a running worker dies."""
        deadline = time.monotonic() + TIMEOUT_S
        last: object = None
        while True:
            for worker in self.workers:
                if worker.process.returncode is None and worker.process.poll() is not None:
                    pytest.fail(f"worker exited while waiting for {what}\n{self.logs()}")
            try:
                last = observe()
            except (OSError, KafkaException, TimeoutError, ValueError) as exc:
                last = exc  # a worker or the changelog not there yet
            else:
                if check(last):
                    return last
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}, last seen: {last!r}\n{self.logs()}")
            time.sleep(0.3)

    def wait_changelog(self, expected: Counter[str], what: str) -> None:
        self.wait(self.changelog_counts, lambda counts: counts == expected, what)

    def logs(self) -> str:
        return "\n".join(
            f"--- {w.log_path.name} (exit {w.process.returncode})\n"
            + "\n".join(w.log_path.read_text(errors="replace").splitlines()[-30:])
            for w in self.workers
        )


def state(worker: WorkerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/state/", timeout=2) as r:
        data: dict[str, Any] = json.load(r)
        return data


ALL = list(range(PARTITIONS))


def settled(worker_state: dict[str, Any], partitions: list[int] | None = None) -> bool:
    """Assigned (these partitions, or any) and done recovering them."""
    owned = worker_state["partitions"]
    return bool(owned) and not worker_state["rebalancing"] and partitions in (None, owned)


def batch(times: int) -> Counter[str]:
    """A different count per key, so a mix-up between keys or partitions shows."""
    return Counter({key: times * (i + 1) for i, key in enumerate(KEYS)})


@pytest.fixture
def counter(kafka_broker: Broker, topic_prefix: str, tmp_path: Path) -> Iterator[CounterApp]:
    app = CounterApp(kafka_broker, topic_prefix, tmp_path)
    app.create_source_topic()
    yield app
    for worker in app.workers:
        worker.stop()


def test_changelog_topic_is_created_and_holds_the_counts(
    counter: CounterApp, kafka_broker: Broker
) -> None:
    worker = counter.start_worker()
    counter.wait(lambda: state(worker), lambda s: settled(s, ALL), "worker ready")
    sent = batch(1)
    counter.send(sent)

    counter.wait_changelog(sent, "counts in the changelog")
    assert state(worker)["counts"] == sent

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    topic = admin.list_topics(counter.changelog, timeout=10).topics[counter.changelog]
    assert len(topic.partitions) == PARTITIONS
    resource = ConfigResource(ConfigResource.Type.TOPIC, counter.changelog)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["cleanup.policy"].value == "compact"


def test_new_worker_with_empty_store_recovers_counts_from_changelog(counter: CounterApp) -> None:
    first = counter.start_worker()
    counter.wait(lambda: state(first), lambda s: settled(s, ALL), "first worker ready")
    sent = batch(1)
    counter.send(sent)
    counter.wait_changelog(sent, "counts in the changelog")
    assert first.stop() == 0

    second = counter.start_worker()
    counter.wait(
        lambda: state(second),
        lambda s: settled(s, ALL) and s["counts"] == sent,
        "counts recovered by the second worker",
    )
    # Counting on from the recovered values, not from zero, is what recovery is for.
    counter.send(batch(1))
    counter.wait_changelog(sent + batch(1), "counts after recovery")


def test_rebalance_between_two_workers_keeps_counts_right(counter: CounterApp) -> None:
    first = counter.start_worker()
    # A worker joining while the first still recovers can leave partitions unconsumed
    # (seen with Kafka 3.9.2): this test is about a rebalance between two ready workers.
    counter.wait(lambda: state(first), lambda s: settled(s, ALL), "first worker ready")
    second = counter.start_worker()

    def split_between_both(states: tuple[dict[str, Any], dict[str, Any]]) -> bool:
        mine, theirs = states
        owned = sorted(mine["partitions"] + theirs["partitions"])
        return settled(mine) and settled(theirs) and owned == ALL

    counter.wait(
        lambda: (state(first), state(second)), split_between_both, "partitions split between both"
    )
    sent = batch(1)
    counter.send(sent)
    counter.wait_changelog(sent, "counts from both workers")

    assert first.stop() == 0
    counter.wait(lambda: state(second), lambda s: settled(s, ALL), "takeover by the second")
    counter.send(batch(2))
    total = sent + batch(2)
    counter.wait_changelog(total, "counts after takeover")
    assert state(second)["counts"] == total

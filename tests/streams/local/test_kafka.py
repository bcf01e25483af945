"""streams.local.kafka: which broker is chosen, the jar cache, and the broker itself."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.local.kafka import (
    Broker,
    BrokerUnavailable,
    Probes,
    cache_dir,
    choose_broker_kind,
    ensure_jars,
    libs_dir,
    running_broker,
)
from tests.support import fake_maven


def answer(value: bool) -> Callable[[], bool]:
    return lambda: value


def never_asked() -> bool:
    raise AssertionError("this probe must not be consulted")


def probes(
    docker: Callable[[], bool] = never_asked,
    java: Callable[[], bool] = never_asked,
    maven: Callable[[], bool] = never_asked,
    jars_cached: Callable[[], bool] = never_asked,
) -> Probes:
    return Probes(
        docker_answers=docker, java_found=java, maven_found=maven, jars_cached=jars_cached
    )


def test_bootstrap_servers_in_env_win_without_probing_anything() -> None:
    assert choose_broker_kind({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}, probes()) == "external"


def test_blank_bootstrap_servers_count_as_unset() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "  "}
    assert choose_broker_kind(env, probes(docker=answer(True))) == "docker"


def test_docker_when_an_engine_answers() -> None:
    assert choose_broker_kind({}, probes(docker=answer(True))) == "docker"


def test_local_jvm_when_no_docker() -> None:
    found = probes(answer(False), answer(True), answer(True), answer(False))
    assert choose_broker_kind({}, found) == "local-jvm"


def test_local_jvm_needs_no_maven_once_jars_are_cached() -> None:
    cached = probes(answer(False), answer(True), answer(False), answer(True))
    assert choose_broker_kind({}, cached) == "local-jvm"


def test_missing_java_is_named() -> None:
    with pytest.raises(BrokerUnavailable, match="install a Java runtime") as error:
        choose_broker_kind({}, probes(answer(False), answer(False), answer(True), answer(False)))
    assert "Maven" not in str(error.value)


def test_missing_maven_is_named_when_jars_are_not_cached() -> None:
    with pytest.raises(BrokerUnavailable, match=r"install Apache Maven \(mvn") as error:
        choose_broker_kind({}, probes(answer(False), answer(True), answer(False), answer(False)))
    assert "Java" not in str(error.value)
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(error.value)


def test_running_broker_fails_fast_naming_everything_missing(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path / "empty-bin"),
        "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache"),
        "DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}",
    }
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as error, running_broker(env=env):
        pytest.fail("no broker should start")
    assert time.monotonic() - started < 10
    assert "Java runtime" in str(error.value)
    assert "Apache Maven" in str(error.value)


def test_cache_dir_follows_erpbridge_then_xdg_then_home() -> None:
    assert cache_dir({"ERPBRIDGE_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache_dir({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/erpbridge")
    assert cache_dir({"HOME": "/h"}) == Path("/h/.cache/erpbridge")


def test_jars_are_fetched_once_then_served_from_the_cache(tmp_path: Path) -> None:
    calls = fake_maven(tmp_path / "bin", 'mkdir -p "$out" && touch "$out/kafka.jar"')
    env = {"PATH": str(tmp_path / "bin"), "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache")}

    libs = ensure_jars(env)
    assert libs == libs_dir(env)
    assert (libs / "kafka.jar").is_file()
    assert ensure_jars(env) == libs
    assert calls.read_text().splitlines() == ["called"]


def test_failed_download_leaves_no_partial_cache(tmp_path: Path) -> None:
    fake_maven(tmp_path / "bin", 'mkdir -p "$out" && touch "$out/half.jar"\necho offline; exit 1')
    env = {"PATH": str(tmp_path / "bin"), "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache")}

    with pytest.raises(BrokerUnavailable, match="offline"):
        ensure_jars(env)
    assert not libs_dir(env).exists()
    assert os.listdir(libs_dir(env).parent) == []


def test_broker_returns_a_produced_message(kafka_broker: Broker, topic_prefix: str) -> None:
    config = {"bootstrap.servers": kafka_broker.bootstrap_servers}
    topic = f"{topic_prefix}roundtrip"
    admin = AdminClient(config)  # must outlive the future it returns
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)

    producer = Producer(config)
    producer.produce(topic, key=b"order-1", value=b"paid")
    assert producer.flush(30) == 0

    consumer = Consumer(
        {**config, "group.id": f"{topic_prefix}reader", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1)
        assert message is not None, "no message within 30 s"
        assert message.error() is None
        assert (message.key(), message.value()) == (b"order-1", b"paid")
    finally:
        consumer.close()


def _auto_create_topics(broker: Broker) -> str:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    node = admin.describe_cluster().result(timeout=10).nodes[0]
    resource = ConfigResource(ConfigResource.Type.BROKER, str(node.id))
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    return str(config["auto.create.topics.enable"].value)


def test_started_broker_leaves_topic_creation_to_apps(kafka_broker: Broker) -> None:
    if kafka_broker.kind != "external":
        assert _auto_create_topics(kafka_broker) == "false"
        return
    # The session broker is someone else's: check one this module starts itself.
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    with running_broker(env=env) as own:
        assert own.kind != "external"
        assert _auto_create_topics(own) == "false"


def child_pids() -> set[int]:
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return {int(pid) for pid in children.read_text().split()}


def test_second_broker_reuses_the_first_through_the_env(kafka_broker: Broker) -> None:
    before = child_pids()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    with running_broker(env=env) as second:
        assert second == Broker(kafka_broker.bootstrap_servers, "external", None)
        assert child_pids() == before

"""A worker as Kubernetes runs it: topics owned by an operator, static group membership."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from streams.contracts.changelogs import changelog_sources
from streams.contracts.groups import dispatch_group
from streams.contracts.topics import SPECS, TopicCatalog
from streams.ops.settings import Settings
from streams.topology.app import create_topology
from tests.support import WorkerProcess, wait_for, worker_settings

POD = "erpbridge-0"


@pytest.fixture
def settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path) -> Settings:
    """The settings the StatefulSet gives a pod (the test's own topics and group)."""
    return worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path / "data",
        create_topics=False,
        group_instance_id=POD,
    )


def _instance_ids(admin: AdminClient, group: str) -> set[str | None]:
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {member.group_instance_id for member in description.members}


def test_worker_joins_as_static_member_and_creates_no_topic(
    kafka_broker: Any,
    settings: Settings,
    topic_prefix: str,
    topics: TopicCatalog,
    start_worker: Callable[[], WorkerProcess],
) -> None:
    assert create_topology(settings).app.conf.topic_allow_declare is False
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    declared = {topics.physical(s.name) for s in SPECS} | set(changelog_sources(settings.app_id))

    start_worker()
    for group in (settings.app_id, dispatch_group(settings.app_id)):
        wait_for(
            lambda group=group: _instance_ids(admin, group) == {POD},
            timeout=60,
            what=f"group {group} to have the static member {POD}",
        )
    # Both groups joined, so Faust has declared whatever it would: here nothing, not even
    # its leader topic; the test's topics are exactly those the KafkaTopic manifests declare.
    present = {
        name for name in admin.list_topics(timeout=10).topics if name.startswith(topic_prefix)
    }
    assert present == declared

"""streams.local.registry: which registry is chosen, the download cache, and the registry itself."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.local.registry import (
    Registry,
    RegistryUnavailable,
    ensure_registry,
    registry_dir,
    running_registry,
)
from tests.support import fake_maven


def child_pids() -> set[int]:
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return {int(pid) for pid in children.read_text().split()}


def test_a_registry_url_in_env_is_used_as_is_and_starts_nothing(tmp_path: Path) -> None:
    before = child_pids()
    # No java, no mvn, no cache: nothing of them may be needed.
    env = {
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": " http://registry.example:8081 ",
        "PATH": str(tmp_path / "empty-bin"),
        "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache"),
    }
    with running_registry(env=env) as registry:
        assert registry == Registry("http://registry.example:8081", "external", None)
        assert child_pids() == before
    assert not (tmp_path / "cache").exists()


def test_missing_java_and_maven_are_named(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "empty-bin"), "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache")}
    with pytest.raises(RegistryUnavailable) as error, running_registry(env=env):
        pytest.fail("no registry should start")
    assert "Java runtime" in str(error.value)
    assert "Apache Maven" in str(error.value)
    assert "ERPBRIDGE_SCHEMA_REGISTRY_URL" in str(error.value)


def fake_distribution(path: Path) -> Path:
    """A tar.gz laid out like Apicurio's `all` distribution, with an empty runner jar."""
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo("apicurio-registry-app-3.0.9-runner.jar")
        archive.addfile(member, io.BytesIO(b""))
    return path


def test_the_registry_is_fetched_once_then_served_from_the_cache(tmp_path: Path) -> None:
    archive = fake_distribution(tmp_path / "app.tar.gz")
    calls = fake_maven(tmp_path / "bin", f'mkdir -p "$out" && cp "{archive}" "$out/"')
    env = {"PATH": str(tmp_path / "bin"), "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache")}

    app = ensure_registry(env)
    assert app == registry_dir(env)
    assert (app / "apicurio-registry-app-3.0.9-runner.jar").is_file()
    assert ensure_registry(env) == app
    assert calls.read_text().splitlines() == ["called"]


def test_a_failed_download_leaves_no_partial_cache(tmp_path: Path) -> None:
    fake_maven(
        tmp_path / "bin", 'mkdir -p "$out" && touch "$out/half.tar.gz"\necho offline; exit 1'
    )
    env = {"PATH": str(tmp_path / "bin"), "ERPBRIDGE_CACHE_DIR": str(tmp_path / "cache")}

    with pytest.raises(RegistryUnavailable, match="offline"):
        ensure_registry(env)
    assert not registry_dir(env).exists()
    assert os.listdir(registry_dir(env).parent) == []


def record(*fields: dict[str, object]) -> Schema:
    return Schema(
        json.dumps({"type": "record", "name": "Probe", "namespace": "test", "fields": fields}),
        "AVRO",
    )


def test_the_registry_registers_and_returns_a_schema(
    schema_registry: Registry, topic_prefix: str
) -> None:
    subject = f"{topic_prefix}probe-value"
    schema = record({"name": "sku", "type": "string"})
    client = SchemaRegistryClient({"url": schema_registry.url})

    schema_id = client.register_schema(subject, schema)

    # A second client has no cache: the answers come from the registry.
    fresh = SchemaRegistryClient({"url": schema_registry.url})
    assert json.loads(fresh.get_schema(schema_id).schema_str) == json.loads(schema.schema_str)
    latest = fresh.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (schema_id, 1)


def test_an_incompatible_schema_is_refused(schema_registry: Registry, topic_prefix: str) -> None:
    subject = f"{topic_prefix}probe-value"
    client = SchemaRegistryClient({"url": schema_registry.url})
    client.register_schema(subject, record({"name": "sku", "type": "string"}))

    # A new required field without a default cannot read old records: not BACKWARD compatible.
    with pytest.raises(SchemaRegistryError) as error:
        client.register_schema(
            subject, record({"name": "sku", "type": "string"}, {"name": "qty", "type": "int"})
        )
    assert error.value.http_status_code == 409
    # A default makes the same change compatible.
    client.register_schema(
        subject,
        record({"name": "sku", "type": "string"}, {"name": "qty", "type": "int", "default": 0}),
    )
    assert SchemaRegistryClient({"url": schema_registry.url}).get_versions(subject) == [1, 2]

"""Every kind of erpbridge client against one real broker with a SASL_SSL (SCRAM-SHA-512)
and a mutual-TLS listener, certificates made here; and the clear, quick failures."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from pydantic import SecretStr

from streams.contracts.topics import ERP_COMMANDS, ORDER_STATUS
from streams.local.kafka import Broker, SecureListeners, running_broker
from streams.ops.kafka_security import aiokafka_security, confluent_security, faust_credentials
from streams.ops.settings import Settings
from tests.certificates import Authority, Issued
from tests.support import EVENTS, run, settings_env, spawn, spawn_worker, wait_for

USER = "erpbridge"
PASSWORD = f"scram-{uuid.uuid4().hex}"
"""Distinct enough that finding it in any output means it leaked."""


@dataclass(frozen=True)
class SecureKafka:
    broker: Broker
    ca: Path
    client: Issued
    stranger_ca: Path
    """A CA that signed neither the broker's nor the client's certificate."""

    def scram(self, prefix: str, data_dir: Path, **overrides: Any) -> Settings:
        assert self.broker.sasl_ssl_bootstrap is not None
        fields: dict[str, Any] = {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_username": USER,
            "kafka_sasl_password": SecretStr(PASSWORD),
            "kafka_ssl_ca_file": self.ca,
        }
        return _settings(self.broker.sasl_ssl_bootstrap, prefix, data_dir, fields, overrides)

    def mutual_tls(self, prefix: str, data_dir: Path, **overrides: Any) -> Settings:
        assert self.broker.ssl_bootstrap is not None
        fields: dict[str, Any] = {
            "kafka_security_protocol": "SSL",
            "kafka_ssl_ca_file": self.ca,
            "kafka_ssl_cert_file": self.client.cert_file,
            "kafka_ssl_key_file": self.client.key_file,
        }
        return _settings(self.broker.ssl_bootstrap, prefix, data_dir, fields, overrides)


def _settings(
    bootstrap: str, prefix: str, data_dir: Path, fields: dict[str, Any], overrides: dict[str, Any]
) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        app_id=f"{prefix}app",
        data_dir=data_dir,
        partitions=2,
        session_timeout_seconds=6,
        **{**fields, **overrides},
    )


@pytest.fixture(scope="module")
def secure_kafka(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SecureKafka]:
    """The module's one broker with secure listeners (a second broker costs seconds)."""
    directory = tmp_path_factory.mktemp("tls")
    ca = Authority(directory, "test-ca")
    broker_cert = ca.issue("broker", server=True)
    listeners = SecureListeners(
        ca.cert_file, broker_cert.cert_file, broker_cert.key_file, {USER: PASSWORD}
    )
    with running_broker(
        secure=listeners, keep_log=lambda: request.session.testsfailed > 0
    ) as broker:
        yield SecureKafka(
            broker,
            ca.cert_file,
            ca.issue("erpbridge-client", server=False),
            Authority(directory, "stranger-ca").cert_file,
        )


def cli_env(settings: Settings) -> dict[str, str | None]:
    return {
        **settings_env(settings),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }


def records(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """What `erpbridge tail` reads from `topic` now, as JSON lines."""
    result = run(["tail", topic], cli_env(settings))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_each_client_library_gets_the_same_security(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "ca")
    client = ca.issue("client", server=False)
    settings = Settings(
        kafka_bootstrap_servers="broker:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_ca_file=ca.cert_file,
        kafka_ssl_cert_file=client.cert_file,
        kafka_ssl_key_file=client.key_file,
    )
    assert confluent_security(settings) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca.cert_file),
        "ssl.certificate.location": str(client.cert_file),
        "ssl.key.location": str(client.key_file),
    }
    assert settings.producer_config()["sasl.password"] == PASSWORD
    aiokafka = aiokafka_security(settings)
    assert {k: v for k, v in aiokafka.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }
    assert aiokafka["ssl_context"].check_hostname
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert PASSWORD not in repr(credentials)

    mutual = settings.model_copy(
        update={
            "kafka_security_protocol": "SSL",
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,
        }
    )
    assert confluent_security(mutual)["security.protocol"] == "SSL"
    assert "sasl.username" not in confluent_security(mutual)
    assert isinstance(faust_credentials(mutual), faust.SSLCredentials)
    assert faust_credentials(Settings(kafka_bootstrap_servers="broker:9092")) is None


def test_cli_over_scram_and_over_mutual_tls(
    secure_kafka: SecureKafka, topic_prefix: str, tmp_path: Path
) -> None:
    scram = secure_kafka.scram(topic_prefix, tmp_path)
    mutual = secure_kafka.mutual_tls(topic_prefix, tmp_path)

    created = run(["topics", "create"], cli_env(scram))
    assert created.exit_code == 0, created.output
    assert f"created   {topic_prefix}commerce.orders" in created.output

    orders = EVENTS / "commerce.orders.jsonl"
    produced = run(["produce", "commerce.orders", str(orders)], cli_env(mutual))
    assert produced.exit_code == 0, produced.output
    assert sorted(r["value"]["order_id"] for r in records(scram, "commerce.orders")) == sorted(
        json.loads(line)["order_id"] for line in orders.read_text().splitlines()
    )
    assert PASSWORD not in created.output + produced.output


def test_worker_runs_over_sasl_ssl_with_the_password_from_a_file(
    secure_kafka: SecureKafka, topic_prefix: str, tmp_path: Path
) -> None:
    """`erpbridge worker`: its Faust agents and its dispatcher (aiokafka consumer and
    producer) over SASL_SSL, the password read from a mounted-secret-like file."""
    settings = secure_kafka.scram(topic_prefix, tmp_path / "data")
    assert run(["topics", "create"], cli_env(settings)).exit_code == 0
    orders = EVENTS / "commerce.orders.jsonl"
    assert run(["produce", "commerce.orders", str(orders)], cli_env(settings)).exit_code == 0

    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    log = tmp_path / "worker.log"
    worker = spawn_worker(
        settings.model_copy(update={"kafka_sasl_password": None}),
        log,
        ERPBRIDGE_KAFKA_SASL_PASSWORD_FILE=str(secret),
    )
    try:
        statuses = wait_for(
            lambda: records(settings, ORDER_STATUS),
            timeout=90,
            what="order statuses from the worker's agents",
        )
        commands = wait_for(
            lambda: records(settings, ERP_COMMANDS),
            timeout=60,
            what="an ERP command from the worker's dispatcher",
        )
    finally:
        assert worker.stop() == 0, log.read_text()
    order_ids = {json.loads(line)["order_id"] for line in orders.read_text().splitlines()}
    assert {r["value"]["order_id"] for r in statuses} <= order_ids
    assert commands[0]["value"]["command"]["type"] == "CreateSalesOrder"
    assert commands[0]["value"]["command"]["order_id"] in order_ids
    assert PASSWORD not in log.read_text()


def test_a_wrong_password_or_an_untrusted_broker_stops_processes_at_once(
    secure_kafka: SecureKafka, topic_prefix: str, tmp_path: Path
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    bad_password = secure_kafka.scram(topic_prefix, tmp_path, kafka_sasl_password=SecretStr(wrong))
    untrusted = secure_kafka.scram(
        topic_prefix,
        tmp_path,
        kafka_ssl_ca_file=secure_kafka.stranger_ca,
        # The connector checks its ERP settings before Kafka; this ERP is never reached.
        erp_url="http://127.0.0.1:9/erp/rpc/",
        erp_password=SecretStr("erp"),
    )
    runs = {
        "worker, wrong password": (["-m", "streams.cli", "worker"], bad_password),
        "connector, untrusted broker": (["-m", "streams.cli", "connector", "erp"], untrusted),
    }
    processes = {
        name: spawn(args, settings, tmp_path / f"{n}.log")
        for n, (name, (args, settings)) in enumerate(runs.items())
    }
    outputs = {}
    for n, (name, process) in enumerate(processes.items()):
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{name}: still running after 60 s") from None
        outputs[name] = (tmp_path / f"{n}.log").read_text()
        assert code == 1, outputs[name]
    assert (
        f"Kafka authentication failed for user '{USER}' with mechanism SCRAM-SHA-512"
        in outputs["worker, wrong password"]
    )
    assert "certificate verify failed" in outputs["connector, untrusted broker"]
    assert str(secure_kafka.stranger_ca) in outputs["connector, untrusted broker"]
    for output in outputs.values():
        assert PASSWORD not in output
        assert wrong not in output
        assert "Traceback" not in output


def test_mutual_tls_without_a_client_certificate_is_refused_by_name(
    secure_kafka: SecureKafka, topic_prefix: str, tmp_path: Path
) -> None:
    settings = secure_kafka.mutual_tls(
        topic_prefix, tmp_path, kafka_ssl_cert_file=None, kafka_ssl_key_file=None
    )
    result = run(["topics", "list"], cli_env(settings))
    assert result.exit_code == 1
    assert "refused this client's certificate (no certificate)" in result.output

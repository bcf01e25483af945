"""Settings from the environment: values, secrets from files, and problems named by variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from streams.cli import connector, worker
from streams.ops.settings import (
    REPO_ROOT,
    InvalidSettings,
    RateLimit,
    Settings,
    env_variable,
    load_settings,
)
from tests.support import run


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only what a test sets may count.
    for name in list(os.environ):
        if name.startswith(("ERPBRIDGE_", "KAFKA_")):
            monkeypatch.delenv(name)


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a worker was started despite bad settings")

    monkeypatch.setattr(connector, "Worker", refuse)
    monkeypatch.setattr(worker.worker, "run", refuse)
    monkeypatch.setattr(worker, "check_copartitioning", refuse)


def test_variables_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("ERPBRIDGE_PARTITIONS", "12")
    monkeypatch.setenv("ERPBRIDGE_TOPIC_PARTITIONS", '{"commerce.orders": 24}')
    monkeypatch.setenv("ERPBRIDGE_ERP_RATE_LIMITS", '{"tryton": {"rate": 5, "burst": 2}}')
    monkeypatch.setenv("ERPBRIDGE_ERP_PASSWORD", "pw")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "broker:9092"
    assert settings.partitions == 12
    assert settings.topic_partitions == {"commerce.orders": 24}
    assert settings.erp_rate_limits == {"tryton": RateLimit(rate=5, burst=2)}
    assert settings.erp_password is not None
    assert settings.erp_password.get_secret_value() == "pw"


def test_secret_from_file_without_its_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("  s3cret with spaces \n")
    monkeypatch.setenv("ERPBRIDGE_ERP_PASSWORD_FILE", str(secret))
    password = load_settings().erp_password
    assert password is not None
    assert password.get_secret_value() == "  s3cret with spaces "


def test_missing_secret_file_names_variable_and_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "absent"
    monkeypatch.setenv("ERPBRIDGE_ERP_PASSWORD_FILE", str(missing))
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    assert "ERPBRIDGE_ERP_PASSWORD_FILE" in str(raised.value)
    assert str(missing) in str(raised.value)


def test_secret_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file")
    monkeypatch.setenv("ERPBRIDGE_ERP_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("ERPBRIDGE_ERP_PASSWORD", "from-env")
    with pytest.raises(
        InvalidSettings, match="ERPBRIDGE_ERP_PASSWORD_FILE and ERPBRIDGE_ERP_PASSWORD"
    ):
        load_settings()


def test_invalid_values_are_named_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERPBRIDGE_PARTITIONS", "zero")
    monkeypatch.setenv("ERPBRIDGE_WEB_PORT", "70000")
    monkeypatch.setenv("ERPBRIDGE_ERP_RATE_LIMITS", '{"tryton": {"rate": 0, "burst": 1}}')
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    lines = str(raised.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("ERPBRIDGE_PARTITIONS='zero': Input should be a valid integer")
    assert lines[1].startswith("ERPBRIDGE_WEB_PORT='70000': Input should be less than or equal")
    assert lines[2] == "ERPBRIDGE_ERP_RATE_LIMITS at tryton.rate=0: Input should be greater than 0"


def test_json_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERPBRIDGE_TOPIC_PARTITIONS", "{oops")
    with pytest.raises(
        InvalidSettings, match=r"^ERPBRIDGE_TOPIC_PARTITIONS='\{oops': not valid JSON"
    ):
        load_settings()


def test_worker_with_invalid_setting_stops_naming_it(nothing_starts: None) -> None:
    result = run(
        ["worker"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "ERPBRIDGE_PARTITIONS": "0"}
    )
    assert result.exit_code != 0
    assert "ERPBRIDGE_PARTITIONS='0': Input should be greater than or equal to 1" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ERPBRIDGE_ERP_PASSWORD": "pw"}, "ERPBRIDGE_ERP_URL is not set"),
        ({"ERPBRIDGE_ERP_URL": "http://erp/db/rpc/"}, "ERPBRIDGE_ERP_PASSWORD is not set"),
        (
            {"ERPBRIDGE_ERP_URL": "http://erp/db/rpc/", "ERPBRIDGE_ERP_PASSWORD_FILE": "/no/such"},
            "ERPBRIDGE_ERP_PASSWORD_FILE='/no/such': cannot read the file",
        ),
        ({"ERPBRIDGE_ERP_TIMEOUT_SECONDS": "-1"}, "ERPBRIDGE_ERP_TIMEOUT_SECONDS='-1'"),
    ],
)
def test_connector_with_missing_or_invalid_setting_stops_naming_it(
    nothing_starts: None, env: dict[str, str | None], named: str
) -> None:
    result = run(["connector", "erp"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env})
    assert result.exit_code != 0
    assert named in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        (
            {"ERPBRIDGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            [
                "ERPBRIDGE_KAFKA_SASL_USERNAME must be set with SASL_SSL",
                "ERPBRIDGE_KAFKA_SASL_PASSWORD must be set with SASL_SSL",
            ],
        ),
        (
            {"ERPBRIDGE_KAFKA_SECURITY_PROTOCOL": "SSL", "ERPBRIDGE_KAFKA_SSL_CERT_FILE": "{pem}"},
            [
                "ERPBRIDGE_KAFKA_SSL_CERT_FILE and ERPBRIDGE_KAFKA_SSL_KEY_FILE go together "
                "(a client certificate and its key); only one is set"
            ],
        ),
        (
            {"ERPBRIDGE_KAFKA_SSL_CA_FILE": "{pem}", "ERPBRIDGE_KAFKA_SASL_USERNAME": "u"},
            [
                "ERPBRIDGE_KAFKA_SASL_USERNAME is set but PLAINTEXT does not use SASL",
                "ERPBRIDGE_KAFKA_SSL_CA_FILE is set but PLAINTEXT does not use TLS",
            ],
        ),
        (
            {
                "ERPBRIDGE_KAFKA_SECURITY_PROTOCOL": "SSL",
                "ERPBRIDGE_KAFKA_SSL_KEY_FILE": "{absent}",
            },
            ["ERPBRIDGE_KAFKA_SSL_KEY_FILE='{absent}': Path does not point to a file"],
        ),
        (
            {"ERPBRIDGE_KAFKA_SECURITY_PROTOCOL": "TLS"},
            [
                "ERPBRIDGE_KAFKA_SECURITY_PROTOCOL='TLS': Input should be 'PLAINTEXT', 'SSL', "
                "'SASL_PLAINTEXT' or 'SASL_SSL'"
            ],
        ),
    ],
)
def test_kafka_security_settings_that_cannot_work_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], lines: list[str]
) -> None:
    pem = tmp_path / "file.pem"
    pem.write_text("PEM\n")
    paths = {"pem": str(pem), "absent": str(tmp_path / "absent.pem")}
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(**paths))
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    assert raised.value.problems == [line.format(**paths) for line in lines]


def test_kafka_password_from_a_file_and_never_in_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("kafka-s3cret\n")
    monkeypatch.setenv("ERPBRIDGE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("ERPBRIDGE_KAFKA_SASL_USERNAME", "erpbridge")
    monkeypatch.setenv("ERPBRIDGE_KAFKA_SASL_PASSWORD_FILE", str(secret))
    settings = load_settings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "kafka-s3cret"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"

    monkeypatch.setenv("ERPBRIDGE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    assert "ERPBRIDGE_KAFKA_SASL_PASSWORD is set but PLAINTEXT" in str(raised.value)
    assert "kafka-s3cret" not in str(raised.value)


def test_every_setting_is_documented_in_the_readme_with_its_default() -> None:
    """The README's configuration table names every variable a process reads."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for name in Settings.model_fields:
        variable = f"`{env_variable(name)}`"
        (row,) = [r for r in rows if variable in r.split(" | ")[0]] or [None]
        assert row is not None, f"{env_variable(name)} is not in the README's settings table"
        assert row.split(" | ")[1].strip(), f"{env_variable(name)} has no default in the README"


def test_webhook_secrets_from_a_file_per_route_and_never_in_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"main": ["shpss_new", "shpss_old"], "eu": "A1B2"}\n')
    monkeypatch.setenv("ERPBRIDGE_WEBHOOK_SECRETS_FILE", str(secrets))
    settings = load_settings()
    assert settings.webhook_secrets_of("main") == (b"shpss_new", b"shpss_old")
    assert settings.webhook_secrets_of("eu") == (b"A1B2",)
    assert settings.webhook_secrets_of("other") == ()

    secrets.write_text('{"main": "shpss_new", "eu": 7}\n')
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    assert "ERPBRIDGE_WEBHOOK_SECRETS: Value error, must be a JSON object" in str(raised.value)
    assert "shpss_new" not in str(raised.value)


def test_webhook_routes_name_their_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERPBRIDGE_WEBHOOK_ROUTES", '{"main": {"provider": "magento"}}')
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    assert "ERPBRIDGE_WEBHOOK_ROUTES at main.provider='magento'" in str(raised.value)

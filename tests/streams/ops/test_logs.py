"""JSON log lines: their fields, bound context, and no secret in any of them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from streams.ops.logs import REDACTED, configure_logging
from streams.ops.settings import Settings

PASSWORD = "Tr0ub4dor&3"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines()]


def test_lines_carry_level_logger_event_and_bound_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    with structlog.contextvars.bound_contextvars(command_id="c-1", order_id="o-1"):
        logging.getLogger("connectors.erp.sink").warning("sent %s", "CreateSalesOrder")
        structlog.get_logger("streams.topology.app").info("applied", sku="SKU-1")
    logging.getLogger("streams.topology.app").debug("below the level")
    logging.getLogger("streams.topology.app").info("outside")
    first, second, third = lines(capsys.readouterr().err)
    assert first["event"] == "sent CreateSalesOrder"
    assert first["level"] == "warning"
    assert first["logger"] == "connectors.erp.sink"
    assert (first["command_id"], first["order_id"]) == ("c-1", "o-1")
    assert first["timestamp"].endswith("Z")
    assert second == {
        **second,
        "event": "applied",
        "level": "info",
        "logger": "streams.topology.app",
    }
    assert (second["sku"], second["command_id"]) == ("SKU-1", "c-1")
    assert third["event"] == "outside"
    assert "command_id" not in third


def test_a_configured_password_never_appears(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", settings=Settings(erp_password=SecretStr(PASSWORD)))
    log = logging.getLogger("connectors.erp.tryton")
    log.info("logging in with %s", PASSWORD)
    log.info("calling", extra={"url": f"http://admin:{PASSWORD}@erp:8000/db/rpc/"})
    log.info("login", extra={"password": "some other secret", "auth": {"token": "abc"}})
    try:
        raise PermissionError(f"ERP refused password {PASSWORD!r}")
    except PermissionError:
        log.exception("login failed")
    structlog.get_logger("streams").error("retry", url=f"http://admin:{PASSWORD}@host")
    captured = capsys.readouterr()
    output = captured.err + captured.out
    assert PASSWORD not in output
    assert "some other secret" not in output
    parsed = lines(captured.err)
    assert len(parsed) == 5
    assert parsed[0]["event"] == f"logging in with {REDACTED}"
    assert parsed[1]["url"] == f"http://admin:{REDACTED}@erp:8000/db/rpc/"
    assert parsed[2]["password"] == REDACTED
    assert parsed[2]["auth"] == {"token": REDACTED}
    assert REDACTED in parsed[3]["exception"]
    assert parsed[4]["url"] == f"http://admin:{REDACTED}@host"


def test_each_webhook_secret_and_admin_token_never_appears(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        webhook_routes={"main": {"provider": "shopify"}, "eu": {"provider": "adyen"}},
        webhook_secrets=SecretStr('{"main": ["shpss_new", "shpss_old"], "eu": ["A1B2C3"]}'),
        webhook_admin_tokens=SecretStr('{"main": "shpat_token"}'),
    )
    configure_logging("info", settings=settings)
    logging.getLogger("connectors.webhooks").warning(
        "secrets shpss_new shpss_old A1B2C3 shpat_token"
    )
    captured = capsys.readouterr()
    assert lines(captured.err)[0]["event"] == f"secrets {REDACTED} {REDACTED} {REDACTED} {REDACTED}"

"""Logs as one JSON object per line on stderr, for the standard library's loggers and
structlog's alike, with context variables merged in and secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from streams.ops.settings import Settings, secret_fields

REDACTED = "[REDACTED]"
SENSITIVE_KEY = re.compile(r"passw(or)?d|secret|token|authorization|api[_-]?key", re.IGNORECASE)
"""Keys whose values are secret whatever they hold."""


class Redactor:
    """Replaces each known secret, and the value of any sensitive key, with [REDACTED]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {key: self.item(str(key), item) for key, item in value.items()}
        if isinstance(value, list | tuple | set):
            return [self.value(item) for item in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        # Anything else is rendered as text anyway: redact that text.
        return self.text(str(value))

    def item(self, key: str, value: Any) -> Any:
        return REDACTED if SENSITIVE_KEY.search(key) else self.value(value)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self.item(key, value) for key, value in event_dict.items()}


def secrets_of(settings: Settings) -> list[str]:
    values = (getattr(settings, name) for name in secret_fields())
    whole = [value.get_secret_value() for value in values if value is not None]
    # The webhook secrets and tokens are JSON of several: each one alone is secret too.
    each = [
        secret.decode()
        for route in settings.webhook_routes
        for secret in settings.webhook_secrets_of(route)
    ] + [
        token for route in settings.webhook_routes if (token := settings.webhook_admin_token(route))
    ]
    return whole + each


def configure_logging(
    level: str | int, *, json: bool = True, settings: Settings | None = None
) -> None:
    """Route the root logger and structlog through one stderr handler at `level`.

    Bind context for a stretch of work with structlog.contextvars.bound_contextvars; every
    line logged meanwhile, by either kind of logger, carries it. Secret values of `settings`
    never appear in a line.
    """
    redactor = Redactor(secrets_of(settings) if settings is not None else ())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )

    def render(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        # Again on the finished line: an object's repr may hold a secret the dict hid.
        return redactor.text(str(renderer(logger, method_name, event_dict)))

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            render,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )

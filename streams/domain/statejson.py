"""JSON for internal messages and pending commands, keeping Decimals and datetimes exact.

State was stored this way too up to 9b01a66; streams.domain.statecodec still reads it."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

_DECIMAL = "$dec"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_TIME = "$ms"


def tag(value: Any) -> Any:
    """A JSON-ready copy where Decimals and datetimes become one-key tagged objects."""
    if isinstance(value, dict):
        return {k: tag(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tag(v) for v in value]
    if isinstance(value, Decimal):
        return {_DECIMAL: str(value)}
    if isinstance(value, datetime):
        return {_TIME: millis(value)}
    return value


def millis(value: datetime) -> int:
    """Milliseconds since the epoch, in integers (a float timestamp can be 1 ms off)."""
    return (value - _EPOCH) // _MS


def untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            if _DECIMAL in value:
                return Decimal(value[_DECIMAL])
            if _TIME in value:
                return _EPOCH + value[_TIME] * _MS
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


def plain(value: Any) -> Any:
    """A dataclass (or nesting of them) as tagged JSON: sets sorted, enums by value."""
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return tag(value)

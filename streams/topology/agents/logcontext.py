"""What a log line about a record carries: where the record is from and the key it is
about (order_id, sku or command_id), so one order's or SKU's story can be read out of the
worker's JSON logs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from structlog.contextvars import bound_contextvars

from streams.contracts.topics import spec


@contextmanager
def about_record(name: str, partition: int, offset: int, key: bytes | None) -> Iterator[None]:
    """Binds the record's topic (logical `name`), partition, offset and its key under the
    topic's key field. The key is the record's as published, even when it turns out wrong."""
    text = (key or b"").decode(errors="replace")
    with bound_contextvars(
        topic=name, partition=partition, offset=offset, **{spec(name).key: text}
    ):
        yield

"""What a storefront adapter is: one platform's way of setting stock levels.

An adapter never talks to Kafka and never waits to retry: it sets a batch of levels and
says per level what became of it, or raises `StorefrontUnavailable` when the platform did
not answer the batch usefully (throttled, down, timed out), with its Retry-After, or
`StorefrontRefused` when it refused the request as a whole. The sink
(connectors.storefront.sink) decides when to retry and what is published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from connectors.storefront.levels import StockLevel


class Status(Enum):
    SET = "SET"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Outcome:
    level: StockLevel
    status: Status
    message: str | None = None


class StorefrontUnavailable(Exception):
    """No level of the batch was set, and a retry may set them."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorefrontRefused(Exception):
    """The platform refused the whole request (credentials, a missing route): no level of
    the batch was set, and the same request will not succeed."""


class StockAdapter(Protocol):
    provider: str

    def set_levels(
        self, levels: Sequence[StockLevel], previous: Mapping[str, int]
    ) -> list[Outcome]:
        """One outcome per level, in order; the levels are of one route. `previous` holds
        the level the sink last set per level's key, for platforms that compare and set."""
        ...

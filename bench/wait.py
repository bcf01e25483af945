"""Waiting on conditions with deadlines: the bench never sleeps blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from bench.cluster import BenchError

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll `condition` until it returns something truthy and return that; BenchError naming
    `what` at the deadline. Exceptions from `condition` propagate."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

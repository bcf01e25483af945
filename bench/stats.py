"""Small statistics without numpy: percentiles, medians, and crossing times of a sampled counter."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `fraction` of all at or below it."""
    if not values:
        raise ValueError("no values")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The middle value; the mean of the two middle ones for an even count."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def crossing_time(samples: Sequence[tuple[float, int]], level: float) -> float | None:
    """When a non-decreasing counter sampled as (time, value) first reached `level`,
    interpolated linearly between the two samples around it; None if it never did."""
    previous: tuple[float, int] | None = None
    for at, value in samples:
        if value >= level:
            if previous is None or value == previous[1]:
                return at
            before_at, before = previous
            return before_at + (at - before_at) * (level - before) / (value - before)
        previous = (at, value)
    return None


def busiest_window(timestamps_ms: Sequence[int], width_ms: int) -> int:
    """The most of the sorted `timestamps_ms` in any window [t, t + width_ms)."""
    most, start = 0, 0
    for end, t in enumerate(timestamps_ms):
        while t - timestamps_ms[start] >= width_ms:
            start += 1
        most = max(most, end - start + 1)
    return most

"""The time limits the rules work with, built from Settings by the agents and the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

HOUR_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class Policy:
    dedup_ttl_ms: int = 7 * 24 * HOUR_MS
    """How long event ids (and closed reservations) are remembered for de-duplication."""
    max_wait_ms: int = 6 * HOUR_MS
    """How long an event that cannot apply yet waits before it is dead-lettered."""
    snapshot_window_ms: int = 24 * HOUR_MS
    """How late a stock snapshot may be relative to the newest time its warehouse's feed told."""
    max_movements: int = 1000
    """Movements a warehouse keeps for late snapshots while its feed is silent."""
    approval_thresholds: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    """Customer group -> currency -> the order total above which an order waits for approval;
    a group or currency not named needs none."""
    po_required_groups: frozenset[str] = frozenset()
    """Customer groups whose orders must carry a purchase-order number."""


PRUNE_EVERY_MS = HOUR_MS
"""Pruning runs at most this often per key, so memory stays within the TTL plus this."""


def due(pruned_ms: int, now_ms: int) -> bool:
    return now_ms - pruned_ms >= PRUNE_EVERY_MS


def prune_seen(seen: dict[str, int], now_ms: int, ttl_ms: int) -> None:
    """Forget event ids first seen more than `ttl_ms` before `now_ms`."""
    cutoff = now_ms - ttl_ms
    stale = [event_id for event_id, at in seen.items() if at < cutoff]
    for event_id in stale:
        del seen[event_id]

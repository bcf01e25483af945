"""Warehouse routing: which warehouse reserves an order line.

Order of preference: the warehouses configured for the order's channel, then those for its
ship-to area (most specific first: "US-CA" before "US"), then every other warehouse in the
configured order. The first warehouse that can cover the whole line takes it; otherwise the
line is split across warehouses in that order (if splitting is allowed) and whatever no
warehouse can cover is backordered. A line is never reserved beyond what is available.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RoutingConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Destination:
    channel: str
    country: str
    region: str | None


@dataclass(frozen=True, slots=True)
class LineAllocation:
    reserved: dict[str, int]
    backordered: int


@dataclass(frozen=True)
class RoutingRules:
    warehouses: tuple[str, ...]
    by_channel: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    by_area: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Keys are "CC-REGION" or "CC" (ISO 3166)."""
    split_lines: bool = True
    _preferences: dict[Destination, list[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """`preference` per destination seen: rules never change, and working it out anew was a
    tenth of a reservation's cost."""

    def __post_init__(self) -> None:
        if not self.warehouses:
            raise RoutingConfigError("routing rules name no warehouses")
        known = set(self.warehouses)
        for section, rules in (("by_channel", self.by_channel), ("by_area", self.by_area)):
            for name, preferred in rules.items():
                unknown = [w for w in preferred if w not in known]
                if unknown:
                    raise RoutingConfigError(
                        f"{section}[{name!r}] names unknown warehouses {unknown}; "
                        f"known: {list(self.warehouses)}"
                    )

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "routing rules") -> RoutingRules:
        try:
            split_lines = data.get("split_lines", True)
            if not isinstance(split_lines, bool):
                raise RoutingConfigError(f"split_lines must be true or false, not {split_lines!r}")
            return cls(
                warehouses=_names(data["warehouses"], "warehouses"),
                by_channel={
                    k: _names(v, f"by_channel[{k!r}]")
                    for k, v in data.get("by_channel", {}).items()
                },
                by_area={
                    k: _names(v, f"by_area[{k!r}]") for k, v in data.get("by_area", {}).items()
                },
                split_lines=split_lines,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise RoutingConfigError(f"{where}: malformed ({exc!r})") from None
        except RoutingConfigError as exc:
            raise RoutingConfigError(f"{where}: {exc}") from None

    @classmethod
    def from_file(cls, path: Path) -> RoutingRules:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RoutingConfigError(f"cannot read routing rules {path}: {exc}") from None
        return cls.from_json(data, str(path))

    def preference(self, destination: Destination) -> list[str]:
        ordered = self._preferences.get(destination)
        if ordered is None:
            ordered = self._preferences[destination] = self._ordered(destination)
        return ordered

    def _ordered(self, destination: Destination) -> list[str]:
        ordered: list[str] = []
        areas = [destination.country]
        if destination.region:
            areas.insert(0, f"{destination.country}-{destination.region}")
        for preferred in (
            self.by_channel.get(destination.channel, ()),
            *(self.by_area.get(area, ()) for area in areas),
            self.warehouses,
        ):
            ordered += [w for w in preferred if w not in ordered]
        return ordered

    def allocate(
        self, quantity: int, available: Mapping[str, int], destination: Destination
    ) -> LineAllocation:
        candidates = self.preference(destination)
        for warehouse in candidates:
            if available.get(warehouse, 0) >= quantity:
                return LineAllocation({warehouse: quantity}, 0)
        reserved: dict[str, int] = {}
        remaining = quantity
        if self.split_lines:
            for warehouse in candidates:
                take = min(max(available.get(warehouse, 0), 0), remaining)
                if take > 0:
                    reserved[warehouse] = take
                    remaining -= take
        else:
            best = max(candidates, key=lambda w: available.get(w, 0))
            take = min(max(available.get(best, 0), 0), remaining)
            if take > 0:
                reserved[best] = take
                remaining -= take
        return LineAllocation(reserved, remaining)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RoutingConfigError(f"{where} must be a list of warehouse ids, not {value!r}")
    return tuple(value)

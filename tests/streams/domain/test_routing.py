"""Warehouse routing: preference order, whole-line vs split allocation, backorders, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.routing import Destination, LineAllocation, RoutingConfigError, RoutingRules
from tests.streams.domain.builders import CALIFORNIA, EAST, EU, NEW_YORK, RULES, WAREHOUSES, WEST

NO_SPLIT = RoutingRules(WAREHOUSES, by_area=RULES.by_area, split_lines=False)

# --- preference order ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        # "US-CA" (most specific) first, then "US", then the rest in config order.
        (Destination("web", "US", "CA"), [WEST, EAST, EU]),
        # No rule for "US-NY": the country's rule applies.
        (Destination("web", "US", "NY"), [EAST, WEST, EU]),
        (Destination("web", "US", None), [EAST, WEST, EU]),
        (Destination("web", "DE", "BY"), [EU, EAST, WEST]),
        # No rule for the area at all: config order.
        (Destination("web", "JP", "13"), [EAST, WEST, EU]),
    ],
)
def test_preference_goes_from_the_most_specific_area_to_config_order(
    destination: Destination, expected: list[str]
) -> None:
    assert RULES.preference(destination) == expected


def test_channel_comes_before_the_area() -> None:
    rules = RoutingRules(
        WAREHOUSES,
        by_channel={"b2b": (EU,)},
        by_area={"US-CA": (WEST,), "US": (EAST, WEST)},
    )
    assert rules.preference(Destination("b2b", "US", "CA")) == [EU, WEST, EAST]
    # Other channels are unaffected.
    assert rules.preference(Destination("web", "US", "CA")) == [WEST, EAST, EU]


def test_preference_names_each_warehouse_once() -> None:
    rules = RoutingRules(
        WAREHOUSES, by_channel={"web": (WEST, EAST)}, by_area={"US-CA": (WEST,), "US": (EAST,)}
    )
    assert rules.preference(CALIFORNIA) == [WEST, EAST, EU]


# --- whole lines -----------------------------------------------------------------------------


def test_the_most_preferred_warehouse_that_covers_the_line_takes_it_whole() -> None:
    allocation = RULES.allocate(5, {WEST: 5, EAST: 100, EU: 100}, CALIFORNIA)
    assert allocation == LineAllocation({WEST: 5}, 0)


def test_a_whole_line_beats_a_split_at_more_preferred_warehouses() -> None:
    # West is preferred for California but holds only 3; east covers all 5, so no split.
    allocation = RULES.allocate(5, {WEST: 3, EAST: 10, EU: 100}, CALIFORNIA)
    assert allocation == LineAllocation({EAST: 5}, 0)


def test_whole_line_falls_back_to_warehouses_outside_the_area() -> None:
    allocation = RULES.allocate(4, {WEST: 1, EAST: 2, EU: 4}, NEW_YORK)
    assert allocation == LineAllocation({EU: 4}, 0)


def test_warehouses_missing_from_availability_count_as_empty() -> None:
    assert RULES.allocate(2, {EU: 2}, CALIFORNIA) == LineAllocation({EU: 2}, 0)
    assert RULES.allocate(2, {}, CALIFORNIA) == LineAllocation({}, 2)


# --- splitting -------------------------------------------------------------------------------


def test_split_takes_from_warehouses_in_preference_order_and_backorders_the_rest() -> None:
    allocation = RULES.allocate(10, {WEST: 4, EAST: 3, EU: 2}, CALIFORNIA)
    assert allocation == LineAllocation({WEST: 4, EAST: 3, EU: 2}, 1)
    assert list(allocation.reserved) == [WEST, EAST, EU]


def test_split_stops_once_the_line_is_covered() -> None:
    allocation = RULES.allocate(6, {WEST: 4, EAST: 5, EU: 5}, NEW_YORK)
    # Preference for New York is east, west, EU: east covers 5, west the last 1.
    assert allocation == LineAllocation({EAST: 5, WEST: 1}, 0)


def test_nothing_available_backorders_the_whole_line() -> None:
    assert RULES.allocate(3, {WEST: 0, EAST: 0, EU: 0}, CALIFORNIA) == LineAllocation({}, 3)


# --- no split --------------------------------------------------------------------------------


def test_without_splitting_the_best_warehouse_takes_what_it_has_and_the_rest_is_backordered() -> (
    None
):
    allocation = NO_SPLIT.allocate(10, {WEST: 4, EAST: 7, EU: 2}, CALIFORNIA)
    assert allocation == LineAllocation({EAST: 7}, 3)


def test_without_splitting_a_covering_warehouse_still_takes_the_line_whole() -> None:
    assert NO_SPLIT.allocate(5, {WEST: 5, EAST: 9, EU: 9}, CALIFORNIA) == LineAllocation(
        {WEST: 5}, 0
    )


def test_without_splitting_ties_go_to_the_preferred_warehouse() -> None:
    assert NO_SPLIT.allocate(10, {WEST: 5, EAST: 5, EU: 5}, CALIFORNIA) == LineAllocation(
        {WEST: 5}, 5
    )
    assert NO_SPLIT.allocate(10, {WEST: 5, EAST: 5, EU: 5}, NEW_YORK) == LineAllocation(
        {EAST: 5}, 5
    )


# --- never beyond what is available ----------------------------------------------------------


def test_negative_availability_is_never_reserved_from() -> None:
    # An oversold warehouse (available < 0) gives nothing and does not reduce the others.
    allocation = RULES.allocate(10, {WEST: -3, EAST: 2, EU: 0}, CALIFORNIA)
    assert allocation == LineAllocation({EAST: 2}, 8)


def test_without_splitting_all_negative_backorders_everything() -> None:
    allocation = NO_SPLIT.allocate(4, {WEST: -1, EAST: -5, EU: -2}, CALIFORNIA)
    assert allocation == LineAllocation({}, 4)


availability = st.fixed_dictionaries({w: st.integers(-20, 20) for w in WAREHOUSES})
destinations = st.sampled_from([CALIFORNIA, NEW_YORK, Destination("web", "DE", None)])


@settings(max_examples=200, deadline=None)
@given(
    quantity=st.integers(1, 40),
    available=availability,
    destination=destinations,
    split=st.booleans(),
)
def test_allocation_accounts_for_every_unit_and_never_exceeds_availability(
    quantity: int, available: dict[str, int], destination: Destination, split: bool
) -> None:
    rules = RULES if split else NO_SPLIT
    allocation = rules.allocate(quantity, available, destination)
    assert sum(allocation.reserved.values()) + allocation.backordered == quantity
    assert allocation.backordered >= 0
    for warehouse, reserved in allocation.reserved.items():
        assert 0 < reserved <= available[warehouse]
    if not split:
        assert len(allocation.reserved) <= 1
    # Backorders only when the warehouses together (split) or the best one alone cannot cover.
    usable = [max(a, 0) for a in available.values()]
    coverable = sum(usable) if split else max(usable)
    assert allocation.backordered == max(quantity - coverable, 0)


# --- configuration ---------------------------------------------------------------------------


def test_unknown_warehouse_in_an_area_rule_is_named() -> None:
    with pytest.raises(RoutingConfigError) as info:
        RoutingRules.from_json(
            {"warehouses": [EAST, WEST], "by_area": {"US-CA": [WEST, "WH-MARS"]}}, "rules.json"
        )
    message = str(info.value)
    assert message.startswith("rules.json: ")
    assert "by_area['US-CA']" in message
    assert "WH-MARS" in message
    assert EAST in message and WEST in message  # the known warehouses


def test_unknown_warehouse_in_a_channel_rule_is_named() -> None:
    with pytest.raises(RoutingConfigError, match=r"by_channel\['b2b'\].*WH-MARS"):
        RoutingRules(WAREHOUSES, by_channel={"b2b": ("WH-MARS",)})


def test_no_warehouses_is_an_error() -> None:
    with pytest.raises(RoutingConfigError, match="no warehouses"):
        RoutingRules(())
    with pytest.raises(RoutingConfigError, match=r"^r\.json: routing rules name no warehouses"):
        RoutingRules.from_json({"warehouses": []}, "r.json")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"by_area": {}}, "warehouses"),  # missing
        ({"warehouses": [EAST], "by_area": ["US"]}, "list"),
        ({"warehouses": [EAST], "by_channel": None}, "NoneType"),
        (["WH-EAST"], "list"),
    ],
)
def test_malformed_rules_are_an_error_naming_the_problem(data: object, named: str) -> None:
    with pytest.raises(RoutingConfigError) as info:
        RoutingRules.from_json(data, "cfg.json")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("cfg.json: malformed")
    assert named in message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"warehouses": 3}, "warehouses must be a list of warehouse ids, not 3"),
        ({"warehouses": [EAST, 3]}, "warehouses must be a list of warehouse ids"),
        (
            {"warehouses": [EAST], "by_channel": {"web": EAST}},
            "by_channel['web'] must be a list of warehouse ids",
        ),
        (
            {"warehouses": [EAST], "by_area": {"US": [1]}},
            "by_area['US'] must be a list of warehouse ids, not [1]",
        ),
        ({"warehouses": [EAST], "split_lines": 0}, "split_lines must be true or false, not 0"),
        ({"warehouses": [EAST], "split_lines": None}, "split_lines must be true or false"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_naming_the_field(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(RoutingConfigError) as info:
        RoutingRules.from_json(data, "cfg.json")
    assert str(info.value).startswith(f"cfg.json: {message}")


def test_a_string_where_the_warehouse_list_belongs_is_malformed() -> None:
    # A bare string is iterable, but "WH-EAST" is one warehouse, not seven one-letter ones.
    with pytest.raises(RoutingConfigError, match=r"^cfg\.json: warehouses must be a list"):
        RoutingRules.from_json({"warehouses": "WH-EAST"}, "cfg.json")


def test_a_string_split_lines_flag_is_malformed() -> None:
    # bool("false") is True: a quoted flag must not silently mean the opposite.
    with pytest.raises(RoutingConfigError, match=r"^cfg\.json: split_lines must be true or false"):
        RoutingRules.from_json({"warehouses": [EAST], "split_lines": "false"}, "cfg.json")


def test_from_json_defaults() -> None:
    rules = RoutingRules.from_json({"warehouses": [EAST, WEST]})
    assert rules.split_lines is True
    assert rules.by_area == {} and rules.by_channel == {}
    assert rules.preference(CALIFORNIA) == [EAST, WEST]


def test_from_file_reads_the_shipped_config(configured_rules: RoutingRules) -> None:
    assert configured_rules.warehouses == (EAST, WEST, EU)
    assert configured_rules.split_lines is True
    assert configured_rules.by_channel == {}
    assert configured_rules.by_area["US-CA"] == (WEST,)
    assert configured_rules.by_area["US"] == (EAST, WEST)
    assert configured_rules.preference(CALIFORNIA) == [WEST, EAST, EU]
    assert configured_rules.preference(NEW_YORK) == [EAST, WEST, EU]
    assert configured_rules.preference(Destination("web", "FR", None)) == [EU, EAST, WEST]


def test_from_file_that_is_missing_or_not_json_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(RoutingConfigError, match=f"cannot read routing rules {missing}"):
        RoutingRules.from_file(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(RoutingConfigError, match=f"cannot read routing rules {broken}"):
        RoutingRules.from_file(broken)


def test_from_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text(json.dumps({"warehouses": [EAST], "by_area": {"US": ["WH-WEST"]}}))
    with pytest.raises(RoutingConfigError) as info:
        RoutingRules.from_file(path)
    assert str(info.value).startswith(f"{path}: by_area['US'] names unknown warehouses")

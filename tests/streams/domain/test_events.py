"""Times as the rules keep them: exact epoch milliseconds, in events and in stored state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain import statejson
from streams.domain.events import to_ms
from tests.streams.domain.builders import T0, to_datetime

# Times where the float route, int(value.timestamp() * 1000), comes out 1 ms short.
FLOAT_OFF_BY_ONE = [
    (datetime(1970, 4, 8, 20, 23, 36, 780000, tzinfo=UTC), 8_454_216_780),
    (datetime(1987, 1, 5, 21, 10, 31, 624000, tzinfo=UTC), 536_879_431_624),
    (datetime(2004, 11, 2, 20, 8, 40, 452000, tzinfo=UTC), 1_099_426_120_452),
]
TIMES = [
    *FLOAT_OFF_BY_ONE,
    (datetime(1970, 1, 1, tzinfo=UTC), 0),
    (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), -1),
    (to_datetime(T0), T0),
]


@pytest.mark.parametrize(("value", "ms"), TIMES)
def test_to_ms_is_exact(value: datetime, ms: int) -> None:
    assert to_ms(value) == ms


@pytest.mark.parametrize(("value", "ms"), FLOAT_OFF_BY_ONE)
def test_the_examples_are_ones_float_arithmetic_gets_wrong(value: datetime, ms: int) -> None:
    # Guards the examples above: if they stop exercising the rounding, they prove nothing.
    assert int(value.timestamp() * 1000) == ms - 1


def test_to_ms_passes_milliseconds_through_and_counts_offsets() -> None:
    assert to_ms(T0) == T0
    berlin = timezone(timedelta(hours=2))
    assert to_ms(datetime(1987, 1, 5, 23, 10, 31, 624000, tzinfo=berlin)) == 536_879_431_624


def test_to_ms_drops_sub_millisecond_digits() -> None:
    assert to_ms(datetime(1987, 1, 5, 21, 10, 31, 624999, tzinfo=UTC)) == 536_879_431_624


@pytest.mark.parametrize(("value", "ms"), TIMES)
def test_statejson_keeps_datetimes_exact(value: datetime, ms: int) -> None:
    tagged = statejson.tag({"as_of": value, "at": [value]})
    assert tagged == {"as_of": {"$ms": ms}, "at": [{"$ms": ms}]}
    restored = statejson.untag(statejson.loads(statejson.dumps(tagged)))
    assert restored == {"as_of": value, "at": [value]}
    assert restored["as_of"].tzinfo is UTC


@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_milliseconds_round_trip_through_datetimes_and_state(ms: int) -> None:
    value = to_datetime(ms)
    assert to_ms(value) == ms
    assert statejson.tag(value) == {"$ms": ms}
    assert statejson.untag(statejson.tag(value)) == value

"""Each partition's records handled in offset order from the commit, holes read again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.topology.cursors import Cursors

P0 = TP("orders", 0)
P1 = TP("orders", 1)


def events(*records: tuple[TP, int]) -> list[Any]:
    return [
        SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset)) for tp, offset in records
    ]


def offsets(taken: list[Any]) -> list[tuple[TP, int]]:
    return [(event.message.tp, event.message.offset) for event in taken]


def started(**starts: int) -> Cursors:
    cursors = Cursors()
    for name, offset in starts.items():
        cursors.start({"p0": P0, "p1": P1}[name], offset)
    return cursors


def test_a_partition_without_a_start_is_unknown_until_started() -> None:
    cursors = started(p0=5)
    assert cursors.unknown(events((P0, 5), (P1, 0), (P1, 1))) == {P1}
    assert cursors.committable(P1) is None


def test_records_in_order_are_handled_and_committable_only_once_confirmed() -> None:
    cursors = started(p0=5, p1=0)
    taken = events((P0, 5), (P1, 0), (P0, 6))
    admitted, holes = cursors.admit(taken)
    assert offsets(admitted) == [(P0, 5), (P1, 0), (P0, 6)]
    assert holes == {}
    assert cursors.committable(P0) == 5
    cursors.handled(admitted)
    assert (cursors.committable(P0), cursors.committable(P1)) == (7, 1)


def test_records_already_handled_are_dropped() -> None:
    cursors = started(p0=5)
    cursors.handled(cursors.admit(events((P0, 5), (P0, 6)))[0])
    admitted, holes = cursors.admit(events((P0, 5), (P0, 6), (P0, 7)))
    assert offsets(admitted) == [(P0, 7)]
    assert holes == {}


def test_a_hole_drops_what_follows_it_and_seeks_back_to_its_first_offset() -> None:
    cursors = started(p0=5, p1=0)
    admitted, holes = cursors.admit(events((P0, 5), (P0, 8), (P1, 0), (P0, 9)))
    assert offsets(admitted) == [(P0, 5), (P1, 0)]
    assert holes == {P0: 6}
    cursors.handled(admitted)
    # Nothing past the hole is committed, whatever Faust acknowledged.
    assert cursors.committable(P0) == 6
    admitted, holes = cursors.admit(events((P0, 6), (P0, 7), (P0, 8)))
    assert offsets(admitted) == [(P0, 6), (P0, 7), (P0, 8)]
    assert holes == {}


def stalled(cursors: Cursors, highwaters: dict[TP, int]) -> dict[TP, int]:
    return cursors.look(highwaters, set())[0]


def unstarted(cursors: Cursors, waiting: set[TP]) -> set[TP]:
    return cursors.look({}, waiting)[1]


def test_a_partition_behind_its_high_watermark_that_did_not_move_is_stalled() -> None:
    cursors = started(p0=5, p1=0)
    highwaters = {P0: 7, P1: 0}
    assert stalled(cursors, highwaters) == {}, "the first look only notes where each is"
    assert stalled(cursors, highwaters) == {P0: 5}
    cursors.handled(cursors.admit(events((P0, 5), (P0, 6)))[0])
    assert stalled(cursors, highwaters) == {}, "it moved"
    assert stalled(cursors, highwaters) == {}, "caught up"


def test_a_partition_moving_or_with_records_in_flight_is_not_stalled() -> None:
    cursors = started(p0=5)
    highwaters = {P0: 9}
    stalled(cursors, highwaters)
    cursors.handled(cursors.admit(events((P0, 5)))[0])
    assert stalled(cursors, highwaters) == {}, "it moved since the last look"
    in_flight, _ = cursors.admit(events((P0, 6)))
    assert stalled(cursors, highwaters) == {}
    assert stalled(cursors, highwaters) == {}, "its batch is not confirmed yet"
    cursors.handled(in_flight)


def test_nothing_is_stalled_or_unstarted_while_other_partitions_take_records() -> None:
    """A backlog: Faust feeds P1's records for looks on end while P0's and P2's wait."""
    p2 = TP("orders", 2)
    cursors = started(p0=5, p1=0)
    highwaters = {P0: 9, P1: 1000}
    assert cursors.look(highwaters, {p2}) == ({}, set())
    for offset in range(0, 30, 10):
        cursors.handled(cursors.admit(events(*((P1, offset + n) for n in range(10))))[0])
        assert cursors.look(highwaters, {p2}) == ({}, set()), "P1 took records: not idle"
    assert cursors.look(highwaters, {p2}) == ({P0: 5, P1: 30}, {p2}), "idle, left behind"


def test_forgetting_starts_every_partition_again_from_the_next_assignment() -> None:
    cursors = started(p0=5)
    cursors.forget()
    assert cursors.unknown(events((P0, 5))) == {P0}
    assert cursors.committable(P0) is None


def test_a_partition_started_already_keeps_its_place() -> None:
    cursors = started(p0=5)
    cursors.handled(cursors.admit(events((P0, 5)))[0])
    cursors.start(P0, 5)
    assert cursors.committable(P0) == 6
    assert offsets(cursors.admit(events((P0, 6)))[0]) == [(P0, 6)]


def test_a_partition_with_records_waiting_that_no_agent_started_is_found_at_two_looks() -> None:
    cursors = started(p0=5)
    assert unstarted(cursors, {P0, P1}) == set(), "the first look only notes it"
    assert unstarted(cursors, {P0, P1}) == {P1}
    cursors.start(P1, 0)
    assert unstarted(cursors, {P0, P1}) == set()
    assert unstarted(cursors, set()) == set()

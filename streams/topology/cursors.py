"""How far the agents have handled each stream partition: the offsets the worker commits.

Faust can deliver a partition's records with holes around a rebalance or a recovery, and
acknowledges what it did not deliver: records fetched in between are dropped from the
queues (faust-streaming issue #596); a record fetched under the previous generation, or
while the flow is paused, is skipped *and* acknowledged; a stale record delivered after a
seek moves the read offset past the records fetched again, which are then dropped. Faust
commits what was acknowledged, so each hole was a lost input.

The input topics have neither compaction nor transaction markers, so a partition's offsets
are contiguous. An agent therefore takes each partition's records strictly in offset
order from where the group committed: a record already handled is dropped, a record past
a hole is dropped and the partition is sought back to the first missing offset. The
worker commits only offsets handled without a hole and whose outputs the broker
confirmed. A hole at a partition's end shows no record past it: a partition that stays
behind its high watermark without moving is sought back too, and so is one with records
waiting that no record of ever reached its agent (`look`), but only while the agents take
nothing at all: with a backlog, Faust feeds some partitions' records long before others'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from faust.types import TP, EventT


@dataclass
class Cursors:
    _next: dict[TP, int] = field(default_factory=dict)
    """The offset each partition's agent takes next."""
    _done: dict[TP, int] = field(default_factory=dict)
    """Below it, every offset is handled and its outputs confirmed: what may be committed."""
    _looked: dict[TP, int] = field(default_factory=dict)
    """Each partition's next offset at the previous `stalled` look."""
    _unstarted: set[TP] = field(default_factory=set)
    """The partitions with records waiting and no start at the previous look."""
    _took: bool = False
    """Whether any partition took a record since the previous look."""

    def unknown(self, events: Iterable[EventT[bytes]]) -> set[TP]:
        """The partitions of `events` with no start offset yet (new since the assignment)."""
        return {event.message.tp for event in events if event.message.tp not in self._next}

    def start(self, tp: TP, offset: int) -> None:
        """`tp` is read from `offset` on: the group's committed offset, or the log's first.
        A partition started already keeps its place."""
        if tp not in self._next:
            self._next[tp] = offset
            self._done[tp] = offset

    def admit(self, events: Sequence[EventT[bytes]]) -> tuple[list[EventT[bytes]], dict[TP, int]]:
        """The events to handle, in arrival order: each partition's next ones without a
        hole. And the partitions to seek back, to the first offset missing."""
        admitted: list[EventT[bytes]] = []
        holes: dict[TP, int] = {}
        expected = self._next
        for event in events:
            tp = event.message.tp
            offset = event.message.offset
            if offset == expected[tp]:
                admitted.append(event)
                expected[tp] = offset + 1
                self._took = True
            elif offset > expected[tp]:
                holes[tp] = expected[tp]
        return admitted, holes

    def handled(self, events: Iterable[EventT[bytes]]) -> None:
        """The admitted `events`' outputs are confirmed: their offsets may be committed."""
        for tp in {event.message.tp for event in events}:
            if tp in self._next:
                self._done[tp] = self._next[tp]

    def committable(self, tp: TP) -> int | None:
        """The offset to commit for `tp`; None if it is not read by an agent (yet)."""
        return self._done.get(tp)

    def look(self, highwaters: dict[TP, int], waiting: set[TP]) -> tuple[dict[TP, int], set[TP]]:
        """Every few seconds: the partitions to seek back, with the offset to seek them to,
        and the partitions to start (then seek back) although no record of them came.

        Sought back: a partition behind its high watermark that took nothing since the
        previous look, with nothing in flight. Started: one with records `waiting` and no
        start, at this look and the previous one. Both only when no partition took anything
        since the previous look either: idle agents with records left behind means Faust
        has dropped them, while with a backlog a partition can wait behind the others'
        records for many looks without a hole (seeking it back then only refetches it).
        """
        idle, self._took = not self._took, False
        stalled = {
            tp: offset
            for tp, offset in self._next.items()
            if idle
            and tp in highwaters
            and highwaters[tp] > offset
            and self._looked.get(tp) == offset
            and self._done[tp] == offset
        }
        self._looked = dict(self._next)
        unstarted = {tp for tp in waiting if tp not in self._next}
        found = unstarted & self._unstarted if idle else set()
        self._unstarted = unstarted
        return stalled, found

    def forget(self) -> None:
        """The group took the partitions back: the next assignment starts from its commits."""
        self._next.clear()
        self._done.clear()
        self._looked.clear()
        self._unstarted.clear()
        self._took = False

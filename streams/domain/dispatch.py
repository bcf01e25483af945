"""Rate-limited dispatch rules, pure Python: the token bucket, the per-target queue with its
priority lanes and coalescing, and which offsets of the topics read are safe to commit.

The service that runs them against Kafka is streams.topology.agents.dispatch.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from streams.domain.commands import Command, Kind, Lane

Clock = Callable[[], float]
"""Seconds, monotonic."""

MAX_ADJUSTMENT_PARTS = 1000
"""Adjustments netted into one command at most: keeps its parts well under Kafka's default
1 MB message size."""

MERGING = frozenset({Kind.ADJUST_INVENTORY, Kind.POST_JOURNAL_ENTRY})
"""Kinds that coalesce while they wait; the others always travel alone."""

_EPSILON = 1e-9
"""Float slack, so 0.9999999999 accumulated tokens count as one."""


class TokenBucket:
    """`rate` tokens a second up to `burst`, both scaled by this worker's share of the limit.

    A send needs one token. A share below one may leave the bucket smaller than a token;
    then a send needs a full bucket and leaves a debt, so the long-run rate still holds.
    """

    def __init__(self, rate: float, burst: int, clock: Clock, share: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._share = share
        self._tokens = 0.0
        self._at = clock()

    @property
    def share(self) -> float:
        return self._share

    @property
    def capacity(self) -> float:
        return self.burst * self._share

    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def resize(self, share: float) -> None:
        """A new share of the limit; tokens are kept (capped), never granted."""
        self._refill()
        self._share = share
        self._tokens = min(self._tokens, self.capacity)

    def delay(self) -> float | None:
        """Seconds until a send may go (0 now); None while the share is zero."""
        self._refill()
        missing = self._needed() - self._tokens
        if missing <= _EPSILON:
            return 0.0
        if self._share <= 0:
            return None
        return missing / (self.rate * self._share)

    def take(self) -> bool:
        """Spend a token if a send may go now."""
        if self.delay() != 0.0:
            return False
        self._tokens -= 1
        return True

    def _needed(self) -> float:
        return min(1.0, self.capacity) if self._share > 0 else 1.0

    def _refill(self) -> None:
        now = self._clock()
        earned = (now - self._at) * self.rate * self._share
        self._tokens = min(self.capacity, self._tokens + earned)
        self._at = now


Partition = tuple[str, int]
"""A topic and one of its partitions: offsets commit in order within one. aiokafka's
TopicPartition is a named tuple of the same two, so either finds the other in a set."""


class Source(NamedTuple):
    """The record a command came from (the pending topic's, or the journal's)."""

    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> Partition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Pending:
    """A command read from the pending topic or the journal, with where and when it was
    written there."""

    command: Command
    source: Source
    queued_ms: int
    value: bytes | None = None
    """Its encoding for the ERP, once made: a command sent alone is encoded only once."""
    record: Any = None
    """The record it came from, for a dead letter."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What goes to the ERP as one call: `command`, standing for every member."""

    command: Command
    members: tuple[Pending, ...]

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(m.source for m in self.members)

    @property
    def saved(self) -> int:
        """ERP calls this one spares."""
        return len(self.members) - 1


@dataclass(slots=True)
class _Waiting:
    members: list[Pending]
    lane: Lane
    open: bool = True
    """Whether later commands may still merge in (not after a failed send put it back)."""
    entries: int = 0
    """Journal entries held, for the batch size."""

    @property
    def kind(self) -> Kind:
        return self.members[0].command.kind


def _adjustment_key(command: Command) -> tuple[str, str]:
    return (command.body["sku"], command.body["warehouse_id"])


class DispatchQueue:
    """Commands for one ERP target waiting for tokens: one FIFO per lane, most urgent first.

    While they wait, AdjustInventory commands for one SKU and warehouse net into one, and
    PostJournalEntry commands batch up to `journal_batch_size` entries into one.
    """

    def __init__(self, journal_batch_size: int) -> None:
        self._journal_batch_size = journal_batch_size
        self._lanes: dict[Lane, deque[_Waiting]] = {lane: deque() for lane in Lane}
        self._adjustments: dict[tuple[str, str], _Waiting] = {}
        self._journal: _Waiting | None = None
        self._held = 0

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    @property
    def held(self) -> int:
        """Pending records held (a merged command holds several)."""
        return self._held

    def push(self, pending: Pending) -> None:
        self._held += 1
        command = pending.command
        if command.kind is Kind.ADJUST_INVENTORY:
            waiting = self._adjustments.get(_adjustment_key(command))
            if waiting is not None and len(waiting.members) < MAX_ADJUSTMENT_PARTS:
                waiting.members.append(pending)
                return
        elif command.kind is Kind.POST_JOURNAL_ENTRY:
            entries = len(command.body["entries"])
            batch = self._journal
            if batch is not None and batch.entries + entries <= self._journal_batch_size:
                batch.members.append(pending)
                batch.entries += entries
                return
        waiting = _Waiting([pending], command.lane)
        self._lanes[waiting.lane].append(waiting)
        self._index(waiting)

    def pop(self) -> Dispatch | None:
        """The most urgent lane's oldest command, merged with whatever joined it."""
        for lane in Lane:
            if self._lanes[lane]:
                waiting = self._lanes[lane].popleft()
                self._unindex(waiting)
                self._held -= len(waiting.members)
                return Dispatch(merge(waiting.members), tuple(waiting.members))
        return None

    def requeue(self, dispatch: Dispatch) -> None:
        """Put back a dispatch whose send failed, first in its lane, as it was merged."""
        waiting = _Waiting(list(dispatch.members), dispatch.command.lane, open=False)
        self._lanes[waiting.lane].appendleft(waiting)
        self._held += len(waiting.members)

    def requeue_apart(self, members: Iterable[Pending]) -> None:
        """Put back `members` first in their lanes, in their order, each to be sent alone."""
        for member in reversed(list(members)):
            waiting = _Waiting([member], member.command.lane, open=False)
            self._lanes[waiting.lane].appendleft(waiting)
            self._held += 1

    def drop(self, partitions: Collection[Partition]) -> int:
        """Forget commands read from `partitions` (revoked: their new owner reads them
        again); returns how many records were dropped."""
        before = self._held
        self._adjustments.clear()
        self._journal = None
        self._held = 0
        for lane, queue in self._lanes.items():
            kept: deque[_Waiting] = deque()
            for waiting in queue:
                members = [m for m in waiting.members if m.source.tp not in partitions]
                if not members:
                    continue
                rebuilt = replace(waiting, members=members)
                kept.append(rebuilt)
                self._held += len(members)
                self._index(rebuilt)
            self._lanes[lane] = kept
        return before - self._held

    def depth(self) -> dict[Lane, int]:
        """ERP calls waiting, per lane."""
        return {lane: len(queue) for lane, queue in self._lanes.items()}

    def oldest_ms(self) -> int | None:
        """When the oldest waiting record was written to the topic it was read from."""
        return min(
            (m.queued_ms for q in self._lanes.values() for w in q for m in w.members), default=None
        )

    def partitions_in(self, lane: Lane) -> set[Partition]:
        """The topic-partitions whose records wait in `lane`."""
        return {m.source.tp for w in self._lanes[lane] for m in w.members}

    def _index(self, waiting: _Waiting) -> None:
        if not waiting.open:
            return
        command = waiting.members[0].command
        if waiting.kind is Kind.ADJUST_INVENTORY:
            self._adjustments[_adjustment_key(command)] = waiting
        elif waiting.kind is Kind.POST_JOURNAL_ENTRY:
            waiting.entries = sum(len(m.command.body["entries"]) for m in waiting.members)
            self._journal = waiting

    def _unindex(self, waiting: _Waiting) -> None:
        if waiting is self._journal:
            self._journal = None
        if waiting.kind is Kind.ADJUST_INVENTORY:
            key = _adjustment_key(waiting.members[0].command)
            if self._adjustments.get(key) is waiting:
                del self._adjustments[key]


def batch_id(command_ids: Iterable[str]) -> str:
    """The id of a merged command: the same members give the same id, in any order."""
    digest = hashlib.sha256("\n".join(sorted(command_ids)).encode()).hexdigest()
    return f"batch/{digest[:16]}"


def merge(members: list[Pending]) -> Command:
    """One command standing for `members` (all of one kind and target); a lone member is
    sent as it is, so its id stays the one a sink may have seen."""
    first = members[0].command
    if len(members) == 1:
        return first
    commands = [m.command for m in members]
    body: dict[str, Any]
    if first.kind is Kind.ADJUST_INVENTORY:
        body = _net_adjustments(commands)
    elif first.kind is Kind.POST_JOURNAL_ENTRY:
        body = {"entries": [entry for c in commands for entry in c.body["entries"]]}
    else:
        raise ValueError(f"{first.kind.value} commands do not merge")
    return Command(
        command_id=batch_id(c.command_id for c in commands),
        kind=first.kind,
        target=first.target,
        created_ms=min(c.created_ms for c in commands),
        dispatch_key=first.dispatch_key,
        body=body,
    )


def _net_adjustments(commands: list[Command]) -> dict[str, Any]:
    # `parts` lets a sink apply only the adjustments it has not applied yet, whatever they
    # merged with before a crash; `delta` is their sum for a sink that applies the whole.
    parts = [
        {
            "command_id": c.command_id,
            "delta": c.body["delta"],
            "reason": c.body["reason"],
            "reference": c.body.get("reference"),
        }
        for c in commands
    ]
    reasons = {p["reason"] for p in parts}
    references = {p["reference"] for p in parts}
    first = commands[0].body
    return {
        "sku": first["sku"],
        "warehouse_id": first["warehouse_id"],
        "delta": sum(p["delta"] for p in parts),
        "reason": reasons.pop() if len(reasons) == 1 else "coalesced",
        "reference": references.pop() if len(references) == 1 else None,
        "parts": parts,
    }


class OffsetTracker:
    """Per topic-partition, the offset it is safe to commit: the first one not done yet.

    Records are `received` in offset order and `done` in any order (sent, dead-lettered);
    a commit never passes a record still waiting.
    """

    def __init__(self) -> None:
        self._waiting: dict[Partition, deque[int]] = {}
        self._done: dict[Partition, set[int]] = {}
        self._next: dict[Partition, int] = {}

    def received(self, source: Source) -> None:
        tp = source.tp
        self._waiting.setdefault(tp, deque()).append(source.offset)
        self._done.setdefault(tp, set())
        self._next[tp] = source.offset + 1

    def done(self, source: Source) -> None:
        waiting = self._waiting.get(source.tp)
        if waiting is None:
            return  # forgotten on revocation
        done = self._done[source.tp]
        done.add(source.offset)
        while waiting and waiting[0] in done:
            done.discard(waiting.popleft())

    def committable(self) -> dict[Partition, int]:
        """Topic-partition -> the offset to commit (the next record to read after a restart)."""
        return {tp: (w[0] if w else self._next[tp]) for tp, w in self._waiting.items()}

    def forget(self, partitions: Iterable[Partition]) -> None:
        for tp in partitions:
            self._waiting.pop(tp, None)
            self._done.pop(tp, None)
            self._next.pop(tp, None)

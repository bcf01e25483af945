"""Every consumed event is accounted for: counted as consumed and as exactly one outcome.

Consumed = applied + duplicate + waiting + dead-lettered, per topic. An event that waited
is counted again when it later applies or is dead-lettered (`Later`), so the events still
waiting are waiting - waiting_applied - waiting_dead_lettered (per worker process).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    WAITING = "waiting"
    DEAD_LETTERED = "dead_lettered"


class Later(Enum):
    """What became of an event that waited."""

    APPLIED = "waiting_applied"
    DEAD_LETTERED = "waiting_dead_lettered"


@dataclass
class TopicAccount:
    consumed: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    later: Counter[Later] = field(default_factory=Counter)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    waiting_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def balanced(self) -> bool:
        return self.consumed == sum(self.outcomes.values())


class EventAccounting:
    def __init__(self) -> None:
        self._topics: dict[str, TopicAccount] = {}

    def _account(self, topic: str) -> TopicAccount:
        return self._topics.setdefault(topic, TopicAccount())

    def consumed(self, topic: str) -> None:
        self._account(topic).consumed += 1

    def outcome(self, topic: str, outcome: Outcome, reason: str | None = None) -> None:
        account = self._account(topic)
        account.outcomes[outcome] += 1
        if reason is None:
            return
        if outcome is Outcome.DEAD_LETTERED:
            account.dead_letter_reasons[reason] += 1
        elif outcome is Outcome.WAITING:
            account.waiting_reasons[reason] += 1

    def waited(self, topic: str, later: Later, reason: str | None = None) -> None:
        account = self._account(topic)
        account.later[later] += 1
        if reason is not None:
            account.dead_letter_reasons[reason] += 1

    def topics(self) -> dict[str, TopicAccount]:
        """Each topic's account, by logical name (live: read, never change)."""
        return self._topics

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            topic: {
                "consumed": account.consumed,
                **{o.value: account.outcomes[o] for o in Outcome},
                **{w.value: account.later[w] for w in Later},
                "dead_letter_reasons": dict(account.dead_letter_reasons),
                "waiting_reasons": dict(account.waiting_reasons),
            }
            for topic, account in sorted(self._topics.items())
        }

    def settled(self, expected: int, topics: Collection[str] | None = None) -> bool:
        """`expected` events consumed (from `topics`, default all), and each one has its
        outcome (none still in flight)."""
        totals = self.totals(topics)
        return totals["consumed"] == expected == sum(totals[o.value] for o in Outcome)

    def totals(self, topics: Collection[str] | None = None) -> dict[str, int]:
        """Sums over `topics` (logical names), default every topic consumed so far."""
        totals = {"consumed": 0, **{o.value: 0 for o in Outcome}, **{w.value: 0 for w in Later}}
        for topic, account in self._topics.items():
            if topics is not None and topic not in topics:
                continue
            totals["consumed"] += account.consumed
            for o in Outcome:
                totals[o.value] += account.outcomes[o]
            for w in Later:
                totals[w.value] += account.later[w]
        return totals

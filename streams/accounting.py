"""Every consumed event is accounted for: counted as consumed and as exactly one outcome."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class Outcome(Enum):
    DECODED = "decoded"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class TopicAccount:
    consumed: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)

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
        if reason is not None:
            account.dead_letter_reasons[reason] += 1

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            topic: {
                "consumed": account.consumed,
                **{o.value: account.outcomes[o] for o in Outcome},
                "dead_letter_reasons": dict(account.dead_letter_reasons),
            }
            for topic, account in sorted(self._topics.items())
        }

    def totals(self) -> dict[str, int]:
        totals = {"consumed": 0, **{o.value: 0 for o in Outcome}}
        for account in self._topics.values():
            totals["consumed"] += account.consumed
            for o in Outcome:
                totals[o.value] += account.outcomes[o]
        return totals

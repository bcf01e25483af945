"""When to try a failed ERP call again: exponential backoff with jitter, bounded in time.

Jitter keeps the commands that failed together (the ERP went down) from coming back
together; the ERP's own Retry-After is a floor, never shortened.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from streams.ops.settings import Settings


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float
    """Seconds before the first retry, before jitter."""
    maximum: float
    give_up_after: float
    """Seconds since the first attempt after which a transient failure is final."""
    multiplier: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        return cls(
            initial=settings.erp_backoff_initial_seconds,
            maximum=settings.erp_backoff_max_seconds,
            give_up_after=settings.erp_give_up_seconds,
        )

    def delay(
        self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 = the first).

        "Equal jitter": half the exponential step is kept, half drawn at random, so a retry
        never comes back at once yet the herd spreads out.
        """
        step = min(self.maximum, self.initial * self.multiplier ** (attempt - 1))
        jittered = step / 2 + rand() * step / 2
        return max(jittered, retry_after or 0.0)

    def gives_up(self, elapsed: float, delay: float) -> bool:
        """Whether waiting `delay` more would take the command past its time."""
        return elapsed + delay > self.give_up_after

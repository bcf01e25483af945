"""connectors.erp.retry: exponential backoff with equal jitter, Retry-After as a floor."""

from __future__ import annotations

import pytest

from connectors.erp.retry import Backoff

BACKOFF = Backoff(initial=0.5, maximum=8.0, give_up_after=60.0)


@pytest.mark.parametrize(
    ("attempt", "step"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]
)
def test_the_step_doubles_up_to_the_maximum_and_jitter_keeps_half(
    attempt: int, step: float
) -> None:
    assert BACKOFF.delay(attempt, None, rand=lambda: 0.0) == step / 2
    assert BACKOFF.delay(attempt, None, rand=lambda: 1.0) == step
    assert step / 2 < BACKOFF.delay(attempt, None, rand=lambda: 0.5) < step


def test_retry_after_is_a_floor_never_shortened() -> None:
    assert BACKOFF.delay(1, 5.0, rand=lambda: 1.0) == 5.0
    # A hint shorter than the backoff does not make the client hurry.
    assert BACKOFF.delay(5, 1.0, rand=lambda: 0.0) == 4.0


def test_it_gives_up_once_the_next_wait_would_pass_the_bound() -> None:
    assert not BACKOFF.gives_up(elapsed=50.0, delay=10.0)
    assert BACKOFF.gives_up(elapsed=50.0, delay=10.5)

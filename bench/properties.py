"""The business rules' property tests, run longer than the suite runs them.

    .venv/bin/python -m bench.properties [--examples 5000] [--only NAME] [--seed N]

Runs each property of tests/streams/domain/properties.py over commerce streams drawn by
tests/streams/domain/strategies.py (orders competing for scarce stock, every kind of event,
any arrival order, redeliveries) under the `erpbridge-bench` hypothesis profile, and prints
per property the examples run, the time and the rate. It asserts what the properties assert:
a counterexample is printed (hypothesis shrinks it first) and the exit status is 1. The
suite runs the same properties with 200 examples each (tests/streams/domain/test_properties.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.streams.domain import properties
from tests.streams.domain.strategies import (
    CommerceStream,
    commerce_streams,
    stream_and_arrival,
)

PROFILE = "erpbridge-bench"


@dataclass(frozen=True)
class Property:
    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]


def _arrival(drawn: tuple[CommerceStream, list[int]]) -> None:
    properties.check_arrival_order_does_not_matter(*drawn)


PROPERTIES = (
    Property("arrival-order", stream_and_arrival(), _arrival),
    Property("stock-conserved", commerce_streams(), properties.check_stock_is_conserved),
    Property(
        "books",
        commerce_streams(),
        properties.check_the_books_balance_and_say_what_the_events_imply,
    ),
    Property("redelivery", commerce_streams(), properties.check_redelivery_changes_nothing),
)


@dataclass
class Outcome:
    name: str
    examples: int
    events: int
    seconds: float
    failure: str | None


def run(prop: Property, examples: int, seed_value: int | None) -> Outcome:
    counted = {"examples": 0, "events": 0}

    def check(drawn: Any) -> None:
        prop.check(drawn)
        counted["examples"] += 1
        stream = drawn[0] if isinstance(drawn, tuple) else drawn
        counted["events"] += len(stream.deliveries)

    test = settings(settings.get_profile(PROFILE), max_examples=examples)(
        given(prop.strategy)(check)
    )
    if seed_value is not None:
        test = seed(seed_value)(test)
    started = time.monotonic()
    failure = None
    try:
        test()
    except Exception:
        failure = traceback.format_exc()
    return Outcome(
        prop.name, counted["examples"], counted["events"], time.monotonic() - started, failure
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per property")
    parser.add_argument(
        "--only", action="append", choices=[p.name for p in PROPERTIES], help="repeatable"
    )
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = parser.parse_args(argv)
    settings.register_profile(
        PROFILE,
        deadline=None,
        # Generation is part of the cost here, and shrinking a failure may take a while.
        suppress_health_check=[HealthCheck.too_slow],
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        print_blob=True,
    )
    chosen = [p for p in PROPERTIES if not args.only or p.name in args.only]
    print(f"{'property':<16} {'examples':>9} {'events':>9} {'seconds':>8} {'examples/s':>11}")
    failed = []
    total = Outcome("total", 0, 0, 0.0, None)
    for prop in chosen:
        outcome = run(prop, args.examples, args.seed)
        rate = outcome.examples / outcome.seconds if outcome.seconds else 0.0
        status = "" if outcome.failure is None else "  FAILED"
        print(
            f"{outcome.name:<16} {outcome.examples:>9} {outcome.events:>9} "
            f"{outcome.seconds:>8.1f} {rate:>11.1f}{status}",
            flush=True,
        )
        total.examples += outcome.examples
        total.events += outcome.events
        total.seconds += outcome.seconds
        if outcome.failure is not None:
            failed.append(outcome)
    print(f"{'total':<16} {total.examples:>9} {total.events:>9} {total.seconds:>8.1f}")
    for outcome in failed:
        print(f"\n--- {outcome.name} failed ---\n{outcome.failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

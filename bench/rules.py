"""The business rules alone: the sample workload through the reference model on one core.

`python -m bench.rules [--events N] [--skus N] [--profile]` decodes the cached workload
(bench/workload.py) once, then times `ReferenceModel.feed` over every event, the same rules
the agents run (orders, stock, commands, journal, alerts), without Kafka. It prints events/s
and µs per event (CPU time of this process), and with --profile the functions that cost most.
Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bench.workload import build
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import spec
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping
from streams.domain.model import ReferenceModel
from streams.domain.routing import RoutingRules
from streams.ops.gc_tuning import tune_for_streaming
from streams.ops.settings import Settings
from streams.topology.app import alert_policy_of, command_policy_of, policy_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--skus", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    settings = Settings(kafka_bootstrap_servers="unused:9092")
    workload = build(args.events, args.skus, args.seed, settings)
    codec = codec_from_settings(settings)
    events = []
    for i, value in enumerate(workload.values):
        topic = workload.topic(i)
        datum = codec.decode(value, expected=spec(topic).value_schema).datum
        events.append((topic, InputEvent.from_datum(datum, spec(topic).key)))

    # As the worker runs: the decoded workload frozen with the modules, young collections
    # spaced out (streams/ops/gc_tuning.py).
    tune_for_streaming()

    def run() -> float:
        model = ReferenceModel(
            RoutingRules.from_file(settings.routing_rules),
            FinanceMapping.from_file(settings.finance_mapping),
            policy_of(settings),
            command_policy_of(settings),
            alert_policy_of(settings),
        )
        started = time.process_time()
        for topic, event in events:
            model.feed(topic, event, event.occurred_ms)
        return time.process_time() - started

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return
    times = sorted(run() for _ in range(args.repeats))
    median = times[len(times) // 2]
    print(
        f"rules through the reference model: {len(events):,} events, median of "
        f"{args.repeats}: {len(events) / median:,.0f} events/s, {median / len(events) * 1e6:.1f} "
        f"us/event (CPU time; runs {', '.join(f'{t:.2f}s' for t in times)})"
    )


if __name__ == "__main__":
    main()

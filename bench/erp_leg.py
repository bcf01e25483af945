"""The ERP leg: how much of the ERP's allowance the dispatcher uses with a backlog waiting,
and how many ERP calls per input coalescing leaves.

    .venv/bin/python -m bench.erp_leg [--rates 20,100,500] [--orders 4000] [--seed 7]

One broker (streams.local.kafka.running_broker). The backlog is what the topology hands the
dispatcher for the sample workload: the reference model (streams.domain.model) gives each
input's ERP commands, for internal.erp-pending, and journal entries, for finance.journal
(Avro), encoded as streams.topology.agents.outputs sends them. For each rate, on fresh
topics: `erpbridge worker` with ERPBRIDGE_ERP_RATE_LIMITS at that rate, the backlog produced
onto the two topics once the worker is ready, until its dispatcher has sent it all. It
prints figures and asserts nothing. Method and results: docs/benchmarks.md, "The ERP leg".
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench import cluster
from bench.cluster import BenchError
from bench.machine import CpuMeter, CpuUsage, listening_pid
from bench.stats import busiest_window, median
from bench.throughput import worker_version
from bench.wait import wait_for
from bench.worker import Worker
from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import Codec, codec_from_settings
from streams.contracts.groups import dispatch_group
from streams.contracts.journal import encode_entry, entry_key
from streams.contracts.topics import ERP_COMMANDS, ERP_PENDING, JOURNAL, TopicCatalog, spec
from streams.domain.commands import CommandPolicy
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping
from streams.domain.model import ReferenceModel
from streams.domain.routing import RoutingRules
from streams.local.kafka import Broker, running_broker
from streams.ops.health import READINESS_PATH
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import DEFAULT_START, Catalogue, generate

Say = Callable[[str], None]
V = TypeVar("V")

DISPATCH_PATH = "/erpbridge/dispatch/"
"""The worker's dispatcher page (streams.topology.agents.dispatch), read over HTTP."""
TARGET_USED = 0.95
BUSY_ELSEWHERE = 0.15
"""Cores used by processes outside the benchmark above which its figures are flagged."""

_STARTUP_TIMEOUT = 120.0
_STALL_TIMEOUT = 60.0
_POLL = 0.25


# --- the backlog ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """The records the topology writes for the dispatcher for a stream of inputs, in the
    order it writes them."""

    inputs: int
    records: list[tuple[str, bytes, bytes]]
    """Logical topic, key and value of each record: a command on the pending topic (keyed
    by its dispatch key, Command.encode()) or an entry on the journal (keyed by its id,
    Avro)."""
    kinds: Counter[str]
    """Records by the kind of ERP command each becomes."""


def build_backlog(seed: int, orders: int, settings: Settings, say: Say) -> Backlog:
    """The sample of `orders` orders through the reference model: each input's ERP commands
    and journal entries, as the agents send them."""
    started = time.monotonic()
    model = ReferenceModel(
        RoutingRules.from_file(settings.routing_rules),
        FinanceMapping.from_file(settings.finance_mapping),
        command_policy=CommandPolicy(
            settings.erp_target, settings.confirm_on, settings.erp_sources
        ),
    )
    codec = codec_from_settings(settings)
    # The worker's rules run on processing time: for a backlog, all "now".
    now_ms = int(time.time() * 1000)
    records: list[tuple[str, bytes, bytes]] = []
    kinds: Counter[str] = Counter()
    inputs = 0
    for event in generate(seed, orders, Catalogue.default(), DEFAULT_START):
        inputs += 1
        commands, entries = len(model.commands), len(model.journal)
        # Through the codec, so the rules see each datum as the worker decodes it.
        encoded = codec.encode(event.schema_name, event.datum, topic=event.topic)
        datum = codec.decode(encoded).datum
        model.feed(event.topic, InputEvent.from_datum(datum, spec(event.topic).key), now_ms)
        for command in _added(model.commands, commands):
            records.append((ERP_PENDING, command.dispatch_key.encode(), command.encode()))
            kinds[command.kind.value] += 1
        for entry in _added(model.journal, entries):
            # Without a schema registry the topic does not enter the encoding.
            value = encode_entry(codec, entry, topic=JOURNAL)
            records.append((JOURNAL, entry_key(entry), value))
            kinds["PostJournalEntry"] += 1
    mix = ", ".join(f"{kind} {n:,}" for kind, n in kinds.most_common())
    say(
        f"backlog: {inputs:,} sample inputs ({orders:,} orders, seed {seed}) give "
        f"{len(records):,} records for the dispatcher, {kinds['PostJournalEntry']:,} of them "
        f"journal entries: {mix} ({time.monotonic() - started:.1f}s)"
    )
    return Backlog(inputs, records, kinds)


def _added(issued: dict[str, V], before: int) -> list[V]:
    """What the model issued since it held `before` (dicts keep insertion order)."""
    return list(itertools.islice(reversed(issued.values()), len(issued) - before))[::-1]


# --- one rate --------------------------------------------------------------------------------


@dataclass
class Sent:
    timestamp_ms: int
    kind: str
    members: int
    """Waiting records (commands or journal entries) the command stands for."""


@dataclass
class LegRun:
    rate: float
    burst: int
    inputs: int
    waiting: int
    """Records waiting for the dispatcher: commands on the pending topic and journal entries."""
    sent: list[Sent]
    saved: int
    """Calls saved, as the dispatcher counted them."""
    received_ms: list[int]
    """When the bench's consumer received each command, as a connector would."""
    warmup: float
    startup_seconds: float
    usage: CpuUsage
    seconds: float
    """From the first command seen out to the last."""
    kinds: Counter[str]

    @property
    def calls(self) -> int:
        return len(self.sent)

    def cpu_ms_per_call(self) -> float | None:
        """The worker's CPU per ERP call, start-up left out."""
        cores = self.usage.processes.get("worker")
        return None if cores is None else cores * self.seconds * 1000 / self.calls

    @property
    def timestamps(self) -> list[int]:
        return sorted(s.timestamp_ms for s in self.sent)

    def per_second(self) -> list[int]:
        """Commands in each whole second of the steady window: from `warmup` after the first
        command to the last second that ends by the last one."""
        stamps = self.timestamps
        return _bins(stamps, stamps[0] + int(self.warmup * 1000))

    def used(self) -> tuple[float, float, float, float]:
        """Median, min and max per second, and the window's mean, as fractions of the rate."""
        bins = self.per_second()
        if not bins:
            raise BenchError(
                f"at {self.rate:g}/s the backlog lasted no whole second: raise --orders"
            )
        mean = sum(bins) / len(bins)
        return (
            median(bins) / self.rate,
            min(bins) / self.rate,
            max(bins) / self.rate,
            mean / self.rate,
        )

    def figures(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": self.burst,
            "inputs": self.inputs,
            "waiting": self.waiting,
            "calls": self.calls,
            "saved": self.saved,
            "per_second": self.per_second(),
            "received_per_second": _bins(self.received_ms, self.received_ms[0]),
            "kinds": dict(self.kinds),
        }


def _bins(stamps: list[int], start: int) -> list[int]:
    """Of sorted `stamps`, how many fall in each whole second from `start` that ends by the
    last one."""
    bins = [0] * max(0, (stamps[-1] + 1 - start) // 1000)
    for t in stamps:
        second = (t - start) // 1000
        if 0 <= second < len(bins):
            bins[second] += 1
    return bins


class Bench:
    def __init__(self, broker: Broker, args: argparse.Namespace, say: Say) -> None:
        self.broker = broker
        self.args = args
        self.say = say
        self.run_id = uuid.uuid4().hex[:6]
        self.logs = REPO_ROOT / "var" / "bench" / f"erp-leg-{self.run_id}"
        self.logs.mkdir(parents=True)
        port = int(broker.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        self.broker_pid = listening_pid(port) if broker.kind == "local-jvm" else None

    def settings(self, rate: float) -> Settings:
        prefix = f"bench-{self.run_id}-erp{rate:g}-"
        return Settings(
            kafka_bootstrap_servers=self.broker.bootstrap_servers,
            topic_prefix=prefix,
            # The app id starts with the prefix, so Faust's own topics are cleaned up with ours.
            app_id=f"{prefix}app",
            partitions=self.args.partitions,
            data_dir=self.logs / f"erp{rate:g}" / "data",
        )


def measure(bench: Bench, rate: float, burst: int, backlog: Backlog) -> LegRun:
    say = bench.say
    settings = bench.settings(rate)
    catalog = TopicCatalog.from_settings(settings)
    report = ensure_topics(
        settings.confluent_config(), catalog, changelogs=changelog_sources(settings.app_id)
    )
    if not report.ok:
        raise BenchError(f"creating the topics of {settings.topic_prefix}*: {report}")
    records = backlog.records
    limits = {settings.erp_target: {"rate": rate, "burst": burst}}
    settings.data_dir.mkdir(parents=True)
    tail = _Tail(settings, catalog.physical(ERP_COMMANDS))
    tail.start()
    restart = bench.args.start_on_backlog
    try:
        if restart:
            _produce(settings, catalog, records)
        worker = Worker.start(
            settings,
            bench.args.worker_source.resolve(),
            settings.data_dir.parent / "worker.log",
            bench.args.worker_loglevel,
            env={"ERPBRIDGE_ERP_RATE_LIMITS": json.dumps(limits)},
        )
        try:
            launched = time.monotonic()

            def ready() -> bool:
                worker.check_alive()
                return worker.page(READINESS_PATH) is not None  # None while 503

            wait_for(ready, timeout=_STARTUP_TIMEOUT, what="the worker ready (/readyz)")
            startup = time.monotonic() - launched
            if not restart:
                # The backlog comes once the worker runs: Faust's start-up (rebalance, table
                # recovery) holds the event loop the dispatcher shares.
                _produce(settings, catalog, records)
            say(f"  {rate:g}/s: worker ready in {startup:.1f}s; {len(records):,} records")
            usage, seconds, saved = _until_dispatched(bench, worker, settings, len(records))
        finally:
            worker.stop()
        sent = _read_commands(
            settings, catalog.physical(ERP_COMMANDS), codec_from_settings(settings)
        )
        wait_for(
            lambda: len(tail.received) >= len(sent),
            timeout=30,
            what="the tail to see every command",
        )
    finally:
        tail.stop()
        cluster.delete_run(settings, [settings.app_id, dispatch_group(settings.app_id)])
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    members = sum(s.members for s in sent)
    if members != len(records):
        raise BenchError(
            f"erp.commands stands for {members:,} of the {len(records):,} records waiting"
        )
    return LegRun(
        rate=rate,
        burst=burst,
        inputs=backlog.inputs,
        waiting=len(records),
        sent=sent,
        saved=saved,
        received_ms=sorted(tail.received),
        warmup=bench.args.warmup,
        startup_seconds=startup,
        usage=usage,
        seconds=seconds,
        kinds=Counter(s.kind for s in sent),
    )


def _until_dispatched(
    bench: Bench, worker: Worker, settings: Settings, waiting: int
) -> tuple[CpuUsage, float, int]:
    """Wait until the worker's dispatcher has sent (or merged) every record waiting; the CPU
    used from its first command to its last, those seconds, and the calls it saved."""

    def figures() -> tuple[int, int, int] | None:
        worker.check_alive()
        page = worker.page(DISPATCH_PATH)
        if page is None:
            return None
        if page["dead_lettered"]:
            raise BenchError(f"the dispatcher dead-lettered {page['dead_lettered']} commands")
        target = page["targets"][settings.erp_target]
        return target["sent"], target["sent"] + target["calls_saved"], target["calls_saved"]

    wait_for(
        lambda: (f := figures()) and f[0] > 0,
        timeout=_STARTUP_TIMEOUT,
        what="the dispatcher's first command",
        interval=_POLL / 5,
    )
    meter = CpuMeter(
        {"worker": worker.process.pid, "broker": bench.broker_pid, "bench": os.getpid()}
    )
    before = meter.snapshot(time.monotonic())
    progress, moved = 0, time.monotonic()
    while (current := figures()) is None or current[1] < waiting:
        if current is not None and current[1] > progress:
            progress, moved = current[1], time.monotonic()
        elif time.monotonic() - moved > _STALL_TIMEOUT:
            raise BenchError(
                f"the dispatcher was stuck at {progress:,} of {waiting:,} records; "
                f"log {worker.log_path}:\n{worker.log_tail()}"
            )
        time.sleep(_POLL)
    after = meter.snapshot(time.monotonic())
    return CpuMeter.usage(before, after), after.at - before.at, current[2]


def _produce(
    settings: Settings, catalog: TopicCatalog, records: list[tuple[str, bytes, bytes]]
) -> None:
    # The worker's producer config: murmur2 on the key, as the topology writes them.
    producer = Producer({**settings.producer_config(), "linger.ms": 20, "log_level": 3})
    for name, key, value in records:
        while True:
            try:
                producer.produce(catalog.physical(name), key=key, value=value)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.1)
    if producer.flush(120):
        raise BenchError("preloading the backlog: not every record was confirmed")


def _assigned_from_start(settings: Settings, topic: str, group: str) -> Consumer:
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": group,
            "enable.auto.commit": False,
            # A connector's view, not batched by the bench: fetches return within 10 ms.
            "fetch.wait.max.ms": 10,
        }
    )
    partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer


class _Tail(threading.Thread):
    """Receives erp.commands as they come, noting when (wall clock, ms)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self._consumer = _assigned_from_start(settings, topic, f"{settings.topic_prefix}tail")
        self._stopping = threading.Event()
        self.received: list[int] = []

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                for message in self._consumer.consume(500, timeout=0.1):
                    if message.error() is None:
                        self.received.append(int(time.time() * 1000))
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


def _read_commands(settings: Settings, topic: str, codec: Codec) -> list[Sent]:
    consumer = _assigned_from_start(settings, topic, f"{settings.topic_prefix}read")
    try:
        partitions = consumer.assignment()
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=15)[1] for tp in partitions
        }
        left = {p for p, end in ends.items() if end > 0}
        sent = []
        deadline = time.monotonic() + _STALL_TIMEOUT
        while left:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"reading {topic}: partitions {sorted(left)} never reached their end"
                )
            for message in consumer.consume(500, timeout=1.0):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                datum = codec.decode(message.value(), expected="erpbridge.ErpCommand").datum
                name, body = datum["command"]
                kind = name.removeprefix("erpbridge.")
                sent.append(Sent(message.timestamp()[1], kind, _members(kind, body)))
                if offset + 1 >= ends[partition]:
                    left.discard(partition)
        return sent
    finally:
        consumer.close()


def _members(kind: str, body: dict[str, Any]) -> int:
    """Waiting records an erp.commands command stands for: merged ones list them."""
    if kind == "PostJournalEntry":
        return len(body["entries"])
    if kind == "AdjustInventory":
        return len(body["parts"]) or 1
    return 1


# --- report ----------------------------------------------------------------------------------


def report(runs: list[LegRun], idle: CpuUsage) -> str:
    lines = [
        "ERP leg: allowance used with a backlog waiting (erp.commands record timestamps, "
        "per whole second of the steady window)",
        "",
        "| rate/s | burst | inputs | waiting | calls | calls/input | saved | window s "
        "| used median | min | max | mean | busiest 1 s / (rate + burst) | received busiest "
        "| inputs/s | worker cores | CPU ms/call | others |",
        "| " + " | ".join(["---"] * 18) + " |",
    ]
    verdicts = []
    for run in runs:
        used_median, used_min, used_max, used_mean = run.used()
        allowance = run.rate + run.burst
        busiest = busiest_window(run.timestamps, 1000)
        received = busiest_window(run.received_ms, 1000)
        per_input = run.calls / run.inputs
        worker = run.usage.processes.get("worker")
        others = run.usage.others
        lines.append(
            f"| {run.rate:g} | {run.burst} | {run.inputs:,} | {run.waiting:,} | {run.calls:,} "
            f"| {per_input:.3f} | {run.waiting - run.calls:,} | {len(run.per_second())} "
            f"| {used_median:.3f} | {used_min:.3f} | {used_max:.3f} | {used_mean:.3f} "
            f"| {busiest} / {allowance:g} = {busiest / allowance:.3f} | {received} "
            f"| {run.rate / per_input:,.0f} | {_figure(worker)} | {_figure(run.cpu_ms_per_call())} "
            f"| {_figure(others)} |"
        )
        ok_used = used_median >= TARGET_USED and used_mean >= TARGET_USED
        ok_cap = busiest <= allowance
        verdicts.append(
            f"{run.rate:g}/s: used {used_mean:.3f} (mean), {used_median:.3f} (median) "
            f"{'>=' if ok_used else '<'} {TARGET_USED} {'ok' if ok_used else 'MISS'}; "
            f"busiest second {busiest} {'<=' if ok_cap else '>'} rate + burst {allowance:g} "
            f"{'ok' if ok_cap else 'MISS'}"
        )
        if run.saved != run.waiting - run.calls:
            verdicts.append(
                f"  note: the dispatcher counted {run.saved:,} calls saved, erp.commands shows "
                f"{run.waiting - run.calls:,}"
            )
        if others is not None and others > BUSY_ELSEWHERE:
            verdicts.append(f"  note: other processes used {others:.2f} cores during this run")
    lines += ["", *verdicts, ""]
    lines.append(
        "calls per input: ERP calls on erp.commands / the sample inputs whose commands waited"
    )
    for run in runs:
        mix = ", ".join(f"{kind} {n:,}" for kind, n in run.kinds.most_common())
        lines.append(
            f"  {run.rate:g}/s calls by kind: {mix}; worker ready in {run.startup_seconds:.1f}s"
        )
    if idle.others is not None:
        lines.append(f"idle: other processes used {idle.others:.2f} cores before the runs")
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.erp_leg", description=__doc__)
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[20.0, 100.0, 500.0],
        help="ERP rate limits to measure, calls per second (default 20,100,500)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        help="bucket size (default: the rate, as the default 20/20)",
    )
    parser.add_argument(
        "--orders",
        type=int,
        default=4000,
        help="orders of the sample whose commands wait (default 4000, about 20,000 inputs)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds left out at the start")
    parser.add_argument(
        "--start-on-backlog",
        action="store_true",
        help="the backlog waits before the worker starts (a restart), instead of arriving once "
        "it is ready",
    )
    parser.add_argument("--seed", type=int, default=7, help="the sample's seed (default 7)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--worker-loglevel", default="warning")
    parser.add_argument(
        "--worker-source",
        type=Path,
        default=REPO_ROOT,
        help="the erpbridge checkout whose worker runs (default: this one), to compare versions",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write each run's per-second counts here"
    )
    args = parser.parse_args(argv)
    if any(r <= 0 for r in args.rates) or args.orders < 1:
        parser.error("rates and --orders must be > 0")
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    def say(message: str) -> None:
        print(message, flush=True)

    base = Settings()
    runs: list[LegRun] = []
    try:
        backlog = build_backlog(args.seed, args.orders, base, say)
        with running_broker() as broker:
            try:
                bench = Bench(broker, args, say)
                meter = CpuMeter({"broker": bench.broker_pid, "bench": os.getpid()})
                before = meter.snapshot(time.monotonic())
                time.sleep(2.0)  # an idle sample of the machine, nothing is waited for
                idle = CpuMeter.usage(before, meter.snapshot(time.monotonic()))
                say(f"broker: {broker.kind} at {broker.bootstrap_servers}; logs in {bench.logs}")
                say(f"worker: {worker_version(args.worker_source.resolve())}")
                for rate in args.rates:
                    runs.append(measure(bench, rate, args.burst or max(1, int(rate)), backlog))
            finally:
                cluster.forget_admins()
    except KeyboardInterrupt:
        say("interrupted: the worker and the broker were stopped")
        return 130
    except BenchError as exc:
        say(f"benchmark failed: {exc}")
        return 1
    except Exception:
        say(f"benchmark failed with an unexpected error:\n{traceback.format_exc()}")
        return 1
    say(report(runs, idle))
    if args.json:
        args.json.write_text(json.dumps([run.figures() for run in runs], indent=1) + "\n")
        say(f"per-second counts written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

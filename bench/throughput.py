"""Throughput and latency of the erpbridge topology, against the raw pass-through limit.

    .venv/bin/python -m bench.throughput [--events N] [--skus 10000] [--partitions 6]
                                         [--repeats 3] [--latency-seconds 30]
                                         [--no-two-workers] [--no-restore]

One broker (streams.local.kafka.running_broker: KAFKA_BOOTSTRAP_SERVERS, or a local one),
N sample events generated and encoded once, then for each repeat, each on fresh topics:
the raw pass-through (bench.passthrough), the Faust floor (bench.faust_floor), the topology
(the worker's production entry point, `python -m streams.cli worker`) and two such workers
in one group, all catching up on the N preloaded events, the two workers' final state
checked against the one worker's (bench.state); after the last one-worker run, a fresh
worker restoring its tables into an empty data directory; then latency at half the rate the
topology sustains. Method and results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import libversion

from bench import cluster
from bench.cluster import BenchError
from bench.latency import LatencyResult, measure_paced
from bench.machine import CpuMeter, CpuSnapshot, CpuUsage, listening_pid
from bench.passthrough import PassThroughResult
from bench.state import FIGURES, FinalState, compare
from bench.stats import crossing_time, median, percentile
from bench.wait import wait_for
from bench.worker import Worker, inputs_consumed
from bench.workload import Workload, build
from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import TopicCatalog
from streams.local.kafka import KAFKA_VERSION, Broker, running_broker
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics

Say = Callable[[str], None]

TARGET_RATE = 2_000.0
"""End-to-end events/s one worker sustains (issue 16)."""
TARGET_FLOOR_RATIO = 0.5
"""... as a fraction of the Faust floor measured in the same run."""
TARGET_CPU_MS = 0.5
"""The worker's CPU time per input end to end, in ms."""
TARGET_P99_MS = 100.0
LONG_TERM_RATE = 10_000.0
"""The long-term line for one worker (issue 3), kept beside the nearer targets."""
LONG_TERM_RAW_RATIO = 0.5
"""... and its fraction of the raw pass-through."""
LATENCY_LOAD = 0.5
"""The latency run produces at this fraction of the topology's sustained events/s."""
BUSY_ELSEWHERE = 0.15
"""Cores used by processes outside the benchmark above which its figures are flagged."""

_STARTUP_TIMEOUT = 120.0
_STALL_TIMEOUT = 60.0
_SAMPLE_INTERVAL = 0.1
_IDLE_CHECK_SECONDS = 2.0


# --- results ---------------------------------------------------------------------------------


@dataclass
class Window:
    """One process's work on the N preloaded events, from its first consumed input to the
    last one done."""

    events: int
    seconds: float
    cpu: float | None
    """Cores the process under test used over the window (1.0 = one core fully busy)."""
    usage: CpuUsage | None
    """Cores used by each part of the benchmark and by the whole machine."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TopologyRun:
    window: Window
    """From the first observed consumption to the last of the N inputs (interpolated)."""
    startup_seconds: float
    """Worker process start to its first consumed input: not part of the window."""
    steady_rate: float | None
    """Events/s between 10% and 90% of the inputs consumed."""
    drained_seconds: float | None
    """First consumption to the topology's last write (internal, changelog, output topics,
    polled every 0.5 s), once every input and internal partition is committed to its end;
    None if that never happened."""
    drained_cpu_seconds: float | None
    """CPU time of the worker processes over the end-to-end window."""
    workers: int = 1
    consumed_by_worker: list[int] = field(default_factory=list)
    """Inputs each worker's accounting page counted at the end (re-processing counts again)."""
    totals: dict[str, Any] = field(default_factory=dict)
    """The workers' accounting totals at the end, summed."""

    @property
    def drained_rate(self) -> float | None:
        """End-to-end events/s: the preloaded events all the way through the topology."""
        if not self.drained_seconds:
            return None
        return self.window.events / self.drained_seconds

    @property
    def cpu_per_input_ms(self) -> float | None:
        """The workers' CPU time per input over the end-to-end window, in ms."""
        if self.drained_cpu_seconds is None or not self.window.events:
            return None
        return self.drained_cpu_seconds / self.window.events * 1000

    @property
    def sustained_rate(self) -> float:
        """The rate the topology keeps up with: the lower of the two."""
        if self.drained_rate is None:
            return self.window.rate
        return min(self.window.rate, self.drained_rate)


@dataclass
class StateCheck:
    """A repeat's two-worker run against its one-worker run: the order-independent parts of
    their final state (bench.state)."""

    repeat: int
    compared: dict[str, int]
    """Ids compared per figure, in the one-worker run."""
    differences: list[str]
    """What differs, a few examples per figure; empty when the states are the same."""
    arrival_dependent: list[str]
    """What differs where arrival order may decide (bench.state.arrival_dependent)."""


@dataclass
class RestoreRun:
    """A fresh worker of the same app id on an empty data directory after a one-worker run."""

    seconds: float
    """Its process start to its /readyz answering 200 (tables recovered, partitions assigned)."""
    web_seconds: float | None
    """Its process start to its web server's first answer: start-up before any recovery."""
    changelogs: int
    changelog_records: int
    """Sum of the changelogs' end offsets."""
    changelog_bytes: int
    """Keys and values in the changelogs, as read."""


@dataclass
class Figure:
    """One row of the summary: a measured figure against its target."""

    metric: str
    value: float | None
    shown: str
    target: str = "-"
    result: str = "-"


@dataclass
class Results:
    args: dict[str, Any]
    machine: dict[str, Any]
    workload: dict[str, Any]
    raw: list[Window] = field(default_factory=list)
    floor: list[Window] = field(default_factory=list)
    topology: list[TopologyRun] = field(default_factory=list)
    two_workers: list[TopologyRun] = field(default_factory=list)
    state_checks: list[StateCheck] = field(default_factory=list)
    restore: RestoreRun | None = None
    latency: LatencyResult | None = None
    summary: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- phases ----------------------------------------------------------------------------------


class Bench:
    """What every phase shares: the broker, the run id, where logs go, the CPU meters."""

    def __init__(self, broker: Broker, args: argparse.Namespace, source: Path, say: Say):
        self.broker = broker
        self.args = args
        self.source = source
        self.say = say
        self.run_id = uuid.uuid4().hex[:6]
        self.logs = REPO_ROOT / "var" / "bench" / self.run_id
        self.logs.mkdir(parents=True)
        port = int(broker.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        self.broker_pid = listening_pid(port) if broker.kind == "local-jvm" else None

    def meter(self, **pids: int | None) -> CpuMeter:
        return CpuMeter({"broker": self.broker_pid, "bench": os.getpid(), **pids})

    def run(self, phase: str) -> Run:
        return Run(self, phase)


class Run:
    """One measurement's topics, consumer group, state directory and logs."""

    def __init__(self, bench: Bench, phase: str) -> None:
        prefix = f"bench-{bench.run_id}-{phase}-"
        self.bench = bench
        self.logs = bench.logs / phase
        self.logs.mkdir()
        self.settings = Settings(
            kafka_bootstrap_servers=bench.broker.bootstrap_servers,
            topic_prefix=prefix,
            # The app id starts with the prefix, so Faust's own topics are cleaned up with ours.
            app_id=f"{prefix}app",
            partitions=bench.args.partitions,
            data_dir=self.logs / "data",
        )

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def create_topics(self) -> TopicCatalog:
        catalog = TopicCatalog.from_settings(self.settings)
        report = ensure_topics(
            self.settings.confluent_config(),
            catalog,
            changelogs=changelog_sources(self.settings.app_id),
        )
        if not report.ok:
            raise BenchError(f"creating the topics of {self.prefix}*: {report}")
        return catalog

    def clean_up(self, groups: list[str]) -> None:
        cluster.delete_run(self.settings, groups)
        shutil.rmtree(self.settings.data_dir, ignore_errors=True)

    def start_worker(self, name: str = "worker") -> Worker:
        """A worker of this run's app id with a data directory of its own, new and empty."""
        data_dir = self.settings.data_dir / name
        data_dir.mkdir(parents=True)
        return Worker.start(
            self.settings.model_copy(update={"data_dir": data_dir}),
            self.bench.source,
            self.logs / f"{name}.log",
            self.bench.args.worker_loglevel,
        )


def measure_raw(run: Run, workload: Workload) -> Window:
    output = f"{run.prefix}bench.passthrough"
    cluster.create_topic(run.settings, output, run.settings.partitions)
    group = f"{run.prefix}passthrough"
    command = ["bench.passthrough", "--output", output, "--group", group]
    command += ["--reencode"] if run.bench.args.reencode else []
    return _measure_process(run, workload, "passthrough", command, group)


def measure_floor(run: Run, workload: Workload) -> Window:
    group = f"{run.prefix}floor"
    return _measure_process(
        run, workload, "faust_floor", ["bench.faust_floor", "--group", group], group
    )


def _measure_process(
    run: Run, workload: Workload, name: str, module_args: list[str], group: str
) -> Window:
    """Run `python -m <module_args>` on freshly preloaded inputs; its printed PassThroughResult."""
    run.create_topics()
    loaded = cluster.preload(run.settings, workload)
    run.bench.say(f"  {name}: preloaded {len(workload):,} events in {loaded:.1f}s")
    deadline = max(120.0, len(workload) / 500)
    log_path = run.logs / f"{name}.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": run.settings.require_bootstrap(),
        "ERPBRIDGE_TOPIC_PREFIX": run.prefix,
        "ERPBRIDGE_APP_ID": run.settings.app_id,
        "ERPBRIDGE_PARTITIONS": str(run.settings.partitions),
        "ERPBRIDGE_DATA_DIR": str(run.settings.data_dir),
    }
    command = [sys.executable, "-m", *module_args]
    command += ["--expect", str(len(workload)), "--deadline", str(deadline)]
    meter = run.bench.meter()
    before = meter.snapshot(time.monotonic())
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        stdout, _ = process.communicate(timeout=deadline + 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        run.clean_up([group])
    after = meter.snapshot(time.monotonic())
    lines = stdout.decode(errors="replace").strip().splitlines()
    if not lines:
        raise BenchError(
            f"{name} exited with {process.returncode} without a result; "
            f"log {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}"
        )
    result = PassThroughResult(**json.loads(lines[-1]))
    if not result.completed:
        raise BenchError(
            f"{name} did not complete: {result}; log {log_path}:\n"
            f"{log_path.read_text(errors='replace')[-3000:]}"
        )
    # The subprocess has exited, so the machine's share is over its whole life (start-up
    # included) and its own CPU is what it reported.
    usage = CpuMeter.usage(before, after, {name: result.cpu_total})
    cpu = result.cpu_seconds / result.seconds if result.seconds > 0 else None
    return Window(result.consumed, result.seconds, cpu, usage)


def measure_topology(run: Run, workload: Workload, workers: int = 1) -> TopologyRun:
    """`workers` workers in one group catching up on the preloaded workload. The run's topics
    are left for the caller to read before it cleans them up."""
    say = run.bench.say
    catalog = run.create_topics()
    loaded = cluster.preload(run.settings, workload)
    say(
        f"  topology: preloaded {len(workload):,} events in {loaded:.1f}s; "
        f"starting {workers} worker(s)"
    )
    total = len(workload)
    names = ["worker"] if workers == 1 else [f"worker{n}" for n in range(1, workers + 1)]
    pool: list[Worker] = []
    try:
        launched = time.monotonic()
        for name in names:  # one by one, so the `finally` stops those that started
            pool.append(run.start_worker(name))
        meter = run.bench.meter(**{n: w.process.pid for n, w in zip(names, pool, strict=True)})
        consumed = [0] * workers
        samples: list[tuple[float, int]] = []

        def sample() -> int:
            for index, worker in enumerate(pool):
                worker.check_alive()
                count = worker.inputs_consumed()
                # A page that did not answer in time keeps its last count, so the sum
                # never goes back.
                if count is not None:
                    consumed[index] = count
            if sum(consumed) > 0:
                samples.append((time.monotonic(), sum(consumed)))
            return sum(consumed)

        # Timing starts at the first consumed input: worker start-up, group join and
        # assignment are not part of the window.
        wait_for(
            sample,
            timeout=_STARTUP_TIMEOUT,
            what="the worker's first consumed input",
            interval=_SAMPLE_INTERVAL / 2,
        )
        before = meter.snapshot(time.monotonic())
        started, first = samples[0]
        startup = started - launched
        last_progress = started
        while samples[-1][1] < total:
            time.sleep(_SAMPLE_INTERVAL)
            before_count = samples[-1][1]
            sample()
            if samples[-1][1] > before_count:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > _STALL_TIMEOUT:
                raise BenchError(
                    f"{'the workers' if workers > 1 else 'the worker'} consumed no input for "
                    f"{_STALL_TIMEOUT:.0f}s, at "
                    f"{samples[-1][1]:,} of {total:,}; logs "
                    + ", ".join(str(w.log_path) for w in pool)
                    + "".join(f"\n{w.log_path.name} ends:\n{w.log_tail()}" for w in pool)
                )
        usage = CpuMeter.usage(before, meter.snapshot(time.monotonic()))
        finished = crossing_time(samples, total) or samples[-1][0]
        window = Window(
            events=total - first,
            seconds=finished - started,
            cpu=_summed([usage.processes.get(n) for n in names]),
            usage=usage,
        )
        steady = None
        low, high = crossing_time(samples, 0.1 * total), crossing_time(samples, 0.9 * total)
        if first < 0.1 * total and low is not None and high is not None and high > low:
            steady = 0.8 * total / (high - low)
        at_last_write: list[CpuSnapshot] = []

        def on_write(at: float) -> None:
            # The end of the end-to-end window is the last write seen: measure CPU there,
            # not when the commits confirm it seconds later.
            at_last_write[:] = [meter.snapshot(at)]

        drained = cluster.await_drained(
            run.settings, catalog, stall_timeout=_STALL_TIMEOUT, on_write=on_write
        )
        pages = [worker.accounting() or {} for worker in pool]
    finally:
        for worker in pool:
            worker.stop()
    drained_cpu = None
    if drained is not None and at_last_write:
        after = at_last_write[-1]
        drained_cpu = _summed(
            [_difference(after.processes.get(n), before.processes.get(n)) for n in names]
        )
    totals: dict[str, Any] = {}
    for page in pages:
        for name, value in page.get("totals", {}).items():
            totals[name] = totals.get(name, 0) + value
    return TopologyRun(
        window=window,
        startup_seconds=startup,
        steady_rate=steady,
        drained_seconds=None if drained is None else drained - started,
        drained_cpu_seconds=drained_cpu,
        workers=workers,
        consumed_by_worker=[inputs_consumed(page, run.prefix) or 0 for page in pages],
        totals=totals,
    )


def measure_restore(run: Run) -> RestoreRun:
    """After a run: a fresh worker of its app id on an empty data directory, timed from its
    start to its /readyz answering 200, which waits for its tables' recovery."""
    # Read before the worker starts, so the bench's reading does not slow its recovery.
    records, size = cluster.changelog_size(run.settings)
    changelogs = len(cluster.changelog_topics(run.settings))
    run.bench.say(
        f"  restore: {records:,} changelog records ({size / 1e6:,.1f} MB) in {changelogs} "
        "topics; starting a worker on an empty data directory"
    )
    launched = time.monotonic()
    worker = run.start_worker("restore")
    answered: list[float] = []
    try:

        def ready() -> bool:
            worker.check_alive()
            state = worker.ready()
            if state is not None and not answered:
                answered.append(time.monotonic())
            return bool(state)

        # Recovery reads every record: allow for a slow one on a busy machine.
        wait_for(
            ready,
            timeout=_STARTUP_TIMEOUT + records / 1000,
            what="the restoring worker's /readyz to answer 200",
            interval=_SAMPLE_INTERVAL,
        )
        seconds = time.monotonic() - launched
    finally:
        worker.stop()
    return RestoreRun(
        seconds=seconds,
        web_seconds=answered[0] - launched if answered else None,
        changelogs=changelogs,
        changelog_records=records,
        changelog_bytes=size,
    )


def _summed(values: list[float | None]) -> float | None:
    """The sum, or None if any part is unknown."""
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def measure_latency(run: Run, workload: Workload, rate: float) -> LatencyResult:
    args, say = run.bench.args, run.bench.say
    run.create_topics()
    worker = run.start_worker()
    try:

        def ready() -> bool:
            worker.check_alive()
            return worker.accounting() is not None and cluster.group_assigned(
                run.settings, run.settings.app_id
            )

        wait_for(ready, timeout=_STARTUP_TIMEOUT, what="the worker's group to be assigned")
        say(
            f"  latency: worker ready; producing {rate:,.0f} events/s for up to "
            f"{args.latency_seconds:.0f}s"
        )
        return measure_paced(
            run.settings,
            workload,
            worker,
            rate=rate,
            seconds=args.latency_seconds,
            warmup=args.latency_warmup,
            meter=run.bench.meter(worker=worker.process.pid),
            say=say,
        )
    finally:
        worker.stop()
        run.clean_up([run.settings.app_id, f"{run.prefix}bench-latency"])


def idle_load(bench: Bench) -> CpuUsage:
    """What the machine does while the benchmark does nothing (its broker idles)."""
    meter = bench.meter()
    before = meter.snapshot(time.monotonic())
    time.sleep(_IDLE_CHECK_SECONDS)  # a measurement interval, not a wait for a condition
    return CpuMeter.usage(before, meter.snapshot(time.monotonic()))


# --- facts and report ------------------------------------------------------------------------


def machine_facts(broker: Broker) -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor() or "unknown",
        "os": platform.platform(),
        "python": platform.python_version(),
        "faust-streaming": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "confluent-kafka": f"{version('confluent-kafka')} (librdkafka {libversion()[0]})",
        "fastavro": version("fastavro"),
        "broker": f"{broker.kind} at {broker.bootstrap_servers}"
        + (f", Kafka {KAFKA_VERSION}" if broker.kind == "local-jvm" else ""),
    }


def worker_version(source: Path) -> str:
    """The commit of the worker's checkout, and whether its code differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", "streams", "schemas", "config"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return f"{source} (not a git checkout)"
    return f"{source} at {commit}" + (" + uncommitted changes" if dirty else "")


def codec_costs(workload: Workload, settings: Settings, sample: int = 20_000) -> dict[str, float]:
    """Microseconds per event to decode and to re-encode, in this process, on one core."""
    codec = codec_from_settings(settings)
    values = workload.values[:sample]
    started = time.perf_counter()
    decoded = [codec.decode(v) for v in values]
    decode = time.perf_counter() - started
    started = time.perf_counter()
    for index, d in enumerate(decoded):
        codec.encode(d.schema_name, d.datum, topic=workload.topic(index))
    encode = time.perf_counter() - started
    return {"decode_us": decode / len(values) * 1e6, "encode_us": encode / len(values) * 1e6}


def report(results: Results) -> str:
    lines: list[str] = []
    add = lines.append
    args, machine, wl = results.args, results.machine, results.workload
    add("")
    add(
        f"erpbridge throughput benchmark: {wl['events']:,} events (sample mix over "
        f"{wl['skus']:,} SKUs, {wl['warehouses']} warehouses), {args['partitions']} partitions, "
        f"{args['repeats']} repeat(s)"
    )
    add(f"  worker   {machine.get('worker', '?')}")
    add(
        f"  machine  {machine.get('cores')} cores ({machine.get('cpu')}), Python "
        f"{machine.get('python')}, faust-streaming {machine.get('faust-streaming')}, aiokafka "
        f"{machine.get('aiokafka')}, confluent-kafka {machine.get('confluent-kafka')}, "
        f"fastavro {machine.get('fastavro')}"
    )
    add(f"  broker   {machine.get('broker')}")
    add(
        "  mix      "
        + ", ".join(f"{t} {n:,}" for t, n in wl["by_topic"].items())
        + f"; {wl['mean_bytes']:.0f} bytes/event encoded"
    )
    add(
        f"  codec    decode {wl['decode_us']:.0f} us/event, encode {wl['encode_us']:.0f} us/event "
        f"in one process (decoding alone caps one core at {1e6 / wl['decode_us']:,.0f} events/s)"
    )
    idle = machine.get("idle_others")
    if idle is not None:
        add(f"  idle     other processes used {idle:.2f} cores before the runs")
    add("")
    add("  cores used over each window (1.00 = one core busy); CPU/event: the process's (or")
    add("  the workers') CPU time per event over its window")
    add(
        f"  {'run':<12} {'events/s':>9} {'seconds':>8} {'process':>8} {'broker':>7} "
        f"{'bench':>6} {'others':>7} {'CPU/event':>10}  details"
    )
    repeats = max(
        len(results.raw), len(results.floor), len(results.topology), len(results.two_workers)
    )
    for index in range(repeats):
        floor = results.floor[index] if index < len(results.floor) else None
        if index < len(results.raw):
            add(_window_row(f"raw {index + 1}", results.raw[index], "pass-through"))
        if floor is not None:
            add(_window_row(f"floor {index + 1}", floor, "Faust floor"))
        if index < len(results.topology):
            topo = results.topology[index]
            add(_window_row(f"topology {index + 1}", topo.window, _topology_details(topo, floor)))
        if index < len(results.two_workers):
            pair = results.two_workers[index]
            add(_window_row(f"2 workers {index + 1}", pair.window, _topology_details(pair, floor)))
    add("  topology events/s: inputs consumed (the workers' accounting pages), first to last.")
    add("  * end to end: first input consumed to the topology's last write to an internal,")
    add("  changelog or output topic (polled every 0.5s), every input and internal partition")
    add("  committed; CPU/input: the workers' CPU time over that window per input; floor: the")
    add("  Faust floor of the same repeat. Raw and floor runs: broker/bench/others over the")
    add("  process's whole life.")
    for index, topo in enumerate(results.topology):
        add(f"  worker accounting, topology {index + 1}: {_totals(topo.totals)}")
    for index, pair in enumerate(results.two_workers):
        add(f"  worker accounting, 2 workers {index + 1} (summed): {_totals(pair.totals)}")
    add("")
    add(f"  {'metric':<46} {'measured':>10}  {'target':>12}  result")
    for figure in results.summary:
        add(f"  {figure.metric:<46} {figure.shown:>10}  {figure.target:>12}  {figure.result}")
    for check in results.state_checks:
        add("")
        compared = ", ".join(
            f"{n:,} {FIGURES[f].split(' (')[0]}" for f, n in check.compared.items()
        )
        add(f"  two workers against one, repeat {check.repeat} (compared: {compared})")
        add("  same final state: " + ("yes" if not check.differences else "no"))
        for difference in check.differences:
            add(f"    {difference}")
        if check.arrival_dependent:
            add("  not counted, as arrival order decides them (cost of goods booked only once")
            add("  the SKU's unit cost is known; a cancelled order's sales order; a snapshot")
            add("  older than the movements already folded into on hand):")
        for difference in check.arrival_dependent:
            add(f"    {difference}")
    restore = results.restore
    if restore is not None:
        add("")
        web = "-" if restore.web_seconds is None else f"{restore.web_seconds:.1f}s"
        add(
            f"  restore: a fresh worker on an empty data directory answered /readyz 200 after "
            f"{restore.seconds:.1f}s (its web server after {web}), restoring "
            f"{restore.changelog_records:,} changelog records, {restore.changelog_bytes / 1e6:,.1f}"
            f" MB of keys and values, from {restore.changelogs} changelogs"
        )
    lat = results.latency
    if lat is not None:
        add("")
        add(
            f"  latency run: {lat.opening:,} opening-stock snapshots loaded first, then "
            f"{lat.produced:,} inputs at {lat.achieved_rate:,.0f}/s (target "
            f"{lat.target_rate:,.0f}/s; at worst {lat.max_behind_ms:.0f} ms behind schedule); "
            f"the worker consumed {_num(lat.consumed)} in all"
        )
        add(f"  worker accounting: {_totals(lat.totals)}")
        if lat.usage is not None:
            add("  cores used while producing: " + _usage_text(lat.usage, "worker"))
        add(
            f"  orders.status: {lat.outputs:,} outputs; {len(lat.latencies_ms):,} matched to an "
            f"input after the {results.args['latency_warmup']:.0f}s warm-up ({lat.causes:,} "
            f"distinct causes), {lat.warmup_outputs:,} in the warm-up, {lat.unmatched:,} unmatched"
        )
        if lat.latencies_ms:
            add("  output record timestamp - input produce time: " + _spread(lat.latencies_ms))
            add("  received by the bench - input produce time:   " + _spread(lat.observed_ms))
        for note in lat.notes:
            add(f"  note: {note}")
    for note in results.notes:
        add(f"  note: {note}")
    add("")
    return "\n".join(lines)


def _window_row(name: str, window: Window, details: str) -> str:
    usage = window.usage
    parts = usage.processes if usage else {}
    others = usage.others if usage else None
    per_event = None
    if window.cpu is not None and window.events:
        per_event = window.cpu * window.seconds / window.events * 1000
    return (
        f"  {name:<12} {window.rate:>9,.0f} {window.seconds:>8.1f} {_cores(window.cpu):>8} "
        f"{_cores(parts.get('broker')):>7} {_cores(parts.get('bench')):>6} {_cores(others):>7} "
        f"{_ms(per_event, 2):>10}  {details}"
    )


def _topology_details(topo: TopologyRun, floor: Window | None) -> str:
    steady = f"{topo.steady_rate:,.0f}/s" if topo.steady_rate else "-"
    end = "never drained"
    if topo.drained_rate:
        end = f"{topo.drained_rate:,.0f}/s, {_ms(topo.cpu_per_input_ms, 2)} CPU/input"
        if floor is not None and floor.rate:
            end += f", {topo.drained_rate / floor.rate:.2f} of the floor"
    details = f"inputs 10-90%: {steady}; end to end*: {end}; start-up {topo.startup_seconds:.1f}s"
    if topo.workers > 1:
        details += "; inputs per worker " + " / ".join(f"{n:,}" for n in topo.consumed_by_worker)
    return details


def summary(results: Results) -> list[Figure]:
    """The medians over the repeats against their targets, as printed and written to --json."""
    raw = _median_or_none([w.rate for w in results.raw])
    floor = _median_or_none([w.rate for w in results.floor])
    figures = [Figure("raw pass-through events/s (median)", raw, _num(raw), "(the limit)")]
    if results.floor:
        figures.append(Figure("Faust floor events/s (median)", floor, _num(floor)))
        figures.append(_ratio("  / raw pass-through", floor, raw))
    one_end = _median_or_none([t.drained_rate for t in results.topology])
    if results.topology:
        consumed = median([t.window.rate for t in results.topology])
        cpu = _median_or_none([t.cpu_per_input_ms for t in results.topology])
        figures += [
            Figure("one worker events/s, inputs consumed (median)", consumed, _num(consumed)),
            _ratio("  / Faust floor", consumed, floor),
            _checked(
                "one worker events/s, end to end (median)",
                one_end,
                _num(one_end),
                f">= {TARGET_RATE:,.0f}",
                lambda v: v >= TARGET_RATE,
            ),
            _ratio("  / Faust floor", one_end, floor, TARGET_FLOOR_RATIO),
            _checked(
                "  CPU per input, end to end",
                cpu,
                _ms(cpu, 2),
                f"<= {TARGET_CPU_MS} ms",
                lambda v: v <= TARGET_CPU_MS,
            ),
            _checked(
                "  against the long-term line",
                one_end,
                _num(one_end),
                f">= {LONG_TERM_RATE:,.0f}",
                lambda v: v >= LONG_TERM_RATE,
            ),
            _ratio("  / raw pass-through (long term)", one_end, raw, LONG_TERM_RAW_RATIO),
        ]
    if results.two_workers:
        consumed = median([t.window.rate for t in results.two_workers])
        end = _median_or_none([t.drained_rate for t in results.two_workers])
        cpu = _median_or_none([t.cpu_per_input_ms for t in results.two_workers])
        figures += [
            Figure("two workers events/s, inputs consumed (median)", consumed, _num(consumed)),
            Figure("two workers events/s, end to end (median)", end, _num(end)),
            _ratio("  / one worker", end, one_end),
            Figure("  CPU per input, end to end", cpu, _ms(cpu, 2)),
        ]
    if results.state_checks:
        same = all(not c.differences for c in results.state_checks)
        figures.append(
            Figure(
                "two workers' final state, same as one worker's",
                float(same),
                "yes" if same else "no",
                "the same",
                _verdict(same),
            )
        )
    if results.restore is not None:
        seconds = results.restore.seconds
        figures.append(Figure("restore into an empty data directory", seconds, f"{seconds:.1f} s"))
    lat = results.latency
    if lat is not None:
        p50 = p99 = None
        if lat.latencies_ms:
            p50, p99 = percentile(lat.latencies_ms, 0.5), percentile(lat.latencies_ms, 0.99)
        at = f" at {lat.target_rate:,.0f}/s"
        figures += [
            Figure(f"latency p50{at}", p50, _ms(p50)),
            _checked(
                f"latency p99{at}",
                p99,
                _ms(p99),
                f"< {TARGET_P99_MS:.0f} ms",
                lambda v: v < TARGET_P99_MS,
            ),
        ]
    return figures


def _checked(
    metric: str, value: float | None, shown: str, target: str, meets: Callable[[float], bool]
) -> Figure:
    return Figure(metric, value, shown, target, _verdict(None if value is None else meets(value)))


def _ratio(
    metric: str, part: float | None, whole: float | None, target: float | None = None
) -> Figure:
    ratio = part / whole if part is not None and whole else None
    shown = "-" if ratio is None else f"{ratio:.2f}"
    if target is None:
        return Figure(metric, ratio, shown)
    return _checked(metric, ratio, shown, f">= {target:.2f}", lambda v: v >= target)


def _median_or_none(values: list[float | None]) -> float | None:
    """The median, or None when there are no values or any is unknown."""
    if not values or any(v is None for v in values):
        return None
    return median([v for v in values if v is not None])


def _totals(totals: dict[str, Any]) -> str:
    if not totals:
        return "(not available)"
    return ", ".join(
        f"{name} {value:,}" for name, value in totals.items() if value or name == "consumed"
    )


def _usage_text(usage: CpuUsage, process: str) -> str:
    parts = usage.processes
    return (
        f"{process} {_cores(parts.get(process))}, broker {_cores(parts.get('broker'))}, "
        f"bench {_cores(parts.get('bench'))}, others {_cores(usage.others)}"
    )


def _spread(values: list[float]) -> str:
    return ", ".join(
        f"{name} {percentile(values, q):.1f} ms"
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    )


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} ms"


def contention_notes(results: Results) -> list[str]:
    """Flag windows in which processes outside the benchmark took a share of the cores."""
    windows = [(f"raw {i + 1}", w.usage) for i, w in enumerate(results.raw)]
    windows += [(f"floor {i + 1}", w.usage) for i, w in enumerate(results.floor)]
    windows += [(f"topology {i + 1}", t.window.usage) for i, t in enumerate(results.topology)]
    windows += [(f"2 workers {i + 1}", t.window.usage) for i, t in enumerate(results.two_workers)]
    if results.latency is not None:
        windows.append(("latency", results.latency.usage))
    busy = [
        f"{name} ({usage.others:.2f} cores)"
        for name, usage in windows
        if usage is not None and usage.others is not None and usage.others > BUSY_ELSEWHERE
    ]
    if not busy:
        return []
    return [
        "other processes on this machine used cores during "
        + ", ".join(busy)
        + ": those figures are lower than on a quiet machine; re-run when it is idle"
    ]


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description="Throughput and latency of the erpbridge topology against the raw "
        "pass-through limit, on one broker. Prints figures; see docs/benchmarks.md.",
    )
    add = parser.add_argument
    add("--events", type=int, default=200_000, help="events per run (default %(default)s)")
    add("--skus", type=int, default=10_000, help="SKUs in the catalogue (default %(default)s)")
    add("--partitions", type=int, default=6, help="partitions of every topic (default %(default)s)")
    add(
        "--repeats",
        type=int,
        default=3,
        help="raw and topology runs each; 0 with --latency-rate: latency only (default %(default)s)",
    )
    add(
        "--latency-seconds",
        type=float,
        default=30.0,
        help="length of the paced run; 0 skips it (default %(default)s)",
    )
    add(
        "--latency-rate",
        type=float,
        help="events/s of the paced run (default: half the topology's)",
    )
    add(
        "--latency-warmup",
        type=float,
        default=5.0,
        help="first seconds of the paced run left out of the latency figures (default %(default)s)",
    )
    add("--seed", type=int, default=7, help="sample seed (default %(default)s)")
    add(
        "--reencode",
        action="store_true",
        help="the pass-through re-encodes instead of forwarding bytes",
    )
    add(
        "--worker-source",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose worker is measured (default: this one)",
    )
    add("--worker-loglevel", default="info", help="the worker's --loglevel (default %(default)s)")
    add(
        "--two-workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after each one-worker run, two workers in one group on fresh topics: their rate, "
        "and their final state checked against the one worker's (default: on)",
    )
    add(
        "--restore",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the last one-worker run, time a fresh worker restoring its tables into an "
        "empty data directory (default: on)",
    )
    add("--no-cache", action="store_true", help="generate the workload even if it is cached")
    add("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    for name in ("events", "skus", "partitions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.repeats < 0:
        parser.error("--repeats must be >= 0")
    if args.latency_rate is not None and args.latency_rate <= 0:
        parser.error("--latency-rate must be > 0")
    if args.repeats == 0 and args.latency_rate is None:
        parser.error("--repeats 0 (latency only) needs --latency-rate")
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_phases(
    broker: Broker,
    args: argparse.Namespace,
    source: Path,
    workload: Workload,
    results: Results,
    say: Say,
) -> None:
    """Every measurement on one broker, filling `results` as they complete."""
    bench = Bench(broker, args, source, say)
    results.machine = {**machine_facts(broker), "worker": worker_version(source)}
    say(f"broker: {broker.kind} at {broker.bootstrap_servers}; logs in {bench.logs}")
    idle = idle_load(bench)
    results.machine["idle_others"] = idle.others
    if idle.others is not None and idle.others > BUSY_ELSEWHERE:
        say(f"warning: other processes use {idle.others:.2f} cores: figures will be low")
    for repeat in range(1, args.repeats + 1):
        say(f"repeat {repeat} of {args.repeats}")
        raw = measure_raw(bench.run(f"raw{repeat}"), workload)
        results.raw.append(raw)
        say(f"  raw: {raw.rate:,.0f} events/s over {raw.seconds:.1f}s")
        floor = measure_floor(bench.run(f"floor{repeat}"), workload)
        results.floor.append(floor)
        say(f"  faust floor: {floor.rate:,.0f} events/s over {floor.seconds:.1f}s")
        run = bench.run(f"topo{repeat}")
        try:
            topo = measure_topology(run, workload)
            results.topology.append(topo)
            say(
                f"  topology: {topo.window.rate:,.0f} events/s over "
                f"{topo.window.seconds:.1f}s (start-up {topo.startup_seconds:.1f}s, not counted)"
            )
            # Read before its topics go: the two-worker run is compared with it.
            one_worker = _final_state(run) if args.two_workers else None
            if args.restore and repeat == args.repeats:
                results.restore = measure_restore(run)
                say(f"  restore: /readyz answered 200 after {results.restore.seconds:.1f}s")
        finally:
            run.clean_up([run.settings.app_id])
        dead = topo.totals.get("dead_lettered", 0)
        if dead:
            results.notes.append(
                f"topology {repeat}: the worker dead-lettered {dead:,} sample events"
            )
        if one_worker is not None:
            measure_two_workers(bench, results, repeat, workload, one_worker)
    if args.latency_seconds > 0:
        # Half the rate the topology sustains: the inputs-consumed rate alone overstates it
        # when internal topics fall behind.
        rate = args.latency_rate or LATENCY_LOAD * median(
            [t.sustained_rate for t in results.topology]
        )
        results.latency = measure_latency(bench.run("latency"), workload, rate)


def measure_two_workers(
    bench: Bench, results: Results, repeat: int, workload: Workload, one_worker: FinalState
) -> None:
    """Two workers on fresh topics, and their final state against the one worker's. Two
    workers that never finish are a finding about two workers, reported as a difference, not
    a reason to lose the phases after them."""
    run = bench.run(f"two{repeat}")
    try:
        pair = measure_topology(run, workload, workers=2)
        two_workers = _final_state(run)
    except BenchError as exc:
        # The first line: the log tails are in the logs.
        failure = f"the two workers did not finish: {str(exc).splitlines()[0]}"
        bench.say(f"  two workers: {failure}")
        results.state_checks.append(StateCheck(repeat, one_worker.counts(), [failure], []))
        return
    finally:
        run.clean_up([run.settings.app_id])
    results.two_workers.append(pair)
    comparison = compare(one_worker, two_workers)
    results.state_checks.append(
        StateCheck(
            repeat, one_worker.counts(), comparison.differences, comparison.arrival_dependent
        )
    )
    bench.say(
        f"  two workers: {pair.window.rate:,.0f} events/s over {pair.window.seconds:.1f}s; "
        "same final state: " + ("no" if comparison.differences else "yes")
    )


def _final_state(run: Run) -> FinalState:
    started = time.monotonic()
    state = FinalState.read(run.settings)
    run.bench.say(f"  final state read in {time.monotonic() - started:.1f}s")
    return state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Both stop the run through KeyboardInterrupt, so every `finally` stops what it started;
    # SIGINT explicitly, as a shell starting us in the background may have ignored it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    def say(message: str) -> None:
        print(message, flush=True)

    source = args.worker_source.resolve()
    if not (source / "streams" / "cli").is_dir():
        say(f"--worker-source {source} has no streams/cli: not an erpbridge checkout")
        return 2
    base = Settings()
    results: Results | None = None
    status = 0
    try:
        workload = build(
            args.events, args.skus, args.seed, base, use_cache=not args.no_cache, say=say
        )
        results = Results(
            args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            machine={},
            workload={
                "events": len(workload),
                "skus": args.skus,
                "warehouses": 3,
                "seed": args.seed,
                "by_topic": dict(sorted(workload.by_topic().items())),
                "by_member": dict(workload.by_member().most_common()),
                "mean_bytes": workload.encoded_bytes() / len(workload),
                **codec_costs(workload, base),
            },
        )
        with running_broker() as broker:
            try:
                run_phases(broker, args, source, workload, results, say)
            finally:
                cluster.forget_admins()
    except KeyboardInterrupt:
        say("interrupted: the worker, the pass-through and the broker were stopped")
        status = 130
    except BenchError as exc:
        say(f"benchmark failed: {exc}")
        status = 1
    except Exception:  # stopped cleanly all the same; report what was measured
        say(f"benchmark failed with an unexpected error:\n{traceback.format_exc()}")
        status = 1
    if results is None or not (results.raw or results.topology or results.latency):
        return status or 1
    results.notes += contention_notes(results)
    results.summary = summary(results)
    if status:
        say("partial results:")
    say(report(results))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2, default=str) + "\n")
        say(f"results written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Throughput and latency of the erpbridge topology, against the raw pass-through limit.

    .venv/bin/python -m bench.throughput [--events N] [--skus 10000] [--partitions 6]
                                         [--repeats 3] [--latency-seconds 30]

One broker (streams.local.kafka.running_broker: KAFKA_BOOTSTRAP_SERVERS, or a local one),
N sample events generated and encoded once, then for each repeat, each on fresh topics:
the raw pass-through (bench.passthrough) and the topology (the worker's production entry
point, `python -m streams.cli worker`), both catching up on the N preloaded events; then
latency at half the rate the topology sustains. Method and results: docs/benchmarks.md.
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
from bench.machine import CpuMeter, CpuUsage, listening_pid
from bench.passthrough import PassThroughResult
from bench.stats import crossing_time, median, percentile
from bench.wait import wait_for
from bench.worker import Worker
from bench.workload import Workload, build
from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import TopicCatalog
from streams.local.kafka import KAFKA_VERSION, Broker, running_broker
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics

Say = Callable[[str], None]

TARGET_RATE = 10_000.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
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
    totals: dict[str, Any] = field(default_factory=dict)
    """The worker's accounting totals at the end."""

    @property
    def drained_rate(self) -> float | None:
        """End-to-end events/s: the preloaded events all the way through the topology."""
        if not self.drained_seconds:
            return None
        return self.window.events / self.drained_seconds

    @property
    def sustained_rate(self) -> float:
        """The rate the topology keeps up with: the lower of the two."""
        if self.drained_rate is None:
            return self.window.rate
        return min(self.window.rate, self.drained_rate)


@dataclass
class Results:
    args: dict[str, Any]
    machine: dict[str, Any]
    workload: dict[str, Any]
    raw: list[Window] = field(default_factory=list)
    floor: list[Window] = field(default_factory=list)
    topology: list[TopologyRun] = field(default_factory=list)
    latency: LatencyResult | None = None
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

    def start_worker(self) -> Worker:
        return Worker.start(
            self.settings,
            self.bench.source,
            self.logs / "worker.log",
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


def measure_topology(run: Run, workload: Workload) -> TopologyRun:
    say = run.bench.say
    catalog = run.create_topics()
    loaded = cluster.preload(run.settings, workload)
    say(f"  topology: preloaded {len(workload):,} events in {loaded:.1f}s; starting the worker")
    total = len(workload)
    worker = run.start_worker()
    try:
        launched = time.monotonic()
        meter = run.bench.meter(worker=worker.process.pid)
        samples: list[tuple[float, int]] = []

        def sample() -> int | None:
            worker.check_alive()
            consumed = worker.inputs_consumed()
            if consumed is not None and consumed > 0:
                samples.append((time.monotonic(), consumed))
            return consumed

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
                    f"the worker consumed no input for {_STALL_TIMEOUT:.0f}s, at "
                    f"{samples[-1][1]:,} of {total:,}; log {worker.log_path}:\n{worker.log_tail()}"
                )
        usage = CpuMeter.usage(before, meter.snapshot(time.monotonic()))
        finished = crossing_time(samples, total) or samples[-1][0]
        window = Window(
            events=total - first,
            seconds=finished - started,
            cpu=usage.processes.get("worker"),
            usage=usage,
        )
        steady = None
        low, high = crossing_time(samples, 0.1 * total), crossing_time(samples, 0.9 * total)
        if first < 0.1 * total and low is not None and high is not None and high > low:
            steady = 0.8 * total / (high - low)
        drained = cluster.await_drained(run.settings, catalog, stall_timeout=_STALL_TIMEOUT)
        accounting = worker.accounting() or {}
    finally:
        worker.stop()
        run.clean_up([run.settings.app_id])
    return TopologyRun(
        window=window,
        startup_seconds=startup,
        steady_rate=steady,
        drained_seconds=None if drained is None else drained - started,
        totals=dict(accounting.get("totals", {})),
    )


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
    add("  cores used over each window (1.00 = one core busy)")
    add(
        f"  {'run':<12} {'events/s':>9} {'seconds':>8} {'process':>8} {'broker':>7} "
        f"{'bench':>6} {'others':>7}  details"
    )
    for index in range(max(len(results.raw), len(results.topology))):
        if index < len(results.raw):
            raw = results.raw[index]
            add(_window_row(f"raw {index + 1}", raw, "pass-through"))
        if index < len(results.floor):
            add(_window_row(f"floor {index + 1}", results.floor[index], "Faust floor"))
        if index < len(results.topology):
            topo = results.topology[index]
            steady = f"{topo.steady_rate:,.0f}/s" if topo.steady_rate else "-"
            drained = f"{topo.drained_rate:,.0f}/s" if topo.drained_rate else "never drained"
            details = (
                f"inputs 10-90%: {steady}; end to end*: {drained}; "
                f"start-up {topo.startup_seconds:.1f}s"
            )
            add(_window_row(f"topology {index + 1}", topo.window, details))
    add("  topology events/s: inputs consumed (the worker's accounting page), first to last.")
    add("  * end to end: first input consumed to the topology's last write to an internal,")
    add("  changelog or output topic (polled every 0.5s), every input and internal partition")
    add("  committed. Raw runs: broker/bench/others over the pass-through's whole life.")
    for index, topo in enumerate(results.topology):
        add(f"  worker accounting, topology {index + 1}: {_totals(topo.totals)}")
    add("")
    raw_rate = median([w.rate for w in results.raw]) if results.raw else None
    topo_rate = median([t.window.rate for t in results.topology]) if results.topology else None
    ends = [t.drained_rate for t in results.topology]
    end_rate = median([r for r in ends if r]) if ends and all(ends) else None
    lat = results.latency
    p50 = p99 = None
    if lat is not None and lat.latencies_ms:
        p50, p99 = percentile(lat.latencies_ms, 0.5), percentile(lat.latencies_ms, 0.99)
    rate_label = f" at {lat.target_rate:,.0f}/s" if lat else ""
    rows = [("raw pass-through events/s (median)", _num(raw_rate), "(the limit)", "-")]
    if results.floor:
        floor_rate = median([w.rate for w in results.floor])
        rows.append(("Faust floor events/s (median)", _num(floor_rate), "-", "-"))
        if raw_rate:
            rows.append(("  / raw pass-through", f"{floor_rate / raw_rate:.2f}", "-", "-"))
    for label, rate in (("inputs consumed", topo_rate), ("end to end", end_rate)):
        ratio = rate / raw_rate if raw_rate and rate is not None else None
        rows.append(
            (
                f"topology events/s, {label} (median)",
                _num(rate),
                f">= {TARGET_RATE:,.0f}",
                _verdict(None if rate is None else rate >= TARGET_RATE),
            )
        )
        rows.append(
            (
                f"  / raw pass-through, {label}",
                "-" if ratio is None else f"{ratio:.2f}",
                f">= {TARGET_RATIO:.2f}",
                _verdict(None if ratio is None else ratio >= TARGET_RATIO),
            )
        )
    rows += [
        (f"latency p50{rate_label}", _ms(p50), "-", "-"),
        (
            f"latency p99{rate_label}",
            _ms(p99),
            f"< {TARGET_P99_MS:.0f} ms",
            _verdict(None if p99 is None else p99 < TARGET_P99_MS),
        ),
    ]
    add(f"  {'metric':<44} {'measured':>10}  {'target':>12}  result")
    for metric, value, target, verdict in rows:
        add(f"  {metric:<44} {value:>10}  {target:>12}  {verdict}")
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
    return (
        f"  {name:<12} {window.rate:>9,.0f} {window.seconds:>8.1f} {_cores(window.cpu):>8} "
        f"{_cores(parts.get('broker')):>7} {_cores(parts.get('bench')):>6} {_cores(others):>7}  "
        f"{details}"
    )


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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def contention_notes(results: Results) -> list[str]:
    """Flag windows in which processes outside the benchmark took a share of the cores."""
    windows = [(f"raw {i + 1}", w.usage) for i, w in enumerate(results.raw)]
    windows += [(f"topology {i + 1}", t.window.usage) for i, t in enumerate(results.topology)]
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
        topo = measure_topology(bench.run(f"topo{repeat}"), workload)
        results.topology.append(topo)
        say(
            f"  topology: {topo.window.rate:,.0f} events/s over "
            f"{topo.window.seconds:.1f}s (start-up {topo.startup_seconds:.1f}s, not counted)"
        )
        dead = topo.totals.get("dead_lettered", 0)
        if dead:
            results.notes.append(
                f"topology {repeat}: the worker dead-lettered {dead:,} sample events"
            )
    if args.latency_seconds > 0:
        # Half the rate the topology sustains: the inputs-consumed rate alone overstates it
        # when internal topics fall behind.
        rate = args.latency_rate or LATENCY_LOAD * median(
            [t.sustained_rate for t in results.topology]
        )
        results.latency = measure_latency(bench.run("latency"), workload, rate)


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
    if status:
        say("partial results:")
    say(report(results))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2, default=str) + "\n")
        say(f"results written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""A soak of the whole loop under faults injected on a schedule.

    .venv/bin/python -m bench.soak [--events 100000] [--rate 40] [--fault-every 90] [--no-erp]

A broker and a Tryton ERP of its own (streams.local), the worker and the ERP connector as
production runs them (the fault-injection harness of tests/faults), the sample workload
fed at `--rate` events/s with every source's clock off by minutes, and every
`--fault-every` seconds the next fault of `Soak.cycle`, until the loop has drained. The
ERP connector talks to Tryton through a proxy, so a 429 storm can be injected. A worker or
connector that dies is started again, as Kubernetes would. Then the fault suite's one
check, and the figures: lost, doubled and dead-lettered, documents in the ERP, the longest
stall of each consumer group and each fault's recovery time. `--no-erp` leaves the ERP
out (Tryton takes hours over a large sample here): the commands stay on erp.commands and
the check stops there. It prints figures; it is not a test. Method and figures:
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams.local.kafka import Broker, running_broker
from streams.local.tryton import Tryton, running_tryton
from streams.ops.settings import REPO_ROOT
from streams.sample.generator import SampleEvent
from tests.connectors.erp.proxy import Answer, ErpProxy, Request, serving
from tests.faults.check import verdict
from tests.faults.loop import Loop, Process, loop_settings, sample, skewed
from tests.faults.test_clock_skew import SKEWS
from tests.support import wait_for

STALL_SAMPLE_SECONDS = 1.0
HEAL_TIMEOUT = 300.0


@dataclass
class Injected:
    """One fault as it happened, in seconds since the run started."""

    name: str
    at: float
    healed: float | None = None
    """When the fault was over: the process restarted, the broker or the ERP back."""
    recovered: float | None = None
    """When every consumer group with work waiting had committed past where it stood when
    the fault was healed."""
    error: str | None = None
    """Why the fault could not be injected, if it could not."""

    @property
    def recovery_seconds(self) -> float | None:
        if self.healed is None or self.recovered is None:
            return None
        return self.recovered - self.healed


@dataclass
class Progress:
    """The loop's committed offsets sampled every second: stalls, and when a fault is over."""

    loop: Loop
    stalls: dict[str, float] = field(default_factory=dict)
    """Per consumer group, the longest time it had records waiting and committed none."""
    positions: dict[tuple[str, str, int], tuple[int, int]] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(STALL_SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        try:
            positions = self.loop.positions()
        except Exception:  # the broker restarting: a stall, measured by the next sample
            return
        now = time.monotonic()
        with self._lock:
            for group in {g for g, _, _ in positions}:
                mine = {k: v for k, v in positions.items() if k[0] == group}
                waiting = any(committed < high for committed, high in mine.values())
                moved = any(
                    self.positions.get(k, (-1, -1))[0] != committed
                    for k, (committed, _) in mine.items()
                )
                if not waiting or moved:
                    self._since[group] = now
                stalled = now - self._since.setdefault(group, now)
                self.stalls[group] = max(self.stalls.get(group, 0.0), stalled)
            self.positions = positions

    def snapshot(self) -> dict[tuple[str, str, int], tuple[int, int]]:
        with self._lock:
            return dict(self.positions)

    def progressed_since(self, before: dict[tuple[str, str, int], tuple[int, int]]) -> bool:
        """Every group that had records waiting in `before` committed some since."""
        now = self.snapshot()
        for group in {g for g, _, _ in before}:
            waiting = [k for k, (c, h) in before.items() if k[0] == group and c < h]
            if waiting and not any(now.get(k, (-1, -1))[0] > before[k][0] for k in waiting):
                return False
        return True


class Storm:
    """The proxy's policy: 429 with Retry-After to every request until `until`."""

    retry_after = 2

    def __init__(self) -> None:
        self.until = 0.0

    def __call__(self, request: Request) -> Answer | None:
        if request.at < self.until:
            return Answer(429, {"Retry-After": str(self.retry_after)})
        return None


@dataclass
class ErpLeg:
    """The ERP side of the soak: Tryton, the throttling proxy in front of it, the connector."""

    tryton: Tryton
    proxy: ErpProxy
    storm: Storm
    connector: Process | None = None


class Soak:
    def __init__(self, loop: Loop, broker: Broker, erp: ErpLeg | None, rng: random.Random,
                 say: Callable[[str], None]) -> None:  # fmt: skip
        self.loop, self.broker, self.erp, self.rng, self.say = loop, broker, erp, rng, say
        self.started = time.monotonic()
        self.progress = Progress(loop)
        self.faults: list[Injected] = []
        self._spawned = 0
        self.data_dir = loop.settings.data_dir
        """The worker pod's volume: its restarts find its state there."""
        self.worker = self.start_worker()
        if erp is not None:
            erp.connector = self.start_connector(erp)

    def now(self) -> float:
        return time.monotonic() - self.started

    def name(self, kind: str) -> str:
        self._spawned += 1
        return f"{kind}-{self._spawned}"

    def start_worker(self, fault: tuple[str, int] | None = None) -> Process:
        return self.loop.start_worker(self.name("worker"), fault=fault, data_dir=self.data_dir)

    def start_connector(self, erp: ErpLeg, fault: tuple[str, int] | None = None) -> Process:
        return self.loop.start_connector(self.name("connector"), fault=fault, erp_url=erp.proxy.url)

    # --- the faults -----------------------------------------------------------------------

    def worker_kill(self) -> None:
        """kill -9 of the worker wherever it is, and a new one (as Kubernetes would)."""
        self.worker.kill()
        self.worker = self.start_worker()

    def worker_kill_before_commit(self) -> None:
        """A worker that dies between its outputs and its first commit, then a sound one."""
        self.worker.kill()
        self.worker = self.start_worker(fault=("commit", self.rng.randint(1, 3)))
        self.worker.wait_killed_by_fault(timeout=HEAL_TIMEOUT)
        self.worker = self.start_worker()

    def worker_kill_in_recovery(self) -> None:
        """A new pod on an empty volume that dies restoring its tables, then a sound one."""
        self.worker.kill()
        self.data_dir = self.loop.run_dir / f"data-{uuid.uuid4().hex[:6]}"
        self.worker = self.start_worker(fault=("recovery", self.rng.randint(1, 50)))
        self.worker.wait_killed_by_fault(timeout=HEAL_TIMEOUT)
        self.worker = self.start_worker()

    def connector_kill_after_erp_success(self, erp: ErpLeg) -> None:
        """A connector that dies right after the ERP confirmed a command, then a sound one."""
        assert erp.connector is not None
        erp.connector.kill()
        erp.connector = self.start_connector(erp, fault=("erp-success", self.rng.randint(1, 10)))
        erp.connector.wait_killed_by_fault(timeout=HEAL_TIMEOUT)
        erp.connector = self.start_connector(erp)

    def broker_restart(self) -> None:
        assert self.broker.restart is not None
        self.broker.restart()

    def erp_down(self, erp: ErpLeg) -> None:
        """Tryton stopped for half a minute (a pause of the schedule, not a wait)."""
        erp.tryton.stop_server()
        try:
            time.sleep(30)
        finally:
            erp.tryton.start_server()

    def storm_of_429s(self, erp: ErpLeg) -> None:
        erp.storm.until = time.monotonic() + 20
        wait_for(lambda: time.monotonic() > erp.storm.until, timeout=60, what="the storm to pass")

    def second_worker(self) -> None:
        """A second worker joins, shares the partitions for a while, and leaves."""
        second = self.loop.start_worker(
            self.name("worker"), data_dir=self.loop.run_dir / f"data-{uuid.uuid4().hex[:6]}"
        )
        wait_for(lambda: second.readiness()["assignment"]["ok"], timeout=HEAL_TIMEOUT,
                 what="the second worker to own partitions")  # fmt: skip
        time.sleep(20)  # sharing the work for a while: part of the fault, not a wait
        second.stop()

    def inject(self, name: str, fault: Callable[[], None]) -> None:
        injected = Injected(name, self.now())
        self.faults.append(injected)
        self.say(f"[{injected.at:7.1f}s] fault: {name}")
        try:
            fault()
        except Exception as error:  # reported with the figures; the soak goes on
            injected.error = str(error)
            self.say(f"  could not be injected: {error}")
        self.keep_running()
        injected.healed = self.now()
        before = self.progress.snapshot()
        try:
            wait_for(lambda: self.progress.progressed_since(before), timeout=HEAL_TIMEOUT,
                     what=f"the loop to progress after {name}")  # fmt: skip
        except Exception as error:
            self.say(f"  not recovered: {error}")
            return
        injected.recovered = self.now()
        self.say(f"[{injected.recovered:7.1f}s]   recovered {injected.recovery_seconds:.1f}s "
                 f"after it healed")  # fmt: skip

    def keep_running(self) -> None:
        """A worker and a connector up, as Kubernetes keeps its pods: one that died (at a
        fault point it reached late) is started again."""
        if self.worker.process.poll() is not None:
            self.worker = self.start_worker()
        erp = self.erp
        if (
            erp is not None
            and erp.connector is not None
            and erp.connector.process.poll() is not None
        ):
            erp.connector = self.start_connector(erp)

    def cycle(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """The faults in turn; those of the ERP's side only with an ERP."""
        erp = self.erp
        while True:
            yield "worker kill -9", self.worker_kill
            yield "worker kill -9 before its commit", self.worker_kill_before_commit
            if erp is not None:
                yield (
                    "connector kill -9 after the ERP's success",
                    (lambda: self.connector_kill_after_erp_success(erp)),
                )
            yield "broker restart", self.broker_restart
            yield "worker kill -9 during recovery", self.worker_kill_in_recovery
            if erp is not None:
                yield "Tryton stopped for 30 s", lambda: self.erp_down(erp)
                yield "429 storm for 20 s", lambda: self.storm_of_429s(erp)
            yield "second worker joins and leaves", self.second_worker


def events_of(seed: int, count: int) -> list[SampleEvent]:
    """The first `count` events of the sample (a shop observed up to a moment), its
    sources' clocks off by minutes as in the clock-skew fault test."""
    orders = count // 4  # about 5 events per order beyond the opening stock: enough, then cut
    return skewed(sample(seed, orders)[:count], SKEWS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=40.0, help="events fed per second")
    parser.add_argument("--fault-every", type=float, default=90.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--erp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the ERP connector against Tryton (--no-erp: the stream side only, checked "
        "up to erp.commands)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=12 * 3600.0, help="seconds the whole run may take"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the processes, the broker and Tryton are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    def say(line: str) -> None:
        print(line, flush=True)

    run_id = uuid.uuid4().hex[:8]
    run_dir = REPO_ROOT / "var" / "soak" / run_id
    run_dir.mkdir(parents=True)
    events = events_of(args.seed, args.events)
    say(f"soak {run_id}: {len(events)} events at {args.rate}/s, a fault every "
        f"{args.fault_every:.0f}s, {'with' if args.erp else 'without'} the ERP; logs in {run_dir}")  # fmt: skip
    with ExitStack() as stack:
        broker = stack.enter_context(running_broker())
        erp: ErpLeg | None = None
        if args.erp:
            erp_server = stack.enter_context(running_tryton())
            storm = Storm()
            proxy = stack.enter_context(serving(ErpProxy(erp_server.url, storm)))
            erp = ErpLeg(erp_server, proxy, storm)
        tryton = None if erp is None else erp.tryton
        loop = Loop(
            loop_settings(broker.bootstrap_servers, f"soak-{run_id}-", tryton, run_dir),
            tryton,
            run_dir,
        )
        stack.callback(loop.close)
        soak = Soak(loop, broker, erp, random.Random(args.seed), say)
        stop = threading.Event()
        sampler = threading.Thread(target=soak.progress.run, args=(stop,), daemon=True)
        sampler.start()
        stack.callback(stop.set)
        feed = loop.feed(events, rate=args.rate)
        faults = soak.cycle()
        next_fault = args.fault_every
        fed_at: float | None = None
        # Faults come on schedule until the loop has drained, the ERP's backlog included.
        while fed_at is None or not loop.drained():
            if soak.now() >= next_fault:
                soak.inject(*next(faults))
                next_fault = soak.now() + args.fault_every
            soak.keep_running()
            if fed_at is None and not feed.is_alive():
                fed_at = soak.now()
                say(f"[{fed_at:7.1f}s] all {len(events)} events fed; draining")
            if soak.now() > args.drain_timeout:
                raise SystemExit(f"not drained after {args.drain_timeout:.0f}s; lag {loop.lag()}")
            time.sleep(1)  # the schedule's tick
        drained_at = soak.now()
        say(f"[{drained_at:7.1f}s] drained; checking")
        found = verdict(loop)
        figures: dict[str, Any] = {
            "events": len(events),
            "erp": args.erp,
            "rate": args.rate,
            "fed_seconds": round(fed_at, 1),
            "drained_seconds": round(drained_at, 1),
            "lost": found.lost,
            "doubled": found.doubled,
            "dead_lettered": found.dead_lettered,
            "documents": dict(found.documents),
            "problems": found.problems,
            "longest_stall_seconds": {g: round(s, 1) for g, s in soak.progress.stalls.items()},
            "faults": [{**asdict(f), "recovery_seconds": f.recovery_seconds} for f in soak.faults],
        }
        say(json.dumps(figures, indent=1, default=str))
        if args.json is not None:
            args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
